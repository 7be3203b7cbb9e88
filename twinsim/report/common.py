"""Small helpers shared by the report's tables, figures and document: table cells as text and
readable names of grid dimensions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _fmt(x: Any, digits: int = 4) -> str:
    """A table cell: integers as integers, other numbers with ``digits`` significant digits."""
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if float(x).is_integer() and abs(x) < 1e6:
            return str(int(x))
        return f"{x:.{digits}g}"
    return str(x)


def _dim_label(dim: str) -> str:
    """Readable name of a grid dimension (``designs.hybrid.real_control`` -> ``hybrid: real_control``)."""
    if dim == "hazard_ratio":
        return "hazard ratio"
    if dim == "mean_difference":
        return "mean difference"
    if dim == "drift":
        return "drift"
    parts = dim.split(".")
    if parts[0] == "designs" and len(parts) == 3:
        return f"{parts[1]}: {parts[2]}"
    return dim


def _affects(dim: str, design: str) -> bool:
    """Whether grid dimension ``dim`` can change the results of ``design``."""
    parts = dim.split(".")
    return not (parts[0] == "designs" and len(parts) == 3 and parts[1] != design)


def _reference_design(result) -> str | None:
    names = [d.name for d in result.scenario.designs]
    return "rct" if "rct" in names else None
