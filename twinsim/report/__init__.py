"""Report: a run's summary and model -> figures, ``report.md`` and a self-contained ``report.html``.

The report is built once as a list of blocks and rendered twice, as Markdown and as one
self-contained HTML page (inline CSS, PNGs as data URIs, no JavaScript).  Figures are
:class:`matplotlib.figure.Figure` objects, never pyplot state; the ``plot_*`` functions
follow lifelines' ``plot_xxx(..., ax=None) -> ax``.  Event convention: ``event`` is
1 = event observed, 0 = right censored.

One module per stage, along the data flow:

- :mod:`twinsim.report.common`: cell formatting and grid-dimension labels shared by the others;
- :mod:`twinsim.report.tables`: summary -> type I error, power and bias tables, cells as text;
- :mod:`twinsim.report.figures`: run -> Kaplan-Meier, assumed-survival and rejection figures;
- :mod:`twinsim.report.checks`: posterior predictive checks of the covariate marginals and of a
  biomarker by visit (figures and tables);
- :mod:`twinsim.report.document`: tables + figures -> blocks -> ``report.md`` and ``report.html``
  (:func:`write_report`).
"""

from __future__ import annotations

from .checks import (
    biomarker_check,
    biomarker_check_table,
    covariate_check,
    covariate_check_table,
    plot_biomarker_predictive,
    plot_covariate_marginals,
)
from .document import FIGURES, write_report
from .figures import (
    DPI,
    KM_COHORTS,
    LINESTYLES,
    MARKERS,
    PALETTE,
    plot_control_survival,
    plot_km_predictive,
    plot_rejection,
    rejection_figure,
)
from .tables import INFLATION_MCSE, bias_table, format_table, power_table, type_i_error_table

__all__ = [
    "write_report",
    "plot_km_predictive",
    "plot_control_survival",
    "plot_rejection",
    "rejection_figure",
    "type_i_error_table",
    "power_table",
    "bias_table",
    "format_table",
    "covariate_check",
    "covariate_check_table",
    "plot_covariate_marginals",
    "biomarker_check",
    "biomarker_check_table",
    "plot_biomarker_predictive",
]
