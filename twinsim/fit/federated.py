"""Federated fitting: each site fits locally and shares only summaries, never patient rows.

Protocol (``docs/models-federated.md``): (1) each site sends :func:`site_statistics` (sizes,
per design column sums and sums of squares, sum of log follow-up); (2) the centre sends back
one :class:`FederatedPlan` (:func:`federated_plan`: pooled standardisation, ``time_ref``,
family, knots); (3) each site runs :func:`fit_site` (NUTS on its rows under the plan) and
sends a :class:`SiteSummary` (posterior mean and covariance of the parameters on the scale
where their prior is Gaussian, diagnostics, optional synthetic covariates); (4) the centre
multiplies the site Gaussians and divides by the prior K - 1 times (:func:`combine`), which
approximates the pooled posterior when each site posterior is near Gaussian
(Bernstein-von Mises) and the sites share one set of parameters.

Event convention: ``event`` is 1 = event observed, 0 = right censored.  Randomness enters
only through explicit JAX keys.  Exchange objects are JSON (exact round trip).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats as _stats

from ..errors import ConvergenceWarning, ModelError, StatisticalWarning
from ..models.covariates import CovariateModel
from ._common import _key_data
from .inference import _versions, fit
from .posterior import Posterior
from .federated_plan import (  # noqa: F401  (re-exported)
    _FIXED, SKEWNESS_MAX, SYNTHETIC_MAX_QUANTILES, FederatedPlan, SiteStatistics, _design_frame, _design_mismatch,
    _Json, _params, _theta, federated_plan, prior_moments, site_statistics,
)

__all__ = ["SiteStatistics", "FederatedPlan", "SiteSummary", "site_statistics",
           "federated_plan", "fit_site", "combine", "prior_moments"]

# --------------------------------------------------------------------------- 3. site fit


@dataclass(frozen=True, eq=False)
class SiteSummary(_Json):
    """What a site shares after fitting: a Gaussian approximation of its posterior, no row.

    Attributes
    ----------
    site, outcome : str
    param_names : tuple of str (D,), :attr:`FederatedPlan.param_names`
    mean : ndarray (D,), posterior mean of theta
    cov : ndarray (D, D), posterior covariance of theta (draws, ``ddof=1``; symmetrised)
    n, n_events, data_hash : int, int, str
    diagnostics : dict
        ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``, ``divergences``, ``chains``,
        ``draws`` (per chain) and ``max_abs_skewness`` (largest |standardised third moment|
        of a theta component over the draws; Gaussian 0).
    plan_digest : str, :attr:`FederatedPlan.digest` of the plan it was fitted under
    synthetic : dict or None
        Synthetic covariate rows: ``{"n", "names", "categorical", "levels", "ordered",
        "columns"}``, ``columns`` a list per covariate (numbers, category labels; None = NaN).
    """

    site: str
    outcome: str
    param_names: tuple
    mean: np.ndarray
    cov: np.ndarray
    n: int
    n_events: int
    data_hash: str
    diagnostics: dict
    plan_digest: str
    synthetic: dict | None = field(default=None)
    _ARRAYS = {"mean": 1, "cov": 2}
    _TUPLES = ("param_names",)

    def synthetic_frame(self) -> pd.DataFrame | None:
        """The synthetic covariate rows as a DataFrame (categoricals with their level list)."""
        s = self.synthetic
        if s is None:
            return None
        data = {}
        for name, cat, levels, ordered, col in zip(s["names"], s["categorical"], s["levels"],
                                                   s["ordered"], s["columns"]):
            data[name] = (pd.Categorical(col, categories=levels, ordered=ordered) if cat
                          else np.array([np.nan if v is None else v for v in col], dtype=float))
        return pd.DataFrame(data, columns=list(s["names"]), index=pd.RangeIndex(int(s["n"])))


def _synthetic_table(cm: CovariateModel, frame: pd.DataFrame) -> dict:
    cols = []
    for name, cat in zip(cm.names, cm.categorical):
        v = frame[name]
        cols.append([None if pd.isna(x) else (x.item() if isinstance(x, np.generic) else x)
                     for x in (v.astype(object) if cat else v.to_numpy(float))])
    return {"n": int(len(frame)), "names": list(cm.names), "categorical": [bool(c) for c in cm.categorical],
            "levels": [list(lv) for lv in cm.levels], "ordered": [bool(o) for o in cm.ordered],
            "columns": cols}


def _num(x, default=float("nan")) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def fit_site(time, event, covariates, plan: FederatedPlan, *, rng_key, chains: int = 2,
             warmup: int = 500, draws: int = 500, synthetic: int = 0, site: str = "",
             **fit_kwargs) -> SiteSummary:
    """Fit one site's rows under ``plan`` and summarise (step 3; runs at the site).

    Parameters
    ----------
    time : array (n,), float > 0, ``plan.time_unit``
    event : array (n,), {0, 1}; 1 = event observed, 0 = right censored
    covariates : DataFrame (n, p) or None; must give the plan's design columns (checked)
    plan : FederatedPlan
    rng_key : jax random key; split in two, for NUTS and for the synthetic covariates
    chains, warmup, draws : int; NUTS settings (:func:`twinsim.fit.fit`)
    synthetic : int >= 0
        Synthetic covariate rows to share, drawn from the site's :class:`CovariateModel`
        fitted with ``max_quantiles=50``: a continuous marginal is kept as its 50 quantiles
        at ``(k + 0.5) / 50`` (draws interpolate between them; the outer 1% of draws equal
        the outer quantiles), not its values; integer and categorical columns keep their
        observed values and proportions.  Needs n > 50 (with fewer patients the generator
        would keep every value).  Share about the same fraction of n at every site.
    site : str, label of the site
    **fit_kwargs
        Passed to :func:`twinsim.fit.fit` (``target_accept``, ``data_source``, ``data_hash``,
        ``seed``, ``progress_bar``); the plan's settings cannot be overridden.

    Returns
    -------
    SiteSummary (no patient row: moments, sizes, diagnostics, synthetic covariates)
    """
    if not isinstance(plan, FederatedPlan):
        raise ModelError(f"fit_site needs the centre's FederatedPlan; got {type(plan).__name__}.")
    fixed = sorted(set(fit_kwargs) & set(_FIXED))
    if fixed:
        raise ModelError(f"fit_site: {fixed} come from the plan (the same at every site) and cannot be "
                         "passed; change the plan at the centre instead.")
    if isinstance(synthetic, bool) or not isinstance(synthetic, (int, np.integer)) or synthetic < 0:
        raise ModelError(f"fit_site: synthetic={synthetic!r}; use an integer >= 0 (0 = share no covariates).")
    t, e, frame = _design_frame(time, event, covariates, "error")
    if synthetic and t.size <= SYNTHETIC_MAX_QUANTILES:
        raise ModelError(
            f"fit_site: synthetic={synthetic} needs more than {SYNTHETIC_MAX_QUANTILES} patients at site "
            f"{site!r} (it has {t.size}); with fewer the covariate generator keeps every observed value. "
            "Use synthetic=0 for this site and let larger sites share covariates.")
    cm = CovariateModel.fit(frame, missing="error", max_quantiles=SYNTHETIC_MAX_QUANTILES,
                            field=f"site {site!r} covariates")
    if tuple(cm.design_names) != tuple(plan.design_names):
        raise _design_mismatch(cm.design_names, plan.design_names, f"site {site!r}")
    k_fit, k_syn = jax.random.split(rng_key)
    post = fit(t, e, frame, outcome=plan.outcome, rng_key=k_fit, time_unit=plan.time_unit,
               chains=chains, warmup=warmup, draws=draws, knots=plan.knots,
               standardisation=plan.standardisation, time_ref=plan.time_ref, **fit_kwargs)
    theta = _theta(post)
    mean = theta.mean(axis=0)
    cov = np.atleast_2d(np.cov(theta, rowvar=False))
    cov = (cov + cov.T) / 2.0
    sdv = theta.std(axis=0)
    skew = np.mean(((theta - mean) / np.where(sdv > 0, sdv, 1.0)) ** 3, axis=0)
    dg = post.diagnostics
    diagnostics = {
        "max_r_hat": _num(np.nanmax(dg["r_hat"])) if "r_hat" in dg and dg["r_hat"].notna().any() else None,
        "min_ess_bulk": _num(dg["ess_bulk"].min()) if "ess_bulk" in dg else None,
        "min_ess_tail": _num(dg["ess_tail"].min()) if "ess_tail" in dg else None,
        "divergences": int(post.divergences), "chains": int(chains), "draws": int(draws),
        "max_abs_skewness": float(np.max(np.abs(skew))),
    }
    table = _synthetic_table(cm, cm.sample(k_syn, int(synthetic))) if synthetic else None
    return SiteSummary(site=str(site), outcome=plan.outcome, param_names=plan.param_names,
                       mean=mean, cov=cov, n=int(t.size), n_events=int(e.sum()),
                       data_hash=str(fit_kwargs.get("data_hash", "")), diagnostics=diagnostics,
                       plan_digest=plan.digest, synthetic=table)


# --------------------------------------------------------------------------- 4. combination


def _precision(cov: np.ndarray, who: str) -> np.ndarray:
    try:
        c = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as err:
        raise ModelError(f"the posterior covariance of {who} is not positive definite; refit that "
                         "site with more draws.") from err
    inv_c = np.linalg.solve(c, np.eye(cov.shape[0]))
    return inv_c.T @ inv_c


def _pooled_covariates(summaries, labels, plan: FederatedPlan) -> tuple[CovariateModel, dict]:
    if not plan.design_names:
        return CovariateModel.fit(pd.DataFrame(index=range(2))), {}
    frames = {lab: (s.synthetic_frame(), s.n) for lab, s in zip(labels, summaries)}
    shared = {k: v for k, v in frames.items() if v[0] is not None and len(v[0])}
    if not shared:
        raise ModelError(
            "combine: no site shared synthetic covariates, so the centre has no covariate generator "
            "for the simulator; refit the sites with fit_site(..., synthetic=N) (e.g. N = n / 2).")
    if len(shared) < len(frames):
        warnings.warn(f"combine: sites {sorted(set(frames) - set(shared))} shared no synthetic covariates; "
                      "the pooled covariate generator represents the other sites only.",
                      StatisticalWarning, stacklevel=3)
    # keep the same fraction of each site's n, so the pooled rows weigh sites by their size
    frac = min(len(f) / n for f, n in shared.values())
    keep = {k: max(1, int(round(frac * n))) for k, (f, n) in shared.items()}
    parts = [f.iloc[:keep[k]] for k, (f, _) in shared.items()]
    pooled = {}
    for name in parts[0].columns:
        cols = [p[name] for p in parts]
        if isinstance(cols[0].dtype, pd.CategoricalDtype):
            levels = list(dict.fromkeys(v for c in cols for v in c.cat.categories))
            pooled[name] = pd.Categorical(np.concatenate([c.astype(object).to_numpy() for c in cols]),
                                          categories=levels, ordered=cols[0].cat.ordered)
        else:
            pooled[name] = np.concatenate([c.to_numpy(float) for c in cols])
    cm = CovariateModel.fit(pd.DataFrame(pooled), missing="error", field="pooled synthetic covariates")
    if tuple(cm.design_names) != tuple(plan.design_names):
        raise _design_mismatch(cm.design_names, plan.design_names, "the pooled synthetic covariates")
    return cm, keep


def combine(summaries, plan: FederatedPlan, *, rng_key, draws: int = 1000) -> Posterior:
    """Combine the sites' Gaussians into one posterior (step 4; runs at the centre).

    With site posteriors ``N(m_k, S_k)``, ``L_k = S_k^-1`` and the prior ``N(m_0, S_0)``,
    ``L_0 = S_0^-1`` (:func:`prior_moments`), the product of the site posteriors divided by
    the prior ``K - 1`` times (so the prior counts once) is ``N(m, L^-1)`` with

        L = sum_k L_k - (K - 1) L_0,   m = L^-1 (sum_k L_k m_k - (K - 1) L_0 m_0).

    Parameters
    ----------
    summaries : list of SiteSummary, fitted under ``plan`` (checked by its digest)
    plan : FederatedPlan
    rng_key : jax random key, for the draws from ``N(m, L^-1)``
    draws : int, number S of independent draws

    Returns
    -------
    Posterior
        S draws of ``params`` and ``beta``; ``covariate_model`` fitted on the sites' pooled
        synthetic covariates (each cut to the same fraction of its site's n); empty
        ``observed_time``/``observed_event`` (the centre has no rows: no Kaplan-Meier check,
        ``loo`` None); ``diagnostics`` ``param, mean, sd`` of the combined Gaussian;
        ``inference["method"] = "federated"``; ``provenance`` with each site's n, events,
        hash and diagnostics, ``gaussian`` (names, mean, cov) and ``heterogeneity``:
        ``Q = sum_k (m_k - m)' L_k (m_k - m)``, chi-square p-value on (K - 1) D df (approximate).

    Raises
    ------
    ModelError
        Summaries from another plan, ``L`` not positive definite, no synthetic covariates.

    Warns
    -----
    StatisticalWarning
        Heterogeneity p < 0.01 (sites disagree); a site posterior that looks skewed.
    ConvergenceWarning
        A site reported R-hat > 1.01 or divergences.
    """
    summaries = list(summaries)
    if not summaries or not all(isinstance(s, SiteSummary) for s in summaries):
        raise ModelError("combine needs a non-empty list of SiteSummary (one per site).")
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ModelError(f"combine: draws={draws!r}; use a positive integer.")
    key_data = _key_data(rng_key)
    names = plan.param_names
    labels = [s.site or f"site {i}" for i, s in enumerate(summaries)]
    if len(set(labels)) < len(labels):
        raise ModelError(f"combine: site labels {labels} repeat; give every site its own label.")
    for lab, s in zip(labels, summaries):
        if s.outcome != plan.outcome or tuple(s.param_names) != names or s.plan_digest != plan.digest:
            raise ModelError(
                f"site {lab!r} was fitted under another plan (outcome {s.outcome!r}, parameters "
                f"{list(s.param_names)}, plan digest {s.plan_digest[:12]}...) than this one "
                f"({plan.outcome!r}, {list(names)}, {plan.digest[:12]}...); refit it with "
                "fit_site(..., plan) under this plan.")
    k = len(summaries)
    m0, s0 = prior_moments(plan)
    l0 = _precision(s0, "the prior")
    lk = [_precision(s.cov, f"site {lab!r}") for lab, s in zip(labels, summaries)]
    prec = sum(lk) - (k - 1) * l0
    prec = (prec + prec.T) / 2.0
    try:
        chol_l = np.linalg.cholesky(prec)
    except np.linalg.LinAlgError as err:
        raise ModelError(
            f"combine: the combined precision sum_k L_k - (K-1) L_0 over {k} sites is not positive "
            "definite. The likely cause is a site with too few events, whose posterior is not close "
            "to Gaussian (or is dominated by the prior); fit it with more data or leave it out. "
            f"Events per site: {dict(zip(labels, [s.n_events for s in summaries]))}.") from err
    inv_chol = np.linalg.solve(chol_l, np.eye(len(names)))
    cov = inv_chol.T @ inv_chol
    cov = (cov + cov.T) / 2.0
    mean = cov @ (sum(l @ s.mean for l, s in zip(lk, summaries)) - (k - 1) * (l0 @ m0))
    q = float(sum((s.mean - mean) @ l @ (s.mean - mean) for l, s in zip(lk, summaries)))
    df = (k - 1) * len(names)
    p_value = float(_stats.chi2.sf(q, df)) if df else 1.0
    if p_value < 0.01:
        warnings.warn(
            f"combine: heterogeneity Q = {q:.1f} on {df} df (p = {p_value:.2g}): sites disagree; the "
            "combination assumes one common set of parameters; consider the hierarchical pooled fit "
            "(historical.study).", StatisticalWarning, stacklevel=2)
    for lab, s in zip(labels, summaries):
        dg = s.diagnostics
        if _num(dg.get("max_r_hat"), 1.0) > 1.01 or int(dg.get("divergences") or 0) > 0:
            warnings.warn(f"combine: site {lab!r} reported max R-hat {dg.get('max_r_hat')} and "
                          f"{dg.get('divergences')} divergences; its summary may be unreliable (refit it "
                          "with more warmup/draws).", ConvergenceWarning, stacklevel=2)
        # skewness estimates carry Monte Carlo noise of SD sqrt(6 / ESS)
        ess = _num(dg.get("min_ess_bulk"), int(dg.get("chains") or 1) * int(dg.get("draws") or 1))
        if _num(dg.get("max_abs_skewness"), 0.0) > max(SKEWNESS_MAX, 4.0 * math.sqrt(6.0 / max(ess, 1.0))):
            warnings.warn(
                f"combine: site {lab!r} ({s.n_events} events) has a skewed posterior (|skewness| "
                f"{dg['max_abs_skewness']:.2f} > {SKEWNESS_MAX}); its Gaussian summary is a poor "
                "approximation, so the combination may be off; fit it with more data or leave it out.",
                StatisticalWarning, stacklevel=2)
    cm, kept = _pooled_covariates(summaries, labels, plan)
    z = np.asarray(jax.random.normal(rng_key, (int(draws), len(names)), dtype=jnp.float64))
    theta = mean + z @ np.linalg.cholesky(cov).T
    params, beta = _params(plan.outcome, theta, len(plan.design_names))
    diagnostics = pd.DataFrame({"param": np.array(names, dtype=object), "mean": mean,
                                "sd": np.sqrt(np.diag(cov))})
    site_info = [{"site": lab, "n": s.n, "n_events": s.n_events, "data_hash": s.data_hash,
                  "diagnostics": s.diagnostics, "synthetic_rows_used": kept.get(lab, 0)}
                 for lab, s in zip(labels, summaries)]
    inference = {"method": "federated", "sites": k, "draws": int(draws), "chains": 1,
                 "combination": "product of site Gaussians / prior^(K-1)", "rng_key_data": key_data}
    provenance = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(), "data_source": f"federated: {k} site(s)", "data_hash": "",
        "n": int(sum(s.n for s in summaries)), "n_events": int(sum(s.n_events for s in summaries)),
        "time_ref": float(plan.time_ref), "sites": site_info,
        "heterogeneity": {"Q": q, "df": df, "p_value": p_value},
        "gaussian": {"names": list(names), "mean": mean.tolist(), "cov": cov.tolist()},
        "plan": json.loads(plan.to_json()),
    }
    return Posterior(
        outcome=plan.outcome, time_unit=plan.time_unit, covariate_names=tuple(plan.design_names),
        covariate_mean=plan.mean.copy(), covariate_sd=plan.sd.copy(), params=params, beta=beta,
        covariate_model=cm, observed_time=np.zeros(0), observed_event=np.zeros(0, dtype=np.int64),
        diagnostics=diagnostics, divergences=0, inference=inference, provenance=provenance,
        consts={} if plan.knots is None else {"knots": plan.knots.copy()}, study=None, loo=None, idata=None)
