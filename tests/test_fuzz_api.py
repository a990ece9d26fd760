"""Fuzzed public API: every entry point, called with whatever hypothesis comes up with.

The constructor, ``feedforward``/``evaluate``, ``cost``/``backprop``, ``fit``,
``save``/``load``, the dataset loaders and the command line get arrays of every
NumPy dtype, 0-d to 3-d, with empty dimensions, Fortran-ordered, strided,
reversed, read-only, unaligned or broadcast; NaN, inf, huge (1e30, float32 max,
1e300) and subnormal values; lists, scalars, None; and wrong types or values for
every keyword.  The contract checked:

* a valid call returns the right result: finite, of the network's dtype,
  bitwise equal to the result for the same values passed as a C-contiguous
  array (layout and input dtype do not matter), and -- in float64, for inputs
  of unit scale -- within ``REF_RTOL`` of the reference network built alike;
* an invalid call raises ``TypeError`` (wrong kind) or ``ValueError`` (wrong
  value) whose message names the offending argument, alike in both networks;
* NaN or inf in an input is invalid; finite inputs whose output, cost or
  gradient overflow raise ``ValueError`` naming them instead of returning inf or
  NaN (and only inputs beyond ``HUGE`` can overflow these small networks);
* a missing file raises ``FileNotFoundError``; any other file that is not valid
  raises ``ValueError`` naming it;
* the command line returns 0, 1 or 2 and reports an error on one line.

Any other outcome (another exception type, a crash, a hang, a warning) fails.
Each test takes its number of examples as a share of the profile's
``max_examples``, so ``--hypothesis-profile=long`` runs all of them far longer.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import pickle
import re
import struct
import tempfile
import urllib.error
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import platformdirs
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bpcore
from bpcore import DivergenceError, datasets, reference
from bpcore.cli import main
from conftest import HIDDEN, OUTPUT_PAIRS, make_targets, params_of
from test_gradients import REF_RTOL, assert_close_arrays
from test_training import TRAIN_RTOL

CLASSES = (bpcore.Network, reference.Network)
INITS = ("gaussian", "scaled_gaussian", "xavier", "he")
F32_MAX = float(np.finfo(np.float32).max)

# A warning on the way (an overflowing cast, an invalid value) is a defect too; not
# bpcore.ConvergenceWarning, fit's verdict that random data taught a network nothing
# (tests/test_convergence_warning.py tests when it is given).
pytestmark = [pytest.mark.filterwarnings("error"),
              pytest.mark.filterwarnings("ignore::bpcore.ConvergenceWarning")]

#: The largest input magnitude at which the small networks drawn here cannot overflow,
#: even in float32.  Widths <= 5, depth L <= 3 and |w|, |b| < 6 (draws of standard
#: deviation <= sqrt(2): 6 is beyond 4 sigma) make every layer multiply max|a| by at
#: most 5 * 6 = 30 (plus < 6; a bound that needs every weight extreme and aligned),
#: so with |x|, |y| <= 1e14: |a^L| < 30^3 * 1e14 = 2.7e18, the cost < 5 (2 * 2.7e18)^2
#: = 1.5e38, the output error |delta^L| < 2 * 2 * 2.7e18, and each derivative
#: delta^l a^(l-1) < 30^(L-1) |delta^L| (|x| + 1) = 1e36: all below float32 max
#: (3.4e38).  Overflow is then a bug; beyond HUGE it is allowed, reported as an error.
HUGE = 1e14


def examples(share: float) -> settings:
    """``share`` of the profile's ``max_examples`` (60 by default, 2000 with ``long``)."""
    return settings(max_examples=max(5, round(settings.default.max_examples * share)))


# -- strategies ---------------------------------------------------------------------------

MODERATE = st.floats(-1e3, 1e3)  # subnormals included
TINY = st.sampled_from([5e-324, -2.2e-310, 1e-40, -1e-45])
LARGE = st.sampled_from([1e20, -1e30, 1e30, F32_MAX, -F32_MAX, 1e300, -1.7e308])
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
REGIMES = {
    "unit": st.one_of(st.floats(-1, 1), TINY),
    "moderate": st.one_of(MODERATE, TINY),
    "huge": st.one_of(MODERATE, TINY, LARGE),
    "any": st.one_of(MODERATE, TINY, LARGE, NON_FINITE),
}
ALL_DTYPES = [np.dtype(t) for t in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "longdouble", "complex64", "complex128", "object",
    "U8", "S8", "datetime64[s]", "timedelta64[s]", ">f8")]


def cast(values: np.ndarray, dtype) -> np.ndarray:
    """float64 values as ``dtype``, however lossy (NaN to int, 1e30 to float16 ...)."""
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype.kind in "mM":
            return values.astype(np.int64).astype(dtype)
        return values.astype(dtype)


def _strided(a):
    if a.ndim == 0:
        return a
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _reversed(a):
    if a.ndim == 0:
        return a
    flip = (slice(None, None, -1),) * a.ndim
    return a[flip].copy()[flip]  # the same values, through negative strides


def _read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _unaligned(a):
    """A copy that starts one byte into a bytearray: misaligned for itemsize > 1."""
    if a.dtype.hasobject or a.size == 0:
        return a
    buffer = bytearray(a.nbytes + 1)
    u = np.frombuffer(buffer, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    u[...] = a
    return u


LAYOUTS = {
    "C": lambda a: a,
    "Fortran": np.asfortranarray,
    "strided": _strided,
    "reversed": _reversed,
    "read-only": _read_only,
    "unaligned": _unaligned,
    "broadcast": lambda a: np.broadcast_to(a[:1], a.shape) if a.ndim and len(a) else a,
    "list": lambda a: a.tolist(),
}
JUNK = [None, "abc", b"\x00\x01", {}, {1.0, 2.0}, 3 + 4j, object(), [[1.0, 2.0], [1.0]],
        [1.0, "a"], [None, 1.0]]


def layouts():
    return st.sampled_from(sorted(LAYOUTS)).map(LAYOUTS.get)


@st.composite
def arrays(draw, shapes, regime=None, dtypes=None):
    """float64 values of a shape from ``shapes``, cast to any dtype, in any layout."""
    regime = regime or draw(st.sampled_from(sorted(REGIMES)), label="regime")
    values = draw(hnp.arrays(np.float64, draw(shapes), elements=REGIMES[regime]))
    dtype = draw(dtypes or st.one_of(st.just(np.dtype(np.float64)), st.sampled_from(ALL_DTYPES)))
    return draw(layouts())(cast(values, dtype))


def any_shape():
    return hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


def anything(shapes):
    """Arrays as above (most often), Python numbers, or junk."""
    return st.one_of(arrays(shapes), arrays(shapes), st.floats(), st.integers(),
                     st.sampled_from(JUNK))


def inputs(n_in):
    """X: mostly of a shape X may have, (n, n_in) or (n_in,), else of any 0-3-d shape."""
    return anything(st.one_of(st.tuples(st.integers(1, 4), st.just(n_in)), st.just((n_in,)),
                              any_shape()))


@st.composite
def architectures(draw):
    """Keyword arguments of a valid network: depth 1-3, widths 1-5, any cost pairing."""
    depth = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 5), min_size=depth + 1, max_size=depth + 1))
    output, cost = draw(st.sampled_from(OUTPUT_PAIRS))
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    hidden = draw(st.lists(st.sampled_from(HIDDEN), min_size=depth - 1, max_size=depth - 1))
    return dict(sizes=sizes, activations=hidden + [output], cost=cost,
                init=draw(st.sampled_from(INITS)),
                dtype=draw(st.sampled_from(["float64", "float32"])),
                seed=draw(st.integers(0, 2**32 - 1)),
                num_threads=draw(st.sampled_from([None, 1, 2, 3])))


