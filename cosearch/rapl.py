"""Energy counters of the CPU package and its DRAM, read from Linux powercap (RAPL).

Linux exposes Intel's (and, under the same ``intel-rapl`` names, AMD's) running average
power limit counters as ``/sys/class/powercap/intel-rapl:N/energy_uj`` (a package) and
``intel-rapl:N:M/energy_uj`` (its sub-domains, one of them named ``dram`` on servers).
Each counts microjoules and wraps at ``max_energy_range_uj``. Since Linux 5.10 the files
are readable by root only (a side channel fix), so a user may see the domains and still
read nothing; virtual machines usually expose none. Either way the caller gets the reason
as text, not an exception: energy is optional in every measurement that uses it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["POWERCAP", "RaplDomain", "RaplMeter", "rapl_meter", "energy_delta_uj"]

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class RaplDomain:
    """One counter: its ``name`` as the kernel gives it (``package-0``, ``dram``), the
    folder it lives in and the value (uJ) at which it wraps to 0."""

    name: str
    path: Path
    max_range_uj: int
    power_limit_uw: int | None = None  # the long-term limit (PL1, about the TDP) of a package

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def energy_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Microjoules counted from ``before`` to ``after``, across one wrap of the counter."""
    if after >= before:
        return after - before
    return after + max_range_uj + 1 - before


@dataclass(frozen=True)
class RaplMeter:
    """The package and DRAM counters of every socket; ``joules(fn)`` measures a call."""

    domains: tuple[RaplDomain, ...]

    def read(self) -> tuple[int, ...]:
        return tuple(d.read_uj() for d in self.domains)

    def delta_j(self, before: tuple[int, ...], after: tuple[int, ...]) -> dict[str, float]:
        """Joules per kind (``package``, ``dram``) between two ``read()`` results."""
        out = {"package": 0.0, "dram": 0.0}
        for d, b, a in zip(self.domains, before, after):
            kind = "dram" if d.name == "dram" else "package"
            out[kind] += energy_delta_uj(b, a, d.max_range_uj) * 1e-6
        return out

    def joules(self, fn: Callable[[], object], min_s: float) -> tuple[dict[str, float], float, int]:
        """(joules per kind, seconds, calls) of calling ``fn`` repeatedly for at least
        ``min_s`` seconds: the counters update about every millisecond, so short work is
        repeated until the count is many updates long."""
        calls, took = 0, 0.0
        t0 = time.perf_counter()
        before = self.read()
        while calls == 0 or took < min_s:
            fn()
            calls += 1
            took = time.perf_counter() - t0
        after = self.read()
        return self.delta_j(before, after), took, calls

    def power_w(self, seconds: float) -> dict[str, float]:
        """Watts per kind drawn while this process sleeps ``seconds``: the idle floor."""
        before = self.read()
        t0 = time.perf_counter()
        time.sleep(seconds)
        took = time.perf_counter() - t0
        return {k: j / took for k, j in self.delta_j(before, self.read()).items()}

    def power_limit_w(self) -> float | None:
        """The packages' long-term power limits summed (W), None where one is unknown."""
        limits = [d.power_limit_uw for d in self.domains if d.name != "dram"]
        return None if any(v is None for v in limits) else sum(limits) * 1e-6


def rapl_meter(root: Path = POWERCAP) -> tuple[RaplMeter | None, str]:
    """(meter, where) when package counters under ``root`` can be read, else (None, why not)."""
    try:
        tops = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    except OSError as e:
        return None, f"{root}: {e.strerror or e}"
    if not tops:
        return None, f"no RAPL energy counters under {root}, as usual in a virtual machine"
    domains, unreadable = [], []
    for top in tops:
        for d in [top] + sorted(p for p in top.glob(f"{top.name}:*")):
            try:
                name = (d / "name").read_text().strip()
            except OSError:
                continue
            if d is not top and name != "dram":
                continue  # core and uncore sub-domains are already inside the package count
            try:
                max_uj = int((d / "max_energy_range_uj").read_text().strip())
                (d / "energy_uj").read_text()
            except PermissionError:
                unreadable.append(str(d / "energy_uj"))
                continue
            except (OSError, ValueError):
                continue
            limit = None
            if d is top:
                try:
                    limit = int((d / "constraint_0_power_limit_uw").read_text().strip()) or None
                except (OSError, ValueError):
                    pass
            domains.append(RaplDomain(name=name, path=d, max_range_uj=max_uj, power_limit_uw=limit))
    if not any(d.name != "dram" for d in domains):
        if unreadable:
            return None, (f"RAPL counters exist but cannot be read by this user ({unreadable[0]}; root only "
                          f"since Linux 5.10)")
        return None, f"no readable RAPL package counter under {root}"
    names = ", ".join(f"{d.path.name} ({d.name})" for d in domains)
    return RaplMeter(tuple(domains)), f"RAPL under {root}: {names}"
