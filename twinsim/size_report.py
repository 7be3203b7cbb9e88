"""Sample-size search output: the table, closed-form checks, figure, files and the ``twinsim size`` command.

Closed forms (time to event)
----------------------------
Schoenfeld (1981): the log-rank test with allocation fraction ``p`` to control has power
``Phi(sqrt(D p (1 - p)) |log HR| - z)`` after ``D`` events, ``z = z_{1-alpha/2}`` (two-sided) or
``z_{1-alpha}`` (one-sided), so ``D = (z + z_{1-beta})^2 / (p (1 - p) log(HR)^2)`` (``4 (...)^2 /
log(HR)^2`` at 1:1).  A design's expected events ``E(x)`` at field value ``x`` are

* the event target itself with an event-driven cut (``min(cut.events, events ever
  observed)``; the latter is every real patient without dropout, and needs the assumed
  ``control`` distribution with dropout);
* with a calendar cut at ``c``, ``sum_arm n_arm P_arm(event)`` with uniform entry over the
  accrual period ``A``: ``P = (1/A) int_0^{min(A, c)} G(c - u) du``, ``G(s) = P(T <= min(s,
  dropout))`` under the assumed ``control`` (exponential or Weibull; hazard multiplied by drift,
  and by the hazard ratio on treatment).  This is gsDesign's ``nSurv`` ``n = D / P(event)``.

The closed-form size is the continuous ``x`` where the Schoenfeld power at ``E(x)`` and
``p(x)`` equals the target (bisection over integers, then linear interpolation), for every
design whose analysis has no synthetic controls.  Continuous endpoints will register a
t-test formula in :data:`CLOSED_FORMS` (``n = 2 (z + z_{1-beta})^2 sigma^2 / delta^2`` per arm).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

import click
import numpy as np
import pandas as pd
import yaml
from scipy.integrate import cumulative_trapezoid, quad
from scipy.special import ndtr, ndtri

from .size import SizeResult, size_search
from .size_probit import RootSearch

__all__ = ["schoenfeld_events", "schoenfeld_power", "event_probability", "expected_events", "closed_form_size",
           "CLOSED_FORMS", "size_table", "plot_size", "size_markdown", "write_size_outputs", "size_command"]


# --------------------------------------------------------------------------- closed forms


def _z_alpha(alpha: float, alternative: str) -> float:
    return float(ndtri(1 - alpha / 2) if alternative == "two-sided" else ndtri(1 - alpha))


def schoenfeld_events(hazard_ratio: float, alpha: float, power: float, alternative: str = "two-sided",
                      allocation: float = 0.5) -> float:
    """Schoenfeld's required events ``(z_a + z_{1-beta})^2 / (p (1 - p) log(HR)^2)`` (``p`` = control share)."""
    za = _z_alpha(alpha, alternative)
    return (za + float(ndtri(power))) ** 2 / (allocation * (1 - allocation) * math.log(hazard_ratio) ** 2)


def schoenfeld_power(events: float, hazard_ratio: float, alpha: float, alternative: str = "two-sided",
                     allocation: float = 0.5) -> float:
    """Schoenfeld's power after ``events`` events (the far tail of a two-sided test ignored).

    One-sided (``less``) counts only benefit, ``HR < 1``."""
    effect = abs(math.log(hazard_ratio)) if alternative == "two-sided" else -math.log(hazard_ratio)
    return float(ndtr(math.sqrt(events * allocation * (1 - allocation)) * effect - _z_alpha(alpha, alternative)))


