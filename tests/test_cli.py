"""The command line: ``bpcore.cli.main`` in-process and ``python -m bpcore`` as a subprocess.

No test touches the network: in-process, the download cache is a temporary
directory and ``urlopen`` fails as it would offline; the subprocesses read only
the shipped subset or the real MNIST files.
"""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import urllib.error
from importlib.resources import files

import numpy as np
import platformdirs
import pytest
from conftest import MNIST_DIR

import bpcore
from bpcore import Network, datasets
from bpcore.cli import main
from bpcore.datasets import MNIST_FILES, load_mnist_subset
from bpcore.gradcheck import GradientCheck

#: A quick run on the shipped subset: one epoch of a small network.
SMALL = ["train", "--sizes", "784,16,10", "--epochs", "1", "--threads", "1"]

EPOCH_LINE = re.compile(r"epoch (?P<epoch>\d+)/(?P<epochs>\d+)  train cost \d+\.\d{4}  "
                        r"(?P<set>test|validation) cost \d+\.\d{4}  "
                        r"(?P=set) accuracy (?P<accuracy>[01]\.\d{4})  \d+\.\d\d s  "
                        r"\(\d{1,3}(?:,\d{3})* samples/s\)")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMMANDS = ["train", "evaluate", "predict", "info", "gradcheck", "bench"]


def offline(url, timeout=None):
    raise urllib.error.URLError(OSError(101, "Network is unreachable"))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """An empty download cache in tmp_path, no $BPCORE_DATA, no network; cwd is tmp_path."""
    monkeypatch.setattr(platformdirs, "user_cache_dir",
                        lambda appname: str(tmp_path / "user-cache" / appname))
    monkeypatch.delenv("BPCORE_DATA", raising=False)
    monkeypatch.setattr(datasets, "urlopen", offline)
    monkeypatch.chdir(tmp_path)


def threads_shown(n: int) -> str:
    """How the header reports --threads n: a serial build always runs on one thread."""
    return f"{n} thread(s)" if bpcore.build_info()["openmp"] else "1 thread (built without OpenMP)"


def check_training_output(out: str) -> None:
    header, epoch, final = out.splitlines()
    assert "MNIST subset" in header and "(8,000 train, 2,000 test)" in header
    assert "sizes 784,16,10" in header and header.endswith("float64, " + threads_shown(1))
    match = EPOCH_LINE.fullmatch(epoch)
    assert match and match["set"] == "test", epoch
    accuracy = match["accuracy"]
    assert final == f"test accuracy: {accuracy}"
    assert float(accuracy) > 0.3  # chance is 0.1; one epoch reaches about 0.6


def test_train_in_process(capsys):
    assert main(SMALL) == 0
    out, err = capsys.readouterr()
    check_training_output(out)
    assert err == ""


