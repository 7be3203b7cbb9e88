"""The report stage: figures, report.md and the self-contained report.html.

Kinds (simtrial's labels): *smoke* (files written, valid PNGs, no external assets, the
plot functions' lifelines-style ``ax`` contract) and *hand-derived* (the inflation flag on a
hand-made summary, the threshold alpha + 3 sqrt(alpha (1 - alpha) / R), the patient counts
of each design, the time axis in trial units).

Inputs: the planning scenario (assumed control, no fit) and a small posterior fitted with
NUTS (1 chain, 100 + 100 iterations) on the first 200 patients of ACTG 175 arm 0, two
covariates; real data, so no random generator is needed.  Such a tiny fit is not expected
to converge: its ConvergenceWarning is silenced inside the fixture.
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from twinsim.analysis import kaplan_meier
from twinsim.data import builtin_frame
from twinsim.errors import ConvergenceWarning
from twinsim.fit import fit
from twinsim.models import time_factor
from twinsim.report import (
    format_table,
    plot_control_survival,
    plot_km_predictive,
    plot_rejection,
    power_table,
    rejection_figure,
    type_i_error_table,
    write_report,
)
from twinsim.report.common import _fmt
from twinsim.run import run_scenario
from twinsim.scenario import load_scenario, parse_scenario

PLANNING = "scenarios/planning_schoenfeld.yaml"
SWEEP = "designs.hybrid.real_control"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def planning_result():
    return run_scenario(load_scenario(PLANNING, overrides=["replicates=200"]))


@pytest.fixture(scope="module")
def posterior_result():
    frame = builtin_frame("actg175")
    frame = frame[frame["arms"] == 0].head(200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = fit(
            frame["days"].to_numpy(float), frame["cens"].to_numpy(int), frame[["age", "karnof"]],
            rng_key=jax.random.key(0), time_unit="days", chains=1, warmup=100, draws=100,
            data_source="ACTG 175 arm 0, first 200 rows",
        )
    raw = {
        "name": "report-test", "seed": 11, "replicates": 200,
        "historical": {"data": "builtin:actg175", "filter": {"arms": 0}, "duration": "days", "event": "cens",
                       "time_unit": "days", "covariates": ["age", "karnof"]},
        "model": {"outcome": "weibull"},
        "trial": {"time_unit": "months", "n_treatment": 100, "accrual": {"duration": 12}, "cut": {"events": 80}},
        "effect": {"hazard_ratio": [1.0, 0.7]},
        "drift": {"hazard_ratio": [1.0, 1.5]},
        "designs": [
            {"name": "rct", "real_control": 100},
            {"name": "hybrid", "real_control": 50, "synthetic_control": 50, "method": "pool"},
        ],
        "sweep": {SWEEP: [25, 50]},
    }
    return run_scenario(parse_scenario(raw), posterior=post)


@pytest.fixture(scope="module")
def planning_report(planning_result, tmp_path_factory):
    out = tmp_path_factory.mktemp("planning")
    return out, write_report(planning_result, out)


@pytest.fixture(scope="module")
def posterior_report(posterior_result, tmp_path_factory):
    out = tmp_path_factory.mktemp("posterior")
    return out, write_report(posterior_result, out)


# --------------------------------------------------------------------------- helpers


def check_png(path):
    """A PNG that decodes, of a size a reader can use (at least 400 x 300 pixels)."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape[0] >= 300 and image.shape[1] >= 400
    assert image[..., :3].std() > 0.05  # not a blank canvas


def check_self_contained(page: str, n_figures: int):
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|figures/)""", page)
    assert "<link" not in page.lower() and "@import" not in page
    assert page.count('src="data:image/png;base64,') == n_figures


def section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """Cells of the first Markdown table in ``text`` (header first, separator dropped)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows if not r.startswith("|:") and not r.startswith("|-")]


# --------------------------------------------------------------------------- files


