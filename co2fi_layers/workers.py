"""How many prefetch processes a data layer starts when param_str does not say."""

from __future__ import annotations

import os

MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cores))
