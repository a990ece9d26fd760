"""How many threads the kernels use, and what the build can do.

The default is what the OpenMP runtime offers this thread
(``omp_get_max_threads``): ``OMP_NUM_THREADS`` when set, else every core this
process may run on, and lowered by ``threadpoolctl.threadpool_limits`` or inside
a caller's own parallel region, so bpcore never oversubscribes the cores
behind the caller's back.  :func:`set_num_threads` overrides it for every
network that was not given its own ``num_threads``.
"""
from __future__ import annotations

import os
import platform

import numpy as np

from . import _dispatch
from ._dispatch import kernels as _kernels
from ._checks import MAX_THREADS, check_num_threads  # noqa: F401 (re-exported)

_num_threads: int | None = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads used by networks created without ``num_threads``."""
    return _num_threads if _num_threads is not None else _kernels.max_threads()


def set_num_threads(n: int | None) -> None:
    """Set the default thread count, 1..MAX_THREADS (``None`` restores the OpenMP runtime's)."""
    global _num_threads
    _num_threads = check_num_threads(n, "n")


def build_info() -> dict:
    """How bpcore was built and how it runs here.

    Keys: ``version``, ``openmp`` (bool), ``openmp_version`` (the ``_OPENMP``
    date, 0 without OpenMP), ``openmp_reason`` (what the build's probe found),
    ``compile_args``, ``compiler``, ``kernels`` (the instruction-set variant in
    use), ``kernels_available``, ``isa`` (what that variant was compiled for),
    ``l2_bytes`` (the per-core L2 the products' blocking is sized for: what the
    system reports, or 1 MiB), ``num_threads`` (the default in use),
    ``cores``, ``numpy``, ``python``, ``machine``.
    """
    from . import __version__

    info = {"version": __version__}
    info.update(_kernels.compiled_info())
    info.update(
        kernels=_dispatch.name,
        kernels_available=_dispatch.available(),
        num_threads=get_num_threads() if info["openmp"] else 1,
        cores=_cores(),
        numpy=np.__version__,
        python=platform.python_version(),
        machine=platform.machine(),
    )
    return info
