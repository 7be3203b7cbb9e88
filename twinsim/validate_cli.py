"""``twinsim validate`` and ``twinsim sample`` (registered in cli.py).

Input errors and refused exports raise :class:`~twinsim.errors.TwinsimError` subclasses (the
CLI group prints one ``Error:`` paragraph and exits 2).  ``validate`` writes its folder whole
or not at all; ``sample`` writes the table and its card each atomically, and only after the
privacy gate has passed (or been overridden).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import TwinsimError

__all__ = ["validate_command", "sample_command"]

_SET_HELP = "Override a scenario field, VALUE parsed as YAML (repeatable), e.g. --set validation.splits=3."
#: Fold-in constant of ``twinsim sample`` under its seed.
KEY_SAMPLE = 5


@click.command("validate", short_help="Check synthetic patients against a real holdout: fidelity, privacy, collapse.")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), help="Output folder  [default: results/<scenario name>-validation]")
@click.option("--splits", type=click.IntRange(min=1, max=50), help="Repeated holdout splits (overrides validation.splits).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed (overrides the file).")
@click.option("--set", "overrides", multiple=True, metavar="dotted.path=VALUE", help=_SET_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def validate_command(scenario: Path, out: Path | None, splits, seed, overrides, quiet: bool) -> None:
    """Split a holdout off the SCENARIO's historical patients, fit on the rest, and check the synthetic patients.

    Reports fidelity, estimands, privacy and subgroups beside the holdout floor (mean and range
    over repeated splits, a verdict per section), a memorising generator as positive control,
    and the collapse harness.  Writes report.html/.md, the tables as CSV, validation.json and
    posterior.nc (the first split's fit, which records its holdout, for `twinsim sample`).
    """
    import yaml

    from .cli import _STDERR, _shown_warnings
    from .report.validation import write_validation_report
    from .run import check_out_dir, load_historical, output_folder, resolved_scenario
    from .scenario import load_scenario
    from .validate.runner import validate_scenario

    with _shown_warnings():
        extra = list(overrides) + ([f"validation.splits={splits}"] if splits else [])
        sc = load_scenario(scenario, overrides=extra, seed=seed)
        out = out if out is not None else Path("results") / f"{sc.name}-validation"
        check_out_dir(out)
        if sc.control is not None:
            raise TwinsimError(f"{scenario}: a planning scenario (`control:`) has no historical patients to validate "
                               "against; validation needs `historical` and `model`.")
        data = load_historical(sc)
        v = sc.validation
        status = _STDERR.status("Validating") if not quiet else None

        def progress(stage, done, total):
            if status is not None:
                what = {"split": f"split {done + 1} of {v.splits}: fitting on {1 - v.holdout:.0%} of {data.n} patients, "
                                 "checking synthetic patients", "collapse": f"collapse harness ({v.collapse.generations} "
                                 "generations)", "done": "writing the report"}[stage]
                status.update(f"Validating: {what}")

        if status is not None:
            status.start()
        try:
            result = validate_scenario(sc, historical=data, progress=progress)
            with output_folder(out) as tmp:
                write_validation_report(result, tmp)
                result.posterior.save(tmp / "posterior.nc")
                (tmp / "scenario.yaml").write_text(yaml.safe_dump(resolved_scenario(sc), sort_keys=False))
                prov = {"command": "twinsim validate", "scenario": sc.name, "seed": sc.seed,
                        "data_hash": data.hash(), "data_source": data.source,
                        "versions": result.posterior.provenance.get("versions", {})}
                (tmp / "provenance.json").write_text(json.dumps(prov, indent=2, default=str) + "\n")
        finally:
            if status is not None:
                status.stop()
    for name in ("privacy", "fidelity", "estimands", "subgroups"):
        verdict = result.verdicts[name]
        click.echo(("PASS " if verdict["verdict"] == "pass" else "FAIL ") + verdict["text"])
    cop = result.verdicts["copier"]
    click.echo(f"Positive control: the memorising generator was {cop['verdict']}"
               + (f" ({len(cop['failed'])} privacy checks failed)" if cop["failed"] else ""))
    click.echo(f"Wrote {out}/ (report.html, tables, validation.json, posterior.nc)")
    click.echo(f"Report: {out / 'report.html'}")


@click.command("sample", short_help="Export synthetic patients with a synthesis card; refused if privacy fails.")
@click.option("--model", "model", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Saved posterior (posterior.nc of `twinsim validate`, or `twinsim fit --holdout`).")
@click.option("-n", "n", required=True, type=click.IntRange(min=1), help="Synthetic patients (before oversampling).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output table (.csv or .parquet); "
              "the card is written beside it as OUT.card.json.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the sample.")
@click.option("--where", "where", metavar="CONDITION", help="Only patients matching, e.g. 'gender=0' or 'age>=50 & race=1'.")
@click.option("--oversample", "oversample", multiple=True, metavar="CONDITION:FACTOR",
              help="Multiply a subgroup, e.g. 'gender=0:3' (three times as many such patients); repeatable.")
@click.option("--censoring", type=click.Choice(["observed", "none"]), default="observed", show_default=True,
              help="observed: censored like the historical follow-up (reverse Kaplan-Meier); none: event times.")
@click.option("--override-privacy", "override", metavar="REASON",
              help="Export even if the privacy check fails or cannot run; REASON is recorded in the card.")
def sample_command(model: Path, n: int, out: Path, seed: int, where, oversample, censoring, override) -> None:
    """Draw N synthetic patients from a saved posterior and export them with a synthesis card.

    Before anything is written, a natural sample of the generator (and the exported table) is
    checked for privacy against the holdout the fit never saw; a failed check refuses the
    export (exit 2) unless --override-privacy gives a reason, which the card records.
    """
    import jax

    from .cli import _shown_warnings
    from .fit import Posterior
    from .twins_cli import _check_out
    from .validate.card import (card_path, check_gate, privacy_gate, source_tables, subgroup_fidelity,
                                synthesis_card, write_export)
    from .validate.generate import parse_condition, parse_oversample, synthetic_table

    with _shown_warnings():
        _check_out(out)
        if override is not None and not override.strip():
            raise TwinsimError("--override-privacy needs a reason (it is recorded in the synthesis card), e.g. "
                               "--override-privacy 'aggregate statistics only, approved by the DPO'.")
        if not model.is_file():
            raise TwinsimError(f"--model {str(model)!r}: no such file; give a posterior saved by `twinsim validate` "
                               "(posterior.nc) or `twinsim fit --holdout`.")
        post = Posterior.load(model)
        cond = parse_condition(where) if where else None
        overs = [parse_oversample(o) for o in oversample]
        key = jax.random.fold_in(jax.random.key(seed), KEY_SAMPLE)
        rec, train, hold = source_tables(post)
        names = (rec or {}).get("historical", {})
        time_col, event_col = names.get("duration") or "time", names.get("event") or "event"
        table = synthetic_table(jax.random.fold_in(key, 0), post, n, censoring=censoring, where=cond, oversample=overs)
        privacy = None
        if rec is not None:
            natural = synthetic_table(jax.random.fold_in(key, 1), post, len(hold), censoring="observed")
            checks = {"generator": natural}
            if censoring == "observed":
                checks["exported"] = table
            subgroup = cond or (overs[0][0] if len(overs) == 1 else None)  # the export's subgroup, if one
            if overs and subgroup is None:
                checks.pop("exported", None)  # several oversampled subgroups: the generator sample is the check
            privacy = privacy_gate(train, hold, checks, rng_key=jax.random.fold_in(key, 2), condition=subgroup)
        check_gate(privacy, override)
        fidelity = None
        if rec is not None and censoring == "observed" and (cond or overs):
            fidelity = [subgroup_fidelity(train, hold, table, c, rng_key=jax.random.fold_in(key, 3 + i))
                        for i, c in enumerate([cond] if cond else [o[0] for o in overs])]
        validation = None
        vj = model.parent / "validation.json"
        if vj.is_file():
            full = json.loads(vj.read_text())
            validation = {"file": str(vj), "verdicts": full.get("verdicts"), "settings": full.get("settings")}
        request = {"n": n, "where": where, "oversample": list(oversample), "censoring": censoring,
                   "model_file": str(model), "time_unit": post.time_unit,
                   "columns_renamed": {"time": time_col, "event": event_col}}
        table = table.rename(columns={"time": time_col, "event": event_col})
        card = synthesis_card(posterior=post, table=table, seed=seed, request=request, privacy=privacy,
                              override=override, validation=validation, fidelity=fidelity)
        write_export(table, card, out)
    click.echo(f"Wrote {len(table)} synthetic patients to {out} and the synthesis card to {card_path(out)}")
    if privacy is not None:
        click.echo(f"Privacy check against {len(hold)} holdout patients: {privacy['verdict']}"
                   + (f" (overridden: {override})" if override and privacy["verdict"] == "fail" else ""))
    elif override:
        click.echo(f"No privacy check (the posterior records no holdout); overridden: {override}")
    for f in fidelity or []:
        where = (f"Subgroup {f['condition']}: {f['n_exported']} patients, {f['share_exported']:.1%} of the export "
                 f"(real: {f['share_train']:.1%} of training, {f['share_holdout']:.1%} of holdout)")
        click.echo(where + (f"; fidelity not checked ({f['skipped']})" if "skipped" in f else
                            f"; fidelity within the subgroup's holdout floor on {f['rows'] - f['worse']} of {f['rows']} "
                            "checks" + (f", worse on {', '.join(f['worse_rows'])}" if f["worse"] else "")))
