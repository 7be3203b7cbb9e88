"""PROCOVA planning on ACTG 175: CD4 at week 20 as the endpoint, digital twins from the
zidovudine arm, the twin's prognostic correlation estimated out of sample.

    python examples/actg175_procova_cd4.py --out procova_cd4/     # full size (about 2 minutes)
    python examples/actg175_procova_cd4.py --small                 # smoke size (the test suite runs this)

Steps (issue 4's planning recipe; Schuler et al. 2022, Borm et al. 2007):
1. The historical controls are ACTG 175's zidovudine arm (532 patients) with CD4 at weeks
   0, 20 and 96 (the joint biomarker + survival model of docs/models-joint.md).
2. Two-fold cross-fitting: the joint model is fitted on one half, and every patient of the
   other half gets a digital twin: the predicted week-20 CD4 from baseline data alone
   (covariates and the week-0 CD4, on which the random effects are conditioned;
   ``twinsim.twins``).  The correlation rho between twin and observed week-20 CD4 over the
   held-out patients is the out-of-sample prognostic correlation.
3. A conservative rho: the lower limit of a one-sided 90% Fisher-z interval.
4. Planning for a difference of ``--delta`` cells/mm^3 at two-sided 0.05 and power 0.8:
   the unadjusted t test needs n per arm (exact noncentral t); PROCOVA needs
   (1 - rho^2) n (Borm); both are checked by simulation with ``twinsim.continuous``
   (a normal outcome with the observed SD and a twin of the conservative rho).

Writes ``procova_cd4.md`` (the table) and ``procova_cd4_twins.png`` (twin vs observed).
``scenarios/actg175_procova_cd4.yaml`` carries the resulting rho into a full
``twinsim run`` report (designs side by side, with the real patients each needs).
Event convention: ``cens`` in ACTG 175 and ``event`` in twinsim are 1 = event observed.
"""

import argparse
import math
import warnings
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import twinsim  # noqa: E402
from twinsim.continuous import (NormalControl, borm_sample_size, prognostic_correlation,  # noqa: E402
                                simulate_continuous, ttest_sample_size)
from twinsim.data import builtin_frame, load_data  # noqa: E402
from twinsim.errors import ConvergenceWarning, StatisticalWarning  # noqa: E402
from twinsim.fit import fit_joint_model  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="procova_cd4", help="folder for the table and the figure")
parser.add_argument("--small", action="store_true", help="smoke size: short chains, few trials")
parser.add_argument("--delta", type=float, default=50.0, help="treatment effect on week-20 CD4 (cells/mm^3)")
parser.add_argument("--seed", type=int, default=20)
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
key = jax.random.key(args.seed)  # the one integer seed becomes a key here
k_split, k_fit, k_sim = jax.random.split(key, 3)

# 1. the historical controls; covariates numeric, CD4 as the joint model's biomarker
COVARIATES = ["age", "wtkg", "karnof", "symptom", "gender", "race"]
arm = builtin_frame("actg175")
arm = arm[arm["arms"] == 0].reset_index(drop=True)
biomarker = {"name": "cd4", "columns": {"cd40": 0, "cd420": 20, "cd496": 96}, "visit_unit": "weeks"}
fold = np.asarray(jax.random.permutation(k_split, len(arm))) % 2  # two halves at random

# 2. cross-fitting: fit on one half, twins for the other
size = dict(chains=1, warmup=100, draws=100) if args.small else dict(chains=2, warmup=1000, draws=1000)
pred = np.full(len(arm), np.nan)
for k in (0, 1):
    train = arm[fold != k].reset_index(drop=True)
    data = load_data(train, duration="days", event="cens", covariates=COVARIATES, biomarker=biomarker)
    with warnings.catch_warnings():
        if args.small:
            warnings.simplefilter("ignore", ConvergenceWarning)  # smoke size: short chains
        post = fit_joint_model(data, rng_key=jax.random.fold_in(k_fit, k), visits=[0.0, 140.0], **size)
    held = arm[fold == k]
    patients = held[COVARIATES].assign(cd4=held["cd40"].to_numpy(float))  # baseline CD4 conditions the twin
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)  # out-of-range notes are in the table's columns
        tw = twinsim.twins(post, patients, milestones=[140.0], horizon=140.0, max_draws=200 if args.small else 1000)
    pred[np.flatnonzero(fold == k)] = tw["cd4_140"].to_numpy()

