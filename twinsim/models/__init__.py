"""Generative models of historical patients.

* :mod:`twinsim.models.units` - time units and their conversion;
* :mod:`twinsim.models.outcome` - outcome (time-to-event) models in NumPyro and their
  registry;
* :mod:`twinsim.models.covariates` - the generator of synthetic baseline covariates
  (with :mod:`~twinsim.models.dependence` and the design-matrix :mod:`~twinsim.models.encoding`);
* :mod:`twinsim.models.joint` - the joint model of a biomarker trajectory and survival.
"""

from .covariates import CovariateArrays, CovariateCopula, CovariateModel, copula_sample, sample_raw
from .encoding import DesignSpec, encode
from .joint import censoring_sampler, fit_joint, joint_predictive, joint_sample, joint_weibull
from .outcome import (
    FAMILIES,
    OUTCOME_MODELS,
    OutcomeFamily,
    default_knots,
    event_time_from_exponential,
    exponential_ph,
    get_family,
    get_outcome_model,
    lognormal_aft,
    outcome_model,
    piecewise_exponential_ph,
    survival,
    weibull_ph,
)
from .units import TIME_UNITS, time_factor

__all__ = [
    "TIME_UNITS",
    "time_factor",
    "OutcomeFamily",
    "FAMILIES",
    "get_family",
    "OUTCOME_MODELS",
    "get_outcome_model",
    "outcome_model",
    "default_knots",
    "exponential_ph",
    "weibull_ph",
    "piecewise_exponential_ph",
    "lognormal_aft",
    "event_time_from_exponential",
    "survival",
    "CovariateModel",
    "CovariateArrays",
    "sample_raw",
    "encode",
    "DesignSpec",
    "CovariateCopula",
    "copula_sample",
    "joint_weibull",
    "joint_sample",
    "fit_joint",
    "joint_predictive",
    "censoring_sampler",
]