def event_probability(log_scale: float, shape: float, multiplier: float, *, accrual: float, cut: float | None,
                      dropout_rate: float = 0.0, n_grid: int = 4001) -> float:
    """Probability that a patient contributes an event by the analysis.

    Weibull time to event ``S(t) = exp(-m (t / scale)^k)`` (exponential: ``k = 1``), entry uniform
    over ``[0, accrual]``, exponential dropout at ``dropout_rate``, analysis at calendar time ``cut``
    (``None``: unlimited follow-up).  Patients entering after the cut count with probability 0.
    Uses ``G(s) = 1 - S(s) e^{-delta s} - delta int_0^s S(t) e^{-delta t} dt`` (integration by
    parts of ``int f e^{-delta t}``, bounded integrands for any shape).
    """
    scale = math.exp(log_scale)

    def surv(t):
        return np.exp(-multiplier * (np.asarray(t, float) / scale) ** shape)

    if cut is None:
        if dropout_rate == 0:
            return 1.0
        tail = quad(lambda t: float(surv(t)) * math.exp(-dropout_rate * t), 0, np.inf, limit=200)[0]
        return 1.0 - dropout_rate * tail
    s = np.linspace(0.0, cut, n_grid)
    disc = np.exp(-dropout_rate * s)
    g = 1.0 - surv(s) * disc - dropout_rate * cumulative_trapezoid(surv(s) * disc, s, initial=0.0)
    start = cut - min(accrual, cut)  # follow-up of the last patient enrolled before the cut
    inside = s >= start
    return float(np.trapezoid(g[inside], s[inside]) + _partial(g, s, start)) / accrual


def _partial(g, s, start) -> float:
    """Trapezoid piece between ``start`` and the first grid point at or after it."""
    j = int(np.searchsorted(s, start))
    if j == 0 or s[j] == start:
        return 0.0
    g_start = np.interp(start, s, g)
    return 0.5 * (g_start + g[j]) * (s[j] - start)


def expected_events(evaluator, design: str, value: int) -> float | None:
    """Expected real events of ``design`` at field value ``value``, or None when not computable.

    ``evaluator`` is the search's :class:`twinsim.size.ScenarioEvaluator` (its configuration rows).
    """
    sc = evaluator.point(design, value)
    row = evaluator.row(design, value)
    n_t, n_c, log_hr, log_drift, accrual = row.n_treat, row.n_real, row.log_hr, row.log_drift, row.accrual
    dropout, cut_events, cut_time = row.dropout_rate, row.cut_events, row.cut_time
    ctl = sc.control
    if ctl is None and (cut_events == 0 or dropout > 0):
        return None  # needs the assumed control distribution
    mult_c, mult_t = math.exp(log_drift), math.exp(log_drift + log_hr)
    if cut_events > 0:
        if ctl is None:
            return float(min(cut_events, n_t + n_c))
        reach = sum(n * event_probability(ctl.log_scale, ctl.shape or 1.0, m, accrual=accrual, cut=None,
                                          dropout_rate=dropout) for n, m in ((n_t, mult_t), (n_c, mult_c)))
        return float(min(cut_events, reach))
    return float(sum(n * event_probability(ctl.log_scale, ctl.shape or 1.0, m, accrual=accrual, cut=cut_time,
                                           dropout_rate=dropout) for n, m in ((n_t, mult_t), (n_c, mult_c))))


def _time_to_event_power(evaluator, design: str, value: int, hr: float) -> float | None:
    events = expected_events(evaluator, design, value)
    if events is None:
        return None
    row = evaluator.row(design, value)
    n_t, n_c = row.n_treat, row.n_real
    a = evaluator.scenario.analysis
    return schoenfeld_power(events, hr, a.alpha, a.alternative, allocation=n_c / (n_t + n_c))


def _continuous_power(evaluator, design: str, value: int, delta: float) -> float | None:
    """Exact t-test power (noncentral t) of a continuous design with the residual SD its
    analysis leaves: sigma (t test), sigma sqrt(1 - r^2) (ANCOVA on a baseline correlated r),
    sigma sqrt(1 - rho^2) (PROCOVA: Borm et al. 2007's large-sample approximation, which
    ignores the estimation of the covariate's slope)."""
    from scipy import stats

    row = evaluator.row(design, value)
    ctl = evaluator.scenario.control
    r = {0: 0.0, 1: ctl.baseline_correlation or 0.0, 2: ctl.prognostic_correlation or 0.0}[row.code]
    sd = ctl.sd * math.sqrt(1 - r**2)
    nc = abs(delta) / (sd * math.sqrt(1 / row.n_treat + 1 / row.n_real))
    crit = stats.t.ppf(1 - evaluator.scenario.analysis.alpha / 2, row.df)
    return float(stats.nct.sf(crit, row.df, nc) + stats.nct.cdf(-crit, row.df, nc))


