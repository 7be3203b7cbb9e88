"""Fidelity of synthetic patients, each figure beside the value an independent real holdout gets.

A perfect generator does not score zero on these metrics: it scores like a second real sample
from the same population.  Every metric is therefore computed twice against the real
*training* table (the data the generator saw): once for the synthetic table and once for a
real holdout split off before fitting (the *floor*).  :func:`fidelity_report` lays the two
side by side with a tolerance and a verdict.

Metrics
-------
- marginals (:func:`marginal_table`): per covariate, the standardised mean difference, the
  two-sample Kolmogorov-Smirnov statistic and the 1-Wasserstein distance on the training
  table's standardised scale (numeric columns); total variation distance and the largest
  absolute difference of level shares (categorical columns);
- dependence (:func:`correlation_difference`): largest and mean absolute difference of the
  Pearson correlation matrices of the encoded tables;
- detection (:func:`detection_auc`): cross-validated ROC AUC of an L2-penalised logistic
  regression that tells training rows from the other table's rows (0.5 = indistinguishable);
- survival curves (:func:`km_distance`): optimism, absolute optimism and short-sightedness of
  the other table's Kaplan-Meier curve relative to the training table's (Norcliffe et al.
  2023, as implemented by synthcity's ``nonparametric_distance``).

Randomness (fold assignment, bootstrap of the holdout) only through explicit JAX keys.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd
from scipy import stats

from ..analysis import kaplan_meier
from ..errors import ConvergenceWarning, DataError
from ._encode import _is_categorical, encode_tables

__all__ = [
    "marginal_table",
    "correlation_difference",
    "logistic_l2",
    "auc_mann_whitney",
    "DetectionResult",
    "detection_auc",
    "KMDistance",
    "km_distance",
    "fidelity_report",
]



def _km_step(time: np.ndarray, event: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Kaplan-Meier S(grid) (m,) from :func:`twinsim.analysis.kaplan_meier`, right-continuous,
    held at its last value beyond the last time (numpy: no compilation per sample size, which
    the bootstrap and per-arm strata would otherwise trigger for every distinct n)."""
    km = kaplan_meier(time, event)
    pos = np.searchsorted(km.index.to_numpy(float), grid, side="right") - 1
    return np.where(pos >= 0, km["survival"].to_numpy()[np.clip(pos, 0, None)], 1.0)


# --------------------------------------------------------------------------- marginals


def _check_columns(train: pd.DataFrame, other: pd.DataFrame, columns) -> list:
    cols = list(train.columns if columns is None else columns)
    for name, t in (("train", train), ("other", other)):
        missing = [c for c in cols if c not in t.columns]
        if missing:
            raise DataError(
                f"The {name} table lacks the column(s) {missing}; the fidelity metrics compare the "
                f"columns {cols} of the training table with the same columns of the other table. "
                "Pass tables with the same columns, or restrict the comparison with columns=[...]."
            )
    return cols


def _numeric_row(xt: np.ndarray, xo: np.ndarray) -> dict:
    xt, xo = xt[np.isfinite(xt)], xo[np.isfinite(xo)]
    if len(xt) < 2 or len(xo) < 2:
        return {"kind": "numeric", "smd": np.nan, "ks": np.nan, "wasserstein": np.nan, "tvd": np.nan, "level": None}
    pooled = np.sqrt((xt.var(ddof=1) + xo.var(ddof=1)) / 2)
    diff = xo.mean() - xt.mean()
    smd = diff / pooled if pooled > 0 else (0.0 if diff == 0 else np.copysign(np.inf, diff))
    m, s = xt.mean(), xt.std()
    s = s if s > 0 else 1.0  # as _encode: a constant training column keeps SD 1
    return {
        "kind": "numeric",
        "smd": float(smd),
        "ks": float(stats.ks_2samp(xt, xo, method="asymp").statistic),
        "wasserstein": float(stats.wasserstein_distance((xt - m) / s, (xo - m) / s)),
        "tvd": np.nan,
        "level": None,
    }


