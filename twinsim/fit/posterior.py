"""The :class:`Posterior` container: posterior draws, standardisation, covariate
covariate model, diagnostics and provenance of a fitted outcome model; save/load to NetCDF.

Event convention: ``observed_event`` is 1 = event observed, 0 = right censored.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpyro
import pandas as pd
import xarray as xr

from ..errors import ModelError
from ..models import get_family, time_factor
from ..models.covariates import CovariateModel
from ._common import _twinsim_version, az, logger

__all__ = ["Posterior"]

#: Marker and version of the NetCDF layout written by :meth:`Posterior.save`.
_FORMAT = "twinsim.Posterior"
_FORMAT_VERSION = 2  # 2: any outcome family, mixed covariates, studies, LOO
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
        Outcome family name (a key of :data:`twinsim.models.FAMILIES`).
    time_unit : str
        Unit of the data the model was fitted on (a key of ``TIME_UNITS``).
    covariate_names : tuple of str (p,)
    covariate_mean : ndarray (p,)
        Historical means used to standardise the covariates.
    covariate_sd : ndarray (p,)
        Historical standard deviations (``ddof=0``; a constant column gets 1).
    params : dict of str -> ndarray (S, ...)
        Flat draws (chains * draws, chain-major) of the family's parameters in
        ``time_unit`` (:attr:`twinsim.models.OutcomeFamily.params`): ``log_scale``,
        ``log_shape`` (exponential, Weibull; ``log_shape`` zeros for the exponential);
        ``log_hazard`` (S, K) (piecewise exponential); ``mu``, ``log_sigma`` (log-normal).
    beta : ndarray (S, p)
        Coefficients per standard deviation of each covariate: log hazard ratios (PH
        families) or log time ratios (log-normal AFT).
    covariate_model : CovariateModel
        Covariate generator and design-matrix encoder fitted on the historical covariates
        (original units; categorical levels and missingness included).
        :attr:`covariate_names` are its :attr:`~CovariateModel.design_names`.
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
    consts : dict
        Fixed structure of the family: ``knots`` (K,) of the piecewise-exponential model,
        in ``time_unit``.
    study : dict or None
        With several historical studies: ``labels`` (K,), ``sd`` (S,) the between-study
        SD, ``effect`` (S, K) each study's effect on the log hazard (PH) or log time (AFT).
        None for a single source.
    loo : dict or None
        PSIS-LOO of the fit (:func:`twinsim.fit.loo`): ``elpd_loo``, ``se``, ``p_loo``,
        ``pointwise`` (n,), ``pareto_k`` (n,).
    joint : dict or None
        A joint biomarker + survival fit (:func:`twinsim.fit.fit_joint_model`): ``biomarker``
        (name), ``transform``, ``time_ref`` and ``visit_times`` (k,) in ``time_unit``,
        ``params`` (draws (S, ...) of ``bm_intercept``, ``bm_slope``, ``bm_gamma`` (S, p),
        ``bm_sigma``, ``re_sd`` (S, 2), ``re_corr_chol`` (S, 2, 2), ``assoc`` (S, 2)) and
        ``observed`` (the measurements fitted, long: ``patient``, ``time``, ``value``).
        None for a survival-only fit.
    idata : arviz.InferenceData or None
        For ArviZ users: the run as returned by ``az.from_numpyro`` after :func:`~twinsim.fit.fit`,
        the file's groups after :meth:`load`.
    """

    outcome: str
    time_unit: str
    covariate_names: tuple[str, ...]
    covariate_mean: np.ndarray
    covariate_sd: np.ndarray
    params: dict
    beta: np.ndarray
    covariate_model: CovariateModel
    observed_time: np.ndarray
    observed_event: np.ndarray
    diagnostics: pd.DataFrame
    divergences: int
    inference: dict
    provenance: dict
    consts: dict = field(default_factory=dict)
    study: dict | None = None
    loo: dict | None = None
    joint: dict | None = None
    idata: "az.InferenceData | None" = None

    # ------------------------------------------------------------------ views

    @property
    def n_draws(self) -> int:
        """Number of flat posterior draws S (chains * draws)."""
        return int(self.beta.shape[0])

    @property
    def family(self):
        """The :class:`~twinsim.models.OutcomeFamily` of :attr:`outcome`."""
        return get_family(self.outcome)

    @property
    def log_scale(self) -> np.ndarray:
        """Draws (S,) of the log baseline scale (exponential and Weibull models)."""
        return self._param("log_scale")

    @property
    def log_shape(self) -> np.ndarray:
        """Draws (S,) of the log Weibull shape (zeros for the exponential model)."""
        return self._param("log_shape")

    @property
    def study_sd(self) -> np.ndarray:
        """Draws (S,) of the between-study SD (zeros for a single source)."""
        return np.zeros(self.n_draws) if self.study is None else np.asarray(self.study["sd"], float)

    @property
    def frailty_sd(self) -> np.ndarray | None:
        """Draws (S,) of the SD of the random effects' log-hazard term, or None (no joint model).

        In the joint model the log hazard has the term ``assoc . (u / re_sd) = assoc' L z``
        with ``z ~ N(0, I_2)`` and ``L`` the Cholesky factor of the random effects'
        correlation, so marginally over the patient it is ``N(0, assoc' L L' assoc)``.
        """
        if self.joint is None:
            return None
        a = np.asarray(self.joint["params"]["assoc"], float)
        chol = np.asarray(self.joint["params"]["re_corr_chol"], float)
        return np.sqrt(np.sum(np.einsum("sj,sjk->sk", a, chol) ** 2, axis=-1))

    def _param(self, name: str) -> np.ndarray:
        if name not in self.params:
            raise AttributeError(
                f"a {self.outcome} posterior has no parameter {name!r}; its parameters are "
                f"{list(self.params)} and beta (see Posterior.params)."
            )
        return self.params[name]

    def __repr__(self) -> str:
        return (
            f"Posterior(outcome={self.outcome!r}, time_unit={self.time_unit!r}, "
            f"covariates={list(self.covariate_names)}, n_draws={self.n_draws}, "
            f"n={self.observed_time.shape[0]}, events={int(np.sum(self.observed_event))}, "
            f"divergences={self.divergences}"
            + (f", joint biomarker={self.joint['biomarker']!r})" if self.joint is not None else ")")
        )

    def draws(self, time_unit: str) -> dict[str, np.ndarray]:
        """Posterior draws with times expressed in ``time_unit``.

        Parameters
        ----------
        time_unit : str
            A key of ``TIME_UNITS``.

        Returns
        -------
        dict
            The family's parameters (copies), rescaled (a log time is shifted by
            ``log(time_factor(self.time_unit, time_unit))``, a log rate by minus that), and
            ``beta``; coefficients and shapes do not depend on the unit.
        """
        log_f = float(np.log(time_factor(self.time_unit, time_unit)))
        params, _ = self.family.rescale(self.params, self.consts, log_f)
        params["beta"] = np.array(self.beta, dtype=float)
        return params

    def consts_in(self, time_unit: str) -> dict[str, np.ndarray]:
        """The family's constants (the knots) expressed in ``time_unit``."""
        log_f = float(np.log(time_factor(self.time_unit, time_unit)))
        return self.family.rescale({}, self.consts, log_f)[1]

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
        extra_dims = {"log_hazard": "piece", "effect": "study"}
        variables = {}
        for name, value in self.params.items():
            value = np.asarray(value, dtype=float)
            dims = ("chain", "draw") + ((extra_dims.get(name, f"{name}_dim"),) if value.ndim == 2 else ())
            variables[name] = (dims, value.reshape((chains, nd) + value.shape[1:]))
        variables["beta"] = (("chain", "draw", "covariate"), np.asarray(self.beta).reshape(chains, nd, p))
        if self.study is not None:
            k = len(self.study["labels"])
            variables["study_sd"] = (("chain", "draw"), np.asarray(self.study["sd"], float).reshape(chains, nd))
            variables["study_effect"] = (
                ("chain", "draw", "study"), np.asarray(self.study["effect"], float).reshape(chains, nd, k)
            )
        coords = {"chain": np.arange(chains), "draw": np.arange(nd), "covariate": cov}
        if self.study is not None:
            coords["study"] = np.array([str(v) for v in self.study["labels"]], dtype=str)
        posterior = xr.Dataset(
            variables,
            coords=coords,
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
            "covariate_model": self.covariate_model.to_dataset(),
            "standardisation": standardisation,
            "diagnostics": diagnostics,
        }
        if self.idata is not None and "sample_stats" in self.idata.groups():
            groups["sample_stats"] = self.idata.sample_stats
        if self.loo is not None:
            groups["loo"] = xr.Dataset(
                {
                    "pointwise": ("patient", np.asarray(self.loo["pointwise"], float)),
                    "pareto_k": ("patient", np.asarray(self.loo["pareto_k"], float)),
                },
                attrs={k: float(self.loo[k]) for k in ("elpd_loo", "se", "p_loo")},
            )
        if self.joint is not None:
            groups["joint"] = _joint_dataset(self.joint, names)
        attrs = {
            "twinsim_format": _FORMAT,
            "twinsim_format_version": _FORMAT_VERSION,
            "outcome": self.outcome,
            "time_unit": self.time_unit,
            "params": json.dumps(list(self.params)),
            "consts": _dumps(self.consts),
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
        ``event``), ``covariate_model``, ``standardisation`` and ``diagnostics``; the remaining
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
        outcome = str(attrs["outcome"])
        # format 1 (issue 2) stored log_scale and log_shape only, with no "params" attribute
        param_names = json.loads(attrs.get("params", '["log_scale", "log_shape"]'))

        def flat(name):
            v = post[name].values
            return np.asarray(v.reshape((v.shape[0] * v.shape[1],) + v.shape[2:]), dtype=float)

        params = {name: flat(name) for name in param_names}
        beta = flat("beta").reshape(post.sizes["chain"] * post.sizes["draw"], p)
        consts = {k: np.asarray(v, float) for k, v in json.loads(attrs.get("consts", "{}")).items()}
        study = None
        if "study_sd" in post:
            study = {"labels": tuple(str(v) for v in post["study"].values),
                     "sd": flat("study_sd"), "effect": flat("study_effect")}
        loo = None
        if "loo" in idata.groups():
            g = idata["loo"]
            loo = {k: float(g.attrs[k]) for k in ("elpd_loo", "se", "p_loo")}
            loo.update(pointwise=np.asarray(g["pointwise"].values, float),
                       pareto_k=np.asarray(g["pareto_k"].values, float))
        joint = _joint_from_dataset(idata["joint"]) if "joint" in idata.groups() else None
        std = idata["standardisation"]
        if "covariate_model" not in idata.groups():
            raise ModelError(
                "this posterior file was written by an earlier twinsim (format 1, before mixed-type "
                "covariates); refit the model with this version (twinsim fit SCENARIO)."
            )
        covariate_model = CovariateModel.from_dataset(idata["covariate_model"])
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
            outcome=outcome,
            time_unit=str(attrs["time_unit"]),
            covariate_names=names,
            covariate_mean=np.asarray(std["mean"].values, dtype=float),
            covariate_sd=np.asarray(std["sd"].values, dtype=float),
            params=params,
            beta=beta,
            consts=consts,
            study=study,
            loo=loo,
            joint=joint,
            covariate_model=covariate_model,
            observed_time=obs["time"].values,
            observed_event=obs["event"].values,
            diagnostics=diagnostics,
            divergences=int(attrs["divergences"]),
            inference=json.loads(attrs["inference"]),
            provenance=json.loads(attrs["provenance"]),
            idata=idata,
        )


