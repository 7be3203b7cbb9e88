"""Privacy metrics of synthetic patients (twinsim.validate.privacy), against independent references.

References: brute-force distance matrices (scipy.spatial.distance.cdist), hand-computed
identifiability on tiny tables, all-pairs counting for the Mann-Whitney AUC, and closed forms
for i.i.d. continuous data (nearest pooled neighbour equally likely to be any pooled record).
"""

import jax
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from twinsim.errors import DataError
from twinsim.validate._encode import encode_tables
from twinsim.validate.privacy import (
    attribute_inference,
    dcr,
    dcr_comparison,
    identifiability,
    identifiability_weights,
    membership_inference_auc,
    memorising_generator,
    nndr,
    privacy_report,
)


def _population(key, n):
    """n patients from one fixed population: 3 correlated numeric columns and a 3-level stage."""
    k1, k2 = jax.random.split(key)
    z = np.asarray(jax.random.normal(k1, (n, 3)))
    age = 50 + 10 * z[:, 0]
    cd4 = 350 + 100 * (0.6 * z[:, 0] + 0.8 * z[:, 1])
    wt = 75 + 12 * z[:, 2]
    lin = 0.8 * z[:, 1] + 0.6 * np.asarray(jax.random.normal(k2, (n,)))
    stage = np.where(lin < -0.5, "I", np.where(lin < 0.5, "II", "III"))
    return pd.DataFrame({"age": age, "cd4": cd4, "wt": wt, "stage": pd.Categorical(stage)})


def _split3(seed, n=400):
    k = jax.random.key(seed)
    kt, kh, ks = jax.random.split(k, 3)
    return _population(kt, n), _population(kh, n), _population(ks, n)


# ------------------------------------------------------------------ exact references


def test_dcr_and_nndr_match_brute_force_distances():
    train, _, other = _split3(1, n=60)
    other = pd.concat([other, train.iloc[[3, 7]]], ignore_index=True)  # two exact copies
    t, o = encode_tables(train, other)
    d = np.sort(cdist(o, t), axis=1)
    res = dcr(train, other)
    np.testing.assert_allclose(res.values, d[:, 0], rtol=1e-12, atol=1e-12)
    assert res.median == pytest.approx(np.median(d[:, 0]))
    assert res.p05 == pytest.approx(np.percentile(d[:, 0], 5))
    assert res.exact_share == pytest.approx(2 / 62)  # continuous columns: only the two copies
    np.testing.assert_allclose(nndr(train, other).values, d[:, 0] / d[:, 1], rtol=1e-12)
    # a record on two identical training rows singles out neither: ratio 1 by definition
    tt = np.array([[0.0], [0.0], [5.0]])
    np.testing.assert_allclose(nndr(tt, np.array([[0.0], [4.0]])).values, [1.0, 1 / 4])


def test_dcr_comparison_counts_ties_as_half():
    train = np.array([[0.0], [10.0], [20.0]])
    holdout = np.array([[1.0], [12.0], [30.0]])
    # s=0.4: train closer (1); s=11: tie at distance 1 (1/2); s=25: tie (1/2); s=29: holdout closer (0)
    syn = np.array([[0.4], [11.0], [25.0], [29.0]])
    res = dcr_comparison(train, holdout, syn)
    assert res["share"] == pytest.approx((1 + 0.5 + 0.5 + 0) / 4)
    assert res["expected"] == pytest.approx(0.5)
    assert res["se"] == pytest.approx(np.sqrt(0.25 / 4))


def test_identifiability_weights_are_inverse_entropy():
    x = np.array([[0.0, 0.1, 7.0], [0.2, 1.2, 7.0], [1.0, 2.0, 7.0], [0.9, 2.9, 7.0]])
    # rounded columns: {0,0,1,1} -> ln 2; {0,1,2,3} -> ln 4; constant -> entropy 0 -> weight 0
    np.testing.assert_allclose(identifiability_weights(x), [1 / np.log(2), 1 / np.log(4), 0.0])


