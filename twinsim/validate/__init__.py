"""Trust in the synthetic patients (issue 5): fidelity, estimands, privacy, subgroups, collapse.

Every metric is reported beside the value an independent real sample gets (a holdout split
off before fitting), because a perfect generator scores like the holdout, not like zero.

Modules: ``_encode`` (one numeric matrix from mixed-type frames, shared by the metrics),
``generate`` (censored synthetic tables from a posterior, conditions and oversampling),
``fidelity`` (marginals, dependence, detection, survival curves), ``estimands`` (Cox log
hazard ratios, restricted mean survival, train-on-synthetic C-index), ``privacy`` (distance
to closest record, nearest-neighbour ratio, identifiability, membership and attribute
inference), ``subgroups`` (the fidelity checks within subgroups), ``collapse`` (refitting on
the generator's own output), ``runner`` (``twinsim validate``: repeated holdout splits) and
``card`` (the privacy gate and synthesis card of ``twinsim sample``).  See ``docs/validation.md``.
"""

from .collapse import collapse, plot_collapse
from .estimands import estimand_report
from .fidelity import detection_auc, fidelity_report, km_distance, marginal_table
from .generate import parse_condition, parse_oversample, synthetic_table
from .privacy import memorising_generator, privacy_report
from .runner import ValidationResult, holdout_split, validate_scenario
from .figures import plot_subgroups
from .subgroups import subgroup_report, subgroup_specs, subgroup_summary

__all__ = ["fidelity_report", "privacy_report", "memorising_generator", "marginal_table", "detection_auc",
           "km_distance", "estimand_report", "subgroup_report", "subgroup_specs", "subgroup_summary", "plot_subgroups",
           "collapse", "plot_collapse", "synthetic_table", "parse_condition", "parse_oversample", "validate_scenario",
           "ValidationResult", "holdout_split"]