def test_planning_report_files(planning_report, capsys):
    out, written = planning_report
    names = sorted(p.relative_to(out).as_posix() for p in written)
    assert names == ["figures/control_survival.png", "figures/rejection.png", "report.html", "report.md"]
    assert all(p.is_file() for p in written)
    for name in ("control_survival", "rejection"):
        check_png(out / "figures" / f"{name}.png")
    check_self_contained((out / "report.html").read_text(), 2)
    md = (out / "report.md").read_text()
    assert "](figures/control_survival.png)" in md and "](figures/rejection.png)" in md
    assert "km_predictive" not in md
    assert capsys.readouterr().out == ""  # library code logs, never prints


def test_posterior_report_files(posterior_report, posterior_result):
    out, written = posterior_report
    names = sorted(p.relative_to(out).as_posix() for p in written)
    assert names == ["figures/km_predictive.png", "figures/rejection.png", "report.html", "report.md"]
    for name in ("km_predictive", "rejection"):
        check_png(out / "figures" / f"{name}.png")
    page = (out / "report.html").read_text()
    check_self_contained(page, 2)
    md = (out / "report.md").read_text()
    assert "](figures/km_predictive.png)" in md
    d = posterior_result.provenance["model"]["diagnostics"]
    assert f"max R-hat {_fmt(d['max_r_hat'])}" in md and f"divergences {d['divergences']}" in md
    assert posterior_result.provenance["model"]["data_hash"] in md
    # the HTML says what the Markdown says: every section heading is in both
    for title in re.findall(r"^## (.+)$", md, flags=re.M):
        assert f"<h2>{title}</h2>" in page


def test_header_has_reproduce_line_and_provenance(planning_report, planning_result):
    md = (planning_report[0] / "report.md").read_text()
    sc = planning_result.scenario
    assert md.startswith(f"# twinsim report: {sc.name}\n")
    assert f"Reproduce: `twinsim run scenario.yaml --seed {sc.seed} --replicates {sc.replicates}`" in md
    assert planning_result.provenance["versions"]["jax"] in md
    assert "Schoenfeld" in md  # the description


# --------------------------------------------------------------------------- tables


def test_type_i_error_table_shows_the_exact_rates(planning_report, planning_result):
    rows = table_rows(section((planning_report[0] / "report.md").read_text(), "Type I error"))
    header, body = rows[0], rows[1:]
    s = planning_result.summary
    null = s[s["hazard_ratio"] == 1.0]
    assert len(body) == len(null)
    for cells, (_, expect) in zip(body, null.iterrows()):
        row = dict(zip(header, cells))
        assert row["design"] == expect["design"]
        assert row["rejection_rate"] == _fmt(expect["rejection_rate"])
        # with R = 200 every rate is k / 200, at most 3 decimals: 4 significant digits are exact
        assert float(row["rejection_rate"]) == expect["rejection_rate"]
        assert row["mcse"] == _fmt(expect["mcse"])
        assert row["inflated"] == "ok"
    assert "null of no treatment effect" in section((planning_report[0] / "report.md").read_text(), "Type I error")


def test_type_i_error_table_flags_inflation_by_hand():
    # threshold at alpha 0.05, R 1000: 0.05 + 3 sqrt(0.05 * 0.95 / 1000) = 0.07068
    summary = pd.DataFrame({
        "design": ["a", "b", "c", "a"],
        "hazard_ratio": [1.0, 1.0, 1.0, 0.7],
        "drift": [1.0, 1.0, 1.0, 1.0],
        "replicates": [1000] * 4,
        "rejection_rate": [0.060, 0.070, 0.090, 0.900],
        "mcse": [0.0075, 0.0081, 0.0091, 0.0095],
        "alpha": [0.05] * 4,
    })
    t1 = type_i_error_table(summary, ["hazard_ratio", "drift"])
    assert list(t1["design"]) == ["a", "b", "c"]  # the HR 0.7 row is power, not type I error
    np.testing.assert_allclose(t1["threshold"], 0.05 + 3 * np.sqrt(0.05 * 0.95 / 1000))
    assert list(t1["inflated"]) == [False, False, True]
    assert list(format_table(t1)["inflated"]) == ["ok", "ok", "inflated"]