@st.composite
def targets(draw, arch, n):
    """Y for n examples: valid targets or labels in any dtype and layout (a huge or
    non-finite entry sometimes), or anything."""
    n_out, cost = arch["sizes"][-1], arch["cost"]
    kind = draw(st.sampled_from(["targets", "labels", "anything"]))
    if kind == "anything":
        return draw(anything(st.one_of(st.just((n, n_out)), any_shape())))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "labels":
        values = rng.integers(0, max(n_out, 2), size=n)
        dtype = draw(st.sampled_from(["int8", "uint8", "int64", "uint64", "float64"]))
    else:
        values = make_targets(rng, cost, n, n_out)
        if draw(st.booleans()):
            values[draw(st.integers(0, n - 1)), draw(st.integers(0, n_out - 1))] = draw(
                st.one_of(LARGE, NON_FINITE, TINY))
        dtype = draw(st.sampled_from(["float64", "float32", "float16", "longdouble", "int64",
                                      "bool", "complex128"]))
    return draw(layouts())(cast(values, dtype))


# -- the contract, stated independently of the library -----------------------------------------

def _numbers(value):
    """``value`` as a numeric array, or the exception type its refusal must have."""
    if isinstance(value, (str, bytes)):
        return TypeError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.asarray(value)
    except (ValueError, TypeError):  # ragged
        return ValueError
    return arr if arr.dtype.kind in "biuf" else TypeError


def _finite_as(arr, dtype) -> bool:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(np.isfinite(arr).all() and np.isfinite(arr.astype(dtype)).all())


def x_problem(X, n_in, dtype):
    """The exception type refusing X must have, or None if X is valid."""
    arr = _numbers(X)
    if isinstance(arr, type):
        return arr
    arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != n_in or len(arr) == 0 or not _finite_as(arr, dtype):
        return ValueError
    return None


def label_problem(labels, n, n_out):
    arr = _numbers(labels)
    if isinstance(arr, type):
        return arr
    if arr.ndim != 1:
        return ValueError
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and arr.size
                                           and _finite_as(arr, np.float64)
                                           and (arr == np.round(arr)).all()):
        return TypeError
    if len(arr) != n or (arr.size and (arr.min() < 0 or arr.max() >= max(n_out, 2))):
        return ValueError
    return None


def y_problem(Y, n, arch, single):
    """For Y of n examples (one example given as 1-D X if ``single``)."""
    n_out, cost, dtype = arch["sizes"][-1], arch["cost"], np.dtype(arch["dtype"])
    arr = _numbers(Y)
    if isinstance(arr, type):
        return arr
    if single and arr.ndim < 2:  # the targets (floats) or the label of the one example
        arr = arr.reshape(1, -1) if arr.dtype.kind == "f" else arr.reshape(-1)
    if arr.ndim == 1:
        if arr.dtype.kind not in "iu":
            return TypeError
        return ValueError if n_out < 2 else label_problem(arr, n, n_out)
    if arr.shape != (n, n_out) or not _finite_as(arr, dtype):
        return ValueError
    t = cast(arr, dtype)
    if cost == "cross_entropy" and ((t < 0) | (t > 1)).any():
        return ValueError
    if cost == "log_likelihood" and ((t < 0).any() or (
            np.abs(t.sum(axis=1) - 1) > math.sqrt(np.finfo(dtype).eps)).any()):
        return ValueError
    return None


def rows(X) -> tuple[int, bool]:
    """(number of examples, whether X is one example as 1-D) of a valid X."""
    arr = np.asarray(X)
    return (1, True) if arr.ndim == 1 else (len(arr), False)


