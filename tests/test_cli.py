"""The command line: ``bpcore.cli.main`` in-process and ``python -m bpcore`` as a subprocess."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

import bpcore
from bpcore.cli import main

#: A quick run on the shipped subset: one epoch of a small network.
SMALL = ["train", "--sizes", "784,16,10", "--epochs", "1", "--threads", "2"]

EPOCH_LINE = re.compile(r"epoch 1/1  train cost \d+\.\d{4}  test cost \d+\.\d{4}  "
                        r"test accuracy (?P<accuracy>[01]\.\d{4})  \d+\.\d\d s  "
                        r"\(\d{1,3}(?:,\d{3})* samples/s\)")


def threads_shown(n: int) -> str:
    """How the header reports --threads n: a serial build always runs on one thread."""
    return f"{n} thread(s)" if bpcore.build_info()["openmp"] else "1 thread (built without OpenMP)"


def check_training_output(out: str) -> None:
    header, epoch, final = out.splitlines()
    assert "MNIST subset" in header and "sizes 784,16,10" in header
    assert header.endswith("float64, " + threads_shown(2))
    match = EPOCH_LINE.fullmatch(epoch)
    assert match, epoch
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
                 "--threads", "1"]) == 0
    header, final = capsys.readouterr().out.splitlines()
    assert header.endswith("float32, " + threads_shown(1))
    assert re.fullmatch(r"test accuracy: [01]\.\d{4}", final)


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "-1"], "lr must be >= 0"),
    (["train", "--momentum", "1"], "momentum must be < 1"),
    (["train", "--threads", "0"], "num_threads must be >= 1"),
    (["train", "--sizes", "784,30,5"], "--sizes must start with 784"),
    (["train", "--activations", "sigmoid,bogus"], "unknown activations[1] 'bogus'"),
    (["train", "--sizes", "784,x,10"], "argument --sizes: expected comma-separated integers"),
    (["train", "--cost", "bogus"], "argument --cost: invalid choice: 'bogus'"),
    (["train", "--epochs", "2.5"], "argument --epochs: invalid int value"),
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


def test_missing_data_directory_files(capsys, tmp_path):
    assert main(["train", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bpcore: error: MNIST file(s) not found in " + str(tmp_path))
    assert "train-images-idx3-ubyte.gz" in err


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


def test_train_help_shows_an_example(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["train", "--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and "python -m bpcore train --data" in out
    assert "--batch-size N" in out and "(default: 784,30,10)" in out


def test_info_prints_build_info(capsys):
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    info = dict(line.split(": ", 1) for line in lines)
    assert len(info) == len(lines)
    assert {"openmp", "compile_args", "num_threads", "version", "numpy"} <= info.keys()
    assert info["version"] == bpcore.__version__
    assert info["openmp"] in ("True", "False")
