"""Figures of the validation checks that live beside their computations (the report assembles them).

:func:`plot_subgroups` draws :func:`twinsim.validate.subgroups.subgroup_summary`: per subgroup
level, the synthetic value against the holdout floor and tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from .subgroups import subgroup_summary

__all__ = ["plot_subgroups", "FLAG", "FLOOR"]

FLAG = "#CC3311"   # red (Paul Tol's vibrant scheme, colour-blind safe): flagged
FLOOR = "#9e9e9e"  # holdout floor + tolerance



_PANELS = {
    "share": ("share_gap", "share gap |share$_s$ − share$_t$|"),
    "abs_optimism": ("abs_optimism", "KM absolute optimism"),
    "smd": ("abs_smd", "|SMD|, worst covariate"),
    "detection_auc": ("detection_auc", "detection AUC"),
}


def plot_subgroups(report: pd.DataFrame, ax=None, *, panels=("share", "abs_optimism", "smd")):
    """Per subgroup level: the synthetic value (dot) against the holdout floor and tolerance (bar).

    Each panel is one headline of :func:`subgroup_summary`.  The grey bar runs from the holdout's
    value (the floor, tick) to floor + tolerance; a dot right of the bar is worse than the floor
    and drawn in red, as is the level's label, with the number of its flagged rows, when any of
    its rows (plotted or not) is flagged.
    Subgroups whose fidelity rows are ``"n/a"`` (too few patients) say so beside the label.

    Parameters
    ----------
    report : DataFrame from :func:`subgroup_report`
    ax : matplotlib Axes or sequence of Axes (one per panel), optional
        Default: a new Figure (not registered with pyplot) with one panel per entry of ``panels``.
    panels : sequence of ``"share"``, ``"abs_optimism"``, ``"smd"``, ``"detection_auc"``

    Returns
    -------
    ndarray of matplotlib Axes (one per panel); ``axes[0].figure`` is the Figure.
    """
    bad = [p for p in panels if p not in _PANELS]
    if bad or not panels:
        raise DataError(f"plot_subgroups: unknown panel(s) {bad}; choose from {list(_PANELS)}.")
    s = subgroup_summary(report)
    k = len(s)
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3.3 * len(panels) + 1.6, 0.34 * k + 1.5), dpi=120, layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
        if len(axes) != len(panels):
            raise DataError(f"plot_subgroups: received {len(axes)} Axes for {len(panels)} panels {list(panels)}.")
    y = np.arange(k)[::-1].astype(float)
    breaks = [j for j in range(1, k) if s["subgroup"].iat[j] != s["subgroup"].iat[j - 1]]
    for a, p in zip(axes, panels):
        key, title = _PANELS[p]
        v, fl, tol, worse = (s[key].to_numpy(float), s[f"{key}_floor"].to_numpy(float),
                             s[f"{key}_tolerance"].to_numpy(float), s[f"{key}_worse"].to_numpy(bool))
        a.barh(y, tol, left=fl, height=0.5, color=FLOOR, alpha=0.45, linewidth=0,
               label="holdout floor + tolerance")
        a.plot(fl, y, linestyle="none", marker="|", markersize=10, color="#555555", label="holdout floor")
        a.plot(v[~worse], y[~worse], "o", color="#000000", markersize=5, label="synthetic, within floor")
        a.plot(v[worse], y[worse], "o", color=FLAG, markersize=6, label="synthetic, worse than floor")
        for j in breaks:
            a.axhline(y[j] + 0.5, color="#cccccc", linewidth=0.8)
        a.set_title(title, fontsize="medium")
        a.set_xlim(left=0)
        a.grid(True, axis="x", color="#e5e5e5", linewidth=0.6)
        a.set_axisbelow(True)
        for side in ("top", "right"):
            a.spines[side].set_visible(False)
    labels = [lv + (f"  (n/a: n={r.n_train}/{r.n_holdout}/{r.n_synthetic})" if r.note else "")
              + (f"  [{r.rows_worse} flagged]" if r.rows_worse else "") for lv, r in zip(s.index, s.itertuples())]
    axes[0].set_yticks(y, labels)
    axes[0].set_ylim(-0.7, k - 0.3)
    for t, flagged in zip(axes[0].get_yticklabels(), s["flagged"]):
        t.set_color(FLAG if flagged else "#000000")
    handles, names = axes[0].get_legend_handles_labels()
    axes[0].figure.legend(handles, names, loc="outside lower center", ncol=4, fontsize="small", frameon=False)
    return axes
