"""Invalid arguments are refused with TypeError (wrong kind) or ValueError (wrong value),
with a message that names the argument; valid but unusual inputs are converted.

Every case runs against both the compiled network and the reference, which share
their checks and must reject alike, with the same message.
"""
from __future__ import annotations

import numpy as np
import pytest

import bpcore
from bpcore import reference
from conftest import params_of

CLASSES = (bpcore.Network, reference.Network)
SIZES = [3, 4, 2]
N = 5


def _X(n=N, d=3):
    return np.random.default_rng(0).normal(size=(n, d))


def _Y(n=N, k=2):
    return np.random.default_rng(1).uniform(size=(n, k))


def _with_nan(a, value=np.nan):
    a = a.copy()
    a[1, 1] = value
    return a


def expect_same_error(call, exc, match):
    """call(cls) raises exc matching ``match`` for both classes, with identical messages."""
    messages = []
    for cls in CLASSES:
        with pytest.raises(exc, match=match) as info:
            call(cls)
        assert type(info.value) is exc, f"{cls.__module__}: {type(info.value).__name__}"
        messages.append(str(info.value))
    assert messages[0] == messages[1]


# -- constructor --------------------------------------------------------------------------

CONSTRUCTOR_CASES = [
    # id, kwargs, exception, regex naming the argument
    ("sizes-int", dict(sizes=5), TypeError, r"sizes"),
    ("sizes-string", dict(sizes="342"), TypeError, r"sizes"),
    ("sizes-one-layer", dict(sizes=[3]), ValueError, r"sizes"),
    ("sizes-empty", dict(sizes=[]), ValueError, r"sizes"),
    ("sizes-zero-width", dict(sizes=[3, 0, 2]), ValueError, r"sizes\[1\]"),
    ("sizes-negative", dict(sizes=[-3, 4, 2]), ValueError, r"sizes\[0\]"),
    ("sizes-float", dict(sizes=[3, 2.5, 2]), TypeError, r"sizes\[1\]"),
    ("sizes-bool", dict(sizes=[3, True, 2]), TypeError, r"sizes\[1\]"),
    ("activation-unknown", dict(activations="swish"), ValueError, r"activations\[0\].*swish"),
    ("activation-unknown-2nd", dict(activations=["tanh", "gelu"]), ValueError,
     r"activations\[1\].*gelu"),
    ("activation-not-str", dict(activations=3), TypeError, r"activations"),
    ("activation-item-not-str", dict(activations=["tanh", None]), TypeError, r"activations\[1\]"),
    ("activations-count", dict(activations=["tanh"]), ValueError, r"activations"),
    ("softmax-hidden", dict(activations=["softmax", "softmax"], cost="log_likelihood"),
     ValueError, r"softmax.*activations"),
    ("cost-unknown", dict(cost="hinge"), ValueError, r"cost.*hinge"),
    ("cost-not-str", dict(cost=None), TypeError, r"cost"),
    ("log_likelihood-without-softmax", dict(activations="sigmoid", cost="log_likelihood"),
     ValueError, r"cost 'log_likelihood'.*softmax"),
    ("cross_entropy-without-sigmoid", dict(activations=["sigmoid", "tanh"], cost="cross_entropy"),
     ValueError, r"cost 'cross_entropy'.*sigmoid"),
    ("cross_entropy-with-softmax", dict(activations=["sigmoid", "softmax"], cost="cross_entropy"),
     ValueError, r"cost 'cross_entropy'"),
    ("softmax-with-quadratic", dict(activations=["sigmoid", "softmax"], cost="quadratic"),
     ValueError, r"cost 'quadratic'.*softmax"),
    ("softmax-with-squared_error", dict(activations=["tanh", "softmax"], cost="squared_error"),
     ValueError, r"cost 'squared_error'.*softmax"),
    ("softmax-one-output", dict(sizes=[3, 1], activations="softmax", cost="log_likelihood"),
     ValueError, r"sizes\[-1\]"),
    ("init-unknown", dict(init="zeros"), ValueError, r"init.*zeros"),
    ("init-not-str", dict(init=0), TypeError, r"init"),
    ("dtype-float16", dict(dtype="float16"), ValueError, r"dtype.*float16"),
    ("dtype-int", dict(dtype="int32"), ValueError, r"dtype"),
    ("dtype-complex", dict(dtype=np.complex128), ValueError, r"dtype"),
    # an unknown name is a wrong *value* of a string, like an unknown activation name
    ("dtype-unknown-name", dict(dtype="float65"), ValueError, r"dtype.*float65"),
    ("dtype-not-a-dtype", dict(dtype=3.5), TypeError, r"dtype"),
    ("seed-negative", dict(seed=-1), ValueError, r"seed"),
    ("seed-string", dict(seed="a"), TypeError, r"seed"),
    ("seed-float", dict(seed=1.5), TypeError, r"seed"),
]


