"""Posterior predictive patients with biomarker trajectories, from a joint model fit.

The survival-only predictive (covariates and event times) lives in :mod:`twinsim.simulate`
(:func:`~twinsim.simulate.sample_patients`, :func:`~twinsim.simulate.predictive_km`).  A
posterior fitted with a joint biomarker model (:func:`twinsim.fit.fit_joint_model`) also
gives each synthetic patient a trajectory: :func:`sample_trajectories` draws patients with
their random effects, biomarker values at the visits and event times, all consistent with
one another (the same random effects drive the biomarker and the hazard), and
:func:`biomarker_ppc_arrays` builds the report's predictive check of the biomarker by visit.

Event convention: ``event`` 1 = event observed, 0 = right censored.  Randomness only through
the ``rng_key`` arguments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .errors import ModelError
from .models import time_factor
from .models.joint import bm_transform, censoring_sampler, joint_sample

__all__ = ["sample_trajectories", "biomarker_ppc_arrays", "measurement_weights", "visit_of_measurement"]


def _require_joint(posterior) -> dict:
    if getattr(posterior, "joint", None) is None:
        raise ModelError(
            "this posterior has no biomarker model; fit one with model.joint in the scenario "
            "(twinsim.fit.fit_joint_model) to get trajectories."
        )
    return posterior.joint


def _draw_params(posterior, idx) -> dict:
    """Survival and biomarker parameters of draws ``idx`` (array), in the fit's time unit."""
    j = posterior.joint["params"]
    params = {k: jnp.asarray(np.asarray(v, float)[idx]) for k, v in j.items()}
    params["log_scale"] = jnp.asarray(posterior.params["log_scale"][idx])
    params["log_shape"] = jnp.asarray(posterior.params["log_shape"][idx])
    params["beta"] = jnp.asarray(posterior.beta[idx])
    return params


def _design(posterior, key, n: int):
    """``n`` synthetic covariate rows: raw DataFrame and standardised design (n, p)."""
    frame = posterior.covariate_model.sample(key, n)
    x = posterior.covariate_model.design(frame, field="synthetic covariates")
    return frame, (np.asarray(x, float) - posterior.covariate_mean) / posterior.covariate_sd


def sample_trajectories(rng_key, posterior, n: int, *, draw: int | None = None, time_unit: str | None = None) -> dict:
    """Synthetic patients with covariates, biomarker trajectory and (uncensored) event time.

    Parameters
    ----------
    rng_key : jax random key
    posterior : twinsim.fit.Posterior
        With a joint biomarker model (:attr:`~twinsim.fit.Posterior.joint`).
    n : int > 0
    draw : int, optional
        One posterior draw for every patient (a replicated data set); default each patient
        gets their own draw (synthetic patients from the posterior predictive).
    time_unit : str, optional
        Unit of the returned times and visits; default the posterior's.

    Returns
    -------
    dict
        ``covariates`` DataFrame (n, p_raw) in the historical form; ``time`` (n,) event time;
        ``visit_times`` (k,); ``biomarker`` (n, k) value at each visit on the raw scale, with
        measurement error, whether or not the patient is still event-free then (mask with
        ``visit_times <= time`` for the trajectory while at risk); ``random_effects`` (n, 2)
        intercept and slope on the transformed scale.
    """
    j = _require_joint(posterior)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ModelError(f"n must be a positive number of patients; got {n!r}.")
    k_idx, k_x, k_p = jax.random.split(rng_key, 3)
    s = posterior.n_draws
    idx = (np.asarray(jax.random.randint(k_idx, (n,), 0, s)) if draw is None
           else np.full(n, int(draw)))
    if draw is not None and not 0 <= int(draw) < s:
        raise ModelError(f"draw must be in [0, {s}); got {draw}.")
    frame, x = _design(posterior, k_x, n)
    visits = jnp.asarray(j["visit_times"], float)
    params = _draw_params(posterior, idx)

    def one(key, p, xi):  # one patient, their own draw
        out = joint_sample(key, p, xi[None, :], visits, time_ref=j["time_ref"], transform=j["transform"])
        return out.re[0], out.bm_value[0], out.time[0]

    keys = jax.random.split(k_p, n)
    re, bm, t = jax.jit(jax.vmap(one))(keys, params, jnp.asarray(x))
    f = time_factor(posterior.time_unit, time_unit or posterior.time_unit)
    return {"covariates": frame, "time": np.asarray(t) * f, "visit_times": np.asarray(visits) * f,
            "biomarker": np.asarray(bm), "random_effects": np.asarray(re)}


