"""Outcome models (NumPyro): the distribution of time to event given covariates.

Four families, each written once as a *family* object that knows its priors, its
log-likelihood, its cumulative hazard and the inverse of that hazard (for simulation):

================================  =====  ========================================================
family                            kind   survival function
================================  =====  ========================================================
``exponential``                   PH     :math:`S(t) = \\exp\\{-(t/\\lambda)\\, e^{\\eta}\\}`
``weibull``                       PH     :math:`S(t) = \\exp\\{-(t/\\lambda)^k e^{\\eta}\\}`
``piecewise_exponential``         PH     :math:`S(t) = \\exp\\{-e^{\\eta} \\sum_j h_j\\,|[c_j, c_{j+1}) \\cap [0, t)|\\}`
``lognormal``                     AFT    :math:`S(t) = 1 - \\Phi\\{(\\log t - \\mu - \\eta)/\\sigma\\}`
================================  =====  ========================================================

with :math:`\\eta = \\tilde{x}^\\top \\beta` on covariates :math:`\\tilde x` standardised by the
historical mean and standard deviation (plus a study effect when the data come from several
studies, see below).  For the PH families :math:`\\beta` are log hazard ratios per standard
deviation; for the log-normal AFT family they are log *time* ratios (positive = longer
survival).  A hazard multiplier :math:`m` (treatment effect, drift) always acts on the
cumulative hazard, :math:`H_m(t \\mid x) = m\\,H(t \\mid x)`: for the PH families that is
:math:`\\eta + \\log m`; for the log-normal family it makes treatment and control
non-proportional in time *within* the AFT baseline but keeps the scenario's hazard ratio exact.

Priors (weakly informative; time is centred by :math:`t_{ref}`, the median observed time):

* exponential / Weibull: ``log_scale - log(t_ref) ~ N(0, 3)``, ``log_shape ~ N(0, 1)``;
* piecewise exponential (cut points :math:`0 = c_0 < c_1 < \\dots < c_{K-1}`, the last piece
  open-ended): ``log_hazard[0] + log(t_ref) ~ N(0, 3)`` and a first-order random walk
  ``log_hazard[j] - log_hazard[j-1] ~ N(0, 1)`` (adjacent pieces' hazards within a factor
  e^2 with 95% prior probability, a mild smoothness assumption);
* log-normal: ``mu - log(t_ref) ~ N(0, 3)``, ``log_sigma ~ N(0, 1)``;
* ``beta_j ~ N(0, 1)`` in every family (a ratio per standard deviation within [0.14, 7.4]
  with 95% prior probability).

Several historical studies (``study`` codes ``0..K-1`` with ``n_studies = K > 1``) add a
study effect to :math:`\\eta`: ``study_effect[k] = study_sd * study_z[k]``, ``study_z ~ N(0,
1)``, ``study_sd ~ HalfNormal(study_prior_sd)`` (non-centred).  The effect shifts the log
hazard (PH) or the log time (AFT) of every patient of study ``k``; a new trial's population
is a new draw ``N(0, study_sd^2)``, which is how the between-study heterogeneity reaches the
simulation (the meta-analytic-predictive idea, Neuenschwander et al. 2010).

Event convention: ``event`` is 1 = event observed, 0 = right censored (as everywhere in
twinsim).  The log-likelihood of a patient is ``event * log f(t) + (1 - event) * log S(t)``,
written out in :meth:`OutcomeFamily.loglik`; it enters NumPyro through one ``factor`` site
named ``obs`` (:func:`_likelihood`), so the pointwise values used for PSIS-LOO are the same
function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import log_ndtr, ndtri

from ..errors import ModelError

__all__ = [
    "OutcomeFamily",
    "FAMILIES",
    "get_family",
    "OUTCOME_MODELS",
    "get_outcome_model",
    "outcome_model",
    "exponential_ph",
    "weibull_ph",
    "piecewise_exponential_ph",
    "lognormal_aft",
    "default_knots",
    "event_time_from_exponential",
    "survival",
]

#: Prior standard deviation of the between-study SD (half-normal) on the log hazard / log time scale.
STUDY_PRIOR_SD = 0.5


# --------------------------------------------------------------------------- families


@dataclass(frozen=True)
class OutcomeFamily:
    """An outcome family: priors, likelihood, cumulative hazard and its inverse.

    Attributes
    ----------
    name : str
        Registry name (the scenario's ``model.outcome``).
    kind : {"ph", "aft"}
        Proportional hazards (``beta`` = log hazard ratios) or accelerated failure time
        (``beta`` = log time ratios).
    params : tuple of str
        Per-draw parameters other than ``beta`` that the simulator needs (posterior
        sites), e.g. ``("log_scale", "log_shape")``.
    time_params : dict
        How each parameter changes with the time unit: ``+1`` if it is a log time
        (shifted by ``log f`` when times are multiplied by ``f``), ``-1`` if it is a log
        rate (shifted by ``-log f``), ``0`` if unit-free.

    All array methods take ``p``, a dict of parameters broadcastable against ``t`` / ``eta``
    (one draw, or one draw per patient), and ``consts`` (e.g. the knots).
    """

    name: str
    kind: str
    params: tuple[str, ...]
    time_params: dict
    description: str

    # -- NumPyro priors ----------------------------------------------------------------

    def sample_params(self, time_ref: float, consts: dict) -> dict:
        """Sample the family's parameters from their priors (inside a NumPyro model)."""
        log_ref = jnp.log(time_ref)
        if self.name in ("weibull", "exponential"):
            log_scale_std = numpyro.sample("log_scale_std", dist.Normal(0.0, 3.0))
            log_scale = numpyro.deterministic("log_scale", log_scale_std + log_ref)
            if self.name == "weibull":
                log_shape = numpyro.sample("log_shape", dist.Normal(0.0, 1.0))
            else:
                log_shape = numpyro.deterministic("log_shape", jnp.zeros(()))
            return {"log_scale": log_scale, "log_shape": log_shape}
        if self.name == "piecewise_exponential":
            k = len(consts["knots"])
            first = numpyro.sample("log_hazard_std", dist.Normal(0.0, 3.0))
            if k > 1:
                steps = numpyro.sample("log_hazard_step", dist.Normal(0.0, 1.0).expand([k - 1]).to_event(1))
                walk = jnp.concatenate([jnp.zeros(1), jnp.cumsum(steps)])
            else:
                walk = jnp.zeros(1)
            return {"log_hazard": numpyro.deterministic("log_hazard", first - log_ref + walk)}
        if self.name == "lognormal":
            mu_std = numpyro.sample("mu_std", dist.Normal(0.0, 3.0))
            mu = numpyro.deterministic("mu", mu_std + log_ref)
            log_sigma = numpyro.sample("log_sigma", dist.Normal(0.0, 1.0))
            return {"mu": mu, "log_sigma": log_sigma}
        raise AssertionError(self.name)

    # -- closed forms ------------------------------------------------------------------

    def log_cumhaz(self, t, p, eta, consts):
        """``log H(t | eta)``; broadcasts."""
        if self.name in ("weibull", "exponential"):
            return jnp.exp(p["log_shape"]) * (jnp.log(t) - p["log_scale"]) + eta
        if self.name == "piecewise_exponential":
            return jnp.log(_pwe_cumhaz0(t, p["log_hazard"], consts["knots"])) + eta
        z = (jnp.log(t) - p["mu"] - eta) / jnp.exp(p["log_sigma"])
        return jnp.log(-log_ndtr(-z))

    def loglik(self, t, event, p, eta, consts):
        """Pointwise log-likelihood ``event log f(t) + (1 - event) log S(t)``.

        Event convention: ``event`` 1 = event observed, 0 = right censored.
        """
        if self.name in ("weibull", "exponential"):
            k = jnp.exp(p["log_shape"])
            log_h_cum = k * (jnp.log(t) - p["log_scale"]) + eta
            log_haz = p["log_shape"] - jnp.log(t) + log_h_cum
            return event * log_haz - jnp.exp(log_h_cum)
        if self.name == "piecewise_exponential":
            knots = consts["knots"]
            idx = jnp.clip(jnp.searchsorted(knots, t, side="right") - 1, 0, knots.shape[0] - 1)
            log_h = jnp.take_along_axis(
                jnp.broadcast_to(p["log_hazard"], jnp.broadcast_shapes(p["log_hazard"].shape, t.shape + (knots.shape[0],))),
                idx[..., None], axis=-1,
            )[..., 0]
            return event * (log_h + eta) - _pwe_cumhaz0(t, p["log_hazard"], knots) * jnp.exp(eta)
        sigma = jnp.exp(p["log_sigma"])
        z = (jnp.log(t) - p["mu"] - eta) / sigma
        log_f = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - p["log_sigma"] - jnp.log(t)
        return event * log_f + (1 - event) * log_ndtr(-z)

    def time_at(self, log_h, p, eta, consts):
        """The time ``t`` with ``log H(t | eta) = log_h`` (inverse cumulative hazard).

        With ``log_h = log E - log m``, ``E ~ Exponential(1)``, this draws an event time
        under the hazard multiplier ``m``.
        """
        if self.name in ("weibull", "exponential"):
            return jnp.exp(p["log_scale"] + (log_h - eta) * jnp.exp(-p["log_shape"]))
        if self.name == "piecewise_exponential":
            return _pwe_inverse(jnp.exp(log_h - eta), p["log_hazard"], consts["knots"])
        h = jnp.exp(log_h)
        # z = Phi^{-1}(1 - S), S = exp(-H): accurate form on each side of S = 1/2
        z = jnp.where(h < math.log(2.0), ndtri(-jnp.expm1(-h)), -ndtri(jnp.exp(-h)))
        return jnp.exp(p["mu"] + eta + jnp.exp(p["log_sigma"]) * z)

    def survival(self, t, p, eta, consts):
        """``S(t | eta) = exp(-H(t | eta))``; broadcasts."""
        return jnp.exp(-jnp.exp(self.log_cumhaz(t, p, eta, consts)))

    def rescale(self, params: dict, consts: dict, log_f: float) -> tuple[dict, dict]:
        """Express parameters and constants in a unit where times are ``exp(log_f)`` times larger."""
        out = {k: np.asarray(v, float) + self.time_params.get(k, 0) * log_f for k, v in params.items()}
        c = dict(consts)
        if "knots" in c:
            c["knots"] = np.asarray(c["knots"], float) * math.exp(log_f)
        return out, c


def _pwe_cumhaz0(t, log_hazard, knots):
    """Baseline cumulative hazard of the piecewise-exponential model at ``t`` (broadcasts)."""
    upper = jnp.concatenate([knots[1:], jnp.array([jnp.inf])])
    exposure = jnp.clip(jnp.minimum(t[..., None], upper) - knots, 0.0, None)
    return jnp.sum(jnp.exp(log_hazard) * exposure, axis=-1)


def _pwe_inverse(h, log_hazard, knots):
    """Time at which the baseline cumulative hazard reaches ``h`` (broadcasts)."""
    hazard = jnp.exp(log_hazard)
    widths = jnp.diff(knots)
    cum = jnp.concatenate(
        [jnp.zeros(hazard.shape[:-1] + (1,)), jnp.cumsum(hazard[..., :-1] * widths, axis=-1)], axis=-1
    )  # cumulative hazard at each knot
    cum = jnp.broadcast_to(cum, jnp.broadcast_shapes(cum.shape, h.shape + (knots.shape[0],)))
    idx = jnp.sum(cum <= h[..., None], axis=-1) - 1
    idx = jnp.clip(idx, 0, knots.shape[0] - 1)
    c_at = jnp.take_along_axis(cum, idx[..., None], axis=-1)[..., 0]
    haz = jnp.take_along_axis(jnp.broadcast_to(hazard, cum.shape), idx[..., None], axis=-1)[..., 0]
    return knots[idx] + (h - c_at) / haz


FAMILIES: dict[str, OutcomeFamily] = {
    "exponential": OutcomeFamily(
        "exponential", "ph", ("log_scale", "log_shape"), {"log_scale": 1},
        "exponential proportional hazards (constant hazard)",
    ),
    "weibull": OutcomeFamily(
        "weibull", "ph", ("log_scale", "log_shape"), {"log_scale": 1},
        "Weibull proportional hazards (monotone hazard)",
    ),
    "piecewise_exponential": OutcomeFamily(
        "piecewise_exponential", "ph", ("log_hazard",), {"log_hazard": -1},
        "piecewise-exponential proportional hazards (hazard constant between cut points)",
    ),
    "lognormal": OutcomeFamily(
        "lognormal", "aft", ("mu", "log_sigma"), {"mu": 1},
        "log-normal accelerated failure time (hazard rises then falls)",
    ),
}


def get_family(name: str) -> OutcomeFamily:
    """The family registered under ``name``, or a :class:`ModelError` listing them."""
    if name in FAMILIES:
        return FAMILIES[name]
    raise ModelError(f"model.outcome {name!r} is unknown; use one of: {', '.join(FAMILIES)}.")


def default_knots(time, event, pieces: int = 5) -> np.ndarray:
    """Cut points of the piecewise-exponential model chosen from the data.

    ``0`` and the ``j / pieces`` quantiles (``j = 1..pieces-1``) of the observed event times,
    so that each piece holds about the same number of events.  Ties are merged (fewer
    pieces).  Event convention: ``event`` 1 = event observed.
    """
    if pieces < 1:
        raise ModelError(f"model.pieces must be >= 1; got {pieces}.")
    t = np.asarray(time, float)[np.asarray(event) == 1]
    if t.size == 0 or pieces == 1:
        return np.zeros(1)
    inner = np.quantile(t, np.arange(1, pieces) / pieces)
    return np.unique(np.concatenate([[0.0], inner[inner > 0]]))


# --------------------------------------------------------------------------- NumPyro models


def _linear_predictor(x):
    p = x.shape[1]
    if p == 0:
        return jnp.zeros(x.shape[0])
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([p]).to_event(1))
    return x @ beta


