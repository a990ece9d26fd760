"""Transitional re-export: the checks now live in :mod:`bpcore._checks` (scalar
arguments) and :mod:`bpcore._data` (arrays).  Import from those; this module goes
once no code imports it."""
from ._checks import *  # noqa: F401,F403
from ._checks import MAX_THREADS, _show  # noqa: F401
from ._data import *  # noqa: F401,F403
from ._data import _as_array, _check_real_dtype  # noqa: F401
from ._data import check_finite as _check_finite  # noqa: F401 (its old name)
