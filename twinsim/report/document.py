"""Report document: tables and figures -> one list of blocks -> ``report.md`` and ``report.html``.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and
rendered twice, so the Markdown and the HTML say the same thing: the Markdown refers to
``figures/*.png``; the HTML embeds the same PNGs as base64 data URIs and carries inline
CSS only (no JavaScript, no external assets), so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .common import _dim_label, _fmt, _reference_design
from .figures import KM_COHORTS, _layout, _save, plot_control_survival, plot_km_predictive, rejection_figure
from .tables import _collapse_untouched, bias_table, format_table, power_table, type_i_error_table

log = logging.getLogger("twinsim.report")

#: Folder of the PNGs inside the output folder (the Markdown refers to it relatively).
FIGURES = "figures"


@dataclass
class _Block:
    kind: str          # "h1", "h2", "p", "list" (items split on newlines), "table", "figure"
    text: str = ""
    table: pd.DataFrame | None = None
    path: str = ""     # relative path of a figure


#: Columns shown left-aligned as text (others are numbers, right-aligned).
TEXT_COLUMNS = {"design", "inflated", "section", "metric", "column", "subgroup", "level", "verdict", "visit", "table"}

_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline_html(text: str) -> str:
    out = html.escape(text, quote=False)
    out = _INLINE_CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _to_markdown(blocks: list[_Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        if b.kind == "h1":
            lines += [f"# {b.text}", ""]
        elif b.kind == "h2":
            lines += [f"## {b.text}", ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "list":
            lines += [f"- {item}" for item in b.text.split("\n")] + [""]
        elif b.kind == "table":
            t = b.table
            lines.append("| " + " | ".join(_md_cell(c) for c in t.columns) + " |")
            lines.append("|" + "|".join("---:" if c not in TEXT_COLUMNS else ":---" for c in t.columns) + "|")
            for row in t.itertuples(index=False):
                lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
            lines.append("")
        elif b.kind == "figure":
            lines += [f"![{b.text}]({b.path})", "", f"*{b.text}*", ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: .15em; }
table { border-collapse: collapse; margin: .8em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f0f4f8; }
td.text { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
td.flag { color: #b00020; font-weight: bold; text-align: left; }
code { background: #f4f4f4; padding: 0 .25em; border-radius: 3px; font-size: 0.95em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; margin-top: .3em; }
.tablewrap { overflow-x: auto; }
"""


