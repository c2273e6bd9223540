"""Conversions shared by the report types."""

from __future__ import annotations


class ReportMixin:
    """``to_dict`` (JSON-ready, per-request arrays left out) and ``to_row`` (flat, for pandas)."""

    _ARRAY_FIELDS: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in self._ARRAY_FIELDS}
        out["energy_breakdown_pj"] = dict(self.energy_breakdown_pj)
        return out

    def to_row(self) -> dict:
        """Flat dict for a pandas row: breakdown keys become ``energy_<action>_pj``."""
        out = self.to_dict()
        for k, v in out.pop("energy_breakdown_pj").items():
            out[f"energy_{k}_pj"] = v
        return out