observed = arm["cd420"].to_numpy(float)
ok = np.isfinite(observed) & np.isfinite(pred)
n_rho = int(ok.sum())
rho, rho_low = prognostic_correlation(pred, observed, level=0.9)  # Fisher z, one-sided 90% lower limit
sigma = float(np.std(observed[ok], ddof=1))

# 4. planning and its check by simulation
d = args.delta / sigma
n_unadj = ttest_sample_size(d, 0.8)
n_procova = math.ceil(borm_sample_size(n_unadj, rho_low))
reps = 500 if args.small else 4000
model = NormalControl(mean=float(np.mean(observed[ok])), sd=sigma, prognostic_correlation=max(rho_low, 0.0))
sim_full = simulate_continuous(jax.random.fold_in(k_sim, 0), model, n_treatment=n_unadj, n_control=n_unadj,
                               mean_difference=args.delta, replicates=reps)
sim_small = simulate_continuous(jax.random.fold_in(k_sim, 1), model, n_treatment=n_procova, n_control=n_procova,
                                mean_difference=args.delta, replicates=reps)
sim_null = simulate_continuous(jax.random.fold_in(k_sim, 2), model, n_treatment=n_procova, n_control=n_procova,
                               mean_difference=0.0, replicates=reps)

rows = [
    ("held-out patients with week-20 CD4", f"{n_rho}"),
    ("out-of-sample rho (twin vs observed week-20 CD4)", f"{rho:.3f}"),
    ("conservative rho (one-sided 90% lower limit, Fisher z)", f"{rho_low:.3f}"),
    ("for comparison: corr(baseline CD4, week-20 CD4), the ANCOVA covariate",
     f"{np.corrcoef(arm['cd40'].to_numpy(float)[ok], observed[ok])[0, 1]:.3f}"),
    ("SD of week-20 CD4 (cells/mm^3)", f"{sigma:.1f}"),
    (f"unadjusted t test: patients per arm for {args.delta:g} cells, power 0.8", f"{n_unadj}"),
    ("PROCOVA (Borm, conservative rho): patients per arm", f"{n_procova}"),
    ("real patients saved per arm", f"{n_unadj - n_procova} ({(n_unadj - n_procova) / n_unadj:.0%})"),
    (f"simulated power: unadjusted, {n_unadj} per arm ({reps} trials)",
     f"{sim_full['unadjusted']['rejection_rate']:.3f} ± {sim_full['unadjusted']['mcse']:.3f}"),
    (f"simulated power: PROCOVA, {n_procova} per arm",
     f"{sim_small['procova']['rejection_rate']:.3f} ± {sim_small['procova']['mcse']:.3f}"),
    (f"simulated power: unadjusted, {n_procova} per arm",
     f"{sim_small['unadjusted']['rejection_rate']:.3f} ± {sim_small['unadjusted']['mcse']:.3f}"),
    (f"simulated type I error: PROCOVA, {n_procova} per arm",
     f"{sim_null['procova']['rejection_rate']:.3f} ± {sim_null['procova']['mcse']:.3f}"),
]
table = "| quantity | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows) + "\n"
(out / "procova_cd4.md").write_text("# PROCOVA planning, ACTG 175 week-20 CD4\n\n" + table, encoding="utf-8")
print(table)  # noqa: T201

fig, ax = plt.subplots(figsize=(5.2, 4.6))
ax.scatter(pred[ok], observed[ok], s=8, alpha=0.5, color="#1f77b4")
lim = [0, float(np.nanpercentile(observed[ok], 99.5))]
ax.plot(lim, lim, color="black", lw=1, ls="--", label="twin = observed")
ax.set_xlabel("digital twin: predicted week-20 CD4 (held-out fold)")
ax.set_ylabel("observed week-20 CD4")
ax.set_title(f"ACTG 175 zidovudine arm, 2-fold cross-fitted twins: rho = {rho:.2f}", fontsize="medium")
ax.legend(frameon=False, loc="upper left")
fig.tight_layout()
fig.savefig(out / "procova_cd4_twins.png", dpi=120)
