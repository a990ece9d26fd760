"""Choose, once at import, the build of the kernels this CPU runs fastest.

On x86-64 the same Cython kernels are compiled three times (see setup.py):
``_kernels`` for any x86-64, ``_kernels_v3`` for AVX2 + FMA, ``_kernels_v4``
for AVX-512.  ``BPCORE_KERNELS=baseline|x86-64-v3|x86-64-v4`` forces one (an
error if this build or CPU lacks it).  Results are bitwise independent of the
thread count with any of them; between them they can differ in the last bits,
since FMA rounds once where the baseline rounds twice.
"""
from __future__ import annotations

import importlib
import os

from . import _kernels as _baseline

#: Variant name -> (module name, minimum CPU level from ``_kernels.cpu_level()``).
VARIANTS = {
    "x86-64-v4": ("_kernels_v4", 4),
    "x86-64-v3": ("_kernels_v3", 3),
    "baseline": ("_kernels", 0),
}


def available() -> list[str]:
    """The variants that were built and that this CPU can run, best first."""
    level = _baseline.cpu_level()
    names = []
    for name, (module, minimum) in VARIANTS.items():
        if level < minimum:
            continue
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ImportError:
            continue
        names.append(name)
    return names


def load(name: str):
    """The kernels module of variant ``name``."""
    if name not in VARIANTS:
        raise ValueError(f"BPCORE_KERNELS must be one of {list(VARIANTS)}, got {name!r}")
    if name not in available():
        raise ImportError(f"the {name!r} kernels are not available here: this build and CPU "
                          f"offer {available()}")
    return importlib.import_module(f"{__package__}.{VARIANTS[name][0]}")


def _choose() -> tuple[str, object]:
    forced = os.environ.get("BPCORE_KERNELS", "").strip()
    name = forced or available()[0]
    return name, load(name)


#: The variant in use and its module.
name, kernels = _choose()
