"""Trust in the synthetic patients (issue 5): fidelity to real data, privacy, subgroups.

Every metric is reported beside the value an independent real sample gets (a holdout split
off before fitting), because a perfect generator scores like the holdout, not like zero.

Modules: ``_encode`` (one numeric matrix from mixed-type frames, shared by the metrics),
``fidelity`` (marginals, dependence, detection, survival curves) and ``privacy`` (distance to
closest record, nearest-neighbour ratio, identifiability, membership and attribute inference).
Not yet built (issue 5 continues): ``twinsim validate``, subgroups, the collapse harness,
``twinsim sample`` with its synthesis card; see ``docs/validation.md``.
"""

from .fidelity import detection_auc, fidelity_report, km_distance, marginal_table
from .privacy import memorising_generator, privacy_report

__all__ = ["fidelity_report", "privacy_report", "memorising_generator", "marginal_table", "detection_auc",
           "km_distance"]
