"""Federated fitting, steps 1 and 2 (see :mod:`twinsim.fit.federated`, which re-exports
these names): what a site shares first (:func:`site_statistics`), the centre's shared
settings (:func:`federated_plan`), the Gaussian prior the combination divides out
(:func:`prior_moments`) and the exact-JSON exchange base class.

Event convention: ``event`` is 1 = event observed, 0 = right censored.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ModelError
from ..models import TIME_UNITS, get_family
from ..models.covariates import CovariateModel
from ._common import logger
from .inference import _validate
from .posterior import Posterior

__all__ = ["SiteStatistics", "FederatedPlan", "site_statistics", "federated_plan", "prior_moments"]

#: Quantiles kept per continuous covariate in a site's shared generator (instead of its values).
SYNTHETIC_MAX_QUANTILES = 50
#: A site posterior whose |standardised skewness| exceeds this is called non-Gaussian.
SKEWNESS_MAX = 0.5
#: Parameters of each family in theta, before beta (log_hazard is a vector).
_HEAD = {"weibull": ("log_scale", "log_shape"), "exponential": ("log_scale",),
         "lognormal": ("mu", "log_sigma"), "piecewise_exponential": ("log_hazard",)}
_FIXED = ("outcome", "time_unit", "knots", "pieces", "standardisation", "time_ref",
          "study", "study_labels", "missing")


def _arr(v, ndim=1) -> np.ndarray:
    return np.array(v, dtype=np.float64, ndmin=ndim)


class _Json:
    """Exact JSON round trip (floats written with ``repr``) of a frozen dataclass whose
    ``_ARRAYS`` fields (name -> ndim) are float arrays and ``_TUPLES`` fields tuples."""

    _ARRAYS: dict = {}
    _TUPLES: tuple = ()

    def to_json(self) -> str:
        """JSON text; :meth:`from_json` restores the object exactly."""
        d = asdict(self)
        d.update({k: None if getattr(self, k) is None else getattr(self, k).tolist() for k in self._ARRAYS})
        d.update({k: list(getattr(self, k)) for k in self._TUPLES})
        return json.dumps({"format": f"twinsim.{type(self).__name__}", **d})

    @classmethod
    def from_json(cls, text: str):
        """Rebuild from :meth:`to_json` (:class:`ModelError` if the text is not one)."""
        kind = cls.__name__
        try:
            d = json.loads(text)
        except (TypeError, ValueError) as err:
            raise ModelError(f"{kind}.from_json: not valid JSON ({err}).") from err
        if not isinstance(d, dict) or d.pop("format", None) != f"twinsim.{kind}":
            raise ModelError(f"{kind}.from_json: the text is not a twinsim {kind}; pass what "
                             f"{kind}.to_json wrote.")
        d.update({k: None if d[k] is None else _arr(d[k], nd) for k, nd in cls._ARRAYS.items()})
        d.update({k: tuple(d[k]) for k in cls._TUPLES})
        return cls(**d)


# --------------------------------------------------------------------------- 1. statistics


@dataclass(frozen=True, eq=False)
class SiteStatistics(_Json):
    """What a site shares first: sizes and sums, no row.

    Attributes
    ----------
    n, n_events : int, patients and observed events (event 1)
    design_names : tuple of str (d,), the design columns (:attr:`CovariateModel.design_names`)
    x_sum, x_sum_sq : ndarray (d,), per design column the sum and the sum of squares
    sum_log_time : float, sum of log follow-up (log ``time_unit``), censored times included
    time_unit, site : str, the unit of the times and the label of the site
    """

    n: int
    n_events: int
    design_names: tuple
    x_sum: np.ndarray
    x_sum_sq: np.ndarray
    sum_log_time: float
    time_unit: str = "days"
    site: str = ""

    _ARRAYS = {"x_sum": 1, "x_sum_sq": 1}
    _TUPLES = ("design_names",)


def _design_frame(time, event, covariates, missing):
    """Validated (time, event, frame); refuses missing values (see the message)."""
    if missing != "error":
        raise ModelError(
            f"federated fitting supports missing='error' only; got missing={missing!r}. Each site "
            "would fill missing values with its own observed mean, so the missing-indicator "
            "coefficients would mean different things at different sites. Drop incomplete rows "
            "or impute them at every site with one shared rule first.")
    return _validate(time, event, covariates, "error")


def site_statistics(time, event, covariates, *, missing: str = "error", time_unit: str = "days",
                    site: str = "") -> SiteStatistics:
    """Sizes and sums of one site (step 1 of the protocol).

    Parameters
    ----------
    time : array (n,), float > 0, ``time_unit``
    event : array (n,), {0, 1}; 1 = event observed, 0 = right censored
    covariates : DataFrame (n, p) or None
        As for :func:`twinsim.fit.fit`; categorical columns should carry the shared level
        list (``pd.Categorical(values, categories=LEVELS)``).
    missing : {"error"}
        Missing covariate values are refused (sites would fill them differently).
    time_unit, site : str
    """
    if time_unit not in TIME_UNITS:
        raise ModelError(f"time_unit {time_unit!r} is unknown; use one of {', '.join(TIME_UNITS)}.")
    t, e, frame = _design_frame(time, event, covariates, missing)
    cm = CovariateModel.fit(frame, missing="error", field=f"site {site!r} covariates")
    x = cm.design(frame)
    return SiteStatistics(n=int(t.size), n_events=int(e.sum()), design_names=tuple(cm.design_names),
                          x_sum=x.sum(axis=0), x_sum_sq=(x**2).sum(axis=0),
                          sum_log_time=float(np.log(t).sum()), time_unit=time_unit, site=str(site))


# --------------------------------------------------------------------------- 2. plan


def _design_mismatch(names, expected, who) -> ModelError:
    names, expected = list(names), list(expected)
    return ModelError(
        f"{who} has design columns {names} but the plan has {expected} (only at the site: "
        f"{[c for c in names if c not in expected]}; only in the plan: "
        f"{[c for c in expected if c not in names]}). Every site must pass the same covariate "
        "columns in the same order, each categorical column with the same level list "
        "(pd.Categorical(values, categories=SHARED_LEVELS)) and the same most frequent level "
        "(it is the reference level of the dummies); agree on them before fitting.")


@dataclass(frozen=True, eq=False)
class FederatedPlan(_Json):
    """Settings the centre sends to every site so that their posteriors describe the same
    parameters.

    Attributes
    ----------
    outcome, time_unit : str
    design_names : tuple of str (d,)
    mean, sd : ndarray (d,)
        Pooled standardisation of the design columns (``ddof=0``; a constant column 1).
    time_ref : float
        Geometric mean follow-up ``exp(sum log t / n)`` over all sites (``time_unit``); it
        only centres the wide prior of the log scale (prior SD 3).
    knots : ndarray (K,) or None, piecewise-exponential cut points (first 0), ``time_unit``
    sites, n, n_events : int, number of sites, patients and events in all
    """

    outcome: str
    time_unit: str
    design_names: tuple
    mean: np.ndarray
    sd: np.ndarray
    time_ref: float
    knots: np.ndarray | None
    sites: int
    n: int
    n_events: int
    _ARRAYS = {"mean": 1, "sd": 1, "knots": 1}
    _TUPLES = ("design_names",)

    @property
    def standardisation(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, sd)`` for :func:`twinsim.fit.fit`."""
        return self.mean, self.sd

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of theta (D,): the family's parameters, then ``beta[NAME]``."""
        head = ([f"log_hazard[{j}]" for j in range(len(self.knots))]
                if self.outcome == "piecewise_exponential" else list(_HEAD[self.outcome]))
        return tuple(head + [f"beta[{c}]" for c in self.design_names])

    @property
    def digest(self) -> str:
        """SHA-256 of :meth:`to_json`: a site summary records the plan it was fitted under."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def federated_plan(stats, *, outcome: str = "weibull", knots=None, time_unit: str = "days") -> FederatedPlan:
    """The centre's shared settings from the sites' :class:`SiteStatistics` (step 2).

    Parameters
    ----------
    stats : list of SiteStatistics
    outcome : str, outcome family (:data:`twinsim.models.FAMILIES`)
    knots : array (K,), optional
        Piecewise-exponential cut points in ``time_unit`` (0 is added if absent); required
        for that family, since cut points chosen from each site's data would differ.
    time_unit : str, unit of every site's times

    Returns
    -------
    FederatedPlan
        Pooled ``mean = sum x / n`` and ``sd = sqrt(sum x^2 / n - mean^2)`` (ddof=0; a column
        with variance below ``1e-12 * max(1, mean^2)`` counts as constant and gets sd 1, as in
        :func:`~twinsim.fit.fit`), ``time_ref = exp(sum log t / n)``.
    """
    family = get_family(outcome)
    stats = list(stats)
    if not stats or not all(isinstance(s, SiteStatistics) for s in stats):
        raise ModelError("federated_plan needs a non-empty list of SiteStatistics (one per site).")
    if time_unit not in TIME_UNITS:
        raise ModelError(f"time_unit {time_unit!r} is unknown; use one of {', '.join(TIME_UNITS)}.")
    units = {s.site or str(i): s.time_unit for i, s in enumerate(stats)}
    if set(units.values()) != {time_unit}:
        raise ModelError(f"the sites' time units {units} must all be the plan's {time_unit!r}; "
                         "convert the follow-up times at the sites.")
    names = stats[0].design_names
    for i, s in enumerate(stats[1:], 1):
        if tuple(s.design_names) != tuple(names):
            raise _design_mismatch(s.design_names, names, f"site {s.site or i!r}")
    n = sum(s.n for s in stats)
    mean = sum(s.x_sum for s in stats) / n
    var = sum(s.x_sum_sq for s in stats) / n - mean**2
    constant = var <= 1e-12 * np.maximum(1.0, mean**2)
    sd = np.where(constant, 1.0, np.sqrt(np.maximum(var, 0.0)))
    if constant.any():
        logger.warning("design column(s) %s are constant over all sites; their coefficients are "
                       "drawn from the prior.", [names[j] for j in np.flatnonzero(constant)])
    k = None
    if family.name == "piecewise_exponential":
        if knots is None:
            raise ModelError(
                "outcome 'piecewise_exponential' needs explicit knots in a federated plan: cut points "
                "chosen from each site's event times would differ between sites. Pass knots=[...] "
                f"in {time_unit} (e.g. agreed quantiles of follow-up).")
        k = np.asarray(knots, dtype=float).ravel()
        if k.size == 0 or not np.all(np.isfinite(k)) or np.any(k < 0) or np.any(np.diff(k) <= 0):
            raise ModelError(f"knots must be increasing, finite and >= 0 ({time_unit}); got {list(knots)}.")
        k = k if k[0] == 0 else np.concatenate([[0.0], k])
    elif knots is not None:
        raise ModelError(f"knots apply to the piecewise_exponential outcome only; got outcome {outcome!r}.")
    return FederatedPlan(outcome=family.name, time_unit=time_unit, design_names=tuple(names),
                         mean=_arr(mean), sd=_arr(sd),
                         time_ref=float(math.exp(sum(s.sum_log_time for s in stats) / n)),
                         knots=k, sites=len(stats), n=int(n), n_events=int(sum(s.n_events for s in stats)))


def prior_moments(plan: FederatedPlan) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of the (Gaussian) prior of theta in ``plan.param_names``.

    Weibull / exponential ``log_scale ~ N(log t_ref, 9)``, ``log_shape ~ N(0, 1)``;
    log-normal ``mu ~ N(log t_ref, 9)``, ``log_sigma ~ N(0, 1)``; piecewise exponential
    ``log_hazard[j] = first - log t_ref + sum_{i<j} step_i`` with ``first ~ N(0, 9)``,
    ``step ~ N(0, 1)``: mean ``-log t_ref``, covariance ``9 + min(i, j)``; ``beta ~ N(0, I)``.
    """
    d = len(plan.design_names)
    log_ref = math.log(plan.time_ref)
    if plan.outcome == "piecewise_exponential":
        idx = np.arange(len(plan.knots))
        m_head, s_head = np.full(idx.size, -log_ref), 9.0 + np.minimum.outer(idx, idx)
    elif plan.outcome == "exponential":
        m_head, s_head = np.array([log_ref]), np.array([[9.0]])
    else:  # weibull (log_scale, log_shape), lognormal (mu, log_sigma)
        m_head, s_head = np.array([log_ref, 0.0]), np.diag([9.0, 1.0])
    h = m_head.size
    cov = np.zeros((h + d, h + d))
    cov[:h, :h] = s_head
    cov[h:, h:] = np.eye(d)
    return np.concatenate([m_head, np.zeros(d)]), cov


def _theta(post: Posterior) -> np.ndarray:
    """Draws (S, D) of theta from a fitted posterior, in :attr:`FederatedPlan.param_names` order."""
    s = post.n_draws
    return np.column_stack([np.asarray(post.params[k], float).reshape(s, -1) for k in _HEAD[post.outcome]]
                           + [np.asarray(post.beta, float).reshape(s, -1)])


def _params(outcome: str, theta: np.ndarray, d: int) -> tuple[dict, np.ndarray]:
    """Inverse of :func:`_theta`: (params dict of (S, ...) arrays, beta (S, d))."""
    h = theta.shape[1] - d
    if outcome == "piecewise_exponential":
        return {"log_hazard": theta[:, :h].copy()}, theta[:, h:].copy()
    params = {k: theta[:, i].copy() for i, k in enumerate(_HEAD[outcome])}
    if outcome == "exponential":
        params["log_shape"] = np.zeros(theta.shape[0])
    return params, theta[:, h:].copy()
