"""Shared fixtures.  No global random state: every test builds its own generator."""

import warnings

import pytest

import twinsim  # noqa: F401  (enables float64 in JAX before any test touches it)
from twinsim.errors import ConvergenceWarning


@pytest.fixture
def quiet_convergence():
    """Tiny fits in smoke tests do not converge; their warning is expected there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
