"""Posterior predictive checks beside the observed data: covariate marginals and a biomarker by visit.

Two checks of the generative model's parts other than the survival curve (the Kaplan-Meier
check is :func:`twinsim.report.figures.plot_km_predictive`):

- **covariate marginals** (:func:`covariate_check`, :func:`plot_covariate_marginals`,
  :func:`covariate_check_table`): the historical covariates against ``cohorts`` synthetic
  cohorts of the historical size drawn from the covariate generator
  (:class:`twinsim.models.CovariateModel`).  The generator is a point estimate, so the bands
  are the sampling variation of such cohorts only (no parameter uncertainty);
- **biomarker by visit** (:func:`biomarker_check`, :func:`plot_biomarker_predictive`,
  :func:`biomarker_check_table`): the biomarker at each visit among patients still at risk,
  against replicated cohorts of the posterior predictive (arrays from
  :func:`twinsim.predictive.biomarker_ppc_arrays`).

Each plotted band is pointwise: at every x the 2.5% and 97.5% quantiles, over cohorts, of the
cohorts' empirical distribution functions (ECDFs).  Each table row is one statistic: observed
value, the cohorts' median and 2.5-97.5% range, and ``inside`` (observed within the range;
False when either is undefined).  Quantiles are computed alike for the observed data and every
cohort: NumPy's default (linear) for covariates, inverted CDF for the biomarker (the method
NumPy can weight).

Randomness: the report's key ``fold_in(jax.random.key(seed), KEY_REPORT)`` (``KEY_REPORT`` = 3,
:mod:`twinsim.simulate`) folded once more with :data:`KEY_COVARIATE_CHECK` or
:data:`KEY_BIOMARKER_CHECK` (:func:`check_key`).  Those constants are far above the cohort
indices ``0..cohorts-1`` that :func:`twinsim.simulate.predictive_km` folds into the same report
key, so the checks never reuse the Kaplan-Meier figure's random numbers.

No survival data are handled here (so no event convention applies); figures are
:class:`matplotlib.figure.Figure` objects, never pyplot state.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError
from .common import _fmt
from .figures import DPI, PALETTE, _style

__all__ = [
    "KEY_COVARIATE_CHECK",
    "KEY_BIOMARKER_CHECK",
    "CHECK_COHORTS",
    "BIOMARKER_COHORTS",
    "MAX_LEVELS",
    "check_key",
    "outside_rows",
    "ecdf",
    "pointwise_band",
    "covariate_check",
    "covariate_check_table",
    "plot_covariate_marginals",
    "biomarker_check",
    "biomarker_check_table",
    "plot_biomarker_predictive",
]

#: Folded into the report key for the covariate check (above any Kaplan-Meier cohort index).
KEY_COVARIATE_CHECK = 1_000_001
#: Folded into the report key for the biomarker check.
KEY_BIOMARKER_CHECK = 1_000_002
#: Synthetic cohorts of the covariate check (and default cohorts of the biomarker check).
CHECK_COHORTS = 100
#: Predictive cohorts the report asks of :func:`twinsim.predictive.biomarker_ppc_arrays`.
BIOMARKER_COHORTS = 200
#: Numeric columns with at most this many distinct observed values are checked level by level.
MAX_LEVELS = 10
#: Quantile probabilities of a band: lower limit, median, upper limit.
BAND = (0.025, 0.5, 0.975)

_OBSERVED, _SYNTH, _FLAG = "#000000", PALETTE[0], "#b00020"
_TABLE = ["statistic", "observed", "median", "2.5%", "97.5%", "inside"]


def check_key(seed: int, which: int):
    """``fold_in(fold_in(jax.random.key(seed), KEY_REPORT), which)``: the key of one check.

    Parameters
    ----------
    seed : int, the scenario's seed
    which : int, :data:`KEY_COVARIATE_CHECK` or :data:`KEY_BIOMARKER_CHECK`
    """
    import jax

    from ..simulate import KEY_REPORT

    return jax.random.fold_in(jax.random.fold_in(jax.random.key(int(seed)), KEY_REPORT), which)


# --------------------------------------------------------------------------- band arithmetic


def ecdf(values, grid) -> np.ndarray:
    """Empirical distribution functions, ignoring NaN, evaluated on a grid.

    Parameters
    ----------
    values : array (..., n), float; NaN = absent (missing, or not at risk)
    grid : array (G,), float

    Returns
    -------
    ndarray (..., G): share of the non-NaN values of each row that are <= each grid point;
    NaN for a row with no value.
    """
    v = np.asarray(values, float)
    grid = np.asarray(grid, float)
    rows = v.reshape(-1, v.shape[-1]) if v.ndim else v.reshape(1, 1)
    out = np.full((rows.shape[0], grid.size), np.nan)
    for i, row in enumerate(rows):
        row = np.sort(row[~np.isnan(row)])
        if row.size:
            out[i] = np.searchsorted(row, grid, side="right") / row.size
    return out.reshape(v.shape[:-1] + (grid.size,))


def pointwise_band(curves, probs=BAND) -> np.ndarray:
    """Pointwise quantiles over the first axis (cohorts), NaN cohorts left out.

    Parameters
    ----------
    curves : array (cohorts, ...)
    probs : quantile probabilities (default 2.5%, 50%, 97.5%)

    Returns
    -------
    ndarray (len(probs), ...); NaN where no cohort is defined.
    """
    c = np.asarray(curves, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as documented
        return np.nanquantile(c, list(probs), axis=0)


def _rows(prefix: dict, labels, observed, synthetic) -> list[dict]:
    """Table rows: one per statistic, ``synthetic`` (cohorts, s)."""
    lo, med, hi = pointwise_band(np.asarray(synthetic, float).reshape(len(synthetic), -1))
    obs = np.asarray(observed, float)
    inside = (obs >= lo) & (obs <= hi)  # False where anything is NaN
    return [{**prefix, "statistic": s, "observed": o, "median": m, "2.5%": a, "97.5%": b, "inside": bool(i)}
            for s, o, m, a, b, i in zip(labels, obs, med, lo, hi, inside)]


def outside_rows(table: pd.DataFrame, where: str) -> list[str]:
    """The rows of a check table whose ``inside`` is False, as text for the report.

    Parameters
    ----------
    table : a :func:`covariate_check_table` or :func:`biomarker_check_table`
    where : its first column, ``"covariate"`` or ``"visit"``

    Returns
    -------
    list of str, e.g. ``"age mean 41.2 (synthetic 95% range 35.1-36.0)"``.
    """
    out = []
    for _, r in table[~table["inside"].astype(bool)].iterrows():
        head = f"{r[where]}" if where == "covariate" else f"visit {_fmt(r[where])}"
        out.append(f"{head} {r['statistic']} {_fmt(r['observed'])} "
                   f"(95% range {_fmt(r['2.5%'])} to {_fmt(r['97.5%'])})")
    return out


def _grid_shape(p: int, max_cols: int = 4) -> tuple[int, int]:
    ncol = max(1, min(p, max_cols))
    return math.ceil(p / ncol), ncol


def _panels(n_panels: int, panel_w: float, panel_h: float):
    from matplotlib.figure import Figure

    nrow, ncol = _grid_shape(n_panels)
    fig = Figure(figsize=(max(6.4, panel_w * ncol), 1.0 + panel_h * nrow), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        fig.delaxes(ax)  # one axis per panel, none empty
    return fig, list(axes[:n_panels])


def _suptitle(fig, text: str) -> None:
    """A figure title wrapped to the figure's width (about 11 characters per inch at this size)."""
    import textwrap

    width = int(fig.get_figwidth() * 11)
    fig.suptitle("\n".join(textwrap.wrap(text, width)), fontsize="medium")


