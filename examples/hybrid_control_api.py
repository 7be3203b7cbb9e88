"""Use twinsim from a script: fit once, reuse the posterior, and read the results with xarray.

    python examples/hybrid_control_api.py            # full size (a few minutes)
    python examples/hybrid_control_api.py --small    # smoke size (the test suite runs this)

What it shows:
1. load a scenario and override fields from code, as `--set` does on the command line;
2. fit the generative model once and reuse it for two scenario variants;
3. the per-replicate results are an xarray Dataset: type I error is a selection
   (`hazard_ratio=1.0`), not a separate code path;
4. synthetic patients drawn from the posterior predictive, as a DataFrame.
"""

import sys
import warnings
from pathlib import Path

import jax
import pandas as pd

import twinsim
from twinsim.errors import ConvergenceWarning

small = "--small" in sys.argv
scenario_file = Path(__file__).resolve().parents[1] / "scenarios" / "actg175_hybrid_control.yaml"
size = ["replicates=40", "model.inference.chains=1", "model.inference.warmup=80", "model.inference.draws=80"] if small else []

# 1. a variant of the demo without the sweep, and with a smaller hybrid arm
sc = twinsim.load_scenario(scenario_file, overrides=size + ["sweep={}", "designs.hybrid_pooled.real_control=100"])

# 2. fit once (the key derives from the scenario seed, as in `twinsim run`)
with warnings.catch_warnings():
    if small:
        warnings.simplefilter("ignore", ConvergenceWarning)  # 80 draws are too few to converge
    posterior = twinsim.fit_scenario(sc)
print(posterior.diagnostics[["param", "mean", "sd", "r_hat", "ess_bulk"]].round(3).to_string(index=False))

result = twinsim.run_scenario(sc, posterior=posterior)
# ... and reuse it for a variant with a stronger discount of the synthetic patients
variant = twinsim.load_scenario(scenario_file, overrides=size + ["sweep={}", "designs.hybrid_power_prior.a0=0.2"])
result2 = twinsim.run_scenario(variant, posterior=posterior)

# 3. results as xarray: type I error and power are selections of one Dataset
res = result.results
type1 = res["reject"].sel(hazard_ratio=1.0).mean("replicate")
power = res["reject"].sel(hazard_ratio=0.7).mean("replicate")
print("\nType I error by design and drift:\n", type1.to_pandas().round(3))
print("\nPower by design and drift:\n", power.to_pandas().round(3))
a0_02 = result2.results["reject"].sel(design="hybrid_power_prior", hazard_ratio=1.0, drift=1.25).mean("replicate")
print(f"\nPower prior a0=0.2 under drift 1.25: type I error {float(a0_02):.3f}")

# 4. synthetic control patients from the posterior predictive (times in trial months)
cov, t = twinsim.sample_patients(jax.random.key(sc.seed), result.model, 5)
synthetic = pd.DataFrame(jax.device_get(cov), columns=posterior.covariate_names).assign(months=jax.device_get(t))
print("\nFive synthetic control patients:\n", synthetic.round(1).to_string(index=False))