def test_identifiability_on_hand_computed_examples():
    # 1-D (weights scale all distances alike): train 0, 1, 3 -> r = 1, 1, 2;
    # other 0.4, 10 -> r_hat = 0.4, 0.6, 2.6 -> identified: yes, yes, no -> 2/3
    assert identifiability(np.array([[0.0], [1.0], [3.0]]), np.array([[0.4], [10.0]])) == pytest.approx(2 / 3)
    # 2-D, L = ln 2: train A(0,0) B(0,1) C(1,2) D(1,3); synthetic s1(0.6,0), s2(1,2.5); a constant
    # third column (weight 0) on which the synthetic rows differ.
    # Unweighted: r = 1,1,1,1; r_hat = 0.6, 1.166, 0.5, 0.5 -> A, C, D identified -> 3/4.
    # Weighted (a/L, b/2L): r = 1/(2L) = 0.721 each; r_hat(A) = 0.6/L = 0.866 (no),
    # r_hat(B) = sqrt((0.6/L)^2 + (1/2L)^2) = 1.127 (no), r_hat(C) = r_hat(D) = 0.5/(2L) = 0.361 -> 2/4.
    train = np.array([[0, 0, 0], [0, 1, 0], [1, 2, 0], [1, 3, 0]], dtype=float)
    syn = np.array([[0.6, 0, 5], [1, 2.5, -5]], dtype=float)
    assert identifiability(train, syn) == pytest.approx(0.5)
    assert identifiability(train[:, :2], syn[:, :2], weighted=False) == pytest.approx(0.75)
    # ties do not count (strict inequality): a copy of a duplicated training record is not identified
    dup = np.array([[0.0], [0.0], [5.0]])
    assert identifiability(dup, np.array([[0.0]])) == pytest.approx(0.0)


def test_membership_auc_equals_pair_counting():
    key = jax.random.key(3)
    k1, k2, k3 = jax.random.split(key, 3)
    # integer coordinates make many tied distances, exercising the tie handling
    train = np.round(2 * np.asarray(jax.random.normal(k1, (37, 2))))
    hold = np.round(2 * np.asarray(jax.random.normal(k2, (29, 2))))
    syn = np.round(2 * np.asarray(jax.random.normal(k3, (23, 2))))
    res = membership_inference_auc(train, hold, syn)
    dt, dh = cdist(train, syn).min(axis=1), cdist(hold, syn).min(axis=1)
    st, sh = -dt[:, None], -dh[None, :]
    pairs = (st > sh + 1e-12).mean() + 0.5 * (np.abs(st - sh) <= 1e-12).mean()
    assert res["auc"] == pytest.approx(pairs, abs=1e-12)
    # null SE on tie-free scores equals the textbook sqrt((n1 + n2 + 1) / (12 n1 n2))
    t2 = np.asarray(jax.random.normal(k1, (37, 2)))
    h2 = np.asarray(jax.random.normal(k2, (29, 2)))
    s2 = np.asarray(jax.random.normal(k3, (23, 2)))
    assert membership_inference_auc(t2, h2, s2)["se_null"] == pytest.approx(np.sqrt(67 / (12 * 37 * 29)))


def test_attribute_inference_hand_example():
    syn = pd.DataFrame({"x": [0.0, 10.0], "y": pd.Categorical(["a", "b"]), "v": [1.0, 5.0]})
    train = pd.DataFrame({"x": [0.5, 9.0, 1.0, 11.0], "y": pd.Categorical(["a", "b", "a", "a"]),
                          "v": [1.0, 5.0, 2.0, 5.0]})
    hold = pd.DataFrame({"x": [0.2, 9.5], "y": pd.Categorical(["b", "b"]), "v": [3.0, 5.0]})
    # nearest synthetic on x: train -> a, b, a, b; holdout -> a, b
    cat = attribute_inference(train, hold, syn, "y", ["x"])
    assert cat["kind"] == "categorical"
    assert (cat["train"], cat["holdout"], cat["gap"]) == pytest.approx((0.75, 0.5, 0.25))
    num = attribute_inference(train, hold, syn, "v", ["x"])
    # train errors 0, 0, -1, 0 -> RMSE 0.5; holdout errors -2, 0 -> RMSE sqrt(2)
    assert (num["train"], num["holdout"]) == pytest.approx((0.5, np.sqrt(2)))
    assert num["gap"] == pytest.approx(np.sqrt(2) - 0.5)