def _study_effect(study, n_studies: int, prior_sd: float):
    if n_studies <= 1:
        return 0.0
    sd = numpyro.sample("study_sd", dist.HalfNormal(prior_sd))
    z = numpyro.sample("study_z", dist.Normal(0.0, 1.0).expand([n_studies]).to_event(1))
    effect = numpyro.deterministic("study_effect", sd * z)
    return effect[study]


def _likelihood(family: OutcomeFamily, time, event, p, eta, consts) -> None:
    """The one likelihood site ``obs``: pointwise ``family.loglik`` (event 1 = observed)."""
    numpyro.factor("obs", family.loglik(time, jnp.asarray(event, time.dtype), p, eta, consts))


def outcome_model(
    family: str | OutcomeFamily,
    x,
    time,
    event,
    *,
    time_ref: float = 1.0,
    knots=None,
    study=None,
    n_studies: int = 1,
    study_prior_sd: float = STUDY_PRIOR_SD,
) -> None:
    """NumPyro model of right-censored times under ``family`` (see the module docstring).

    Parameters
    ----------
    family : str or OutcomeFamily
    x : array (n, p)
        Standardised covariates (p may be 0).
    time : array (n,), float, > 0
        Follow-up time in the data's unit.
    event : array (n,), {0, 1}
        1 = event observed, 0 = right censored.
    time_ref : float
        Reference time (median follow-up) that centres the priors.
    knots : array (K,), optional
        Piecewise-exponential cut points (first 0), in the data's unit.
    study : array (n,) int, optional
        Study code of each patient when ``n_studies > 1``.
    n_studies : int
    study_prior_sd : float
        Scale of the half-normal prior of the between-study SD.
    """
    fam = get_family(family) if isinstance(family, str) else family
    time = jnp.asarray(time)
    consts = {"knots": jnp.asarray(knots)} if knots is not None else {}
    if fam.name == "piecewise_exponential" and knots is None:
        raise ModelError("the piecewise_exponential model needs its cut points (knots); see default_knots.")
    p = fam.sample_params(time_ref, consts)
    eta = _linear_predictor(x)
    if n_studies > 1:
        eta = eta + _study_effect(jnp.asarray(study), n_studies, study_prior_sd)
    _likelihood(fam, time, event, p, eta, consts)