#: Closed-form power of a design at an integer field value, by endpoint kind.
CLOSED_FORMS: dict[str, Callable] = {"time_to_event": _time_to_event_power, "continuous": _continuous_power}
#: Name of each closed form, for tables and messages.
CLOSED_FORM_NAMES = {"time_to_event": "Schoenfeld", "continuous": "t test (Borm for ancova/procova)"}


def _endpoint_kind(scenario) -> str:
    return getattr(scenario.trial, "endpoint", "time_to_event")


def _effect_text(result) -> str:
    """``HR 0.7, drift 1`` or ``mean difference 50`` for titles."""
    if _endpoint_kind(result.scenario) == "continuous":
        return f"mean difference {result.hazard_ratio:g}"
    return f"HR {result.hazard_ratio:g}, drift {result.drift:g}"


def closed_form_size(evaluator, design: str, lower: int, upper: int, target: float, hr: float) -> float:
    """Continuous field value where the closed-form power reaches ``target`` (NaN if not in range / not computable)."""
    d = evaluator.point(design, lower).design(design)
    if d.synthetic_control > 0 and d.method != "none":
        return math.nan  # closed forms are for randomised (real-control) designs only
    power_fn = CLOSED_FORMS.get(_endpoint_kind(evaluator.scenario))
    if power_fn is None:
        return math.nan

    def power(x):
        p = power_fn(evaluator, design, int(x), hr)
        return math.nan if p is None else p

    p_lo, p_hi = power(lower), power(upper)
    if not (p_lo < target <= p_hi):
        return math.nan
    lo, hi = lower, upper  # invariant: power(lo) < target <= power(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if power(mid) < target else (lo, mid)
    p_lo, p_hi = power(lo), power(hi)
    return lo + (target - p_lo) / (p_hi - p_lo)


# --------------------------------------------------------------------------- table


def _reference(result: SizeResult) -> str | None:
    """``rct`` if searched, else the first searched design without synthetic controls in its analysis."""
    names = list(result.paths)
    if "rct" in names:
        return "rct"
    for n in names:
        d = result.scenario.design(n)
        if d.synthetic_control == 0 or d.method == "none":
            return n
    return None


def size_table(result: SizeResult, evaluator, lower, upper) -> pd.DataFrame:
    """One row per design: the size needed with its interval, real patients, savings, check, closed form."""
    names = list(result.paths)
    checks = result.evaluations[result.evaluations["probe"] == "check"].set_index("design")
    used = result.evaluations[result.evaluations["probe"] != "check"].groupby("design")["replicates"].sum()
    rows = []
    for i, name in enumerate(names):
        r: RootSearch = result.searches[name]
        lo, hi = int(lower[i]), int(upper[i])

        def patients(x):
            return evaluator.real_patients(name, int(min(max(math.ceil(x - 1e-9), lo), hi))) if math.isfinite(x) else math.nan

        closed = closed_form_size(evaluator, name, lo, hi, result.target_power, result.hazard_ratio)
        at = evaluator.row(name, int(min(max(math.ceil(closed), lo), hi))) if math.isfinite(closed) else None
        chk = checks.loc[name]
        rows.append({
            "design": name, "field": result.paths[name], result.scenario.effect_dim: result.hazard_ratio,
            "drift": result.drift,
            "target_power": result.target_power, "size": r.size, "root": r.root, "se_relative": r.se_rel,
            "ci_lower": r.ci[0], "ci_upper": r.ci[1],
            "real_patients": patients(r.root) if r.size is not None else math.nan,
            "real_patients_ci_lower": patients(r.ci[0]) if r.size is not None else math.nan,
            "real_patients_ci_upper": patients(r.ci[1]) if r.size is not None else math.nan,
            "power_at_size": chk["power"], "power_mcse": chk["mcse"], "check_value": int(chk["value"]),
            "closed_form": closed, "closed_form_in_ci": bool(r.ci[0] <= closed <= r.ci[1]) if math.isfinite(closed) else None,
            "closed_form_control_share": at.n_real / (at.n_treat + at.n_real) if at is not None else math.nan,
            "replicates": int(used.get(name, 0)), "status": r.status,
        })
    table = pd.DataFrame(rows)
    ref = _reference(result)
    table["reference"] = ref
    if ref is not None:
        ref_row = table.set_index("design").loc[ref]
        half = (table["real_patients_ci_upper"] - table["real_patients_ci_lower"]) / 2
        ref_half = (ref_row["real_patients_ci_upper"] - ref_row["real_patients_ci_lower"]) / 2
        table["saved"] = ref_row["real_patients"] - table["real_patients"]
        # the designs' searches share replicates (positively correlated answers): adding the variances is conservative
        spread = np.sqrt(half**2 + ref_half**2)
        table["saved_ci_lower"] = np.where(table["design"] == ref, np.nan, table["saved"] - spread)
        table["saved_ci_upper"] = np.where(table["design"] == ref, np.nan, table["saved"] + spread)
    else:
        table["saved"] = table["saved_ci_lower"] = table["saved_ci_upper"] = np.nan
    return table


