"""The bundled real data sets, read from the installed lifelines package (no download).

``actg175``, ``gbsg2`` (recoded to numbers) and ``lung``; see :data:`BUILTIN_DATASETS`.
Each event column is 1 = event observed, 0 = censored.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ._common import unique

__all__ = ["BUILTIN_DATASETS", "builtin_frame", "list_datasets", "read_builtin"]

#: The bundled real data sets: name -> description, duration and event columns, unit, reference.
BUILTIN_DATASETS: dict[str, dict[str, str]] = {
    "actg175": {
        "description": "ACTG 175 randomised HIV trial, 4 arms (arms 0 = zidovudine only, "
        "1 = zidovudine + didanosine, 2 = zidovudine + zalcitabine, 3 = didanosine only); "
        "cens 1 = event",
        "duration": "days", "event": "cens", "time_unit": "days",
        "reference": "Hammer SM et al., N Engl J Med 1996;335:1081-1090; "
        "lifelines/datasets/ACTG175.csv",
    },
    "gbsg2": {
        "description": "German Breast Cancer Study Group 2, node-positive breast cancer; "
        "recoded: horTh yes=1/no=0, menostat Post=1/Pre=0, tgrade I/II/III=1/2/3; cens 1 = event",
        "duration": "time", "event": "cens", "time_unit": "days",
        "reference": "Schumacher M et al., J Clin Oncol 1994;12:2086-2093; "
        "lifelines.datasets.load_gbsg2",
    },
    "lung": {
        "description": "NCCTG advanced lung cancer, observational; status 1 = death, "
        "0 = censored; NAs in several columns",
        "duration": "time", "event": "status", "time_unit": "days",
        "reference": "Loprinzi CL et al., J Clin Oncol 1994;12:601-607; "
        "lifelines.datasets.load_lung",
    },
}

_GBSG2_CODES = {"horTh": {"no": 0, "yes": 1}, "menostat": {"Pre": 0, "Post": 1},
                "tgrade": {"I": 1, "II": 2, "III": 3}}


@lru_cache(maxsize=None)
def _read_builtin(name: str) -> pd.DataFrame:
    import lifelines
    from lifelines import datasets

    if name == "actg175":
        frame = pd.read_csv(Path(lifelines.__file__).parent / "datasets" / "ACTG175.csv")
        return frame.drop(columns=[c for c in frame.columns if str(c).startswith("Unnamed")])
    if name == "gbsg2":
        frame = datasets.load_gbsg2()
        for column, codes in _GBSG2_CODES.items():
            coded = frame[column].map(codes)
            if coded.isna().any():  # lifelines changed its coding: fail loudly, not silently
                raise RuntimeError(f"gbsg2.{column}: unexpected values {unique(frame[column])}")
            frame[column] = coded.astype(np.int64)
        return frame
    return datasets.load_lung()


def read_builtin(name: str, where: str) -> pd.DataFrame:
    """A copy of builtin data set ``name``; an unknown name is a DataError naming ``where``."""
    key = name.strip().lower()
    if key not in BUILTIN_DATASETS:
        raise DataError(
            f"{where}: unknown builtin data set {name!r}. Use one of "
            f"{', '.join('builtin:' + k for k in BUILTIN_DATASETS)}, or a .csv/.parquet/.xpt path."
        )
    return _read_builtin(key).copy()


def builtin_frame(name: str) -> pd.DataFrame:
    """The raw table of a builtin data set (``gbsg2`` recoded to numbers), as a new copy.

    Parameters
    ----------
    name : str
        A key of :data:`BUILTIN_DATASETS` (``actg175``, ``gbsg2``, ``lung``); a
        ``builtin:`` prefix is accepted.

    Returns
    -------
    pd.DataFrame
        The table as shipped with lifelines; its event column (see
        :data:`BUILTIN_DATASETS`) is 1 = event observed, 0 = censored.
    """
    return read_builtin(name.removeprefix("builtin:"), "builtin_frame")


def list_datasets() -> pd.DataFrame:
    """One row per builtin data set: name, rows, events, duration, event, columns, description.

    ``events`` counts ``event == 1`` (event observed); ``columns`` is a comma-separated list.
    """
    rows = []
    for name, info in BUILTIN_DATASETS.items():
        frame = _read_builtin(name)
        rows.append({
            "name": name, "rows": len(frame), "events": int(frame[info["event"]].sum()),
            "duration": info["duration"], "event": info["event"],
            "columns": ", ".join(map(str, frame.columns)), "description": info["description"],
        })
    return pd.DataFrame(rows)
