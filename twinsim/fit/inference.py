"""Running NUTS: validation of the inputs, the sampler, and the :class:`Posterior` it
builds (with diagnostics and provenance).

The outcome models live in :mod:`twinsim.models`; they are fitted here on covariates
standardised by the historical mean and standard deviation (``ddof=0``; a constant
column gets standard deviation 1).

Event convention: ``event`` is 1 = event observed, 0 = right censored (the conversion to
NumPyro's *censored* flag happens in :mod:`twinsim.models`).

Randomness enters only through the keyword ``rng_key`` (a JAX random key, e.g.
``jax.random.key(seed)``); the same key gives bitwise identical draws.
"""

from __future__ import annotations

import platform
import time as _time
import warnings
from datetime import datetime, timezone
from functools import partial
from typing import Any

import jax
import numpy as np
import numpyro
import pandas as pd
from numpyro.infer import MCMC, NUTS

from ..errors import ModelError, StatisticalWarning
from ..models import TIME_UNITS, default_knots, get_family, outcome_model
from ..models.covariates import CovariateModel
from ..models.outcome import STUDY_PRIOR_SD
from .compare import psis_loo
from ._common import _key_data, _twinsim_version, az, logger
from .diagnostics import _check_convergence, _summarise
from .posterior import Posterior
from .svi import run_svi

__all__ = ["fit", "fit_data"]


