"""Network.to_onnx: the file runs in onnxruntime and computes feedforward's a^L."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpcore
from conftest import HIDDEN, OUTPUT_PAIRS, require

onnx = require("onnx")
ort = require("onnxruntime")

#: Largest |onnxruntime - feedforward| allowed: the issue's bounds, a few hundred ulps
#: of outputs of size ~1 (the two runtimes sum the products in different orders).
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def _run(path, X, input_name="input"):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {input_name: X})[0]


def _data(net, n, seed=0):
    # inputs of size ~1 put every activation's both branches (z > 0, z < 0) in play
    return np.random.default_rng(seed).normal(size=(n, net.sizes[0])).astype(net.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output, cost", OUTPUT_PAIRS)
def test_every_activation_runs_in_onnxruntime(tmp_path, dtype, output, cost):
    # every hidden activation once, then the output pair
    net = bpcore.Network([6, 7, 5, 8, 6, 5, 4], list(HIDDEN) + [output], cost, dtype=dtype,
                         init="xavier", seed=3)
    rng = np.random.default_rng(1)
    net.biases = [rng.normal(scale=0.5, size=b.shape) for b in net.biases]
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    for n in (1, 13):  # the batch dimension is dynamic
        X = _data(net, n, seed=n)
        out = _run(path, X)
        expected = net.feedforward(X)
        assert out.dtype == net.dtype and out.shape == expected.shape
        assert np.max(np.abs(out - expected)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_leaky_relu_slope_is_exact(tmp_path, dtype):
    # large negative z: a slope of 0.01 rounded to float32 (ONNX's attribute type)
    # would be off by 2e-8 relative, ~2e-6 here, far beyond float64's tolerance
    net = bpcore.Network([1, 1], "leaky_relu", dtype=dtype)
    net.weights, net.biases = [np.array([[1.0]])], [np.array([0.0])]
    X = np.array([[-100.0], [-3.7], [0.0], [2.5]], dtype=dtype)
    net.to_onnx(tmp_path / "leaky.onnx")
    out = _run(tmp_path / "leaky.onnx", X)
    assert np.max(np.abs(out - net.feedforward(X))) <= TOLERANCE[dtype]
    if dtype == "float64":
        assert np.array_equal(out, net.feedforward(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_graph_names_shapes_and_parameters(tmp_path, dtype):
    net = bpcore.Network([784, 30, 10], ["relu", "softmax"], "log_likelihood", dtype=dtype,
                         seed=0)
    path = tmp_path / "mnist.onnx"
    net.to_onnx(path, input_name="pixels", output_name="probabilities")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    (inp,), (out,) = graph.input, graph.output
    assert inp.name == "pixels" and out.name == "probabilities"
    elem = onnx.TensorProto.FLOAT if dtype == "float32" else onnx.TensorProto.DOUBLE
    for value, width in ((inp, 784), (out, 10)):
        shape = value.type.tensor_type.shape.dim
        assert value.type.tensor_type.elem_type == elem
        assert shape[0].dim_param == "batch" and not shape[0].HasField("dim_value")
        assert shape[1].dim_value == width
    ops = [node.op_type for node in graph.node]
    assert ops == ["Gemm", "Relu", "Gemm", "Softmax"]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for l, (w, b) in enumerate(zip(net.weights, net.biases), start=1):
        assert inits[f"W{l}"].dtype == net.dtype and np.array_equal(inits[f"W{l}"], w)
        assert np.array_equal(inits[f"b{l}"], b)
    X = _data(net, 5)
    assert np.max(np.abs(_run(path, X, "pixels") - net.feedforward(X))) <= TOLERANCE[dtype]


def test_reference_network_exports_too(tmp_path):
    from bpcore import reference

    net = reference.Network([3, 4, 2], ["tanh", "sigmoid"], seed=2)
    net.to_onnx(tmp_path / "ref.onnx")
    X = _data(net, 4)
    assert np.max(np.abs(_run(tmp_path / "ref.onnx", X) - net.feedforward(X))) <= 1e-12


def test_bad_names_are_refused(tmp_path):
    net = bpcore.Network([2, 2])
    with pytest.raises(ValueError, match="input_name"):
        net.to_onnx(tmp_path / "x.onnx", input_name="")
    with pytest.raises(ValueError, match="must differ"):
        net.to_onnx(tmp_path / "x.onnx", input_name="a", output_name="a")
    with pytest.raises(TypeError, match="path"):
        net.to_onnx(3)


@settings(max_examples=25)
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=5),
       pair=st.sampled_from(OUTPUT_PAIRS), hidden=st.sampled_from(HIDDEN),
       dtype=st.sampled_from(["float32", "float64"]), n=st.integers(1, 20),
       seed=st.integers(0, 2**16))
def test_random_shapes(tmp_path_factory, sizes, pair, hidden, dtype, n, seed):
    output, cost = pair
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    net = bpcore.Network(sizes, [hidden] * (len(sizes) - 2) + [output], cost, dtype=dtype,
                         seed=seed)
    path = tmp_path_factory.mktemp("onnx") / "net.onnx"
    net.to_onnx(path)
    X = _data(net, n, seed)
    assert np.max(np.abs(_run(path, X) - net.feedforward(X))) <= TOLERANCE[dtype]