def _categorical_row(ct: pd.Series, co: pd.Series) -> dict:
    st = ct.astype(object).value_counts(normalize=True, dropna=False)
    so = co.astype(object).value_counts(normalize=True, dropna=False)
    st, so = st.align(so, fill_value=0.0)
    d = (so - st).to_numpy(float)
    j = int(np.argmax(np.abs(d)))
    return {
        "kind": "categorical",
        "smd": float(np.abs(d[j])),
        "ks": np.nan,
        "wasserstein": np.nan,
        "tvd": float(0.5 * np.abs(d).sum()),
        "level": st.index[j],
    }


def marginal_table(train: pd.DataFrame, other: pd.DataFrame, *, columns=None) -> pd.DataFrame:
    """Per-covariate distances between the training table and another table.

    Parameters
    ----------
    train : DataFrame (n_t, p)
        Real training table (the reference).
    other : DataFrame (n_o, >= p)
        Synthetic or holdout table with the same columns.
    columns : sequence of str, optional
        Columns to compare (default all of ``train``'s).

    Returns
    -------
    DataFrame indexed by column name with

    - ``kind``: ``"numeric"`` or ``"categorical"`` (pandas Categorical, object or string dtype,
      as in :func:`~twinsim.validate._encode.encode_tables`);
    - ``smd``: numeric, ``(mean_o - mean_t) / sqrt((var_t + var_o) / 2)`` (sample variances,
      ddof 1; missing values dropped); categorical, ``max_level |share_o - share_t|`` (no sign);
    - ``ks``: two-sample Kolmogorov-Smirnov statistic (``scipy.stats.ks_2samp``), numeric only;
    - ``wasserstein``: 1-Wasserstein distance of the two samples after standardising both by
      the training mean and SD (ddof 0), in training-SD units; numeric only;
    - ``tvd``: total variation distance ``0.5 * sum_level |share_o - share_t|`` of the level
      shares (missing values are a level of their own), categorical only;
    - ``level``: the categorical level with the largest share difference.
    """
    cols = _check_columns(train, other, columns)
    rows = {}
    for c in cols:
        if _is_categorical(train[c]):
            rows[c] = _categorical_row(train[c], other[c])
        else:
            rows[c] = _numeric_row(train[c].to_numpy(float), other[c].to_numpy(float))
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "column"
    return out


# --------------------------------------------------------------------------- dependence


def _corr_diff_encoded(zt: np.ndarray, zo: np.ndarray) -> tuple[float, float, int]:
    with np.errstate(invalid="ignore", divide="ignore"):
        ct = np.corrcoef(zt, rowvar=False)
        co = np.corrcoef(zo, rowvar=False)
    iu = np.triu_indices(zt.shape[1], k=1)
    d = np.abs(np.atleast_2d(co)[iu] - np.atleast_2d(ct)[iu])
    d = d[np.isfinite(d)]  # a constant column (in either table) has no correlation
    if len(d) == 0:
        return np.nan, np.nan, 0
    return float(d.max()), float(d.mean()), int(len(d))


def correlation_difference(train: pd.DataFrame, other: pd.DataFrame, *, columns=None) -> dict:
    """Largest and mean absolute difference of the Pearson correlation matrices.

    Both tables are encoded by :func:`~twinsim.validate._encode.encode_tables` with the
    training table's transformation (numeric standardised, categorical one-hot), and the
    Pearson correlations of every pair of encoded columns are compared.

    Parameters
    ----------
    train, other : DataFrame (n_t, p), (n_o, p)
    columns : sequence of str, optional

    Returns
    -------
    dict with ``max`` and ``mean`` (of ``|corr_o - corr_t|`` over the ``pairs`` pairs of
    encoded columns where both correlations are defined; a pair involving a column constant in
    either table is left out) and ``pairs``.
    """
    cols = _check_columns(train, other, columns)
    zt, zo = encode_tables(train, other, columns=cols)
    mx, mean, pairs = _corr_diff_encoded(zt, zo)
    return {"max": mx, "mean": mean, "pairs": pairs}


