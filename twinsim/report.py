"""Report: a run's summary and model -> figures, ``report.md`` and a self-contained ``report.html``.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and
rendered twice, so the Markdown and the HTML say the same thing: the Markdown refers to
``figures/*.png``; the HTML embeds the same PNGs as base64 data URIs and carries inline
CSS only (no JavaScript, no external assets), so it can be mailed or archived as one file.

Figures use :class:`matplotlib.figure.Figure` objects, never pyplot state, so nothing
global leaks from library code.  The ``plot_*`` functions follow lifelines' convention
``plot_xxx(..., ax=None) -> ax``: with ``ax=None`` they draw on a new Figure (not
registered with pyplot; display ``ax.figure`` in a notebook).

Event convention: ``event`` is 1 = event observed, 0 = right censored (as everywhere in
twinsim).  Times on the figures are in ``scenario.trial.time_unit``.
"""

from __future__ import annotations

import base64
import html
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger("twinsim.report")

__all__ = [
    "write_report",
    "plot_km_predictive",
    "plot_control_survival",
    "plot_rejection",
    "rejection_figure",
    "type_i_error_table",
    "power_table",
    "bias_table",
    "format_table",
]

#: Okabe & Ito (2008) colour-blind-safe palette (black last: used for references).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", ":", "-."]
DPI = 120
#: Folder of the PNGs inside the output folder (the Markdown refers to it relatively).
FIGURES = "figures"
#: How many Monte Carlo standard errors above alpha make a type I error "inflated".
INFLATION_MCSE = 3.0
#: Predictive cohorts drawn for the Kaplan-Meier figure.
KM_COHORTS = 200

_METRICS = ["replicates", "rejection_rate", "mcse", "mean_estimate", "bias", "rmse", "coverage"]


# --------------------------------------------------------------------------- small helpers


def _new_ax(ax, figsize=(6.4, 4.2)):
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    return fig.add_subplot()


def _style(ax) -> None:
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


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


def _sweep_dims(result) -> list[str]:
    return [d for d in result.grid.dims if d not in ("hazard_ratio", "drift")]


def _reference_design(result) -> str | None:
    names = [d.name for d in result.scenario.designs]
    return "rct" if "rct" in names else None


# --------------------------------------------------------------------------- tables


