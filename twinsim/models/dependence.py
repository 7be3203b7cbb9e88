"""Dependence between covariates for the Gaussian copula: normal scores, the latent
correlation that reproduces a pair's normal-score correlation given both marginals
(polychoric / polyserial-type correction for discrete columns), and the repair to a
positive-definite correlation matrix.  Used by :mod:`twinsim.models.covariates`.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy import optimize, stats

from ..errors import StatisticalWarning

logger = logging.getLogger("twinsim.models.covariates")

#: Terms of the Mehler (Hermite) series of a pair's normal-score correlation; truncation
#: error of order |rho|^200 (about 1e-8 at |rho| = 0.95 for two binary columns).
_HERMITE_TERMS = 200

#: Largest latent correlation used (the copula stays positive definite).
_RHO_MAX = 0.999
#: Fewest pairwise-complete rows from which a correlation is estimated (else 0, with a warning).
_MIN_PAIRS = 10


def _normal_scores(col: np.ndarray) -> np.ndarray:
    ranks = stats.rankdata(col, method="average")
    return stats.norm.ppf((ranks - 0.5) / len(col))


def _nearest_correlation(c: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    c = (c + c.T) / 2.0
    vals, vecs = np.linalg.eigh(c)
    c = (vecs * np.maximum(vals, floor)) @ vecs.T
    d = np.sqrt(np.diag(c))
    return c / np.outer(d, d)


# ----------------------------------------------------------------- marginals and dependence


def _hermite_profile(cum: np.ndarray) -> tuple[np.ndarray, float]:
    """Mehler coefficients of a column's normal-score function of the latent normal.

    A column with distinct values at cumulative proportions ``F_1 < ... < F_L = 1`` has,
    as a function of its latent normal ``Z``, the step function ``g(Z) = s_l`` on
    ``(tau_{l-1}, tau_l]`` with ``tau_l = Phi^-1(F_l)`` and ``s_l = Phi^-1((F_{l-1} + F_l)/2)``
    (the normal score of a tied group under average ranks).  Returns
    ``alpha_m = E[g(Z) He_m(Z)] / sqrt(m!)`` for m = 1..M and ``Var g(Z)``, so that for two
    columns with latent correlation rho, ``Cov = sum_m rho^m alpha_m beta_m`` (Mehler's
    expansion of the bivariate normal density).
    """
    f = np.concatenate([[0.0], cum])
    scores = stats.norm.ppf((f[:-1] + f[1:]) / 2.0)
    p = np.diff(f)
    var = float(np.sum(p * scores ** 2) - np.sum(p * scores) ** 2)
    tau = stats.norm.ppf(f[1:-1])
    w = np.diff(scores) * stats.norm.pdf(tau)  # summation by parts: jumps of g at tau
    alpha = np.empty(_HERMITE_TERMS)
    h_prev, h = np.zeros_like(tau), np.ones_like(tau)  # normalised He_{m-2}, He_{m-1}
    for m in range(1, _HERMITE_TERMS + 1):
        # int_a^b He_m phi = [He_{m-1} phi]_b^a, and He_k / sqrt(k!) by its recurrence
        alpha[m - 1] = np.sum(w * h) / np.sqrt(m)
        h_prev, h = h, (tau * h - np.sqrt(m - 1) * h_prev) / np.sqrt(m)
    return alpha, var


def _latent_rho(r: float, a: tuple, b: tuple) -> tuple[float, bool]:
    """Latent correlation whose implied normal-score correlation is ``r`` (and whether it
    was clamped to +-``_RHO_MAX``)."""
    coef = np.concatenate([[0.0], a[0] * b[0] / np.sqrt(a[1] * b[1])])
    implied = np.polynomial.polynomial.Polynomial(coef)  # increasing in rho (Price's theorem)
    if r >= implied(_RHO_MAX):
        return _RHO_MAX, True
    if r <= implied(-_RHO_MAX):
        return -_RHO_MAX, True
    return float(optimize.brentq(lambda x: implied(x) - r, -_RHO_MAX, _RHO_MAX, xtol=1e-13)), False


def _table_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two discrete score columns from their contingency table with 0.5
    added to each empty cell (the usual continuity correction of a tetrachoric)."""
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    w = np.zeros((ua.size, ub.size))
    np.add.at(w, (ia, ib), 1.0)
    w[w == 0] = 0.5
    w /= w.sum()
    da, db = ua - w.sum(1) @ ua, ub - w.sum(0) @ ub
    return float(da @ w @ db / np.sqrt((w.sum(1) @ da ** 2) * (w.sum(0) @ db ** 2)))