def test_inflated_rate_is_flagged_in_the_report(planning_result, tmp_path):
    s = planning_result.summary.copy()
    null = s["hazard_ratio"] == 1.0
    s.loc[null, "rejection_rate"] = 0.125  # R = 200: threshold 0.05 + 3 * 0.01541 = 0.0962
    inflated = dataclasses.replace(planning_result, summary=s)
    write_report(inflated, tmp_path)
    md = section((tmp_path / "report.md").read_text(), "Type I error")
    assert "| inflated |" in md and "**Inflated type I error**" in md and "0.125" in md
    assert 'class="flag">inflated<' in (tmp_path / "report.html").read_text()


def test_power_table_counts_real_patients_and_saved_controls(posterior_result):
    pw = power_table(posterior_result)
    assert (pw["hazard_ratio"] == 0.7).all()
    rct = pw[pw["design"] == "rct"]
    assert (rct["real_patients"] == 200).all() and (rct["real_controls_saved"] == 0).all()
    hyb = pw[pw["design"] == "hybrid"].set_index(SWEEP)
    # real_control swept 25 / 50 with 100 treated: real patients 125 / 150, saved 75 / 50
    for rc in (25.0, 50.0):
        rows = hyb.loc[[rc]]
        assert (rows["real_patients"] == 100 + rc).all()
        assert (rows["real_controls_saved"] == 100 - rc).all()
        assert (rows["synthetic_control"] == 50).all()


def test_power_and_bias_sections(posterior_report, posterior_result):
    md = (posterior_report[0] / "report.md").read_text()
    power = section(md, "Power")
    rows = table_rows(power)
    header = rows[0]
    assert "real_patients" in header and "real_controls_saved" in header
    rct = [dict(zip(header, r)) for r in rows[1:] if r[0] == "rct"]
    # the sweep of designs.hybrid.* does not touch rct: shown once per drift as "any"
    assert len(rct) == 2 and all(r["hybrid: real_control"] == "any" for r in rct)
    bias = section(md, "Bias and coverage")
    assert "non-collapsibility" in bias and "marginal hazard ratio" in bias
    assert all(c in table_rows(bias)[0] for c in ("mean_estimate", "bias", "rmse", "coverage"))
    full = table_rows(section(md, "Full summary"))
    assert len(full) - 1 == len(posterior_result.summary)


# --------------------------------------------------------------------------- plot functions


def test_plot_functions_take_and_return_an_ax(planning_result, posterior_result):
    for fn, result in ((plot_control_survival, planning_result), (plot_rejection, planning_result),
                       (plot_rejection, posterior_result), (plot_km_predictive, posterior_result)):
        ax = Figure().add_subplot()
        assert fn(result, ax=ax) is ax
        assert ax.has_data()
        own = fn(result)  # ax=None: a new Figure, not pyplot state
        assert own.figure is not ax.figure and own.has_data()


def test_km_predictive_needs_a_posterior(planning_result):
    with pytest.raises(ValueError, match="plot_control_survival"):
        plot_km_predictive(planning_result)


def test_km_predictive_is_in_trial_time_units(posterior_result):
    post = posterior_result.posterior
    ax = plot_km_predictive(posterior_result)
    factor = time_factor("days", "months")
    t_months = post.observed_time * factor
    assert ax.get_xlim() == pytest.approx((0.0, t_months.max()))
    assert ax.get_xlabel() == "time (months)"
    km = kaplan_meier(t_months, post.observed_event)
    step = next(line for line in ax.get_lines() if line.get_label().startswith("historical Kaplan-Meier"))
    np.testing.assert_allclose(step.get_xdata(), km.index.to_numpy())
    np.testing.assert_allclose(step.get_ydata(), km["survival"].to_numpy())


def test_rejection_figure_layout(planning_result, posterior_result):
    # no sweep: one panel per drift, x = hazard ratio
    fig = rejection_figure(planning_result)
    assert len(fig.axes) == len(planning_result.grid.dims["drift"])
    assert fig.axes[0].get_xlabel() == "hazard ratio"
    # sweep: rows = hazard ratios (type I error first), columns = drifts, x = the sweep
    fig = rejection_figure(posterior_result)
    assert len(fig.axes) == 2 * 2
    assert fig.axes[0].get_title().startswith("HR = 1 (type I error)")
    assert fig.axes[-1].get_xlabel() == "hybrid: real_control"
