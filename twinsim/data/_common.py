"""Helpers shared by the data modules: the logger and the pieces of error messages."""

from __future__ import annotations

import difflib
import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError

logger = logging.getLogger("twinsim.data")

SHOW = 8  # how many offending values / rows / columns an error message shows


def show(values: Sequence[Any], k: int = SHOW) -> str:
    """Comma-separated repr of the first ``k`` values, with a count of the rest."""
    values = list(values)
    text = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:k])
    return text + (f", ... ({len(values) - k} more)" if len(values) > k else "")


def unique(series: pd.Series) -> list:
    """The distinct non-missing values of ``series``, sorted where possible."""
    values = list(pd.unique(series.dropna()))
    try:
        return sorted(values)
    except TypeError:  # mixed types
        return values


def missing_column(where: str, name: Any, columns: Sequence[Any]) -> DataError:
    """The error for a column that does not exist, with a close match when there is one."""
    names = [str(c) for c in columns]
    lower = {n.lower(): n for n in names}
    match = [lower[str(name).lower()]] if str(name).lower() in lower else (
        difflib.get_close_matches(str(name), names, n=1, cutoff=0.6))
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    return DataError(
        f"{where}: column {name!r} is not in the data{hint}. Available columns: "
        f"{show(names, 40)}. Use one of these names (names are case-sensitive)."
    )