def _latent_correlation(ranked: np.ndarray, cums: list, discrete: list, skip: set,
                        names: tuple, field: str):
    """Latent correlation matrix from pairwise-complete normal scores.

    ``ranked`` (n, p): values ranked for the normal scores (NaN = missing); ``cums``,
    ``discrete``: each column's cumulative proportions and kind; ``skip``: pairs (j, k)
    never observed together.  Rules (see docs/models-covariates.md): < 10 complete rows or
    a discrete column with < 10 rows outside its most common value -> 0; a pair at the
    bound of its margins -> continuity-corrected table (two small discrete columns) or
    +-``_RHO_MAX``; a non positive definite result -> eigenvalue repair.
    """
    n, p = ranked.shape
    scores = np.full((n, p), np.nan)
    for c in range(p):
        obs = ~np.isnan(ranked[:, c])
        scores[obs, c] = stats.norm.ppf((stats.rankdata(ranked[obs, c]) - 0.5) / obs.sum())
    finite = np.isfinite(scores)
    profiles = [_hermite_profile(cum) for cum in cums]
    corr, few, sparse, clamped = np.eye(p), [], set(), []

    def minority(x: np.ndarray, c: int) -> float:  # rows outside the most common value
        return x.size - np.unique(x, return_counts=True)[1].max() if discrete[c] else np.inf

    for j in range(p):
        for k in range(j + 1, p):
            if (j, k) in skip:
                continue  # a column and its own missingness indicator: never both observed
            both = finite[:, j] & finite[:, k]
            a, b = scores[both, j], scores[both, k]
            if both.sum() < _MIN_PAIRS:
                few.append(f"{names[j]}/{names[k]} ({int(both.sum())} rows)")
                continue
            if np.ptp(a) == 0 or np.ptp(b) == 0:
                continue  # constant where both are observed: no information, independent
            rare = [names[c] for c, x in ((j, a), (k, b)) if 0 < minority(x, c) < _MIN_PAIRS]
            if rare:  # a handful of rows cannot estimate a dependence (empty cells)
                sparse.update(rare)
                continue
            r = float(np.corrcoef(a, b)[0, 1])
            # at the bound of its margins (the sorted / reverse-sorted pairing: an empty cell,
            # a perfect separation) the latent correlation is +-1, whatever the data size
            sa, sb = np.sort(a), np.sort(b)
            bound = (r >= np.corrcoef(sa, sb)[0, 1] - 1e-12
                     or r <= np.corrcoef(sa, sb[::-1])[0, 1] + 1e-12)
            if bound and discrete[j] and discrete[k] and np.unique(a).size * np.unique(b).size <= 100:
                r, bound = _table_correlation(a, b), False
            rho, hit = _latent_rho(r, profiles[j], profiles[k])
            if bound:
                rho, hit = float(np.copysign(_RHO_MAX, r)), True
            corr[j, k] = corr[k, j] = rho
            if hit:
                clamped.append(f"{names[j]}/{names[k]}")
    if few:
        warnings.warn(
            f"{field}: fewer than {_MIN_PAIRS} rows with both values observed for "
            f"{', '.join(few)}; their correlation is set to 0 (independent in the generator).",
            StatisticalWarning, stacklevel=3)
    if sparse:
        warnings.warn(
            f"{field}: {sorted(sparse)} take their less common values in fewer than "
            f"{_MIN_PAIRS} rows (an indicator: fewer than {_MIN_PAIRS} missing values), too few "
            "to estimate a dependence; they enter the generator independent of the other "
            "covariates concerned (an indicator: missing completely at random, at its rate).",
            StatisticalWarning, stacklevel=3)
    if clamped:
        warnings.warn(
            f"{field}: near-perfect dependence between {', '.join(clamped)}; the generator "
            f"uses a latent correlation of +-{_RHO_MAX}. Consider dropping one of each pair.",
            StatisticalWarning, stacklevel=3)
    if p > 1 and np.linalg.eigvalsh(corr).min() < 1e-6:  # else keep the estimates as they are
        repaired = _nearest_correlation(corr)
        change = float(np.max(np.abs(repaired - corr)))
        if change > 0.05:
            warnings.warn(
                f"{field}: the pairwise latent correlations are not jointly consistent (many "
                f"missing values or near-collinear columns); making the matrix positive "
                f"definite changed an entry by {change:.3f}.", StatisticalWarning, stacklevel=3)
        corr = repaired
    return corr