# --------------------------------------------------------------------------- figure and Markdown


def plot_size(result: SizeResult, ax=None):
    """Power against the field by design: evaluated points (95% MC bars), fitted curves, target, answers."""
    from .report.figures import MARKERS, PALETTE, _new_ax, _style

    ax = _new_ax(ax, figsize=(7.0, 4.4))
    ev = result.evaluations
    for i, name in enumerate(result.paths):
        colour, r = PALETTE[i % len(PALETTE)], result.searches[name]
        pts = ev[(ev["design"] == name) & (ev["probe"] != "check")].groupby("value")[["replicates", "rejections"]].sum()
        p = pts["rejections"] / pts["replicates"]
        err = 1.96 * np.sqrt(p * (1 - p) / pts["replicates"])
        ax.errorbar(pts.index, p, yerr=err, fmt=MARKERS[i % len(MARKERS)], color=colour, ms=4, capsize=2,
                    lw=0.8, label=f"{name} ({result.paths[name]})")
        if r.fit is not None and r.fit.b > 0:
            xs = np.geomspace(pts.index.min(), pts.index.max(), 200)
            ax.plot(xs, r.fit.power(xs), color=colour, lw=1.2)
        if r.size is not None:
            ax.axvspan(r.ci[0], r.ci[1], color=colour, alpha=0.12, lw=0)
            ax.axvline(r.root, color=colour, lw=0.8, ls="--")
    ax.axhline(result.target_power, color="#000000", lw=0.8, ls=":", label=f"target {result.target_power:g}")
    from matplotlib.ticker import FuncFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    # minor labels at 2, 3 and 5 x 10^k only, so neighbours do not collide
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else ""))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"{result.vary} (log scale)")
    ax.set_ylabel("power")
    ax.set_title(f"Power against size ({_effect_text(result)}); "
                 f"shaded: {result.level:.0%} interval of the answer", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    _style(ax)
    return ax


def _cell(x, digits: int = 4) -> str:
    from .report.common import _fmt

    return _fmt(x, digits)


def size_markdown(result: SizeResult, figure: str | None = "size.png") -> str:
    """The table and its settings as Markdown (size.md)."""
    t, lvl = result.table, f"{result.level:.0%}"
    ref = t["reference"].iloc[0]
    lines = [f"# Sample size: {result.scenario.name}", "",
             f"Smallest value of the varied field reaching power {result.target_power:g} at {_effect_text(result)}, "
             f"two arms analysed by "
             f"{'t tests' if _endpoint_kind(result.scenario) == 'continuous' else result.scenario.analysis.test} "
             f"at alpha {result.scenario.analysis.alpha:g} "
             f"({result.scenario.analysis.alternative}); seed {result.scenario.seed}.", "",
             f"## Real patients needed and saved versus {ref or 'the RCT (none searched)'}", "",
             f"| design | field | size [{lvl} CI] | real patients [{lvl} CI] | saved [{lvl} CI] | power at size ± MCSE "
             "| closed form | trials | status |", "|---|---|---|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        size = "n/a" if pd.isna(r["size"]) else f"{int(r['size'])} [{_cell(r['ci_lower'])}, {_cell(r['ci_upper'])}]"
        pats = "n/a" if pd.isna(r["real_patients"]) else (
            f"{_cell(r['real_patients'])} [{_cell(r['real_patients_ci_lower'])}, {_cell(r['real_patients_ci_upper'])}]")
        saved = "n/a" if pd.isna(r["saved"]) else (
            _cell(r["saved"]) if pd.isna(r["saved_ci_lower"]) else
            f"{_cell(r['saved'])} [{r['saved_ci_lower']:.0f}, {r['saved_ci_upper']:.0f}]")
        lines.append(f"| {r['design']} | `{r['field']}` | {size} | {pats} | {saved} | {r['power_at_size']:.3f} ± "
                     f"{r['power_mcse']:.3f} (at {r['check_value']}) | {_cell(r['closed_form'])} | "
                     f"{r['replicates']} | {r['status']} |")
    lines += ["", "Size: `ceil(x*)`, `x*` the root of the probit fit of power on sqrt(size) near the target; "
              "the interval is `(sqrt(x*) ± z se)^2`. Power at size: evaluated directly on fresh trials. Closed form: "
              + ("the exact t-test size with the residual SD each analysis leaves (Borm et al. 2007 for ancova and "
                 "procova; see docs/size.md)" if _endpoint_kind(result.scenario) == "continuous" else
                 "Schoenfeld's events for the real-control designs (events / P(event) for patient counts; see "
                 "docs/size.md)")
              + ". Saved: reference real patients minus the design's (interval adds the two variances, "
              "conservative under common random numbers)."]
    lines += [""] + [f"- {n}" for n in result.notes] if result.notes else []
    if figure:
        lines += ["", f"![Power against size by design]({figure})"]
    return "\n".join(lines) + "\n"


def write_size_outputs(result: SizeResult, out_dir: str | os.PathLike) -> Path:
    """Write size.csv, size_evaluations.csv, size.png, size.md, scenario.yaml and provenance.json.

    As :func:`twinsim.run.write_outputs`: a temporary sibling folder, moved into place when complete;
    an existing ``out_dir`` is replaced only if empty or an earlier twinsim output.
    """
    from datetime import datetime, timezone

    from .run import _versions, output_folder, resolved_scenario

    with output_folder(out_dir) as tmp:
        result.table.to_csv(tmp / "size.csv", index=False)
        result.evaluations.to_csv(tmp / "size_evaluations.csv", index=False)
        ax = plot_size(result)
        ax.figure.savefig(tmp / "size.png")
        (tmp / "size.md").write_text(size_markdown(result))
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(resolved_scenario(result.scenario), sort_keys=False))
        prov = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "size",
                "versions": _versions(None), **result.provenance}
        (tmp / "provenance.json").write_text(json.dumps(prov, indent=2, default=str) + "\n")
    return Path(out_dir)