def _legend(fig, items) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for kind, label in items:
        if kind == "step":
            handles.append(Line2D([], [], color=_OBSERVED, linewidth=1.5, label=label))
        elif kind == "band":
            handles.append(Patch(color=_SYNTH, alpha=0.3, linewidth=0, label=label))
        elif kind == "point":
            handles.append(Line2D([], [], color=_OBSERVED, marker="o", linestyle="none", label=label))
        elif kind == "flag":
            handles.append(Line2D([], [], color=_FLAG, marker="o", linestyle="none", label=label))
        elif kind == "median":
            handles.append(Line2D([], [], color=_SYNTH, linewidth=1.2, linestyle="--", label=label))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)), frameon=False,
               fontsize="small")


def _ecdf_grid(observed: np.ndarray, synthetic: np.ndarray, points: int = 256) -> np.ndarray:
    """x grid of an ECDF panel: the observed values' range (widened to the synthetic 0.5-99.5%
    quantiles when those reach beyond), evenly spaced, plus every observed quantile at 1/256 steps."""
    obs = observed[~np.isnan(observed)]
    syn = synthetic[~np.isnan(synthetic)]
    ends = [obs.min(), obs.max()] if obs.size else []
    if syn.size:
        ends += list(np.quantile(syn, [0.005, 0.995]))
    if not ends:
        return np.zeros(1)
    a, b = float(min(ends)), float(max(ends))
    extra = np.quantile(obs, np.linspace(0, 1, points + 1)) if obs.size else np.zeros(0)
    return np.unique(np.concatenate([np.linspace(a, b, points + 1), extra]))