def measurement_weights(measured, previous) -> np.ndarray:
    """Inverse-probability-of-measurement weights of the patients at risk at one visit.

    ``P(measured | previous value)`` is a logistic regression on the transformed previous
    measurement and an indicator of having none (Robins, Rotnitzky & Zhao 1995; the
    missing-at-random assumption of the joint model), fitted by Newton-Raphson (IRLS)
    with a ridge of 1e-6 on the slopes.  With everyone measured the weights are all 1.

    Parameters
    ----------
    measured : array (r,), bool
        Whether each patient at risk at the visit has a measurement there.
    previous : array (r,), float
        Their most recent earlier measurement on the model scale (NaN = none).

    Returns
    -------
    np.ndarray (m,)
        Weights of the measured patients (in the order of ``measured``), ``1 / p_hat``
        rescaled to sum to r, the number at risk.
    """
    measured = np.asarray(measured, bool)
    r, m = measured.size, int(measured.sum())
    if m == 0 or m == r:
        return np.ones(m)
    prev = np.asarray(previous, float)
    none = ~np.isfinite(prev)
    cols = [np.ones(r)]
    if (~none).any():
        centred = np.where(none, 0.0, prev - prev[~none].mean())
        if np.ptp(centred) > 0:
            cols.append(centred)
    if none.any() and not none.all():
        cols.append(none.astype(float))
    x = np.column_stack(cols)
    coef = np.zeros(x.shape[1])
    ridge = np.diag(np.r_[0.0, np.full(x.shape[1] - 1, 1e-6)])
    for _ in range(50):
        prob = 1.0 / (1.0 + np.exp(-(x @ coef)))
        hess = x.T @ (x * (prob * (1 - prob))[:, None]) + ridge
        step = np.linalg.solve(hess, x.T @ (measured - prob) - ridge @ coef)
        coef += step
        if np.max(np.abs(step)) < 1e-10:
            break
    prob = 1.0 / (1.0 + np.exp(-(x @ coef)))
    w = 1.0 / prob[measured]
    return w * r / w.sum()


def _visit_weights(patient, visit, value, t_obs, visits, v, transform) -> np.ndarray:
    """:func:`measurement_weights` at visit ``v`` for the measured patients at risk there
    (in the order of the measurements)."""
    risk = np.flatnonzero(t_obs >= visits[v])
    here = (visit == v) & (t_obs[patient] >= visits[v])
    measured = np.isin(risk, patient[here])
    previous = np.full(t_obs.size, np.nan)
    for u in range(v):  # the latest earlier visit wins
        at_u = visit == u
        previous[patient[at_u]] = np.asarray(bm_transform(value[at_u], transform))
    w = measurement_weights(measured, previous[risk])
    by_patient = dict(zip(risk[measured], w))
    return np.array([by_patient[i] for i in patient[here]])


def _thin(key, at_risk: np.ndarray, share) -> np.ndarray:
    """Random subset of the patients at risk per cohort and visit, ``round(share * count)`` of them."""
    u = np.where(at_risk, np.asarray(jax.random.uniform(key, at_risk.shape)), np.inf)
    count = np.rint(at_risk.sum(axis=1) * np.asarray(share, float)[None, :]).astype(int)  # (D, k)
    ranks = np.argsort(np.argsort(u, axis=1), axis=1)  # rank of each patient within cohort and visit
    return at_risk & (ranks < count[:, None, :])


def visit_of_measurement(times, visit_times) -> np.ndarray:
    """Index of the nearest scheduled visit of each measurement time (ties: the earlier visit)."""
    v = np.asarray(visit_times, float)
    return np.argmin(np.abs(np.asarray(times, float)[:, None] - v[None, :]), axis=1)