# --------------------------------------------------------------------------- detection


def logistic_l2(X, y, *, l2: float = 1.0, max_iter: int = 100, tol: float = 1e-10):
    """L2-penalised logistic regression fitted by Newton's method (IRLS) with backtracking.

    Minimises ``-sum_i [y_i eta_i - log(1 + exp(eta_i))] + (l2 / 2) * ||beta||^2`` with
    ``eta = intercept + X @ beta``; the intercept is not penalised.

    Parameters
    ----------
    X : array (n, q) of features
    y : array (n,) of 0/1 labels (both classes present)
    l2 : float >= 0, penalty on the sum-of-log-likelihood scale
    max_iter, tol : Newton iterations and the stopping size of the largest step

    Returns
    -------
    (intercept, beta) : float, array (q,)
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    if y.min() == y.max():
        raise DataError(
            f"logistic_l2 received labels y that are all {y[0]:g}; a classifier needs both classes. "
            "Pass rows of both tables (labels 0 and 1)."
        )
    n, q = X.shape
    A = np.concatenate([np.ones((n, 1)), X], axis=1)
    pen = np.full(q + 1, float(l2))
    pen[0] = 0.0
    w = np.zeros(q + 1)
    w[0] = np.log(y.mean() / (1 - y.mean()))

    def loss(w):
        eta = A @ w
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * np.sum(pen * w * w))

    f = loss(w)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(A @ w)))
        g = A.T @ (p - y) + pen * w
        H = (A * (p * (1 - p))[:, None]).T @ A + np.diag(pen)
        step = np.linalg.solve(H + 1e-12 * np.eye(q + 1), g)
        t = 1.0
        while True:
            f_new = loss(w - t * step)
            if f_new <= f + 1e-12 * abs(f) or t < 1e-8:
                break
            t *= 0.5
        w, f = w - t * step, f_new
        if np.max(np.abs(t * step)) < tol:
            break
    else:
        warnings.warn(
            f"logistic_l2 did not converge in {max_iter} Newton steps (last step "
            f"{np.max(np.abs(t * step)):.2e}); raise l2 or max_iter.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return float(w[0]), w[1:]


def auc_mann_whitney(score_neg, score_pos) -> float:
    """ROC AUC by the Mann-Whitney formula: ``P(score_pos > score_neg) + 0.5 P(tie)``.

    Parameters
    ----------
    score_neg : array (n0,), scores of the negatives (label 0)
    score_pos : array (n1,), scores of the positives (label 1)

    Returns
    -------
    float in [0, 1]: ``(R_1 - n1 (n1 + 1) / 2) / (n0 n1)`` with ``R_1`` the sum of the
    positives' mid-ranks in the pooled sample.
    """
    s0, s1 = np.asarray(score_neg, float), np.asarray(score_pos, float)
    n0, n1 = len(s0), len(s1)
    if n0 == 0 or n1 == 0:
        raise DataError(f"auc_mann_whitney needs scores of both classes; received {n0} negatives and {n1} positives.")
    r = stats.rankdata(np.concatenate([s0, s1]))
    return float((r[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


class DetectionResult(NamedTuple):
    """Result of :func:`detection_auc`."""

    auc: float              #: mean of the per-fold test AUCs
    se: float               #: their standard deviation / sqrt(folds)
    null_se: float          #: SD of the AUC of a useless classifier, sqrt((n0+n1+1)/(12 n0 n1))
    fold_aucs: np.ndarray   #: (folds,) test AUC of each fold


def _features(z: np.ndarray, degree: int) -> np.ndarray:
    if degree == 1:
        return z
    iu = np.triu_indices(z.shape[1])
    return np.concatenate([z, z[:, iu[0]] * z[:, iu[1]]], axis=1)


def _folds(rng_key, labels: np.ndarray, folds: int) -> np.ndarray:
    """Stratified fold index (n,): within each class a random permutation dealt round-robin."""
    out = np.empty(len(labels), int)
    for c in (0, 1):
        idx = np.flatnonzero(labels == c)
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(rng_key, c), len(idx)))
        out[idx[perm]] = np.arange(len(idx)) % folds
    return out


def _detection_encoded(zt, zo, rng_key, folds, degree, l2) -> DetectionResult:
    n0, n1 = len(zt), len(zo)
    if min(n0, n1) < folds:
        raise DataError(
            f"detection_auc needs at least folds={folds} rows in each table; received {n0} training "
            f"and {n1} other rows. Use fewer folds or larger tables."
        )
    X = _features(np.concatenate([zt, zo]), degree)
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    fold = _folds(rng_key, y, folds)
    aucs = np.empty(folds)
    for k in range(folds):
        test = fold == k
        b0, b = logistic_l2(X[~test], y[~test], l2=l2)
        s = b0 + X[test] @ b
        aucs[k] = auc_mann_whitney(s[y[test] == 0], s[y[test] == 1])
    return DetectionResult(
        auc=float(aucs.mean()),
        se=float(aucs.std(ddof=1) / np.sqrt(folds)),
        null_se=float(np.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1))),
        fold_aucs=aucs,
    )


def detection_auc(train: pd.DataFrame, other: pd.DataFrame, *, rng_key, folds: int = 5,
                  degree: int = 2, l2: float = 1.0, columns=None) -> DetectionResult:
    """Cross-validated ROC AUC of a classifier that tells training rows from the other table's.

    Both tables are encoded with the training table's transformation; the features are the
    encoded columns (``degree=1``) plus all their squares and pairwise products (``degree=2``,
    so differences in spread and correlation are detectable, not only in means).  An
    L2-penalised logistic regression (:func:`logistic_l2`) is fitted on ``folds - 1`` folds and
    scored on the held-out fold; folds are stratified by table and drawn with ``rng_key``.

    Parameters
    ----------
    train, other : DataFrame (n_t, p), (n_o, p)
    rng_key : JAX key for the fold assignment
    folds : int >= 2
    degree : 1 or 2
    l2 : float, penalty of :func:`logistic_l2`
    columns : sequence of str, optional

    Returns
    -------
    :class:`DetectionResult`; ``auc`` 0.5 means indistinguishable, 1 perfectly separable.
    Under indistinguishability ``auc`` has mean 0.5 and SD about ``null_se`` (Mann-Whitney's
    null variance with all rows tested once).
    """
    if degree not in (1, 2) or folds < 2:
        raise DataError(f"detection_auc needs degree 1 or 2 and folds >= 2; received degree={degree}, folds={folds}.")
    cols = _check_columns(train, other, columns)
    zt, zo = encode_tables(train, other, columns=cols)
    return _detection_encoded(zt, zo, rng_key, folds, degree, l2)


# --------------------------------------------------------------------------- survival curves


class KMDistance(NamedTuple):
    """Result of :func:`km_distance` (all unitless)."""

    optimism: float          #: mean over the grid of S_other - S_train (> 0: other survives longer)
    abs_optimism: float      #: mean over the grid of |S_other - S_train|
    short_sightedness: float  #: (max time train - max time other) / max time of both


def km_distance(train_time, train_event, other_time, other_event, *, n_points: int = 1000) -> KMDistance:
    """Distances between the Kaplan-Meier curves of the training table and another table.

    Definitions of Norcliffe et al. (2023), "SurvivalGAN: generating time-to-event data for
    survival analysis" (AISTATS, PMLR 206), as implemented by
    synthcity (``plugins/core/models/survival_analysis/metrics.py::nonparametric_distance``):
    on the grid ``linspace(max(0, T_min), T_max, n_points)``, with ``T_min`` / ``T_max`` the
    smallest / largest time of both tables,

    - optimism = ``trapz(S_o - S_t, grid) / T_max``,
    - absolute optimism = ``trapz(|S_o - S_t|, grid) / T_max``,
    - short-sightedness = ``(max t_train - max t_other) / T_max``.

    Both curves are right-continuous step functions held at their last value beyond their
    last time (as ``lifelines.KaplanMeierFitter.predict``), from
    :func:`twinsim.analysis.kaplan_meier`.  With ``T_min`` near 0 the integrals are grid means.

    Parameters
    ----------
    train_time, train_event : arrays (n_t,); time > 0, event 1 = observed, 0 = censored
    other_time, other_event : arrays (n_o,)
    n_points : int, grid size

    Returns
    -------
    :class:`KMDistance`
    """
    tt, et = np.asarray(train_time, float), np.asarray(train_event, float)
    to, eo = np.asarray(other_time, float), np.asarray(other_event, float)
    for name, t, e in (("train", tt, et), ("other", to, eo)):
        if len(t) == 0 or len(t) != len(e) or not np.all(np.isfinite(t)) or np.any(t < 0):
            raise DataError(
                f"km_distance received a {name} table with {len(t)} times and {len(e)} events "
                "(times must be finite, >= 0, one event flag each, at least one patient). Drop "
                "patients without follow-up or fix the time column."
            )
    t_max = max(tt.max(), to.max())
    if t_max <= 0:
        raise DataError("km_distance received only zero times; follow-up times must be positive.")
    grid = np.linspace(max(0.0, min(tt.min(), to.min())), t_max, n_points)
    st, so = _km_step(tt, et, grid), _km_step(to, eo, grid)
    d = so - st
    return KMDistance(
        optimism=float(np.trapezoid(d, grid) / t_max),
        abs_optimism=float(np.trapezoid(np.abs(d), grid) / t_max),
        short_sightedness=float((tt.max() - to.max()) / t_max),
    )


# --------------------------------------------------------------------------- report

# signed metrics: "worse" is a larger magnitude (short-sightedness: larger positive value)
_SIGNED = {"smd", "optimism"}


def _strata(train, other, group):
    """(label, mask_train, mask_other) for all patients and, with ``group``, for each level."""
    out = [("all", np.ones(len(train), bool), np.ones(len(other), bool))]
    if group is not None:
        for lv in pd.unique(train[group].dropna()):
            out.append((f"{group}={lv}", (train[group] == lv).to_numpy(), (other[group] == lv).to_numpy()))
    return out


def _metrics_of(train, other, zt, zo, cols, time, event, group) -> dict:
    """Every bootstrappable metric of ``other`` against ``train``: {(section, metric, column): value}."""
    out = {}
    marg = marginal_table(train, other, columns=cols)
    for c, r in marg.iterrows():
        out[("marginal", "smd", c)] = r["smd"]
        if r["kind"] == "numeric":
            out[("marginal", "ks", c)] = r["ks"]
            out[("marginal", "wasserstein", c)] = r["wasserstein"]
        else:
            out[("marginal", "tvd", c)] = r["tvd"]
    mx, mean, _ = _corr_diff_encoded(zt, zo)
    out[("dependence", "corr_diff_max", "all")] = mx
    out[("dependence", "corr_diff_mean", "all")] = mean
    if time is not None:
        for label, mt, mo in _strata(train, other, group):
            if mt.sum() == 0 or mo.sum() == 0:
                km = KMDistance(np.nan, np.nan, np.nan)
            else:
                km = km_distance(train[time].to_numpy()[mt], train[event].to_numpy()[mt],
                                 other[time].to_numpy()[mo], other[event].to_numpy()[mo])
            for name in KMDistance._fields:
                out[("survival", name, label)] = getattr(km, name)
    return out


def _max_tolerance(t_train, t_hol, n_syn: int, level: float) -> float:
    """Short-sightedness tolerance from the holdout's top order statistics (distribution-free).

    With a perfect generator the ``n_h + n_s`` holdout and synthetic times are exchangeable, so
    the synthetic maximum falls below the holdout's k-th largest time with probability
    ``C(n_h, k) / C(n_h + n_s, k)`` (the top k of the pooled sample all holdout).  The smallest
    k with that probability <= ``level`` gives the tolerance ``(max_h - t_h(k)) / T``, ``T`` the
    holdout row's denominator, so ``ss_syn <= ss_hol + tol`` is about ``max_s >= t_h(k)``.
    """
    n_h = len(t_hol)
    k = _max_rank(n_h, n_syn, level)
    if k is None or len(t_train) == 0:
        return np.nan  # too few holdout patients to detect a short-sighted generator at this level
    top = np.sort(t_hol)[::-1]
    return float((top[0] - top[k - 1]) / max(np.max(t_train), top[0]))


def _max_rank(n_h: int, n_s: int, level: float) -> int | None:
    """Smallest k with ``C(n_h, k) / C(n_h + n_s, k) <= level`` (None when no k <= n_h does)."""
    if n_h == 0 or n_s == 0:
        return None
    k = np.arange(1, n_h + 1)
    logp = np.cumsum(np.log(n_h - k + 1) - np.log(n_h + n_s - k + 1))
    hit = np.flatnonzero(logp <= np.log(level))
    return int(hit[0]) + 1 if len(hit) else None


def fidelity_report(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, *, rng_key,
                    time: str | None = None, event: str | None = None, group: str | None = None,
                    columns=None, n_boot: int = 100, alpha: float = 0.05, folds: int = 5,
                    degree: int = 2, l2: float = 1.0) -> pd.DataFrame:
    """Every fidelity metric for the synthetic table beside the holdout's value (the floor).

    Parameters
    ----------
    train : DataFrame (n_t, .)
        Real patients the generator was fitted on.
    holdout : DataFrame (n_h, .)
        Real patients split off before fitting (never seen by the generator).
    synthetic : DataFrame (n_s, .)
        Synthetic patients; best with ``n_s == n_h`` (distances shrink with sample size).
    rng_key : JAX key; ``fold_in(rng_key, 0)`` draws the detection folds, ``fold_in(rng_key, 1)``
        the bootstrap of the holdout.
    time, event : str, optional
        Follow-up time and event (1 = observed) columns; with them the report has the
        Kaplan-Meier rows, and they are left out of the marginal rows (KM handles censoring)
        but kept in the correlation and detection rows (the covariate-outcome relation).
    group : str, optional
        A column (e.g. the arm) whose levels get Kaplan-Meier rows of their own.
    columns : sequence of str, optional
        Covariates to compare (default every column of ``train`` except ``time`` and ``event``).
    n_boot : int
        Bootstrap replicates of the holdout for the tolerances.
    alpha : float
        Family-wise false-alarm rate of the verdicts for a perfect generator (Bonferroni).
    folds, degree, l2 : settings of :func:`detection_auc`.

    Returns
    -------
    DataFrame, one row per metric, columns ``section``, ``metric``, ``column``, ``synthetic``
    (value synthetic vs train), ``holdout`` (value holdout vs train: the floor), ``holdout_sd``,
    ``tolerance`` and ``verdict`` (``"within floor"``, ``"worse than floor"`` or ``"n/a"``).
    ``attrs["z"]`` holds the critical value used.

    Notes
    -----
    Verdict: a row is ``"within floor"`` when ``bad(synthetic) <= bad(holdout) + tolerance``
    where ``bad`` is the value itself (distances, detection AUC, short-sightedness) or its
    magnitude (SMD, optimism).  Given the training table, a perfect generator's value and the
    holdout's are two independent draws of the same statistic, so their difference has SD
    ``sqrt(sd_h^2 + sd_s^2)``:

    - ``sd_h`` is the SD over ``n_boot`` bootstrap resamples of the holdout rows (train fixed)
      and ``sd_s = sd_h * sqrt(n_h / n_s)`` (these statistics' SD scales as 1 / sqrt(n));
      ``tolerance = z * sqrt(sd_h^2 + sd_s^2)``;
    - detection AUC: both SDs are the Mann-Whitney null SD ``sqrt((n_t + n + 1) / (12 n_t n))``;
    - short-sightedness (a maximum, for which the bootstrap SD is too small): the
      distribution-free order-statistic rule of :func:`_max_tolerance` at level ``alpha / m``;

    with ``z = Phi^-1(1 - alpha / m)`` over the ``m`` rows with values, so a perfect
    generator is flagged on some row with probability about ``alpha`` at most (Bonferroni;
    the normal approximation was checked by simulation, see tests and docs).
    """
    if (time is None) != (event is None):
        raise DataError(f"fidelity_report needs both time and event columns or neither; received time={time!r}, event={event!r}.")
    if n_boot < 2:
        raise DataError(f"fidelity_report needs n_boot >= 2 bootstrap replicates for its tolerances; received {n_boot}.")
    skip = {time, event} - {None}
    cols = [c for c in (train.columns if columns is None else columns) if c not in skip]
    for t in (holdout, synthetic):
        _check_columns(train, t, cols + sorted(skip) + ([group] if group is not None else []))
    dep_cols = cols + [c for c in (time, event) if c is not None]
    zt, zh, zs = encode_tables(train, holdout, synthetic, columns=dep_cols)
    k_det, k_boot = jax.random.fold_in(rng_key, 0), jax.random.fold_in(rng_key, 1)

    syn = _metrics_of(train, synthetic, zt, zs, cols, time, event, group)
    hol = _metrics_of(train, holdout, zt, zh, cols, time, event, group)
    n_h, n_s = len(holdout), len(synthetic)
    idx = np.asarray(jax.random.randint(k_boot, (n_boot, n_h), 0, n_h))
    boot = [_metrics_of(train, holdout.iloc[i].reset_index(drop=True), zt, zh[i], cols, time, event, group) for i in idx]

    rows = []
    for key in syn:
        b = np.array([r[key] for r in boot], float)
        b = b[np.isfinite(b)]
        sd_h = float(b.std(ddof=1)) if len(b) > 1 and key[1] != "short_sightedness" else np.nan
        rows.append(dict(section=key[0], metric=key[1], column=key[2], synthetic=syn[key], holdout=hol[key],
                         holdout_sd=sd_h, _se=sd_h * np.sqrt(1 + n_h / n_s)))
    d_s = _detection_encoded(zt, zs, k_det, folds, degree, l2)
    d_h = _detection_encoded(zt, zh, k_det, folds, degree, l2)
    rows.append(dict(section="detection", metric="detection_auc", column="all", synthetic=d_s.auc, holdout=d_h.auc,
                     holdout_sd=d_h.null_se, _se=np.hypot(d_h.null_se, d_s.null_se)))

    out = pd.DataFrame(rows)
    has = np.isfinite(out["synthetic"].astype(float)) & np.isfinite(out["holdout"].astype(float))
    m = max(int(has.sum()), 1)
    z = float(stats.norm.ppf(1 - alpha / m))
    out["tolerance"] = z * out.pop("_se")
    if time is not None:
        labels = {lab: (mt, mh, ms) for (lab, mt, mh), (_, _, ms) in zip(_strata(train, holdout, group),
                                                                         _strata(train, synthetic, group))}
        for i in np.flatnonzero((out["metric"] == "short_sightedness").to_numpy()):
            mt, mh, ms = labels[out.at[i, "column"]]
            out.at[i, "tolerance"] = _max_tolerance(train[time].to_numpy(float)[mt], holdout[time].to_numpy(float)[mh],
                                                    int(ms.sum()), alpha / m)
    ok = has & np.isfinite(out["tolerance"].astype(float))
    verdict = []
    for r, good in zip(out.itertuples(), ok):
        if not good:
            verdict.append("n/a")
            continue
        bad_s, bad_h = (abs(r.synthetic), abs(r.holdout)) if r.metric in _SIGNED else (r.synthetic, r.holdout)
        verdict.append("within floor" if bad_s <= bad_h + r.tolerance else "worse than floor")
    out["verdict"] = verdict
    out.attrs["z"] = z
    if abs(n_s / n_h - 1) > 0.1:
        out.attrs["note"] = (f"synthetic n={n_s} differs from holdout n={n_h}: distances shrink with n, "
                             "so compare tables of equal size where possible")
    return out
