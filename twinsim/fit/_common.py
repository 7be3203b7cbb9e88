"""Shared by the modules of :mod:`twinsim.fit`: the one ArviZ import, the logger and
twinsim's version.

ArviZ is imported here and nowhere else in twinsim; the other modules of the
subpackage take ``az`` from this module.
"""

from __future__ import annotations

import logging
import warnings

with warnings.catch_warnings():
    # ArviZ 0.2x announces its 1.x refactor on import; twinsim pins arviz<1 on purpose.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

__all__ = ["az", "logger", "_twinsim_version"]

#: One logger for the whole subpackage, named as the module was before the split.
logger = logging.getLogger("twinsim.fit")


def _twinsim_version() -> str:
    # imported at call time: twinsim/__init__.py may import this module
    from .. import __version__

    return __version__