def _validate(time, event, covariates, missing: str = "error") -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    try:
        t = np.asarray(time, dtype=float)
    except (TypeError, ValueError) as err:
        raise ModelError(f"time must be numeric follow-up times; could not convert it ({err}).") from err
    if t.ndim != 1 or t.shape[0] == 0:
        raise ModelError(f"time must be a non-empty 1-d array (n,); got shape {t.shape}.")
    n = t.shape[0]
    bad = ~np.isfinite(t) | (t <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ModelError(
            f"time must be finite and > 0; {int(bad.sum())} value(s) are not (first: "
            f"time[{i}] = {t[i]}). Remove those patients or fix their follow-up."
        )
    e_raw = np.asarray(event)
    if e_raw.shape != (n,):
        raise ModelError(f"event must have shape ({n},) like time; got {e_raw.shape}.")
    try:
        e_float = e_raw.astype(float)
    except (TypeError, ValueError) as err:
        raise ModelError(f"event must be 0/1 (1 = event observed); could not convert it ({err}).") from err
    bad = ~np.isin(e_float, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ModelError(
            f"event must be 1 = event observed or 0 = right censored; got event[{i}] = "
            f"{e_raw[i]!r}. Recode it (note: lifelines' event_col is 1 = event as well, "
            "numpyro's censored flag is the opposite)."
        )
    e = e_float.astype(np.int64)
    if covariates is None:
        covariates = pd.DataFrame(index=range(n))
    if not isinstance(covariates, pd.DataFrame):
        raise ModelError(
            f"covariates must be a pandas DataFrame (n, p) with one column per covariate; "
            f"got {type(covariates).__name__}."
        )
    if covariates.shape[0] != n:
        raise ModelError(
            f"covariates have {covariates.shape[0]} rows but time has {n}; pass one row per patient."
        )
    names = [str(c) for c in covariates.columns]
    if len(set(names)) != len(names):
        raise ModelError(f"covariate names must be unique; got {names}.")
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    for c, name in zip(covariates.columns, names):
        col = covariates[c].reset_index(drop=True)
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or pd.api.types.is_string_dtype(col):
            frame[name] = col if isinstance(col.dtype, pd.CategoricalDtype) else pd.Categorical(col)
        elif pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            frame[name] = col.astype(float)
        else:
            raise ModelError(
                f"covariate {name!r} has dtype {col.dtype}; give numbers, booleans or categories."
            )
    numeric = [c for c in frame.columns if not isinstance(frame[c].dtype, pd.CategoricalDtype)]
    infinite = [c for c in numeric if np.isinf(frame[c].to_numpy()).any()]
    if infinite:
        raise ModelError(f"covariates contain infinite values in column(s) {infinite}; fix or drop them.")
    with_nan = [c for c in frame.columns if frame[c].isna().any()]
    if with_nan and missing != "model":
        raise ModelError(
            f"covariates contain missing values in column(s) {with_nan}; drop those patients "
            "(historical.missing: drop), impute them first, or model them (historical.missing: model)."
        )
    return t, e, frame


def _versions() -> dict[str, str]:
    return {
        "twinsim": _twinsim_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "arviz": az.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _check_study(study, n: int, study_labels) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Validate study codes (n,) in 0..K-1; a single study is treated as none."""
    if study is None:
        return None, ()
    codes = np.asarray(study)
    if codes.shape != (n,) or not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0:
        raise ModelError(
            f"study must hold one non-negative integer code per patient (shape ({n},)); got "
            f"dtype {codes.dtype}, shape {codes.shape}. Use TrialData.study from twinsim.data."
        )
    k = int(codes.max()) + 1
    labels = tuple(str(v) for v in study_labels) if study_labels else tuple(str(i) for i in range(k))
    if len(labels) != k or len(np.unique(codes)) != k:
        raise ModelError(
            f"study codes must be 0..K-1 with every code present and one label each; got codes "
            f"{sorted(np.unique(codes).tolist())} and labels {list(labels)}."
        )
    return (codes.astype(np.int32), labels) if k > 1 else (None, ())


def _design(frame: pd.DataFrame, missing: str, standardisation=None):
    """Covariate generator, design names, design matrix (n, p) and its standardisation.

    The mean and SD (ddof=0; a constant column gets SD 1) are the data's own unless
    ``standardisation`` = (mean, sd) is given (federated sites share one).
    """
    covariate_model = CovariateModel.fit(frame, missing=missing, field="historical.covariates")
    names = tuple(covariate_model.design_names)
    x = covariate_model.design(frame, field="historical.covariates")
    p = x.shape[1]
    mean = x.mean(axis=0)
    constant = np.ptp(x, axis=0) == 0  # exact test: np.std of a constant column may be 1e-17
    sd = np.where(constant, 1.0, x.std(axis=0))
    if standardisation is not None:
        mean, sd = (np.asarray(v, dtype=float).reshape(-1) for v in standardisation)
        if mean.shape != (p,) or sd.shape != (p,) or not (np.isfinite(mean).all() and (sd > 0).all()):
            raise ModelError(
                f"standardisation must be (mean, sd) with {p} finite values each and sd > 0 (one per "
                f"design column {list(names)}); got shapes {mean.shape}, {sd.shape}."
            )
    if constant.any():
        logger.warning(
            "covariate(s) %s are constant in the historical data; their coefficients are "
            "not identified and are drawn from the prior.",
            [names[j] for j in np.flatnonzero(constant)],
        )
    return covariate_model, names, x, mean, sd


def fit(
    time,
    event,
    covariates: pd.DataFrame | None,
    *,
    outcome: str = "weibull",
    rng_key,
    time_unit: str = "days",
    chains: int = 2,
    warmup: int = 500,
    draws: int = 500,
    target_accept: float = 0.8,
    method: str = "nuts",
    guide: str = "multivariate_normal",
    steps: int = 5000,
    learning_rate: float = 0.01,
    knots=None,
    pieces: int = 5,
    study=None,
    study_labels=(),
    study_prior_sd: float = STUDY_PRIOR_SD,
    missing: str = "error",
    standardisation: tuple | None = None,
    time_ref: float | None = None,
    data_source: str = "",
    data_hash: str = "",
    progress_bar: bool = False,
    seed: int | None = None,
) -> Posterior:
    """Fit an outcome model to historical survival data by NUTS.

    Parameters
    ----------
    time : array (n,), float, > 0, ``time_unit``
        Follow-up time.
    event : array (n,), {0, 1}
        1 = event observed, 0 = right censored.
    covariates : DataFrame (n, p) or None
        Baseline covariates: numeric, boolean or categorical (pandas ``Categorical`` or
        text) columns (p may be 0; None = p 0).  They are encoded for the outcome model by
        :class:`~twinsim.models.covariates.CovariateModel` (categories as dummies against
        the most frequent level; see ``docs/models-covariates.md``).
    outcome : str
        Outcome family in :data:`twinsim.models.FAMILIES`.
    rng_key : jax random key
        E.g. ``jax.random.key(seed)``; the same key gives bitwise identical draws.
    time_unit : str
        Unit of ``time`` (a key of ``TIME_UNITS``).
    chains, warmup, draws : int
        NUTS chains (run sequentially), warmup iterations and kept draws per chain.
    target_accept : float in (0, 1)
        NUTS target acceptance probability (raise towards 0.95-0.99 on divergences).
    method : {"nuts", "svi"}
        ``"svi"``: stochastic variational inference (:func:`~twinsim.fit.svi.run_svi`) with
        ``guide``, ``steps`` and ``learning_rate``; ``draws`` draws from the fitted guide
        (``chains`` and ``warmup`` are not used).  Its diagnostics are the ELBO's relative
        change and the Pareto k-hat, recorded in ``inference`` and checked there (R-hat and
        ESS do not apply to independent draws from a guide).
    guide, steps, learning_rate
        SVI settings (see :func:`~twinsim.fit.svi.run_svi`).
    knots : array (K,), optional
        Piecewise-exponential cut points in ``time_unit`` (0 is added if absent); by
        default :func:`~twinsim.models.default_knots` with ``pieces`` pieces.
    pieces : int
        Number of pieces when the knots are chosen from the data.
    study : array (n,) of int, optional
        Study (source) code 0..K-1 of each patient; with K > 1 the model is hierarchical
        over studies (see :mod:`twinsim.models.outcome`).
    study_labels : sequence of str
        Names of the K studies.
    study_prior_sd : float
        Scale of the half-normal prior of the between-study SD.
    missing : {"error", "model"}
        Missing covariate values: an error, or modelled (the generator reproduces the
        missingness; the outcome model uses the missing-indicator encoding).
    standardisation : (mean (p,), sd (p,)), optional
        Standardise the design columns with these instead of the data's own mean and SD
        (ddof=0): the federated fits of :mod:`twinsim.fit.federated` share one
        standardisation so that their posteriors describe the same parameters.
    time_ref : float > 0, optional
        Reference time (``time_unit``) centring the prior of the log scale; default the
        median follow-up.  Shared by federated sites for the same reason.
    data_source, data_hash : str
        Recorded in the provenance.
    progress_bar : bool
        Show NumPyro's progress bar (for the CLI; library use keeps it off).
    seed : int, optional
        The integer the key was made from, recorded in ``inference`` only (the
        randomness comes from ``rng_key``).

    Returns
    -------
    Posterior
        With PSIS-LOO (``posterior.loo``); diagnostics checked by
        :func:`~twinsim.fit.check_convergence`, which warns
        (:class:`~twinsim.errors.ConvergenceWarning`) when they look poor.

    Raises
    ------
    ModelError
        On malformed data, an unknown outcome model or time unit, or a missing key.
    """
    family = get_family(outcome)
    if time_unit not in TIME_UNITS:
        raise ModelError(f"time_unit {time_unit!r} is unknown; use one of {', '.join(TIME_UNITS)}.")
    key_data = _key_data(rng_key)
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ModelError(f"model.inference.{name} must be a positive integer; got {value!r}.")
    try:
        ok = 0.0 < float(target_accept) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelError(
            f"model.inference.target_accept must be a number in (0, 1); got {target_accept!r}."
        )
    if method not in ("nuts", "svi"):
        raise ModelError(f"model.inference.method must be 'nuts' or 'svi'; got {method!r}.")
    if missing not in ("error", "model"):
        raise ModelError(f"missing must be 'error' or 'model'; got {missing!r}.")
    t, e, frame = _validate(time, event, covariates, missing)
    covariate_model, names, x, mean, sd = _design(frame, missing, standardisation)
    n = frame.shape[0]
    p = x.shape[1]
    study_codes, labels = _check_study(study, n, study_labels)
    n_studies = len(labels) if study_codes is not None else 1
    n_events = int(e.sum())
    if n_events == 0:
        warnings.warn(
            f"the historical data have no events among {n} patients; the posterior of the "
            "outcome model is driven by its priors.",
            StatisticalWarning,
            stacklevel=2,
        )
    x_std = (x - mean) / sd
    if time_ref is None:
        time_ref = float(np.median(t))
    elif not (np.isfinite(time_ref) and time_ref > 0):
        raise ModelError(f"time_ref must be a finite time > 0 in {time_unit}; got {time_ref!r}.")
    time_ref = float(time_ref)
    consts: dict[str, np.ndarray] = {}
    if family.name == "piecewise_exponential":
        consts["knots"] = _check_knots(knots, t, e, pieces)

    model_kwargs = {"time_ref": time_ref, "study": study_codes, "n_studies": n_studies,
                    "study_prior_sd": float(study_prior_sd)}
    if "knots" in consts:
        model_kwargs["knots"] = consts["knots"]
    model = partial(outcome_model, family.name)
    var_names = [v for v in family.params if not (v == "log_shape" and family.name == "exponential")]
    var_names += ["beta"] if p else []
    var_names += ["study_sd"] if n_studies > 1 else []
    coords = {"covariate": list(names)} if p else None
    dims = {"beta": ["covariate"]} if p else None
    start = _time.perf_counter()
    if method == "svi":
        logger.info("fitting %s model by SVI: n=%d, events=%d, p=%d, studies=%d, %s guide, %d steps",
                    outcome, n, n_events, p, n_studies, guide, steps)
        svi = run_svi(model, (x_std, t, e), model_kwargs, rng_key=rng_key, guide=guide, steps=steps,
                      learning_rate=learning_rate, num_draws=draws, progress_bar=progress_bar)
        samples, chains = svi.samples, 1
        idata = az.from_dict(posterior={k: np.asarray(samples[k])[None] for k in var_names},
                             coords=coords, dims=dims)
        diagnostics = az.summary(idata, var_names=var_names, kind="stats", round_to="none").reset_index(names="param")
        divergences = 0
        inference: dict[str, Any] = svi.inference_record()
    else:
        logger.info(
            "fitting %s model by NUTS: n=%d, events=%d, p=%d, studies=%d, %d chain(s) x (%d warmup + %d draws)",
            outcome, n, n_events, p, n_studies, chains, warmup, draws,
        )
        mcmc = MCMC(
            NUTS(model, target_accept_prob=float(target_accept)),
            num_warmup=int(warmup),
            num_samples=int(draws),
            num_chains=int(chains),
            chain_method="sequential",
            progress_bar=progress_bar,
        )
        mcmc.run(rng_key, x_std, t, e, **model_kwargs)
        samples = mcmc.get_samples()  # flat, chain-major
        idata = az.from_numpyro(mcmc, coords=coords, dims=dims, log_likelihood=False)
        diagnostics, divergences = _summarise(idata, var_names)
        inference = {
            "method": "nuts",
            "chains": int(chains),
            "warmup": int(warmup),
            "draws": int(draws),
            "target_accept": float(target_accept),
            "chain_method": "sequential",
            "rng_key_data": key_data,
        }
    s = int(chains) * int(draws)
    params = {k: np.asarray(samples[k], dtype=float).reshape((s,) + tuple(np.shape(samples[k])[1:]))
              for k in family.params}
    beta = (
        np.asarray(samples["beta"], dtype=float).reshape(s, p) if p else np.zeros((s, 0))
    )
    study_post = None
    if n_studies > 1:
        study_post = {"labels": labels, "sd": np.asarray(samples["study_sd"], float).reshape(s),
                      "effect": np.asarray(samples["study_effect"], float).reshape(s, n_studies)}
    logger.info("%s finished in %.1f s", method.upper(), _time.perf_counter() - start)
    loo = psis_loo(family, params, beta, x_std, t, e, consts, study_post, study_codes, chains=int(chains))

    if seed is not None:
        inference["seed"] = int(seed)
    provenance = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "data_source": str(data_source),
        "data_hash": str(data_hash),
        "n": int(n),
        "n_events": n_events,
        "time_ref": time_ref,
        "study_prior_sd": float(study_prior_sd),
    }
    posterior = Posterior(
        outcome=family.name,
        time_unit=time_unit,
        covariate_names=names,
        covariate_mean=mean,
        covariate_sd=sd,
        params=params,
        beta=beta,
        covariate_model=covariate_model,
        observed_time=t,
        observed_event=e,
        diagnostics=diagnostics,
        divergences=divergences,
        inference=inference,
        provenance=provenance,
        consts=consts,
        study=study_post,
        loo=loo,
        idata=idata,
    )
    if method == "nuts":  # run_svi has warned already when its diagnostics failed
        _check_convergence(posterior, rhat_max=1.01, ess_min=None, stacklevel=3)
    return posterior


def _check_knots(knots, t, e, pieces) -> np.ndarray:
    if knots is None:
        return default_knots(t, e, pieces)
    k = np.asarray(knots, dtype=float).ravel()
    if k.size == 0 or not np.all(np.isfinite(k)) or np.any(k < 0) or np.any(np.diff(k) <= 0):
        raise ModelError(
            f"model.knots must be increasing, finite and >= 0 (cut points of the piecewise-exponential "
            f"model in the data's time unit); got {list(knots)}."
        )
    k = k if k[0] == 0 else np.concatenate([[0.0], k])
    empty = [f"[{a:g}, {b:g})" for a, b in zip(k, np.append(k[1:], np.inf))
             if not np.any((t >= a) & (t < b) & (e == 1))]
    if empty:
        warnings.warn(
            f"model.knots: no observed events in piece(s) {', '.join(empty)}; their hazard is driven by "
            "the random-walk prior. Use fewer or other cut points.",
            StatisticalWarning, stacklevel=3,
        )
    return k


def fit_data(data, *, outcome: str = "weibull", rng_key, **inference) -> Posterior:
    """Fit an outcome model to a historical data object (e.g. ``twinsim.data.TrialData``).

    Parameters
    ----------
    data : object
        With attributes ``time`` (n,), ``event`` (n,; 1 = event observed, 0 = right
        censored), ``covariates`` (DataFrame), ``time_unit``, ``source`` and a method
        ``hash()``.
    outcome : str
    rng_key : jax random key
    **inference
        Passed to :func:`fit` (``chains``, ``warmup``, ``draws``, ``target_accept``,
        ``progress_bar``, ``seed``; may override ``time_unit``, ``data_source``,
        ``data_hash``).

    Returns
    -------
    Posterior
    """
    missing = [a for a in ("time", "event", "covariates", "time_unit", "source", "hash")
               if not hasattr(data, a)]
    if missing:
        raise ModelError(
            f"fit_data needs a data object with time, event, covariates, time_unit, source "
            f"and hash(); {type(data).__name__} lacks {missing}. Use twinsim.data to load it, "
            "or call fit(time, event, covariates, ...) directly."
        )
    data_hash = data.hash() if callable(data.hash) else data.hash
    kwargs: dict[str, Any] = {
        "time_unit": data.time_unit,
        "data_source": str(data.source),
        "data_hash": str(data_hash),
    }
    if data.covariates.isna().to_numpy().any():  # only historical.missing: model lets NaN through
        kwargs["missing"] = "model"
    if getattr(data, "study", None) is not None:  # several historical sources
        kwargs["study"] = np.asarray(data.study)
        kwargs["study_labels"] = tuple(getattr(data, "study_labels", ()))
    kwargs.update(inference)
    return fit(
        np.asarray(data.time), np.asarray(data.event), data.covariates,
        outcome=outcome, rng_key=rng_key, **kwargs,
    )
