"""The ``twinsim`` command line: a thin shell that parses, calls the library and prints.

All printing of twinsim lives here (the library only logs).  Tables and the output path go
to stdout; progress, warnings and errors go to stderr.  Input errors
(:class:`~twinsim.errors.TwinsimError`) are one ``Error:`` paragraph and exit status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from . import __version__
from .errors import ScenarioError, TwinsimError, TwinsimWarning

__all__ = ["main"]

_STDERR = Console(stderr=True)  # progress and logs share it (rich resolves sys.stderr at each write)
_SET_HELP = "Override a scenario field, VALUE parsed as YAML (repeatable), e.g. --set effect.hazard_ratio=[1.0,0.8]."


class _Group(click.Group):
    """Turns input errors into one ``Error:`` paragraph (exit 2) and Ctrl-C into exit 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TwinsimError as err:
            click.echo(click.style("Error: ", fg="red", bold=True) + str(err), err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("\nInterrupted (outputs are written only when complete; nothing half-written was left).", err=True)
            ctx.exit(130)

    def __call__(self, *args, **kwargs):  # the console script (CliRunner calls .main directly)
        try:
            return self.main(*args, **kwargs)
        except SystemExit as exit_:
            if exit_.code == 130:  # jaxlib can segfault at interpreter shutdown after an interrupted XLA compile
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(130)
            raise


@contextmanager
def _shown_warnings():
    """Record warnings raised inside; print twinsim's as yellow ``Warning:`` lines, replay others."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TwinsimWarning)
            yield
    finally:
        seen = set()
        for w in caught:
            if not issubclass(w.category, TwinsimWarning):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            elif str(w.message) not in seen:
                seen.add(str(w.message))
                click.secho(f"Warning: {w.message}", fg="yellow", err=True)


class _Progress:
    """``progress(stage, done, total)`` for run_scenario, drawn with rich on stderr."""

    def __init__(self, fit_label: str | None, sim_label: str, replicates: int, enabled: bool):
        self.fit_label, self.sim_label, self.replicates = fit_label, sim_label, replicates
        self.bar = Progress(
            SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), console=_STDERR, disable=not enabled,
        )
        self.fit_task = self.sim_task = None

    def __enter__(self):
        if self.fit_label is None:
            self._start_simulation()
        return self

    def __exit__(self, *exc):
        if self.bar.live.is_started:
            self.bar.stop()

    def _add_task(self, description: str, total: int | None):
        if not self.bar.live.is_started:  # start on the first task: nothing is drawn if loading fails
            self.bar.start()
        return self.bar.add_task(description, total=total)

    def _start_simulation(self):
        # the first batch also compiles the JAX kernel, which can take longer than the batch itself
        self.sim_task = self._add_task(f"{self.sim_label} (compiling)", self.replicates)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "fit" and done == 0:
            self.fit_task = self._add_task(self.fit_label, None)
        elif stage == "fit":
            self.bar.update(self.fit_task, total=1, completed=1)
            self._start_simulation()
        elif stage == "simulate":
            if self.sim_task is None:
                self._start_simulation()
            self.bar.update(self.sim_task, completed=done, total=total, description=self.sim_label)


def _fmt(x: float, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _summary_table(result) -> Table:
    summary, dims = result.summary, list(result.grid.dims)
    table = Table(title=f"{result.scenario.name}: {result.scenario.replicates} simulated trials per row", title_justify="left")
    for col in ["design", *dims]:
        table.add_column(col)
    continuous = result.scenario.effect_dim == "mean_difference"
    for col in ("rejection rate ± MCSE", "mean difference" if continuous else "mean HR", "coverage"):
        table.add_column(col, justify="right")
    for _, row in summary.iterrows():
        failed = f" ({int(row['failed'])} failed)" if row.get("failed", 0) else ""
        table.add_row(
            Text(str(row["design"])), *[f"{row[d]:g}" for d in dims],
            f"{_fmt(row['rejection_rate'])} ± {_fmt(row['mcse'])}{failed}",
            _fmt(row["mean_estimate"]), _fmt(row["coverage"]),
        )
    a = result.scenario.analysis
    level = 1 - a.alpha * (2 if a.alternative == "less" else 1)  # the Wald interval of simulate.py
    if continuous:
        table.caption = ("rejection rate: type I error where mean_difference = 0, power otherwise; mean difference: "
                         f"mean estimate (adjusted for ancova/procova); coverage: of its {level:.0%} t interval")
    else:
        table.caption = ("rejection rate: type I error where hazard_ratio = 1, power otherwise; mean HR: mean "
                         f"estimated hazard ratio; coverage: of its {level:.0%} interval")
    table.caption_justify = "left"
    return table


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="twinsim")
@click.option("-v", "--verbose", is_flag=True, help="Show the library's log messages (INFO) on stderr.")
def main(verbose: bool) -> None:
    """Simulate clinical trials with synthetic control arms learned by Bayesian generative models.

    A scenario file (YAML) describes the historical data, the model, the planned trial,
    the designs to compare and the analysis; see scenarios/ and docs/scenario-reference.md.

    \b
    Example:
      twinsim run scenarios/planning_schoenfeld.yaml --replicates 500 --set trial.n_treatment=250
    """
    if verbose:
        from rich.logging import RichHandler

        log = logging.getLogger("twinsim")  # twinsim's messages only, not jax's
        log.setLevel(logging.INFO)
        log.addHandler(RichHandler(console=_STDERR, show_path=False))


@main.command(short_help="Simulate a scenario's trials; write operating characteristics and a report.")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), help="Output folder  [default: results/<scenario name>]")
@click.option("--replicates", type=click.IntRange(min=1), help="Simulated trials per grid point (overrides the file).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of every random number (overrides the file).")
@click.option("--set", "overrides", multiple=True, metavar="dotted.path=VALUE", help=_SET_HELP)
@click.option("--no-report", is_flag=True, help="Skip report.html / report.md (faster).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def run(scenario: Path, out: Path | None, replicates, seed, overrides, no_report: bool, quiet: bool) -> None:
    """Simulate the SCENARIO's trials and write operating characteristics to --out.

    Writes summary.csv, results.nc, scenario.yaml (overrides applied), provenance.json,
    the fitted posterior.nc (when a model is fitted) and the report.  The folder appears only
    when complete; an earlier twinsim output there is replaced, anything else is refused.
    """
    from .run import check_out_dir, run_scenario, write_outputs
    from .scenario import load_scenario

    with _shown_warnings():
        sc = load_scenario(scenario, overrides=overrides, replicates=replicates, seed=seed)
        out = out if out is not None else Path("results") / sc.name
        check_out_dir(out)
        effect = sc.effect.mean_difference if sc.trial.endpoint == "continuous" else sc.effect.hazard_ratio
        points = math.prod(len(v) for v in (effect, sc.drift.hazard_ratio, *sc.sweep.values()))
        fit_label = None
        if sc.control is None:
            fit_label = (f"Loading posterior {sc.model.posterior}" if sc.model.posterior
                         else f"Fitting {'the joint biomarker + ' if sc.model.joint else ''}{sc.model.outcome} model by "
                         f"{sc.model.inference.method.upper()}")
        sim_label = f"Simulating {len(sc.designs)} design(s) × {points} grid point(s)"
        with _Progress(fit_label, sim_label, sc.replicates, enabled=not quiet) as progress:
            result = run_scenario(sc, progress=progress)
        written = write_outputs(result, out, report=not no_report)
        Console().print(_summary_table(result))
        click.echo(f"Wrote {written}/ ({', '.join(sorted(p.name for p in written.iterdir()))})")
        if (written / "report.html").is_file():
            click.echo(f"Report: {written / 'report.html'}")


@main.command(short_help="Fit a scenario's generative model and save the posterior (NetCDF).")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Posterior file (NetCDF)  [default: <scenario name>-posterior.nc]")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the fit (overrides the file).")
@click.option("--set", "overrides", multiple=True, metavar="dotted.path=VALUE", help=_SET_HELP)
@click.option("--holdout", type=click.FloatRange(0.1, 0.9), help="Hold this share of the patients out of the fit "
              "(stratified by event, the first split of `twinsim validate`) and record which, so `twinsim sample` can "
              "check privacy against them.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def fit(scenario: Path, out: Path | None, seed, overrides, holdout, quiet: bool) -> None:
    """Fit the SCENARIO's generative model to its historical data and save the posterior.

    The saved file can be reused by other scenarios with `model: {posterior: FILE}`.
    An existing FILE is replaced only once the new one is completely written.
    """
    from .run import fit_models, load_historical
    from .scenario import load_scenario

    with _shown_warnings():
        sc = load_scenario(scenario, overrides=overrides, seed=seed)
        if sc.control is not None:
            raise ScenarioError(
                f"{scenario}: this is a planning scenario (`control:` is an assumed distribution), so "
                "there is nothing to fit; `twinsim fit` needs `historical` and `model` sections. Use `twinsim run` instead."
            )
        if sc.model.posterior is not None:
            raise ScenarioError(
                f"{scenario}: model.posterior names a saved posterior ({sc.model.posterior}), so there is nothing to fit; "
                "remove it (or add --set model.posterior=null) to fit the historical data again."
            )
        out = out if out is not None else Path(f"{sc.name}-posterior.nc")
        if out.is_dir():
            raise TwinsimError(f"--out {str(out)!r} is a folder; give a file name such as {sc.name}-posterior.nc.")
        data = load_historical(sc)
        inf = sc.model.inference
        what = (f"the joint {data.biomarker.name} + weibull model" if sc.model.joint is not None and data.biomarker is not None
                else f"{', '.join(sc.model.families)} model(s)")
        label = f"Fitting {what} to {data.n} patients by {inf.label}"
        full, split, fit_key = data, None, None
        if holdout is not None:
            import jax

            from .validate.runner import KEY_VALIDATE, PURPOSE, holdout_split, subset_data

            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(sc.seed), KEY_VALIDATE), 0)
            split = holdout_split(data.event, holdout, rng_key=jax.random.fold_in(key, PURPOSE["split"]))
            data, fit_key = subset_data(data, split[0]), jax.random.fold_in(key, PURPOSE["fit"])
            label += f" ({holdout:.0%} held out: {full.n - data.n} patients)"
        with _STDERR.status(label) if not quiet else nullcontext():
            post, comparison, _ = fit_models(sc, historical=data, rng_key=fit_key)
        from .validate.card import record_generation
        from .validate.runner import record_split

        if split is not None:
            record_split(post, sc, full, split[0], split[1], split=0, share=holdout)
        else:
            record_generation(post, sc)
        out.parent.mkdir(parents=True, exist_ok=True)
        post.save(out)
        if comparison is not None:
            comp = Table(title="Model comparison by PSIS-LOO (higher elpd_loo predicts better; a difference "
                         "within about 2 dse is not decisive)", title_justify="left")
            for col in ("model", "elpd_loo", "se", "p_loo", "elpd_diff", "dse", "pareto_k_bad", "chosen"):
                comp.add_column(col, justify="left" if col in ("model", "chosen") else "right")
            for name, row in comparison.iterrows():
                comp.add_row(Text(str(name)), *(_fmt(row[c]) for c in ("elpd_loo", "se", "p_loo", "elpd_diff", "dse")),
                             str(int(row["pareto_k_bad"])), "chosen" if row["chosen"] else "")
            Console().print(comp)
            why = "highest elpd_loo (outcome: auto)" if sc.model.outcome == "auto" else "named by model.outcome"
            click.echo(f"Chosen model: {post.outcome} ({why}); only its posterior is saved.")
        model_name = f"joint {post.joint['biomarker']} + {post.outcome}" if post.joint is not None else post.outcome
        table = Table(title=f"{model_name} model fitted to {data.n} patients ({data.n_events} events): "
                      f"{post.n_draws} draws, {post.divergences} divergent transitions", title_justify="left")
        cols = [c for c in ("param", "mean", "sd", "r_hat", "ess_bulk", "ess_tail") if c in post.diagnostics]
        for col in cols:
            table.add_column(col, justify="left" if col == "param" else "right")
        for _, row in post.diagnostics.iterrows():
            table.add_row(Text(str(row["param"])), *(_fmt(row[c], 0 if c.startswith("ess") else 3) for c in cols[1:]))
        Console().print(table)
        if post.inference.get("method") == "svi":
            click.echo(f"SVI diagnostics: Pareto k-hat {post.inference['khat']:.2f} (reliable below "
                       f"{post.inference['khat_max']}), ELBO relative change {post.inference['elbo_rel_change']:.1e}.")
        click.echo(f"Saved the posterior to {out}")


@main.command(short_help="List the builtin data sets.")
def datasets() -> None:
    """List the builtin data sets (use them as `historical: {data: builtin:NAME}`)."""
    from .data import list_datasets

    table = Table(title="Builtin data sets (in a scenario: historical.data: builtin:NAME)", title_justify="left", show_lines=True)
    table.add_column("name", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("events", justify="right")
    table.add_column("description and columns")
    for _, row in list_datasets().iterrows():
        about = Text(row["description"])
        about.append(f"\nduration column: {row['duration']}, event column: {row['event']} (1 = event)\ncolumns: {row['columns']}", style="dim")
        table.add_row(Text(row["name"]), str(row["rows"]), str(row["events"]), about)
    Console().print(table)


@main.command(short_help="Print the scenario reference (every field, Markdown).")
def reference() -> None:
    """Print the reference of every scenario field as Markdown (docs/scenario-reference.md)."""
    from .scenario import scenario_reference

    click.echo(scenario_reference())


# commands defined beside the stage they serve (imported last: they use the helpers above)
from .twins_cli import twins_command  # noqa: E402
from .size_report import size_command  # noqa: E402
from .validate_cli import sample_command, validate_command  # noqa: E402

main.add_command(twins_command)
main.add_command(size_command)
main.add_command(validate_command)
main.add_command(sample_command)

if __name__ == "__main__":  # pragma: no cover
    main()
