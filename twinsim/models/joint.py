r"""Joint model of a biomarker trajectory and survival (NumPyro), its sampler and its checks.

A shared-random-effects joint model (Wulfsohn & Tsiatis 1997; Henderson, Diggle & Dobson
2000; Guo & Carlin 2004; Rizopoulos 2012); equations, priors and checks are in
``docs/models-joint.md``.  In short, with :math:`s = t / t_{ref}` and ``g`` a transform
(:data:`TRANSFORMS`; ``sqrt`` for counts such as CD4):

.. math::

    g(v_{ij}) = b_0 + \tilde x_i^\top \gamma + u_{0i} + (b_1 + u_{1i}) s_{ij} + \varepsilon_{ij},
    \quad u_i = \operatorname{diag}(\tau) L z_i, \quad z_i \sim N(0, I_2),

    h_i(t) = h_0(t) \exp\{\tilde x_i^\top \beta + \alpha_0 u_{0i}/\tau_0 + \alpha_1 u_{1i}/\tau_1\},

with :math:`h_0` the Weibull baseline of :func:`twinsim.models.weibull_ph` (same sites
``log_scale_std``, ``log_scale``, ``log_shape``, ``beta`` and priors).  New sites:
``bm_intercept``, ``bm_slope``, ``bm_gamma``, ``bm_sigma``, ``re_sd`` (:math:`\tau`),
``re_corr_chol`` (:math:`L`), ``re_z`` (:math:`z`, per patient), ``assoc`` (:math:`\alpha`,
log hazard ratios per sd of the random effect, the scale of ``beta``).

Event convention: ``event`` is 1 = event observed, 0 = right censored, as everywhere in
twinsim; it is read in one place, :func:`_weibull_loglik`.  Biomarker values come in long
format; ``NaN`` = missing (masked, keeps shapes fixed).  The model describes the biomarker
while the patient is at risk: :func:`biomarker_long` drops values taken after follow-up ends.
"""

from __future__ import annotations

import logging
import time as _time
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

from ..errors import ConvergenceWarning, DataError, ModelError, StatisticalWarning

__all__ = [
    "TRANSFORMS", "bm_transform", "bm_inverse", "biomarker_long", "joint_weibull",
    "joint_random_effects", "joint_eta_offset", "JointDraw", "joint_sample", "censoring_sampler",
    "JointFit", "joint_nuts", "fit_joint", "joint_predictive",
]

logger = logging.getLogger("twinsim.models.joint")

#: Biomarker transforms ``g``: ``sqrt`` (counts, e.g. CD4), ``log`` (positive, skewed), ``identity``.
TRANSFORMS = ("sqrt", "log", "identity")

#: Parameters summarised by :func:`fit_joint` (the main, non per-patient sites).
MAIN_SITES = ("log_scale", "log_shape", "beta", "bm_intercept", "bm_slope", "bm_gamma",
              "bm_sigma", "re_sd", "assoc")


# --------------------------------------------------------------------------- transforms


def _check_transform(transform: str) -> None:
    if transform not in TRANSFORMS:
        raise ModelError(
            f"transform {transform!r} is not a biomarker transform; use one of "
            f"{', '.join(TRANSFORMS)} ('sqrt' for counts such as CD4)."
        )


def bm_transform(value, transform: str = "sqrt"):
    """The model scale ``y = g(value)`` of raw biomarker values (the one forward transform);
    ``value`` (...) in the biomarker's unit, >= 0 for ``sqrt``, > 0 for ``log``."""
    _check_transform(transform)
    value = jnp.asarray(value)
    return {"sqrt": jnp.sqrt, "log": jnp.log, "identity": lambda v: v}[transform](value)


