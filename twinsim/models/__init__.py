"""Generative models of historical patients.

* :mod:`twinsim.models.units` - time units and their conversion;
* :mod:`twinsim.models.outcome` - outcome (time-to-event) models in NumPyro and their
  registry;
* :mod:`twinsim.models.covariates` - the generator of synthetic baseline covariates.
"""

from .covariates import CovariateCopula, copula_sample
from .outcome import (
    OUTCOME_MODELS,
    event_time_from_exponential,
    exponential_ph,
    get_outcome_model,
    survival,
    weibull_ph,
)
from .units import TIME_UNITS, time_factor

__all__ = [
    "TIME_UNITS",
    "time_factor",
    "OUTCOME_MODELS",
    "get_outcome_model",
    "exponential_ph",
    "weibull_ph",
    "event_time_from_exponential",
    "survival",
    "CovariateCopula",
    "copula_sample",
]