def test_train_as_module(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bpcore", *SMALL], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    check_training_output(result.stdout)


def test_train_passes_dtype_and_threads_through(capsys):
    assert main(["train", "--sizes", "784,10", "--epochs", "0", "--dtype", "float32",
                 "--threads", "2"]) == 0
    header, final = capsys.readouterr().out.splitlines()
    assert header.endswith("float32, " + threads_shown(2))
    assert re.fullmatch(r"test accuracy: [01]\.\d{4}", final)


def test_train_quiet_prints_only_the_result(capsys):
    assert main(SMALL + ["--quiet"]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"test accuracy: [01]\.\d{4}\n", out) and err == ""


def test_train_saves_a_model_that_scores_as_reported(capsys, tmp_path):
    assert main(SMALL + ["--validation-split", "0.25", "--save", "net.npz"]) == 0
    header, epoch, final, saved = capsys.readouterr().out.splitlines()
    assert "(6,000 train, 2,000 validation, 2,000 test)" in header
    assert EPOCH_LINE.fullmatch(epoch)["set"] == "validation"
    assert saved == "saved model to net.npz"
    net = Network.load(tmp_path / "net.npz")
    assert net.sizes == (784, 16, 10)
    _, (X_test, y_test) = load_mnist_subset()
    assert final == f"test accuracy: {net.evaluate(X_test, y_test):.4f}"


def test_early_stopping_keeps_the_best_epoch(capsys, tmp_path):
    # Training on 10% of the subset overfits: validation accuracy peaks, then falls.
    argv = SMALL + ["--epochs", "30", "--validation-split", "0.9", "--early-stopping", "2",
                    "--save", "net.npz"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    epochs = [EPOCH_LINE.fullmatch(line) for line in lines[1:-3]]
    assert all(epochs)
    accuracies = [float(m["accuracy"]) for m in epochs]
    best = int(np.argmax(accuracies)) + 1
    assert len(epochs) == best + 2 < 30
    assert lines[-3] == (f"early stopping after epoch {best + 2}: validation accuracy has not "
                         f"improved for 2 epoch(s); keeping epoch {best} (validation accuracy "
                         f"{accuracies[best - 1]:.4f})")
    # The saved network is that of the best epoch: it scores so on the same split.
    (X, y), (X_test, y_test) = load_mnist_subset()
    held_out = np.random.default_rng(0).permutation(len(X))[:round(0.9 * len(X))]
    net = Network.load(tmp_path / "net.npz")
    assert f"{net.evaluate(X[held_out], y[held_out]):.4f}" == f"{accuracies[best - 1]:.4f}"
    assert lines[-2] == f"test accuracy: {net.evaluate(X_test, y_test):.4f}"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_train_on_a_terminal_shows_a_bar_per_epoch(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(SMALL + ["--epochs", "2"]) == 0
    out = terminal.getvalue()
    assert re.search(r"training: 100%.*\| 2/2 \[.*epoch/s, train cost \d\.\d{4}, test accuracy "
                     r"[01]\.\d{4}, [\d,]+ samples/s\]", out), out
    assert "epoch 1/2" not in out
    assert re.search(r"\ntest accuracy: [01]\.\d{4}\n$", out)


@pytest.mark.skipif(os.name == "nt", reason="SIGINT cannot be sent to a child on Windows")
@pytest.mark.skipif(not all((MNIST_DIR / (name + ".gz")).is_file()
                            for pair in MNIST_FILES.values() for name in pair),
                    reason=f"the real MNIST files are not in {MNIST_DIR}")
def test_ctrl_c_saves_the_model_and_exits_130(tmp_path):
    # Full MNIST: an epoch takes long enough for SIGINT to arrive in the middle of training.
    # The child gets the default SIGINT disposition even if this process ignores SIGINT (as
    # a background job does), so that Python installs its KeyboardInterrupt handler.
    process = subprocess.Popen(
        [sys.executable, "-m", "bpcore", "train", "--data", str(MNIST_DIR), "--epochs", "50",
         "--threads", "1", "--save", "model.npz"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        header = process.stdout.readline()
        first = process.stdout.readline()
        assert EPOCH_LINE.fullmatch(first.rstrip("\n")), header + first
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "test accuracy:" not in out and "Traceback" not in err
    # Epochs reported, the first included; one more may have finished unreported.
    reported = 1 + len(out.splitlines())
    message = re.fullmatch(r"bpcore: interrupted after epoch (\d+); saved model to model.npz\n",
                           err)
    assert message and reported <= int(message[1]) <= reported + 1, err
    assert Network.load(tmp_path / "model.npz").sizes == (784, 30, 10)


def test_interrupt_saves_the_network_as_it_is(capsys, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    fit = Network.fit

    def fit_interrupted_in_epoch_3(self, *args, callback, **kwargs):
        def report(epoch, history):
            callback(epoch, history)
            if epoch == 2:
                raise KeyboardInterrupt  # as Ctrl-C during epoch 3 would

        return fit(self, *args, callback=report, **kwargs)

    monkeypatch.setattr(Network, "fit", fit_interrupted_in_epoch_3)
    assert main(SMALL + ["--epochs", "5", "--save", "net.npz", "--plot", "curves.png"]) == 130
    out, err = capsys.readouterr()
    assert err == ("bpcore: interrupted after epoch 2; saved model to net.npz; saved training "
                   "curves to curves.png\n")
    assert len(out.splitlines()) == 3 and "test accuracy:" not in out
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_SIGNATURE
    (X, y), _ = load_mnist_subset()
    expected = Network([784, 16, 10], init="gaussian", seed=0)
    fit(expected, X, y, 2, 10, 3.0)
    saved = Network.load(tmp_path / "net.npz")
    for a, b in zip(saved.weights + saved.biases, expected.weights + expected.biases):
        np.testing.assert_array_equal(a, b)


def test_plot_writes_the_training_curves(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(SMALL + ["--epochs", "2", "--plot", "curves.png"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "saved training curves to curves.png"
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plot_without_matplotlib_fails_before_training(capsys, monkeypatch):
    for name in ["matplotlib", *(m for m in sys.modules if m.startswith("matplotlib."))]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it fails
    monkeypatch.delitem(sys.modules, "bpcore.plot", raising=False)
    monkeypatch.delattr(bpcore, "plot", raising=False)
    assert main(SMALL + ["--plot", "curves.png"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("bpcore: error: --plot needs matplotlib")
    assert err.endswith("pip install matplotlib (or pip install \".[plot]\" in bpcore's source "
                        "tree)\n")


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "-1"], "lr must be >= 0"),
    (["train", "--momentum", "1"], "momentum must be < 1"),
    (["train", "--threads", "0"], "num_threads must be >= 1"),
    (["train", "--sizes", "784,30,5"], "--sizes must start with 784"),
    (["train", "--activations", "sigmoid,bogus"], "unknown activations[1] 'bogus'"),
    (["train", "--sizes", "784,x,10"], "argument --sizes: expected comma-separated integers"),
    (["train", "--cost", "bogus"], "argument --cost: invalid choice: 'bogus'"),
    (["train", "--epochs", "2.5"], "argument --epochs: invalid int value"),
    (["train", "--validation-split", "1"], "--validation-split must be a fraction in (0, 1), "
                                           "got 1.0"),
    (["train", "--early-stopping", "3"], "--early-stopping needs --validation-split"),
    (["train", "--validation-split", "0.1", "--early-stopping", "0"],
     "--early-stopping must be >= 1 epoch, got 0"),
    (["train", "--save", "no/such/dir/net.npz"], "--save no/such/dir/net.npz: directory "),
    (["evaluate"], "the following arguments are required: MODEL"),
    (["evaluate", "absent.npz"], "No such file or directory: 'absent.npz'"),
    (["predict", "absent.npz"], "the following arguments are required: INPUT"),
    (["gradcheck", "--examples", "0"], "--examples must be >= 1, got 0"),
    (["gradcheck", "--activations", "tanh,sigmoid", "--cost", "log_likelihood"],
     "cost 'log_likelihood' needs an output activation in ['softmax']"),
    (["bench", "--configs", "N1-f64,X"], "unknown config(s) ['X']; choose from ['N1-f64', "),
    (["bogus"], "argument COMMAND: invalid choice"),
    ([], "required: COMMAND"),
])
def test_bad_arguments_exit_2_with_one_error_line(capsys, argv, message):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("bpcore: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in err


def test_missing_data_offline_names_files_and_directories(capsys, tmp_path):
    assert main(["train", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bpcore: error: MNIST files not found: {tmp_path} (path) lacks "
                          "train-images-idx3-ubyte.gz, ")
    assert "(download cache) lacks train-images-idx3-ubyte.gz, " in err
    assert "downloading them failed: https://" in err and "Network is unreachable" in err
    assert err.count("\n") == 1


def test_bad_argument_as_module_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bpcore", "train", "--batch-size", "0"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "bpcore: error: batch_size must be >= 1, got 0\n"


def test_debug_shows_the_exception():
    with pytest.raises(ValueError, match="lr must be >= 0"):
        main(["train", "--lr", "-1", "--debug"])


def test_divergence_exits_1(capsys):
    argv = SMALL + ["--activations", "relu,identity", "--lr", "1e3"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("bpcore: error: training diverged in epoch 1")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_shows_an_example(capsys, command):
    with pytest.raises(SystemExit) as excinfo:
        main([command, "--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert re.search(rf"^examples?:\n  bpcore {command}\b", out, re.MULTILINE), out
    assert "--debug" in out


def test_train_help_documents_progress_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--batch-size N" in out and "(default: 784,30,10)" in out
    assert "its unit is epochs" in out


# -- evaluate, predict -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A 784-16-10 network trained one epoch on the subset, and the file it is saved in."""
    (X, y), _ = load_mnist_subset()
    net = Network([784, 16, 10], seed=0)
    net.fit(X, y, 1, 10, 3.0, seed=0)
    path = tmp_path_factory.mktemp("model") / "net.npz"
    net.save(path)
    return str(path), net


def test_evaluate_prints_accuracy_cost_and_confusion_matrix(capsys, model):
    path, net = model
    assert main(["evaluate", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    _, (X, y) = load_mnist_subset()
    predicted = np.argmax(net.feedforward(X), axis=1)
    correct = int(np.sum(predicted == y))
    assert lines[0] == (f"{path} (784-16-10, sigmoid, quadratic cost, float64) on the test set "
                        "of the MNIST subset shipped with bpcore")
    assert lines[1] == f"accuracy: {correct / len(y):.4f} ({correct:,} of 2,000)"
    assert lines[2] == f"cost: {net.cost(X, y):.4f} (mean quadratic cost)"
    header, rows = lines[4], lines[5:]
    assert header.split() == ["true\\pred", *map(str, range(10))]
    assert len(rows) == 10 and {len(line) for line in rows} == {len(header)}
    matrix = np.array([[int(v.replace(",", "")) for v in row.split()[1:]] for row in rows])
    assert [row.split()[0] for row in rows] == [str(i) for i in range(10)]
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(y, minlength=10))
    np.testing.assert_array_equal(matrix.sum(axis=0), np.bincount(predicted, minlength=10))
    assert np.trace(matrix) == correct


@pytest.mark.parametrize("source, title", [("mnist", "MNIST"),
                                           ("fashion-mnist", "Fashion-MNIST"),
                                           ("data/mnist", "MNIST")])
def test_evaluate_reads_the_data_named_by_data(capsys, model, tmp_path, monkeypatch, source,
                                               title):
    # Both sets in $BPCORE_DATA, as copies of the subset.
    subset = files("bpcore") / "data" / "mnist-subset"
    for folder in ("mnist", "fashion-mnist"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for name in (name for pair in MNIST_FILES.values() for name in pair):
            (tmp_path / "data" / folder / (name + ".gz")).write_bytes(
                (subset / (name + ".gz")).read_bytes())
    monkeypatch.setenv("BPCORE_DATA", str(tmp_path / "data"))
    assert main(["evaluate", model[0]]) == 0
    from_subset = capsys.readouterr().out.splitlines()
    assert main(["evaluate", model[0], "--data", source]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"on the test set of {title}")
    assert lines[1:] == from_subset[1:]


def test_evaluate_rejects_a_non_mnist_model(capsys, tmp_path):
    Network([5, 3, 10], seed=0).save(tmp_path / "small.npz")
    assert main(["evaluate", "small.npz"]) == 2
    assert capsys.readouterr().err == (
        "bpcore: error: model small.npz must have 784 inputs (the 28x28 pixels) and 10 outputs "
        "(the classes) for MNIST, got sizes 5,3,10\n")


@pytest.fixture
def digits(tmp_path):
    """The first 7 test images of the subset as (n, 784), and in .npy and .csv files."""
    _, (X, _) = load_mnist_subset()
    X = X[:7]
    np.save(tmp_path / "digits.npy", X)
    np.save(tmp_path / "digits3d.npy", X.reshape(7, 28, 28))
    np.savetxt(tmp_path / "digits.csv", X, delimiter=",", fmt="%.9g")
    return X


def test_predict_writes_labels_to_stdout(capsys, model, digits):
    path, net = model
    expected = np.argmax(net.feedforward(digits), axis=1)
    for name in ("digits.npy", "digits3d.npy", "digits.csv"):
        assert main(["predict", path, name]) == 0
        assert capsys.readouterr().out == "".join(f"{label}\n" for label in expected)


def test_predict_writes_files_by_suffix(capsys, model, digits, tmp_path):
    path, net = model
    out = net.feedforward(digits)
    assert main(["predict", path, "digits.csv", "--out", "labels.npy"]) == 0
    assert capsys.readouterr().out == "wrote the predicted labels of 7 example(s) to labels.npy\n"
    labels = np.load(tmp_path / "labels.npy")
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.argmax(out, axis=1))
    assert main(["predict", path, "digits.npy", "--out", "labels.csv"]) == 0
    assert (tmp_path / "labels.csv").read_text().split() == [str(v) for v in labels]
    assert main(["predict", path, "digits.npy", "--proba", "--out", "a.csv"]) == 0
    np.testing.assert_allclose(np.loadtxt(tmp_path / "a.csv", delimiter=","), out, rtol=1e-8)
    assert main(["predict", path, "digits.npy", "--proba", "--out", "a.npy"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), out)


@pytest.mark.parametrize("name, content, message", [
    ("narrow.npy", np.zeros((3, 10)),
     "narrow.npy: expected one example of 784 values per row, got an array of shape (3, 10)"),
    ("none.npy", np.zeros((0, 784)), "none.npy: expected one example of 784 values per row, "
                                     "got an array of shape (0, 784)"),
    ("words.npy", np.array(["a"] * 784), "words.npy: expected numbers, got an array of dtype <U1"),
    ("empty.npy", b"", "empty.npy: not a .npy file of numbers (No data left in file)"),
    ("empty.csv", b"", "empty.csv: expected one example of 784 values per row, got an array "
                       "of shape (0, 1)"),
    ("ragged.csv", b"1,2\n3\n", "ragged.csv: not a .csv file of numbers (the number of columns "
                                 "changed from 2 to 1 at row 2;"),
    ("digits.txt", b"0\n", "INPUT must be a .npy or a .csv file, got 'digits.txt'"),
])
def test_predict_rejects_bad_input_in_one_line(capsys, model, tmp_path, name, content, message):
    if isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    else:
        np.save(tmp_path / name, content)
    assert main(["predict", model[0], name]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("bpcore: error: " + message) and err.count("\n") == 1


# -- info, gradcheck, bench --------------------------------------------------------------
def test_info_is_human_readable(capsys):
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    info = bpcore.build_info()
    assert lines[0] == f"bpcore {bpcore.__version__}"
    fields = dict(re.fullmatch(r"([\w ]+):\s+(.+)", line).groups() for line in lines[1:])
    assert list(fields) == ["OpenMP", "threads", "compile args", "compiler", "NumPy", "Python"]
    state = "on" if info["openmp"] else "off"
    assert fields["OpenMP"].startswith(state + " (") and info["openmp_reason"] in fields["OpenMP"]
    assert fields["threads"].startswith(f"{info['num_threads']} ")
    assert fields["compile args"] == info["compile_args"]
    assert fields["NumPy"] == np.__version__


def test_info_json_is_build_info(capsys):
    import json

    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == bpcore.build_info()


@pytest.mark.parametrize("argv, layers", [
    ([], 2),
    (["--sizes", "5,8,4,3", "--activations", "tanh,relu,softmax", "--cost", "log_likelihood",
      "--dtype", "float32"], 3),
    (["--sizes", "3,4,2", "--activations", "sigmoid", "--cost", "cross_entropy"], 2),
])
def test_gradcheck_passes_for_a_correct_gradient(capsys, argv, layers):
    assert main(["gradcheck", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("gradient check of ") and "10 random examples (seed 0)" in lines[0]
    assert lines[1].split() == ["layer", "checked", "max", "rel.", "error"]
    errors = [float(line.split()[2]) for line in lines[2:2 + layers]]
    assert [int(line.split()[0]) for line in lines[2:2 + layers]] == list(range(1, layers + 1))
    assert all(0 <= e <= 1e-2 for e in errors)
    assert lines[-1].endswith(": ok") and len(lines) == 3 + layers


def test_gradcheck_exits_1_when_a_layer_fails(capsys, monkeypatch):
    failed = GradientCheck(max_rel_error_per_layer=(1e-9, 0.5), n_checked_per_layer=(25, 18),
                           tolerance=1e-6, eps=6e-6)
    monkeypatch.setattr("bpcore.gradcheck.check_gradients", lambda net, X, Y: failed)
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and out.endswith("FAILED in layer(s) [2]\n")


BENCH_ROW = re.compile(r"(?P<config>N1-f64|N1-f32|M-f32) +(?P<threads>\d+) +[\d,]+")


def test_bench_prints_a_row_per_config_and_thread_count(capsys):
    assert main(["bench", "--configs", "N1-f32,M-f32", "--threads", "1", "--samples", "128"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["config", "threads", "samples/s"]
    rows = [BENCH_ROW.fullmatch(line) for line in lines[2:4]]
    assert [(m["config"], m["threads"]) for m in rows] == [("N1-f32", "1"), ("M-f32", "1")]
    assert lines[4].startswith("bpcore against NumPy and PyTorch: ")


def test_bench_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["bench", "--configs", "N1-f64", "--threads", "1", "--samples", "64",
                 "--plot", "bench.png"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "saved the chart to bench.png"
    assert (tmp_path / "bench.png").read_bytes()[:8] == PNG_SIGNATURE


# -- what a new user tripped over (issue 13) -----------------------------------------------
def test_version(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["--version"])
    assert excinfo.value.code == 0
    assert capsys.readouterr().out == f"bpcore {bpcore.__version__}\n"


@pytest.mark.parametrize("argv, message", [
    (["--plot", "out.jpgg"], "--plot out.jpgg: matplotlib cannot write '.jpgg' files; use a "
                             "suffix from "),
    (["--plot", "."], "--plot .: is a directory"),
    (["--save", "."], "--save .: is a directory"),
])
def test_bad_output_paths_fail_before_training(capsys, monkeypatch, argv, message):
    pytest.importorskip("matplotlib")

    def no_training(*args, **kwargs):
        raise AssertionError("fit was called")

    monkeypatch.setattr(Network, "fit", no_training)
    assert main(SMALL + argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("bpcore: error: " + message), err


def test_no_progress_warns_and_strict_exits_1(capsys):
    argv = SMALL + ["--epochs", "2", "--lr", "1e6"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    warning = [line for line in err.splitlines() if line.startswith("bpcore: warning: ")]
    assert len(warning) == 1 and "no progress" in warning[0] and "lower the learning rate" in \
        warning[0], err
    assert out.splitlines()[-1].startswith("test accuracy: ")
    assert main(argv + ["--strict"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[-1].startswith("test accuracy: ")
    assert err.splitlines()[-1] == ("bpcore: error: --strict: training made no progress (see "
                                    "the warning above)")


def test_strict_passes_a_healthy_run(capsys):
    assert main(SMALL + ["--epochs", "2", "--strict"]) == 0
    assert "warning" not in capsys.readouterr().err


