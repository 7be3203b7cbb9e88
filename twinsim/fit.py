"""Inference: historical data -> :class:`Posterior` (NUTS, diagnostics, save/load).

This is the only module of twinsim that calls ArviZ (diagnostics, NetCDF I/O), so that a
move to ArviZ 1.x touches one file.

The outcome models live in :mod:`twinsim.models`; they are fitted here on covariates
standardised by the historical mean and standard deviation (``ddof=0``; a constant
column gets standard deviation 1).  The fitted :class:`Posterior` keeps everything the
simulator needs: flat posterior draws of ``log_scale``, ``log_shape`` and ``beta``, the
standardisation, the covariate copula and the historical follow-up, plus diagnostics
and provenance.

Event convention: ``event`` is 1 = event observed, 0 = right censored, everywhere in
this module (the conversion to NumPyro's *censored* flag happens in
:mod:`twinsim.models`).

Randomness enters only through the keyword ``rng_key`` (a JAX random key, e.g.
``jax.random.key(seed)``); the same key gives bitwise identical draws.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time as _time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pandas as pd
import xarray as xr
from numpyro.infer import MCMC, NUTS

from .errors import ConvergenceWarning, ModelError, StatisticalWarning
from .models import TIME_UNITS, CovariateCopula, get_outcome_model, time_factor

with warnings.catch_warnings():
    # ArviZ 0.2x announces its 1.x refactor on import; twinsim pins arviz<1 on purpose.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

__all__ = ["Posterior", "fit", "fit_data", "check_convergence"]

logger = logging.getLogger("twinsim.fit")

#: Marker and version of the NetCDF layout written by :meth:`Posterior.save`.
_FORMAT = "twinsim.Posterior"
_FORMAT_VERSION = 1
#: NetCDF engine: netCDF4 is a declared dependency of twinsim (h5netcdf only comes with arviz).
_ENGINE = "netcdf4"
#: Column order of :attr:`Posterior.diagnostics`.
_DIAG_COLUMNS = [
    "param", "mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk", "ess_tail",
    "mcse_mean", "mcse_sd",
]


def _twinsim_version() -> str:
    # imported at call time: twinsim/__init__.py may import this module
    from . import __version__

    return __version__


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value) -> str:
    return json.dumps(value, default=_json_default)


# --------------------------------------------------------------------------- Posterior


@dataclass(frozen=True, eq=False, repr=False)
class Posterior:
    """Posterior of an outcome model fitted to historical data, ready to simulate from.

    Attributes
    ----------
    outcome : str
        Outcome model name (``"exponential"`` or ``"weibull"``).
    time_unit : str
        Unit of the data the model was fitted on (a key of ``TIME_UNITS``).
    covariate_names : tuple of str (p,)
    covariate_mean : ndarray (p,)
        Historical means used to standardise the covariates.
    covariate_sd : ndarray (p,)
        Historical standard deviations (``ddof=0``; a constant column gets 1).
    log_scale : ndarray (S,)
        Flat draws (chains * draws, chain-major) of the log baseline scale, in
        ``time_unit``.
    log_shape : ndarray (S,)
        Log Weibull shape; zeros for the exponential model.
    beta : ndarray (S, p)
        Log hazard ratios per standard deviation of each covariate.
    copula : CovariateCopula
        Covariate generator fitted on the historical covariates (original units).
    observed_time : ndarray (n,), float, ``time_unit``
        Historical follow-up.
    observed_event : ndarray (n,), int
        1 = event observed, 0 = right censored.
    diagnostics : DataFrame
        One row per scalar parameter: ``param, mean, sd, hdi_3%, hdi_97%, r_hat,
        ess_bulk, ess_tail, mcse_mean, mcse_sd`` (ArviZ ``summary``).
    divergences : int
        Number of divergent transitions after warmup.
    inference : dict
        ``method, chains, warmup, draws, target_accept, chain_method, rng_key_data``
        and ``seed`` when one was given.
    provenance : dict
        ``created`` (UTC ISO 8601), ``versions`` (twinsim, jax, numpyro, arviz, numpy,
        python), ``data_source``, ``data_hash``, ``n``, ``n_events``.
    idata : arviz.InferenceData or None
        For ArviZ users: the run as returned by ``az.from_numpyro`` after :func:`fit`,
        the file's groups after :meth:`load`.
    """

    outcome: str
    time_unit: str
    covariate_names: tuple[str, ...]
    covariate_mean: np.ndarray
    covariate_sd: np.ndarray
    log_scale: np.ndarray
    log_shape: np.ndarray
    beta: np.ndarray
    copula: CovariateCopula
    observed_time: np.ndarray
    observed_event: np.ndarray
    diagnostics: pd.DataFrame
    divergences: int
    inference: dict
    provenance: dict
    idata: "az.InferenceData | None" = None

    # ------------------------------------------------------------------ views

    @property
    def n_draws(self) -> int:
        """Number of flat posterior draws S (chains * draws)."""
        return int(self.log_scale.shape[0])

    def __repr__(self) -> str:
        return (
            f"Posterior(outcome={self.outcome!r}, time_unit={self.time_unit!r}, "
            f"covariates={list(self.covariate_names)}, n_draws={self.n_draws}, "
            f"n={self.observed_time.shape[0]}, events={int(np.sum(self.observed_event))}, "
            f"divergences={self.divergences})"
        )

    def draws(self, time_unit: str) -> dict[str, np.ndarray]:
        """Posterior draws with the scale expressed in ``time_unit``.

        Parameters
        ----------
        time_unit : str
            A key of ``TIME_UNITS``.

        Returns
        -------
        dict
            ``{"log_scale": (S,), "log_shape": (S,), "beta": (S, p)}`` (copies);
            ``log_scale`` is ``self.log_scale + log(time_factor(self.time_unit,
            time_unit))``.  Shape and coefficients do not depend on the unit.
        """
        shift = np.log(time_factor(self.time_unit, time_unit))
        return {
            "log_scale": np.asarray(self.log_scale, dtype=float) + shift,
            "log_shape": np.array(self.log_shape, dtype=float),
            "beta": np.array(self.beta, dtype=float),
        }

    def standardise(self, covariates: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Standardise covariates with the historical mean and standard deviation.

        Parameters
        ----------
        covariates : DataFrame or ndarray (n, p)
            A DataFrame is matched by column name (extra columns are ignored); an array
            must have the columns in the order of :attr:`covariate_names`.

        Returns
        -------
        ndarray (n, p), float
            ``(x - covariate_mean) / covariate_sd``.
        """
        names = list(self.covariate_names)
        if isinstance(covariates, pd.DataFrame):
            missing = [c for c in names if c not in covariates.columns]
            if missing:
                raise ModelError(
                    f"covariates lack the column(s) {missing} the model was fitted on; "
                    f"pass a DataFrame with columns {names}."
                )
            x = covariates[names].to_numpy(dtype=float)
        else:
            x = np.asarray(covariates, dtype=float)
            if x.ndim != 2 or x.shape[1] != len(names):
                raise ModelError(
                    f"covariates have shape {x.shape}; expected (n, {len(names)}) with "
                    f"columns {names}."
                )
        return (x - self.covariate_mean) / self.covariate_sd

    # ------------------------------------------------------------------ save / load

    def _to_inference_data(self) -> "az.InferenceData":
        names = list(self.covariate_names)
        p = len(names)
        s = self.n_draws
        chains = int(self.inference.get("chains", 1) or 1)
        if chains < 1 or s % chains:
            chains = 1
        nd = s // chains
        cov = np.array(names, dtype=str)
        posterior = xr.Dataset(
            {
                "log_scale": (("chain", "draw"), np.asarray(self.log_scale).reshape(chains, nd)),
                "log_shape": (("chain", "draw"), np.asarray(self.log_shape).reshape(chains, nd)),
                "beta": (
                    ("chain", "draw", "covariate"),
                    np.asarray(self.beta).reshape(chains, nd, p),
                ),
            },
            coords={"chain": np.arange(chains), "draw": np.arange(nd), "covariate": cov},
            attrs={
                "created_at": self.provenance.get("created", ""),
                "inference_library": "numpyro",
                "inference_library_version": numpyro.__version__,
                "twinsim_version": _twinsim_version(),
            },
        )
        observed = xr.Dataset(
            {
                "time": ("patient", np.asarray(self.observed_time)),
                "event": ("patient", np.asarray(self.observed_event)),
            },
            attrs={"event_convention": "1 = event observed, 0 = right censored",
                   "time_unit": self.time_unit},
        )
        cop = self.copula
        cop_names = np.array(list(cop.names), dtype=str)
        copula = xr.Dataset(
            {
                "quantiles": (("covariate", "quantile"), np.asarray(cop.quantiles)),
                "discrete": ("covariate", np.asarray(cop.discrete, dtype=bool)),
                "corr": (("covariate", "covariate_col"), np.asarray(cop.corr)),
            },
            coords={"covariate": cop_names, "covariate_col": cop_names},
            attrs={"description": "Gaussian copula with empirical marginals "
                                  "(twinsim.models.CovariateCopula), original units"},
        )
        standardisation = xr.Dataset(
            {
                "mean": ("covariate", np.asarray(self.covariate_mean, dtype=float)),
                "sd": ("covariate", np.asarray(self.covariate_sd, dtype=float)),
            },
            coords={"covariate": cov},
            attrs={"description": "x_std = (x - mean) / sd (ddof=0; constant column sd=1)"},
        )
        diag = self.diagnostics
        value_cols = [c for c in diag.columns if c != "param"]
        params = (diag["param"] if "param" in diag.columns else diag.index).astype(str)
        diagnostics = xr.Dataset(
            {c: ("param", diag[c].to_numpy()) for c in value_cols},
            coords={"param": np.array(list(params), dtype=str)},
        )
        groups: dict[str, xr.Dataset] = {
            "posterior": posterior,
            "observed_data": observed,
            "copula": copula,
            "standardisation": standardisation,
            "diagnostics": diagnostics,
        }
        if self.idata is not None and "sample_stats" in self.idata.groups():
            groups["sample_stats"] = self.idata.sample_stats
        attrs = {
            "twinsim_format": _FORMAT,
            "twinsim_format_version": _FORMAT_VERSION,
            "outcome": self.outcome,
            "time_unit": self.time_unit,
            "covariate_names": json.dumps(names),
            "divergences": int(self.divergences),
            "inference": _dumps(self.inference),
            "provenance": _dumps(self.provenance),
            "diagnostics_columns": json.dumps([str(c) for c in diag.columns]),
            "diagnostics_has_param_column": int("param" in diag.columns),
        }
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not defined in the InferenceData scheme")
            return az.InferenceData(attrs=attrs, **groups)

    def save(self, path: str | os.PathLike) -> None:
        """Write the posterior to a NetCDF file (ArviZ ``InferenceData`` layout).

        Groups ``posterior``, ``sample_stats`` (when known), ``observed_data`` (``time``,
        ``event``), ``copula``, ``standardisation`` and ``diagnostics``; the remaining
        fields and the provenance are JSON in the file's root attributes.  The file is
        written next to ``path`` under a temporary name and moved into place with
        :func:`os.replace`, so a failed save leaves no half-written file (and an existing
        file at ``path`` untouched).

        Parameters
        ----------
        path : str or PathLike
            Target file (conventionally ``*.nc``); its folder must exist.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise ModelError(
                f"cannot save the posterior to {path}: folder {path.parent} does not exist; "
                "create it first or choose another path."
            )
        idata = self._to_inference_data()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            idata.to_netcdf(str(tmp), engine=_ENGINE)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        logger.info("saved %s posterior (%d draws) to %s", self.outcome, self.n_draws, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Posterior":
        """Read a posterior written by :meth:`save` (exact round trip).

        Parameters
        ----------
        path : str or PathLike

        Returns
        -------
        Posterior
            With ``idata`` holding the file's groups, loaded into memory.

        Raises
        ------
        ModelError
            If the file is missing, unreadable, corrupt or not written by twinsim.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(
                f"no saved posterior at {path}: the file does not exist. Fit a model first "
                "(twinsim.fit(...).save(path)) or correct the path."
            )
        try:
            with az.rc_context(rc={"data.load": "eager"}), warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=".*not defined in the InferenceData scheme"
                )
                idata = az.from_netcdf(str(path), engine=_ENGINE)
        except Exception as err:  # netCDF4/HDF5 raise OSError, RuntimeError, ValueError...
            raise ModelError(
                f"could not read {path} as a NetCDF file ({type(err).__name__}: {err}); it is "
                "corrupt or not a twinsim posterior. Refit the model and save it again."
            ) from err
        attrs = dict(idata.attrs)
        if attrs.get("twinsim_format") != _FORMAT:
            raise ModelError(
                f"{path} is a NetCDF file but not a twinsim posterior (its root attribute "
                f"'twinsim_format' is {attrs.get('twinsim_format')!r}, expected {_FORMAT!r}). "
                "Pass a file written by Posterior.save, or refit the model."
            )
        try:
            version = int(attrs["twinsim_format_version"])
            if version > _FORMAT_VERSION:
                raise ModelError(
                    f"{path} was written in twinsim posterior format {version}, newer than "
                    f"this twinsim ({_twinsim_version()}) reads ({_FORMAT_VERSION}); upgrade "
                    "twinsim or refit the model."
                )
            return cls._from_inference_data(idata, attrs)
        except ModelError:
            raise
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise ModelError(
                f"{path} is a twinsim posterior file but is incomplete or corrupt "
                f"({type(err).__name__}: {err}). Refit the model and save it again."
            ) from err

    @classmethod
    def _from_inference_data(cls, idata: "az.InferenceData", attrs: dict) -> "Posterior":
        names = tuple(json.loads(attrs["covariate_names"]))
        p = len(names)
        post = idata.posterior
        log_scale = post["log_scale"].values.reshape(-1)
        log_shape = post["log_shape"].values.reshape(-1)
        beta = post["beta"].values.reshape(log_scale.shape[0], p)
        std = idata["standardisation"]
        cop = idata["copula"]
        cop_names = tuple(str(c) for c in cop["covariate"].values)
        copula = CovariateCopula(
            names=cop_names,
            quantiles=np.asarray(cop["quantiles"].values, dtype=float),
            discrete=np.asarray(cop["discrete"].values, dtype=bool),
            corr=np.asarray(cop["corr"].values, dtype=float),
        )
        columns = json.loads(attrs["diagnostics_columns"])
        dg = idata["diagnostics"]
        table = {c: dg[c].values for c in columns if c != "param"}
        if int(attrs.get("diagnostics_has_param_column", 1)):
            table["param"] = np.array([str(v) for v in dg["param"].values], dtype=object)
            diagnostics = pd.DataFrame(table)[columns]
        else:
            diagnostics = pd.DataFrame(
                table, index=[str(v) for v in dg["param"].values]
            )[columns]
        obs = idata.observed_data
        return cls(
            outcome=str(attrs["outcome"]),
            time_unit=str(attrs["time_unit"]),
            covariate_names=names,
            covariate_mean=np.asarray(std["mean"].values, dtype=float),
            covariate_sd=np.asarray(std["sd"].values, dtype=float),
            log_scale=log_scale,
            log_shape=log_shape,
            beta=beta,
            copula=copula,
            observed_time=obs["time"].values,
            observed_event=obs["event"].values,
            diagnostics=diagnostics,
            divergences=int(attrs["divergences"]),
            inference=json.loads(attrs["inference"]),
            provenance=json.loads(attrs["provenance"]),
            idata=idata,
        )