def bm_inverse(y, transform: str = "sqrt"):
    """Raw biomarker values ``g^{-1}(y)`` from the model scale (the one inverse transform).

    For ``sqrt`` the normal model puts a little mass below 0; ``y`` is clipped at 0 before
    squaring, so that mass becomes a count of 0 (a valid count) rather than a spurious
    positive value ``y**2``.
    """
    _check_transform(transform)
    y = jnp.asarray(y)
    if transform == "sqrt":
        return jnp.square(jnp.clip(y, 0.0, None))
    return jnp.exp(y) if transform == "log" else y


def biomarker_long(values, visit_times, *, time=None, field: str = "biomarker"):
    """Wide biomarker table -> long format, dropping missing and post-follow-up values.

    Parameters
    ----------
    values : array (n, k), biomarker unit
        One column per scheduled visit; ``NaN`` = not measured.
    visit_times : array (k,), >= 0, unit of ``time``
        Nominal time of each visit (e.g. weeks 0, 20, 96 as days 0, 140, 672).
    time : array (n,), > 0, optional
        Follow-up time (event or censoring, whichever the patient has).  Measurements with
        ``visit_time > time`` are dropped: the joint model describes the biomarker while
        the patient is at risk, so a value taken after the event is not part of it.
    field : str
        Name used in error messages.

    Returns
    -------
    bm_patient : np.ndarray (m,), int   row index of the patient
    bm_time : np.ndarray (m,), float    visit time
    bm_value : np.ndarray (m,), float   raw value
    """
    v = np.asarray(values, dtype=float)
    vt = np.asarray(visit_times, dtype=float)
    if v.ndim != 2 or vt.shape != (v.shape[1],):
        raise DataError(
            f"{field}: values must be (n, k) with one visit time per column; got values of "
            f"shape {v.shape} and visit_times of shape {vt.shape}. Pass one column per visit."
        )
    keep = np.isfinite(v)
    if time is not None:
        keep &= vt[None, :] <= np.asarray(time, dtype=float)[:, None]
    patient, visit = np.nonzero(keep)
    return patient.astype(np.int64), vt[visit], v[patient, visit]


# --------------------------------------------------------------------------- the model


def _validate_joint(n, time, event, bm_patient, bm_time, bm_value, transform) -> None:
    """Checks on concrete inputs (skipped under tracing); raises DataError."""
    t, e = np.asarray(time, float), np.asarray(event)
    if t.shape != (n,) or e.shape != (n,) or not (np.isfinite(t) & (t > 0)).all():
        raise DataError(f"time and event must have shape ({n},) like x, time finite and > 0; got "
                        f"shapes {t.shape}, {e.shape}, min time {np.min(t)!r}. Fix or drop those patients.")
    if not np.isin(e, (0, 1)).all():
        raise DataError(
            f"event must be 1 = event observed or 0 = right censored; got values "
            f"{np.unique(e)[:8].tolist()}. Recode it (numpyro's censored flag is the opposite)."
        )
    pat, bt, bv = np.asarray(bm_patient), np.asarray(bm_time, float), np.asarray(bm_value, float)
    m = pat.shape[0]
    if pat.ndim != 1 or bt.shape != (m,) or bv.shape != (m,):
        raise DataError(
            f"bm_patient, bm_time and bm_value must be 1-d of one length (long format); got "
            f"shapes {pat.shape}, {bt.shape}, {bv.shape}. Use biomarker_long on a wide table."
        )
    if m and (not np.issubdtype(pat.dtype, np.integer) or pat.min() < 0 or pat.max() >= n):
        raise DataError(
            f"bm_patient must hold integer row indices in [0, {n}); got dtype {pat.dtype}, range "
            f"[{pat.min()}, {pat.max()}]. Map patient ids to the row order of x first."
        )
    if not (np.isfinite(bt) & (bt >= 0)).all():
        raise DataError("bm_time must be finite and >= 0 (time since baseline, unit of time).")
    ok = bv[np.isfinite(bv)]
    if {"sqrt": (ok < 0).any(), "log": (ok <= 0).any(), "identity": False}[transform]:
        raise DataError(
            f"bm_value must be {'>= 0' if transform == 'sqrt' else '> 0'} for transform "
            f"{transform!r}; got min {ok.min()!r}. Use transform='identity' or fix the values."
        )