def _draw_ecdf(ax, observed, grid, band, *, median: bool = False, weights=None) -> None:
    lo, med, hi = band
    ax.fill_between(grid, lo, hi, step="post", color=_SYNTH, alpha=0.3, linewidth=0)
    if median:
        ax.step(grid, med, where="post", color=_SYNTH, linewidth=1.0, linestyle="--")
    keep = ~np.isnan(observed)
    w = np.ones(int(keep.sum())) if weights is None else np.asarray(weights, float)[keep]
    order = np.argsort(observed[keep], kind="stable")
    obs, w = observed[keep][order], w[order]
    if obs.size and w.sum() > 0:
        x = np.concatenate([[min(grid[0], obs[0])], obs, [max(grid[-1], obs[-1])]])
        y = np.concatenate([[0.0], np.cumsum(w) / w.sum(), [1.0]])
        ax.step(x, y, where="post", color=_OBSERVED, linewidth=1.5, label="observed ECDF")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(grid[0], grid[-1])
    _style(ax)


# --------------------------------------------------------------------------- covariates


@dataclass
class _Column:
    name: str
    kind: str                   # "continuous" or "levels"
    labels: list[str]           # statistics, in table order
    observed: np.ndarray        # (s,)
    synthetic: np.ndarray       # (cohorts, s)
    missing: bool               # a "missing" statistic is the last one
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    observed_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curves: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (cohorts, G)


_CONT_STATS = ["mean", "sd", "25%", "median", "75%"]


def _continuous_stats(v: np.ndarray) -> np.ndarray:
    v = v[~np.isnan(v)]
    if v.size == 0:
        return np.full(5, np.nan)
    sd = float(np.std(v, ddof=1)) if v.size > 1 else np.nan
    return np.array([v.mean(), sd, *np.quantile(v, [0.25, 0.5, 0.75])])


def covariate_check(observed: pd.DataFrame, generator, *, rng_key, cohorts: int = CHECK_COHORTS):
    """Covariate marginals of the historical data against the covariate generator.

    Draws ``cohorts`` synthetic cohorts of ``len(observed)`` patients, cohort ``c`` with
    ``generator.sample(fold_in(rng_key, c), n)``, and compares each covariate's marginal:

    - numeric columns with more than :data:`MAX_LEVELS` distinct observed values
      ("continuous"): ECDF of the non-missing values on a grid; statistics mean, SD
      (ddof 1), 25%, median, 75% of the non-missing values;
    - categorical columns and numeric ones with at most :data:`MAX_LEVELS` distinct values
      (binary, small integers; "levels"): share of each level among all patients;
    - either kind with missing values (observed, or generated by ``missing="model"``): the
      share missing, as the last statistic (the level ``missing``).

    Parameters
    ----------
    observed : DataFrame (n, p), the historical covariates in original units (the generator's
        columns; NaN = missing; categoricals as pandas Categorical)
    generator : :class:`twinsim.models.CovariateModel` fitted to such data
    rng_key : jax.random key (the report uses ``check_key(seed, KEY_COVARIATE_CHECK)``)
    cohorts : int >= 2

    Returns
    -------
    (Figure, DataFrame): :func:`plot_covariate_marginals` and :func:`covariate_check_table`.
    """
    cols = _covariate_columns(observed, generator, rng_key, cohorts)
    return _covariate_figure(cols, len(observed), cohorts), _covariate_table(cols)