# --------------------------------------------------------------------------- fitting


def _key_data(rng_key) -> list[int]:
    """Raw bits of a JAX key (typed or legacy uint32), for the provenance record."""
    if isinstance(rng_key, (bool, int, np.integer)) or not hasattr(rng_key, "dtype"):
        raise ModelError(
            f"rng_key must be a JAX random key such as jax.random.key(seed); got "
            f"{type(rng_key).__name__} {rng_key!r}. Turn an integer seed into a key once, "
            "at the edge: rng_key=jax.random.key(seed)."
        )
    if jnp.issubdtype(rng_key.dtype, jax.dtypes.prng_key):
        if rng_key.shape != ():
            raise ModelError(f"rng_key must be a single key; got a key array of shape {rng_key.shape}.")
        return np.asarray(jax.random.key_data(rng_key)).ravel().tolist()
    raw = np.asarray(rng_key)
    if raw.dtype != np.uint32 or raw.ndim != 1:
        raise ModelError(
            f"rng_key must be a JAX random key such as jax.random.key(seed); got an array of "
            f"dtype {raw.dtype} and shape {raw.shape}."
        )
    return raw.tolist()


def _validate(time, event, covariates) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
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
    non_numeric = [
        str(c) for c in covariates.columns
        if not (pd.api.types.is_numeric_dtype(covariates[c]) or pd.api.types.is_bool_dtype(covariates[c]))
    ]
    if non_numeric:
        raise ModelError(
            f"covariates must be numeric; column(s) {non_numeric} are not. Encode categories "
            "as 0/1 indicator columns."
        )
    values = covariates.to_numpy(dtype=float)
    bad_cols = [names[j] for j in range(values.shape[1]) if not np.all(np.isfinite(values[:, j]))]
    if bad_cols:
        raise ModelError(
            f"covariates contain NaN or infinite values in column(s) {bad_cols}; impute or "
            "drop those patients first."
        )
    frame = pd.DataFrame(values, columns=names)
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
        Numeric baseline covariates without missing values (p may be 0; None = p 0).
    outcome : str
        Outcome model name in :data:`twinsim.models.OUTCOME_MODELS`.
    rng_key : jax random key
        E.g. ``jax.random.key(seed)``; the same key gives bitwise identical draws.
    time_unit : str
        Unit of ``time`` (a key of ``TIME_UNITS``).
    chains, warmup, draws : int
        NUTS chains (run sequentially), warmup iterations and kept draws per chain.
    target_accept : float in (0, 1)
        NUTS target acceptance probability (raise towards 0.95-0.99 on divergences).
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
        Diagnostics checked by :func:`check_convergence`, which warns
        (:class:`~twinsim.errors.ConvergenceWarning`) when they look poor.

    Raises
    ------
    ModelError
        On malformed data, an unknown outcome model or time unit, or a missing key.
    """
    model = get_outcome_model(outcome)
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
    t, e, frame = _validate(time, event, covariates)
    n, p = frame.shape
    n_events = int(e.sum())
    names = tuple(frame.columns)
    x = frame.to_numpy(dtype=float)
    mean = x.mean(axis=0)
    constant = np.ptp(x, axis=0) == 0  # exact test: np.std of a constant column may be 1e-17
    sd = np.where(constant, 1.0, x.std(axis=0))
    if constant.any():
        logger.warning(
            "covariate(s) %s are constant in the historical data; their coefficients are "
            "not identified and are drawn from the prior.",
            [names[j] for j in np.flatnonzero(constant)],
        )
    if n_events == 0:
        warnings.warn(
            f"the historical data have no events among {n} patients; the posterior of the "
            "outcome model is driven by its priors.",
            StatisticalWarning,
            stacklevel=2,
        )
    x_std = (x - mean) / sd
    time_ref = float(np.median(t))

    logger.info(
        "fitting %s PH model by NUTS: n=%d, events=%d, p=%d, %d chain(s) x (%d warmup + %d draws)",
        outcome, n, n_events, p, chains, warmup, draws,
    )
    start = _time.perf_counter()
    mcmc = MCMC(
        NUTS(model, target_accept_prob=float(target_accept)),
        num_warmup=int(warmup),
        num_samples=int(draws),
        num_chains=int(chains),
        chain_method="sequential",
        progress_bar=progress_bar,
    )
    mcmc.run(rng_key, x_std, t, e, time_ref=time_ref)
    samples = mcmc.get_samples()  # flat, chain-major
    s = int(chains) * int(draws)
    log_scale = np.asarray(samples["log_scale"], dtype=float).reshape(s)
    log_shape = np.asarray(samples["log_shape"], dtype=float).reshape(s)
    beta = (
        np.asarray(samples["beta"], dtype=float).reshape(s, p) if p else np.zeros((s, 0))
    )
    logger.info("NUTS finished in %.1f s", _time.perf_counter() - start)

    coords = {"covariate": list(names)} if p else None
    dims = {"beta": ["covariate"]} if p else None
    idata = az.from_numpyro(mcmc, coords=coords, dims=dims, log_likelihood=False)
    var_names = ["log_scale"] + (["log_shape"] if outcome != "exponential" else [])
    var_names += ["beta"] if p else []
    summary = az.summary(idata, var_names=var_names, kind="all", round_to="none")
    diagnostics = summary.reset_index(names="param")
    diagnostics = diagnostics[[c for c in _DIAG_COLUMNS if c in diagnostics.columns]]
    diagnostics = diagnostics.reset_index(drop=True)
    divergences = int(idata.sample_stats["diverging"].values.sum())

    inference: dict[str, Any] = {
        "method": "nuts",
        "chains": int(chains),
        "warmup": int(warmup),
        "draws": int(draws),
        "target_accept": float(target_accept),
        "chain_method": "sequential",
        "rng_key_data": key_data,
    }
    if seed is not None:
        inference["seed"] = int(seed)
    provenance = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "data_source": str(data_source),
        "data_hash": str(data_hash),
        "n": int(n),
        "n_events": n_events,
    }
    posterior = Posterior(
        outcome=outcome,
        time_unit=time_unit,
        covariate_names=names,
        covariate_mean=mean,
        covariate_sd=sd,
        log_scale=log_scale,
        log_shape=log_shape,
        beta=beta,
        copula=CovariateCopula.fit(frame),
        observed_time=t,
        observed_event=e,
        diagnostics=diagnostics,
        divergences=divergences,
        inference=inference,
        provenance=provenance,
        idata=idata,
    )
    _check_convergence(posterior, rhat_max=1.01, ess_min=None, stacklevel=3)
    return posterior


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
    kwargs.update(inference)
    return fit(
        np.asarray(data.time), np.asarray(data.event), data.covariates,
        outcome=outcome, rng_key=rng_key, **kwargs,
    )


# --------------------------------------------------------------------------- diagnostics


def check_convergence(
    posterior: Posterior, *, rhat_max: float = 1.01, ess_min: float | None = None
) -> list[str]:
    """Check R-hat, bulk/tail ESS and divergences; warn once if anything looks poor.

    Thresholds follow Vehtari, Gelman, Simpson, Carpenter and Buerkner (2021),
    "Rank-normalization, folding, and localization: an improved R-hat", Bayesian
    Analysis 16(2): R-hat below 1.01 and bulk and tail ESS above 100 per chain.

    Parameters
    ----------
    posterior : Posterior
    rhat_max : float
        Largest acceptable rank-normalised split R-hat (needs 2 or more chains).
    ess_min : float, optional
        Smallest acceptable bulk and tail ESS; default 100 * chains.

    Returns
    -------
    list of str
        The problems found (empty when none).  When not empty, one
        :class:`~twinsim.errors.ConvergenceWarning` lists them with what to change.
    """
    return _check_convergence(posterior, rhat_max=rhat_max, ess_min=ess_min, stacklevel=3)


def _check_convergence(posterior, *, rhat_max, ess_min, stacklevel) -> list[str]:
    inf = posterior.inference
    chains = int(inf.get("chains", 1) or 1)
    if ess_min is None:
        ess_min = 100.0 * chains
    problems: list[str] = []
    sampling = False
    diag = posterior.diagnostics
    params = diag["param"] if "param" in diag.columns else pd.Series(diag.index, index=diag.index)
    for i in range(len(diag)):
        name = str(params.iloc[i])
        row = diag.iloc[i]
        if chains >= 2 and "r_hat" in diag.columns:
            r = float(row["r_hat"])
            if not np.isfinite(r) or r > rhat_max:
                problems.append(f"r_hat of {name} is {r:.3f} (> {rhat_max})")
                sampling = True
        for col in ("ess_bulk", "ess_tail"):
            if col in diag.columns:
                v = float(row[col])
                if not np.isfinite(v) or v < ess_min:
                    problems.append(f"{col} of {name} is {v:.0f} (< {ess_min:.0f})")
                    sampling = True
    if chains < 2:
        logger.info("r_hat needs 2 or more chains; with 1 chain only ESS and divergences are checked")
    if posterior.divergences > 0:
        problems.append(f"{posterior.divergences} divergent transition(s) after warmup")
    if problems:
        advice = []
        if sampling:
            advice.append(
                f"increase model.inference.warmup / draws (now {inf.get('warmup')} / "
                f"{inf.get('draws')}; doubling both is a good first step)"
                + (" or run more chains" if chains < 4 else "")
            )
        if posterior.divergences > 0:
            ta = float(inf.get("target_accept", 0.8))
            if ta < 0.95:
                advice.append(
                    f"divergences: raise model.inference.target_accept to 0.95 (now {ta})"
                )
            else:
                advice.append(
                    f"divergences: raise model.inference.target_accept to 0.99 (now {ta}) and "
                    "check the data for extreme times or nearly collinear covariates"
                )
        msg = (
            f"MCMC diagnostics of the {posterior.outcome} model suggest the posterior is "
            f"unreliable ({chains} chain(s) x {inf.get('draws')} draws after "
            f"{inf.get('warmup')} warmup): " + "; ".join(problems)
            + ". What to change: " + "; ".join(advice) + "."
        )
        warnings.warn(msg, ConvergenceWarning, stacklevel=stacklevel)
    return problems
