"""The benchmark configurations (from :mod:`bpcore.bench`) and BLAS thread limits."""
from __future__ import annotations

import contextlib

from bpcore.bench import (ACTIVATION_CONFIGS, CONFIGS, REFERENCE_CONFIGS, SHAPE_CONFIGS, Config,
                          flop_per_sample, get_configs, true_flop_per_sample)

__all__ = ["ACTIVATION_CONFIGS", "CAN_LIMIT_BLAS", "CONFIGS", "REFERENCE_CONFIGS", "SHAPE_CONFIGS",
           "Config", "blas_threads", "flop_per_sample", "get_configs", "true_flop_per_sample"]

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

#: Whether BLAS thread counts can be set (threadpoolctl is installed).
CAN_LIMIT_BLAS = threadpool_limits is not None


def blas_threads(n):
    """A context that limits BLAS to ``n`` threads (``None``: leave it alone)."""
    if n is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")