# --------------------------------------------------------------------------- command line


@click.command("size", short_help="Smallest size reaching a target power, per design (real patients saved).")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--vary", required=True, metavar="FIELD",
              help="Integer field to search: trial.cut.events, trial.n_treatment, designs.NAME.real_control "
                   "(one design), or real_control / designs.{design}.real_control (each design's own; also "
                   "synthetic_control, treatment).")
@click.option("--target-power", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="Power to reach.")
@click.option("--lower", type=click.IntRange(min=1), help="Smallest value searched  [default: a quarter of the current]")
@click.option("--upper", type=click.IntRange(min=2), help="Largest value searched  [default: four times the current]")
@click.option("--design", "designs", multiple=True, metavar="NAME", help="Search this design only (repeatable).")
@click.option("--hazard-ratio", "--mean-difference", "hazard_ratio", type=float,
              help="Effect for the power: a hazard ratio, or a mean difference for a continuous endpoint  "
                   "[default: the scenario's first non-null]")
@click.option("--drift", type=float, help="Drift hazard ratio  [default: the scenario's first]")
@click.option("--tol", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Stop when the answer's relative standard error is below this.")
@click.option("--max-replicates", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Simulated trials per design for the search.")
@click.option("--check-replicates", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Fresh trials evaluating the power at each answer.")
@click.option("--out", "out", type=click.Path(path_type=Path), help="Output folder  [default: results/<name>-size]")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of every random number (overrides the file).")
@click.option("--set", "overrides", multiple=True, metavar="dotted.path=VALUE",
              help="Override a scenario field, VALUE parsed as YAML (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def size_command(scenario, vary, target_power, lower, upper, designs, hazard_ratio, drift, tol, max_replicates,
                 check_replicates, out, seed, overrides, quiet):
    """Find, for each design of SCENARIO, the smallest value of FIELD whose power reaches the target.

    Prints and writes (to --out) the real patients needed and saved versus the RCT, with
    size.csv, size_evaluations.csv, size.png, size.md, scenario.yaml and provenance.json.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .cli import _STDERR, _shown_warnings
    from .run import check_out_dir
    from .scenario import load_scenario
    from .size import resolve_vary

    with _shown_warnings():
        sc = load_scenario(scenario, overrides=overrides, seed=seed)
        resolve_vary(sc, vary, designs or None)  # a bad field fails before any work
        out = out if out is not None else Path("results") / f"{sc.name}-size"
        check_out_dir(out)
        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=_STDERR, disable=quiet)
        tasks = {}

        def progress(stage, done, total):
            if stage not in tasks:
                label = {"fit": "Fitting the model", "search": f"Searching {vary} (trials per design)",
                         "check": "Checking the power at each answer"}[stage]
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        with bar:
            result = size_search(sc, vary, target_power=target_power, designs=designs or None, lower=lower,
                                 upper=upper, hazard_ratio=hazard_ratio, drift=drift, tol=tol,
                                 max_replicates=max_replicates, check_replicates=check_replicates, progress=progress)
        written = write_size_outputs(result, out)
        Console().print(_rich_table(result))
        for _, r in result.table.iterrows():
            if not pd.isna(r["closed_form"]):
                inside = "inside" if r["closed_form_in_ci"] else "outside"
                share = r["closed_form_control_share"]
                caveat = ("" if abs(share - 0.5) < 0.01 or _endpoint_kind(result.scenario) == "continuous" else
                          f" (control share {share:.2f}: Schoenfeld's allocation term is approximate away from 1:1, "
                          "see docs/size.md)")
                name = CLOSED_FORM_NAMES[_endpoint_kind(result.scenario)]
                click.echo(f"Closed form ({r['design']}): {r['field']} = {r['closed_form']:.2f} ({name}), "
                           f"simulated {r['root']:.2f} [{r['ci_lower']:.2f}, {r['ci_upper']:.2f}]: {inside} the "
                           f"interval{caveat}.")
        click.echo(f"Wrote {written}/ ({', '.join(sorted(p.name for p in written.iterdir()))})")


def _rich_table(result: SizeResult):
    from rich.table import Table
    from rich.text import Text

    t = result.table
    ref = t["reference"].iloc[0]
    table = Table(title=f"{result.scenario.name}: real patients needed and saved versus {ref or 'the RCT'}; "
                  f"smallest {result.vary} reaching power {result.target_power:g} at {_effect_text(result)}",
                  title_justify="left")
    level = f"{result.level:.0%}"
    for col in ("design", f"size [{level} CI]", f"real patients [{level} CI]", "saved", "power at size",
                "closed form", "status"):
        table.add_column(col, justify="left" if col in ("design", "status") else "right")
    for _, r in t.iterrows():
        size = "-" if pd.isna(r["size"]) else f"{int(r['size'])} [{r['ci_lower']:.1f}, {r['ci_upper']:.1f}]"
        pats = "-" if pd.isna(r["real_patients"]) else (
            f"{_cell(r['real_patients'])} [{_cell(r['real_patients_ci_lower'])}, {_cell(r['real_patients_ci_upper'])}]")
        saved = "-" if pd.isna(r["saved"]) else (_cell(r["saved"]) if pd.isna(r["saved_ci_lower"]) else
                                                f"{_cell(r['saved'])} [{r['saved_ci_lower']:.0f}, {r['saved_ci_upper']:.0f}]")
        table.add_row(Text(str(r["design"])), size, pats, saved, f"{r['power_at_size']:.3f} ± {r['power_mcse']:.3f}",
                      "-" if pd.isna(r["closed_form"]) else f"{r['closed_form']:.1f}", r["status"])
    table.caption = ("size: smallest value whose fitted power reaches the target; real patients: treatment + "
                     f"concurrent controls; closed form: {CLOSED_FORM_NAMES[_endpoint_kind(result.scenario)]} "
                     "(real-control designs)")
    table.caption_justify = "left"
    return table
