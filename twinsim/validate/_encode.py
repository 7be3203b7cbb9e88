"""One numeric matrix from mixed-type patient tables, for distances and classifiers.

Numeric columns are standardised by the *training* (real) table's mean and SD (ddof 0; a
constant column gets SD 1); categorical columns (pandas ``Categorical``, object or string
dtype) become one-hot columns over the training table's levels (an unseen level gets all
zeros); a column with missing values gets a missingness indicator and its missing entries
the training mean (0 after standardisation).  The same transformation is applied to every
table, so distances between them are comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["encode_tables"]


def _is_categorical(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or pd.api.types.is_string_dtype(col)


def encode_tables(train: pd.DataFrame, *others: pd.DataFrame, columns=None) -> tuple[np.ndarray, ...]:
    """Encode ``train`` and each of ``others`` with the transformation fitted on ``train``.

    Parameters
    ----------
    train : DataFrame (n, p)
        The reference (real training) table.
    *others : DataFrame
        Tables with (at least) the same columns, e.g. the holdout and the synthetic table.
    columns : sequence of str, optional
        Columns to use (default all of ``train``'s).

    Returns
    -------
    tuple of ndarray (n_i, q), float64: one matrix per table, ``train`` first.
    """
    cols = list(train.columns if columns is None else columns)
    for i, t in enumerate((train, *others)):
        missing = [c for c in cols if c not in t.columns]
        if missing:
            raise DataError(f"table {i} lacks the column(s) {missing}; every table needs the columns {cols}.")
    blocks = [[] for _ in range(1 + len(others))]
    for c in cols:
        col = train[c]
        if _is_categorical(col):
            levels = [v for v in pd.unique(col.dropna())]
            for j, t in enumerate((train, *others)):
                v = t[c].astype(object).to_numpy()
                blocks[j].append(np.stack([(v == lv) for lv in levels], axis=1).astype(float)
                                 if levels else np.zeros((len(t), 0)))
        else:
            x = col.to_numpy(dtype=float)
            mean = np.nanmean(x) if np.isfinite(x).any() else 0.0
            sd = np.nanstd(x) if np.isfinite(x).any() else 1.0
            sd = sd if sd > 0 else 1.0
            has_nan = any(t[c].isna().any() for t in (train, *others))
            for j, t in enumerate((train, *others)):
                v = t[c].to_numpy(dtype=float)
                z = np.where(np.isfinite(v), (v - mean) / sd, 0.0)
                blocks[j].append(z[:, None])
                if has_nan:
                    blocks[j].append((~np.isfinite(v)).astype(float)[:, None])
    return tuple(np.concatenate(b, axis=1) if b else np.zeros((len(t), 0))
                 for b, t in zip(blocks, (train, *others)))


def _check_columns(train: pd.DataFrame, other: pd.DataFrame, columns) -> list:
    cols = list(train.columns if columns is None else columns)
    for name, t in (("train", train), ("other", other)):
        missing = [c for c in cols if c not in t.columns]
        if missing:
            raise DataError(
                f"The {name} table lacks the column(s) {missing}; the fidelity metrics compare the "
                f"columns {cols} of the training table with the same columns of the other table. "
                "Pass tables with the same columns, or restrict the comparison with columns=[...]."
            )
    return cols