def _weibull_loglik(time, event, log_scale, log_shape, eta):
    """Weibull PH ``event * log h(t) - H(t)`` per patient (as ``weibull_ph``).

    The one place ``event`` is read: 1 = event observed, 0 = right censored (log S only).
    """
    log_cumhaz = jnp.exp(log_shape) * (jnp.log(time) - log_scale) + eta
    return event * (log_shape - jnp.log(time) + log_cumhaz) - jnp.exp(log_cumhaz)


def _observed_y(bm_value, transform):
    """Mask of observed values and ``g(value)`` (0 where missing, so gradients stay finite)."""
    v = jnp.asarray(bm_value, dtype=float)
    observed = jnp.isfinite(v)
    return observed, jnp.where(observed, bm_transform(jnp.where(observed, v, 1.0), transform), 0.0)


def _prior_centre_scale(y, observed):
    """Mean and sd of the observed ``y``: the data scale that the biomarker priors use."""
    count = jnp.maximum(observed.sum(), 1)
    mean = jnp.where(observed, y, 0.0).sum() / count
    sd = jnp.sqrt(jnp.where(observed, (y - mean) ** 2, 0.0).sum() / jnp.maximum(count - 1, 1))
    return mean, jnp.where(sd > 0, sd, 1.0)


def _coef(params, name, p):
    return jnp.asarray(params[name]) if p and name in params else jnp.zeros(p)


