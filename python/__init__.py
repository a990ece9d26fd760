"""bpcore: backpropagation and mini-batch SGD for fully-connected networks.

The hot loops are typed Cython (``bpcore/_kernels.pyx`` in the source tree)
running without the GIL and in parallel with OpenMP; :class:`Network` is the
thin Python layer over them, and :mod:`bpcore.reference` is the same math in
plain NumPy, written like the textbook equations, used as the tests' oracle.

>>> from bpcore import Network
>>> net = Network([784, 30, 10], seed=0)
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("bpcore")
except PackageNotFoundError:  # pragma: no cover - running from an unbuilt tree
    __version__ = "0+unknown"

from ._threads import build_info, get_num_threads, set_num_threads
from .exceptions import ConvergenceWarning, DivergenceError, ResultOverflowError
from .history import History
from .network import Network
from .gradcheck import check_gradients, GradientCheck

__all__ = ["Network", "History", "DivergenceError", "ConvergenceWarning", "ResultOverflowError",
           "build_info", "get_num_threads", "set_num_threads", "__version__", "check_gradients",
           "GradientCheck"]
