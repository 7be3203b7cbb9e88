"""Posterior predictive check of a biomarker by visit (see :mod:`twinsim.report.checks`, which
re-exports these functions): the biomarker at each visit among patients still at risk,
against replicated cohorts of the posterior predictive (arrays from
:func:`twinsim.predictive.biomarker_ppc_arrays`).  Band arithmetic, panels and the table
layout are shared with the covariate check in :mod:`twinsim.report.checks`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError
from .checks import _FLAG, _OBSERVED, _TABLE, BAND, _draw_ecdf, _ecdf_grid, _legend, _panels, _rows, _suptitle, ecdf, pointwise_band
from .common import _fmt

__all__ = ["biomarker_check", "biomarker_check_table", "plot_biomarker_predictive"]


# --------------------------------------------------------------------------- biomarker by visit


@dataclass
class _Visits:
    times: np.ndarray           # (k,)
    values: list                # k arrays: observed values (NaN dropped)
    weights: list               # k arrays, same shapes: weights of those values (all 1 without weights)
    n_at_risk: np.ndarray       # (k,) int: patients at risk, measured or not
    masked: np.ndarray          # (D, N, k): predicted values, NaN where not at risk (or not "measured")
    at_risk: np.ndarray         # (D, N, k) bool

    @property
    def weighted(self) -> bool:
        return any(not np.allclose(w, 1.0) for w in self.weights)


def _biomarker_inputs(observed: dict, predicted: dict) -> _Visits:
    need_o = ("name", "unit", "visit_times", "values")
    need_p = ("values", "at_risk")
    miss = [f"observed[{k!r}]" for k in need_o if k not in observed] + [
        f"predicted[{k!r}]" for k in need_p if k not in predicted]
    if miss:
        raise ModelError(f"biomarker check: {', '.join(miss)} missing; observed needs keys {list(need_o)} and "
                         f"predicted {list(need_p)} (as returned by twinsim.predictive.biomarker_ppc_arrays).")
    times = np.asarray(observed["visit_times"], float).reshape(-1)
    k = times.size
    obs = [np.asarray(v, float).reshape(-1) for v in observed["values"]]
    if len(obs) != k or k == 0:
        raise DataError(f"biomarker check: observed['values'] holds {len(obs)} arrays for {k} visit times; "
                        "give one array of values (patients at risk) per visit, at least one visit.")
    raw_w = observed.get("weights")
    wts = [np.ones(v.size) for v in obs] if raw_w is None else [np.asarray(w, float).reshape(-1) for w in raw_w]
    if len(wts) != k or any(w.shape != v.shape or not (np.isfinite(w) & (w >= 0)).all() for w, v in zip(wts, obs)):
        raise DataError("biomarker check: observed['weights'] must hold one array of finite weights >= 0 per visit, "
                        "each the length of that visit's values; leave it out for unweighted values.")
    keep = [~np.isnan(v) for v in obs]
    obs = [v[m] for v, m in zip(obs, keep)]
    wts = [w[m] for w, m in zip(wts, keep)]
    n_risk = observed.get("n_at_risk")
    n_risk = np.array([v.size for v in obs]) if n_risk is None else np.asarray(n_risk, float).reshape(-1)
    if n_risk.size != k or (n_risk < np.array([v.size for v in obs])).any():
        raise DataError(f"biomarker check: observed['n_at_risk'] = {n_risk.tolist()} must give, per visit, the "
                        "patients at risk, at least as many as the values there; leave it out when every "
                        "patient at risk was measured.")
    values = np.asarray(predicted["values"], float)
    at_risk = np.asarray(predicted["at_risk"])
    if values.ndim != 3 or values.shape[2] != k or at_risk.shape != values.shape or at_risk.dtype != bool:
        raise ModelError(f"biomarker check: predicted['values'] has shape {values.shape} and "
                         f"predicted['at_risk'] shape {at_risk.shape} (dtype {at_risk.dtype}); both must be "
                         f"(cohorts, patients, {k}), at_risk boolean, one column per visit.")
    measured = np.asarray(predicted.get("measured", at_risk))
    if measured.shape != at_risk.shape or measured.dtype != bool or (measured & ~at_risk).any():
        raise ModelError("biomarker check: predicted['measured'] must be a boolean subset of predicted['at_risk'] "
                         "(same shape); leave it out to use every patient at risk.")
    return _Visits(times, obs, wts, n_risk.astype(int), np.where(measured, values, np.nan), at_risk)


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, probs) -> np.ndarray:
    """Inverted-CDF quantiles (the smallest value whose weighted ECDF reaches p); NaN if empty."""
    if values.size == 0 or weights.sum() <= 0:
        return np.full(len(probs), np.nan)
    return np.quantile(values, probs, weights=weights, method="inverted_cdf")


def biomarker_check(observed: dict, predicted: dict):
    """The biomarker at each visit among patients at risk: observed against predicted cohorts.

    Parameters
    ----------
    observed : dict
        ``name`` (str), ``unit`` (str, unit of the visit times), ``visit_times`` (k,)
        float, ``values``: list of k 1-d arrays, the observed biomarker at each visit among
        patients still at risk (in follow-up, event-free) at that visit time.  Optional:
        ``weights`` (list of k arrays shaped as ``values``: e.g. inverse-probability-of-
        measurement weights, :func:`twinsim.predictive.measurement_weights`; the observed
        ECDF and quartiles are then weighted) and ``n_at_risk`` (k ints: patients at risk,
        measured or not; default the number of values).
    predicted : dict
        ``values`` (D, N, k) float: D replicated cohorts of N synthetic patients, the biomarker
        at each visit; ``at_risk`` (D, N, k) bool: the patient is still at risk at the visit
        (min(event, censoring) >= visit time).  Optional ``measured`` (D, N, k) bool, a subset
        of ``at_risk``: the values that count for the ECDFs and quartiles (default all at
        risk), e.g. thinned to the observed number measured so that the band has the
        observed estimate's sampling spread.

    Returns
    -------
    (Figure, DataFrame): :func:`plot_biomarker_predictive` and :func:`biomarker_check_table`.

    Notes
    -----
    Quartiles are inverted-CDF quantiles (NumPy ``method="inverted_cdf"``, the one NumPy
    weights), for the observed values and every cohort alike.  Without ``measured`` the cohorts
    are complete (every patient at risk has a value), so with missed visits the band leaves
    out the extra spread of the observed estimate from fewer patients.
    """
    return plot_biomarker_predictive(observed, predicted), biomarker_check_table(observed, predicted)


def biomarker_check_table(observed: dict, predicted: dict) -> pd.DataFrame:
    """Table of the biomarker check (inputs as :func:`biomarker_check`).

    Returns
    -------
    DataFrame, four rows per visit: ``visit`` (time, in ``observed["unit"]``), ``statistic``
    (``n at risk``, ``25%``, ``median``, ``75%``: quartiles of the values of the patients at
    risk, weighted when ``observed["weights"]`` is given), ``observed``, ``median``, ``2.5%``,
    ``97.5%`` (over the D cohorts; a cohort with nobody at risk is left out of the quartiles'
    range) and ``inside`` (bool).
    """
    v = _biomarker_inputs(observed, predicted)
    probs = [0.25, 0.5, 0.75]
    rows = []
    for j, t in enumerate(v.times):
        o_q = _weighted_quantile(v.values[j], v.weights[j], probs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cohort with nobody at risk: NaN
            s_q = np.nanquantile(v.masked[:, :, j], probs, axis=1, method="inverted_cdf").T  # (D, 3)
        s_n = v.at_risk[:, :, j].sum(axis=1).astype(float)
        rows += _rows({"visit": float(t)}, ["n at risk", "25%", "median", "75%"], [v.n_at_risk[j], *o_q],
                      np.column_stack([s_n, s_q]))
    return pd.DataFrame(rows, columns=["visit", *_TABLE])


def plot_biomarker_predictive(observed: dict, predicted: dict):
    """Figure of the biomarker check (inputs as :func:`biomarker_check`): one panel per visit.

    Each panel: observed ECDF of the biomarker among patients at risk at the visit (black
    step; weighted when ``observed["weights"]`` is given) against the pointwise 2.5-97.5%
    band (blue) and median (dashed) of the D cohorts' ECDFs among their patients at risk.
    Title: visit time, observed n at risk (and how many were measured, when fewer), and the
    predicted median n at risk [2.5%, 97.5%]; red when a statistic of
    :func:`biomarker_check_table` at that visit is outside its range.  Up to 4 panels per
    row; one legend.

    Returns
    -------
    matplotlib Figure
    """
    v = _biomarker_inputs(observed, predicted)
    name, unit = str(observed["name"]), str(observed["unit"])
    d = v.masked.shape[0]
    table = biomarker_check_table(observed, predicted)
    fig, axes = _panels(v.times.size, 3.3, 3.1)
    for j, (ax, t) in enumerate(zip(axes, v.times)):
        grid = _ecdf_grid(v.values[j], v.masked[:, :, j].ravel())
        _draw_ecdf(ax, v.values[j], grid, pointwise_band(ecdf(v.masked[:, :, j], grid)), median=True,
                   weights=v.weights[j])
        n_lo, n_med, n_hi = np.quantile(v.at_risk[:, :, j].sum(axis=1), BAND)
        n_obs, n_meas = int(v.n_at_risk[j]), v.values[j].size
        flag = not table.loc[table["visit"] == float(t), "inside"].all()
        measured = f" ({n_meas} measured)" if n_meas < n_obs else ""
        ax.set_title(f"{_fmt(float(t))} {unit}\nn at risk {n_obs}{measured}\npredicted {_fmt(n_med, 3)} "
                     f"[{_fmt(n_lo, 3)}, {_fmt(n_hi, 3)}]", fontsize="small", color=_FLAG if flag else _OBSERVED)
        ax.set_xlabel(name, fontsize="small")
        ax.set_ylabel("ECDF", fontsize="small")
        ax.tick_params(labelsize="small")
    label = "observed ECDF (patients at risk" + (", weighted)" if v.weighted else ")")
    _legend(fig, [("step", label), ("band", f"predicted pointwise 95% band ({d} cohorts)"),
                  ("median", "predicted median")])
    _suptitle(fig, f"{name} by visit among patients at risk: observed vs posterior predictive")
    return fig