def _named(name: str) -> Callable:
    def model(x, time, event, *, time_ref: float = 1.0, **kwargs) -> None:
        outcome_model(name, x, time, event, time_ref=time_ref, **kwargs)

    model.__name__ = {"weibull": "weibull_ph", "exponential": "exponential_ph",
                      "piecewise_exponential": "piecewise_exponential_ph", "lognormal": "lognormal_aft"}[name]
    model.__doc__ = (
        f"{FAMILIES[name].description.capitalize()} model with right censoring: "
        f"``outcome_model({name!r}, x, time, event, ...)``. ``event`` 1 = event observed."
    )
    return model


weibull_ph = _named("weibull")
exponential_ph = _named("exponential")
piecewise_exponential_ph = _named("piecewise_exponential")
lognormal_aft = _named("lognormal")

#: Outcome model registry: scenario name -> NumPyro model function.
OUTCOME_MODELS: dict[str, Callable] = {
    "exponential": exponential_ph,
    "weibull": weibull_ph,
    "piecewise_exponential": piecewise_exponential_ph,
    "lognormal": lognormal_aft,
}


def get_outcome_model(name: str) -> Callable:
    """Return the NumPyro model registered under ``name`` or raise a clear error."""
    if name in OUTCOME_MODELS:
        return OUTCOME_MODELS[name]
    raise ModelError(
        f"model.outcome {name!r} is unknown; use one of: {', '.join(OUTCOME_MODELS)}."
    )


# --------------------------------------------------------------------------- Weibull helpers


def event_time_from_exponential(e, log_scale, log_shape, eta):
    """Event time with cumulative hazard ``e`` under the Weibull PH model (inverse of H).

    ``H(t) = (t / scale)^k exp(eta)``, so ``t = scale * (e / exp(eta))^(1/k)``.  With
    ``e ~ Exponential(1)`` this draws from the model; hazard multipliers are added to
    ``eta`` on the log scale.  All arguments broadcast.
    """
    return jnp.exp(log_scale + (jnp.log(e) - eta) / jnp.exp(log_shape))


def survival(t, log_scale, log_shape, eta):
    """Survival function ``S(t | eta)`` of the Weibull PH model; arguments broadcast."""
    k = jnp.exp(log_shape)
    return jnp.exp(-jnp.exp(k * (jnp.log(t) - log_scale) + eta))

