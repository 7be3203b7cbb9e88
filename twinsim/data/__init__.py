"""Load and check historical time-to-event data -> :class:`TrialData`.

Inputs: ``builtin:NAME``, CSV / Parquet / SAS transport files, DataFrames, CDISC ADaM
(ADSL + ADTTE, optionally ADLB for a biomarker), and lists of these (several studies).
Covariates are numeric (float64) or categorical (pandas Categorical); a biomarker comes
in wide columns, a long table or ADLB and is stored as a :class:`Biomarker`.
See ``docs/data.md`` for every form and check.

Event convention: everywhere in twinsim ``event`` is 1 = event observed, 0 = right
censored (lifelines' ``event_col`` convention, *not* NumPyro's censoring flag, *not*
ADaM's CNSR, which :func:`twinsim.data.adam.event_from_cnsr` converts, in that one
place).  Every input problem raises :class:`~twinsim.errors.DataError` with a
one-paragraph message that starts with the field concerned (``historical.duration``,
``historical.data.adam.adtte`` ...), shows the value received and says how to fix it.
Statistical caveats are :class:`~twinsim.errors.StatisticalWarning`.  The package logs
(logger ``twinsim.data``); it never prints.

Modules: :mod:`~twinsim.data.trialdata` (the containers), :mod:`~twinsim.data.load`
(``load_data``), :mod:`~twinsim.data.tables` (files, filters, outcome checks),
:mod:`~twinsim.data.adam` (ADaM), :mod:`~twinsim.data.biomarker` (the three layouts),
:mod:`~twinsim.data.builtin` (the bundled data sets).
"""

from __future__ import annotations

from .adam import event_from_cnsr, read_adam
from .builtin import BUILTIN_DATASETS, builtin_frame, list_datasets
from .load import MISSING_POLICIES, load_data
from .trialdata import Biomarker, TrialData

__all__ = [
    "TrialData", "Biomarker", "load_data", "BUILTIN_DATASETS", "builtin_frame", "list_datasets",
    "read_adam", "event_from_cnsr", "MISSING_POLICIES",
]
