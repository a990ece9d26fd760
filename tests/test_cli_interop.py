"""``bpcore export`` and ``bpcore explain``, and the speed-of-learning panel of ``train --plot``."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

import bpcore
from bpcore import Network
from bpcore.cli import main
from bpcore.datasets import load_mnist_subset
from conftest import require


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = Network([784, 12, 10], seed=0)
    (X, y), _ = load_mnist_subset()
    net.fit(X[:500], y[:500], epochs=1, batch_size=10, lr=3.0)
    net.save("net.npz")
    return net


@pytest.mark.parametrize("command", ["export", "explain"])
def test_help_shows_an_example(capsys, command):
    with pytest.raises(SystemExit) as excinfo:
        main([command, "--help"])
    assert excinfo.value.code == 0
    assert re.search(rf"^examples?:\n  bpcore {command}\b", capsys.readouterr().out, re.MULTILINE)


def test_export_onnx_runs_in_onnxruntime(capsys, model):
    ort = require("onnxruntime")
    assert main(["export", "net.npz", "net.onnx"]) == 0
    assert "as ONNX: input 'input' (batch, 784), output 'output' (batch, 10)" in \
        capsys.readouterr().out
    _, (X, _) = load_mnist_subset()
    out = ort.InferenceSession("net.onnx").run(None, {"input": X[:20].astype(np.float64)})[0]
    assert np.max(np.abs(out - model.feedforward(X[:20]))) <= 1e-12


def test_export_network2_json(capsys, model):
    assert main(["export", "net.npz", "net.json"]) == 0
    data = json.loads(open("net.json").read())
    assert data["sizes"] == [784, 12, 10] and data["cost"] == "QuadraticCost"
    assert np.array_equal(np.array(data["weights"][1]), model.weights[1])


def test_export_refusals(capsys, model):
    assert main(["export", "net.npz", "net.txt"]) == 2
    assert "OUTPUT must end in .onnx (ONNX) or .json" in capsys.readouterr().err
    Network([784, 5, 10], ["relu", "softmax"], "log_likelihood").save("soft.npz")
    assert main(["export", "soft.npz", "soft.json"]) == 2
    assert "a network2.py file cannot hold this network" in capsys.readouterr().err


def test_explain_prints_the_factors_of_backprops_gradient(capsys, model):
    assert main(["explain", "net.npz", "--example", "7", "--layer", "1", "--weight", "3",
                 "400"]) == 0
    out = capsys.readouterr().out
    _, (X, y) = load_mnist_subset()
    expected = model.backprop(X[7:8], y[7:8])[1][0][3, 400]
    e = model.explain(X[7], y[7], 1, 3, 400)
    assert math.isclose(e.gradient, expected, rel_tol=1e-12, abs_tol=1e-300)
    assert f"test example 7 of the MNIST subset shipped with bpcore (label {y[7]})" in out
    assert str(e) in out and "dC_x/dw^1_3,400" in out


@pytest.mark.parametrize("argv, message", [
    (["--layer", "3", "--weight", "0", "0"], "--layer must be in [1, 2]"),
    (["--layer", "2", "--weight", "10", "0"], "--weight J must be in [0, 9]"),
    (["--layer", "1", "--weight", "0", "784"], "--weight K must be in [0, 783]"),
    (["--layer", "1", "--weight", "0", "0", "--example", "100000"], "--example must be in"),
])
def test_explain_refusals(capsys, model, argv, message):
    assert main(["explain", "net.npz", *argv]) == 2
    assert message in capsys.readouterr().err


def test_train_plot_includes_the_speed_of_learning(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from bpcore import plot

    drawn = []
    monkeypatch.chdir(tmp_path)
    original = plot.plot_history
    monkeypatch.setattr(plot, "plot_history",
                        lambda history, *a, **k: drawn.append(history) or original(history, *a, **k))
    assert main(["train", "--sizes", "784,8,10", "--epochs", "2", "--quiet", "--plot",
                 "c.png"]) == 0
    (history,) = drawn
    assert np.array(history.grad_norms).shape == (2, 2)
