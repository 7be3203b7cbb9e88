"""Fitting the joint biomarker + survival model (:func:`twinsim.models.joint.joint_weibull`) to
historical data, into a :class:`~twinsim.fit.Posterior` the simulator and the report use.

The survival part of the joint model is the Weibull PH model of :mod:`twinsim.models` with
one more term in the linear predictor, ``assoc . (u_i / re_sd)``, the patient's standardised
random intercept and slope.  The posterior therefore stores:

- ``params`` (``log_scale``, ``log_shape``) and ``beta`` exactly as a Weibull fit does;
- ``joint``: the biomarker model's draws (``bm_intercept``, ``bm_slope``, ``bm_gamma``,
  ``bm_sigma``, ``re_sd``, ``re_corr_chol``, ``assoc``), its transform, ``time_ref``, the
  visit times for synthetic trajectories and the biomarker measurements the fit used.

For the simulator the random effects enter the log hazard as a normal frailty: with
``R = L L'`` the random effects' correlation, ``assoc . (u / re_sd) = assoc' L z`` with
``z ~ N(0, I)``, which is ``N(0, assoc' R assoc)`` exactly (:attr:`Posterior.frailty_sd`).
Biomarker trajectories of synthetic patients come from :mod:`twinsim.predictive`.

Event convention: ``event`` is 1 = event observed, 0 = right censored.
"""

from __future__ import annotations

import time as _time
import warnings
from datetime import datetime, timezone
from typing import Any

import jax
import numpy as np

from ..errors import DataError, ModelError, StatisticalWarning
from ..models import TIME_UNITS
from ..models.joint import TRANSFORMS, joint_nuts
from ._common import _key_data, az, logger
from .diagnostics import _check_convergence, _summarise
from .inference import _design, _validate, _versions
from .posterior import Posterior

__all__ = ["fit_joint_model", "JOINT_PARAMS", "MAX_VISITS"]

#: Biomarker-model draws kept in :attr:`Posterior.joint` ``["params"]`` (main sites; not the
#: per-patient ``re_z``).
JOINT_PARAMS = ("bm_intercept", "bm_slope", "bm_gamma", "bm_sigma", "re_sd", "re_corr_chol", "assoc")
#: Most distinct measurement times taken as the visit schedule without ``visits``.
MAX_VISITS = 12


def _visit_schedule(bm_time: np.ndarray, visits) -> np.ndarray:
    if visits is not None:
        v = np.asarray(visits, dtype=float).ravel()
        if v.size == 0 or not np.all(np.isfinite(v)) or np.any(v < 0) or np.any(np.diff(v) <= 0):
            raise ModelError(
                f"model.joint.visits must be increasing visit times >= 0 (in historical.time_unit); got {list(visits)}."
            )
        return v
    distinct = np.unique(bm_time)
    if distinct.size > MAX_VISITS:
        raise ModelError(
            f"the biomarker is measured at {distinct.size} distinct times, so there is no visit schedule to "
            f"copy for synthetic patients; give one in model.joint.visits (times in historical.time_unit, "
            f"e.g. [0, 140, 672])."
        )
    return distinct


