"""Generative models: the outcome models (NumPyro) and the covariate generator.

Outcome models
--------------
Both outcome families are proportional-hazards models on the data's time unit,

.. math::

    S(t \\mid x) = \\exp\\{-(t/\\lambda)^k \\, e^{\\eta}\\}, \\qquad
    h(t \\mid x) = \\frac{k}{\\lambda}\\left(\\frac{t}{\\lambda}\\right)^{k-1} e^{\\eta},
    \\qquad \\eta = \\tilde{x}^\\top \\beta,

with :math:`\\tilde{x}` the covariates standardised by the historical mean and standard
deviation, :math:`\\lambda = e^{\\text{log\\_scale}}` the baseline scale (the event-time
scale of a patient with average covariates) and :math:`k = e^{\\text{log\\_shape}}` the
Weibull shape (fixed at 1 for the exponential model).  A hazard multiplier :math:`m`
(treatment effect, drift) enters as :math:`\\eta + \\log m`.

Priors (weakly informative, on standardised covariates and on time divided by the median
observed time :math:`t_{ref}`):

* ``log_scale - log(t_ref) ~ Normal(0, 3)``
* ``log_shape ~ Normal(0, 1)`` (Weibull only)
* ``beta_j ~ Normal(0, 1)`` (a hazard ratio per standard deviation within [0.14, 7.4]
  with 95% prior probability).

Event convention: these functions take ``event`` with 1 = event observed, 0 = right
censored (as everywhere in twinsim).  The one conversion to NumPyro's *censored* flag is
in :func:`_censored_likelihood`.

Covariate generator
-------------------
:class:`CovariateCopula` is a Gaussian copula with empirical marginals: the dependence
between covariates is the correlation of their normal scores, and each marginal is the
empirical quantile function of the historical column.  Integer-valued columns (binary,
counts, scores) are drawn from their observed values only, so they stay valid; continuous
columns are interpolated between order statistics, so they stay inside the observed range.
The copula is a point estimate (it carries no parameter uncertainty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from scipy import stats

from .errors import ModelError

__all__ = [
    "TIME_UNITS",
    "time_factor",
    "OUTCOME_MODELS",
    "get_outcome_model",
    "exponential_ph",
    "weibull_ph",
    "event_time_from_exponential",
    "survival",
    "CovariateCopula",
    "copula_sample",
]

#: Length of each supported time unit in days (a month is 365.25 / 12 days).
TIME_UNITS: dict[str, float] = {
    "days": 1.0,
    "weeks": 7.0,
    "months": 365.25 / 12.0,
    "years": 365.25,
}


def time_factor(from_unit: str, to_unit: str) -> float:
    """Multiply a duration in ``from_unit`` by this factor to express it in ``to_unit``."""
    for unit in (from_unit, to_unit):
        if unit not in TIME_UNITS:
            raise ModelError(
                f"unknown time unit {unit!r}; use one of {', '.join(TIME_UNITS)}."
            )
    return TIME_UNITS[from_unit] / TIME_UNITS[to_unit]


# --------------------------------------------------------------------------- outcome


def _censored_likelihood(base: dist.Distribution, time, event) -> None:
    """Right-censored likelihood; the only place ``event`` becomes NumPyro's flag."""
    censored = jnp.asarray(event) == 0  # numpyro: True = censored; twinsim: 1 = event
    numpyro.sample("obs", dist.RightCensoredDistribution(base, censored=censored), obs=time)


def _linear_predictor(x):
    p = x.shape[1]
    if p == 0:
        return jnp.zeros(x.shape[0])
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([p]).to_event(1))
    return x @ beta


def weibull_ph(x, time, event, *, time_ref: float = 1.0) -> None:
    """Weibull proportional-hazards model with right censoring.

    Parameters
    ----------
    x : array (n, p)
        Standardised covariates.
    time : array (n,), float, > 0
        Follow-up time in the data's unit.
    event : array (n,), {0, 1}
        1 = event observed, 0 = right censored.
    time_ref : float
        Reference time (median follow-up) that centres the prior of ``log_scale``.
    """
    log_scale_std = numpyro.sample("log_scale_std", dist.Normal(0.0, 3.0))
    log_scale = numpyro.deterministic("log_scale", log_scale_std + jnp.log(time_ref))
    log_shape = numpyro.sample("log_shape", dist.Normal(0.0, 1.0))
    eta = _linear_predictor(x)
    k = jnp.exp(log_shape)
    # S = exp(-(t/scale)^k e^eta) = exp(-(t / (scale e^{-eta/k}))^k)
    _censored_likelihood(dist.Weibull(jnp.exp(log_scale - eta / k), k), time, event)


def exponential_ph(x, time, event, *, time_ref: float = 1.0) -> None:
    """Exponential proportional-hazards model (Weibull with shape 1); see :func:`weibull_ph`."""
    log_scale_std = numpyro.sample("log_scale_std", dist.Normal(0.0, 3.0))
    log_scale = numpyro.deterministic("log_scale", log_scale_std + jnp.log(time_ref))
    numpyro.deterministic("log_shape", jnp.zeros(()))
    eta = _linear_predictor(x)
    _censored_likelihood(dist.Exponential(jnp.exp(eta - log_scale)), time, event)


#: Outcome model registry: scenario name -> NumPyro model function.
OUTCOME_MODELS: dict[str, Callable] = {
    "exponential": exponential_ph,
    "weibull": weibull_ph,
}

_PLANNED = {
    "piecewise_exponential": "issue 3 (more outcome families)",
    "lognormal": "issue 3 (more outcome families)",
}


def get_outcome_model(name: str) -> Callable:
    """Return the NumPyro model registered under ``name`` or raise a clear error."""
    if name in OUTCOME_MODELS:
        return OUTCOME_MODELS[name]
    if name in _PLANNED:
        raise ModelError(
            f"model.outcome {name!r} is not implemented yet (planned in {_PLANNED[name]}); "
            f"use one of: {', '.join(OUTCOME_MODELS)}."
        )
    raise ModelError(
        f"model.outcome {name!r} is unknown; use one of: {', '.join(OUTCOME_MODELS)}."
    )


def event_time_from_exponential(e, log_scale, log_shape, eta):
    """Event time with cumulative hazard ``e`` under the PH model (inverse of H).

    ``H(t) = (t / scale)^k exp(eta)``, so ``t = scale * (e / exp(eta))^(1/k)``.  With
    ``e ~ Exponential(1)`` this draws from the model; hazard multipliers are added to
    ``eta`` on the log scale.  All arguments broadcast.
    """
    return jnp.exp(log_scale + (jnp.log(e) - eta) / jnp.exp(log_shape))


def survival(t, log_scale, log_shape, eta):
    """Survival function ``S(t | eta)`` of the PH model; arguments broadcast."""
    k = jnp.exp(log_shape)
    return jnp.exp(-jnp.exp(k * (jnp.log(t) - log_scale) + eta))


# --------------------------------------------------------------------------- covariates


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
