"""Joint model of CD4 and survival on ACTG 175 (zidovudine arm) and its posterior predictive checks.

    python examples/actg175_joint_ppc.py --out figures/        # full size (about two minutes)
    python examples/actg175_joint_ppc.py --small               # smoke size (the test suite runs this)

What it shows:
1. the CD4 counts at weeks 0, 20 and 96 in long format, keeping the values measured while
   the patient is at risk (the joint model describes the biomarker up to the event);
2. a NUTS fit of the joint model (sqrt CD4 trajectory + Weibull PH survival sharing the
   patients' random intercept and slope);
3. synthetic cohorts of the data's size (covariates resampled, event times from the model,
   censoring from the reverse Kaplan-Meier of the data) against the data:
   `joint_km.png` (predictive Kaplan-Meier band vs the observed Kaplan-Meier and its 95%
   band) and `joint_cd4.png` (CD4 at weeks 0/20/96 among patients at risk, synthetic vs
   observed; at week 96 also every observed value, including those measured after the event).

Event convention: `cens` in ACTG 175 and `event` in twinsim are 1 = event observed.
"""

import argparse
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lifelines import KaplanMeierFitter  # noqa: E402

import twinsim  # noqa: E402, F401  (float64)
from twinsim.analysis import km_on_grid  # noqa: E402
from twinsim.data import builtin_frame  # noqa: E402
from twinsim.errors import ConvergenceWarning  # noqa: E402
from twinsim.models.joint import biomarker_long, censoring_sampler, fit_joint, joint_predictive  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="actg175_joint_ppc", help="folder for the two PNG figures")
parser.add_argument("--small", action="store_true", help="smoke size: one short chain")
parser.add_argument("--seed", type=int, default=175)
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
key = jax.random.key(args.seed)  # the one integer seed becomes a key here
k_fit, k_pp = jax.random.split(key)

# 1. data: arm 0 (zidovudine), CD4 at weeks 0/20/96 (days 0/140/672)
frame = builtin_frame("actg175")
arm = frame[frame["arms"] == 0].reset_index(drop=True)
covariates = ["age", "wtkg", "karnof", "symptom"]
visits = np.array([0.0, 140.0, 672.0])
cd4 = arm[["cd40", "cd420", "cd496"]].to_numpy(float)
time, event = arm["days"].to_numpy(float), arm["cens"].to_numpy()
bm_patient, bm_time, bm_value = biomarker_long(cd4, visits, time=time)

# 2. fit
size = dict(chains=1, warmup=100, draws=100) if args.small else dict(chains=2, warmup=1000, draws=1000)
with warnings.catch_warnings():
    if args.small:
        warnings.simplefilter("ignore", ConvergenceWarning)  # 100 draws are too few to converge
    fit = fit_joint(time, event, arm[covariates], bm_patient, bm_time, bm_value, rng_key=k_fit, **size)
print(f"NUTS: {fit.seconds:.1f} s, {fit.divergences} divergences")
print(fit.diagnostics.round(3).to_string(index=False))

# 3. posterior predictive cohorts
pp = joint_predictive(k_pp, fit, fit.standardise(arm[covariates]), visits,
                      n_draws=50 if args.small else 400, censoring=censoring_sampler(time, event))

grid = np.linspace(0.0, time.max(), 120)
km_rep = np.asarray(jax.vmap(lambda t, e: km_on_grid(t, e, jnp.asarray(grid)))(
    jnp.asarray(pp["time"]), jnp.asarray(pp["event"])))
kmf = KaplanMeierFitter().fit(time, event, label="observed (95% CI)")
fig, ax = plt.subplots(figsize=(6.5, 4.2))
ax.fill_between(grid, *np.quantile(km_rep, [0.05, 0.95], axis=0), step="post", color="tab:orange",
                alpha=0.35, label="synthetic cohorts, 90% band")
ax.step(grid, np.median(km_rep, axis=0), where="post", color="tab:orange", label="synthetic, median")
kmf.plot_survival_function(ax=ax, color="black", ci_alpha=0.15)
ax.set(xlabel="days since randomisation", ylabel="event-free probability", ylim=(0.4, 1.01),
       title=f"ACTG 175, zidovudine arm (n={len(arm)}): predictive Kaplan-Meier")
ax.legend(loc="lower left")
fig.tight_layout()
fig.savefig(out / "joint_km.png", dpi=120)
plt.close(fig)

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
for j, (ax, week) in enumerate(zip(axes, (0, 20, 96))):
    synthetic = pp["bm_value"][..., j][pp["at_risk"][..., j]]
    observed = cd4[(time >= visits[j]) & np.isfinite(cd4[:, j]), j]
    for values, label, style in ((synthetic, "synthetic, at risk", "-"),
                                 (observed, f"observed, at risk (n={observed.size})", "--")):
        v = np.sort(values)
        ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", ls=style, label=label)
    if week == 96:
        every = np.sort(cd4[np.isfinite(cd4[:, j]), j])
        ax.step(every, np.arange(1, every.size + 1) / every.size, where="post", ls=":", color="grey",
                label=f"observed, all (incl. after event, n={every.size})")
    q_syn, q_obs = np.quantile(synthetic, 0.5), np.quantile(observed, 0.5)
    print(f"week {week}: median CD4 synthetic {q_syn:.0f}, observed {q_obs:.0f}")
    ax.set(xlabel="CD4 (cells/mm$^3$)", title=f"week {week}", xlim=(0, 900))
    ax.legend(loc="lower right", fontsize=8)
axes[0].set_ylabel("cumulative proportion")
fig.suptitle("CD4 among patients in follow-up: synthetic (joint model) vs observed")
fig.tight_layout()
fig.savefig(out / "joint_cd4.png", dpi=120)
plt.close(fig)
print(f"figures written to {out.resolve()}")
