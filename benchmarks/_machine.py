"""Facts about the machine a benchmark ran on (shared by the benchmark scripts)."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

import jax


def machine_facts(**extra) -> dict:
    """CPU model, cores, Python/JAX versions, backend and date, plus ``extra`` entries."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count()
    facts = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable": usable,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }
    facts.update(extra)
    facts["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return facts