def is_huge(*values) -> bool:
    """Whether some entry of these valid numeric inputs has |value| > HUGE."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return any(np.size(v) and np.max(np.abs(np.asarray(v, dtype=np.float64))) > HUGE
                   for v in values)


def unit_scale(X) -> bool:
    """Whether every |x| <= 1.  REF_RTOL (test_gradients) assumes inputs of unit scale:
    beyond it, a saturated unit's sigma'(z) = 1 - a^2, whose rounding error is absolute
    (~eps however small sigma' is), enters dC/dw^1_jk multiplied by |x_k|, so core and
    reference may differ by more than REF_RTOL of the gradient (x = 482 through a tanh
    layer: 2.8e-12 of a gradient of 2.2).  Larger inputs are still checked bitwise
    against their C-contiguous copy, and for finiteness."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(np.max(np.abs(np.asarray(X, dtype=np.float64))) <= 1)


def names(message: str, name: str) -> bool:
    """Whether ``message`` mentions the argument ``name`` as a word (``sizes[1]`` too)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


# -- calling and judging ----------------------------------------------------------------------

def outcome(call, errors=(TypeError, ValueError)):
    """(result, None) or (None, the exception raised); others propagate and fail the test."""
    try:
        return call(), None
    except errors as exc:
        return None, exc


def both(nets, call):
    """``call(net)`` for the compiled and the reference network; they must fail alike.

    Except at the edge of the range: whether a sum of terms near float32 max overflows
    depends on the order of summation, so one may refuse an overflow the other did not
    meet; that is then the outcome (and ``assert_overflow`` checks it)."""
    (got, error), (want, ref_error) = (outcome(lambda: call(net)) for net in nets)
    if (error is None) != (ref_error is None):
        one_sided = error or ref_error
        assert "overflowed" in str(one_sided), (error, ref_error)
        event("overflow in one network only")
        return None, None, one_sided
    assert type(error) is type(ref_error) and str(error) == str(ref_error), (error, ref_error)
    return got, want, error


def assert_refused(error, problems: dict):
    """``error`` has the type one of the problems {argument: exception type} demands, and
    names that argument."""
    assert error is not None, f"accepted despite {problems}"
    event(f"refused: {type(error).__name__}")
    assert any(isinstance(error, kind) and names(str(error), name)
               for name, kind in problems.items()), (
        f"{type(error).__name__}: {error} -- expected one of {problems}")


def assert_overflow(error, name, *values):
    """A valid call fails only by overflowing, on values beyond HUGE, and says so, naming
    ``name`` (or one of several names)."""
    assert isinstance(error, ValueError) and "overflowed" in str(error), error
    event("refused: overflow of finite inputs")
    assert any(names(str(error), n) for n in ([name] if isinstance(name, str) else name)), error
    assert is_huge(*values), f"overflow although every |input| <= {HUGE:g}: {error}"


def canonical(value):
    """The same values as a C-contiguous array (of the same dtype)."""
    return np.ascontiguousarray(np.asarray(value))


def build(arch):
    """The compiled and the reference network of the same arguments."""
    return tuple(cls(**arch) for cls in CLASSES)


def problems_of(**candidates):
    return {name: kind for name, kind in candidates.items() if kind is not None}


# -- constructor ------------------------------------------------------------------------------

#: Junk for each constructor keyword: (value, exception, the name the message must contain).
CONSTRUCTOR_JUNK = {
    "sizes": [([], ValueError, "sizes"), ([3], ValueError, "sizes"), (5, TypeError, "sizes"),
              ("34", TypeError, "sizes"), (b"34", TypeError, "sizes"),
              ({3, 4}, TypeError, "sizes"), ({3: 1, 4: 2}, TypeError, "sizes"),
              (None, TypeError, "sizes"), (np.array([[3, 4]]), TypeError, "sizes"),
              (np.array(3), TypeError, "sizes"), ([3, 0], ValueError, "sizes[1]"),
              ([-3, 2], ValueError, "sizes[0]"), ([3, 2.0], TypeError, "sizes[1]"),
              ([3, True], TypeError, "sizes[1]"), ([3, None], TypeError, "sizes[1]"),
              ([3, "4"], TypeError, "sizes[1]"), ([2**62, 2], ValueError, "sizes"),
              ([3, 2**64], ValueError, "sizes")],
    "activations": [("swish", ValueError, "activations"), (3, TypeError, "activations"),
                    (None, TypeError, "activations"), (["tanh"] * 5, ValueError, "activations"),
                    (np.array(["tanh"]), TypeError, "activations"),
                    (b"sigmoid", TypeError, "activations")],
    "cost": [("hinge", ValueError, "cost"), (None, TypeError, "cost"), (3, TypeError, "cost"),
             (b"quadratic", TypeError, "cost")],
    "dtype": [("float16", ValueError, "dtype"), ("int32", ValueError, "dtype"),
              (np.complex128, ValueError, "dtype"), ("float65", ValueError, "dtype"),
              ("", ValueError, "dtype"), ("object", ValueError, "dtype"),
              (np.longdouble, ValueError, "dtype"), (3.5, TypeError, "dtype"),
              ([1], TypeError, "dtype")],
    "init": [("zeros", ValueError, "init"), ("Gaussian", ValueError, "init"),
             (0, TypeError, "init"), (None, TypeError, "init")],
    "seed": [(-1, ValueError, "seed"), (1.5, TypeError, "seed"), ("a", TypeError, "seed"),
             (True, TypeError, "seed"), (np.float64(1), TypeError, "seed")],
    "num_threads": [(0, ValueError, "num_threads"), (-1, ValueError, "num_threads"),
                    (1025, ValueError, "num_threads"), (10**6, ValueError, "num_threads"),
                    (2**63, ValueError, "num_threads"), (1.5, TypeError, "num_threads"),
                    ("2", TypeError, "num_threads"), (True, TypeError, "num_threads")],
}
VALID_DTYPES = {"float32": "float32", "float64": "float64", np.float32: "float32",
                np.float64: "float64", "f8": "float64", ">f8": "float64", "<f4": "float32",
                float: "float64", None: "float64"}  # None: NumPy's default dtype


@st.composite
def constructor_arguments(draw):
    """(kwargs, problems): each keyword in any valid spelling, or (at most two) junk."""
    kwargs = draw(architectures())
    sizes = kwargs["sizes"]
    kwargs["sizes"] = draw(st.sampled_from([list, tuple, np.array,
                                            lambda s: [np.int64(w) for w in s]]))(sizes)
    kwargs["dtype"] = draw(st.sampled_from(list(VALID_DTYPES)))
    kwargs["seed"] = draw(st.one_of(st.none(), st.integers(0, 2**128),
                                    st.just(np.uint64(2**64 - 1))))
    kwargs["num_threads"] = draw(st.sampled_from([None, 1, 2, 1024]))
    if len(set(kwargs["activations"])) == 1 and draw(st.booleans()):
        kwargs["activations"] = kwargs["activations"][0]  # one name for every layer
    if draw(st.booleans()):  # a cost that may not suit the output activation
        kwargs["cost"] = draw(st.sampled_from(sorted({cost for _, cost in OUTPUT_PAIRS})))
    problems = {}
    for keyword in draw(st.sets(st.sampled_from(sorted(CONSTRUCTOR_JUNK)), max_size=2)):
        kwargs[keyword], kind, name = draw(st.sampled_from(CONSTRUCTOR_JUNK[keyword]))
        problems[name] = kind
    if not problems.keys() & {"sizes", "sizes[0]", "sizes[1]", "activations", "cost"}:
        output = kwargs["activations"] if isinstance(kwargs["activations"], str) \
            else kwargs["activations"][-1]
        if (output, kwargs["cost"]) not in OUTPUT_PAIRS:
            problems["cost"] = ValueError
    return kwargs, problems


@examples(9)
@given(constructor_arguments())
def test_constructor(arguments):
    """Junk in any keyword is refused naming it; otherwise both networks start alike."""
    kwargs, problems = arguments
    core, ref, error = both(CLASSES, lambda cls: cls(**kwargs))
    if problems:
        assert_refused(error, problems)
        return
    assert error is None, error
    event("constructed")
    sizes = tuple(int(s) for s in kwargs["sizes"])
    for net in (core, ref):
        assert net.sizes == sizes and net.n_layers == len(sizes) - 1
        assert net.dtype == np.dtype(VALID_DTYPES[kwargs["dtype"]])  # in native byte order
        assert net.cost_name == kwargs["cost"] and len(net.activations) == len(sizes) - 1
        assert [w.shape for w in net.weights] == list(zip(sizes[1:], sizes[:-1]))
        assert all(p.dtype == net.dtype and np.isfinite(p).all() for p in params_of(net))
    if kwargs["seed"] is not None:
        assert all(np.array_equal(a, b) for a, b in zip(params_of(core), params_of(ref)))


# -- feedforward and evaluate ----------------------------------------------------------------

def _predicted(out: np.ndarray) -> np.ndarray:
    return (out[:, 0] >= 0.5).astype(int) if out.shape[1] == 1 else np.argmax(out, axis=1)


@st.composite
def labels(draw, n, n_out):
    """Valid class labels for n examples in some integer (or integral float) form, or anything."""
    if draw(st.booleans()):
        return draw(anything(st.one_of(st.just((n,)), any_shape())))
    values = draw(hnp.arrays(np.int64, n, elements=st.integers(0, max(n_out, 2) - 1)))
    dtype = draw(st.sampled_from(["int8", "uint16", "int64", "uint64", "float32", "float64"]))
    return draw(layouts())(cast(values.astype(np.float64), dtype))


@examples(12)
@given(architectures(), st.data())
def test_feedforward_and_evaluate(arch, data):
    """Valid X gives a finite a^L independent of X's layout and dtype, equal to the
    reference's; evaluate is the accuracy of its argmax; bad X or labels are refused."""
    nets = build(arch)
    n_in, n_out, dtype = arch["sizes"][0], arch["sizes"][-1], np.dtype(arch["dtype"])
    X = data.draw(inputs(n_in), label="X")
    problem = x_problem(X, n_in, dtype)
    n, single = rows(X) if problem is None else (data.draw(st.integers(0, 4)), False)
    y = data.draw(labels(n, n_out), label="labels")

    out, ref_out, error = both(nets, lambda net: net.feedforward(X))
    accuracy, ref_accuracy, eval_error = both(nets, lambda net: net.evaluate(X, y))
    if problem is not None:
        assert_refused(error, {"X": problem})
        assert_refused(eval_error, problems_of(X=problem, labels=label_problem(y, n, n_out)))
        return
    if error is not None:
        assert_overflow(error, "X", X)
        assert_refused(eval_error, problems_of(X=ValueError, labels=label_problem(y, n, n_out)))
        return
    event("valid X")
    assert out.dtype == dtype and out.shape == ((n_out,) if single else (n, n_out))
    assert np.isfinite(out).all()
    assert np.array_equal(out, nets[0].feedforward(canonical(X)))
    if dtype == np.float64 and unit_scale(X):
        event("compared with the reference")
        assert_close_arrays([out], [ref_out], REF_RTOL, "a^L")
    if (label_error := label_problem(y, n, n_out)) is not None:
        assert_refused(eval_error, {"labels": label_error})
        return
    assert eval_error is None, eval_error
    event("valid labels")
    want = np.asarray(y).astype(np.int64)
    assert accuracy == np.mean(_predicted(out.reshape(n, n_out)) == want)
    assert ref_accuracy == np.mean(_predicted(ref_out.reshape(n, n_out)) == want)


# -- cost and backprop -------------------------------------------------------------------------

@examples(15)
@given(architectures(), st.data())
def test_cost_and_backprop(arch, data):
    """Valid X and Y give a finite cost >= 0 and finite gradients, independent of layout
    and dtype, equal to the reference's; anything else is refused naming X or Y."""
    nets = build(arch)
    sizes, dtype = arch["sizes"], np.dtype(arch["dtype"])
    X = data.draw(inputs(sizes[0]), label="X")
    x_error = x_problem(X, sizes[0], dtype)
    n, single = rows(X) if x_error is None else (data.draw(st.integers(1, 4)), False)
    Y = data.draw(targets(arch, n), label="Y")

    cost, ref_cost, error = both(nets, lambda net: net.cost(X, Y))
    grads, ref_grads, grad_error = both(nets, lambda net: net.backprop(X, Y))
    problems = problems_of(X=x_error) or problems_of(Y=y_problem(Y, n, arch, single))
    if problems:
        assert_refused(error, problems)
        assert_refused(grad_error, problems)
        return
    if error is not None or grad_error is not None:
        for e in (error, grad_error):
            if e is not None:
                assert_overflow(e, "X", X, Y)
                assert names(str(e), "Y")
        return
    event("valid X and Y")
    assert isinstance(cost, float) and math.isfinite(cost) and cost >= 0
    assert cost == nets[0].cost(canonical(X), canonical(Y))
    nabla_b, nabla_w = grads
    assert [g.shape for g in nabla_w] == [w.shape for w in nets[0].weights]
    assert [g.shape for g in nabla_b] == [b.shape for b in nets[0].biases]
    assert all(g.dtype == dtype and np.isfinite(g).all() for g in nabla_b + nabla_w)
    again = nets[0].backprop(canonical(X), canonical(Y))
    assert all(np.array_equal(g, h) for g, h in zip(nabla_b + nabla_w, again[0] + again[1]))
    if dtype == np.float64 and unit_scale(X):
        event("compared with the reference")
        assert abs(cost - ref_cost) <= REF_RTOL * max(1.0, abs(ref_cost)), (cost, ref_cost)
        assert_close_arrays(nabla_w, ref_grads[1], REF_RTOL, "nabla_w")
        assert_close_arrays(nabla_b, ref_grads[0], REF_RTOL, "nabla_b")


# -- huge inputs -----------------------------------------------------------------------------

BOUNDED = {"sigmoid": (0, 1), "softmax": (0, 1), "tanh": (-1, 1)}


@examples(6)
@given(architectures(), st.data())
def test_huge_inputs_saturate_or_are_refused(arch, data):
    """Finite inputs up to 1e300 (float32 max in float32): a^L, the cost and the gradient
    are finite -- a^L within the range of a bounded output -- or the call raises
    ValueError saying it overflowed; never inf or NaN.  In float64 a network of bounded
    activations always gives a result: |z^1| = |W x + b| < 30 * 1e300 (see HUGE) and
    later layers see values in [-1, 1]."""
    nets = build(arch)
    dtype, output = np.dtype(arch["dtype"]), arch["activations"][-1]
    top = 1e300 if dtype == np.float64 else F32_MAX
    n = data.draw(st.integers(1, 4))
    X = data.draw(hnp.arrays(np.float64, (n, arch["sizes"][0]), elements=st.sampled_from(
        [top, -top, 1e30, -1e30, 0.0, 1.0])), label="X")
    Y = make_targets(np.random.default_rng(n), arch["cost"], n, arch["sizes"][-1])
    bounded = all(a in BOUNDED for a in arch["activations"])

    out, ref_out, error = both(nets, lambda net: net.feedforward(X))
    if error is not None:
        assert not (bounded and dtype == np.float64), error
        assert_overflow(error, "X", X)
    else:
        event("huge X: finite a^L")
        assert np.isfinite(out).all() and np.isfinite(ref_out).all()
        low, high = BOUNDED.get(output, (-np.inf, np.inf))
        assert (low <= out).all() and (out <= high).all()
        assert (low <= ref_out).all() and (ref_out <= high).all()
    for call in (lambda net: net.cost(X, Y), lambda net: net.backprop(X, Y)):
        result, _, error = both(nets, call)
        if error is not None:
            assert_overflow(error, "X", X, Y)
            assert names(str(error), "Y")
        else:
            values = [result] if isinstance(result, float) else result[0] + result[1]
            assert all(np.isfinite(v).all() for v in values)


@pytest.mark.parametrize("cls", CLASSES)
def test_overflow_is_refused_not_returned(cls):
    """x = 1e300 through an identity layer: a^L = 1e300 is finite and returned, but
    the cost (1e600 / 2) and the gradient overflow: refused naming X and Y, by fit too,
    before any step; a float32 relu layer overflows a^L itself."""
    net = cls([1, 1], "identity", seed=0)
    net.weights[0][...], net.biases[0][...] = 1.0, 0.0
    X, Y = np.array([[1e300]]), np.zeros((1, 1))
    assert net.feedforward(X)[0, 0] == 1e300
    for call in (net.cost, net.backprop, lambda X, Y: net.fit(X, Y, 1, 1, 0.1)):
        with pytest.raises(ValueError, match=r"overflowed .* float64 for the given X and Y"):
            call(X, Y)
    assert net.weights[0][0, 0] == 1.0 and net.biases[0][0] == 0.0
    with pytest.raises(ValueError, match=r"overflowed .* validation_data"):
        net.fit(np.ones((1, 1)), Y, 1, 1, 0.1, validation_data=(X, Y))
    assert net.weights[0][0, 0] == 1.0  # restored after the epoch

    relu = cls([1, 1], "relu", dtype="float32", seed=0)
    relu.weights[0][...], relu.biases[0][...] = 2.0, 0.0
    big = np.array([[F32_MAX]], dtype=np.float32)
    for call in (relu.feedforward, lambda X: relu.evaluate(X, [0])):
        with pytest.raises(ValueError, match=r"a\^L overflowed .* float32 for the given X"):
            call(big)


@pytest.mark.parametrize("cls", CLASSES)
def test_absurd_thread_counts_are_refused(cls, restore_num_threads):
    """A million OpenMP threads crashed the process (SIGSEGV); 2**31 overflowed a C int."""
    for n in (1025, 10**6, 2**31):
        with pytest.raises(ValueError, match=r"num_threads must be <= 1024"):
            cls([2, 1], num_threads=n)
        with pytest.raises(ValueError, match=r"\bn must be <= 1024"):
            bpcore.set_num_threads(n)
    assert cls([2, 1], num_threads=1024).sizes == (2, 1)


@pytest.mark.parametrize("cls", CLASSES)
def test_batch_size_beyond_the_data_is_one_batch(cls):
    """batch_size >= 2**63 made the compiled fit overflow a C ssize_t."""
    X, Y = np.random.default_rng(0).normal(size=(5, 3)), np.zeros((5, 2))
    nets = [cls([3, 2], seed=0) for _ in range(2)]
    for net, batch_size in zip(nets, (5, 2**70)):
        net.fit(X, Y, 2, batch_size, 0.1, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(params_of(nets[0]), params_of(nets[1])))


def test_cli_error_stays_on_one_line(capsys):
    """An argument holding a line break is quoted in the error with the break escaped."""
    assert main(["info", "\n0\r"]) == 2
    assert capsys.readouterr().err.split("\n")[-2:] == [
        "bpcore: error: unrecognized arguments: \\n0\\r", ""]


def test_cli_reports_running_out_of_memory(capsys):
    """784 x 4e14 float64 weights are 2.5e18 bytes: addressable, but beyond any machine's
    address space, so the allocation fails; the command line reports it on one line."""
    assert main(["train", "--sizes", "784,400000000000000,10", "--epochs", "0"]) == 2
    assert capsys.readouterr().err.startswith("bpcore: error: out of memory: ")


# -- fit ---------------------------------------------------------------------------------------

class StopAt:
    """A callback that stops training after epoch ``at`` and records its calls."""

    def __init__(self, at: int):
        self.at, self.calls = at, []

    def __call__(self, epoch, history):
        self.calls.append((epoch, history.epochs))
        return epoch == self.at


NAN, INF = math.nan, math.inf
#: Each keyword of fit: (valid values, [(junk, exception)]).
FIT_KEYWORDS = {
    "epochs": (st.integers(0, 2), [(-1, ValueError), (1.0, TypeError), ("1", TypeError),
                                   (None, TypeError), (True, TypeError)]),
    "batch_size": (st.one_of(st.integers(1, 8), st.just(2**70)),
                   [(0, ValueError), (-3, ValueError), (2.0, TypeError), ("2", TypeError),
                    (None, TypeError), (np.True_, TypeError)]),
    "lr": (st.one_of(st.floats(0, 0.5), st.just(np.float32(0.25)), st.just(Fraction(1, 10))),
           [(-0.1, ValueError), (NAN, ValueError), (INF, ValueError), ("0.1", TypeError),
            (None, TypeError), (0.1j, TypeError), (10**400, ValueError), (True, TypeError)]),
    "l2": (st.floats(0, 1), [(-1.0, ValueError), (NAN, ValueError), ("0", TypeError),
                             (None, TypeError)]),
    "momentum": (st.floats(0, 0.9), [(1.0, ValueError), (-0.1, ValueError), (1.5, ValueError),
                                     (INF, ValueError), ("0.5", TypeError), (None, TypeError)]),
    "shuffle": (st.sampled_from([True, False, np.True_]),
                [(0, TypeError), (1, TypeError), ("yes", TypeError), (None, TypeError)]),
    "seed": (st.one_of(st.none(), st.integers(0, 2**70)),
             [(-1, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError)]),
    "verbose": (st.booleans(), [("yes", TypeError), (1, TypeError), (None, TypeError)]),
    "callback": (st.one_of(st.none(), st.integers(1, 3)), [(1.5, TypeError), ("f", TypeError)]),
}


@st.composite
def training_data(draw, arch, n):
    """Valid X and Y of n examples: N(0, 1) inputs and targets the cost accepts, in any
    layout, X in a float dtype (rounded to float32 or not)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n, arch["sizes"][0]))
    Y = make_targets(rng, arch["cost"], n, arch["sizes"][-1])
    dtype = draw(st.sampled_from(["float64", "float32", "longdouble"]))
    return draw(layouts())(cast(X, dtype)), draw(layouts())(Y)


@st.composite
def fit_data(draw, arch):
    """(X, Y, problems, tame): training data, valid (N(0, 1), ``tame``) or fuzzed."""
    if draw(st.integers(0, 2)):
        X, Y = draw(training_data(arch, draw(st.integers(1, 8))))
        return X, Y, {}, True
    X = draw(inputs(arch["sizes"][0]), label="fuzzed X")
    if (kind := x_problem(X, arch["sizes"][0], np.dtype(arch["dtype"]))) is not None:
        return X, draw(targets(arch, draw(st.integers(1, 4)))), {"X": kind}, False
    n, single = rows(X)
    Y = draw(targets(arch, n), label="fuzzed Y")
    return X, Y, problems_of(Y=y_problem(Y, n, arch, single)), False


@st.composite
def validation_data(draw, arch):
    """(validation_data, problems, tame): None, a valid pair (N(0, 1)), or one with a
    fuzzed part."""
    kind = draw(st.sampled_from(["none", "none", "valid", "valid", "fuzzed X", "fuzzed Y",
                                 "not a pair"]))
    if kind == "none":
        return None, {}, True
    Xv, Yv = draw(training_data(arch, draw(st.integers(1, 4))))
    if kind == "not a pair":  # (a list of two rows would be a pair)
        return (draw(st.sampled_from([(Xv, Yv, None), [Xv], canonical(Xv)])),
                {"validation_data": TypeError}, True)
    if kind == "fuzzed X":
        Xv = draw(inputs(arch["sizes"][0]), label="fuzzed Xv")
        if (problem := x_problem(Xv, arch["sizes"][0], np.dtype(arch["dtype"]))) is not None:
            return (Xv, Yv), {"validation_data[0]": problem}, False
        kind = "fuzzed Y"  # Yv must match the rows of Xv
    if kind == "fuzzed Y":
        n, single = rows(Xv)
        Yv = draw(targets(arch, n), label="fuzzed Yv")
        problems = problems_of(**{"validation_data[1]": y_problem(Yv, n, arch, single)})
        return (Xv, Yv), problems, False
    return (Xv, Yv), {}, True


def _fit(net, X, Y, kwargs):
    """net.fit with kwargs, where a callback given as an int is a fresh StopAt, which
    must have been called after each epoch with the history so far."""
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("callback"), int):
        kwargs["callback"] = StopAt(kwargs["callback"])
    history = net.fit(X, Y, **kwargs)
    if isinstance(kwargs.get("callback"), StopAt):
        assert kwargs["callback"].calls == [(e, e) for e in range(1, history.epochs + 1)]
    return history


@examples(12)
@given(architectures(), st.data())
def test_fit(arch, data):
    """Junk in any keyword, X, Y or validation_data is refused naming it, before any
    training; valid calls train alike on any layout, and stable runs agree with the
    reference."""
    nets = build(arch)
    X, Y, problems, tame = data.draw(fit_data(arch), label="X, Y")
    kwargs = {}
    junk = data.draw(st.one_of(st.just(set()), st.sets(st.sampled_from(sorted(FIT_KEYWORDS)),
                                                       min_size=1, max_size=2)), label="junk")
    for name, (valid, bad) in FIT_KEYWORDS.items():
        if name in junk:
            kwargs[name], problems[name] = data.draw(st.sampled_from(bad), label=name)
        else:
            kwargs[name] = data.draw(valid, label=name)
    kwargs["validation_data"], more, tame_validation = data.draw(validation_data(arch),
                                                                  label="validation")
    problems.update(more)
    tame = tame and tame_validation

    before = [params_of(net) for net in nets]
    cost_before = nets[1].cost(X, Y) if tame and not problems else None
    (history, error), (ref_history, ref_error) = (
        outcome(lambda net=net: _fit(net, X, Y, kwargs), (TypeError, ValueError, DivergenceError))
        for net in nets)
    if problems:
        assert type(error) is type(ref_error) and str(error) == str(ref_error)
        assert_refused(error, problems)
        for net, params in zip(nets, before):  # refused before any training
            assert all(np.array_equal(a, b) for a, b in zip(params_of(net), params))
        return
    for net in nets:  # trained, or restored after a failed epoch
        assert all(p.dtype == net.dtype and np.isfinite(p).all() for p in params_of(net))
    if error is not None or ref_error is not None:
        # A rate too large diverges (even a 1-1-1-2 identity network at lr = 0.5 on
        # N(0, 1) data); only huge data overflow.  Which network meets it first may
        # depend on rounding, so they need not fail alike.
        for e in (error, ref_error):
            if isinstance(e, ValueError):
                assert_overflow(e, ("X", "validation_data"), X, Y,
                                *(kwargs["validation_data"] or ()))
            elif e is not None:
                event("diverged")
        return
    # TRAIN_RTOL's regime (test_training): a stable run, one that lowered the cost
    compared = (arch["dtype"] == "float64" and tame
                and nets[1].cost(X, Y) <= cost_before * (1 + 1e-12))
    event("trained" + (" (compared with the reference)" if compared else ""))
    epochs = kwargs["epochs"]
    if isinstance(kwargs["callback"], int):
        epochs = min(epochs, kwargs["callback"])
    validated = kwargs["validation_data"] is not None
    for h in (history, ref_history):
        assert h.epochs == len(h.seconds) == epochs
        assert len(h.val_cost) == len(h.val_accuracy) == (epochs if validated else 0)
        assert all(math.isfinite(c) and c >= 0 for c in h.train_cost + h.val_cost)
        assert all(0 <= a <= 1 for a in h.val_accuracy)
    # the same values as C-contiguous arrays of their own dtype: bitwise the same training
    twin, plain = bpcore.Network(**arch), dict(kwargs)
    if validated:
        plain["validation_data"] = tuple(canonical(v) for v in kwargs["validation_data"])
    assert _fit(twin, canonical(X), canonical(Y), plain).train_cost == history.train_cost
    assert all(np.array_equal(a, b) for a, b in zip(params_of(twin), params_of(nets[0])))
    if compared:
        for c, r in zip(history.train_cost + history.val_cost,
                        ref_history.train_cost + ref_history.val_cost):
            assert abs(c - r) <= TRAIN_RTOL * max(1.0, abs(r)), (c, r)
        for a, b in zip(params_of(nets[0]), params_of(nets[1])):
            assert np.max(np.abs(a - b)) <= TRAIN_RTOL * max(1.0, np.max(np.abs(b)))


# -- save and load -----------------------------------------------------------------------------

PATH_JUNK = [None, 3, 1.5, ["model.npz"], object()]
LOAD_THREADS = [(0, ValueError), (1025, ValueError), ("1", TypeError), (1.0, TypeError)]


@st.composite
def corrupted(draw, raw: bytes, members: dict):
    """A damaged model file: bytes cut, changed or inserted, or one of its arrays
    replaced (by anything, or by an array of the same shape), removed or added."""
    kind = draw(st.sampled_from(["truncated", "bytes changed", "bytes inserted", "random bytes",
                                 "array replaced", "array removed", "array added"]))
    event(f"model file: {kind}")
    if kind == "truncated":
        return raw[:draw(st.integers(0, len(raw) - 1))]
    if kind == "bytes changed":
        damaged = bytearray(raw)
        for _ in range(draw(st.integers(1, 8))):
            damaged[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(damaged)
    if kind == "bytes inserted":
        i = draw(st.integers(0, len(raw)))
        return raw[:i] + draw(st.binary(min_size=1, max_size=16)) + raw[i:]
    if kind == "random bytes":
        return draw(st.binary(max_size=300))
    members = dict(members)
    name = draw(st.sampled_from(sorted(members)))
    if kind == "array removed":
        del members[name]
    else:
        if kind == "array added":
            name = draw(st.sampled_from(["w9", "b0", "extra"]))
        shape = members[name].shape if name in members else ()
        members[name] = draw(arrays(st.one_of(st.just(shape), any_shape())))
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


@examples(9)
@given(architectures(), st.data())
def test_save_and_load(arch, data):
    """A saved network loads back bitwise, from a str, Path or bytes path; a bad path or
    num_threads is refused naming it; a damaged file raises ValueError naming it, or
    (when the damage left a valid model) loads exactly what it holds."""
    net = bpcore.Network(**arch)
    with tempfile.TemporaryDirectory() as tmp:
        path = data.draw(st.sampled_from([str, Path, os.fsencode]))(os.path.join(tmp, "m.npz"))
        net.save(path)
        threads, problem = data.draw(st.one_of(st.tuples(st.sampled_from([None, 1, 2]), st.none()),
                                               st.sampled_from(LOAD_THREADS)))
        loaded, error = outcome(lambda: bpcore.Network.load(path, num_threads=threads))
        if problem is not None:
            assert_refused(error, {"num_threads": problem})
        else:
            assert error is None, error
            assert (loaded.sizes, loaded.activations, loaded.cost_name, loaded.dtype) == (
                net.sizes, net.activations, net.cost_name, net.dtype)
            assert all(np.array_equal(a, b) for a, b in zip(params_of(loaded), params_of(net)))

        junk = data.draw(st.sampled_from(PATH_JUNK))
        for call in (net.save, bpcore.Network.load):
            assert_refused(outcome(lambda: call(junk))[1], {"path": TypeError})
        with pytest.raises(FileNotFoundError):
            bpcore.Network.load(os.path.join(tmp, "missing.npz"))
        for unwritable in (tmp, os.path.join(tmp, "no-such-dir", "m.npz")):
            with pytest.raises(OSError):
                net.save(unwritable)
        assert sorted(os.listdir(tmp)) == ["m.npz"]  # no temporary file left behind

        raw = Path(tmp, "m.npz").read_bytes()
        with np.load(os.path.join(tmp, "m.npz")) as archive:
            members = {name: archive[name] for name in archive.files}
        bad = os.path.join(tmp, "bad.npz")
        Path(bad).write_bytes(data.draw(corrupted(raw, members), label="damaged file"))
        loaded, error = outcome(lambda: bpcore.Network.load(bad))
        if error is not None:
            assert type(error) is ValueError and bad in str(error), error
            event("damaged model: refused")
            return
        event("damaged model: still valid")
        with np.load(bad) as archive:
            for l in range(1, loaded.n_layers + 1):
                assert np.array_equal(loaded.weights[l - 1], archive[f"w{l}"])
                assert np.array_equal(loaded.biases[l - 1], archive[f"b{l}"])
        assert np.isfinite(loaded.feedforward(np.zeros(loaded.sizes[0]))).all()


# -- dataset loaders ---------------------------------------------------------------------------

IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: "i2", 0x0C: "i4", 0x0D: "f4", 0x0E: "f8"}
BOOL_JUNK = [("yes", TypeError), (None, TypeError), (1, TypeError), (0.0, TypeError)]


def idx_bytes(code: int, array: np.ndarray) -> bytes:
    """``array`` as an IDX file of type ``code``."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">" + IDX_TYPES[code]).tobytes()


@st.composite
def damaged_idx(draw, raw: bytes):
    """(bytes, verdict): an IDX file, gzipped or not, damaged or not; verdict is
    "intact", "broken" (must be refused) or "maybe" (refused, or read as some array)."""
    damage = draw(st.sampled_from(["none", "none", "magic", "ndim", "truncated", "extra",
                                   "byte"]))
    verdict = {"none": "intact", "byte": "maybe", "ndim": "maybe"}.get(damage, "broken")
    if damage == "magic":
        magic = draw(st.binary(min_size=4, max_size=4).filter(
            lambda m: m[0] or m[1] or m[2] not in IDX_TYPES or m[3] == 0))
        raw = magic + raw[4:]
    elif damage == "ndim":
        ndim = draw(st.sampled_from([0, raw[3] - 1, raw[3] + 1, 65, 255]))
        verdict = "broken" if ndim in (0, 65, 255) else verdict
        raw = raw[:3] + bytes([ndim % 256]) + raw[4:]
    elif damage == "truncated":
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif damage == "extra":
        raw = raw + draw(st.binary(min_size=1, max_size=9))
    elif damage == "byte":
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
    if draw(st.booleans()):
        raw = gzip.compress(raw, mtime=0)
        gz_damage = draw(st.sampled_from(["none", "none", "truncated", "byte"]))
        if gz_damage == "truncated":
            raw, verdict = raw[:draw(st.integers(2, len(raw) - 1))], "broken"
        elif gz_damage == "byte":
            i = draw(st.integers(0, len(raw) - 1))
            raw = raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1:]
            verdict = "maybe" if verdict == "intact" else verdict
    return raw, verdict