def covariate_check_table(observed: pd.DataFrame, generator, *, rng_key, cohorts: int = CHECK_COHORTS) -> pd.DataFrame:
    """Table of the covariate check (see :func:`covariate_check`).

    Returns
    -------
    DataFrame, one row per statistic: ``covariate``, ``statistic`` (``mean``, ``sd``,
    ``25%``, ``median``, ``75%`` or ``share LEVEL``, ``share missing``), ``observed``,
    ``median``, ``2.5%``, ``97.5%`` (over the synthetic cohorts) and ``inside`` (bool).
    Shares are fractions of all patients; the other statistics use the non-missing values.
    """
    return _covariate_table(_covariate_columns(observed, generator, rng_key, cohorts))


def plot_covariate_marginals(observed: pd.DataFrame, generator, *, rng_key, cohorts: int = CHECK_COHORTS):
    """Figure of the covariate check (see :func:`covariate_check`): one panel per covariate.

    Continuous panels: observed ECDF (black step) and the synthetic cohorts' pointwise
    2.5-97.5% band (blue); the missing share, when any, written in the panel.  Level panels:
    observed share per level (black points; red when outside) and the synthetic 2.5-97.5%
    range (blue bars, median as a line).  Red panel title: some statistic of that covariate
    is outside its range.  Up to 4 panels per row; one legend.

    Returns
    -------
    matplotlib Figure
    """
    return _covariate_figure(_covariate_columns(observed, generator, rng_key, cohorts), len(observed), cohorts)


def _covariate_columns(observed, generator, rng_key, cohorts) -> list[_Column]:
    import jax

    if not isinstance(observed, pd.DataFrame):
        raise DataError(f"covariate check: observed must be a DataFrame of the historical covariates; got "
                        f"{type(observed).__name__}. Pass result.historical.covariates.")
    if isinstance(cohorts, bool) or not isinstance(cohorts, (int, np.integer)) or cohorts < 2:
        raise ModelError(f"covariate check: cohorts={cohorts!r}; use an integer >= 2 (the report uses "
                         f"{CHECK_COHORTS}).")
    names = list(generator.names)
    if not names:
        raise ModelError("covariate check: the covariate generator has no covariate; there is nothing to "
                         "check (the report skips this check for models without covariates).")
    n = len(observed)
    if n == 0:
        raise DataError("covariate check: observed has no rows; pass the historical covariates.")
    obs_raw = generator.to_raw(observed, field="historical.covariates")  # (n, p), raises on a bad column
    syn_raw = np.empty((cohorts, n, len(names)))
    for c in range(cohorts):
        frame = generator.sample(jax.random.fold_in(rng_key, c), n)
        syn_raw[c] = generator.to_raw(frame, field="synthetic covariates")
    out = []
    for j, name in enumerate(names):
        o, s = obs_raw[:, j], syn_raw[:, :, j]
        missing = bool(np.isnan(o).any() or generator.missing_index[j] >= 0)
        present = o[~np.isnan(o)]
        if bool(generator.categorical[j]) or np.unique(present).size <= MAX_LEVELS:
            if generator.categorical[j]:
                codes = np.arange(len(generator.levels[j]), dtype=float)
                labels = [f"share {lv}" for lv in generator.levels[j]]
            else:
                codes = np.unique(present)
                labels = [f"share {_fmt(float(v))}" for v in codes]
            obs_stats = [(o == v).mean() for v in codes]
            syn_stats = [(s == v).mean(axis=1) for v in codes]
            kind = "levels"
        else:
            labels = list(_CONT_STATS)
            obs_stats = list(_continuous_stats(o))
            syn_stats = list(np.array([_continuous_stats(row) for row in s]).T)
            kind = "continuous"
        if missing:
            labels.append("share missing")
            obs_stats.append(np.isnan(o).mean())
            syn_stats.append(np.isnan(s).mean(axis=1))
        col = _Column(name, kind, labels, np.asarray(obs_stats, float), np.column_stack(syn_stats), missing)
        if kind == "continuous":
            col.grid = _ecdf_grid(o, s.ravel())
            col.observed_values = o
            col.curves = ecdf(s, col.grid)
        out.append(col)
    return out