#: Dimensions of the joint model's draws in the NetCDF group ``joint`` (after ``sample``).
_JOINT_DIMS = {"bm_gamma": ("covariate",), "re_sd": ("effect",), "assoc": ("effect",),
               "re_corr_chol": ("effect", "effect_col")}


def _joint_dataset(joint: dict, names: list) -> xr.Dataset:
    """The ``joint`` group: flat draws (dimension ``sample``), visits, measurements, attributes."""
    variables = {k: (("sample",) + _JOINT_DIMS.get(k, ()), np.asarray(v, float))
                 for k, v in joint["params"].items()}
    variables["visit_times"] = ("visit", np.asarray(joint["visit_times"], float))
    obs = joint["observed"]
    variables["observed_patient"] = ("measurement", np.asarray(obs["patient"], np.int64))
    variables["observed_time"] = ("measurement", np.asarray(obs["time"], float))
    variables["observed_value"] = ("measurement", np.asarray(obs["value"], float))
    return xr.Dataset(
        variables,
        coords={"covariate": np.array(names, dtype=str), "effect": np.array(["intercept", "slope"])},
        attrs={"biomarker": str(joint["biomarker"]), "transform": str(joint["transform"]),
               "time_ref": float(joint["time_ref"]),
               "description": "joint biomarker + survival model (twinsim.fit.fit_joint_model); "
                              "observed_* are the measurements fitted (patient = row of observed_data)"},
    )


def _joint_from_dataset(g: xr.Dataset) -> dict:
    params = {k: np.asarray(g[k].values, float) for k in g.data_vars
              if not k.startswith("observed_") and k != "visit_times"}
    return {
        "biomarker": str(g.attrs["biomarker"]),
        "transform": str(g.attrs["transform"]),
        "time_ref": float(g.attrs["time_ref"]),
        "visit_times": np.asarray(g["visit_times"].values, float),
        "params": params,
        "observed": {"patient": np.asarray(g["observed_patient"].values, np.int64),
                     "time": np.asarray(g["observed_time"].values, float),
                     "value": np.asarray(g["observed_value"].values, float)},
    }