@pytest.mark.parametrize("kwargs, exc, match",
                         [pytest.param(*c[1:], id=c[0]) for c in CONSTRUCTOR_CASES])
def test_bad_constructor_argument(kwargs, exc, match):
    kwargs = {"sizes": SIZES, **kwargs}
    expect_same_error(lambda cls: cls(**kwargs), exc, match)


@pytest.mark.parametrize("value, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                        ("2", TypeError), (True, TypeError)])
def test_bad_num_threads(value, exc):
    with pytest.raises(exc, match="num_threads"):
        bpcore.Network(SIZES, num_threads=value)
    net = bpcore.Network(SIZES, num_threads=2)
    with pytest.raises(exc, match="num_threads"):
        net.num_threads = value
    assert net.num_threads == (2 if bpcore.build_info()["openmp"] else 1)  # unchanged


# -- scalar arguments of fit ------------------------------------------------------------------

FIT_CASES = [
    ("batch_size-0", dict(batch_size=0), ValueError, r"batch_size"),
    ("batch_size-negative", dict(batch_size=-3), ValueError, r"batch_size"),
    ("batch_size-float", dict(batch_size=2.0), TypeError, r"batch_size"),
    ("batch_size-None", dict(batch_size=None), TypeError, r"batch_size"),
    ("epochs-negative", dict(epochs=-1), ValueError, r"epochs"),
    ("epochs-float", dict(epochs=1.0), TypeError, r"epochs"),
    ("lr-nan", dict(lr=float("nan")), ValueError, r"lr"),
    ("lr-inf", dict(lr=float("inf")), ValueError, r"lr"),
    ("lr-negative", dict(lr=-0.1), ValueError, r"lr"),
    ("lr-string", dict(lr="0.1"), TypeError, r"lr"),
    ("lr-complex", dict(lr=0.1j), TypeError, r"lr"),
    ("l2-negative", dict(l2=-1.0), ValueError, r"l2"),
    ("l2-nan", dict(l2=np.nan), ValueError, r"l2"),
    ("momentum-1", dict(momentum=1.0), ValueError, r"momentum"),
    ("momentum-above-1", dict(momentum=1.5), ValueError, r"momentum"),
    ("momentum-negative", dict(momentum=-0.1), ValueError, r"momentum"),
    ("momentum-inf", dict(momentum=np.inf), ValueError, r"momentum"),
    ("seed-negative", dict(seed=-1), ValueError, r"seed"),
    ("seed-string", dict(seed="a"), TypeError, r"seed"),
    ("validation_data-not-pair", dict(validation_data=_X()), TypeError, r"validation_data"),
    ("validation_data-triple", dict(validation_data=(_X(), _Y(), None)), TypeError,
     r"validation_data"),
    ("validation_data-bad-X", dict(validation_data=(_X(d=4), _Y())), ValueError,
     r"validation_data\[0\]"),
    ("validation_data-bad-Y", dict(validation_data=(_X(), _Y(n=4))), ValueError,
     r"validation_data\[1\]"),
]


@pytest.mark.parametrize("kwargs, exc, match", [pytest.param(*c[1:], id=c[0]) for c in FIT_CASES])
def test_bad_fit_argument(kwargs, exc, match):
    def call(cls):
        net = cls(SIZES, seed=0)
        before = params_of(net)
        try:
            net.fit(_X(), _Y(), **{"epochs": 1, "batch_size": 2, "lr": 0.1, **kwargs})
        finally:  # refused before any training
            assert all(np.array_equal(a, b) for a, b in zip(params_of(net), before))
    expect_same_error(call, exc, match)


# -- X and Y of fit, cost and backprop ------------------------------------------------------

ragged = [[1.0, 2.0, 3.0], [1.0, 2.0]]
DATA_CASES = [
    # id, (sizes, activations, cost), X, Y, exception, regex
    ("X-wrong-columns", None, _X(d=4), _Y(), ValueError, r"\bX\b.*3 columns"),
    ("X-3d", None, _X().reshape(N, 3, 1), _Y(), ValueError, r"\bX\b.*2-D"),
    ("X-scalar", None, 1.0, _Y(1), ValueError, r"\bX\b"),
    ("X-empty", None, np.zeros((0, 3)), np.zeros((0, 2)), ValueError, r"\bX\b.*empty"),
    ("X-complex", None, _X() + 0j, _Y(), TypeError, r"\bX\b.*complex"),
    ("X-strings", None, _X().astype(str), _Y(), TypeError, r"\bX\b"),
    ("X-str", None, "abc", _Y(), TypeError, r"\bX\b"),
    ("X-object", None, _X().astype(object), _Y(), TypeError, r"\bX\b"),
    ("X-ragged", None, ragged, _Y(2), ValueError, r"\bX\b"),
    ("X-nan", None, _with_nan(_X()), _Y(), ValueError, r"\bX\b.*NaN"),
    ("X-inf", None, _with_nan(_X(), -np.inf), _Y(), ValueError, r"\bX\b"),
    ("X-None", None, None, _Y(), TypeError, r"\bX\b"),
    ("Y-wrong-rows", None, _X(), _Y(n=4), ValueError, r"\bY\b"),
    ("Y-wrong-columns", None, _X(), _Y(k=3), ValueError, r"\bY\b"),
    ("Y-3d", None, _X(), _Y().reshape(N, 2, 1), ValueError, r"\bY\b"),
    ("Y-complex", None, _X(), _Y() + 0j, TypeError, r"\bY\b.*complex"),
    ("Y-strings", None, _X(), _Y().astype(str), TypeError, r"\bY\b"),
    ("Y-object", None, _X(), _Y().astype(object), TypeError, r"\bY\b"),
    ("Y-nan", None, _X(), _with_nan(_Y()), ValueError, r"\bY\b.*NaN"),
    ("Y-inf", None, _X(), _with_nan(_Y(), np.inf), ValueError, r"\bY\b"),
    ("labels-too-large", None, _X(), np.array([0, 1, 2, 0, 1]), ValueError, r"\bY\b.*\[0, 1\]"),
    ("labels-negative", None, _X(), np.array([0, 1, -1, 0, 1]), ValueError, r"\bY\b"),
    ("labels-not-integers", None, _X(), np.array([0.0, 1.0, 0.5, 0.0, 1.0]), TypeError, r"\bY\b"),
    ("labels-wrong-length", None, _X(), np.array([0, 1, 1, 0]), ValueError, r"\bY\b"),
    ("labels-one-output", ([3, 4, 1], "sigmoid", "quadratic"), _X(), np.array([0, 1, 1, 0, 1]),
     ValueError, r"\bY\b"),
    ("cross_entropy-target-above-1", ([3, 4, 2], "sigmoid", "cross_entropy"), _X(), _Y() + 0.5,
     ValueError, r"\bY\b.*\[0, 1\]"),
    ("cross_entropy-target-negative", ([3, 4, 2], "sigmoid", "cross_entropy"), _X(), _Y() - 0.5,
     ValueError, r"\bY\b.*cross_entropy"),
    ("log_likelihood-rows-not-summing-to-1", ([3, 4, 2], ["sigmoid", "softmax"], "log_likelihood"),
     _X(), _Y(), ValueError, r"\bY\b.*log_likelihood"),
    ("log_likelihood-negative-entries", ([3, 4, 2], ["sigmoid", "softmax"], "log_likelihood"),
     _X(), np.tile([1.5, -0.5], (N, 1)), ValueError, r"\bY\b"),
    ("log_likelihood-label-too-large", ([3, 4, 2], ["sigmoid", "softmax"], "log_likelihood"),
     _X(), np.array([0, 1, 2, 1, 0]), ValueError, r"\bY\b"),
]


@pytest.mark.parametrize("method", ["fit", "cost", "backprop"])
@pytest.mark.parametrize("arch, X, Y, exc, match",
                         [pytest.param(*c[1:], id=c[0]) for c in DATA_CASES])
def test_bad_data(method, arch, X, Y, exc, match):
    sizes, activations, cost = arch or (SIZES, "sigmoid", "quadratic")

    def call(cls):
        net = cls(sizes, activations, cost, seed=0)
        before = params_of(net)
        try:
            if method == "fit":
                net.fit(X, Y, epochs=1, batch_size=2, lr=0.1)
            else:
                getattr(net, method)(X, Y)
        finally:
            assert all(np.array_equal(a, b) for a, b in zip(params_of(net), before))
    expect_same_error(call, exc, match)


@pytest.mark.parametrize("X, exc, match", [
    pytest.param(c[2], c[4], c[5], id=c[0]) for c in DATA_CASES if c[0].startswith("X-")])
def test_bad_feedforward_input(X, exc, match):
    expect_same_error(lambda cls: cls(SIZES, seed=0).feedforward(X), exc, match)


# the conversion warns before the check raises: the error is what matters here
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_float64_overflowing_float32_is_refused():
    """1e300 is finite in float64 but becomes inf in a float32 network."""
    X = _X()
    X[0, 0] = 1e300
    expect_same_error(lambda cls: cls(SIZES, dtype="float32", seed=0).feedforward(X),
                      ValueError, r"\bX\b.*infinite")
    expect_same_error(lambda cls: cls(SIZES, dtype="float32", seed=0).cost(_X(), _Y() * 1e300),
                      ValueError, r"\bY\b")


@pytest.mark.parametrize("labels, exc, match", [
    pytest.param(np.array([0, 1, 2, 0, 1]), ValueError, r"labels.*\[0, 1\]", id="too-large"),
    pytest.param(np.array([0, -1, 1, 0, 1]), ValueError, r"labels", id="negative"),
    pytest.param(np.array([0.0, 1.5, 1.0, 0.0, 1.0]), TypeError, r"labels", id="not-integers"),
    pytest.param(np.array([0, 1, 1]), ValueError, r"labels.*\(5\)", id="wrong-length"),
    pytest.param(np.zeros((5, 2), dtype=int), ValueError, r"labels.*1-D", id="2d"),
    pytest.param(np.array(["0", "1", "1", "0", "1"]), TypeError, r"labels", id="strings"),
    pytest.param(np.array([0, 1, 1, 0, 1]) + 0j, TypeError, r"labels", id="complex"),
    pytest.param(np.array([0, 1, np.nan, 0, 1]), TypeError, r"labels", id="nan"),
])
def test_bad_evaluate_labels(labels, exc, match):
    expect_same_error(lambda cls: cls(SIZES, seed=0).evaluate(_X(), labels), exc, match)


# -- accepted conversions ---------------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES)
def test_float64_input_to_float32_network_is_converted(cls):
    net = cls(SIZES, dtype="float32", seed=0)
    X, Y = _X(), _Y()
    assert X.dtype == np.float64
    out = net.feedforward(X)
    assert out.dtype == np.float32
    assert np.array_equal(out, net.feedforward(X.astype(np.float32)))
    assert net.cost(X, Y) == net.cost(X.astype(np.float32), Y.astype(np.float32))
    net.fit(X, Y, epochs=2, batch_size=2, lr=0.5)
    assert net.dtype == np.float32
    assert all(p.dtype == np.float32 for p in params_of(net))
    gb, gw = net.backprop(X, Y)
    assert all(g.dtype == np.float32 for g in gb + gw)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", CLASSES)
def test_integer_inputs_are_accepted(cls, dtype):
    rng = np.random.default_rng(2)
    X8 = rng.integers(0, 256, size=(N, 3), dtype=np.uint8)
    Y = _Y()
    net = cls(SIZES, dtype=dtype, seed=0)
    out = net.feedforward(X8)
    assert out.dtype == np.dtype(dtype)
    assert np.array_equal(out, net.feedforward(X8.astype(dtype)))
    assert net.cost(X8, Y) == net.cost(X8.astype(dtype), Y)
    # integer (n, n_L) targets are targets, not labels
    Yint = rng.integers(0, 2, size=(N, 2))
    assert net.cost(X8, Yint) == net.cost(X8.astype(dtype), Yint.astype(dtype))
    # Python lists, too
    assert np.array_equal(net.feedforward(X8.tolist()), out)
    net.fit(X8, Y, epochs=1, batch_size=2, lr=0.01)
    assert net.dtype == np.dtype(dtype)


@pytest.mark.parametrize("layout", ["read-only", "fortran", "strided", "big-endian",
                                    "broadcast", "float32"])
@pytest.mark.parametrize("cls", CLASSES)
def test_unusual_array_layouts_are_accepted(cls, layout):
    X, Y = _X(), _Y()
    convert = {
        "read-only": lambda a: np.array(a, copy=True).view(),
        "fortran": np.asfortranarray,
        "strided": lambda a: np.repeat(a, 2, axis=0)[::2],
        "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
        "broadcast": lambda a: np.broadcast_to(a, a.shape),  # read-only view
        "float32": lambda a: a.astype(np.float32),
    }[layout]
    Xc, Yc = convert(X), convert(Y)
    if layout == "read-only":
        Xc.setflags(write=False)
        Yc.setflags(write=False)
    net = cls(SIZES, seed=0)
    if layout == "float32":  # converted exactly to float64: same as the float64 values
        X, Y = Xc.astype(np.float64), Yc.astype(np.float64)
    assert np.array_equal(net.feedforward(Xc), net.feedforward(X))
    assert net.cost(Xc, Yc) == net.cost(X, Y)
    g = net.backprop(Xc, Yc)
    g0 = net.backprop(X, Y)
    assert all(np.array_equal(a, b) for a, b in zip(g[0] + g[1], g0[0] + g0[1]))
    twin = cls(SIZES, seed=0)
    net.fit(Xc, Yc, epochs=2, batch_size=2, lr=0.3, seed=1)
    twin.fit(X, Y, epochs=2, batch_size=2, lr=0.3, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(params_of(net), params_of(twin)))
    assert np.array_equal(Xc, convert(_X()))  # the caller's data is not modified


@pytest.mark.parametrize("cls", CLASSES)
def test_one_example_as_1d(cls):
    net = cls(SIZES, seed=0)
    X = _X()
    out = net.feedforward(X[0])
    assert out.shape == (2,)
    assert np.array_equal(out, net.feedforward(X[:1])[0])
    assert net.cost(X[0], _Y()[0]) == net.cost(X[:1], _Y()[:1])


# -- the live parameter views --------------------------------------------------------------

def test_writing_to_weight_views_changes_the_network():
    net = bpcore.Network(SIZES, ["tanh", "identity"], seed=0)
    X = _X()
    before = net.feedforward(X)
    w = net.weights[0]
    w[...] = 0.0                       # zero the first layer: a^1 = tanh(b^1) for every x
    after = net.feedforward(X)
    assert not np.array_equal(after, before)
    assert np.allclose(after, after[0])  # all rows now equal
    expected = net.weights[1] @ np.tanh(net.biases[0]) + net.biases[1]
    assert np.allclose(after[0], expected, rtol=1e-14, atol=1e-14)
    net.biases[1][...] += 1.0
    assert np.allclose(net.feedforward(X), after + 1.0, rtol=1e-14, atol=1e-14)
    assert np.shares_memory(net.weights[0], w)


def test_assigning_parameter_lists():
    net = bpcore.Network(SIZES, seed=0)
    new_w = [np.full((4, 3), 0.5), np.full((2, 4), -0.25)]
    net.weights = new_w
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, new_w))
    net.biases = [np.zeros(4), [1, 2]]   # lists and integers are converted
    assert net.biases[1].tolist() == [1.0, 2.0] and net.biases[1].dtype == np.float64


