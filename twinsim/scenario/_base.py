"""Shared pieces of the scenario schema: the frozen, extra-forbidding base section and
the time-unit and scalar types."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict

from ..models import TIME_UNITS

TimeUnit = Literal["days", "weeks", "months", "years"]
assert set(TimeUnit.__args__) == set(TIME_UNITS)  # keep the two lists in step
Scalar = Union[bool, int, float, str]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