def check_read(read, path, verdict, array=None):
    """``read(path)`` per ``verdict``: the array, a ValueError naming path, or either."""
    got, error = outcome(lambda: read(path))
    if error is not None:
        assert verdict != "intact" and type(error) is ValueError, error
        assert str(path) in str(error), error
        return None
    assert verdict != "broken", f"read a broken file as {got!r:.200}"
    if array is not None and verdict == "intact":
        assert got.dtype == array.dtype.newbyteorder("=") and got.shape == array.shape
        assert np.array_equal(got, array, equal_nan=got.dtype.kind == "f")
    return got


@st.composite
def mnist_files(draw, n_max=3):
    """The four files of a tiny MNIST, at most one of them damaged (in its IDX bytes, or
    by a label above 9, mismatched counts, a wrong image shape or type):
    ({file name: bytes}, {split: (images, labels)}, verdict)."""
    names = [name for pair in datasets.MNIST_FILES.values() for name in pair]
    victim = draw(st.sampled_from([None, None, *names]), label="damaged file")
    damage = draw(st.sampled_from(["IDX bytes", "label 10+", "count", "shape", "type"]))
    files, splits, verdict = {}, {}, "intact"
    for split, (images, labels) in datasets.MNIST_FILES.items():
        n = draw(st.integers(0, n_max))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        digits = draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 9)))
        splits[split] = (pixels, digits)
        for name, array in ((images, pixels), (labels, digits)):
            code = 0x08
            if name == victim and damage != "IDX bytes":
                verdict = "broken"
                if damage == "label 10+" or (name == labels and damage in ("shape", "type")):
                    array = np.append(array, np.uint8(draw(st.integers(10, 255))))
                elif damage == "count":
                    array = array[1:] if len(array) else np.append(array, np.uint8(1))
                elif damage == "shape":
                    array = array[:, :27]
                else:
                    array, code = array.astype(np.int16), 0x0B
            raw = idx_bytes(code, array)
            if name == victim and damage == "IDX bytes":
                raw, verdict = draw(damaged_idx(raw))
            elif draw(st.booleans()):
                raw = gzip.compress(raw, mtime=0)
            files[name + draw(st.sampled_from(["", ".gz"]))] = raw
    return files, splits, verdict