# ------------------------------------------------------------------ floor vs memorising


def test_fresh_sample_scores_within_holdout_floor():
    """Synthetic = a fresh sample of the population: every verdict passes, values at their closed forms."""
    train, hold, syn = _split3(11, n=400)
    rep = privacy_report(train, hold, syn, sensitive="stage", known=["age", "cd4"])
    assert (rep["verdict"] != "fail").all(), rep.to_string()
    r = rep.set_index("metric")
    n = 400
    # i.i.d. continuous rows: the nearest of the pooled n - 1 + m records is a holdout one with
    # probability m / (m + n - 1) = 0.5006; binomial SE sqrt(.25/400) = 0.025; 4 SE = 0.10 (the
    # indicators share neighbours, so the true SD is somewhat above the binomial one).
    for col in ("synthetic", "holdout_floor"):
        assert r.loc["identifiability", col] == pytest.approx(n / (2 * n - 1), abs=0.10)
    # closer-to-train share: expected 1/2, SE_split = sqrt(.25 (1/400 + 1/800)) = 0.031; 4 SE = 0.12
    assert r.loc["dcr_closer_to_train_share", "synthetic"] == pytest.approx(0.5, abs=0.12)
    # membership AUC: null SE sqrt(801 / (12 * 400^2)) = 0.020; 4 SE = 0.082
    assert r.loc["membership_inference_auc", "synthetic"] == pytest.approx(0.5, abs=0.082)
    assert r.loc["dcr_exact_match_share", "synthetic"] == 0.0


def test_memorising_generator_is_caught():
    train, hold, _ = _split3(11, n=400)
    mem = memorising_generator(train, 400, rng_key=jax.random.key(5))
    assert len(mem) == 400 and list(mem.columns) == list(train.columns)
    assert mem.merge(train, how="left", indicator=True)["_merge"].eq("both").all()  # all rows are copies
    rep = privacy_report(train, hold, mem, sensitive="stage", known=["age", "cd4"]).set_index("metric")
    for metric in ("dcr_closer_to_train_share", "identifiability", "membership_inference_auc",
                   "dcr_exact_match_share", "dcr_low_tail_share", "nndr_low_tail_share"):
        assert rep.loc[metric, "verdict"] == "fail", rep.to_string()
    assert rep.loc["attribute_inference_gap[stage]", "verdict"] == "fail", rep.to_string()
    # Closed form: a bootstrap of size n copies each training record with probability
    # c = 1 - (1 - 1/n)^n = 0.6326; copied ones have r_hat = 0 < r, uncopied ones r_hat >= r, so
    # identifiability = share copied, binomial SE sqrt(c (1 - c) / n) = 0.024; 4 SE = 0.097.
    c = 1 - (1 - 1 / 400) ** 400
    assert rep.loc["identifiability", "synthetic"] == pytest.approx(c, abs=0.097)
    # every synthetic row is a copy: DCR to train 0 < DCR to holdout -> share exactly 1
    assert rep.loc["dcr_closer_to_train_share", "synthetic"] == 1.0
    # membership AUC: copied members score 0 (top), the rest tie with holdout in distribution:
    # AUC = c + (1 - c) / 2 = 0.816; SE about 0.02 -> 4 SE = 0.08
    assert rep.loc["membership_inference_auc", "synthetic"] == pytest.approx(c + (1 - c) / 2, abs=0.08)


def test_input_errors_name_the_fix():
    train, hold, syn = _split3(2, n=30)
    with pytest.raises(DataError, match="rng_key"):
        privacy_report(train, hold, syn.iloc[:20])
    rep = privacy_report(train, hold, syn.iloc[:20], rng_key=jax.random.key(0))
    assert len(rep) == 8  # 2 info + 6 verdict rows; no attribute row without sensitive/known
    with pytest.raises(DataError, match="also listed"):
        attribute_inference(train, hold, syn, "stage", ["stage", "age"])
    with pytest.raises(DataError, match="DataFrames"):
        dcr(train, syn.to_numpy())
