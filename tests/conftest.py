"""Shared fixtures.  No global random state: every test builds its own generator."""

import gc
import warnings

import jax
import pytest

import twinsim  # noqa: F401  (enables float64 in JAX before any test touches it)
from twinsim.errors import ConvergenceWarning


@pytest.fixture
def quiet_convergence():
    """Tiny fits in smoke tests do not converge; their warning is expected there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every compiled XLA:CPU program keeps memory mappings alive; one test module can add
    ~20,000 (tests/test_families.py), and the whole suite in one process then ran past the
    kernel's default limit of 65,530 mappings per process (vm.max_map_count), where LLVM
    fails to allocate and the process crashes.  Modules rarely share compiled programs, so
    clearing costs little recompilation.
    """
    yield
    jax.clear_caches()
    gc.collect()
