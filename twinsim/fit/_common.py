"""Shared by the modules of :mod:`twinsim.fit`: the one ArviZ import, the logger,
twinsim's version and the check of a JAX key.

ArviZ is imported here and nowhere else in twinsim; the other modules of the
subpackage take ``az`` from this module.
"""

from __future__ import annotations

import logging
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ModelError

with warnings.catch_warnings():
    # ArviZ 0.2x announces its 1.x refactor on import; twinsim pins arviz<1 on purpose.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

__all__ = ["az", "logger", "_twinsim_version", "_key_data"]

#: One logger for the whole subpackage, named as the module was before the split.
logger = logging.getLogger("twinsim.fit")


def _twinsim_version() -> str:
    # imported at call time: twinsim/__init__.py may import this module
    from .. import __version__

    return __version__


def _key_data(rng_key) -> list[int]:
    """Raw bits of a JAX key (typed or legacy uint32); ModelError for anything else."""
    fix = "Turn an integer seed into a key once, at the edge: rng_key=jax.random.key(seed)."
    if isinstance(rng_key, (bool, int, np.integer)) or not hasattr(rng_key, "dtype"):
        raise ModelError(
            f"rng_key must be a JAX random key such as jax.random.key(seed); got "
            f"{type(rng_key).__name__} {rng_key!r}. {fix}"
        )
    if jnp.issubdtype(rng_key.dtype, jax.dtypes.prng_key):
        if rng_key.shape != ():
            raise ModelError(
                f"rng_key must be a single key; got a key array of shape {rng_key.shape}. "
                "Pass one key, e.g. keys[0]."
            )
        return np.asarray(jax.random.key_data(rng_key)).ravel().tolist()
    raw = np.asarray(rng_key)
    if raw.dtype != np.uint32 or raw.shape != (2,):
        raise ModelError(
            f"rng_key must be a JAX random key such as jax.random.key(seed); got an array of "
            f"dtype {raw.dtype} and shape {raw.shape}. {fix}"
        )
    return raw.tolist()