def pkl_split_is_valid(images, labels) -> bool:
    """The documented form of a split of mnist.pkl.gz: finite float images (n, 784)
    (finite also in float32), n integer labels 0..9."""
    images, labels = _numbers(images), _numbers(labels)
    if isinstance(images, type) or isinstance(labels, type):
        return False
    return (images.ndim == 2 and images.shape[1] == 784 and images.dtype.kind == "f"
            and _finite_as(images, np.float32) and labels.shape == images.shape[:1]
            and labels.dtype.kind in "iu" and (labels.size == 0 or (
                labels.min() >= 0 and labels.max() <= 9)))


@st.composite
def pickled_mnist(draw):
    """(bytes, splits or None): a gzipped pickle of three (images, labels) splits with at
    most one flaw (a fuzzed array, a wrong structure, damaged bytes); the splits if they
    have the documented form."""
    content = []
    for _ in range(3):
        n = draw(st.integers(0, 2))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        content.append((rng.uniform(size=(n, 784)).astype(draw(st.sampled_from(
            ["float32", "float64"]))), rng.integers(0, 10, size=n)))
    flaw = draw(st.sampled_from(["none", "none", "images", "labels", "2 splits", "list",
                                 "number", "truncated", "not gzip"]))
    i = draw(st.integers(0, 2))
    if flaw == "images":
        content[i] = (draw(anything(st.one_of(st.just((len(content[i][1]), 784)),
                                              any_shape()))), content[i][1])
    elif flaw == "labels":
        content[i] = (content[i][0], draw(st.one_of(
            hnp.arrays(np.int64, len(content[i][1]), elements=st.integers(-1, 11)),
            anything(st.one_of(st.just((len(content[i][1]),)), any_shape())))))
    structure = {"2 splits": tuple(content[:2]), "list": content,
                 "number": draw(st.integers())}.get(flaw, tuple(content))
    raw = gzip.compress(pickle.dumps(structure), mtime=0)
    if flaw == "truncated":
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif flaw == "not gzip":
        raw = draw(st.binary(max_size=64).filter(lambda b: not b.startswith(b"\x1f\x8b")))
    valid = flaw in ("none", "images", "labels") and all(pkl_split_is_valid(*s) for s in content)
    event(f"pickle flaw: {flaw}")
    return raw, (structure if valid else None)


