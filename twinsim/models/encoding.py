"""How covariates are represented: DataFrame <-> raw rows -> design matrix, marginal
knots, and the NetCDF layout of a covariate model.

A covariate model (:class:`twinsim.models.CovariateModel`) generates *raw* rows: an
array ``(n, p_raw)`` with one column per historical covariate, holding the value of a
numeric column, the integer code ``0..L-1`` of a categorical column (codes follow the
column's sorted categories), and NaN where the value is missing.  The outcome model needs
a numeric *design matrix* ``(n, d)``.  This module turns one into the other, twice:

* :func:`encode_numpy` in NumPy, for fitting (via :meth:`CovariateModel.design`);
* :func:`encode` in pure JAX (fixed shapes, jit and vmap safe), for simulation.

Both read the same :class:`DesignSpec` and give bitwise identical numbers on the same rows
(tested), so a simulated patient is encoded exactly as a historical one was.
:func:`read_columns`, :func:`frame_to_raw` and :func:`raw_to_frame` convert between a
DataFrame in the historical form (numeric float64 with NaN, pandas ``Categorical``) and
raw rows; :func:`categorical_knots`, :func:`numeric_knots` and :func:`pad_knots` store
each marginal as fixed-shape knots for the JAX sampler; :func:`model_to_dataset` and
:func:`dataset_to_fields` are the model's NetCDF layout.

Rules (one raw column gives one or more design columns, in the order of the raw columns):

* numeric column ``NAME`` -> ``NAME`` itself (original units);
* categorical column with ``L`` levels -> ``L - 1`` dummies (0/1), one per level except
  the *reference*, the most frequent observed level (ties: the first in category order);
  each is named ``NAME[LABEL]`` with ``LABEL`` the level's ``str`` (``SEX[M]``,
  ``race[1]``).  Levels never observed keep their (all-zero) dummy;
* a column with missing values in the historical data -> also ``NAME[missing]``, 1 where
  the value is missing, 0 otherwise; a numeric column's own design column then holds the
  value with NaN replaced by the column's observed (historical) mean, and a categorical
  column's level dummies are all 0 on a missing row (``missing`` acts as an extra level).

The ``[missing]`` dummy is the *missing-indicator method*: it is meant for prediction
(simulating outcomes of patients like the historical ones), not for estimating covariate
effects, whose estimates it can bias even under MCAR (Groenwold et al., CMAJ
2012;184:1265-1269).  It assumes missingness in future patients carries the same
prognostic information as in the historical ones.  Constant design columns are kept; the
fitter handles them.

No survival data are touched here (so no event convention applies).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ModelError

__all__ = [
    "DESIGN_VALUE",
    "DESIGN_LEVEL",
    "DESIGN_MISSING",
    "DesignSpec",
    "design_spec",
    "encode_numpy",
    "encode",
    "read_columns",
    "frame_to_raw",
    "raw_to_frame",
    "categorical_knots",
    "numeric_knots",
    "pad_knots",
    "model_to_dataset",
    "dataset_to_fields",
]

#: Kind of a design column: the raw value (NaN -> fill), a level dummy, a missing dummy.
DESIGN_VALUE, DESIGN_LEVEL, DESIGN_MISSING = 0, 1, 2
_LABEL_TYPES = (str, int, float, bool)
#: Layout marker and version of :func:`model_to_dataset`.
_FORMAT, _FORMAT_VERSION = "twinsim.CovariateModel", 1


@dataclass(frozen=True, eq=False)
class DesignSpec:
    """How each design column is computed from the raw covariate array.

    Attributes
    ----------
    names : tuple of str (d,)
        Design column names (``NAME``, ``NAME[LABEL]``, ``NAME[missing]``).
    source : ndarray (d,) int64
        Raw column each design column reads.
    kind : ndarray (d,) int64
        :data:`DESIGN_VALUE`, :data:`DESIGN_LEVEL` or :data:`DESIGN_MISSING`.
    code : ndarray (d,) float64
        Level code of a :data:`DESIGN_LEVEL` column (0 elsewhere).
    fill : ndarray (d,) float64
        Value replacing NaN in a :data:`DESIGN_VALUE` column: the observed historical
        mean of a column with missing values (unused, 0, elsewhere).
    """

    names: tuple[str, ...]
    source: np.ndarray
    kind: np.ndarray
    code: np.ndarray
    fill: np.ndarray

    @property
    def d(self) -> int:
        """Number of design columns."""
        return len(self.names)


def design_spec(
    names: Sequence[str],
    categorical: Sequence[bool],
    levels: Sequence[Sequence[Any]],
    reference: Sequence[int],
    has_missing: Sequence[bool],
    fill: Sequence[float],
) -> DesignSpec:
    """Build the :class:`DesignSpec` of a set of raw covariate columns.

    Parameters
    ----------
    names : sequence of str (p_raw,)
        Raw column names.
    categorical : sequence of bool (p_raw,)
        True for a categorical column (raw values are level codes).
    levels : sequence (p_raw,) of sequences
        Level labels of each categorical column in code order (empty for numeric ones).
    reference : sequence of int (p_raw,)
        Code of the reference level of each categorical column (ignored for numeric ones).
    has_missing : sequence of bool (p_raw,)
        Columns with missing values in the historical data (they get ``NAME[missing]``).
    fill : sequence of float (p_raw,)
        Observed mean of each numeric column (NaN replacement; ignored for categoricals).

    Returns
    -------
    DesignSpec
    """
    out_names: list[str] = []
    source: list[int] = []
    kind: list[int] = []
    code: list[float] = []
    fills: list[float] = []

    def add(name: str, j: int, k: int, c: float = 0.0, f: float = 0.0) -> None:
        out_names.append(name)
        source.append(j)
        kind.append(k)
        code.append(float(c))
        fills.append(float(f))

    for j, name in enumerate(names):
        if categorical[j]:
            for c, label in enumerate(levels[j]):
                if c != int(reference[j]):
                    add(f"{name}[{label}]", j, DESIGN_LEVEL, c)
        else:
            add(str(name), j, DESIGN_VALUE, 0.0, fill[j] if has_missing[j] else 0.0)
        if has_missing[j]:
            add(f"{name}[missing]", j, DESIGN_MISSING)
    return DesignSpec(
        names=tuple(out_names),
        source=np.asarray(source, dtype=np.int64).reshape(-1),
        kind=np.asarray(kind, dtype=np.int64).reshape(-1),
        code=np.asarray(code, dtype=np.float64).reshape(-1),
        fill=np.asarray(fills, dtype=np.float64).reshape(-1),
    )


def encode_numpy(raw: np.ndarray, spec: DesignSpec) -> np.ndarray:
    """Design matrix of raw covariate rows, in NumPy (the fitting side).

    Parameters
    ----------
    raw : ndarray (n, p_raw), float64
        Numeric values, categorical codes, NaN where missing (see the module docstring).
    spec : DesignSpec

    Returns
    -------
    ndarray (n, d), float64
        Columns in the order of ``spec.names``.
    """
    raw = np.asarray(raw, dtype=np.float64)
    out = np.empty((raw.shape[0], spec.d), dtype=np.float64)
    for i in range(spec.d):
        col = raw[:, spec.source[i]]
        missing = np.isnan(col)
        if spec.kind[i] == DESIGN_VALUE:
            out[:, i] = np.where(missing, spec.fill[i], col)
        elif spec.kind[i] == DESIGN_LEVEL:
            out[:, i] = (~missing & (col == spec.code[i])).astype(np.float64)
        else:
            out[:, i] = missing.astype(np.float64)
    return out


def encode(raw, arrays):
    """Design matrix of raw covariate rows, in pure JAX (the simulation side).

    Fixed shapes, no Python control flow on values: safe under ``jit`` and ``vmap``.

    Parameters
    ----------
    raw : array (n, p_raw), float
        Numeric values, categorical codes, NaN where missing (as returned by
        :func:`twinsim.models.covariates.sample_raw`).
    arrays : CovariateArrays or any object with ``design_source`` (d,) int,
        ``design_kind`` (d,) int, ``design_code`` (d,) float and ``design_fill`` (d,) float
        (the fields of a :class:`DesignSpec`).

    Returns
    -------
    array (n, d), float
        Bitwise equal to :func:`encode_numpy` on the same rows.
    """
    raw = jnp.asarray(raw)
    v = raw[:, arrays.design_source]  # (n, d)
    missing = jnp.isnan(v)
    kind = arrays.design_kind[None, :]
    value = jnp.where(missing, arrays.design_fill[None, :], v)
    level = (~missing & (v == arrays.design_code[None, :])).astype(raw.dtype)
    return jnp.where(kind == DESIGN_VALUE, value,
                     jnp.where(kind == DESIGN_LEVEL, level, missing.astype(raw.dtype)))


# --------------------------------------------------------------------------- frame <-> raw


def read_columns(frame: pd.DataFrame, field: str) -> list[tuple]:
    """Read the columns of a covariate DataFrame.

    Parameters
    ----------
    frame : DataFrame (n, p_raw)
        Numeric (float, int, bool; NaN = missing) or pandas ``Categorical`` columns.
    field : str
        Name of the data in error messages (``historical.covariates``).

    Returns
    -------
    list of ``(name, categorical, levels, ordered, values)``
        ``values`` ndarray (n,) float64 with NaN where missing: the value, or the level code
        (position in the sorted categories) of a categorical; ``levels`` the categories as
        Python scalars (``()`` for numeric columns).
    """
    out = []
    for label in frame.columns:
        name, s = str(label), frame[label]
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = tuple(v.item() if isinstance(v, np.generic) else v for v in s.cat.categories)
            bad = [v for v in levels if not isinstance(v, _LABEL_TYPES)]
            if bad:
                raise ModelError(
                    f"{field}.{name}: categorical levels must be str, int, float or bool; got "
                    f"{bad[:4]!r}. Convert the levels, e.g. frame[{name!r}] = "
                    f"frame[{name!r}].cat.rename_categories(str).")
            codes = s.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            out.append((name, True, levels, bool(s.cat.ordered), codes))
        elif pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            values = s.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(values).any():
                raise ModelError(
                    f"{field}.{name}: holds infinite values ({int(np.isinf(values).sum())} rows); "
                    "replace them with finite numbers (or NaN, with missing='model').")
            out.append((name, False, (), False, values))
        else:
            raise ModelError(
                f"{field}.{name}: column of dtype {s.dtype} is neither numeric nor a pandas "
                f"Categorical. Convert it, e.g. frame[{name!r}] = frame[{name!r}].astype('category').")
    return out


def frame_to_raw(frame: pd.DataFrame, names: Sequence[str], categorical: Sequence[bool],
                 levels: Sequence[Sequence[Any]], has_missing: Sequence[bool],
                 field: str = "covariates") -> np.ndarray:
    """DataFrame in the historical form -> raw rows.

    Parameters
    ----------
    frame : DataFrame (n, >= p_raw)
        Must hold the columns ``names`` (others are ignored).  A categorical column may be
        a ``Categorical`` or plain labels; its values must be among ``levels``.
    names, categorical, levels, has_missing : sequences (p_raw,)
        As in :func:`design_spec`; a column may hold NaN only where ``has_missing``.
    field : str
        Name of the data in error messages.

    Returns
    -------
    ndarray (n, p_raw), float64
        Values, level codes, NaN where missing.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ModelError(f"{field}: need a pandas DataFrame with columns {list(names)}; got "
                         f"{type(frame).__name__}.")
    absent = [n for n in names if n not in frame.columns]
    if absent:
        raise ModelError(f"{field}: column(s) {absent} are missing; the covariate model was "
                         f"fitted on {list(names)}. Pass a DataFrame with those columns.")
    raw = np.empty((len(frame), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        s = frame[name]
        if categorical[j]:
            cat = pd.Categorical(s, categories=list(levels[j]))
            codes = np.asarray(cat.codes)
            unseen = s.notna().to_numpy() & (codes < 0)
            if unseen.any():
                raise ModelError(
                    f"{field}.{name}: value(s) {list(pd.unique(s[unseen]))[:8]!r} are not levels "
                    f"of the fitted model {list(levels[j])!r}; recode them to those levels "
                    "(or refit on data that contain them).")
            col = codes.astype(np.float64)
            col[codes < 0] = np.nan
        else:
            if isinstance(s.dtype, pd.CategoricalDtype) or not (
                    pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                raise ModelError(f"{field}.{name}: expected a numeric column (as fitted); got "
                                 f"dtype {s.dtype}. Convert it to numbers.")
            col = s.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(col).any():
                raise ModelError(f"{field}.{name}: holds infinite values; use finite numbers.")
        if not has_missing[j] and np.isnan(col).any():
            raise ModelError(
                f"{field}.{name}: {int(np.isnan(col).sum())} missing value(s), but the "
                "historical data had none, so the model has no missing indicator for it. "
                "Impute or drop those rows, or refit with missing='model' on data with NaN.")
        raw[:, j] = col
    return raw


def raw_to_frame(raw, names: Sequence[str], categorical: Sequence[bool],
                 levels: Sequence[Sequence[Any]], ordered: Sequence[bool]) -> pd.DataFrame:
    """Raw rows -> DataFrame in the historical form.

    Parameters
    ----------
    raw : array (n, p_raw)
        Values, level codes, NaN where missing.
    names, categorical, levels, ordered : sequences (p_raw,)

    Returns
    -------
    DataFrame (n, p_raw)
        Numeric columns float64 with NaN, categorical columns ``Categorical`` with
        categories ``levels`` (NaN where missing), RangeIndex.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != len(names):
        raise ModelError(f"raw covariates have shape {raw.shape}; expected (n, {len(names)}) "
                         f"with columns {list(names)}.")
    data = {}
    for j, name in enumerate(names):
        col = raw[:, j]
        if categorical[j]:
            codes = np.where(np.isnan(col), -1, col).astype(np.int64)
            data[name] = pd.Categorical.from_codes(
                codes, categories=pd.Index(list(levels[j])), ordered=bool(ordered[j]))
        else:
            data[name] = col.copy()
    return pd.DataFrame(data, columns=list(names), index=pd.RangeIndex(raw.shape[0]))


# --------------------------------------------------------------------------- marginal knots


def categorical_knots(codes: np.ndarray, n_levels: int):
    """Knots of a categorical marginal: its observed levels in copula order.

    Parameters
    ----------
    codes : ndarray (n_obs,)
        Observed level codes (no NaN).
    n_levels : int

    Returns
    -------
    value : ndarray (L_obs,) float64
        Observed level codes by decreasing frequency (ties: code order); levels never
        observed are left out.
    prob : ndarray (L_obs,) float64
        Their cumulative proportions (the last exactly 1).
    pos : ndarray (n_levels,) float64
        Each code's position in that order (-1 if unobserved): the value ranked for the
        normal scores.
    """
    counts = np.bincount(codes.astype(np.int64), minlength=n_levels)
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    cum = np.cumsum(counts[order]) / codes.size
    cum[-1] = 1.0
    pos = np.full(n_levels, -1.0)
    pos[order] = np.arange(order.size)
    return order.astype(np.float64), cum, pos


def numeric_knots(v: np.ndarray, max_quantiles: int | None):
    """Knots of a numeric marginal.

    Parameters
    ----------
    v : ndarray (n_obs,) float64
        Observed values (no NaN).
    max_quantiles : int or None
        Keep at most this many quantiles (continuous), or coarsen an integer column with
        more distinct values to this many quantiles of weight 1 / Q.

    Returns
    -------
    value, prob : ndarray (K,) float64
        Integer-valued column: distinct values ascending and cumulative proportions.
        Continuous column: order statistics at probabilities ``(i + 0.5) / n_obs`` (or
        ``Q`` quantiles of that interpolated quantile function at ``(k + 0.5) / Q``).
    discrete : bool
        All values are integers.
    cum : ndarray (L,) float64
        Cumulative proportions of the distinct observed values (for the dependence).
    """
    n = v.size
    uniq, counts = np.unique(v, return_counts=True)
    cum = np.cumsum(counts) / n
    cum[-1] = 1.0
    discrete = bool(np.all(v == np.round(v)))
    srt = np.sort(v)
    if discrete:
        if max_quantiles is None or uniq.size <= max_quantiles:
            return uniq, cum.copy(), True, cum
        # coarsen: the inverse empirical CDF at (k + 0.5) / Q, each with weight 1 / Q
        q = srt[np.minimum(np.floor((np.arange(max_quantiles) + 0.5) / max_quantiles * n)
                           .astype(np.int64), n - 1)]
        u2, c2 = np.unique(q, return_counts=True)
        prob = np.cumsum(c2) / max_quantiles
        prob[-1] = 1.0
        return u2, prob, True, cum
    plotting = (np.arange(n) + 0.5) / n
    if max_quantiles is None or n <= max_quantiles:
        return srt, plotting, False, cum
    prob = (np.arange(max_quantiles) + 0.5) / max_quantiles
    return np.interp(prob, plotting, srt), prob, False, cum


def pad_knots(probs: Sequence[np.ndarray], values: Sequence[np.ndarray]):
    """Stack per-column knots into fixed-shape arrays for JAX.

    Returns ``knot_prob``, ``knot_value`` ndarray (p_cop, K), K the most knots (>= 1),
    padded with probability 2 (never reached: u < 1) and the column's last value.
    """
    k_max = max([len(p) for p in probs], default=1)
    knot_prob = np.full((len(probs), k_max), 2.0)
    knot_value = np.zeros((len(probs), k_max))
    for c, (prob, value) in enumerate(zip(probs, values)):
        knot_prob[c, :len(prob)] = prob
        knot_value[c, :] = value[-1]
        knot_value[c, :len(value)] = value
    return knot_prob, knot_value


# --------------------------------------------------------------------------- NetCDF encoding


def model_to_dataset(model) -> xr.Dataset:
    """A :class:`~twinsim.models.CovariateModel` as an :class:`xarray.Dataset` for NetCDF4.

    Variables over ``column`` (raw columns: ``categorical``, ``ordered`` as int8,
    ``reference``, ``observed_mean``, ``missing_index``), ``copula_column`` and ``knot``
    (``knot_prob``, ``knot_value``, ``n_knots``, ``discrete`` as int8, ``corr``).  The
    level labels (JSON, keeping str/int/float/bool), the policy, ``max_quantiles`` (0 =
    all), ``n_rows`` and the design names (for readers) are attributes.  Only numeric and
    str arrays and str/int attributes: the layout is writable as a group of the posterior
    file.
    """
    names = np.array(list(model.names), dtype=str)
    cop = np.array(list(model.copula_names), dtype=str)
    return xr.Dataset(
        {
            "categorical": ("column", model.categorical.astype(np.int8)),
            "ordered": ("column", model.ordered.astype(np.int8)),
            "reference": ("column", model.reference),
            "observed_mean": ("column", model.observed_mean),
            "missing_index": ("column", model.missing_index),
            "knot_prob": (("copula_column", "knot"), model.knot_prob),
            "knot_value": (("copula_column", "knot"), model.knot_value),
            "n_knots": ("copula_column", model.n_knots),
            "discrete": ("copula_column", model.discrete.astype(np.int8)),
            "corr": (("copula_column", "copula_column_b"), model.corr),
        },
        coords={"column": names, "copula_column": cop, "copula_column_b": cop},
        attrs={
            "twinsim_format": _FORMAT,
            "twinsim_format_version": _FORMAT_VERSION,
            "description": "Gaussian copula with empirical marginals "
                           "(twinsim.models.CovariateModel), original units",
            "levels": json.dumps([list(lv) for lv in model.levels]),
            "missing": model.missing,
            "max_quantiles": 0 if model.max_quantiles is None else int(model.max_quantiles),
            "n_rows": int(model.n_rows),
            "design_names": json.dumps(list(model.design_names)),
        },
    )


def dataset_to_fields(ds: xr.Dataset) -> dict[str, Any]:
    """The constructor arguments of a ``CovariateModel`` from :func:`model_to_dataset`.

    Raises
    ------
    ModelError
        Not such a Dataset, a newer format, or missing/corrupt variables.
    """
    fmt = ds.attrs.get("twinsim_format")
    if fmt != _FORMAT:
        raise ModelError(
            f"covariate model dataset: attribute twinsim_format is {fmt!r}, expected "
            f"{_FORMAT!r}; pass a Dataset written by CovariateModel.to_dataset.")
    try:
        version = int(ds.attrs["twinsim_format_version"])
        if version > _FORMAT_VERSION:
            raise ModelError(
                f"covariate model dataset: format version {version} is newer than this "
                f"twinsim reads ({_FORMAT_VERSION}); upgrade twinsim or refit the model.")
        mq = int(ds.attrs["max_quantiles"])
        return dict(
            names=tuple(str(v) for v in ds["column"].values),
            categorical=ds["categorical"].values.astype(bool),
            levels=tuple(tuple(lv) for lv in json.loads(ds.attrs["levels"])),
            ordered=ds["ordered"].values.astype(bool),
            reference=ds["reference"].values, observed_mean=ds["observed_mean"].values,
            missing_index=ds["missing_index"].values,
            copula_names=tuple(str(v) for v in ds["copula_column"].values),
            knot_prob=ds["knot_prob"].values, knot_value=ds["knot_value"].values,
            n_knots=ds["n_knots"].values, discrete=ds["discrete"].values.astype(bool),
            corr=ds["corr"].values, n_rows=int(ds.attrs["n_rows"]),
            missing=str(ds.attrs["missing"]), max_quantiles=None if mq == 0 else mq,
        )
    except ModelError:
        raise
    except (KeyError, ValueError, TypeError) as err:
        raise ModelError(
            f"covariate model dataset is incomplete or corrupt ({type(err).__name__}: {err}); "
            "refit with CovariateModel.fit and save it again.") from err
