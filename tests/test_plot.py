"""bpcore.plot: each figure's content, its PNG, and that nothing else imports matplotlib."""
from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

# matplotlib is the optional extra "plot"; the test extra installs it.
pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from bpcore import History, Network  # noqa: E402
from bpcore.datasets import load_mnist_subset  # noqa: E402
from bpcore.plot import plot_benchmark, plot_history, plot_misclassified  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def no_pyplot_leak():
    """Every test closes what it opened with pyplot."""
    before = set(plt.get_fignums())
    yield
    for number in set(plt.get_fignums()) - before:
        plt.close(number)


def check_png(path, fig) -> np.ndarray:
    """Assert ``path`` is a PNG of the figure's size x dpi; return its pixels (RGBA in [0, 1])."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    length, chunk, width, height = struct.unpack(">I4sII", data[8:24])
    assert (length, chunk) == (13, b"IHDR")
    w, h = fig.get_size_inches() * fig.dpi
    assert (width, height) == (round(w), round(h))
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    ink = np.any(pixels[..., :3] < 0.9, axis=-1).mean()
    assert ink > 0.01, f"only {ink:.2%} of the image is drawn on"
    return pixels


def history(validation=True) -> History:
    h = History(train_cost=[0.09, 0.05, 0.04], seconds=[1.0, 1.0, 1.0])
    if validation:
        h.val_cost = [0.08, 0.06, 0.055]
        h.val_accuracy = [0.81, 0.88, 0.9]
    return h


def test_history_plot(tmp_path):
    path = tmp_path / "history.png"
    fig = plot_history(history(), path, validation_label="test")
    cost_ax, accuracy_ax = fig.axes
    (train, test), (accuracy,) = cost_ax.get_lines(), accuracy_ax.get_lines()
    for line, values in ((train, [0.09, 0.05, 0.04]), (test, [0.08, 0.06, 0.055]),
                         (accuracy, [0.81, 0.88, 0.9])):
        assert line.get_xdata().tolist() == [1, 2, 3]
        assert line.get_ydata().tolist() == values
    assert [t.get_text() for t in cost_ax.get_legend().get_texts()] == ["training", "test"]
    assert cost_ax.get_xlabel() == "epoch"
    assert all(tick == int(tick) for tick in cost_ax.get_xticks())
    check_png(path, fig)


def test_history_plot_without_validation(tmp_path):
    fig = plot_history(history(validation=False), tmp_path / "h.png")
    cost_ax, accuracy_ax = fig.axes
    assert len(cost_ax.get_lines()) == 1 and not accuracy_ax.get_lines()
    assert [t.get_text() for t in accuracy_ax.texts] == ["no validation data"]


def test_history_plot_of_an_interrupted_epoch():
    # Interrupted after recording epoch 3's training cost, before its validation.
    h = history()
    h.train_cost.append(0.035)
    cost_ax, accuracy_ax = plot_history(h).axes
    assert [len(line.get_xdata()) for line in cost_ax.get_lines()] == [4, 3]
    assert accuracy_ax.get_lines()[0].get_xdata().tolist() == [1, 2, 3]


ROWS = [
    {"config": "N1-f64", "implementation": "bpcore", "threads": 1, "samples_per_s": 2.0e5},
    {"config": "N1-f64", "implementation": "bpcore", "threads": 2, "samples_per_s": 3.5e5},
    {"config": "M-f32", "implementation": "bpcore", "threads": 1, "samples_per_s": 4.0e3},
    {"config": "M-f32", "implementation": "bpcore", "threads": 2, "samples_per_s": 7.5e3},
    {"config": "M-f32", "implementation": "numpy-batched", "threads": None,
     "samples_per_s": np.float32(9.0e3)},
]


def test_benchmark_plot(tmp_path):
    path = tmp_path / "bench.png"
    fig = plot_benchmark(ROWS, path)
    (ax,) = fig.axes
    # linear from zero: bar heights compare as the speeds do
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["N1-f64", "M-f32"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "bpcore, 1 thread", "bpcore, 2 threads", "numpy-batched, default threads"]
    # Drawn one series (colour) at a time; each bar near its config's tick.
    series_order = [0, 2, 1, 3, 4]
    bars = ax.patches
    assert [bar.get_height() for bar in bars] == pytest.approx(
        [ROWS[i]["samples_per_s"] for i in series_order])
    ticks = [round(bar.get_x() + bar.get_width() / 2) for bar in bars]
    assert ticks == [["N1-f64", "M-f32"].index(ROWS[i]["config"]) for i in series_order]
    check_png(path, fig)


@pytest.mark.parametrize("rows, error, message", [
    ([], ValueError, "at least one row"),
    ([{"config": "a", "implementation": "b", "threads": 1}], ValueError,
     r"rows\[0\] lacks the key\(s\) \['samples_per_s'\]"),
    ([dict(ROWS[0], samples_per_s=0)], ValueError, "must be a finite number > 0"),
    ([ROWS[0], dict(ROWS[0])], ValueError, r"rows\[1\] repeats config 'N1-f64'"),
    ([("N1", "bpcore", 1, 1e5)], TypeError, r"rows\[0\] must be a mapping"),
])
def test_benchmark_plot_rejects_bad_rows(rows, error, message):
    with pytest.raises(error, match=message):
        plot_benchmark(rows)


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = load_mnist_subset()
    return X[:200], y[:200]


def test_misclassified_plot(tmp_path, digits):
    X, y = digits
    net = Network([784, 10], seed=0)  # untrained: most digits are wrong
    predicted = np.argmax(net.feedforward(X), axis=1)
    wrong = np.flatnonzero(predicted != y)
    assert len(wrong) > 7
    path = tmp_path / "wrong.png"
    fig = plot_misclassified(net, X.reshape(-1, 28, 28), y, path, n=7)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 9 and len(drawn) == 7  # a 3 x 3 grid
    for ax, i in zip(drawn, wrong):
        assert ax.get_title() == f"{predicted[i]} (true {y[i]})"
        np.testing.assert_array_equal(ax.images[0].get_array(), X[i].reshape(28, 28))
    assert fig.get_suptitle().startswith(f"{len(wrong)} of 200 misclassified; first 7")
    check_png(path, fig)


def test_misclassified_plot_when_all_are_right(digits):
    X, _ = digits
    net = Network([784, 10], seed=0)
    fig = plot_misclassified(net, X, np.argmax(net.feedforward(X), axis=1))
    assert not any(ax.images for ax in fig.axes)
    assert fig.axes[0].texts[0].get_text() == "all 200 examples classified correctly"


@pytest.mark.parametrize("args, message", [
    (dict(X=np.zeros((3, 10))), r"shape \(n, 784\) or \(n, 28, 28\), got \(3, 10\)"),
    (dict(labels=np.zeros(2, int)), "must be 3 integer class labels"),
    (dict(n=0), "n must be an integer >= 1"),
])
def test_misclassified_plot_rejects_bad_arguments(args, message):
    call = dict(X=np.zeros((3, 784)), labels=np.zeros(3, int)) | args
    with pytest.raises(ValueError, match=message):
        plot_misclassified(Network([784, 10], seed=0), **call)


def test_without_a_path_the_figure_belongs_to_pyplot(tmp_path):
    fig = plot_history(history())
    assert fig.number in plt.get_fignums()
    with_path = plot_history(history(), tmp_path / "h.png")
    assert not hasattr(with_path, "number")  # never registered with pyplot
    assert [p.name for p in tmp_path.iterdir()] == ["h.png"]


def test_the_core_and_the_cli_do_not_import_matplotlib(tmp_path):
    code = ("import sys, bpcore, bpcore.cli, bpcore.datasets\n"
            "assert bpcore.cli.main(['info']) == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