def biomarker_ppc_arrays(rng_key, posterior, *, cohorts: int = 100, time_unit: str | None = None):
    """Observed biomarker values by visit, and replicated cohorts from the joint model.

    A patient counts at a visit while still at risk there (follow-up time >= visit time):
    the joint model describes the biomarker up to the event or censoring.  Each measurement
    is assigned to the nearest scheduled visit (exact for wide data).  Each replicated
    cohort has the historical size, one posterior draw, covariates from the covariate
    generator, and censoring times from the reverse Kaplan-Meier of the historical data
    (:func:`~twinsim.models.joint.censoring_sampler`), so "at risk" means the same thing on
    both sides.

    Parameters
    ----------
    rng_key : jax random key
    posterior : twinsim.fit.Posterior
    cohorts : int
        Replicated cohorts D.
    time_unit : str, optional
        Unit of the visit times reported; default the posterior's.

    Returns
    -------
    (observed, predicted) or None when the posterior has no biomarker model.
        observed: ``name``, ``unit``, ``visit_times`` (k,), ``values`` (list of k arrays: the
        measurements of patients at risk), ``weights`` (list of k arrays, the same shapes:
        inverse-probability-of-measurement weights, see :func:`measurement_weights`, summing
        to the number at risk), ``n_at_risk`` (k ints: patients at risk, measured or not);
        predicted: ``values`` (D, N, k) raw biomarker, ``at_risk`` (D, N, k) bool, ``measured``
        (D, N, k) bool: a random subset of those at risk, the observed share measured at
        that visit (rounded), so that the spread of the cohorts' statistics is that of a
        group of the observed measured size (the observed side, weighted, stands for
        everyone at risk; its noise is that of the measured patients).
    """
    j = getattr(posterior, "joint", None)
    if j is None:
        return None
    visits = np.asarray(j["visit_times"], float)
    t_obs = np.asarray(posterior.observed_time, float)
    obs = j["observed"]
    patient, visit = np.asarray(obs["patient"]), visit_of_measurement(obs["time"], visits)
    at_risk = t_obs[patient] >= visits[visit]
    value = np.asarray(obs["value"], float)
    values = [value[(visit == v) & at_risk] for v in range(visits.size)]
    weights = [_visit_weights(patient, visit, value, t_obs, visits, v, j["transform"]) for v in range(visits.size)]

    n = t_obs.size
    k_draw, k_x, k_sim, k_cens = jax.random.split(rng_key, 4)
    idx = np.asarray(jax.random.randint(k_draw, (cohorts,), 0, posterior.n_draws))
    params = _draw_params(posterior, idx)
    x_keys = jax.random.split(k_x, cohorts)
    x = jnp.stack([jnp.asarray(_design(posterior, k, n)[1]) for k in x_keys])  # (D, N, p)
    censor = censoring_sampler(t_obs, np.asarray(posterior.observed_event))

    def cohort(key_sim, key_cens, p, xd):
        out = joint_sample(key_sim, p, xd, jnp.asarray(visits), time_ref=j["time_ref"], transform=j["transform"])
        follow = jnp.minimum(out.time, censor(key_cens, (n,)))
        return out.bm_value, jnp.asarray(visits)[None, :] <= follow[:, None]

    bm, risk = jax.jit(jax.vmap(cohort))(jax.random.split(k_sim, cohorts), jax.random.split(k_cens, cohorts), params, x)
    risk = np.asarray(risk)
    measured = _thin(jax.random.fold_in(rng_key, 1), risk, [len(v) / max(n_r, 1) for v, n_r in
                                                             zip(values, [(t_obs >= v).sum() for v in visits])])
    f = time_factor(posterior.time_unit, time_unit or posterior.time_unit)
    observed = {"name": j["biomarker"], "unit": time_unit or posterior.time_unit, "visit_times": visits * f,
                "values": values, "weights": weights, "n_at_risk": [int((t_obs >= v).sum()) for v in visits]}
    return observed, {"values": np.asarray(bm), "at_risk": risk, "measured": measured}