def _covariate_table(cols: list[_Column]) -> pd.DataFrame:
    rows = []
    for col in cols:
        rows += _rows({"covariate": col.name}, col.labels, col.observed, col.synthetic)
    return pd.DataFrame(rows, columns=["covariate", *_TABLE])


def _covariate_figure(cols: list[_Column], n: int, cohorts: int):
    fig, axes = _panels(len(cols), 3.3, 2.7)
    kinds = set()
    for ax, col in zip(axes, cols):
        lo, med, hi = pointwise_band(col.synthetic)
        inside = (col.observed >= lo) & (col.observed <= hi)
        if col.kind == "continuous":
            kinds.add("continuous")
            _draw_ecdf(ax, col.observed_values, col.grid, pointwise_band(col.curves))
            ax.set_ylabel("ECDF", fontsize="small")
            if col.missing:
                ax.text(0.03, 0.97, f"missing {col.observed[-1]:.1%}\n(synthetic {lo[-1]:.1%}-{hi[-1]:.1%})",
                        transform=ax.transAxes, va="top", ha="left", fontsize="x-small",
                        color=_OBSERVED if inside[-1] else _FLAG)
        else:
            kinds.add("levels")
            x = np.arange(len(col.labels))
            ax.bar(x, hi - lo, bottom=lo, width=0.55, color=_SYNTH, alpha=0.3, linewidth=0)
            ax.hlines(med, x - 0.275, x + 0.275, color=_SYNTH, linewidth=1.2)
            ax.plot(x, col.observed, linestyle="none", marker="o", color=_OBSERVED, markersize=5)
            if not inside.all():
                ax.plot(x[~inside], col.observed[~inside], linestyle="none", marker="o", color=_FLAG, markersize=5)
                kinds.add("flag")
            ticks = [lab.removeprefix("share ") for lab in col.labels]
            long = len(ticks) > 5 or max(len(t) for t in ticks) > 5
            ax.set_xticks(x)
            ax.set_xticklabels(ticks, rotation=35 if long else 0, ha="right" if long else "center",
                               fontsize="x-small" if long else "small")
            top = float(np.nanmax(np.concatenate([hi, col.observed])))
            ax.set_ylim(0.0, min(1.0, top * 1.15 + 0.02))
            ax.set_xlim(-0.6, len(x) - 0.4)
            ax.set_ylabel("share", fontsize="small")
            _style(ax)
        ax.tick_params(labelsize="small")
        ax.set_title(col.name, fontsize="medium", color=_OBSERVED if inside.all() else _FLAG)
    items = []
    if "continuous" in kinds:
        items += [("step", "observed ECDF"), ("band", f"synthetic pointwise 95% band / range ({cohorts} cohorts)")]
    if "levels" in kinds:
        items += [("point", "observed share")] + ([] if "continuous" in kinds else
                                                   [("band", f"synthetic 95% range ({cohorts} cohorts)")])
    if "flag" in kinds:
        items.append(("flag", "outside the synthetic 95% range"))
    _legend(fig, items)
    _suptitle(fig, f"covariate marginals: historical data vs {cohorts} synthetic cohorts of n = {n} "
                   "from the covariate generator")
    return fig


# the biomarker check lives in its own module; re-exported here (imported last: it uses the helpers above)
from .checks_biomarker import biomarker_check, biomarker_check_table, plot_biomarker_predictive  # noqa: E402
