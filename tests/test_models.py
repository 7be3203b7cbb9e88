"""Generative-model building blocks against closed forms.

- Gaussian copula: the Spearman correlation of a bivariate Gaussian copula with
  correlation r is (6/pi) asin(r/2) (Kruskal 1958); marginals are the data's own.
- PH parametrisation: S(t(e)) = exp(-e) for t(e) the inverse cumulative hazard.
"""

import math

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from twinsim.data import load_data
from twinsim.models import CovariateCopula, event_time_from_exponential, survival, time_factor

N = 20000  # draws; MC SE of a Spearman correlation <= 1/sqrt(N) = 0.007


def _frame(rng, n=1500):
    z = rng.multivariate_normal([0, 0, 0], [[1, 0.6, -0.3], [0.6, 1, 0.0], [-0.3, 0.0, 1]], n)
    return pd.DataFrame({
        "cont": np.exp(z[:, 0]),                       # skewed continuous
        "count": np.round(5 + 2 * z[:, 1]).clip(0),    # integer-valued
        "binary": (z[:, 2] > 0.5).astype(float),       # binary, p ~ 0.31
    })


def test_copula_rank_correlation_matches_closed_form():
    frame = _frame(np.random.default_rng(1))
    cop = CovariateCopula.fit(frame)
    draws = cop.sample(jax.random.key(0), N)
    # continuous pair without ties: Spearman of the draws = (6/pi) asin(r/2) of the fitted r;
    # allow 4 MC SE (4 * 0.007 = 0.028)
    expected = 6 / math.pi * math.asin(cop.corr[0, 1] / 2)
    observed = stats.spearmanr(draws["cont"], draws["count"]).statistic
    assert abs(observed - expected) < 0.03
    # and the fitted dependence is the data's: normal-score correlation of cont/count vs the
    # data's rank correlation (sampling SE of a correlation at n=1500: ~ (1 - 0.6^2)/sqrt(1500) = 0.017)
    data_rho = stats.spearmanr(frame["cont"], frame["count"]).statistic
    assert abs(observed - data_rho) < 4 * 0.02


def test_copula_marginals_stay_valid_and_match_the_data():
    frame = _frame(np.random.default_rng(2))
    draws = CovariateCopula.fit(frame).sample(jax.random.key(1), N)
    # binary and integer columns take observed values only
    assert set(np.unique(draws["binary"])) <= {0.0, 1.0}
    assert set(np.unique(draws["count"])) <= set(np.unique(frame["count"]))
    # bounded: continuous draws stay within the observed range
    assert frame["cont"].min() <= draws["cont"].min() and draws["cont"].max() <= frame["cont"].max()
    # binary proportion: binomial SE sqrt(p(1-p)/N) = 0.0033; allow 4 SE
    p = frame["binary"].mean()
    assert abs(draws["binary"].mean() - p) < 4 * math.sqrt(p * (1 - p) / N)
    # whole marginal of the continuous column: two-sample KS against the data
    assert stats.ks_2samp(draws["cont"], frame["cont"]).pvalue > 1e-3


def test_copula_on_actg175_keeps_binary_proportions():
    data = load_data("builtin:actg175", duration="days", event="cens", filter={"arms": 0},
                     covariates=["age", "karnof", "cd40", "symptom", "gender", "race", "str2"])
    draws = CovariateCopula.fit(data.covariates).sample(jax.random.key(2), N)
    for col in ("symptom", "gender", "race", "str2"):
        p = data.covariates[col].mean()
        assert abs(draws[col].mean() - p) < 4 * math.sqrt(p * (1 - p) / N), col


def test_constant_column_does_not_break_the_copula():
    frame = pd.DataFrame({"a": np.full(50, 0.1), "b": np.arange(50.0)})
    cop = CovariateCopula.fit(frame)
    assert np.all(np.isfinite(cop.corr))
    assert np.all(cop.sample(jax.random.key(0), 10)["a"] == 0.1)


@pytest.mark.parametrize("log_shape", [0.0, math.log(1.7), math.log(0.6)])
def test_event_time_inverts_the_survival_function(log_shape):
    e = np.array([0.01, 0.5, 1.0, 3.0])
    t = np.asarray(event_time_from_exponential(e, math.log(20.0), log_shape, 0.3))
    np.testing.assert_allclose(np.asarray(survival(t, math.log(20.0), log_shape, 0.3)), np.exp(-e), rtol=1e-12)


def test_time_factor():
    assert time_factor("days", "months") == pytest.approx(12 / 365.25)
    assert time_factor("years", "weeks") == pytest.approx(365.25 / 7)