def _to_html(blocks: list[_Block], title: str, base: Path) -> str:
    body: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{_inline_html(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif b.kind == "list":
            items = "".join(f"<li>{_inline_html(i)}</li>" for i in b.text.split("\n"))
            body.append(f"<ul>{items}</ul>")
        elif b.kind == "table":
            t = b.table
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t.columns)
            rows = []
            for row in t.itertuples(index=False):
                cells = []
                for c, v in zip(t.columns, row):
                    cls = ' class="flag"' if (c == "inflated" and v == "inflated") or (c == "verdict" and v == "fail") else (
                        ' class="text"' if c in TEXT_COLUMNS else "")
                    cells.append(f"<td{cls}>{html.escape(str(v))}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            body.append(f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
        elif b.kind == "figure":
            data = base64.b64encode((base / b.path).read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline_html(b.text)}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _provenance_items(result) -> list[str]:
    p = result.provenance or {}
    items = []
    if p.get("created"):
        items.append(f"Created: {p['created']}")
    v = p.get("versions") or {}
    if v:
        items.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    items.append(f"Seed: {result.scenario.seed}; replicates per grid point: {result.scenario.replicates}")
    if p.get("scenario_sha256"):
        items.append(f"Scenario SHA-256: `{p['scenario_sha256']}`")
    m = p.get("model") or {}
    if "control" in m:
        c = m["control"]
        items.append("Control model: assumed " + ", ".join(f"{k} {val}" for k, val in c.items()) + " (no data, no fit)")
    else:
        if m.get("outcome"):
            cov = ", ".join(m.get("covariates") or []) or "none"
            from ..models import FAMILIES

            fam = FAMILIES.get(m["outcome"])
            items.append(f"Model: {fam.description if fam else m['outcome']}; covariates: {cov}")
            if m.get("studies"):
                items.append(f"Historical studies (hierarchical, between-study SD estimated): {', '.join(m['studies'])}")
            if m.get("joint"):
                j = m["joint"]
                items.append(
                    f"Joint model: {j['biomarker']} on the {j['transform']} scale (random intercept and slope, "
                    f"{j['measurements']} measurements within follow-up) shares its random effects with the Weibull hazard; "
                    f"synthetic trajectories at times {', '.join(_fmt(v) for v in j['visit_times'])}"
                )
            if m.get("consts", {}).get("knots"):
                items.append(f"Piecewise-exponential cut points: {', '.join(_fmt(k) for k in m['consts']['knots'])}")
        if m.get("data_source"):
            items.append(f"Data: {m['data_source']}, n = {m.get('n')}, events = {m.get('n_events')}")
        if m.get("data_hash"):
            items.append(f"Data SHA-256: `{m['data_hash']}`")
        inf = m.get("inference") or {}
        d = m.get("diagnostics") or {}
        if inf.get("method") == "svi":
            items.append(
                f"Inference: SVI (variational), {inf.get('guide')} guide, {inf.get('steps')} steps from learning rate "
                f"{_fmt(inf.get('learning_rate'))}, {inf.get('draws')} draws from the fitted guide"
            )
            items.append(
                f"Diagnostics: Pareto k-hat {_fmt(inf.get('khat'), 3)} (reliable below {_fmt(inf.get('khat_max'))}), "
                f"ELBO relative change {_fmt(inf.get('elbo_rel_change'), 2)} over the last 10% of the steps "
                f"(converged below {_fmt(inf.get('elbo_rtol'))})"
            )
        elif inf:
            items.append(
                f"Inference: {inf.get('method', 'nuts')}, {inf.get('chains')} chains x {inf.get('draws')} draws "
                f"after {inf.get('warmup')} warmup (target_accept {inf.get('target_accept')})"
            )
            if d:
                items.append(
                    f"Diagnostics: max R-hat {_fmt(d.get('max_r_hat'))}, min bulk ESS {_fmt(d.get('min_ess_bulk'), 3)}, "
                    f"min tail ESS {_fmt(d.get('min_ess_tail'), 3)}, divergences {d.get('divergences')}"
                )
    return items


def _conditions(row: pd.Series, dims: Sequence[str]) -> str:
    parts = []
    for d in dims:
        if d in row and row[d] != "any":
            parts.append(f"{_dim_label(d)} {_fmt(row[d])}")
    return ", ".join(parts)


def _build(result, figures: dict[str, str], checks: dict | None = None) -> list[_Block]:
    sc = result.scenario
    s = result.summary
    dims = list(result.grid.dims)
    an = sc.analysis
    sides = "two-sided" if an.alternative == "two-sided" else "one-sided (HR < 1)"
    ref = _reference_design(result)
    unit = sc.trial.time_unit
    drifts = [float(v) for v in result.grid.dims.get("drift", (1.0,))]
    B: list[_Block] = [_Block("h1", f"twinsim report: {sc.name}")]
    if sc.description.strip():
        B.append(_Block("p", " ".join(sc.description.split())))
    B.append(_Block(
        "p",
        f"Reproduce: `twinsim run scenario.yaml --seed {sc.seed} --replicates {sc.replicates}` "
        "(`scenario.yaml` is the resolved scenario saved beside this report).",
    ))
    grid_txt = "; ".join(f"{_dim_label(k)}: {', '.join(_fmt(v) for v in vals)}" for k, vals in result.grid.dims.items())
    B.append(_Block(
        "p",
        f"Designs: {', '.join(d.name for d in sc.designs)}. Grid: {grid_txt}. "
        f"Test: {'t test of the (adjusted) mean difference' if sc.effect_dim == 'mean_difference' else an.test}, "
        f"{sides}, alpha = {_fmt(an.alpha)}; {sc.replicates} simulated trials per design and grid point.",
    ))
    B.append(_Block("h2", "Provenance"))
    B.append(_Block("list", "\n".join(_provenance_items(result))))
    diag = ((result.provenance or {}).get("model") or {}).get("diagnostics")
    def _num(x, default):
        try:
            x = float(x)
        except (TypeError, ValueError):
            return default
        return default if math.isnan(x) else x

    if diag and (_num(diag.get("max_r_hat"), 1.0) > 1.01 or _num(diag.get("divergences"), 0) > 0):
        B.append(_Block(
            "p",
            "**Check the fit:** R-hat above 1.01 or divergent transitions mean the posterior, and every "
            "synthetic control drawn from it, may be unreliable; increase `model.inference.warmup` and `draws`.",
        ))
    if diag and (_num(diag.get("khat"), 0.0) > _num(diag.get("khat_max"), 0.7)
                 or _num(diag.get("elbo_rel_change"), 0.0) > _num(diag.get("elbo_rtol"), 1e-3)):
        B.append(_Block(
            "p",
            "**Check the fit:** the variational approximation failed its diagnostics (Pareto k-hat above 0.7 or an "
            "ELBO still changing), so the posterior, and every synthetic control drawn from it, may be unreliable; "
            "increase `model.inference.steps`, try another `guide`, or fit by NUTS (`method: nuts`).",
        ))

    # ---- the generative model
    if "km_predictive" in figures:
        B.append(_Block("h2", "Model check"))
        B.append(_Block(
            "figure",
            f"Historical Kaplan-Meier (black step line; orange band: 95% pointwise confidence interval, Greenwood with "
            f"log(-log) limits; ticks: censored) against the posterior predictive: Kaplan-Meier curves of {KM_COHORTS} "
            f"replicated cohorts of the historical size, each from one posterior draw (blue line: pointwise median; "
            f"blue band: pointwise 2.5-97.5% range, which carries parameter uncertainty and sampling variation). "
            f"Time in {unit}.",
            path=figures["km_predictive"],
        ))
        B += _model_checks(result, figures, checks or {})
    comp = getattr(result, "comparison", None)
    if comp is not None:
        chosen = comp.index[comp["chosen"]][0]
        best = comp.index[0]
        B.append(_Block("h2", "Model comparison"))
        txt = (f"Outcome families fitted to the same patients, ranked by PSIS-LOO (expected log predictive density "
               f"of a new patient; higher is better). `elpd_diff` is the best minus this model, `dse` its standard "
               f"error from the pointwise differences; a difference within about 2 `dse` is not decisive. "
               f"`pareto_k_bad` counts patients with Pareto k > 0.7 (unreliable leave-one-out estimate). "
               f"**Chosen model: {chosen}**")
        if sc.model.outcome == "auto":
            txt += " (highest elpd_loo; `model.outcome: auto`)."
        elif chosen == best:
            txt += " (named in the scenario; it also has the highest elpd_loo)."
        else:
            r = comp.loc[chosen]
            txt += (f" (named in the scenario; {best} predicts better by {_fmt(r['elpd_diff'])} "
                    f"± {_fmt(r['dse'])} elpd).")
        B.append(_Block("p", txt))
        shown = comp.reset_index().rename(columns={"model": "design"})
        shown = shown[["design", "elpd_loo", "se", "p_loo", "elpd_diff", "dse", "pareto_k_bad"]]
        B.append(_Block("table", table=format_table(shown).rename(columns={"design": "model"})))
    if "control_survival" in figures:
        B.append(_Block("h2", "Assumed survival"))
        B.append(_Block(
            "figure",
            "Assumed survival curves (planning without data): the control distribution of the scenario"
            + (", the concurrent control under each drift" if any(d != 1.0 for d in drifts) else "")
            + f" and the treatment arm under each non-null hazard ratio. Model curves, no uncertainty. Time in {unit}.",
            path=figures["control_survival"],
        ))

    # ---- type I error
    B.append(_Block("h2", "Type I error"))
    null_txt = ("Type I error is the rejection rate at the null of no treatment effect (true "
                + ("mean difference 0" if sc.effect_dim == "mean_difference" else "hazard ratio 1")
                + " between treatment and the concurrent control)")
    if any(d != 1.0 for d in drifts):
        null_txt += ", under each drift of the concurrent controls from the historical population"
    B.append(_Block(
        "p",
        null_txt + ". MCSE is the binomial Monte Carlo standard error sqrt(p(1 - p)/R). A row is flagged "
        "**inflated** when its rate exceeds the threshold alpha + 3 sqrt(alpha(1 - alpha)/R), three Monte Carlo "
        "standard errors computed at alpha.",
    ))
    eff, null = sc.effect_dim, sc.null_effect
    if eff in s and np.isclose(s[eff].astype(float), null).any():
        t1 = type_i_error_table(s, dims, null=null, effect=eff)
        other = [d for d in dims if d != eff]
        t1 = _collapse_untouched(t1, other, ["rejection_rate", "mcse"])
        B.append(_Block("table", table=format_table(t1).rename(columns=lambda c: _dim_label(c) if c in other else c)))
        bad = t1[t1["inflated"]]
        if len(bad):
            where = "; ".join(f"{r.design} ({_conditions(r, other)}): {_fmt(r.rejection_rate)}" for _, r in bad.iterrows())
            B.append(_Block("p", f"**Inflated type I error** (above alpha + 3 MCSE) for: {where}."))
        else:
            B.append(_Block("p", "No design's type I error exceeds alpha by more than three Monte Carlo standard errors."))
    else:
        B.append(_Block("p", f"The grid has no {_dim_label(eff)} {_fmt(null)}, so type I error was not simulated; add "
                             f"{_fmt(null)} to `effect.{eff}`."))

    # ---- power
    B.append(_Block("h2", "Power"))
    if eff in s and (~np.isclose(s[eff].astype(float), null)).any():
        pw = power_table(result)
        txt = (f"Power is the rejection rate at the non-null {_dim_label(eff)}s (MCSE as above). Real patients are "
               "treatment + real (concurrent) controls")
        if result.posterior is not None:
            txt += "; synthetic controls are drawn from the posterior predictive"
        if ref is not None:
            txt += f"; real controls saved are counted against the design `{ref}` at the same grid point"
        B.append(_Block("p", txt + "."))
        pw = _collapse_untouched(pw, dims, [c for c in pw.columns if c not in ("design", *dims)])
        B.append(_Block("table", table=format_table(pw).rename(columns=lambda c: _dim_label(c) if c in dims else c)))
    else:
        B.append(_Block("p", f"The grid has only the null {_dim_label(eff)}, so power was not simulated."))

    xdim, _ = _layout(result)
    if xdim == eff:
        how = f"x: {_dim_label(eff)}" + (", one panel per drift" if eff == "hazard_ratio" else "")
    else:
        how = (f"x: {_dim_label(xdim)}; rows: {_dim_label(eff)} ({_fmt(null)}: type I error, with the dashed line at "
               "alpha; otherwise power); columns: drift. Designs the swept parameter does not touch are marked "
               "'not varied' and stay flat")
    B.append(_Block(
        "figure",
        f"Rejection rate by design ({how}). Points are Monte Carlo estimates from {sc.replicates} trials each; error "
        f"bars are \u00b11.96 MCSE (95% Monte Carlo intervals); points are shifted slightly sideways so that bars do "
        f"not overlap.",
        path=figures["rejection"],
    ))

    # ---- bias and coverage
    B.append(_Block("h2", "Bias and coverage"))
    level = 1 - an.alpha if an.alternative == "two-sided" else 1 - 2 * an.alpha
    covs = bool(result.posterior is not None and len(result.posterior.covariate_names))
    if eff == "mean_difference":
        txt = (f"Mean estimate is the mean estimated difference (treatment minus control; adjusted for `ancova` and "
               f"`procova` designs); bias and RMSE are of that difference against the scenario's; coverage is that of "
               f"the {_fmt(100 * level)}% t interval. With a linear model the adjusted and unadjusted analyses "
               "target the same difference (collapsibility), so every design should be unbiased.")
    else:
        txt = (f"Mean estimate is the mean Cox hazard ratio; bias and RMSE are of the log hazard ratio; coverage is "
               f"that of the {_fmt(100 * level)}% Wald interval. Bias is measured against the conditional hazard ratio "
               "set in the scenario; with prognostic covariates an unadjusted Cox model targets the marginal hazard "
               "ratio, which lies closer to 1 (non-collapsibility), so compare designs with the `rct` row rather than "
               "with zero.")
        if not covs:
            txt += " (This model has no covariates, so here the two coincide.)"
    B.append(_Block("p", txt))
    bt = _collapse_untouched(bias_table(s, dims), dims, ["mean_estimate", "bias", "rmse", "coverage"])
    B.append(_Block("table", table=format_table(bt).rename(columns=lambda c: _dim_label(c) if c in dims else c)))

    # ---- full table
    B.append(_Block("h2", "Full summary"))
    B.append(_Block("p", "One row per design and grid point: the contents of `summary.csv`, to 4 significant digits."))
    B.append(_Block("table", table=format_table(s)))
    return B


def _model_checks(result, figures: dict[str, str], checks: dict) -> list[_Block]:
    """The "Model check" blocks after the Kaplan-Meier figure: covariate marginals and the
    biomarker by visit (:mod:`twinsim.report.checks`), each when :func:`write_report` made it."""
    from ..simulate import KEY_REPORT
    from .checks import BAND, KEY_BIOMARKER_CHECK, KEY_COVARIATE_CHECK, outside_rows

    seed = result.scenario.seed
    lo, hi = _fmt(100 * BAND[0]), _fmt(100 * BAND[-1])
    B: list[_Block] = []
    if "covariate_marginals" in figures:
        t, n, cohorts = checks["covariates"]
        out = outside_rows(t, "covariate")
        share = _fmt(100 * len(out) / len(t), 2)
        txt = (f"**Covariate marginals.** {len(out)} of {len(t)} checked statistics ({share}%) "
               f"fall outside their {lo}-{hi}% range over {cohorts} synthetic cohorts"
               + (": " + "; ".join(out) + "." if out else ".")
               + " Statistics: per continuous covariate the mean, SD and quartiles of the non-missing values; per "
               "level of a categorical, binary or small-integer covariate its share; the share missing. By chance "
               "alone up to about 5% may fall outside (the statistics are not independent: a covariate's shares sum "
               "to 1); fewer are expected, because the generator's marginals are the empirical marginals of these same "
               "patients. The check shows that the generator reproduces them (levels, missing values, range) in "
               "cohorts of this size; it is not an out-of-sample test, and the dependence between covariates is not "
               f"shown. Random key: `fold_in(fold_in(jax.random.key({seed}), {KEY_REPORT}), {KEY_COVARIATE_CHECK})` "
               "(KEY_REPORT, then the check's own constant).")
        B.append(_Block("p", txt))
        B.append(_Block(
            "figure",
            f"Historical covariates against {cohorts} synthetic cohorts of the historical size (n = {n}) from the "
            f"covariate generator (Gaussian copula with empirical marginals), one panel per covariate. Covariates with "
            f"more than 10 distinct values: historical ECDF of the non-missing values (black step) against the "
            f"pointwise {lo}-{hi}% range of the synthetic cohorts' ECDFs (blue band), missing share written in the "
            f"panel. Other covariates: historical share of each level, 'missing' included when any (black points, red "
            f"when outside), against the synthetic cohorts' {lo}-{hi}% range (blue bars; line: median). The generator "
            f"is a point estimate, so the bands are sampling variation of cohorts of this size only, without parameter "
            f"uncertainty. Red title: a statistic of that covariate is outside its range.",
            path=figures["covariate_marginals"],
        ))
    if "biomarker_predictive" in figures:
        t, obs, d, n = checks["biomarker"]
        out = outside_rows(t, "visit")
        txt = (f"**Biomarker by visit.** {obs['name']} at each visit among patients still at risk (in follow-up and "
               f"event-free at the visit time), historical against {d} posterior predictive cohorts of {n} patients. "
               f"{len(out)} of {len(t)} statistics (per visit: n at risk and the quartiles of the values) fall outside "
               f"their {lo}-{hi}% range" + (": " + "; ".join(out) + "." if out else ".")
               + " A predicted n at risk away from the observed points at the event or dropout model (patients leave "
               "follow-up too early or too late); quartiles outside point at the biomarker trajectory among those "
               "still followed. By chance alone about 5% may fall outside."
               + (" Patients at risk who missed a visit count in n at risk; the observed ECDF and quartiles weight the "
                  "measured ones by the inverse probability of measurement (missing at random given the previous "
                  "value: the model predicts everyone at risk, and who misses a visit may depend on earlier values), "
                  "and each synthetic cohort's ECDF and quartiles use a random subset of its patients at risk of the "
                  "observed share measured, so the band has the spread of a group of the observed measured size."
                  if any(r > len(v) for r, v in zip(obs.get("n_at_risk") or [], obs["values"])) else "")
               + " Random key: "
               f"`fold_in(fold_in(jax.random.key({seed}), {KEY_REPORT}), {KEY_BIOMARKER_CHECK})` "
               "(KEY_REPORT, then the check's own constant).")
        B.append(_Block("p", txt))
        B.append(_Block(
            "figure",
            f"{obs['name']} by visit among patients at risk: historical ECDF (black step) against the pointwise "
            f"{lo}-{hi}% range (blue band) and median (dashed) of the ECDFs of {d} posterior predictive cohorts among "
            f"their patients at risk. Panel titles: visit time ({obs['unit']}), historical n at risk, predicted median "
            f"n at risk [{lo}%, {hi}%]; red when a statistic of that visit is outside its range.",
            path=figures["biomarker_predictive"],
        ))
        B.append(_Block("table", table=format_table(t.rename(columns={"visit": f"visit ({obs['unit']})"}))))
    return B


def write_report(result, out_dir) -> list[Path]:
    """Write the figures, ``report.md`` and a self-contained ``report.html`` into ``out_dir``.

    Parameters
    ----------
    result : RunResult
    out_dir : path-like (created if missing)

    Returns
    -------
    list of Path: ``figures/km_predictive.png`` (with a posterior) or
    ``figures/control_survival.png`` (assumed control), ``figures/covariate_marginals.png``
    (a posterior with covariates and the historical data), ``figures/biomarker_predictive.png``
    (a posterior with a biomarker model), ``figures/rejection.png``, ``report.md``, ``report.html``.

    Notes
    -----
    The model checks' keys are ``fold_in(fold_in(key(seed), KEY_REPORT), c)`` with ``c`` =
    :data:`~twinsim.report.checks.KEY_COVARIATE_CHECK` or
    :data:`~twinsim.report.checks.KEY_BIOMARKER_CHECK`; the biomarker arrays come from
    :func:`twinsim.predictive.biomarker_ppc_arrays` (None: no biomarker model, no figure).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures: dict[str, str] = {}
    checks: dict = {}
    if result.posterior is not None:
        if np.size(result.posterior.observed_time):  # a federated posterior has no rows to check against
            ax = plot_km_predictive(result)
            written.append(_save(ax.figure, out / FIGURES / "km_predictive.png"))
            figures["km_predictive"] = f"{FIGURES}/km_predictive.png"
        written += _write_checks(result, out, figures, checks)
    elif result.scenario.control is not None and result.scenario.trial.endpoint != "continuous":
        ax = plot_control_survival(result)
        written.append(_save(ax.figure, out / FIGURES / "control_survival.png"))
        figures["control_survival"] = f"{FIGURES}/control_survival.png"
    written.append(_save(rejection_figure(result), out / FIGURES / "rejection.png"))
    figures["rejection"] = f"{FIGURES}/rejection.png"

    blocks = _build(result, figures, checks)
    md = out / "report.md"
    md.write_text(_to_markdown(blocks), encoding="utf-8")
    page = out / "report.html"
    page.write_text(_to_html(blocks, f"twinsim report: {result.scenario.name}", out), encoding="utf-8")
    written += [md, page]
    log.info("wrote %s and %s", md, page)
    return written


def _write_checks(result, out: Path, figures: dict[str, str], checks: dict) -> list[Path]:
    """Save the model checks' figures (see :func:`write_report`); their tables go to ``checks``."""
    from ..predictive import biomarker_ppc_arrays
    from .checks import (BIOMARKER_COHORTS, CHECK_COHORTS, KEY_BIOMARKER_CHECK, KEY_COVARIATE_CHECK,
                         biomarker_check, check_key, covariate_check)

    post, seed, written = result.posterior, result.scenario.seed, []
    if result.historical is not None and len(post.covariate_model.names) > 0:
        observed = result.historical.covariates
        fig, table = covariate_check(observed, post.covariate_model, rng_key=check_key(seed, KEY_COVARIATE_CHECK),
                                     cohorts=CHECK_COHORTS)
        written.append(_save(fig, out / FIGURES / "covariate_marginals.png"))
        figures["covariate_marginals"] = f"{FIGURES}/covariate_marginals.png"
        checks["covariates"] = (table, len(observed), CHECK_COHORTS)
    arrays = biomarker_ppc_arrays(check_key(seed, KEY_BIOMARKER_CHECK), post, cohorts=BIOMARKER_COHORTS,
                                  time_unit=result.scenario.trial.time_unit)
    if arrays is not None:
        observed, predicted = arrays
        fig, table = biomarker_check(observed, predicted)
        written.append(_save(fig, out / FIGURES / "biomarker_predictive.png"))
        figures["biomarker_predictive"] = f"{FIGURES}/biomarker_predictive.png"
        d, n = tuple(predicted["values"].shape[:2])
        checks["biomarker"] = (table, observed, int(d), int(n))
    return written