def joint_weibull(x, time, event, bm_patient, bm_time, bm_value, *, time_ref=1.0,
                  transform: str = "sqrt") -> None:
    """NumPyro joint model: biomarker trajectory and Weibull PH survival, shared random effects.

    Parameters
    ----------
    x : array (n, p)
        Standardised covariates (p may be 0).
    time : array (n,), float, > 0
        Follow-up time (unit of the data, e.g. days).
    event : array (n,), {0, 1}
        1 = event observed, 0 = right censored.
    bm_patient : array (m,), int
        Row of ``x`` of each biomarker measurement.
    bm_time : array (m,), float, >= 0
        Visit time, in the unit of ``time``.
    bm_value : array (m,), float
        Raw biomarker value (e.g. CD4 cells/mm^3); ``NaN`` = missing (masked out).
    time_ref : float
        Reference time (median follow-up): centres the prior of ``log_scale`` and makes the
        visit time dimensionless, ``s = bm_time / time_ref``.
    transform : {"sqrt", "log", "identity"}
        ``g`` applied to ``bm_value`` (see :func:`bm_transform`).

    Notes
    -----
    Priors (``m_y``, ``s_y`` = mean and sd of the observed ``g(bm_value)``; see the doc):
    ``log_scale - log(time_ref) ~ N(0, 3)``, ``log_shape ~ N(0, 1)``, ``beta ~ N(0, 1)``,
    ``assoc ~ N(0, 1)`` (per sd of the random effect), ``bm_intercept ~ N(m_y, 2.5 s_y)``,
    ``bm_slope ~ N(0, 2.5 s_y)`` (per ``time_ref``), ``bm_gamma ~ N(0, 2.5 s_y)``,
    ``re_sd ~ HalfNormal([s_y, 2 s_y])``, ``re_corr_chol ~ LKJCholesky(2, 2)``,
    ``bm_sigma ~ HalfNormal(s_y)``.  Sites ``obs`` (survival, a factor) and ``bm_obs``.
    """
    _check_transform(transform)
    x = jnp.asarray(x, dtype=float)
    n, p = x.shape
    if not any(isinstance(a, jax.core.Tracer) for a in (time, event, bm_patient, bm_time, bm_value)):
        _validate_joint(n, time, event, bm_patient, bm_time, bm_value, transform)
    time = jnp.asarray(time, dtype=float)
    bm_patient = jnp.asarray(bm_patient)
    # survival baseline: the sites and priors of weibull_ph
    log_scale_std = numpyro.sample("log_scale_std", dist.Normal(0.0, 3.0))
    log_scale = numpyro.deterministic("log_scale", log_scale_std + jnp.log(time_ref))
    log_shape = numpyro.sample("log_shape", dist.Normal(0.0, 1.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([p]).to_event(1)) if p else jnp.zeros(0)
    observed, y = _observed_y(bm_value, transform)
    y_mean, y_sd = _prior_centre_scale(y, observed)
    # sampled on the standardised scale (unit-scale geometry and initial values), recorded
    # on the data scale: bm_intercept = m_y + s_y * bm_intercept_std, and so on
    b0 = numpyro.deterministic(
        "bm_intercept", y_mean + y_sd * numpyro.sample("bm_intercept_std", dist.Normal(0.0, 2.5)))
    b1 = numpyro.deterministic(
        "bm_slope", y_sd * numpyro.sample("bm_slope_std", dist.Normal(0.0, 2.5)))
    gamma = (numpyro.deterministic("bm_gamma", y_sd * numpyro.sample(
        "bm_gamma_std", dist.Normal(0.0, 2.5).expand([p]).to_event(1))) if p else jnp.zeros(0))
    tau = numpyro.deterministic("re_sd", y_sd * numpyro.sample(
        "re_sd_std", dist.HalfNormal(jnp.array([1.0, 2.0])).to_event(1)))
    chol = numpyro.sample("re_corr_chol", dist.LKJCholesky(2, concentration=2.0))
    z = numpyro.sample("re_z", dist.Normal(0.0, 1.0).expand([n, 2]).to_event(2))
    assoc = numpyro.sample("assoc", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    sigma = numpyro.deterministic("bm_sigma", y_sd * numpyro.sample("bm_sigma_std", dist.HalfNormal(1.0)))
    u_std = z @ chol.T  # (n, 2) = u / tau: correlated standard normal (non-centred)
    u = u_std * tau
    s = jnp.asarray(bm_time, dtype=float) / time_ref
    mu = b0 + (x @ gamma)[bm_patient] + u[bm_patient, 0] + (b1 + u[bm_patient, 1]) * s
    numpyro.sample("bm_obs", dist.Normal(mu, sigma).mask(observed), obs=y)
    eta = x @ beta + u_std @ assoc
    numpyro.factor("obs", _weibull_loglik(time, jnp.asarray(event, float), log_scale, log_shape, eta))


def joint_random_effects(samples) -> np.ndarray:
    """Per-patient random effects ``u = diag(tau) L z`` of every draw.

    Parameters
    ----------
    samples : dict
        Draws with ``re_z`` (S, n, 2), ``re_corr_chol`` (S, 2, 2), ``re_sd`` (S, 2).

    Returns
    -------
    np.ndarray (S, n, 2)
        ``[..., 0]`` the random intercept, ``[..., 1]`` the random slope (per ``time_ref``),
        on the transformed biomarker scale.
    """
    z = np.asarray(samples["re_z"], float)
    chol = np.asarray(samples["re_corr_chol"], float)
    return np.einsum("snk,sjk->snj", z, chol) * np.asarray(samples["re_sd"], float)[:, None, :]


def joint_eta_offset(params, u):
    """Log-hazard contribution ``assoc . (u / re_sd)`` of random effects ``u`` (..., 2).

    Add it to the linear predictor ``x' beta`` of the Weibull PH model (pure JAX; broadcasts).
    """
    return (jnp.asarray(u) / params["re_sd"]) @ params["assoc"]


# --------------------------------------------------------------------------- sampler


class JointDraw(NamedTuple):
    """New patients from one posterior draw (pure JAX arrays; jit/vmap friendly): ``re``
    (n, 2) random intercept and slope (transformed scale), ``bm_value`` (n, k) biomarker at
    the visits (raw scale, with measurement error), ``time`` (n,) event time (uncensored)."""

    re: jnp.ndarray
    bm_value: jnp.ndarray
    time: jnp.ndarray


def joint_sample(key, params, x_std, visit_times, *, time_ref, transform: str = "sqrt") -> JointDraw:
    """Draw new patients' random effects, biomarker values and event times (pure JAX).

    Parameters
    ----------
    key : jax random key
    params : dict
        One posterior draw: ``log_scale``, ``log_shape``, ``bm_intercept``, ``bm_slope``,
        ``bm_sigma``, ``re_sd`` (2,), ``re_corr_chol`` (2, 2), ``assoc`` (2,), and
        ``beta`` (p,), ``bm_gamma`` (p,) when p > 0.
    x_std : array (n, p)
        Standardised covariates of the new patients.
    visit_times : array (k,) or (n, k)
        Visit times in the unit of the survival times.
    time_ref : float
        The ``time_ref`` of the fit.
    transform : {"sqrt", "log", "identity"}

    Returns
    -------
    JointDraw
        Values at every visit, whether or not the patient is still at risk then (mask them
        with the event and censoring times as the use requires); event times from the
        inverse cumulative hazard ``t = lambda (E / exp(eta))^(1/k)``, ``E ~ Exp(1)``.
        No censoring: draw it apart (e.g. :func:`censoring_sampler`); event = 1 there.
    """
    k_u, k_e, k_t = jax.random.split(key, 3)
    x_std = jnp.asarray(x_std, dtype=float)
    n, p = x_std.shape
    u = (jax.random.normal(k_u, (n, 2)) @ params["re_corr_chol"].T) * params["re_sd"]
    s = jnp.asarray(visit_times, dtype=float) / time_ref
    s = jnp.broadcast_to(s, (n,) + s.shape[-1:])
    mean = (params["bm_intercept"] + x_std @ _coef(params, "bm_gamma", p))[:, None] + u[:, :1] \
        + (params["bm_slope"] + u[:, 1:]) * s
    y = mean + params["bm_sigma"] * jax.random.normal(k_e, s.shape)
    eta = x_std @ _coef(params, "beta", p) + joint_eta_offset(params, u)
    e = jax.random.exponential(k_t, (n,))
    t = jnp.exp(params["log_scale"] + (jnp.log(e) - eta) * jnp.exp(-params["log_shape"]))
    return JointDraw(u, bm_inverse(y, transform), t)


def censoring_sampler(time, event) -> Callable:
    """Sampler of censoring times from the reverse Kaplan-Meier of the observed data.

    The censoring distribution is estimated by the Kaplan-Meier estimator with the roles
    swapped (``1 - event`` is the "event"; Schemper & Smith 1996), with all patients whose
    time is ``>= c`` at risk of censoring at ``c`` (the lifelines convention).  Draws are
    by inverse CDF; the mass left beyond the last observed censoring time (when the
    longest follow-up ends in an event) is put at that time: administrative censoring.

    Parameters
    ----------
    time : array (n,), > 0
    event : array (n,), {0, 1}
        1 = event observed, 0 = right censored.

    Returns
    -------
    callable ``sample(key, shape=()) -> array shape``
        Pure JAX.  With no censored patient: ``inf`` and a StatisticalWarning here.
    """
    t = np.asarray(time, dtype=float)
    cens = np.asarray(event) == 0  # censoring is the "event" of the reverse KM
    if not cens.any():
        warnings.warn("censoring_sampler: no censored patient; the sampler returns inf (no censoring).",
                      StatisticalWarning, stacklevel=2)
        return lambda key, shape=(): jnp.full(shape, jnp.inf)
    c = np.unique(t[cens])
    at_risk = (t[None, :] >= c[:, None]).sum(axis=1)
    d = (cens[None, :] & (t[None, :] == c[:, None])).sum(axis=1)
    cdf = jnp.asarray(1.0 - np.cumprod(1.0 - d / at_risk))  # F_C at each censoring time
    c = jnp.asarray(c)

    def sample(key, shape=()):
        v = jax.random.uniform(key, shape)
        idx = jnp.searchsorted(cdf, v, side="left")  # first c with F_C(c) >= v
        return c[jnp.clip(idx, 0, c.shape[0] - 1)]

    return sample


# --------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class JointFit:
    """Posterior draws of :func:`joint_weibull` with what is needed to reuse them.

    ``samples``: every site, flat over chains (chain-major, leading dimension chains x
    draws); ``time_ref``: median follow-up; ``covariate_mean``, ``covariate_sd`` (p,): the
    standardisation (ddof=0, constant column -> sd 1); ``diagnostics``: mean, sd, split
    R-hat and ESS per scalar main parameter; ``seconds``: NUTS wall time (with compilation).
    """

    samples: dict
    time_ref: float
    transform: str
    covariate_names: tuple
    covariate_mean: np.ndarray
    covariate_sd: np.ndarray
    diagnostics: pd.DataFrame = field(repr=False)
    divergences: int = 0
    seconds: float = 0.0

    def standardise(self, covariates) -> np.ndarray:
        """Covariates (n, p) standardised as in the fit."""
        return (np.asarray(covariates, float) - self.covariate_mean) / self.covariate_sd

    def draw(self, i: int) -> dict:
        """The ``i``-th posterior draw as a dict of its (main and random-effect) site values."""
        return {k: v[i] for k, v in self.samples.items()}


def _diagnostics(by_chain: dict) -> pd.DataFrame:
    summary = numpyro.diagnostics.summary(
        {k: v for k, v in by_chain.items() if k in MAIN_SITES}, group_by_chain=True)
    rows = []
    for name, stats in summary.items():
        for idx in np.ndindex(np.shape(stats["mean"])):
            label = name + (f"[{', '.join(map(str, idx))}]" if idx else "")
            rows.append({"param": label, **{k: float(np.asarray(stats[k])[idx])
                                            for k in ("mean", "std", "r_hat", "n_eff")}})
    return pd.DataFrame(rows).rename(columns={"std": "sd"})


def joint_nuts(example_args, *, transform: str = "sqrt", warmup: int = 500, draws: int = 500,
               target_accept: float = 0.8, max_tree_depth: int = 10) -> Callable:
    """One compiled NUTS chain of :func:`joint_weibull`, reusable on data of the same shapes.

    NumPyro's ``MCMC`` re-initialises (and recompiles parts of) the sampler on every run;
    this builds the chain once from NumPyro's functional ``hmc`` kernel (same NUTS with
    step-size and diagonal mass-matrix adaptation, initial values uniform in (-2, 2) on
    the unconstrained scale as NumPyro's default) and jit-compiles it with the data as
    arguments, so chains and repeated fits (simulation studies) pay one compilation.

    Parameters
    ----------
    example_args : tuple
        ``(x, time, event, bm_patient, bm_time, bm_value)`` fixing the shapes (see
        :func:`joint_weibull`; ``event`` 1 = event observed, 0 = right censored).
    transform : {"sqrt", "log", "identity"}
    warmup, draws, target_accept, max_tree_depth
        NUTS settings (``target_accept`` in (0, 1)).

    Returns
    -------
    callable ``run(key, x, time, event, bm_patient, bm_time, bm_value, time_ref)``
        Returns ``(samples, diverging, num_steps)``: a dict of every site (draws, ...),
        and per-draw divergence flags and leapfrog step counts.
    """
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import constrain_fn, potential_energy

    _check_transform(transform)
    model = partial(joint_weibull, transform=transform)

    def unconstrained():  # the latent sites on the unconstrained scale (shapes only, no compute)
        trace = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(*example_args, time_ref=1.0)
        return {name: biject_to(site["fn"].support).inv(site["value"])
                for name, site in trace.items() if site["type"] == "sample" and not site["is_observed"]}

    shapes = {name: a.shape for name, a in jax.eval_shape(unconstrained).items()}

    @jax.jit
    def run(key, x, time, event, bm_patient, bm_time, bm_value, time_ref):
        args, kwargs = (x, time, event, bm_patient, bm_time, bm_value), {"time_ref": time_ref}
        init_kernel, sample_kernel = hmc(partial(potential_energy, model, args, kwargs), algo="NUTS")
        keys = jax.random.split(key, len(shapes) + 1)
        z = {name: jax.random.uniform(k, shape, minval=-2.0, maxval=2.0)
             for k, (name, shape) in zip(keys[1:], shapes.items())}
        state = init_kernel(z, num_warmup=warmup, target_accept_prob=target_accept,
                            max_tree_depth=max_tree_depth, rng_key=keys[0])

        def step(state, _):
            state = sample_kernel(state)
            return state, (state.z, state.diverging, state.num_steps)

        _, (zs, diverging, steps) = jax.lax.scan(step, state, None, length=warmup + draws)
        zs = jax.tree.map(lambda a: a[warmup:], zs)
        constrain = partial(constrain_fn, model, args, kwargs, return_deterministic=True)
        return jax.vmap(constrain)(zs), diverging[warmup:], steps[warmup:]

    return run


def fit_joint(time, event, covariates, bm_patient, bm_time, bm_value, *, rng_key,
              transform: str = "sqrt", chains: int = 2, warmup: int = 500, draws: int = 500,
              target_accept: float = 0.8) -> JointFit:
    """Fit :func:`joint_weibull` by NUTS on standardised covariates (chains run in turn).

    Parameters
    ----------
    time : array (n,), > 0, unit of the data
    event : array (n,), {0, 1}
        1 = event observed, 0 = right censored.
    covariates : DataFrame (n, p) or None
        Numeric baseline covariates, no missing values.
    bm_patient, bm_time, bm_value : arrays (m,)
        Biomarker in long format (see :func:`biomarker_long`).
    rng_key : jax random key
    transform : {"sqrt", "log", "identity"}
    chains, warmup, draws : int
        Chains, warmup iterations and kept draws per chain.
    target_accept : float in (0, 1)

    Returns
    -------
    JointFit
        Warns :class:`~twinsim.errors.ConvergenceWarning` when a main parameter has split
        R-hat > 1.01 or there are divergent transitions.
    """
    _check_transform(transform)
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ModelError(f"fit_joint: {name} must be a positive integer; got {value!r}.")
    t = np.asarray(time, dtype=float)
    frame = pd.DataFrame(index=range(t.shape[0])) if covariates is None else pd.DataFrame(covariates)
    x = frame.to_numpy(dtype=float)
    if len(frame) != t.shape[0] or not np.isfinite(x).all():
        raise DataError(
            f"covariates must have one row per patient ({t.shape[0]}) and no NaN or infinite "
            f"value; got {len(frame)} rows, {int((~np.isfinite(x)).sum())} non-finite. Impute or drop.")
    mean = x.mean(axis=0)
    sd = np.where(np.ptp(x, axis=0) == 0, 1.0, x.std(axis=0))
    _validate_joint(t.shape[0], t, event, bm_patient, bm_time, bm_value, transform)
    args = ((x - mean) / sd, t, np.asarray(event, float), np.asarray(bm_patient, np.int64),
            np.asarray(bm_time, float), np.asarray(bm_value, float))
    time_ref = float(np.median(t))
    logger.info("fitting the joint model by NUTS: n=%d, events=%d, p=%d, m=%d, %d chain(s) x (%d + %d)",
                t.shape[0], int(args[2].sum()), x.shape[1], len(args[5]), chains, warmup, draws)
    start = _time.perf_counter()
    run = joint_nuts(args, transform=transform, warmup=int(warmup), draws=int(draws),
                     target_accept=float(target_accept))
    out = [run(k, *args, time_ref) for k in jax.random.split(rng_key, int(chains))]
    by_chain = {k: np.stack([np.asarray(o[0][k]) for o in out]) for k in out[0][0]}
    seconds = _time.perf_counter() - start
    samples = {k: v.reshape((-1,) + v.shape[2:]) for k, v in by_chain.items()}
    divergences = int(sum(np.asarray(o[1]).sum() for o in out))
    diagnostics = _diagnostics(by_chain)
    logger.info("NUTS finished in %.1f s (%d divergences)", seconds, divergences)
    problems = [f"split R-hat > 1.01 for {diagnostics.loc[diagnostics.r_hat > 1.01, 'param'].tolist()}"
                ] if (diagnostics["r_hat"] > 1.01).any() else []
    problems += [f"{divergences} divergent transitions"] if divergences else []
    if problems:
        warnings.warn("joint model: " + "; ".join(problems) + ". Run longer chains or raise "
                      "target_accept towards 0.95.", ConvergenceWarning, stacklevel=2)
    return JointFit(samples, time_ref, transform, tuple(map(str, frame.columns)), mean, sd,
                    diagnostics, divergences, seconds)


def joint_predictive(rng_key, fit: JointFit, x_std, visit_times, *, n_draws: int | None = None,
                     n_patients: int | None = None, censoring: Callable | None = None) -> dict:
    """Posterior predictive synthetic cohorts, one per posterior draw (vmapped, pure JAX).

    Each cohort resamples ``n_patients`` rows of ``x_std`` with replacement, draws their
    random effects, biomarker values and event times with :func:`joint_sample` and, when
    ``censoring`` is given, censoring times from it (independent of everything else).

    Parameters
    ----------
    rng_key : jax random key
    fit : JointFit
    x_std : array (n, p)
        Standardised covariates to resample (usually the data's own).
    visit_times : array (k,), unit of the data
    n_draws, n_patients : int, optional
        Posterior draws used (evenly spaced; default all) and cohort size (default n).
    censoring : callable ``(key, shape) -> times``, optional
        E.g. :func:`censoring_sampler` of the data; default no censoring (``inf``).

    Returns
    -------
    dict of np.ndarray
        ``time`` (D, N) observed time ``min(T, C)``; ``event`` (D, N) 1 = event observed,
        0 = censored; ``event_time``, ``censor_time`` (D, N); ``bm_value`` (D, N, k) raw;
        ``at_risk`` (D, N, k) True where the visit is ``<= min(T, C)``; ``re`` (D, N, 2).
    """
    x_std = jnp.asarray(x_std, dtype=float)
    total = len(next(iter(fit.samples.values())))
    idx = np.linspace(0, total - 1, n_draws or total).round().astype(int)
    params = {k: jnp.asarray(v[idx]) for k, v in fit.samples.items() if k != "re_z"}
    size = int(n_patients or x_std.shape[0])
    visits = jnp.asarray(visit_times, dtype=float)

    def one(key, draw):
        k_rows, k_joint, k_cens = jax.random.split(key, 3)
        rows = jax.random.randint(k_rows, (size,), 0, x_std.shape[0])
        out = joint_sample(k_joint, draw, x_std[rows], visits, time_ref=fit.time_ref, transform=fit.transform)
        c = censoring(k_cens, (size,)) if censoring is not None else jnp.full(size, jnp.inf)
        observed = jnp.minimum(out.time, c)
        return {"time": observed, "event": (out.time <= c).astype(jnp.int32), "event_time": out.time,
                "censor_time": c, "bm_value": out.bm_value, "at_risk": visits[None, :] <= observed[:, None],
                "re": out.re}

    keys = jax.random.split(rng_key, idx.shape[0])
    return {k: np.asarray(v) for k, v in jax.jit(jax.vmap(one))(keys, params).items()}