@pytest.mark.parametrize("attr, values, match", [
    pytest.param("weights", [np.zeros((3, 4)), np.zeros((2, 4))], r"weights\[0\].*\(4, 3\)",
                 id="transposed"),
    pytest.param("weights", [np.zeros((4, 3)), np.zeros(8)], r"weights\[1\]", id="flat"),
    pytest.param("weights", [np.zeros((4, 3))], r"weights.*2 arrays", id="too-few"),
    pytest.param("weights", [np.zeros((4, 3)), np.zeros((2, 4)), np.zeros((2, 2))],
                 r"weights.*2 arrays", id="too-many"),
    pytest.param("biases", [np.zeros(4), np.zeros(3)], r"biases\[1\]", id="bias-shape"),
    pytest.param("biases", [np.zeros((4, 1)), np.zeros(2)], r"biases\[0\]", id="bias-2d"),
    pytest.param("weights", [np.full((4, 3), np.nan), np.zeros((2, 4))], r"weights\[0\].*finite",
                 id="nan"),
    pytest.param("biases", [np.zeros(4), np.array([np.inf, 0])], r"biases\[1\].*finite",
                 id="inf"),
    pytest.param("weights", [np.zeros((4, 3), complex), np.zeros((2, 4))], r"weights\[0\]",
                 id="complex"),
])
def test_assigning_bad_parameters_raises_and_changes_nothing(attr, values, match):
    net = bpcore.Network(SIZES, seed=0)
    before = params_of(net)
    with pytest.raises(ValueError, match=match):
        setattr(net, attr, values)
    assert all(np.array_equal(a, b) for a, b in zip(params_of(net), before))


def test_assigning_float32_overflowing_weights_raises():
    """1e300 is finite as given but becomes inf when stored in a float32 network,
    which would then compute NaN/inf; the setter must refuse it like a NaN."""
    net = bpcore.Network(SIZES, dtype="float32", seed=0)
    before = params_of(net)
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        net.weights = [np.full((4, 3), 1e300), np.zeros((2, 4))]
    assert all(np.array_equal(a, b) for a, b in zip(params_of(net), before))
    assert np.isfinite(net.feedforward(_X())).all()
