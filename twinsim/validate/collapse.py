"""Model collapse: refit a generator on its own synthetic output and watch the metrics drift.

A generator trained on data that an earlier generator produced loses the tails of the
distribution, and over generations its estimates wander off like a random walk (Shumailov
et al. 2024, "AI models collapse when trained on recursively generated data", Nature
631:755-759).  For a Gaussian fitted by maximum likelihood the variance shrinks by
``(n - 1) / n`` in expectation at every refit.  Keeping real data in every training set stops
the drift: Bertrand et al. (2024), "On the stability of iterative retraining of generative
models on their own data" (ICLR), and Gerstgrasser et al. (2024), "Is model collapse
inevitable? Breaking the curse of recursion by accumulating real and synthetic data"
(arXiv:2404.01413).

:func:`collapse` runs the loop for any generator given as ``fit`` / ``sample`` (and optionally
``params``) callables, for one or more shares of real patients kept in every training set.
Every fidelity metric sits beside the real holdout's value (the floor, computed once) as in
:mod:`twinsim.validate.fidelity`, whose functions compute the metrics.
:func:`plot_collapse` draws the drift.

Randomness only through explicit JAX keys (documented in :func:`collapse`).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, ModelError
from .fidelity import correlation_difference, detection_auc, km_distance, marginal_table

__all__ = ["FIDELITY_METRICS", "collapse", "plot_collapse"]

#: Fidelity metrics of :func:`collapse`, in table order; the two ``km_`` ones need time and event.
FIDELITY_METRICS = ("detection_auc", "smd_max_abs", "wasserstein_mean", "corr_diff_max",
                    "km_abs_optimism", "km_optimism")
#: Signed metrics: the verdict compares magnitudes (as ``fidelity_report`` does for optimism).
_SIGNED = {"km_optimism"}
#: Resolution of the share in its key: ``fold_in(., round(share * _SHARE_SCALE))``.
_SHARE_SCALE = 1_000_000

_TITLES = {
    "detection_auc": "detection AUC (0.5 = indistinguishable)",
    "smd_max_abs": "largest |SMD| over covariates",
    "wasserstein_mean": "mean W1 over numeric covariates (SD units)",
    "corr_diff_max": "largest |correlation difference|",
    "km_abs_optimism": "KM absolute optimism",
    "km_optimism": "KM optimism (> 0: survives longer)",
}


# --------------------------------------------------------------------------- metrics


def _table_metrics(train, other, cols, dep_cols, time, event, wanted) -> dict:
    """Bootstrappable metrics of ``other`` against ``train`` (everything but detection)."""
    out = {}
    if {"smd_max_abs", "wasserstein_mean"} & wanted:
        marg = marginal_table(train, other, columns=cols)
        smd = np.abs(marg["smd"].to_numpy(float))
        w1 = marg["wasserstein"].to_numpy(float)
        if "smd_max_abs" in wanted:
            out["smd_max_abs"] = float(np.nanmax(smd)) if np.any(~np.isnan(smd)) else np.nan
        if "wasserstein_mean" in wanted:
            out["wasserstein_mean"] = float(np.nanmean(w1)) if np.any(~np.isnan(w1)) else np.nan
    if "corr_diff_max" in wanted:
        out["corr_diff_max"] = correlation_difference(train, other, columns=dep_cols)["max"]
    if {"km_abs_optimism", "km_optimism"} & wanted:
        km = km_distance(train[time].to_numpy(float), train[event].to_numpy(float),
                         other[time].to_numpy(float), other[event].to_numpy(float))
        if "km_abs_optimism" in wanted:
            out["km_abs_optimism"] = km.abs_optimism
        if "km_optimism" in wanted:
            out["km_optimism"] = km.optimism
    return out


def _floor(train, holdout, cols, dep_cols, time, event, wanted, k_det, k_boot, n_boot):
    """Holdout values (the floor) and the SD of a (holdout - perfect synthetic) difference.

    Returns ``{metric: (floor, sd_diff)}``.  As in ``fidelity_report``: given the training
    table, the holdout's value and a perfect generator's value (``n_h`` rows) are two
    independent draws of one statistic, so their difference has SD ``sqrt(2) * sd_h`` with
    ``sd_h`` the SD over ``n_boot`` bootstrap resamples of the holdout rows; for detection both
    SDs are the Mann-Whitney null SD.
    """
    out = {}
    hol = _table_metrics(train, holdout, cols, dep_cols, time, event, wanted)
    if hol:
        n_h = len(holdout)
        idx = np.asarray(jax.random.randint(k_boot, (n_boot, n_h), 0, n_h))
        boot = [_table_metrics(train, holdout.iloc[i].reset_index(drop=True), cols, dep_cols, time, event, wanted)
                for i in idx]
        for m, v in hol.items():
            b = np.array([r[m] for r in boot], float)
            b = b[np.isfinite(b)]
            sd_h = float(b.std(ddof=1)) if len(b) > 1 else np.nan
            out[m] = (v, sd_h * math.sqrt(2.0))
    if "detection_auc" in wanted:
        d = detection_auc(train, holdout, rng_key=k_det, columns=dep_cols)
        out["detection_auc"] = (d.auc, math.hypot(d.null_se, d.null_se))
    return out


# --------------------------------------------------------------------------- harness


def _check_sample(s, train, n: int, where: str) -> pd.DataFrame:
    if not isinstance(s, pd.DataFrame):
        raise ModelError(
            f"sample(model, n, key) returned a {type(s).__name__} at {where}; collapse needs a DataFrame "
            f"with the training columns {list(train.columns)}. Return a pandas DataFrame."
        )
    missing = [c for c in train.columns if c not in s.columns]
    if missing or len(s) != n:
        raise ModelError(
            f"sample(model, n={n}, key) at {where} returned {len(s)} rows lacking the column(s) {missing}; "
            f"collapse needs exactly n rows with every training column {list(train.columns)}. "
            "Make sample return n rows of the training table's columns."
        )
    return s[list(train.columns)].reset_index(drop=True)


def _shares(real_share) -> list[float]:
    shares = [float(s) for s in np.atleast_1d(np.asarray(real_share, float))]
    bad = [s for s in shares if not 0.0 <= s <= 1.0]
    ints = [round(s * _SHARE_SCALE) for s in shares]
    if not shares or bad or len(set(ints)) != len(ints):
        raise DataError(
            f"collapse received real_share={real_share!r}; it needs one or more distinct shares in [0, 1] "
            f"(distinct to 1e-6, since each share keys its own chain). Pass e.g. real_share=(0.0, 0.5)."
        )
    return shares


def collapse(train: pd.DataFrame, holdout: pd.DataFrame, *, fit: Callable, sample: Callable,
             generations: int = 5, real_share: Sequence[float] = (0.0, 0.5), rng_key,
             time: str | None = None, event: str | None = None, params: Callable | None = None,
             n: int | None = None, metrics: Sequence[str] | None = None, n_boot: int = 100,
             alpha: float = 0.05) -> pd.DataFrame:
    """Refit a generator on its own output for ``generations`` rounds and track the metrics.

    For each share ``s`` in ``real_share`` one chain runs, with ``r = floor(s * n + 1/2)``
    (``s * n`` rounded half up) real rows kept in every training set:

    - generation 0: ``model_0 = fit(train, k_fit)`` on the whole real training table;
    - generation ``g = 1..generations``: ``model_g = fit(D_g, k_fit)`` with ``D_g`` (``n`` rows)
      the concatenation of ``r`` training rows drawn without replacement, afresh each
      generation, and the ``n - r`` rows of ``T_{g-1} = sample(model_{g-1}, n - r, k_next)``;
    - every generation draws ``S_g = sample(model_g, len(holdout), k_metrics)`` for the
      metrics, a draw separate from ``T_g`` (independent keys), so the rows scored are never the
      rows the next model trains on.  ``T_g`` is drawn only when a next generation needs it
      (``g < generations`` and ``r < n``); ``S_g`` only when fidelity metrics are asked for.

    ``fit`` and ``sample`` therefore run ``generations + 1`` times per share, ``sample`` up to
    twice per generation.

    Parameters
    ----------
    train : DataFrame (n_t, p)
        Real patients the generator is fitted on (the reference of every metric).
    holdout : DataFrame (n_h, >= p)
        Real patients never used for fitting; their metrics are the floor, and every
        generation samples ``n_h`` synthetic rows, so the synthetic and holdout values compare
        at equal size.
    fit : callable ``fit(frame, key) -> model``
        Fits the generator to a DataFrame with ``train``'s columns.
    sample : callable ``sample(model, n, key) -> DataFrame``
        ``n`` synthetic rows with (at least) ``train``'s columns, in ``train``'s dtypes
        (the training set ``D_g`` is ``pd.concat`` of real and synthetic rows).
    generations : int >= 0
        Refits after generation 0 (``K``); the table has generations ``0..K``.
    real_share : float or sequence of floats in [0, 1]
        Shares of real rows in ``D_g`` (``g >= 1``); one independent chain each.
    rng_key : JAX key
        All randomness.  ``k_floor = fold_in(rng_key, 0)``: ``fold_in(k_floor, 0)`` draws the
        detection folds (the same for the floor and every generation, as in
        ``fidelity_report``), ``fold_in(k_floor, 1)`` the bootstrap of the holdout.  The chain
        of share ``s`` has ``k_s = fold_in(fold_in(rng_key, 1), round(s * 1e6))`` (keyed by the
        share's value, so it does not depend on the other shares passed), and generation ``g``
        has ``k_g = fold_in(k_s, g)`` with ``k_fit = fold_in(k_g, 0)``,
        ``k_metrics = fold_in(k_g, 1)``, ``k_next = fold_in(k_g, 2)`` and the real rows of
        ``D_g`` from ``fold_in(k_g, 3)``.
    time, event : str, optional
        Follow-up time and event (1 = observed, 0 = censored) columns: with them the table has
        the Kaplan-Meier rows; they are left out of the SMD and W1 rows and kept in the
        correlation and detection rows (as in ``fidelity_report``).
    params : callable ``params(model) -> dict[str, float]``, optional
        Model parameters to follow (e.g. log hazard ratios); rows ``param:<name>``.
    n : int, optional
        Size of ``D_g`` for ``g >= 1`` (default ``len(train)``); ``r <= len(train)`` is needed.
    metrics : sequence of str, optional
        Subset of :data:`FIDELITY_METRICS` (default: all that apply; ``()`` for parameter drift
        only, which skips the floor and the metric samples).
    n_boot : int >= 2
        Bootstrap replicates of the holdout for the tolerances.
    alpha : float
        Family-wise false-alarm rate of ``within_floor`` over the whole table for a perfect
        generator (Bonferroni).

    Returns
    -------
    DataFrame, one row per (share, generation, metric), columns

    - ``real_share``, ``generation``, ``metric``;
    - ``value``: the metric of ``S_g`` against ``train``, or the parameter of ``model_g``;
    - ``holdout_floor``: the holdout's value against ``train`` (one value per metric, the same
      in every generation); for ``param:`` rows the chain's generation-0 value;
    - ``tolerance``: ``z * sqrt(2) * sd_h`` (bootstrap SD of the holdout's value, the rule of
      ``fidelity_report`` with synthetic and holdout of equal size); detection AUC
      ``z * sqrt(2) * null_se``; NaN for ``param:`` rows.  ``z = Phi^-1(1 - alpha / m)`` over
      the ``m`` rows with a tolerance (``attrs["z"]``);
    - ``within_floor``: ``value <= holdout_floor + tolerance`` (magnitudes for ``km_optimism``),
      ``pd.NA`` where either side is missing;
    - ``n_train_real``: real rows in the training set of ``model_g`` (``len(train)`` at
      generation 0, ``r`` after).

    Notes
    -----
    Metrics (each computed by :mod:`twinsim.validate.fidelity`): ``detection_auc``
    (:func:`~twinsim.validate.fidelity.detection_auc`); ``smd_max_abs``, the largest ``|smd|``
    of :func:`~twinsim.validate.fidelity.marginal_table` over the covariates (for categorical
    ones the largest level-share difference); ``wasserstein_mean``, the mean of its
    ``wasserstein`` column over numeric covariates (training-SD units); ``corr_diff_max``
    (:func:`~twinsim.validate.fidelity.correlation_difference`); ``km_abs_optimism`` and
    ``km_optimism`` (:func:`~twinsim.validate.fidelity.km_distance`).
    """
    frames = isinstance(train, pd.DataFrame) and isinstance(holdout, pd.DataFrame)
    if not frames or len(train) < 2 or len(holdout) < 2:
        raise DataError(
            f"collapse needs train and holdout DataFrames with at least 2 rows each; received "
            f"{type(train).__name__} ({len(train) if hasattr(train, '__len__') else '?'} rows) and "
            f"{type(holdout).__name__} ({len(holdout) if hasattr(holdout, '__len__') else '?'} rows)."
        )
    if (time is None) != (event is None):
        raise DataError(f"collapse needs both time and event columns or neither; received time={time!r}, "
                        f"event={event!r}.")
    if int(generations) != generations or generations < 0:
        raise DataError(f"collapse received generations={generations!r}; pass a whole number >= 0 of refits.")
    if n_boot < 2:
        raise DataError(f"collapse needs n_boot >= 2 bootstrap replicates for its tolerances; received {n_boot}.")
    generations = int(generations)
    shares = _shares(real_share)
    n = len(train) if n is None else n
    if int(n) != n or n < 1:
        raise DataError(f"collapse received n={n!r} rows per training set; pass a positive whole number.")
    n = int(n)
    reals = {s: int(math.floor(s * n + 0.5)) for s in shares}
    if max(reals.values()) > len(train):
        raise DataError(
            f"collapse needs round(real_share * n) <= len(train) = {len(train)} real rows (drawn without "
            f"replacement); received n={n} and real_share={max(shares)}. Lower n or the share."
        )
    applicable = [m for m in FIDELITY_METRICS if time is not None or not m.startswith("km_")]
    wanted = applicable if metrics is None else list(metrics)
    unknown = [m for m in wanted if m not in applicable]
    if unknown:
        raise DataError(
            f"collapse received metrics={list(metrics)!r}; {unknown} are not among the applicable metrics "
            f"{applicable} (the km_ ones need time= and event=). Pick from those, or () for parameters only."
        )
    wanted = [m for m in FIDELITY_METRICS if m in wanted]
    cols = [c for c in train.columns if c not in {time, event}]
    dep_cols = cols + [c for c in (time, event) if c is not None]
    missing = [c for c in train.columns if c not in holdout.columns]
    if missing:
        raise DataError(f"The holdout lacks the training column(s) {missing}; collapse compares both with the "
                        "same columns. Split train and holdout from one table.")

    k_floor = jax.random.fold_in(rng_key, 0)
    k_det = jax.random.fold_in(k_floor, 0)
    floor = _floor(train, holdout, cols, dep_cols, time, event, set(wanted), k_det,
                   jax.random.fold_in(k_floor, 1), n_boot) if wanted else {}
    n_h = len(holdout)

    rows = []
    for s in shares:
        r = reals[s]
        k_s = jax.random.fold_in(jax.random.fold_in(rng_key, 1), round(s * _SHARE_SCALE))
        data, prev_next, p0 = train, None, {}
        for g in range(generations + 1):
            k_g = jax.random.fold_in(k_s, g)
            where = f"real_share={s:g}, generation {g}"
            if g > 0:
                idx = np.asarray(jax.random.permutation(jax.random.fold_in(k_g, 3), len(train)))[:r]
                parts = ([train.iloc[idx]] if r > 0 else []) + ([prev_next] if prev_next is not None else [])
                data = pd.concat(parts, ignore_index=True)
            model = fit(data, jax.random.fold_in(k_g, 0))
            n_real = len(train) if g == 0 else r
            base = dict(real_share=s, generation=g, n_train_real=n_real)
            if wanted:
                syn = _check_sample(sample(model, n_h, jax.random.fold_in(k_g, 1)), train, n_h, where)
                vals = _table_metrics(train, syn, cols, dep_cols, time, event, set(wanted))
                if "detection_auc" in wanted:
                    vals["detection_auc"] = detection_auc(train, syn, rng_key=k_det, columns=dep_cols).auc
                for m in wanted:
                    rows.append(dict(base, metric=m, value=float(vals[m]), holdout_floor=float(floor[m][0]),
                                     _sd=floor[m][1]))
            if params is not None:
                got = params(model)
                if not isinstance(got, dict):
                    raise ModelError(f"params(model) returned a {type(got).__name__} at {where}; collapse needs a "
                                     "dict of parameter name -> float. Return e.g. {'log_hr_age': 0.3}.")
                for name, v in got.items():
                    try:
                        v = float(v)
                    except (TypeError, ValueError):
                        raise ModelError(f"params(model) returned {name!r}: {v!r} at {where}; collapse needs "
                                         "scalar floats. Return one float per parameter.") from None
                    if g == 0:
                        p0[name] = v
                    rows.append(dict(base, metric=f"param:{name}", value=v, holdout_floor=p0.get(name, np.nan),
                                     _sd=np.nan))
            prev_next = None
            if g < generations and r < n:
                prev_next = _check_sample(sample(model, n - r, jax.random.fold_in(k_g, 2)), train, n - r, where)

    out = pd.DataFrame(rows, columns=["real_share", "generation", "metric", "value", "holdout_floor", "_sd",
                                      "n_train_real"])
    sd = out.pop("_sd").to_numpy(float)
    m = max(int(np.isfinite(sd).sum()), 1)
    z = float(stats.norm.ppf(1 - alpha / m))
    out["tolerance"] = z * sd
    v, f, t = (out[c].to_numpy(float) for c in ("value", "holdout_floor", "tolerance"))
    signed = out["metric"].isin(_SIGNED).to_numpy()
    v, f = np.where(signed, np.abs(v), v), np.where(signed, np.abs(f), f)
    ok = np.isfinite(v) & np.isfinite(f) & np.isfinite(t)
    with np.errstate(invalid="ignore"):
        within = v <= f + t
    out["within_floor"] = pd.array([bool(w) if o else pd.NA for w, o in zip(within, ok)], dtype="boolean")
    out = out[["real_share", "generation", "metric", "value", "holdout_floor", "tolerance", "within_floor",
               "n_train_real"]]
    out.attrs.update(z=z, alpha=alpha, n=n, n_holdout=n_h, n_train=len(train), generations=generations)
    return out


# --------------------------------------------------------------------------- figure


def _title(metric: str) -> str:
    if metric.startswith("param:"):
        return f"parameter {metric[6:]} (dotted: generation 0)"
    return _TITLES.get(metric, metric)


def plot_collapse(table: pd.DataFrame, ax=None, *, metrics: Sequence[str] | None = None):
    """Drift of every metric over the generations: one small panel per metric.

    x = generation, one line per real share; the holdout floor is a grey line with a grey band
    ``floor +/- tolerance``: where an independent real sample of the same size would fall (the
    verdict ``within_floor`` checks only the top edge; below the band is closer to the training
    table than a real sample gets, a reason to run the privacy metrics).  For the signed
    ``km_optimism`` the band is ``+/-(|floor| + tolerance)``, the region its verdict accepts.
    ``param:`` panels show each chain's generation-0 value as a dotted line in its colour.

    Parameters
    ----------
    table : DataFrame from :func:`collapse`
    ax : sequence of matplotlib Axes, optional
        One per panel (at least as many as metrics drawn); default a new Figure (not
        registered with pyplot).
    metrics : sequence of str, optional
        Metrics to draw, in order (default all in the table; pick a few when ``params``
        returned many).

    Returns
    -------
    matplotlib Figure
    """
    from ..report.figures import DPI, MARKERS, PALETTE, _style

    names = list(pd.unique(table["metric"])) if metrics is None else list(metrics)
    absent = [m for m in names if m not in set(table["metric"])]
    if not names or absent:
        raise DataError(f"plot_collapse received metrics={metrics!r}; {absent or 'none'} not in the table's metrics "
                        f"{list(pd.unique(table['metric']))}. Pick from those.")
    if ax is None:
        from matplotlib.figure import Figure

        ncol = min(3, len(names))
        nrow = math.ceil(len(names) / ncol)
        fig = Figure(figsize=(3.4 * ncol + 0.4, 2.7 * nrow + 0.6), dpi=DPI, layout="constrained")
        axes = list(np.ravel(fig.subplots(nrow, ncol, squeeze=False)))
        for a in axes[len(names):]:
            a.set_visible(False)
    else:
        axes = list(np.ravel(ax))
        if len(axes) < len(names):
            raise DataError(f"plot_collapse received {len(axes)} Axes for {len(names)} metrics; pass one per metric.")
        fig = axes[0].figure
    shares = sorted(pd.unique(table["real_share"]))
    gens = sorted(pd.unique(table["generation"]))
    for a, m in zip(axes, names):
        sub = table[table["metric"] == m]
        if not m.startswith("param:"):
            f, t = float(sub["holdout_floor"].iloc[0]), float(sub["tolerance"].iloc[0])
            if np.isfinite(t):
                lo, hi = (-(abs(f) + t), abs(f) + t) if m in _SIGNED else (max(f - t, 0.0), f + t)
                hi = min(hi, 1.0) if m == "detection_auc" else hi  # the distances are >= 0, an AUC <= 1
                a.axhspan(lo, hi, color="0.85", zorder=0, label="holdout floor \u00b1 tolerance")
            a.axhline(f, color="0.45", linewidth=1.0, zorder=1, label="holdout floor")
        for i, s in enumerate(shares):
            d = sub[sub["real_share"] == s].sort_values("generation")
            colour = PALETTE[i % len(PALETTE)]
            a.plot(d["generation"], d["value"], color=colour, marker=MARKERS[i % len(MARKERS)], markersize=4,
                   linewidth=1.4, label=f"real share {s:g}")
            if m.startswith("param:") and len(d):
                a.axhline(float(d["holdout_floor"].iloc[0]), color=colour, linestyle=":", linewidth=1.0)
        a.set_title(_title(m), fontsize="small")
        a.set_xlabel("generation", fontsize="small")
        a.set_xticks(gens)
        a.tick_params(labelsize="x-small")
        _style(a)
    handles, labels = [], []
    for a in axes[:len(names)]:
        for h, lab in zip(*a.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if ax is None:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), frameon=False,
                   fontsize="small")
        fig.suptitle(f"refitting on own output: {len(gens) - 1} generations, "
                     f"n = {table.attrs.get('n', '?')} per training set", fontsize="medium")
    else:
        axes[0].legend(handles, labels, frameon=False, fontsize="x-small")
    return fig