def _collapse_untouched(frame: pd.DataFrame, dims: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Drop the repeats of a design across a sweep dimension that does not touch it.

    A sweep of ``designs.B.x`` leaves design A's results unchanged (its rows repeat);
    such a dimension is shown as ``any`` for A when the rows are indeed identical.
    """
    out = frame.copy()
    for dim in dims:
        if dim in ("hazard_ratio", "drift"):
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
                       *, null: float = 1.0) -> pd.DataFrame:
    """Rejection rates at the null hazard ratio, with the inflation flag.

    Parameters
    ----------
    summary : DataFrame
        The summary.csv table (``design``, the grid dimensions, ``replicates``,
        ``rejection_rate``, ``mcse`` and optionally ``alpha``; 0.05 when absent).
    dims : sequence of str
        Grid dimensions present as columns of ``summary``.
    null : float
        The null hazard ratio (1: no treatment effect).

    Returns
    -------
    DataFrame with the rows at ``hazard_ratio == null`` and columns ``design``, the
    other dimensions, ``alpha``, ``replicates``, ``rejection_rate``, ``mcse``,
    ``threshold`` = alpha + 3 sqrt(alpha (1 - alpha) / R) (the Monte Carlo error
    computed at alpha, not at the estimate) and ``inflated`` (rejection rate above it).
    """
    rows = summary[np.isclose(summary["hazard_ratio"].astype(float), null)] if "hazard_ratio" in summary else summary
    rows = rows.copy()
    if "alpha" not in rows:
        rows["alpha"] = 0.05
    a, r = rows["alpha"].astype(float), rows["replicates"].astype(float)
    rows["threshold"] = a + INFLATION_MCSE * np.sqrt(a * (1 - a) / r)
    rows["inflated"] = rows["rejection_rate"] > rows["threshold"]
    other = [d for d in dims if d != "hazard_ratio" and d in rows]
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


def power_table(result, *, null: float = 1.0) -> pd.DataFrame:
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
    rows = s[~np.isclose(s["hazard_ratio"].astype(float), null)].copy()
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


# --------------------------------------------------------------------------- figures


def _observed_in_trial_units(result):
    from .models import time_factor

    post = result.posterior
    factor = time_factor(post.time_unit, result.scenario.trial.time_unit)
    return np.asarray(post.observed_time, float) * factor, np.asarray(post.observed_event).astype(int)


def plot_km_predictive(result, ax=None, *, cohorts: int = KM_COHORTS, n_grid: int = 200):
    """Kaplan-Meier of the historical data against posterior predictive Kaplan-Meier curves.

    The historical KM is drawn as a step line with its 95% pointwise confidence band
    (Greenwood, log(-log) limits: :func:`twinsim.analysis.kaplan_meier`).  The predictive
    curves are the KM of ``cohorts`` replicated cohorts of the historical size, each from one
    posterior draw (:func:`twinsim.simulate.predictive_km`, key
    ``fold_in(key(seed), KEY_REPORT)``); their pointwise median and 2.5-97.5% band are shown.

    Parameters
    ----------
    result : RunResult with a posterior (``result.posterior`` not None)
    ax : matplotlib Axes, optional
    cohorts : int, number of predictive cohorts
    n_grid : int, points of the time grid from 0 to the last observed time

    Returns
    -------
    matplotlib Axes (times in ``scenario.trial.time_unit``)
    """
    import jax

    from .analysis import kaplan_meier
    from .simulate import KEY_REPORT, predictive_km

    if result.posterior is None:
        raise ValueError(
            "plot_km_predictive needs a fitted posterior, and this run used an assumed control "
            "distribution (scenario `control:`); use plot_control_survival(result) instead."
        )
    post = result.posterior
    unit = result.scenario.trial.time_unit
    time, event = _observed_in_trial_units(result)
    grid = np.linspace(0.0, float(time.max()), n_grid)
    key = jax.random.fold_in(jax.random.key(result.scenario.seed), KEY_REPORT)
    curves = np.asarray(predictive_km(key, result.model, grid, n=int(time.shape[0]), cohorts=cohorts))
    lo, med, hi = np.quantile(curves, [0.025, 0.5, 0.975], axis=0)

    ax = _new_ax(ax)
    c_pred, c_km = PALETTE[0], "#000000"
    ax.fill_between(grid, lo, hi, color=c_pred, alpha=0.25, linewidth=0,
                    label=f"posterior predictive 95% band ({cohorts} cohorts)")
    ax.plot(grid, med, color=c_pred, linewidth=2.0, label="posterior predictive median")
    km = kaplan_meier(time, event)
    t = km.index.to_numpy(float)
    ax.fill_between(t, km["lower"], km["upper"], step="post", color=PALETTE[1], alpha=0.3, linewidth=0,
                    label="Kaplan-Meier 95% CI")
    ax.step(t, km["survival"], where="post", color=c_km, linewidth=1.6,
            label=f"historical Kaplan-Meier (n = {time.shape[0]}, {int(event.sum())} events)")
    cens = event == 0
    if cens.any():
        s_at = km["survival"].to_numpy()[np.searchsorted(t, time[cens], side="right") - 1]
        ax.plot(time[cens], s_at, linestyle="none", marker="|", markersize=5, color=c_km, alpha=0.5,
                label="censored")
    ax.set_xlim(0.0, float(time.max()))
    ax.set_ylim(max(0.0, min(float(km["lower"].min()), float(lo.min())) - 0.05), 1.01)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("survival probability")
    source = post.provenance.get("data_source") or "historical data"
    ax.set_title(f"{post.outcome} PH model vs {source}", fontsize="medium")
    ax.legend(loc="lower left", fontsize="small", frameon=False)
    _style(ax)
    return ax


def _control_horizon(result) -> float:
    s = result.summary
    if "mean_cut_time" in s:
        cut = s["mean_cut_time"].to_numpy(float)
        cut = cut[np.isfinite(cut)]
        if cut.size:
            return float(cut.max()) * 1.2
    tr = result.scenario.trial
    if tr.cut.time is not None:
        return float(tr.cut.time)
    scale = math.exp(result.scenario.control.log_scale)
    return 3.0 * scale


def plot_control_survival(result, ax=None, *, n_grid: int = 200):
    """Survival curves of an assumed control distribution (planning without data).

    Draws the assumed control, the concurrent control under each drift (hazard x drift)
    and the treatment arm under each non-null hazard ratio (hazard x HR, at no drift), from
    0 to 1.2 x the longest mean analysis time.  These are model curves: no uncertainty.

    Returns
    -------
    matplotlib Axes (times in ``scenario.trial.time_unit``)
    """
    sc = result.scenario
    if sc.control is None:
        raise ValueError("plot_control_survival needs a scenario with `control:`; use plot_km_predictive(result).")
    ctl = sc.control
    t = np.linspace(0.0, _control_horizon(result), n_grid)
    k = math.exp(ctl.log_shape)

    def surv(mult):
        return np.exp(-mult * (t / math.exp(ctl.log_scale)) ** k)

    ax = _new_ax(ax)
    desc = f"{ctl.distribution}" + (f", median {ctl.median:g}" if ctl.median is not None else f", scale {ctl.scale:g}")
    if ctl.distribution == "weibull":
        desc += f", shape {k:g}"
    ax.plot(t, surv(1.0), color="#000000", linewidth=2.0, label=f"assumed control ({desc})")
    i = 0
    for dr in result.grid.dims["drift"]:
        if dr != 1.0:
            ax.plot(t, surv(dr), color=PALETTE[i % 7], linestyle="--", linewidth=1.6,
                    label=f"concurrent control, drift {dr:g}")
            i += 1
    for hr in result.grid.dims["hazard_ratio"]:
        if hr != 1.0:
            ax.plot(t, surv(hr), color=PALETTE[i % 7], linewidth=1.6, label=f"treatment, HR {hr:g}")
            i += 1
    ax.set_xlim(0.0, float(t[-1]))
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel(f"time ({sc.trial.time_unit})")
    ax.set_ylabel("survival probability")
    ax.set_title(f"assumed survival curves ({sc.name})", fontsize="medium")
    ax.legend(loc="upper right", fontsize="small", frameon=False)
    _style(ax)
    return ax


def _layout(result) -> tuple[str, list[str]]:
    """x dimension of the rejection plot and the dimensions that split lines."""
    sweeps = _sweep_dims(result)
    if sweeps:
        return sweeps[0], sweeps[1:]
    return "hazard_ratio", []


def plot_rejection(result, ax=None, *, drift: float | None = None, hazard_ratio: float | None = None):
    """One panel of rejection rates: one line per design, error bars +-1.96 MCSE.

    Without sweep dimensions the x axis is the hazard ratio (type I error at HR = 1, power
    elsewhere); with sweeps it is the first sweep dimension at one ``hazard_ratio`` (further
    sweep dimensions split the lines by line style).  The dashed line is alpha.

    Parameters
    ----------
    result : RunResult
    ax : matplotlib Axes, optional
    drift : float, optional
        Drift value of the panel (default: the first of the grid).
    hazard_ratio : float, optional
        Hazard ratio of the panel when the x axis is a sweep (default: the first).

    Returns
    -------
    matplotlib Axes
    """
    s = result.summary
    dims = result.grid.dims
    xdim, split = _layout(result)
    drift = dims["drift"][0] if drift is None else drift
    sel = np.isclose(s["drift"].astype(float), drift)
    if xdim != "hazard_ratio":
        hazard_ratio = dims["hazard_ratio"][0] if hazard_ratio is None else hazard_ratio
        sel &= np.isclose(s["hazard_ratio"].astype(float), hazard_ratio)
    panel = s[sel]
    ax = _new_ax(ax)
    designs = [d.name for d in result.scenario.designs]
    xs = np.asarray(sorted(dims[xdim]), float)
    span = (xs.max() - xs.min()) if xs.size > 1 else 1.0
    combos = [()] if not split else list(panel[split].drop_duplicates().itertuples(index=False, name=None))
    n_lines = len(designs) * len(combos)
    j = 0
    for i, name in enumerate(designs):
        for c, combo in enumerate(combos):
            rows = panel[panel["design"] == name]
            for d, v in zip(split, combo):
                rows = rows[np.isclose(rows[d].astype(float), v)]
            rows = rows.sort_values(xdim)
            if rows.empty:
                continue
            x = rows[xdim].to_numpy(float)
            # dodge so error bars of different lines do not overlap
            x = x + (j - (n_lines - 1) / 2) * 0.012 * span
            j += 1
            label = name
            if xdim != "hazard_ratio" and not _affects(xdim, name):
                label += " (not varied)"
            if split:
                label += ", " + ", ".join(f"{_dim_label(d)} {v:g}" for d, v in zip(split, combo))
            ax.errorbar(x, rows["rejection_rate"], yerr=1.96 * rows["mcse"], color=PALETTE[i % 7],
                        marker=MARKERS[i % len(MARKERS)], linestyle=LINESTYLES[c % len(LINESTYLES)],
                        linewidth=1.6, markersize=5, capsize=3, label=label)
    alphas = np.unique(panel["alpha"].to_numpy(float)) if "alpha" in panel else np.array([0.05])
    power_panel = xdim != "hazard_ratio" and not math.isclose(hazard_ratio, 1.0)
    if power_panel:
        pass  # alpha is a type I error reference; on a 0-1 power scale it only adds clutter
    elif alphas.size == 1:
        ax.axhline(alphas[0], color="#555555", linestyle="--", linewidth=1.0, label=f"alpha = {alphas[0]:g}")
    else:  # alpha itself is swept: draw it against x
        a = panel.groupby(xdim)["alpha"].first()
        ax.plot(a.index.to_numpy(float), a.to_numpy(float), color="#555555", linestyle="--", linewidth=1.0, label="alpha")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{v:g}" for v in xs])
    ax.set_xlabel(_dim_label(xdim))
    if xdim == "hazard_ratio":
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("rejection rate\n(type I error at HR = 1, power otherwise)")
        ax.set_title(f"drift {drift:g}", fontsize="medium")
    elif math.isclose(hazard_ratio, 1.0):
        top = float((panel["rejection_rate"] + 1.96 * panel["mcse"]).max()) if len(panel) else 0.0
        ax.set_ylim(0.0, max(2.5 * float(alphas.max()), top * 1.1))
        ax.set_ylabel("type I error")
        ax.set_title(f"HR = 1 (type I error), drift {drift:g}", fontsize="medium")
    else:
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("power")
        ax.set_title(f"HR = {hazard_ratio:g} (power), drift {drift:g}", fontsize="medium")
    _style(ax)
    return ax


def rejection_figure(result):
    """All panels of rejection rates as one :class:`matplotlib.figure.Figure`.

    Without sweeps: one panel per drift value, x = hazard ratio.  With sweeps: rows are the
    hazard ratios (the HR = 1 row is type I error on its own y scale, other rows power),
    columns the drift values, x the first sweep dimension.  One legend for the figure.
    """
    from matplotlib.figure import Figure

    dims = result.grid.dims
    xdim, _ = _layout(result)
    drifts = list(dims["drift"])
    hrs = [None] if xdim == "hazard_ratio" else sorted(dims["hazard_ratio"], key=lambda h: (h != 1.0, -h))
    nrow, ncol = len(hrs), len(drifts)
    width = min(4.4, 16.0 / ncol)
    fig = Figure(figsize=(max(6.4, 0.6 + width * ncol), 0.9 + 3.3 * nrow), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False, sharex=True)
    for r, hr in enumerate(hrs):
        for c, dr in enumerate(drifts):
            ax = plot_rejection(result, axes[r, c], drift=dr, hazard_ratio=hr)
            if c > 0:
                ax.set_ylabel("")
            if r < nrow - 1:
                ax.set_xlabel("")
        # one y scale per row, so drift columns compare at a glance
        top = max(a.get_ylim()[1] for a in axes[r])
        for a in axes[r]:
            a.set_ylim(0.0, top)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    # designs first, the alpha reference last
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("alpha"))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), frameon=False, fontsize="small")
    if xdim != "hazard_ratio":
        fig.suptitle("rejection rate (type I error at HR = 1, power otherwise); bars: \u00b11.96 MCSE", fontsize="medium")
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    log.info("wrote %s", path)
    return path


# --------------------------------------------------------------------------- document


@dataclass
class _Block:
    kind: str          # "h1", "h2", "p", "list" (items split on newlines), "table", "figure"
    text: str = ""
    table: pd.DataFrame | None = None
    path: str = ""     # relative path of a figure


_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline_html(text: str) -> str:
    out = html.escape(text, quote=False)
    out = _INLINE_CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _to_markdown(blocks: list[_Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        if b.kind == "h1":
            lines += [f"# {b.text}", ""]
        elif b.kind == "h2":
            lines += [f"## {b.text}", ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "list":
            lines += [f"- {item}" for item in b.text.split("\n")] + [""]
        elif b.kind == "table":
            t = b.table
            lines.append("| " + " | ".join(_md_cell(c) for c in t.columns) + " |")
            lines.append("|" + "|".join("---:" if c not in ("design", "inflated") else ":---" for c in t.columns) + "|")
            for row in t.itertuples(index=False):
                lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
            lines.append("")
        elif b.kind == "figure":
            lines += [f"![{b.text}]({b.path})", "", f"*{b.text}*", ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: .15em; }
table { border-collapse: collapse; margin: .8em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f0f4f8; }
td.text { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
td.flag { color: #b00020; font-weight: bold; text-align: left; }
code { background: #f4f4f4; padding: 0 .25em; border-radius: 3px; font-size: 0.95em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; margin-top: .3em; }
.tablewrap { overflow-x: auto; }
"""


def _to_html(blocks: list[_Block], title: str, base: Path) -> str:
    body: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{_inline_html(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "list":
            items = "".join(f"<li>{_inline_html(i)}</li>" for i in b.text.split("\n"))
            body.append(f"<ul>{items}</ul>")
        elif b.kind == "table":
            t = b.table
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t.columns)
            rows = []
            for row in t.itertuples(index=False):
                cells = []
                for c, v in zip(t.columns, row):
                    cls = ' class="flag"' if (c == "inflated" and v == "inflated") else (
                        ' class="text"' if c in ("design", "inflated") else "")
                    cells.append(f"<td{cls}>{html.escape(str(v))}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            body.append(f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
        elif b.kind == "figure":
            data = base64.b64encode((base / b.path).read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline_html(b.text)}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _provenance_items(result) -> list[str]:
    p = result.provenance or {}
    items = []
    if p.get("created"):
        items.append(f"Created: {p['created']}")
    v = p.get("versions") or {}
    if v:
        items.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    items.append(f"Seed: {result.scenario.seed}; replicates per grid point: {result.scenario.replicates}")
    if p.get("scenario_sha256"):
        items.append(f"Scenario SHA-256: `{p['scenario_sha256']}`")
    m = p.get("model") or {}
    if "control" in m:
        c = m["control"]
        items.append("Control model: assumed " + ", ".join(f"{k} {val}" for k, val in c.items()) + " (no data, no fit)")
    else:
        if m.get("outcome"):
            cov = ", ".join(m.get("covariates") or []) or "none"
            items.append(f"Model: {m['outcome']} proportional hazards; covariates: {cov}")
        if m.get("data_source"):
            items.append(f"Data: {m['data_source']}, n = {m.get('n')}, events = {m.get('n_events')}")
        if m.get("data_hash"):
            items.append(f"Data SHA-256: `{m['data_hash']}`")
        inf = m.get("inference") or {}
        if inf:
            items.append(
                f"Inference: {inf.get('method', 'nuts')}, {inf.get('chains')} chains x {inf.get('draws')} draws "
                f"after {inf.get('warmup')} warmup (target_accept {inf.get('target_accept')})"
            )
        d = m.get("diagnostics")
        if d:
            items.append(
                f"Diagnostics: max R-hat {_fmt(d.get('max_r_hat'))}, min bulk ESS {_fmt(d.get('min_ess_bulk'), 3)}, "
                f"min tail ESS {_fmt(d.get('min_ess_tail'), 3)}, divergences {d.get('divergences')}"
            )
    return items


def _conditions(row: pd.Series, dims: Sequence[str]) -> str:
    parts = []
    for d in dims:
        if d in row and row[d] != "any":
            parts.append(f"{_dim_label(d)} {_fmt(row[d])}")
    return ", ".join(parts)


def _build(result, figures: dict[str, str]) -> list[_Block]:
    sc = result.scenario
    s = result.summary
    dims = list(result.grid.dims)
    an = sc.analysis
    sides = "two-sided" if an.alternative == "two-sided" else "one-sided (HR < 1)"
    ref = _reference_design(result)
    unit = sc.trial.time_unit
    drifts = [float(v) for v in result.grid.dims.get("drift", (1.0,))]
    B: list[_Block] = [_Block("h1", f"twinsim report: {sc.name}")]
    if sc.description.strip():
        B.append(_Block("p", " ".join(sc.description.split())))
    B.append(_Block(
        "p",
        f"Reproduce: `twinsim run scenario.yaml --seed {sc.seed} --replicates {sc.replicates}` "
        "(`scenario.yaml` is the resolved scenario saved beside this report).",
    ))
    grid_txt = "; ".join(f"{_dim_label(k)}: {', '.join(_fmt(v) for v in vals)}" for k, vals in result.grid.dims.items())
    B.append(_Block(
        "p",
        f"Designs: {', '.join(d.name for d in sc.designs)}. Grid: {grid_txt}. "
        f"Test: {an.test}, {sides}, alpha = {_fmt(an.alpha)}; {sc.replicates} simulated trials per design and grid point.",
    ))
    B.append(_Block("h2", "Provenance"))
    B.append(_Block("list", "\n".join(_provenance_items(result))))
    diag = ((result.provenance or {}).get("model") or {}).get("diagnostics")
    def _num(x, default):
        try:
            x = float(x)
        except (TypeError, ValueError):
            return default
        return default if math.isnan(x) else x

    if diag and (_num(diag.get("max_r_hat"), 1.0) > 1.01 or _num(diag.get("divergences"), 0) > 0):
        B.append(_Block(
            "p",
            "**Check the fit:** R-hat above 1.01 or divergent transitions mean the posterior, and every "
            "synthetic control drawn from it, may be unreliable; increase `model.inference.warmup` and `draws`.",
        ))

    # ---- the generative model
    if "km_predictive" in figures:
        B.append(_Block("h2", "Model check"))
        B.append(_Block(
            "figure",
            f"Historical Kaplan-Meier (black step line; orange band: 95% pointwise confidence interval, Greenwood with "
            f"log(-log) limits; ticks: censored) against the posterior predictive: Kaplan-Meier curves of {KM_COHORTS} "
            f"replicated cohorts of the historical size, each from one posterior draw (blue line: pointwise median; "
            f"blue band: pointwise 2.5-97.5% range, which carries parameter uncertainty and sampling variation). "
            f"Time in {unit}.",
            path=figures["km_predictive"],
        ))
    if "control_survival" in figures:
        B.append(_Block("h2", "Assumed survival"))
        B.append(_Block(
            "figure",
            "Assumed survival curves (planning without data): the control distribution of the scenario"
            + (", the concurrent control under each drift" if any(d != 1.0 for d in drifts) else "")
            + f" and the treatment arm under each non-null hazard ratio. Model curves, no uncertainty. Time in {unit}.",
            path=figures["control_survival"],
        ))

    # ---- type I error
    B.append(_Block("h2", "Type I error"))
    null_txt = ("Type I error is the rejection rate at the null of no treatment effect (true hazard ratio 1 "
                "between treatment and the concurrent control)")
    if any(d != 1.0 for d in drifts):
        null_txt += ", under each drift of the concurrent controls from the historical population"
    B.append(_Block(
        "p",
        null_txt + ". MCSE is the binomial Monte Carlo standard error sqrt(p(1 - p)/R). A row is flagged "
        "**inflated** when its rate exceeds the threshold alpha + 3 sqrt(alpha(1 - alpha)/R), three Monte Carlo "
        "standard errors computed at alpha.",
    ))
    if "hazard_ratio" in s and np.isclose(s["hazard_ratio"].astype(float), 1.0).any():
        t1 = type_i_error_table(s, dims)
        other = [d for d in dims if d != "hazard_ratio"]
        t1 = _collapse_untouched(t1, other, ["rejection_rate", "mcse"])
        B.append(_Block("table", table=format_table(t1).rename(columns=lambda c: _dim_label(c) if c in other else c)))
        bad = t1[t1["inflated"]]
        if len(bad):
            where = "; ".join(f"{r.design} ({_conditions(r, other)}): {_fmt(r.rejection_rate)}" for _, r in bad.iterrows())
            B.append(_Block("p", f"**Inflated type I error** (above alpha + 3 MCSE) for: {where}."))
        else:
            B.append(_Block("p", "No design's type I error exceeds alpha by more than three Monte Carlo standard errors."))
    else:
        B.append(_Block("p", "The grid has no hazard ratio 1, so type I error was not simulated; add 1.0 to `effect.hazard_ratio`."))

    # ---- power
    B.append(_Block("h2", "Power"))
    if "hazard_ratio" in s and (~np.isclose(s["hazard_ratio"].astype(float), 1.0)).any():
        pw = power_table(result)
        txt = ("Power is the rejection rate at the non-null hazard ratios (MCSE as above). Real patients are "
               "treatment + real (concurrent) controls")
        if result.posterior is not None:
            txt += "; synthetic controls are drawn from the posterior predictive"
        if ref is not None:
            txt += f"; real controls saved are counted against the design `{ref}` at the same grid point"
        B.append(_Block("p", txt + "."))
        pw = _collapse_untouched(pw, dims, [c for c in pw.columns if c not in ("design", *dims)])
        B.append(_Block("table", table=format_table(pw).rename(columns=lambda c: _dim_label(c) if c in dims else c)))
    else:
        B.append(_Block("p", "The grid has only the null hazard ratio, so power was not simulated."))

    xdim, _ = _layout(result)
    if xdim == "hazard_ratio":
        how = "x: hazard ratio, one panel per drift"
    else:
        how = (f"x: {_dim_label(xdim)}; rows: hazard ratio (HR = 1: type I error, with the dashed line at alpha; "
               "otherwise power); columns: drift. Designs the swept parameter does not touch are marked "
               "'not varied' and stay flat")
    B.append(_Block(
        "figure",
        f"Rejection rate by design ({how}). Points are Monte Carlo estimates from {sc.replicates} trials each; error "
        f"bars are \u00b11.96 MCSE (95% Monte Carlo intervals); points are shifted slightly sideways so that bars do "
        f"not overlap.",
        path=figures["rejection"],
    ))

    # ---- bias and coverage
    B.append(_Block("h2", "Bias and coverage"))
    level = 1 - an.alpha if an.alternative == "two-sided" else 1 - 2 * an.alpha
    covs = bool(result.posterior is not None and len(result.posterior.covariate_names))
    txt = (f"Mean estimate is the mean Cox hazard ratio; bias and RMSE are of the log hazard ratio; coverage is that "
           f"of the {_fmt(100 * level)}% Wald interval. Bias is measured against the conditional hazard ratio set "
           "in the scenario; with prognostic covariates an unadjusted Cox model targets the marginal hazard ratio, "
           "which lies closer to 1 (non-collapsibility), so compare designs with the `rct` row rather than with zero.")
    if not covs:
        txt += " (This model has no covariates, so here the two coincide.)"
    B.append(_Block("p", txt))
    bt = _collapse_untouched(bias_table(s, dims), dims, ["mean_estimate", "bias", "rmse", "coverage"])
    B.append(_Block("table", table=format_table(bt).rename(columns=lambda c: _dim_label(c) if c in dims else c)))

    # ---- full table
    B.append(_Block("h2", "Full summary"))
    B.append(_Block("p", "One row per design and grid point: the contents of `summary.csv`, to 4 significant digits."))
    B.append(_Block("table", table=format_table(s)))
    return B


def write_report(result, out_dir) -> list[Path]:
    """Write the figures, ``report.md`` and a self-contained ``report.html`` into ``out_dir``.

    Parameters
    ----------
    result : RunResult
    out_dir : path-like (created if missing)

    Returns
    -------
    list of Path: ``figures/km_predictive.png`` (with a posterior) or
    ``figures/control_survival.png`` (assumed control), ``figures/rejection.png``,
    ``report.md``, ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures: dict[str, str] = {}
    if result.posterior is not None:
        ax = plot_km_predictive(result)
        written.append(_save(ax.figure, out / FIGURES / "km_predictive.png"))
        figures["km_predictive"] = f"{FIGURES}/km_predictive.png"
    elif result.scenario.control is not None:
        ax = plot_control_survival(result)
        written.append(_save(ax.figure, out / FIGURES / "control_survival.png"))
        figures["control_survival"] = f"{FIGURES}/control_survival.png"
    written.append(_save(rejection_figure(result), out / FIGURES / "rejection.png"))
    figures["rejection"] = f"{FIGURES}/rejection.png"

    blocks = _build(result, figures)
    md = out / "report.md"
    md.write_text(_to_markdown(blocks), encoding="utf-8")
    page = out / "report.html"
    page.write_text(_to_html(blocks, f"twinsim report: {result.scenario.name}", out), encoding="utf-8")
    written += [md, page]
    log.info("wrote %s and %s", md, page)
    return written
