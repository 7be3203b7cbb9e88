"""``twinsim twins``: digital twins of a patients file from a saved posterior (registered in cli.py).

Input errors raise :class:`~twinsim.errors.TwinsimError` (the CLI group prints one ``Error:``
paragraph and exits 2); the output file is written under a temporary name next to it and
moved into place with :func:`os.replace`, so it is never half-written.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import click

from .errors import TwinsimError

__all__ = ["twins_command"]

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _times(text: str | None, option: str):
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise TwinsimError(f"{option} {text!r}: give numbers separated by commas, e.g. {option} 6,12,24.") from None


def _check_out(out: Path) -> str:
    kind = _FORMATS.get(out.suffix.lower())
    if kind is None:
        raise TwinsimError(f"--out {str(out)!r}: the file type {out.suffix or '(none)'!r} is not supported; "
                           "end the name with .csv or .parquet.")
    if out.is_dir() or not out.parent.is_dir():
        raise TwinsimError(f"--out {str(out)!r}: {'it is a folder' if out.is_dir() else 'its folder does not exist'}; "
                           "give a file path in an existing folder.")
    return kind


def write_table(frame, out: Path, kind: str) -> None:
    """Write ``frame`` to ``out`` atomically (temporary file in the same folder, then os.replace)."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if kind == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


@click.command("twins", short_help="Digital twins: each patient's predicted control outcome from baseline data.")
@click.option("--model", "model", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Saved posterior (NetCDF, from `twinsim fit` or a run's posterior.nc).")
@click.option("--patients", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Baseline data, one row per patient (.csv, .parquet or .xpt): the model's covariates and, "
                   "for a joint model, optionally the baseline biomarker (column named as the biomarker).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output table (.csv or .parquet).")
@click.option("--milestones", metavar="T1,T2,...", help="Times for survival, in --time-unit  [default: quartiles "
              "of the historical follow-up].")
@click.option("--horizon", type=float, help="RMST horizon, in --time-unit  [default: the last milestone].")
@click.option("--level", type=float, default=0.9, show_default=True, help="Central posterior interval probability.")
@click.option("--time-unit", "time_unit", type=click.Choice(["days", "weeks", "months", "years"]),
              help="Unit of milestones, horizon, median, RMST and visits  [default: the posterior's].")
@click.option("--id", "id_col", metavar="COL", help="Patient id column copied to the output.")
@click.option("--max-draws", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Evenly spaced posterior draws used.")
def twins_command(model: Path, patients: Path, out: Path, milestones, horizon, level, time_unit, id_col, max_draws) -> None:
    """Predict every patient's outcome under control (their digital twin) from baseline data.

    Writes one row per patient: survival at the milestones, median, RMST and the predicted
    log hazard (eta) with central posterior intervals, the biomarker by visit for a joint
    model, and an out_of_range flag for covariates outside the historical range.  See
    docs/twins.md.
    """
    from .cli import _shown_warnings  # here, not at import: cli.py imports this module at its end
    from .fit import Posterior
    from .digital_twins import twins

    with _shown_warnings():
        kind = _check_out(out)
        ms = _times(milestones, "--milestones")
        post = Posterior.load(model)
        frame = twins(post, patients, milestones=ms, horizon=horizon, level=level, time_unit=time_unit,
                      id=id_col, max_draws=max_draws)
        write_table(frame, out, kind)
        flagged = int(frame["out_of_range"].sum())
        click.echo(f"Wrote {len(frame)} twins to {out} (times in {frame.attrs['time_unit']}; "
                   f"{flagged} patient(s) out of the historical range).")
