"""The :class:`Posterior` container: posterior draws, standardisation, covariate
copula, diagnostics and provenance of a fitted outcome model; save/load to NetCDF.

Event convention: ``observed_event`` is 1 = event observed, 0 = right censored.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpyro
import pandas as pd
import xarray as xr

from ..errors import ModelError
from ..models import CovariateCopula, time_factor
from ._common import _twinsim_version, az, logger

__all__ = ["Posterior"]

#: Marker and version of the NetCDF layout written by :meth:`Posterior.save`.
_FORMAT = "twinsim.Posterior"
_FORMAT_VERSION = 1
#: NetCDF engine: netCDF4 is a declared dependency of twinsim (h5netcdf only comes with arviz).
_ENGINE = "netcdf4"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value) -> str:
    return json.dumps(value, default=_json_default)


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
        For ArviZ users: the run as returned by ``az.from_numpyro`` after :func:`~twinsim.fit.fit`,
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