def check_split(X, y, images, labels, flatten, one_hot):
    """One (X, y) pair returned by a loader against the arrays it was read from."""
    n = len(images)
    assert X.dtype == np.float32 and X.shape == ((n, 784) if flatten else (n, 28, 28))
    assert np.array_equal(X.reshape(n, 784), np.asarray(images, np.float32).reshape(n, 784),
                          equal_nan=True)
    if one_hot:
        assert y.dtype == np.float32 and y.shape == (n, 10)
        assert np.array_equal(np.argmax(y, axis=1), labels) and (y.sum(axis=1) == 1).all()
    else:
        assert y.dtype == np.int64 and np.array_equal(y, labels)


@examples(6)
@given(st.data())
def test_dataset_loaders(data):
    """read_idx, load_mnist, load_mnist_pkl and load_mnist_subset: valid files are read
    exactly; damaged ones raise ValueError naming the file; bad keywords are refused."""
    with tempfile.TemporaryDirectory() as tmp:
        # read_idx: any IDX type and shape
        code = data.draw(st.sampled_from(sorted(IDX_TYPES)), label="IDX type")
        array = data.draw(hnp.arrays(np.dtype(IDX_TYPES[code]), hnp.array_shapes(
            min_dims=1, max_dims=3, min_side=0, max_side=5)), label="IDX array")
        raw, verdict = data.draw(damaged_idx(idx_bytes(code, array)), label="IDX file")
        path = Path(tmp, "file.idx")
        path.write_bytes(raw)
        check_read(datasets.read_idx, path, verdict, array)
        event(f"read_idx: {verdict}")
        assert_refused(outcome(lambda: datasets.read_idx(data.draw(st.sampled_from(PATH_JUNK))))[1],
                       {"path": TypeError})

        # load_mnist on a directory of the four files
        files, splits, verdict = data.draw(mnist_files(), label="MNIST files")
        directory = Path(tmp, "mnist")
        directory.mkdir()
        for name, raw in files.items():
            (directory / name).write_bytes(raw)
        options = {}
        problems = {}
        for keyword in ("download", "flatten", "one_hot"):
            if data.draw(st.integers(0, 5), label=f"junk {keyword}") == 0:
                options[keyword], problems[keyword] = data.draw(st.sampled_from(BOOL_JUNK))
            else:
                options[keyword] = data.draw(st.sampled_from([True, False, np.False_]))
        options["download"] = False if "download" not in problems else options["download"]
        got, error = outcome(lambda: datasets.load_mnist(directory, **options))
        if problems:
            assert_refused(error, problems)
        elif error is not None:
            assert verdict != "intact" and type(error) is ValueError, error
            assert str(directory) in str(error), error
            event("load_mnist: refused")
        else:
            assert verdict != "broken", "read a broken MNIST file"
            event(f"load_mnist: read ({verdict})")
            if verdict == "intact":
                for (X, y), (images, labels) in zip(got, splits.values()):
                    check_split(X, y, images / np.float32(255), labels, options["flatten"],
                                options["one_hot"])
        assert_refused(outcome(lambda: datasets.load_mnist(
            data.draw(st.sampled_from([3, b"mnist", ["x"]])), download=False))[1],
            {"path": TypeError})

        # load_mnist_pkl: refuses to unpickle unless allow_pickle is True
        allow, problem = data.draw(st.sampled_from(
            [(True, None)] * 3 + [(False, ValueError), (np.False_, ValueError)] + BOOL_JUNK))
        path = Path(tmp, "mnist.pkl.gz")
        raw, content = data.draw(pickled_mnist(), label="pickle")
        path.write_bytes(raw)
        flatten, one_hot = data.draw(st.booleans()), data.draw(st.booleans())
        got, error = outcome(lambda: datasets.load_mnist_pkl(path, allow_pickle=allow,
                                                             flatten=flatten, one_hot=one_hot))
        if problem is not None:
            assert_refused(error, {"allow_pickle": problem} if problem is TypeError
                           else {str(path): ValueError})
        elif error is not None:
            assert content is None, f"refused a valid file: {error}"
            assert type(error) is ValueError and str(path) in str(error), error
            event("load_mnist_pkl: refused")
        else:
            assert content is not None, "read a file not in the documented form"
            event("load_mnist_pkl: read")
            for (X, y), (images, labels) in zip(got, content):
                check_split(X, y, images, labels, flatten, one_hot)
        with pytest.raises(FileNotFoundError):
            datasets.load_mnist_pkl(Path(tmp, "missing.pkl.gz"), allow_pickle=True)

    # the shipped subset: only its keywords can be wrong
    if data.draw(st.integers(0, 9), label="subset") == 0:
        flatten, problem = data.draw(st.sampled_from([(True, None), (False, None)] + BOOL_JUNK))
        got, error = outcome(lambda: datasets.load_mnist_subset(flatten=flatten))
        if problem is not None:
            assert_refused(error, {"flatten": problem})
        else:
            assert error is None and got[0][0].shape[1:] == ((784,) if flatten else (28, 28))


