"""Load hardware from the TOML presets shipped in ``pimsim/presets`` or a user's file.

A file may say ``base = "<preset>"`` and override only some keys. A ``[calibration]``
table (how and when a calibrated file's numbers were measured, written by
``cosearch calibrate``) is a record for people: it must be a table and is otherwise
not read.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import MISSING, fields, replace
from importlib import resources
from pathlib import Path

from .config import (Controller, Crossbar, DramOrg, DramPower, DramTiming, Hardware, Host, Mapping,
                     NearMemoryUnit)

__all__ = ["list_presets", "load_hardware", "hardware_from_dict", "with_overrides"]

_SECTIONS = {"org": DramOrg, "timing": DramTiming, "power": DramPower,
             "controller": Controller, "nmp": NearMemoryUnit, "host": Host, "crossbar": Crossbar,
             "mapping": Mapping}
_TOP_KEYS = {"name", "description", "base", "calibration"} | set(_SECTIONS)
_MAX_BASE_DEPTH = 8


def _preset_dir():
    return resources.files("pimsim") / "presets"


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description, sorted by name."""
    out = {}
    for entry in sorted(_preset_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
            out[entry.name[:-5]] = str(data.get("description", ""))
    return out


def _read_toml(source: str) -> tuple[dict, str]:
    """Return the parsed TOML of a preset name or a file path, and a label for errors."""
    preset = _preset_dir() / f"{source}.toml"
    if preset.is_file():
        text, label = preset.read_text(encoding="utf-8"), f"preset {source!r}"
    else:
        path = Path(source)
        if not path.is_file():
            names = ", ".join(list_presets())
            raise ValueError(f"unknown hardware {source!r}: not a preset ({names}) and not a file")
        text, label = path.read_text(encoding="utf-8"), str(path)
    try:
        return tomllib.loads(text), label
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{label}: invalid TOML: {exc}") from None


def _resolve(source: str, depth: int = 0) -> tuple[dict, str]:
    if depth > _MAX_BASE_DEPTH:
        raise ValueError(f"hardware {source!r}: 'base' chain deeper than {_MAX_BASE_DEPTH}")
    data, label = _read_toml(source)
    for key in data:
        if key not in _TOP_KEYS:
            raise ValueError(f"{label}: unknown key {key!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    base = data.get("base")
    if base is None:
        return data, label
    if not isinstance(base, str):
        raise ValueError(f"{label}: 'base' must be a preset name or path, got {base!r}")
    merged, _ = _resolve(base, depth + 1)
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in merged.items()}
    for key, value in data.items():
        if key == "base":
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    merged.pop("base", None)
    return merged, label


def hardware_from_dict(data: dict, label: str = "hardware") -> Hardware:
    """Build a :class:`Hardware` from a plain dict shaped like the TOML presets."""
    if "calibration" in data and not isinstance(data["calibration"], dict):
        raise ValueError(f"{label}: [calibration] must be a table, got {data['calibration']!r}")
    kwargs = {}
    for section, cls in _SECTIONS.items():
        if section not in data:
            if section in ("org", "timing", "power"):
                raise ValueError(f"{label}: missing section [{section}]")
            continue
        table = data[section]
        if not isinstance(table, dict):
            raise ValueError(f"{label}: [{section}] must be a table")
        allowed = {f.name for f in fields(cls)}
        for key in table:
            if key not in allowed:
                raise ValueError(f"{label}: unknown key {key!r} in [{section}] (allowed: {', '.join(sorted(allowed))})")
        missing = [f.name for f in fields(cls)
                   if f.name not in table and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise ValueError(f"{label}: [{section}] is missing keys: {', '.join(missing)}")
        try:
            kwargs[section] = cls(**table)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
    name = data.get("name", label)
    try:
        return Hardware(name=str(name), description=str(data.get("description", "")), **kwargs)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None


def load_hardware(source: str | Hardware) -> Hardware:
    """A preset name, a TOML path, or a :class:`Hardware` (returned unchanged)."""
    if isinstance(source, Hardware):
        return source
    if (_preset_dir() / f"{source}.toml").is_file():
        return _load_preset(str(source))  # shipped presets do not change: parse once
    data, label = _resolve(str(source))
    return hardware_from_dict(data, label)


@functools.lru_cache(maxsize=64)
def _load_preset(name: str) -> Hardware:
    data, label = _resolve(name)
    return hardware_from_dict(data, label)


def with_overrides(hardware: Hardware | str, overrides: dict) -> Hardware:
    """A validated copy of ``hardware`` with ``{"section.key": value}`` changed.

    A section the hardware lacks (say ``crossbar``) is created from its defaults
    when the class has them. ``{"name": ...}`` renames the copy.
    """
    hw = load_hardware(hardware)
    changes: dict[str, dict] = {}
    name = hw.name
    for dotted, value in overrides.items():
        if dotted == "name":
            name = str(value)
            continue
        section, _, key = str(dotted).partition(".")
        cls = _SECTIONS.get(section)
        if cls is None or not key:
            raise ValueError(f"override {dotted!r}: expected 'section.key' with section one of "
                             f"{', '.join(_SECTIONS)}")
        if key not in {f.name for f in fields(cls)}:
            raise ValueError(f"override {dotted!r}: [{section}] has no key {key!r}")
        changes.setdefault(section, {})[key] = value
    kwargs = {}
    for section, values in changes.items():
        current = getattr(hw, section)
        try:
            if current is None:
                kwargs[section] = _SECTIONS[section](**values)
            else:
                kwargs[section] = replace(current, **values)
        except TypeError:
            raise ValueError(f"override of [{section}]: the hardware has no [{section}] and "
                             f"{', '.join(values)} alone cannot make one") from None
    try:
        return replace(hw, name=name, **kwargs)
    except ValueError as exc:
        raise ValueError(f"{hw.name} with {overrides}: {exc}") from None
