"""Report tables: a run's summary -> type I error, power and bias tables, and every cell as text.

The tables are plain :class:`pandas.DataFrame` objects; :mod:`twinsim.report.document`
renders them as Markdown and HTML.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .common import _affects, _fmt, _reference_design

#: How many Monte Carlo standard errors above alpha make a type I error "inflated".
INFLATION_MCSE = 3.0

_METRICS = ["replicates", "rejection_rate", "mcse", "mean_estimate", "bias", "rmse", "coverage"]


def _collapse_untouched(frame: pd.DataFrame, dims: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Drop the repeats of a design across a sweep dimension that does not touch it.

    A sweep of ``designs.B.x`` leaves design A's results unchanged (its rows repeat);
    such a dimension is shown as ``any`` for A when the rows are indeed identical.
    """
    out = frame.copy()
    for dim in dims:
        if dim in ("hazard_ratio", "mean_difference", "drift"):
            continue
        parts = []
        for design, rows in out.groupby("design", sort=False):
            if _affects(dim, design):
                parts.append(rows)
                continue
            others = [d for d in dims if d != dim]
            key = [c for c in others if c in rows]
            groups = rows.groupby(key, sort=False, dropna=False) if key else [((), rows)]
            same = all(
                len(g[metrics].drop_duplicates()) <= 1 for _, g in groups
            )
            if same:
                first = rows.drop_duplicates(subset=key or None, keep="first").copy() if key else rows.iloc[:1].copy()
                first[dim] = "any"
                parts.append(first)
            else:
                parts.append(rows)
        out = pd.concat(parts, ignore_index=True)
    return out


def type_i_error_table(summary: pd.DataFrame, dims: Sequence[str] = ("hazard_ratio", "drift"),
                       *, null: float = 1.0, effect: str = "hazard_ratio") -> pd.DataFrame:
    """Rejection rates at the null hazard ratio, with the inflation flag.

    Parameters
    ----------
    summary : DataFrame
        The summary.csv table (``design``, the grid dimensions, ``replicates``,
        ``rejection_rate``, ``mcse`` and optionally ``alpha``; 0.05 when absent).
    dims : sequence of str
        Grid dimensions present as columns of ``summary``.
    null : float
        The null effect (hazard ratio 1, or mean difference 0: no treatment effect).
    effect : str
        The effect's column: ``hazard_ratio`` or ``mean_difference``.

    Returns
    -------
    DataFrame with the rows at ``hazard_ratio == null`` and columns ``design``, the
    other dimensions, ``alpha``, ``replicates``, ``rejection_rate``, ``mcse``,
    ``threshold`` = alpha + 3 sqrt(alpha (1 - alpha) / R) (the Monte Carlo error
    computed at alpha, not at the estimate) and ``inflated`` (rejection rate above it).
    """
    rows = summary[np.isclose(summary[effect].astype(float), null)] if effect in summary else summary
    rows = rows.copy()
    if "alpha" not in rows:
        rows["alpha"] = 0.05
    a, r = rows["alpha"].astype(float), rows["replicates"].astype(float)
    rows["threshold"] = a + INFLATION_MCSE * np.sqrt(a * (1 - a) / r)
    rows["inflated"] = rows["rejection_rate"] > rows["threshold"]
    other = [d for d in dims if d != effect and d in rows]
    return rows[["design", *other, "alpha", "replicates", "rejection_rate", "mcse", "threshold", "inflated"]].reset_index(drop=True)


def _design_sizes(result) -> pd.DataFrame:
    """Patients of every design at every grid point (from the resolved grid scenarios)."""
    dims = list(result.grid.dims)
    records = []
    for idx, sc in result.grid:
        values = {d: float(result.grid.dims[d][i]) for d, i in zip(dims, idx)}
        for d in sc.designs:
            n_t = d.treatment if d.treatment is not None else sc.trial.n_treatment
            n_syn = d.synthetic_control if d.method != "none" else 0
            records.append({"design": d.name, **values, "treatment": n_t, "real_control": d.real_control,
                            "synthetic_control": n_syn, "real_patients": n_t + d.real_control})
    return pd.DataFrame(records)


def power_table(result, *, null: float | None = None) -> pd.DataFrame:
    """Rejection rates away from the null, with patients per design.

    Returns
    -------
    DataFrame: ``design``, the grid dimensions, ``rejection_rate``, ``mcse``,
    ``real_patients`` (treatment + real control), ``synthetic_control`` and, when a design
    named ``rct`` exists, ``real_controls_saved`` (rct's real controls minus the design's at
    the same grid point).
    """
    dims = list(result.grid.dims)
    s = result.summary
    effect = getattr(result.scenario, "effect_dim", "hazard_ratio")
    null = getattr(result.scenario, "null_effect", 1.0) if null is None else null
    rows = s[~np.isclose(s[effect].astype(float), null)].copy()
    sizes = _design_sizes(result)
    for d in dims:
        rows[d] = rows[d].astype(float)
    rows = rows.merge(sizes, on=["design", *dims], how="left")
    cols = ["design", *dims, "rejection_rate", "mcse", "real_patients", "synthetic_control"]
    ref = _reference_design(result)
    if ref is not None:
        base = sizes[sizes["design"] == ref][[*dims, "real_control"]].rename(columns={"real_control": "_ref"})
        rows = rows.merge(base, on=dims, how="left")
        rows["real_controls_saved"] = rows["_ref"] - rows["real_control"]
        cols.append("real_controls_saved")
    return rows[cols].reset_index(drop=True)


def bias_table(summary: pd.DataFrame, dims: Sequence[str]) -> pd.DataFrame:
    """Estimation quality per design and grid point: mean HR, bias and RMSE of log HR, coverage."""
    cols = ["design", *[d for d in dims if d in summary], "mean_estimate", "bias", "rmse", "coverage"]
    return summary[cols].reset_index(drop=True)


def format_table(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Every cell as text (:func:`_fmt`); column names made readable for grid dimensions."""
    out = frame.copy().astype(object)
    for c in out.columns:
        if c == "inflated":
            out[c] = ["inflated" if v else "ok" for v in frame[c]]
        else:
            out[c] = [_fmt(v, digits) for v in frame[c]]
    return out