# -- command line ------------------------------------------------------------------------------

def _offline(url, timeout=None):
    raise urllib.error.URLError(OSError(101, "Network is unreachable"))


def _mnist_dir(directory: Path, n_train: int, n_test: int) -> None:
    directory.mkdir()
    rng = np.random.default_rng(0)
    for (images, labels), n in zip(datasets.MNIST_FILES.values(), (n_train, n_test)):
        (directory / images).write_bytes(idx_bytes(0x08, rng.integers(0, 256, (n, 28, 28),
                                                                      dtype=np.uint8)))
        (directory / labels).write_bytes(idx_bytes(0x08, rng.integers(0, 10, n, dtype=np.uint8)))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """The working directory of the command lines: a tiny MNIST, damaged files, models.
    No network, no $BPCORE_DATA, an empty download cache."""
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(platformdirs, "user_cache_dir", lambda app: str(root / "cache" / app))
        mp.delenv("BPCORE_DATA", raising=False)
        mp.setattr(datasets, "urlopen", _offline)
        mp.chdir(root)
        _mnist_dir(root / "tiny", 30, 12)
        (root / "broken").mkdir()
        for name in datasets.MNIST_FILES["train"] + datasets.MNIST_FILES["test"]:
            (root / "broken" / name).write_bytes(b"\x00\x00\x08\x03garbage")
        bpcore.Network([784, 8, 10], seed=0).save(root / "net.npz")
        bpcore.Network([784, 6, 10], ["relu", "softmax"], "log_likelihood", dtype="float32",
                       seed=1).save(root / "net32.npz")
        bpcore.Network([3, 4, 2], seed=0).save(root / "small.npz")
        (root / "zip.npy").write_bytes((root / "net.npz").read_bytes())  # an .npz in disguise
        (root / "badzip.npy").write_bytes((root / "net.npz").read_bytes()[:300])
        (root / "garbage.npz").write_bytes(b"not a model")
        (root / "file.txt").write_text("text\n")
        yield root


