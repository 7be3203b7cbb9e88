"""The covariate generator: synthetic baseline covariates that keep the data's marginals
and dependence.

:class:`CovariateModel` is a Gaussian copula with empirical marginals for mixed data:
numeric columns (integer-valued ones drawn from their observed values in their observed
proportions, continuous ones interpolated between order statistics, hence bounded by the
observed range), categorical columns (pandas ``Categorical``; drawn in their observed
proportions) and missing values (policy ``missing="model"``: a binary "is missing"
indicator per column with NaN joins the copula, so the missingness rate and its
dependence on the other covariates are reproduced).  The dependence is the *latent*
normal correlation that reproduces each pair's normal-score correlation given the two
marginals (a polychoric/polyserial-type correction, so binary and categorical columns keep
their dependence instead of having it attenuated by the discretisation).  It is a point
estimate (no parameter uncertainty).  See ``docs/models-covariates.md``.

:func:`sample_raw` is the pure-JAX generator (fixed shapes, jit/vmap safe) returning raw
rows (values, categorical codes, NaN where missing); :func:`twinsim.models.encoding.encode`
turns raw rows into the outcome model's design matrix.

:class:`CovariateCopula` and :func:`copula_sample` are the earlier numeric-only generator
(normal-score correlation without the latent correction), kept unchanged for the code and
the saved posteriors that use them.

No survival data are touched here (so no event convention applies).  This module logs
(logger ``twinsim.models.covariates``); it never prints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ModelError
from .dependence import _latent_correlation, _nearest_correlation, _normal_scores
from .encoding import (DesignSpec, categorical_knots, dataset_to_fields, design_spec, encode,
                       encode_numpy, frame_to_raw, model_to_dataset, numeric_knots, pad_knots,
                       raw_to_frame, read_columns)

__all__ = [
    "CovariateModel",
    "CovariateArrays",
    "sample_raw",
    "encode",
    "CovariateCopula",
    "copula_sample",
]

logger = logging.getLogger("twinsim.models.covariates")


@dataclass(frozen=True)
class CovariateCopula:
    """Gaussian copula with empirical marginals for baseline covariates.

    Attributes
    ----------
    names : tuple of str (p,)
    quantiles : ndarray (p, Q)
        Sorted historical values of each column (Q = number of historical patients).
    discrete : ndarray (p,) bool
        Columns holding only integers; they are sampled from observed values only.
    corr : ndarray (p, p)
        Correlation of the columns' normal scores (made positive definite).
    """

    names: tuple[str, ...]
    quantiles: np.ndarray
    discrete: np.ndarray
    corr: np.ndarray

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> "CovariateCopula":
        """Fit to a numeric DataFrame without missing values (one column a covariate)."""
        names = tuple(str(c) for c in frame.columns)
        values = frame.to_numpy(dtype=float)
        n, p = values.shape
        if p == 0:
            return cls(names, np.zeros((0, max(n, 1))), np.zeros(0, bool), np.zeros((0, 0)))
        quantiles = np.sort(values, axis=0).T.copy()
        discrete = np.all(values == np.round(values), axis=0)
        scores = np.column_stack([_normal_scores(values[:, j]) for j in range(p)])
        constant = np.ptp(values, axis=0) == 0
        corr = np.eye(p)
        if p > 1:
            keep = ~constant
            if keep.sum() > 1:
                corr[np.ix_(keep, keep)] = np.corrcoef(scores[:, keep], rowvar=False)
            corr = _nearest_correlation(corr)
        return cls(names, quantiles, discrete, corr)

    @property
    def chol(self) -> np.ndarray:
        """Cholesky factor of :attr:`corr`."""
        if len(self.names) == 0:
            return np.zeros((0, 0))
        return np.linalg.cholesky(self.corr)

    def sample(self, rng_key, n: int) -> pd.DataFrame:
        """Draw ``n`` synthetic covariate rows as a DataFrame (original units)."""
        draws = copula_sample(
            rng_key, jnp.asarray(self.quantiles), jnp.asarray(self.discrete),
            jnp.asarray(self.chol), n,
        )
        return pd.DataFrame(np.asarray(draws), columns=list(self.names))


def copula_sample(key, quantiles, discrete, chol, n: int):
    """Pure JAX draw of ``n`` covariate rows from a Gaussian copula (see the class).

    Parameters
    ----------
    key : jax.random key
    quantiles : array (p, Q), sorted per row
    discrete : array (p,) bool
    chol : array (p, p), Cholesky factor of the normal-score correlation
    n : int (static)

    Returns
    -------
    array (n, p) in the columns' original units.
    """
    p, q = quantiles.shape
    if p == 0:
        return jnp.zeros((n, 0), dtype=quantiles.dtype)
    z = jax.random.normal(key, (n, p), dtype=quantiles.dtype) @ chol.T
    u = jax.scipy.stats.norm.cdf(z)
    # discrete: inverse empirical CDF (observed values in their observed proportions)
    idx_d = jnp.clip(jnp.floor(u * q).astype(jnp.int32), 0, q - 1)
    # continuous: interpolate between order statistics at plotting positions (i + 0.5) / q
    pos = jnp.clip(u * q - 0.5, 0.0, q - 1.0)
    lo = jnp.floor(pos).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, q - 1)
    frac = pos - lo
    cols = jnp.arange(p)[None, :]
    v_lo = quantiles[cols, lo]
    v_hi = quantiles[cols, hi]
    continuous = v_lo + frac * (v_hi - v_lo)
    return jnp.where(discrete[None, :], quantiles[cols, idx_d], continuous)


# --------------------------------------------------------------------------- CovariateModel

_MISSING_POLICIES = ("error", "drop", "model")


class CovariateArrays(NamedTuple):
    """Arrays of a :class:`CovariateModel` for the pure-JAX functions (a pytree).

    ``knot_prob``, ``knot_value`` (p_cop, K): each copula column's marginal (padded with
    probability 2 and the last value); ``n_knots`` (p_cop,) int; ``discrete`` (p_cop,)
    bool; ``chol`` (p_cop, p_cop) Cholesky factor of the latent correlation;
    ``missing_index`` (p_raw,) int, the copula column of each raw column's missingness
    indicator (-1 = none); ``design_*`` (d,) the :class:`~twinsim.models.encoding.DesignSpec`.
    """

    knot_prob: jax.Array
    knot_value: jax.Array
    n_knots: jax.Array
    discrete: jax.Array
    chol: jax.Array
    missing_index: jax.Array
    design_source: jax.Array
    design_kind: jax.Array
    design_code: jax.Array
    design_fill: jax.Array


def _marginal(u, prob, value, n_knots, discrete):
    """Quantile function of one copula column at ``u`` (n,)."""
    idx = jnp.searchsorted(prob, u, side="right")  # knots with probability <= u
    # discrete: the value whose cumulative-probability interval holds u (observed
    # proportions exactly); continuous: linear between quantiles at their probabilities,
    # constant beyond the first and the last (bounded by the stored range)
    hi = jnp.clip(idx, 0, n_knots - 1)
    lo = jnp.clip(idx - 1, 0, n_knots - 1)
    gap = prob[hi] - prob[lo]
    frac = jnp.clip(jnp.where(gap > 0, (u - prob[lo]) / jnp.where(gap > 0, gap, 1.0), 0.0), 0.0, 1.0)
    continuous = value[lo] + frac * (value[hi] - value[lo])
    return jnp.where(discrete, value[hi], continuous)


def sample_raw(key, n: int, arrays: CovariateArrays):
    """Pure JAX draw of ``n`` raw covariate rows from a :class:`CovariateModel`.

    Fixed shapes (``n`` static), no Python control flow on values: usable under
    ``jax.jit(sample_raw, static_argnums=1)`` and ``vmap`` over keys.

    Parameters
    ----------
    key : jax.random key
    n : int (static)
        Number of rows.
    arrays : CovariateArrays
        ``model.arrays``.

    Returns
    -------
    array (n, p_raw), float
        Numeric columns in original units, categorical columns as level codes
        ``0..L-1`` (as floats), NaN where the missingness indicator is 1.  Encode with
        :func:`twinsim.models.encoding.encode`, or turn into a DataFrame with
        :meth:`CovariateModel.to_frame`.
    """
    p_cop = arrays.knot_prob.shape[0]
    p_raw = arrays.missing_index.shape[0]
    dtype = arrays.knot_value.dtype
    if p_cop == 0:
        return jnp.zeros((n, p_raw), dtype=dtype)
    z = jax.random.normal(key, (n, p_cop), dtype=dtype) @ arrays.chol.T
    u = jax.scipy.stats.norm.cdf(z)
    x = jax.vmap(_marginal, in_axes=(1, 0, 0, 0, 0), out_axes=1)(
        u, arrays.knot_prob, arrays.knot_value, arrays.n_knots, arrays.discrete)
    mi = arrays.missing_index
    is_missing = (mi >= 0)[None, :] & (x[:, jnp.maximum(mi, 0)] > 0.5)
    return jnp.where(is_missing, jnp.nan, x[:, :p_raw])


_sample_raw_jit = jax.jit(sample_raw, static_argnums=1)
_encode_jit = jax.jit(encode)


@dataclass(frozen=True, eq=False, repr=False)
class CovariateModel:
    """Gaussian copula with empirical marginals for mixed baseline covariates.

    Each *copula column* ``c`` (a historical covariate, or the missingness indicator of
    one) is ``X_c = F_c^{-1}(Phi(Z_c))`` with ``Z ~ N(0, R)`` and ``F_c^{-1}`` the column's
    empirical quantile function.  Build with :meth:`fit`; draw with :meth:`sample` (a
    DataFrame) or :func:`sample_raw` (pure JAX); encode for the outcome model with
    :meth:`design` (NumPy) or :meth:`encode` (JAX), which agree exactly.

    Attributes
    ----------
    names : tuple of str (p_raw,)
        Historical covariate columns, in order.
    categorical : ndarray (p_raw,) bool
    levels : tuple (p_raw,) of tuples
        Level labels of each categorical column in code order (its sorted categories);
        ``()`` for numeric columns.
    ordered : ndarray (p_raw,) bool
        Whether each categorical was ordered (restored by :meth:`sample`).
    reference : ndarray (p_raw,) int64
        Reference level code of each categorical (its most frequent level); -1 numeric.
    observed_mean : ndarray (p_raw,) float64
        Mean of the observed values of each numeric column (NaN for categoricals); it
        replaces NaN in the design matrix.
    missing_index : ndarray (p_raw,) int64
        Copula column of each raw column's missingness indicator, -1 when the column had
        no missing values.
    copula_names : tuple of str (p_cop,)
        ``names`` followed by ``NAME[missing]`` for each indicator.
    knot_prob, knot_value : ndarray (p_cop, K) float64
        Marginals.  Discrete columns: values (levels by decreasing frequency for
        categoricals and indicators 0, 1; ascending for integer columns) and cumulative
        proportions.  Continuous columns: quantiles and their probabilities
        ``(k + 0.5) / Q``.  Padded after ``n_knots`` with probability 2 and the last value.
    n_knots : ndarray (p_cop,) int64
    discrete : ndarray (p_cop,) bool
    corr : ndarray (p_cop, p_cop) float64
        Latent normal correlation ``R`` (positive definite).
    n_rows : int
        Historical rows it was fitted on.
    missing : str
        Missing-value policy of :meth:`fit`.
    max_quantiles : int or None
        Quantiles kept per continuous column (None = every order statistic).
    """

    names: tuple[str, ...]
    categorical: np.ndarray
    levels: tuple[tuple[Any, ...], ...]
    ordered: np.ndarray
    reference: np.ndarray
    observed_mean: np.ndarray
    missing_index: np.ndarray
    copula_names: tuple[str, ...]
    knot_prob: np.ndarray
    knot_value: np.ndarray
    n_knots: np.ndarray
    discrete: np.ndarray
    corr: np.ndarray
    n_rows: int
    missing: str = "error"
    max_quantiles: int | None = None

    def __post_init__(self) -> None:
        def put(name, value):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, name, value)

        put("names", tuple(str(v) for v in self.names))
        put("copula_names", tuple(str(v) for v in self.copula_names))
        put("levels", tuple(tuple(lv) for lv in self.levels))
        for name, dtype in (("categorical", bool), ("ordered", bool), ("reference", np.int64),
                            ("observed_mean", np.float64), ("missing_index", np.int64),
                            ("n_knots", np.int64), ("discrete", bool)):
            put(name, np.array(getattr(self, name), dtype=dtype).reshape(-1))
        for name in ("knot_prob", "knot_value", "corr"):
            put(name, np.array(getattr(self, name), dtype=np.float64, ndmin=2))
        put("n_rows", int(self.n_rows))
        p, q = len(self.names), len(self.copula_names)
        ok = (all(getattr(self, f).shape == (p,) for f in ("categorical", "ordered", "reference",
                                                           "observed_mean", "missing_index"))
              and len(self.levels) == p and self.copula_names[:p] == self.names
              and q == p + int((self.missing_index >= 0).sum())
              and self.knot_prob.shape == self.knot_value.shape and self.knot_prob.shape[0] == q
              and self.n_knots.shape == self.discrete.shape == (q,) and self.corr.shape == (q, q)
              and self.missing in _MISSING_POLICIES)
        if not ok:
            raise ModelError(
                f"CovariateModel: inconsistent fields for {p} columns {self.names} and {q} "
                f"copula columns (corr {self.corr.shape}, knots {self.knot_prob.shape}, "
                f"missing={self.missing!r}). Build it with CovariateModel.fit or "
                "CovariateModel.from_dataset, not by hand.")

    def __repr__(self) -> str:
        kinds = ["cat" if c else "num" for c in self.categorical]
        cols = ", ".join(f"{n}:{k}" for n, k in zip(self.names, kinds))
        return (f"CovariateModel([{cols}], indicators={int((self.missing_index >= 0).sum())}, "
                f"n_rows={self.n_rows}, missing={self.missing!r})")

    # ------------------------------------------------------------------ fit

    @classmethod
    def fit(cls, frame: pd.DataFrame, *, missing: str = "error", max_quantiles: int | None = None,
            field: str = "historical.covariates") -> "CovariateModel":
        """Fit the generator to historical covariates.

        Parameters
        ----------
        frame : DataFrame (n, p_raw)
            One column per covariate: numeric (float, int or bool; NaN = missing) or pandas
            ``Categorical`` (NaN = missing).  Column labels become ``str``.
        missing : {"error", "drop", "model"}
            ``"error"`` and ``"drop"`` refuse missing values (``"drop"``: the caller
            dropped incomplete rows, e.g. ``load_data(..., missing="drop")``);
            ``"model"`` adds a missingness indicator per column with NaN to the copula
            (the column's marginal uses its observed values; correlations use
            pairwise-complete rows).
        max_quantiles : int >= 2, optional
            Keep only this many evenly spaced quantiles (at probabilities
            ``(k + 0.5) / Q``) of each continuous column, and of each integer column with
            more distinct values, instead of every observed value (e.g. to share a
            generator from a federated site).  Categorical proportions stay exact.
        field : str
            Name of the data in error messages.

        Returns
        -------
        CovariateModel

        Raises
        ------
        ModelError
            Non-numeric, non-categorical or infinite columns; missing values under
            ``"error"``/``"drop"``; a column with no observed value; design column names
            that clash (e.g. a level called ``"missing"`` in a column with NaN).

        Warns
        -----
        StatisticalWarning
            A pair of columns with fewer than 10 rows observed together, or a discrete
            column (an indicator) with fewer than 10 rows outside its most common value
            (fewer than 10 missing): their correlation is set to 0; near-perfect
            dependence; a large positive-definite repair.
        """
        if missing not in _MISSING_POLICIES:
            raise ModelError(f"{field}: missing={missing!r} is not a policy; use one of "
                             f"{list(_MISSING_POLICIES)}.")
        if max_quantiles is not None and (isinstance(max_quantiles, bool) or not isinstance(
                max_quantiles, (int, np.integer)) or max_quantiles < 2):
            raise ModelError(f"{field}: max_quantiles={max_quantiles!r}; use an integer >= 2, "
                             "or None to keep every observed value.")
        if not isinstance(frame, pd.DataFrame):
            raise ModelError(f"{field}: need a pandas DataFrame (one column per covariate); got "
                             f"{type(frame).__name__}.")
        labels = [str(c) for c in frame.columns]
        if len(set(labels)) != len(labels):
            raise ModelError(f"{field}: column names must be unique; got {labels}.")
        columns = read_columns(frame, field)
        n = len(frame)
        with_nan = {c[0]: int(np.isnan(c[4]).sum()) for c in columns if np.isnan(c[4]).any()}
        if with_nan and missing != "model":
            how = ("missing='drop' expects the caller to have dropped incomplete rows (e.g. "
                   "load_data(..., missing='drop'))" if missing == "drop" else "missing='error'")
            raise ModelError(
                f"{field}: column(s) {list(with_nan)} hold missing values (NaN count {with_nan}) "
                f"but {how}. Drop or impute those rows, or fit with missing='model' to generate "
                "missing values at the historical rate and with their dependence on the others.")
        empty = [name for name, k in with_nan.items() if k == n]
        if empty:
            raise ModelError(f"{field}: column(s) {empty} have no observed value; leave them out.")

        knots, ranked, cums = [], [], []
        reference, observed_mean = [], []
        for name, is_cat, levels, _, v in columns:
            obs = ~np.isnan(v)
            r = np.full(n, np.nan)
            if is_cat:
                value, prob, pos = categorical_knots(v[obs], len(levels))
                cum, disc = prob, True
                r[obs] = pos[v[obs].astype(np.int64)]
                reference.append(int(value[0]))
                observed_mean.append(np.nan)
            else:
                value, prob, disc, cum = numeric_knots(v[obs], max_quantiles)
                r[obs] = v[obs]
                reference.append(-1)
                observed_mean.append(float(np.mean(v[obs])))
            knots.append((value, prob, disc))
            ranked.append(r)
            cums.append(cum)
        names = tuple(c[0] for c in columns)
        missing_index = np.full(len(columns), -1, dtype=np.int64)
        copula_names, skip = list(names), set()
        for j, (name, *_, v) in enumerate(columns):
            if name in with_nan:
                rate = with_nan[name] / n
                missing_index[j] = len(copula_names)
                skip.add((j, len(copula_names)))
                copula_names.append(f"{name}[missing]")
                knots.append((np.array([0.0, 1.0]), np.array([1.0 - rate, 1.0]), True))
                ranked.append(np.isnan(v).astype(np.float64))
                cums.append(np.array([1.0 - rate, 1.0]))
        corr = _latent_correlation(np.column_stack(ranked) if ranked else np.zeros((n, 0)),
                                   cums, [k[2] for k in knots], skip, tuple(copula_names), field)
        knot_prob, knot_value = pad_knots([k[1] for k in knots], [k[0] for k in knots])
        model = cls(
            names=names, categorical=[c[1] for c in columns], levels=[c[2] for c in columns],
            ordered=[c[3] for c in columns], reference=reference, observed_mean=observed_mean,
            missing_index=missing_index, copula_names=tuple(copula_names), knot_prob=knot_prob,
            knot_value=knot_value, n_knots=[len(k[0]) for k in knots],
            discrete=[k[2] for k in knots], corr=corr, n_rows=n, missing=missing,
            max_quantiles=None if max_quantiles is None else int(max_quantiles),
        )
        dup = sorted({d for d in model.design_names if model.design_names.count(d) > 1})
        if dup:
            raise ModelError(
                f"{field}: design column names {dup} clash (a level named like the missing "
                "dummy, or labels equal as text); rename those levels or columns.")
        logger.info("fitted covariate model on %d rows: %s", n, model)
        return model

    # ------------------------------------------------------------------ derived arrays

    @cached_property
    def chol(self) -> np.ndarray:
        """Cholesky factor of :attr:`corr`, ndarray (p_cop, p_cop)."""
        if self.corr.shape[0] == 0:
            return np.zeros((0, 0))
        return np.linalg.cholesky(self.corr)

    @cached_property
    def design_spec(self) -> DesignSpec:
        """How the design matrix is computed (see :mod:`twinsim.models.encoding`)."""
        return design_spec(self.names, self.categorical, self.levels, self.reference,
                           self.missing_index >= 0, self.observed_mean)

    @property
    def design_names(self) -> tuple[str, ...]:
        """Design column names: ``NAME``, ``NAME[LABEL]`` (non-reference levels),
        ``NAME[missing]``; see :mod:`twinsim.models.encoding`."""
        return self.design_spec.names

    @cached_property
    def arrays(self) -> CovariateArrays:
        """The model as JAX arrays for :func:`sample_raw` and :func:`encode`."""
        spec = self.design_spec
        return CovariateArrays(
            jnp.asarray(self.knot_prob), jnp.asarray(self.knot_value),
            jnp.asarray(self.n_knots, dtype=jnp.int32), jnp.asarray(self.discrete),
            jnp.asarray(self.chol), jnp.asarray(self.missing_index, dtype=jnp.int32),
            jnp.asarray(spec.source, dtype=jnp.int32), jnp.asarray(spec.kind, dtype=jnp.int32),
            jnp.asarray(spec.code), jnp.asarray(spec.fill),
        )

    # ------------------------------------------------------------------ sample and encode

    def sample(self, rng_key, n: int) -> pd.DataFrame:
        """Draw ``n`` synthetic rows as a DataFrame in the historical form.

        Parameters
        ----------
        rng_key : jax.random key
        n : int >= 0

        Returns
        -------
        DataFrame (n, p_raw)
            Numeric columns float64 (NaN where missing), categorical columns
            ``Categorical`` with the historical levels (NaN where missing).
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ModelError(f"CovariateModel.sample: n={n!r}; use an integer >= 0.")
        return self.to_frame(np.asarray(_sample_raw_jit(rng_key, int(n), self.arrays)))

    def to_frame(self, raw) -> pd.DataFrame:
        """Raw rows (n, p_raw) -> DataFrame in the historical form (see :meth:`sample`)."""
        return raw_to_frame(raw, self.names, self.categorical, self.levels, self.ordered)

    def to_raw(self, frame: pd.DataFrame, *, field: str = "covariates") -> np.ndarray:
        """DataFrame in the historical form -> raw rows ndarray (n, p_raw), float64.

        Categorical columns become level codes; a column may hold NaN only if it had
        missing values historically.  Raises :class:`~twinsim.errors.ModelError` naming
        the column for a missing column, an unknown level or an unexpected NaN.
        """
        return frame_to_raw(frame, self.names, self.categorical, self.levels,
                            self.missing_index >= 0, field)

    def design(self, frame: pd.DataFrame, *, field: str = "covariates") -> np.ndarray:
        """Design matrix ndarray (n, d) of covariate rows, in NumPy (columns :attr:`design_names`)."""
        return encode_numpy(self.to_raw(frame, field=field), self.design_spec)

    def encode(self, raw):
        """Design matrix (n, d) of raw rows, in JAX; equal to :meth:`design` on the same rows."""
        return _encode_jit(jnp.asarray(raw), self.arrays)

    # ------------------------------------------------------------------ serialisation

    def to_dataset(self) -> xr.Dataset:
        """The model as an :class:`xarray.Dataset` that NetCDF4 can write (see
        :func:`twinsim.models.encoding.model_to_dataset`); :meth:`from_dataset` restores it
        exactly, also after a NetCDF round trip."""
        return model_to_dataset(self)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "CovariateModel":
        """Rebuild a model from :meth:`to_dataset` (raises :class:`ModelError` if corrupt)."""
        return cls(**dataset_to_fields(ds))
