"""Exceptions and warnings of twinsim.

Input errors (:class:`TwinsimError` and subclasses) carry a one-paragraph message that
names the field, the value received and the fix; the CLI prints that message and exits
with status 2.  Statistical caveats are :class:`TwinsimWarning` subclasses so that users
can filter or escalate them (``warnings.simplefilter("error", TwinsimWarning)``).
"""

from __future__ import annotations

__all__ = [
    "TwinsimError",
    "DataError",
    "ScenarioError",
    "ModelError",
    "PrivacyError",
    "TwinsimWarning",
    "ConvergenceWarning",
    "StatisticalWarning",
]


class TwinsimError(ValueError):
    """Bad input to twinsim: the message says what was wrong and how to fix it."""


class DataError(TwinsimError):
    """Historical data that cannot be used as given (missing column, NaN, bad times...)."""


class ScenarioError(TwinsimError):
    """A scenario file or override that does not validate."""


class ModelError(TwinsimError):
    """A model specification or saved posterior that cannot be used."""


class TwinsimWarning(UserWarning):
    """Base class of twinsim's statistical caveats."""


class ConvergenceWarning(TwinsimWarning):
    """MCMC diagnostics (R-hat, ESS, divergences) suggest the posterior is unreliable."""


class StatisticalWarning(TwinsimWarning):
    """A statistical caveat: few events, extrapolation, an unstable estimate..."""


class PrivacyError(TwinsimError):
    """An export refused because the synthetic patients failed the privacy check."""