#: Values of the options, (valid ones, invalid ones); most command lines draw valid ones.
DATA = (["tiny", "tiny", "tiny", "subset"],
        ["broken", "nowhere", "file.txt", "mnist", "fashion-mnist"])  # no file, no network
THREADS = (["1", "2"], ["0", "-1", "5000", "x", ""])
COMMANDS = {  # command: (positional argument values, {option: values}, options always given)
    "train": ([], {
        "--sizes": (["784,8,10", "784,10", "784,6,5,10"],
                    ["784,0,10", "3,4", "784,x,10", "", "784,-1,10", "784,400000000000000,10",
                     "784,2000000000000000000000,10"]),
        "--activations": (["sigmoid", "relu,softmax", "tanh,identity"],
                          ["swish", "", "relu,relu,softmax", "sigmoid,sigmoid,sigmoid,sigmoid"]),
        "--cost": (["quadratic", "squared_error"], ["log_likelihood", "cross_entropy", "hinge"]),
        "--dtype": (["float32", "float64"], ["float16"]),
        "--init": (["gaussian", "he"], ["zeros"]),
        "--epochs": (["0", "1", "2"], ["-1", "x", "1.5"]),
        "--batch-size": (["1", "7", "100000", str(10**30)], ["0", "-5", "x"]),
        "--lr": (["0.5", "0", "3", "1e308"], ["-1", "nan", "inf", "x"]),
        "--l2": (["0", "5"], ["-1", "nan"]),
        "--momentum": (["0", "0.9"], ["1", "-0.5", "nan"]),
        "--seed": (["0", "7", str(2**70)], ["-1", "x"]),
        "--validation-split": (["0.2", "0.5"], ["0", "1", "nan", "x", "0.001"]),
        "--early-stopping": (["1", "3"], ["0", "x"]),
        "--threads": THREADS,
        "--save": (["out.npz"], ["no-such-dir/out.npz", "tiny", ""]),
        "--plot": (["curves.png"], ["no-such-dir/curves.png"]),
        "--data": DATA,
    }, ["--epochs"]),
    "evaluate": ([["net.npz", "net32.npz", "small.npz", "garbage.npz", "missing.npz", "tiny"]],
                 {"--data": DATA, "--threads": THREADS}, []),
    "predict": ([["net.npz", "net32.npz", "small.npz", "garbage.npz", "missing.npz"],
                 ["input.npy", "input.npy", "input.csv", "input.csv", "net.npz", "zip.npy",
                  "badzip.npy", "missing.npy", "file.txt", "tiny"]],
                {"--out": (["out.npy", "out.csv", "out.txt"], ["no-such-dir/out.npy", "tiny"]),
                 "--threads": THREADS}, []),
    "info": ([], {}, []),
    "gradcheck": ([], {"--sizes": (["4,5,3", "2,2", "3,1"], ["0,1", "x", "4"]),
                       "--activations": (["tanh", "tanh,softmax", "relu,sigmoid"], ["swish"]),
                       "--cost": (["quadratic", "log_likelihood", "cross_entropy"], ["x"]),
                       "--dtype": (["float32", "float64"], ["int8"]),
                       "--examples": (["1", "5"], ["0", "-1", "x"]),
                       "--seed": (["0", "3"], ["-2"])}, []),
    "bench": ([], {"--configs": (["N1-f64", "N1-f32,M-f32", "N2-f32"], ["bogus", ""]),
                   "--threads": (["1", "1,2"], ["0", "x", "2000"]),
                   "--samples": (["1", "16"], ["0", "-3", "x"]),
                   "--plot": (["bench.png"], ["no-such-dir/bench.png"])}, ["--samples"]),
}
FLAGS = {"train": ["--quiet"], "evaluate": [], "predict": ["--proba"], "info": ["--json"],
         "gradcheck": [], "bench": []}
#: What main lets propagate with --debug (and otherwise reports as an error).
CLI_ERRORS = (ValueError, TypeError, OSError, ImportError, DivergenceError, MemoryError)


@st.composite
def command_lines(draw):
    """argv for bpcore.cli.main: a command, its positional arguments, options with (mostly)
    valid values, flags, now and then --debug, a stray token or a help request."""
    command = draw(st.sampled_from(sorted(COMMANDS)))
    positional, options, always = COMMANDS[command]
    argv = [command] + [draw(st.sampled_from(values)) for values in positional]
    chosen = draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=6)) \
        if options else []
    for option in chosen + [o for o in always if o not in chosen]:
        valid, invalid = options[option]
        argv += [option, draw(st.sampled_from(valid if draw(st.integers(0, 5)) else invalid))]
    argv += draw(st.lists(st.sampled_from(FLAGS[command] + ["--debug"]), unique=True,
                          max_size=1))
    if draw(st.integers(0, 9)) == 0:
        stray = draw(st.one_of(st.sampled_from(["--bogus", "-x", "--", "-h", "--help"]),
                               st.text(max_size=8)))
        argv.insert(draw(st.integers(0, len(argv))), stray)
    return argv


def _write_inputs(data, root: Path) -> None:
    """input.npy and input.csv for predict: any array, or text."""
    X = data.draw(arrays(st.one_of(st.tuples(st.integers(0, 2), st.just(784)), st.just((784,)),
                                   st.just((1, 28, 28)), any_shape())), label="input.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.save(root / "input.npy", X, allow_pickle=True)
    if data.draw(st.booleans(), label="numbers in input.csv"):
        values = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(
            size=(data.draw(st.integers(0, 2)), data.draw(st.sampled_from([784, 783]))))
        if values.size and data.draw(st.booleans()):
            values.flat[0] = data.draw(st.one_of(LARGE, NON_FINITE))
        text = "\n".join(",".join(map(repr, row)) for row in values.tolist())
    else:
        text = data.draw(st.text(max_size=40), label="text in input.csv")
    (root / "input.csv").write_text(text, encoding="utf-8", errors="replace")


@examples(6)
@given(command_lines(), st.data())
def test_command_line(sandbox, argv, data):
    """main(argv) returns 0, 1 (diverged, gradient check failed) or 2 (an error reported
    on one 'bpcore: error:' line); only --help exits, only --debug lets an error through."""
    if argv[0] == "predict":
        _write_inputs(data, sandbox)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code, error = outcome(lambda: main(argv), CLI_ERRORS + (SystemExit,))
    if isinstance(error, SystemExit):
        assert error.code == 0 and {"-h", "--help"} & set(argv), (argv, error)
        event("cli: help")
        return
    command = next((a for a in argv if a in COMMANDS), None)
    if error is not None:
        assert "--debug" in argv, (argv, error)
        event(f"cli: {command} --debug raised {type(error).__name__}")
        return
    event(f"cli: {command} exit {code}")
    assert code in (0, 1, 2), code
    assert "Traceback" not in err.getvalue()
    if code == 2:
        last = err.getvalue().rstrip("\n").split("\n")[-1]
        assert last.startswith("bpcore: error: ") and len(last) > len("bpcore: error: "), last
    elif code == 1:
        assert command in ("train", "gradcheck"), (argv, err.getvalue())
    else:
        assert "error" not in err.getvalue(), err.getvalue()
