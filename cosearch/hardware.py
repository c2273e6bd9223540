"""Hardware knobs: the discrete hardware choices co-searched with the architecture.

A :class:`HardwareKnobs` names a pimsim preset (the memory family) and the choices
applied on top of it as ``pimsim.with_overrides`` keys (:meth:`HardwareKnobs.overrides`).
A :class:`KnobSpace` lists the allowed values of every knob and samples / mutates
knobs with an explicit ``numpy.random.Generator``.
"""
from __future__ import annotations

import functools
import itertools
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Callable, Iterator

import numpy as np

from cosearch.profile import Precision

__all__ = ["HardwareKnobs", "KnobSpace", "EMBEDDING_PLACES", "GEMM_PLACES", "knob_sample"]

EMBEDDING_PLACES = ("auto", "host", "nmp")
GEMM_PLACES = ("host", "nmp", "crossbar")
#: Attempts to draw knobs that the validity predicate accepts before giving up.
MAX_DRAWS = 64


@dataclass(frozen=True)
class HardwareKnobs:
    """One hardware configuration.

    ``family``: pimsim preset name. ``embeddings``/``gemm``: where embedding bags and
    weight GEMMs run. ``ranks``: DRAM ranks (near-memory units at rank level), 0 keeps
    the preset's. ``crossbar_size``: rows = columns of a crossbar array; ``adc_bits``:
    ADC resolution; both 0 unless GEMMs run on crossbars. ``precision``: embedding
    storage precision. ``host_rows_max``: tables of at most that many rows are pinned to
    the host (served from its last-level cache when they fit), the rest follow
    ``embeddings``; 0 pins none.
    """

    family: str
    embeddings: str = "auto"
    gemm: str = "host"
    ranks: int = 0
    crossbar_size: int = 0
    adc_bits: int = 0
    precision: Precision = Precision.FP32
    host_rows_max: int = 0

    def __post_init__(self):
        object.__setattr__(self, "precision", Precision(self.precision))
        if not isinstance(self.family, str) or not self.family:
            raise ValueError(f"family must be a preset name, got {self.family!r}")
        if self.embeddings not in EMBEDDING_PLACES:
            raise ValueError(f"embeddings must be one of {EMBEDDING_PLACES}, got {self.embeddings!r}")
        if self.gemm not in GEMM_PLACES:
            raise ValueError(f"gemm must be one of {GEMM_PLACES}, got {self.gemm!r}")
        for name in ("ranks", "crossbar_size", "adc_bits", "host_rows_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if (self.gemm == "crossbar") != (self.crossbar_size > 0 and self.adc_bits > 0):
            raise ValueError("crossbar_size and adc_bits must be set exactly when gemm is 'crossbar', "
                             f"got gemm={self.gemm!r}, crossbar_size={self.crossbar_size}, adc_bits={self.adc_bits}")

    def overrides(self) -> dict:
        """The ``pimsim.with_overrides`` dict for this configuration (on ``family``)."""
        out = {"mapping.embeddings": self.embeddings, "mapping.gemm": self.gemm}
        if self.ranks:
            out["org.ranks"] = self.ranks
        if self.gemm == "crossbar":
            out.update({"crossbar.rows": self.crossbar_size, "crossbar.cols": self.crossbar_size,
                        "crossbar.cols_per_adc": min(128, self.crossbar_size),
                        "crossbar.adc_bits": self.adc_bits})
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["precision"] = self.precision.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HardwareKnobs":
        if not isinstance(d, dict):
            raise ValueError(f"hardware knobs must be an object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"hardware knobs: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        return cls(**d)

    @property
    def key(self) -> str:
        """Stable text key (sorted JSON); equal for knobs that configure the same
        hardware: overrides that repeat the preset's own value are dropped (``ranks`` equal
        to the preset's is ``ranks = 0``), and with every table on the host, pinning small
        ones there changes nothing."""
        d = {"family": self.family, "precision": self.precision.value,
             "host_rows_max": 0 if self.embeddings == "host" else self.host_rows_max,
             "overrides": {k: v for k, v in self.overrides().items() if not _preset_has(self.family, k, v)}}
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @property
    def label(self) -> str:
        """Short human-readable form, e.g. ``recnmp/emb=nmp/gemm=host/r8/fp16``."""
        parts = [self.family, f"emb={self.embeddings}", f"gemm={self.gemm}"]
        if self.ranks:
            parts.append(f"r{self.ranks}")
        if self.gemm == "crossbar":
            parts.append(f"xb{self.crossbar_size}/adc{self.adc_bits}")
        parts.append(self.precision.value)
        if self.host_rows_max:
            parts.append(f"host<={self.host_rows_max}")
        return "/".join(parts)


@functools.lru_cache(maxsize=4096)
def _preset_has(family: str, dotted: str, value) -> bool:
    """Whether preset ``family`` already sets ``dotted`` ("section.key") to ``value``."""
    import pimsim
    try:
        hw = pimsim.load_hardware(family)
    except ValueError:
        return False
    section, _, key = dotted.partition(".")
    current = getattr(getattr(hw, section, None), key, None)
    return getattr(current, "value", current) == value


def _tuple(name: str, values, allowed=None) -> tuple:
    values = tuple(values)
    if not values:
        raise ValueError(f"knob space: {name} needs at least one choice")
    if len(set(values)) != len(values):
        raise ValueError(f"knob space: {name} repeats a choice: {values!r}")
    if allowed is not None:
        for v in values:
            if v not in allowed:
                raise ValueError(f"knob space: {name} choice {v!r} not in {allowed}")
    return values


@dataclass(frozen=True)
class KnobSpace:
    """Allowed values of every knob. ``ranks`` 0 = the preset's own; crossbar sizes and
    ADC bits apply only to configurations whose GEMMs run on crossbars."""

    families: tuple[str, ...] = ("recnmp",)
    embeddings: tuple[str, ...] = ("host", "nmp")
    gemm: tuple[str, ...] = ("host",)
    ranks: tuple[int, ...] = (0,)
    crossbar_sizes: tuple[int, ...] = (128,)
    adc_bits: tuple[int, ...] = (8,)
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.FP16, Precision.INT8)
    host_rows_max: tuple[int, ...] = (0,)

    def __post_init__(self):
        object.__setattr__(self, "families", _tuple("families", self.families))
        object.__setattr__(self, "embeddings", _tuple("embeddings", self.embeddings, EMBEDDING_PLACES))
        object.__setattr__(self, "gemm", _tuple("gemm", self.gemm, GEMM_PLACES))
        for name in ("ranks", "crossbar_sizes", "adc_bits", "host_rows_max"):
            vals = _tuple(name, getattr(self, name))
            zero_ok = name in ("ranks", "host_rows_max")
            for v in vals:
                if isinstance(v, bool) or not isinstance(v, int) or v < (0 if zero_ok else 1):
                    raise ValueError(f"knob space: {name} choice {v!r} must be a "
                                     f"{'non-negative' if zero_ok else 'positive'} integer")
            object.__setattr__(self, name, vals)
        try:
            precs = tuple(Precision(p) for p in self.precisions)
        except ValueError:
            raise ValueError(f"knob space: precisions must be among {[p.value for p in Precision]}, "
                             f"got {self.precisions!r}") from None
        object.__setattr__(self, "precisions", _tuple("precisions", precs))
        for f in self.families:
            if not isinstance(f, str) or not f:
                raise ValueError(f"knob space: family {f!r} must be a preset name")

    # The knobs a mutation can re-draw, with their choices (crossbar ones only under 'crossbar').
    def _choices(self, knobs: HardwareKnobs | None) -> dict:
        out = {"family": self.families, "embeddings": self.embeddings, "gemm": self.gemm,
               "ranks": self.ranks, "precision": self.precisions, "host_rows_max": self.host_rows_max}
        if knobs is None or knobs.gemm == "crossbar":
            out.update(crossbar_size=self.crossbar_sizes, adc_bits=self.adc_bits)
        return out

    def _draw(self, rng: np.random.Generator) -> HardwareKnobs:
        def pick(vals):
            return vals[int(rng.integers(len(vals)))]
        gemm = pick(self.gemm)
        xb = gemm == "crossbar"
        return HardwareKnobs(family=pick(self.families), embeddings=pick(self.embeddings), gemm=gemm,
                             ranks=pick(self.ranks), crossbar_size=pick(self.crossbar_sizes) if xb else 0,
                             adc_bits=pick(self.adc_bits) if xb else 0, precision=pick(self.precisions),
                             host_rows_max=pick(self.host_rows_max))

    def sample(self, rng: np.random.Generator,
               valid: Callable[[HardwareKnobs], bool] | None = None) -> HardwareKnobs:
        """Uniform knobs (each knob independently); re-drawn, at most ``MAX_DRAWS``
        times, until ``valid`` accepts them."""
        for _ in range(MAX_DRAWS):
            k = self._draw(rng)
            if valid is None or valid(k):
                return k
        raise ValueError(f"knob space: no valid hardware configuration in {MAX_DRAWS} draws; "
                         "check that the families support the chosen placements")

    def mutate(self, knobs: HardwareKnobs, rng: np.random.Generator,
               valid: Callable[[HardwareKnobs], bool] | None = None) -> HardwareKnobs:
        """Re-draw one knob to a different value (knobs with one choice are skipped);
        switching GEMMs to or from crossbars draws or clears the crossbar knobs. Returns
        ``knobs`` unchanged when no single change gives a valid configuration in
        ``MAX_DRAWS`` attempts."""
        choices = {k: v for k, v in self._choices(knobs).items() if len(v) > 1}
        if not choices:
            return knobs
        names = sorted(choices)
        for _ in range(MAX_DRAWS):
            name = names[int(rng.integers(len(names)))]
            vals = [v for v in choices[name] if v != getattr(knobs, name)]
            if not vals:
                continue
            new = vals[int(rng.integers(len(vals)))]
            change = {name: new}
            if name == "gemm":
                xb = new == "crossbar"
                change["crossbar_size"] = self.crossbar_sizes[int(rng.integers(len(self.crossbar_sizes)))] if xb else 0
                change["adc_bits"] = self.adc_bits[int(rng.integers(len(self.adc_bits)))] if xb else 0
            k = replace(knobs, **change)
            if valid is None or valid(k):
                return k
        return knobs

    @staticmethod
    def crossover(a: HardwareKnobs, b: HardwareKnobs, rng: np.random.Generator,
                  valid: Callable[[HardwareKnobs], bool] | None = None) -> HardwareKnobs:
        """Uniform crossover: each knob from ``a`` or ``b`` with probability 1/2, the
        GEMM placement with its crossbar size and ADC bits as one knob (they are only
        meaningful together). ``a`` itself when ``valid`` rejects the mix."""
        groups = (("family",), ("embeddings",), ("gemm", "crossbar_size", "adc_bits"), ("ranks",),
                  ("precision",), ("host_rows_max",))
        take_a = rng.random(len(groups)) < 0.5
        child = replace(a, **{f: getattr(b, f) for g, t in zip(groups, take_a) if not t for f in g})
        return child if valid is None or valid(child) else a

    def size(self) -> int:
        """Number of knob combinations, valid or not (crossbar knobs count only under 'crossbar')."""
        n_gemm = sum(len(self.crossbar_sizes) * len(self.adc_bits) if g == "crossbar" else 1 for g in self.gemm)
        return (len(self.families) * len(self.embeddings) * n_gemm * len(self.ranks) * len(self.precisions)
                * len(self.host_rows_max))

    def combinations(self) -> Iterator[HardwareKnobs]:
        """Every knob combination, in a fixed order (lazily: see :meth:`size` first)."""
        for family, emb, gemm, ranks, prec, rows in itertools.product(
                self.families, self.embeddings, self.gemm, self.ranks, self.precisions, self.host_rows_max):
            xbars = itertools.product(self.crossbar_sizes, self.adc_bits) if gemm == "crossbar" else [(0, 0)]
            for size, bits in xbars:
                yield HardwareKnobs(family=family, embeddings=emb, gemm=gemm, ranks=ranks, crossbar_size=size,
                                    adc_bits=bits, precision=prec, host_rows_max=rows)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["precisions"] = [p.value for p in self.precisions]
        return {k: list(v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "KnobSpace":
        if not isinstance(d, dict):
            raise ValueError(f"hardware space must be a table, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"hardware space: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        for k, v in d.items():
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"hardware space: {k} must be a list, got {v!r}")
        return cls(**{k: tuple(v) for k, v in d.items()})


def knob_sample(space: KnobSpace, rng: np.random.Generator, limit: int, *,
                valid: Callable[[HardwareKnobs], bool] | None = None, first: tuple[HardwareKnobs, ...] = (),
                enumerate_max: int = 4096) -> tuple[list[HardwareKnobs], bool]:
    """Up to ``limit`` valid configurations of ``space``, distinct by :attr:`HardwareKnobs.key`,
    after the valid ones of ``first``: all of them when there are no more, else a uniform
    sample drawn with ``rng`` (order kept). Spaces of more than ``enumerate_max``
    combinations are not listed but drawn from (``KnobSpace.sample``, a bounded number of
    draws). Returns (configurations, whether they are a sample rather than all)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    ok = valid or (lambda k: True)
    picked, seen = [], set()
    for k in first:
        if k.key not in seen and ok(k):
            seen.add(k.key)
            picked.append(k)
    if space.size() <= enumerate_max:
        rest = []
        for k in space.combinations():
            if k.key not in seen and ok(k):
                seen.add(k.key)
                rest.append(k)
        room = max(0, limit - len(picked))
        if len(rest) <= room:
            return picked + rest, False
        keep = np.sort(rng.choice(len(rest), size=room, replace=False))
        return picked + [rest[i] for i in keep], True
    for _ in range(8 * limit):  # bounded: a space of few valid configurations ends here
        if len(picked) >= limit:
            break
        try:
            k = space.sample(rng, valid)
        except ValueError:
            break
        if k.key not in seen:
            seen.add(k.key)
            picked.append(k)
    return picked, True
