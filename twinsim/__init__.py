"""twinsim: clinical-trial simulation with synthetic control arms and digital twins.

Importing twinsim switches JAX to 64-bit floats (``jax_enable_x64``): operating
characteristics must be reproducible to the last digit and the log-rank and Cox sums
are checked against lifelines at tight tolerance.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
