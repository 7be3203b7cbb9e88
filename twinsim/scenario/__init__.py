"""Scenario files: YAML -> validated, frozen :class:`Scenario`, overrides and the grid.

The field names are the contract of ``docs/scenario-reference.md`` (generated from the
schema by ``twinsim reference``).  Everything here is inert: no data are read and no random
numbers drawn.  Errors are :class:`~twinsim.errors.ScenarioError` with a one-paragraph
message naming the field, the value received and the fix.

Modules: ``schema`` (the pydantic sections), ``loading`` (YAML, overrides, messages),
``grid`` (expansion of lists and sweeps), ``reference`` (the generated documentation).
"""

from .grid import Grid, build_grid
from .loading import apply_override, load_scenario, parse_scenario
from .reference import scenario_reference
from .schema import (
    Accrual,
    AdamData,
    AdamSource,
    BiomarkerSpec,
    Analysis,
    Control,
    Cut,
    Design,
    Drift,
    Dropout,
    Effect,
    Historical,
    HistoricalSource,
    Inference,
    Joint,
    Model,
    Scenario,
    Trial,
    Validation,
)

__all__ = [
    "Scenario",
    "Historical",
    "AdamSource",
    "AdamData",
    "HistoricalSource",
    "BiomarkerSpec",
    "Model",
    "Inference",
    "Joint",
    "Control",
    "Trial",
    "Accrual",
    "Dropout",
    "Cut",
    "Effect",
    "Drift",
    "Design",
    "Analysis",
    "Validation",
    "Grid",
    "load_scenario",
    "parse_scenario",
    "apply_override",
    "build_grid",
    "scenario_reference",
]
