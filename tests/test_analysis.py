"""Per-trial statistics against lifelines (double programming: an independent implementation).

References: lifelines.statistics.logrank_test (hypergeometric variance with ties),
lifelines.CoxPHFitter (Efron ties, weights_col, robust=False -> inverse-Hessian SE),
lifelines.KaplanMeierFitter (Greenwood, exponential/log(-log) limits).
"""

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from scipy import stats

from twinsim.analysis import decide, kaplan_meier, km_on_grid, kth_smallest
from twinsim.analysis import logrank_cox as _logrank_cox

logrank_cox = jax.jit(_logrank_cox)  # eager dispatch op by op is slow; same function


def _trial(rng, n=200, hr=0.7, ties=False, weighted=False):
    g = rng.integers(0, 2, n)
    t = rng.exponential(1 / np.where(g == 1, hr, 1.0))
    c = rng.exponential(2.0, n)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    if ties:
        time = np.ceil(time * 10) / 10  # about 30 distinct times: many tied events
    w = np.where((g == 0) & (rng.random(n) < 0.5), 0.4, 1.0) if weighted else np.ones(n)
    return time, event, g, w


def _lifelines_cox(time, event, g, w):
    df = pd.DataFrame({"T": time, "E": event, "g": g, "w": w})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines suggests robust=True with weights
        cph = CoxPHFitter().fit(df, "T", "E", weights_col="w", robust=False)
    return cph.params_["g"], cph.standard_errors_["g"]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_logrank_matches_lifelines(seed, ties):
    time, event, g, w = _trial(np.random.default_rng(seed), ties=ties)
    res = logrank_cox(time, event, g, w)
    ref = logrank_test(time[g == 1], time[g == 0], event[g == 1], event[g == 0])
    # identical sums in float64: agreement to rounding error
    assert float(res.z) ** 2 == pytest.approx(ref.test_statistic, rel=1e-10)
    # sign: fewer treatment events than expected under HR 0.7 -> negative Z
    expected1 = float(res.u)
    assert np.sign(float(res.z)) == np.sign(expected1)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_cox_matches_lifelines(ties, weighted):
    time, event, g, w = _trial(np.random.default_rng(11), ties=ties, weighted=weighted)
    res = logrank_cox(time, event, g, w)
    beta, se = _lifelines_cox(time, event, g, w)
    # lifelines stops Newton at |step| < 1e-7-ish (its default precision); ours converges fully
    assert float(res.log_hr) == pytest.approx(beta, abs=1e-6)
    assert float(res.se) == pytest.approx(se, rel=1e-6)
    assert bool(res.valid)


def test_weighted_logrank_is_score_test_of_weighted_cox():
    """Weighted Z is the score test at beta=0: with unit weights and no ties it equals the
    Cox score / sqrt(information) at 0, the textbook identity (Collett 2015, sec. 3.9)."""
    time, event, g, w = _trial(np.random.default_rng(5), weighted=True)
    res = logrank_cox(time, event, g, w)
    # direct O(n^2) computation of U and V from the definition
    u = v = 0.0
    for i in np.flatnonzero(event == 1):
        risk = time >= time[i]
        p1 = np.sum(w[risk] * g[risk]) / np.sum(w[risk])
        u += w[i] * (g[i] - p1)
        v += w[i] * p1 * (1 - p1)
    assert float(res.u) == pytest.approx(u, rel=1e-10)
    assert float(res.v) == pytest.approx(v, rel=1e-10)


def test_padding_with_zero_weight_changes_nothing():
    time, event, g, w = _trial(np.random.default_rng(7))
    res = logrank_cox(time, event, g, w)
    pad = 57
    res2 = logrank_cox(
        np.concatenate([time, np.full(pad, 0.01)]), np.concatenate([event, np.ones(pad, int)]),
        np.concatenate([g, np.ones(pad, int)]), np.concatenate([w, np.zeros(pad)]),
    )
    for a, b in zip(res, res2):
        assert float(a) == pytest.approx(float(b), rel=1e-12, abs=1e-12)


def test_degenerate_trials_are_flagged_not_nan():
    # no events at all: V = 0, nothing to test
    res = logrank_cox(np.ones(10), np.zeros(10), np.arange(10) % 2, np.ones(10))
    assert not bool(res.valid) and float(res.z) == 0.0
    # all events in the control arm: the Cox estimate diverges and is flagged
    time = np.arange(1.0, 21.0)
    g = np.arange(20) % 2
    res = logrank_cox(time, (g == 0).astype(int), g, np.ones(20))
    assert not bool(res.valid) and np.isfinite(float(res.z))


def test_vmap_gives_the_per_trial_answers():
    rng = np.random.default_rng(3)
    trials = [_trial(rng, n=120) for _ in range(4)]
    stacked = [np.stack(a) for a in zip(*trials)]
    batched = jax.vmap(_logrank_cox)(*map(jnp.asarray, stacked))
    for i, tr in enumerate(trials):
        single = logrank_cox(*tr)
        assert float(batched.log_hr[i]) == pytest.approx(float(single.log_hr), rel=1e-12)


def test_decide_closed_form():
    z = np.array([-2.0, -1.7, 1.7, 2.0])
    # two-sided 0.05: |z| > 1.95996; one-sided 0.05 'less': z < -1.64485
    assert decide(z, 0.05, "two-sided").tolist() == [True, False, False, True]
    assert decide(z, 0.05, "less").tolist() == [True, True, False, False]
    assert stats.norm.cdf(-1.959963984540054) == pytest.approx(0.025, rel=1e-12)
    with pytest.raises(ValueError):
        decide(z, 0.05, "greater")


def test_kth_smallest():
    x = np.array([[5.0, 1.0, np.inf, 3.0], [2.0, 2.0, 1.0, 9.0]])
    assert np.asarray(kth_smallest(x, 2)).tolist() == [3.0, 2.0]
    assert np.asarray(kth_smallest(x, 4)).tolist() == [np.inf, 9.0]
    assert np.asarray(kth_smallest(x, 5)).tolist() == [np.inf, np.inf]  # fewer values than k


@pytest.mark.parametrize("ties", [False, True])
def test_kaplan_meier_matches_lifelines(ties):
    time, event, _, _ = _trial(np.random.default_rng(21), n=150, ties=ties)
    km = kaplan_meier(time, event)
    kmf = KaplanMeierFitter().fit(time, event)
    ref = kmf.survival_function_.iloc[:, 0]
    np.testing.assert_allclose(km["survival"].to_numpy(), ref.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(km.index.to_numpy(), ref.index.to_numpy())
    ci = kmf.confidence_interval_
    np.testing.assert_allclose(km["lower"].to_numpy(), ci.iloc[:, 0].to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(km["upper"].to_numpy(), ci.iloc[:, 1].to_numpy(), rtol=1e-9, atol=1e-12)
    grid = np.linspace(0, time.max(), 37)
    on_grid = np.asarray(km_on_grid(time, event, grid))
    np.testing.assert_allclose(on_grid, kmf.survival_function_at_times(grid).to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_tie_free_path_equals_exact_path_without_ties(weighted):
    """The simulator's ties=False path (continuous times) must give the exact path's answer."""
    time, event, g, w = _trial(np.random.default_rng(13), weighted=weighted)
    assert len(np.unique(time)) == len(time)
    exact = logrank_cox(time, event, g, w)
    fast = jax.jit(partial(_logrank_cox, ties=False))(time, event, g, w)
    for a, b in zip(exact, fast):
        assert float(a) == pytest.approx(float(b), rel=1e-12, abs=1e-14)
