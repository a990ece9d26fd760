"""Network.load_network2 / save_network2: the JSON of Nielsen's network2.py, both ways."""
from __future__ import annotations

import json

import numpy as np
import pytest

import bpcore


# -- network2.py's own code (Nielsen, neural-networks-and-deep-learning/src/network2.py),
#    the parts that touch files, as it writes and reads them -----------------------------
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class _Network2:
    def __init__(self, sizes, cost_name):
        rng = np.random.default_rng(7)
        self.sizes = sizes
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [rng.standard_normal((y, x)) / np.sqrt(x)
                        for x, y in zip(sizes[:-1], sizes[1:])]
        self.cost_name = cost_name

    def feedforward(self, a):
        for b, w in zip(self.biases, self.weights):
            a = _sigmoid(np.dot(w, a) + b)
        return a

    def save(self, filename):
        data = {"sizes": self.sizes,
                "weights": [w.tolist() for w in self.weights],
                "biases": [b.tolist() for b in self.biases],
                "cost": str(self.cost_name)}
        f = open(filename, "w")
        json.dump(data, f)
        f.close()


def _network2_load(filename):
    f = open(filename, "r")
    data = json.load(f)
    f.close()
    net = _Network2(data["sizes"], data["cost"])
    net.weights = [np.array(w) for w in data["weights"]]
    net.biases = [np.array(b) for b in data["biases"]]
    return net
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cost, ours", [("QuadraticCost", "quadratic"),
                                        ("CrossEntropyCost", "cross_entropy")])
def test_reads_what_network2_saves(tmp_path, cost, ours):
    theirs = _Network2([6, 5, 4, 3], cost)
    theirs.save(tmp_path / "net.json")
    net = bpcore.Network.load_network2(tmp_path / "net.json")
    assert net.sizes == (6, 5, 4, 3) and net.activations == ("sigmoid",) * 3
    assert net.cost_name == ours and net.dtype == np.float64
    for w, b, tw, tb in zip(net.weights, net.biases, theirs.weights, theirs.biases):
        assert np.array_equal(w, tw) and np.array_equal(b, tb[:, 0])
    X = np.random.default_rng(0).normal(size=(4, 6))
    expected = np.array([theirs.feedforward(x.reshape(-1, 1))[:, 0] for x in X])
    assert np.max(np.abs(net.feedforward(X) - expected)) <= 1e-15
    as32 = bpcore.Network.load_network2(str(tmp_path / "net.json"), dtype="float32")
    assert as32.dtype == np.float32
    assert np.array_equal(as32.weights[0], theirs.weights[0].astype(np.float32))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cost", ["quadratic", "cross_entropy"])
def test_network2_reads_what_we_save_and_the_round_trip_is_bitwise(tmp_path, dtype, cost):
    net = bpcore.Network([5, 7, 3], "sigmoid", cost, dtype=dtype, seed=2)
    net.fit(np.random.default_rng(1).random((30, 5)), np.arange(30) % 3, epochs=1,
            batch_size=4, lr=0.5)
    path = tmp_path / "out.json"
    net.save_network2(path)
    theirs = _network2_load(path)
    assert theirs.sizes == [5, 7, 3]
    assert theirs.cost_name == {"quadratic": "QuadraticCost",
                                "cross_entropy": "CrossEntropyCost"}[cost]
    assert [b.shape for b in theirs.biases] == [(7, 1), (3, 1)]
    for w, b, tw, tb in zip(net.weights, net.biases, theirs.weights, theirs.biases):
        assert tw.shape == w.shape
        assert np.array_equal(tw, w.astype(np.float64)) and np.array_equal(tb[:, 0], b)
    back = bpcore.Network.load_network2(path, dtype=dtype)
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("activations, cost, message", [
    (["tanh", "sigmoid"], "quadratic", "sigmoid neurons in every layer"),
    ("relu", "squared_error", "activations"),
    ("sigmoid", "squared_error", "its cost is 'squared_error'"),
    (["sigmoid", "softmax"], "log_likelihood", "sigmoid neurons"),
])
def test_save_refuses_networks_network2_cannot_hold(tmp_path, activations, cost, message):
    net = bpcore.Network([3, 4, 2], activations, cost)
    with pytest.raises(ValueError, match=message):
        net.save_network2(tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def _good():
    return {"sizes": [2, 3, 1], "weights": [[[0.1, 0.2]] * 3, [[0.3, 0.4, 0.5]]],
            "biases": [[[0.0]] * 3, [[1.0]]], "cost": "QuadraticCost"}


def _with(**changes):
    data = _good()
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize("text, message", [
    ("", "not JSON"),
    ("{\"sizes\": [2, ", "not JSON"),
    ("[1, 2, 3]", "holds a JSON list"),
    (json.dumps({"format_version": 1}), "needs exactly the keys"),
    (json.dumps({**_good(), "extra": 1}), "unexpected \\['extra'\\]"),
    (_with(sizes=[2]), "'sizes' must be a list of at least 2"),
    (_with(sizes=[2, 0, 1]), "'sizes'"),
    (_with(sizes=[2, 3.0, 1]), "'sizes'"),
    (_with(sizes="2,3,1"), "'sizes'"),
    (_with(cost="LogLikelihoodCost"), "'cost' must be one of"),
    (_with(weights=[[[0.1, 0.2]] * 3]), "'weights' must be a list of 2"),
    (_with(biases={"a": 1}), "'biases' must be a list of 2"),
    (_with(weights=[[[0.1, 0.2, 0.3]] * 3, [[0.3, 0.4, 0.5]]]), r"weights\[0\] must have shape \(3, 2\)"),
    (_with(biases=[[0.0, 0.0, 0.0], [[1.0]]]), r"biases\[0\] must have shape \(3, 1\)"),
    (_with(weights=[[[0.1, "x"]] * 3, [[0.3, 0.4, 0.5]]]), "not a nested list of numbers"),
    (_with(weights=[[[0.1], [0.1, 0.2], [0.1, 0.2]], [[0.3, 0.4, 0.5]]]), "weights\\[0\\]"),
    (_with(biases=[[[0.0]] * 3, [[None]]]), r"biases\[1\]"),
    (json.dumps(_good()).replace("1.0]]]", "NaN]]]"), "NaN or infinite"),
    (json.dumps(_good()).replace("0.5", "Infinity"), "NaN or infinite"),
    (json.dumps(_good()).replace("0.5", "1e999"), "NaN or infinite"),
])
def test_broken_or_foreign_files_raise_value_error(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        bpcore.Network.load_network2(path)


def test_binary_and_npz_files_raise_value_error(tmp_path):
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not a network2.py file"):
        bpcore.Network.load_network2(tmp_path / "bin.json")
    bpcore.Network([2, 2]).save(tmp_path / "model.npz")
    with pytest.raises(ValueError, match="not a network2.py file"):
        bpcore.Network.load_network2(tmp_path / "model.npz")
    with pytest.raises(FileNotFoundError):
        bpcore.Network.load_network2(tmp_path / "missing.json")


def test_good_fixture_loads(tmp_path):
    (tmp_path / "ok.json").write_text(json.dumps(_good()))
    net = bpcore.Network.load_network2(tmp_path / "ok.json")
    assert net.feedforward(np.array([1.0, 1.0])).shape == (1,)
