"""Report figures: a run -> Kaplan-Meier, assumed-survival and rejection-rate figures.

Figures use :class:`matplotlib.figure.Figure` objects, never pyplot state, so nothing
global leaks from library code.  The ``plot_*`` functions follow lifelines' convention
``plot_xxx(..., ax=None) -> ax``: with ``ax=None`` they draw on a new Figure (not
registered with pyplot; display ``ax.figure`` in a notebook).

Event convention: ``event`` is 1 = event observed, 0 = right censored (as everywhere in
twinsim).  Times on the figures are in ``scenario.trial.time_unit``.
"""

from __future__ import annotations

import logging
import math
import re
import textwrap
from pathlib import Path

import numpy as np

from .common import _affects, _dim_label

log = logging.getLogger("twinsim.report")

#: Okabe & Ito (2008) colour-blind-safe palette (black last: used for references).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", ":", "-."]
DPI = 120
#: Predictive cohorts drawn for the Kaplan-Meier figure.
KM_COHORTS = 200


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


def _observed_in_trial_units(result):
    from ..models import time_factor

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

    from ..analysis import kaplan_meier
    from ..simulate import KEY_REPORT, predictive_km

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
    source = re.sub(r"(?:[\w.~-]*/)+([\w.-]+)", r"\1", post.provenance.get("data_source") or "historical data")
    model = post.outcome + (f" + {post.joint['biomarker']} joint" if getattr(post, "joint", None) else "")
    ax.set_title(textwrap.fill(f"{model} model vs {source}", 70), fontsize="medium")
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

    def surv(mult):  # the model's own PH survival function (twinsim.models.survival)
        from ..models import survival

        with np.errstate(divide="ignore"):  # log(0) at t = 0 gives S = 1, as it should
            return np.asarray(survival(t, ctl.log_scale, ctl.log_shape, math.log(mult)))

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


def _effect(result) -> tuple[str, float, str]:
    """The effect's grid dimension, its null value and its short label (``HR`` or ``difference``)."""
    sc = result.scenario
    dim = getattr(sc, "effect_dim", "hazard_ratio")
    return dim, (0.0 if dim == "mean_difference" else 1.0), ("difference" if dim == "mean_difference" else "HR")


def _sweep_dims(result) -> list[str]:
    return [d for d in result.grid.dims if d not in ("hazard_ratio", "mean_difference", "drift")]


def _layout(result) -> tuple[str, list[str]]:
    """x dimension of the rejection plot and the dimensions that split lines."""
    sweeps = _sweep_dims(result)
    if sweeps:
        return sweeps[0], sweeps[1:]
    return _effect(result)[0], []


def plot_rejection(result, ax=None, *, drift: float | None = None, hazard_ratio: float | None = None):
    """One panel of rejection rates: one line per design, error bars +-1.96 MCSE.

    Without sweep dimensions the x axis is the effect (the hazard ratio: type I error at
    HR = 1, power elsewhere; for a continuous endpoint the mean difference, null 0); with
    sweeps it is the first sweep dimension at one effect value (further sweep dimensions
    split the lines by line style).  The dashed line is alpha.

    Parameters
    ----------
    result : RunResult
    ax : matplotlib Axes, optional
    drift : float, optional
        Drift value of the panel (default: the first of the grid).
    hazard_ratio : float, optional
        Effect value of the panel when the x axis is a sweep (default: the first): a hazard
        ratio, or a mean difference for a continuous endpoint.

    Returns
    -------
    matplotlib Axes
    """
    s = result.summary
    dims = result.grid.dims
    xdim, split = _layout(result)
    eff, null, short = _effect(result)
    drift = dims["drift"][0] if drift is None else drift
    sel = np.isclose(s["drift"].astype(float), drift)
    if xdim != eff:
        hazard_ratio = dims[eff][0] if hazard_ratio is None else hazard_ratio
        sel &= np.isclose(s[eff].astype(float), hazard_ratio)
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
            if xdim != eff and not _affects(xdim, name):
                label += " (not varied)"
            if split:
                label += ", " + ", ".join(f"{_dim_label(d)} {v:g}" for d, v in zip(split, combo))
            ax.errorbar(x, rows["rejection_rate"], yerr=1.96 * rows["mcse"], color=PALETTE[i % 7],
                        marker=MARKERS[i % len(MARKERS)], linestyle=LINESTYLES[c % len(LINESTYLES)],
                        linewidth=1.6, markersize=5, capsize=3, label=label)
    alphas = np.unique(panel["alpha"].to_numpy(float)) if "alpha" in panel else np.array([0.05])
    power_panel = xdim != eff and not math.isclose(hazard_ratio, null)
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
    if xdim == eff:
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel(f"rejection rate\n(type I error at {short} = {null:g}, power otherwise)")
        ax.set_title(f"drift {drift:g}" if eff == "hazard_ratio" else "", fontsize="medium")
    elif math.isclose(hazard_ratio, null):
        top = float((panel["rejection_rate"] + 1.96 * panel["mcse"]).max()) if len(panel) else 0.0
        ax.set_ylim(0.0, max(2.5 * float(alphas.max()), top * 1.1))
        ax.set_ylabel("type I error")
        ax.set_title(f"{short} = {null:g} (type I error)" + (f", drift {drift:g}" if eff == "hazard_ratio" else ""),
                     fontsize="medium")
    else:
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("power")
        ax.set_title(f"{short} = {hazard_ratio:g} (power)" + (f", drift {drift:g}" if eff == "hazard_ratio" else ""),
                     fontsize="medium")
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
    eff, null, short = _effect(result)
    drifts = list(dims["drift"])
    hrs = [None] if xdim == eff else sorted(dims[eff], key=lambda h: (h != null, -abs(h - null)))
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
    if xdim != eff:
        fig.suptitle(f"rejection rate (type I error at {short} = {null:g}, power otherwise); bars: \u00b11.96 MCSE",
                     fontsize="medium")
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    log.info("wrote %s", path)
    return path
