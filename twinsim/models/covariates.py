"""The covariate generator: synthetic baseline covariates that keep the data's marginals
and dependence.

:class:`CovariateCopula` is a Gaussian copula with empirical marginals: the dependence
between covariates is the correlation of their normal scores, and each marginal is the
empirical quantile function of the historical column.  Integer-valued columns (binary,
counts, scores) are drawn from their observed values only, so they stay valid; continuous
columns are interpolated between order statistics, so they stay inside the observed range.
The copula is a point estimate (it carries no parameter uncertainty).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["CovariateCopula", "copula_sample"]


def _normal_scores(col: np.ndarray) -> np.ndarray:
    ranks = stats.rankdata(col, method="average")
    return stats.norm.ppf((ranks - 0.5) / len(col))


def _nearest_correlation(c: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    c = (c + c.T) / 2.0
    vals, vecs = np.linalg.eigh(c)
    c = (vecs * np.maximum(vals, floor)) @ vecs.T
    d = np.sqrt(np.diag(c))
    return c / np.outer(d, d)


@dataclass(frozen=True)
class CovariateCopula:
    """Gaussian copula with empirical marginals for baseline covariates.

    Attributes
    ----------
    names : tuple of str (p,)
    quantiles : ndarray (p, Q)
        Sorted historical values of each column (Q = number of historical patients).
    discrete : ndarray (p,) bool
        Columns holding only integers; they are sampled from observed values only.
    corr : ndarray (p, p)
        Correlation of the columns' normal scores (made positive definite).
    """

    names: tuple[str, ...]
    quantiles: np.ndarray
    discrete: np.ndarray
    corr: np.ndarray

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> "CovariateCopula":
        """Fit to a numeric DataFrame without missing values (one column a covariate)."""
        names = tuple(str(c) for c in frame.columns)
        values = frame.to_numpy(dtype=float)
        n, p = values.shape
        if p == 0:
            return cls(names, np.zeros((0, max(n, 1))), np.zeros(0, bool), np.zeros((0, 0)))
        quantiles = np.sort(values, axis=0).T.copy()
        discrete = np.all(values == np.round(values), axis=0)
        scores = np.column_stack([_normal_scores(values[:, j]) for j in range(p)])
        constant = np.ptp(values, axis=0) == 0
        corr = np.eye(p)
        if p > 1:
            keep = ~constant
            if keep.sum() > 1:
                corr[np.ix_(keep, keep)] = np.corrcoef(scores[:, keep], rowvar=False)
            corr = _nearest_correlation(corr)
        return cls(names, quantiles, discrete, corr)

    @property
    def chol(self) -> np.ndarray:
        """Cholesky factor of :attr:`corr`."""
        if len(self.names) == 0:
            return np.zeros((0, 0))
        return np.linalg.cholesky(self.corr)

    def sample(self, rng_key, n: int) -> pd.DataFrame:
        """Draw ``n`` synthetic covariate rows as a DataFrame (original units)."""
        draws = copula_sample(
            rng_key, jnp.asarray(self.quantiles), jnp.asarray(self.discrete),
            jnp.asarray(self.chol), n,
        )
        return pd.DataFrame(np.asarray(draws), columns=list(self.names))


def copula_sample(key, quantiles, discrete, chol, n: int):
    """Pure JAX draw of ``n`` covariate rows from a Gaussian copula (see the class).

    Parameters
    ----------
    key : jax.random key
    quantiles : array (p, Q), sorted per row
    discrete : array (p,) bool
    chol : array (p, p), Cholesky factor of the normal-score correlation
    n : int (static)

    Returns
    -------
    array (n, p) in the columns' original units.
    """
    p, q = quantiles.shape
    if p == 0:
        return jnp.zeros((n, 0), dtype=quantiles.dtype)
    z = jax.random.normal(key, (n, p), dtype=quantiles.dtype) @ chol.T
    u = jax.scipy.stats.norm.cdf(z)
    # discrete: inverse empirical CDF (observed values in their observed proportions)
    idx_d = jnp.clip(jnp.floor(u * q).astype(jnp.int32), 0, q - 1)
    # continuous: interpolate between order statistics at plotting positions (i + 0.5) / q
    pos = jnp.clip(u * q - 0.5, 0.0, q - 1.0)
    lo = jnp.floor(pos).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, q - 1)
    frac = pos - lo
    cols = jnp.arange(p)[None, :]
    v_lo = quantiles[cols, lo]
    v_hi = quantiles[cols, hi]
    continuous = v_lo + frac * (v_hi - v_lo)
    return jnp.where(discrete[None, :], quantiles[cols, idx_d], continuous)
