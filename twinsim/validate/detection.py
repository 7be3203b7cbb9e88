"""Detection: can a classifier tell real training rows from another table's rows?

A cross-validated ROC AUC of an L2-penalised logistic regression (written in numpy; sklearn is
not a dependency) on the encoded columns and their squares and pairwise products; 0.5 =
indistinguishable.  Part of the fidelity checks (:mod:`twinsim.validate.fidelity`).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceWarning, DataError
from ._encode import _check_columns, encode_tables

__all__ = ["logistic_l2", "auc_mann_whitney", "DetectionResult", "detection_auc"]


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
