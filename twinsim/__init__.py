"""twinsim: clinical-trial simulation with synthetic control arms and digital twins.

Importing twinsim switches JAX to 64-bit floats (``jax_enable_x64``): operating
characteristics must be reproducible to the last digit and the log-rank and Cox sums
are checked against lifelines at tight tolerance.

The data flow is the module layout: ``data`` (load and check) -> ``fit`` (NUTS posterior
of a ``models`` generative model) -> ``simulate`` (one JAX kernel, vmapped over replicates)
-> ``analysis`` (log-rank, Cox, operating characteristics) -> ``report``; ``scenario``
is the contract and ``run`` strings the stages together.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from .analysis import decide, kaplan_meier, logrank_cox, operating_characteristics  # noqa: E402
from .data import Biomarker, TrialData, list_datasets, load_data  # noqa: E402
from .errors import (  # noqa: E402
    ConvergenceWarning,
    DataError,
    ModelError,
    PrivacyError,
    ScenarioError,
    StatisticalWarning,
    TwinsimError,
    TwinsimWarning,
)
from .fit import Posterior, fit_data  # noqa: E402  (twinsim.fit stays the module)
from .models import CovariateCopula, CovariateModel  # noqa: E402
from .run import RunResult, fit_scenario, run_scenario, write_outputs  # noqa: E402
from .scenario import Scenario, build_grid, load_scenario  # noqa: E402
from .simulate import predictive_km, sample_patients, simulate_grid  # noqa: E402
from .digital_twins import twins  # noqa: E402
from .size import SizeResult, size_search  # noqa: E402
from .validate import ValidationResult, synthetic_table, validate_scenario  # noqa: E402

__all__ = [
    "__version__",
    "TrialData", "Biomarker", "load_data", "list_datasets",
    "Posterior", "fit_data", "CovariateModel", "CovariateCopula",
    "Scenario", "load_scenario", "build_grid",
    "simulate_grid", "sample_patients", "predictive_km",
    "twins",
    "logrank_cox", "kaplan_meier", "decide", "operating_characteristics",
    "RunResult", "run_scenario", "fit_scenario", "write_outputs",
    "SizeResult", "size_search",
    "ValidationResult", "validate_scenario", "synthetic_table",
    "TwinsimError", "DataError", "ScenarioError", "ModelError", "PrivacyError",
    "TwinsimWarning", "ConvergenceWarning", "StatisticalWarning",
]
