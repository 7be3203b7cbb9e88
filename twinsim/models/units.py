"""Time units: every duration in twinsim carries one of these, converted in one place."""

from __future__ import annotations

from ..errors import ModelError

__all__ = ["TIME_UNITS", "time_factor"]

#: Length of each supported time unit in days (a month is 365.25 / 12 days).
TIME_UNITS: dict[str, float] = {
    "days": 1.0,
    "weeks": 7.0,
    "months": 365.25 / 12.0,
    "years": 365.25,
}


def time_factor(from_unit: str, to_unit: str) -> float:
    """Multiply a duration in ``from_unit`` by this factor to express it in ``to_unit``."""
    for unit in (from_unit, to_unit):
        if unit not in TIME_UNITS:
            raise ModelError(
                f"unknown time unit {unit!r}; use one of {', '.join(TIME_UNITS)}."
            )
    return TIME_UNITS[from_unit] / TIME_UNITS[to_unit]