def fit_joint_model(
    data,
    *,
    rng_key,
    transform: str = "sqrt",
    visits=None,
    chains: int = 2,
    warmup: int = 500,
    draws: int = 500,
    target_accept: float = 0.8,
    seed: int | None = None,
) -> Posterior:
    """Fit the joint biomarker + Weibull survival model by NUTS.

    Parameters
    ----------
    data : twinsim.data.TrialData
        With ``biomarker`` (long layout, times in ``data.time_unit``); ``event`` 1 = event
        observed, 0 = right censored.  Covariates as for :func:`~twinsim.fit.fit` (numeric,
        categorical, missing under ``historical.missing: model``).  One study only.
    rng_key : jax random key
        Split into one key per chain.
    transform : {"sqrt", "log", "identity"}
        Scale on which the biomarker is linear in time with normal errors (``sqrt`` for counts).
    visits : array (k,), optional
        Visit times (``data.time_unit``) of the synthetic patients' trajectories; default the
        distinct measurement times (at most :data:`MAX_VISITS`).
    chains, warmup, draws, target_accept
        NUTS settings (chains run in turn, one compilation for all).
    seed : int, optional
        Recorded in ``inference``.

    Returns
    -------
    Posterior
        ``outcome = "weibull"``, with :attr:`~Posterior.joint`; no PSIS-LOO (the survival
        likelihood is conditional on the random effects).  Warns
        (:class:`~twinsim.errors.ConvergenceWarning`) on poor R-hat, ESS or divergences.

    Raises
    ------
    ModelError, DataError
        On a data set without biomarker, several studies, bad settings.
    """
    key_data = _key_data(rng_key)
    if transform not in TRANSFORMS:
        raise ModelError(f"model.joint.transform must be one of {', '.join(TRANSFORMS)}; got {transform!r}.")
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ModelError(f"model.inference.{name} must be a positive integer; got {value!r}.")
    if not 0.0 < float(target_accept) < 1.0:
        raise ModelError(f"model.inference.target_accept must be in (0, 1); got {target_accept!r}.")
    bm = getattr(data, "biomarker", None)
    if bm is None:
        raise DataError(
            "model.joint needs a biomarker: name its columns in historical.biomarker (wide `columns` or a "
            "`long` table) or give adam.adlb and adam.biomarker."
        )
    if getattr(data, "study", None) is not None:
        raise ModelError(
            "model.joint does not yet model several historical studies; fit one study (historical.filter) "
            "or drop model.joint to use the hierarchical survival model."
        )
    if data.time_unit not in TIME_UNITS:
        raise ModelError(f"time_unit {data.time_unit!r} is unknown; use one of {', '.join(TIME_UNITS)}.")
    missing = "model" if data.covariates.isna().to_numpy().any() else "error"
    t, e, frame = _validate(np.asarray(data.time), np.asarray(data.event), data.covariates, missing)
    covariate_model, names, x, mean, sd = _design(frame, missing)
    n, p = x.shape

    # the joint model describes the biomarker while the patient is at risk
    patient = np.asarray(bm.patient, np.int64)
    at_risk = np.asarray(bm.time, float) <= t[patient]
    if (~at_risk).any():
        logger.info("joint model: %d of %d %s measurements are dated after follow-up ended and are not "
                    "used (the model describes the biomarker while the patient is at risk)",
                    int((~at_risk).sum()), at_risk.size, bm.name)
    bm_patient, bm_time, bm_value = patient[at_risk], np.asarray(bm.time, float)[at_risk], np.asarray(bm.value, float)[at_risk]
    if bm_value.size == 0:
        raise DataError(f"biomarker {bm.name!r}: no measurement falls within follow-up; nothing to fit.")
    invalid = {"sqrt": bm_value < 0, "log": bm_value <= 0, "identity": np.zeros(bm_value.shape, bool)}[transform]
    if invalid.any():
        raise DataError(
            f"biomarker {bm.name!r}: transform {transform!r} needs values {'> 0' if transform == 'log' else '>= 0'}; "
            f"the smallest is {bm_value.min():g}. Use model.joint.transform: identity."
        )
    visit_times = _visit_schedule(bm_time, visits)
    time_ref = float(np.median(t))
    x_std = (x - mean) / sd
    args = (x_std, t, e.astype(float), bm_patient, bm_time, bm_value)

    logger.info("fitting the joint %s + Weibull model by NUTS: n=%d, events=%d, p=%d, m=%d, %d chain(s) x (%d + %d)",
                bm.name, n, int(e.sum()), p, bm_value.size, chains, warmup, draws)
    if int(e.sum()) == 0:
        warnings.warn(f"the historical data have no events among {n} patients; the survival part of the joint "
                      "model is driven by its priors.", StatisticalWarning, stacklevel=2)
    start = _time.perf_counter()
    run = joint_nuts(args, transform=transform, warmup=int(warmup), draws=int(draws),
                     target_accept=float(target_accept))
    out = [run(k, *args, time_ref) for k in jax.random.split(rng_key, int(chains))]
    by_chain = {k: np.stack([np.asarray(o[0][k], float) for o in out]) for k in out[0][0] if k != "re_z"}
    diverging = np.stack([np.asarray(o[1]) for o in out])
    seconds = _time.perf_counter() - start
    logger.info("NUTS finished in %.1f s", seconds)

    coords = {"covariate": list(names)} if p else {}
    dims = {"beta": ["covariate"], "bm_gamma": ["covariate"]} if p else {}
    idata = az.from_dict(posterior=by_chain, sample_stats={"diverging": diverging}, coords=coords, dims=dims)
    main = ["log_scale", "log_shape"] + (["beta", "bm_gamma"] if p else []) + [
        "bm_intercept", "bm_slope", "bm_sigma", "re_sd", "assoc"]
    diagnostics, divergences = _summarise(idata, main)
    s = int(chains) * int(draws)
    flat = {k: v.reshape((s,) + v.shape[2:]) for k, v in by_chain.items()}
    joint_params = {k: flat[k] if k in flat else np.zeros((s, 0)) for k in JOINT_PARAMS}
    inference: dict[str, Any] = {
        "method": "nuts", "chains": int(chains), "warmup": int(warmup), "draws": int(draws),
        "target_accept": float(target_accept), "chain_method": "sequential", "rng_key_data": key_data,
        "model": "joint_weibull", "elapsed_s": float(seconds),
    }
    if seed is not None:
        inference["seed"] = int(seed)
    data_hash = data.hash() if callable(getattr(data, "hash", None)) else ""
    provenance = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "data_source": str(getattr(data, "source", "")),
        "data_hash": str(data_hash),
        "n": int(n),
        "n_events": int(e.sum()),
        "time_ref": time_ref,
    }
    joint = {
        "biomarker": str(bm.name),
        "transform": transform,
        "time_ref": time_ref,
        "visit_times": visit_times,
        "params": joint_params,
        "observed": {"patient": bm_patient, "time": bm_time, "value": bm_value},
    }
    posterior = Posterior(
        outcome="weibull",
        time_unit=data.time_unit,
        covariate_names=tuple(names),
        covariate_mean=mean,
        covariate_sd=sd,
        params={"log_scale": flat["log_scale"], "log_shape": flat["log_shape"]},
        beta=flat["beta"] if p else np.zeros((s, 0)),
        covariate_model=covariate_model,
        observed_time=t,
        observed_event=e,
        diagnostics=diagnostics,
        divergences=divergences,
        inference=inference,
        provenance=provenance,
        joint=joint,
        idata=idata,
    )
    _check_convergence(posterior, rhat_max=1.01, ess_min=None, stacklevel=3)
    return posterior

