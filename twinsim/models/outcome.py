"""Outcome models (NumPyro): the distribution of time to event given covariates.

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
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from ..errors import ModelError

__all__ = [
    "OUTCOME_MODELS",
    "get_outcome_model",
    "exponential_ph",
    "weibull_ph",
    "event_time_from_exponential",
    "survival",
]

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


