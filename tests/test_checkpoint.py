"""fit(checkpoint=, checkpoint_every=, resume=): exact resume after a real SIGKILL, and the file.

The central test kills a child process with SIGKILL while it trains (after it
has written some checkpoints; the kill lands wherever the child is, possibly
inside an epoch or a checkpoint write), resumes from the checkpoint in another
process, and compares the final parameters bitwise with a run that was never
interrupted.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import bpcore
from bpcore import Network, reference
from bpcore import _checkpoint
from bpcore.optim import SGD, Adam, AdamW
from bpcore.schedules import Adaptive, Cosine, StepDecay
from conftest import params_of

# The child: trains a small network with Adam, a cosine schedule and shuffling by
# the network's own generator, checkpointing every epoch, and prints each epoch
# after its checkpoint is written.  After epoch 3 it waits for the parent's go (a
# line on stdin); the parent kills it as soon as it has printed epoch 4, wherever
# it is then (training, writing a checkpoint, or at the latest waiting after 30).
TRAIN = textwrap.dedent("""
    import sys
    import numpy as np
    from bpcore import Network
    from bpcore.optim import Adam
    from bpcore.schedules import Cosine

    path, resume, wait = sys.argv[1], sys.argv[2] == "resume", sys.argv[3] == "wait"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 20))
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1)
    net = Network([20, 32, 3], activations=["tanh", "softmax"], cost="log_likelihood",
                  seed=1, num_threads=1)

    def report(epoch, history):
        print(epoch, flush=True)
        if wait and epoch in (3, 30):  # 3: the parent reads the checkpoint and lets us
            sys.stdin.readline()         # go on; 30: we never get that far (killed before)

    net.fit(X, y, 40, 16, optimizer=Adam(0.003, weight_decay=1e-4), schedule=Cosine(40),
            checkpoint=path, checkpoint_every=1, resume=resume, callback=report)
    np.save(path + ".final.npy", np.concatenate([a.ravel() for a in net.weights + net.biases]))
""")


def _child(tmp_path, *args, **kwargs):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return subprocess.Popen([sys.executable, str(script), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=tmp_path, **kwargs)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_resume_after_sigkill_is_bitwise_an_uninterrupted_run(tmp_path):
    interrupted = str(tmp_path / "interrupted.ckpt")
    child = _child(tmp_path, interrupted, "fresh", "wait")
    try:
        for expected in ("1", "2", "3"):
            assert child.stdout.readline().strip() == expected
        assert _checkpoint.load(interrupted, _net()).epoch == 3
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "4"  # it trains on: kill it mid-run
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    done = _checkpoint.load(interrupted, _net()).epoch
    assert 4 <= done <= 30

    resumed = _child(tmp_path, interrupted, "resume", "nowait")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0
    assert out.split() == [str(e) for e in range(done + 1, 41)]  # only the missing epochs

    whole = str(tmp_path / "whole.ckpt")
    uninterrupted = _child(tmp_path, whole, "fresh", "nowait")
    uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0
    a, b = np.load(interrupted + ".final.npy"), np.load(whole + ".final.npy")
    assert a.dtype == b.dtype == np.float64 and np.array_equal(a, b)
    # the resumed run's history is the whole run's
    h1, h2 = (json.loads(str(np.load(p)["meta"]))["history"] for p in (interrupted, whole))
    assert h1["train_cost"] == h2["train_cost"] and h1["lr"] == h2["lr"]


def _net(**kwargs):
    return Network([20, 32, 3], activations=["tanh", "softmax"], cost="log_likelihood",
                   seed=1, **kwargs)


# -- in-process resumes, for every optimizer, schedule and network ---------------------------

@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 5))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


@pytest.mark.parametrize("kind", ["compiled", "reference"])
@pytest.mark.parametrize("optimizer, schedule, seed", [
    (lambda: None, lambda: None, None),  # fit(lr=, momentum=, l2=): the velocity is saved
    (lambda: SGD(0.1, momentum=0.9, nesterov=True), lambda: StepDecay(2, 0.5), 7),
    (lambda: AdamW(0.01), lambda: Adaptive(tol=0.05, patience=1), None),
])
def test_resume_in_process_is_bitwise(tmp_path, data, kind, optimizer, schedule, seed):
    X, y = data
    make = (lambda: Network([5, 6, 2], seed=0, num_threads=1)) if kind == "compiled" else (
        lambda: reference.Network([5, 6, 2], seed=0))
    sgd = {"lr": 0.5, "momentum": 0.8, "l2": 0.1}

    def fit(net, epochs, **kw):
        opt, sched = optimizer(), schedule()
        args = sgd if opt is None else {"optimizer": opt}
        return net.fit(X, y, epochs, 8, schedule=sched, seed=seed, **args, **kw)

    whole = make()
    expected = fit(whole, 6)
    path = tmp_path / "run.ckpt"
    first = make()
    fit(first, 6, checkpoint=path, checkpoint_every=2, callback=lambda e, h: e == 4)
    assert _checkpoint.load(str(path), first).epoch == 4  # stopped by the callback after 4
    second = make()
    history = fit(second, 6, checkpoint=path, resume=True)
    for a, b in zip(params_of(second), params_of(whole)):
        assert np.array_equal(a, b)
    assert history.train_cost == expected.train_cost and history.lr == expected.lr
    assert history.epochs == 6


def test_resume_without_a_checkpoint_starts_afresh(tmp_path, data):
    X, y = data
    path = tmp_path / "new.ckpt"
    a, b = Network([5, 3, 2], seed=0), Network([5, 3, 2], seed=0)
    a.fit(X, y, 3, 10, lr=0.3, checkpoint=path, resume=True)
    b.fit(X, y, 3, 10, lr=0.3)
    for p, q in zip(params_of(a), params_of(b)):
        assert np.array_equal(p, q)
    assert _checkpoint.load(str(path), a).epoch == 3  # written after the last epoch
    # resuming a finished run trains no more
    assert a.fit(X, y, 3, 10, lr=0.3, checkpoint=path, resume=True).epochs == 3
    for p, q in zip(params_of(a), params_of(b)):
        assert np.array_equal(p, q)


# -- refusals -------------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path, data):
    X, y = data
    path = tmp_path / "run.ckpt"
    Network([5, 4, 2], seed=0).fit(X, y, 2, 10, optimizer=Adam(), checkpoint=path)
    return path


def test_another_architecture_is_refused(saved, data):
    X, y = data
    for net in (Network([5, 3, 2], seed=0), Network([5, 4, 2], activations="tanh"),
                Network([5, 4, 2], dtype="float32")):
        with pytest.raises(ValueError, match="was written by a network of sizes"):
            net.fit(X, y, 3, 10, optimizer=Adam(), checkpoint=saved, resume=True)


def test_another_optimizer_schedule_or_data_is_refused(saved, data):
    X, y = data
    net = Network([5, 4, 2], seed=0)
    with pytest.raises(ValueError, match="optimizer Adam, this fit uses SGD"):
        net.fit(X, y, 3, 10, optimizer=SGD(0.1), checkpoint=saved, resume=True)
    with pytest.raises(ValueError, match="schedule None, this fit uses Cosine"):
        net.fit(X, y, 3, 10, optimizer=Adam(), schedule=Cosine(3), checkpoint=saved,
                resume=True)
    with pytest.raises(ValueError, match="batch_size=10, this fit has batch_size=5"):
        net.fit(X, y, 3, 5, optimizer=Adam(), checkpoint=saved, resume=True)
    with pytest.raises(ValueError, match="n_examples=90, this fit has n_examples=40"):
        net.fit(X[:40], y[:40], 3, 10, optimizer=Adam(), checkpoint=saved, resume=True)
    with pytest.raises(ValueError, match="holds 2 epochs, more than this fit's epochs=1"):
        net.fit(X, y, 1, 10, optimizer=Adam(), checkpoint=saved, resume=True)


def _corrupt(path, how):
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        raw = raw[:len(raw) // 2]
    elif how == "flipped":  # a byte inside the first array's data: its CRC no longer matches
        raw[200] ^= 0xFF
    elif how == "empty":
        raw = bytearray()
    elif how == "text":
        raw = bytearray(b"not a checkpoint\n")
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty", "text"])
def test_a_damaged_checkpoint_is_refused(saved, data, how):
    X, y = data
    _corrupt(saved, how)
    with pytest.raises(ValueError, match="is not a valid bpcore checkpoint"):
        Network([5, 4, 2]).fit(X, y, 3, 10, optimizer=Adam(), checkpoint=saved, resume=True)


def _rewrite(path, change):
    """Rewrite the archive with ``change(contents)`` applied (contents: name -> array)."""
    with np.load(path, allow_pickle=False) as archive:
        contents = {k: archive[k] for k in archive.files}
    change(contents)
    with open(path, "wb") as file:  # np.savez would add ".npz" to a path
        np.savez(file, **contents)


@pytest.mark.parametrize("change, match", [
    (lambda c: c.pop("w1"), r"arrays \['w1'\] missing"),
    (lambda c: c.update(extra=np.zeros(2)), r"\['extra'\] unexpected"),
    (lambda c: c.update(w1=c["w1"][:, :2]), "w1 is float64 of shape"),
    (lambda c: c.update(b2=np.full_like(c["b2"], np.nan)), "b2 contains NaN"),
    (lambda c: c.update(meta=np.array("{")), "'meta' is not JSON"),
    (lambda c: c.update(meta=np.array(json.dumps({"format": "other"}))), "does not say format"),
    (lambda c: c.update(meta=np.array(str(c["meta"]).replace('"version": 1', '"version": 9'))),
     "format version 9 is not supported"),
    (lambda c: c.update({"optimizer.exp_avg": c["optimizer.exp_avg"][:3]}), "exp_avg"),
])
def test_an_inconsistent_checkpoint_is_refused(saved, data, change, match):
    X, y = data
    _rewrite(saved, change)
    with pytest.raises(ValueError, match=match):
        Network([5, 4, 2]).fit(X, y, 3, 10, optimizer=Adam(), checkpoint=saved, resume=True)


def test_arguments_are_checked(tmp_path, data):
    X, y = data
    net = Network([5, 4, 2])
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        net.fit(X, y, 1, 10, lr=0.1, checkpoint=tmp_path / "c", checkpoint_every=0)
    with pytest.raises(TypeError, match="resume must be True or False"):
        net.fit(X, y, 1, 10, lr=0.1, checkpoint=tmp_path / "c", resume="yes")
    with pytest.raises(TypeError, match="checkpoint must be a str or os.PathLike"):
        net.fit(X, y, 1, 10, lr=0.1, checkpoint=3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        net.fit(X, y, 1, 10, lr=0.1, checkpoint=tmp_path / "missing" / "c")
    with pytest.raises(ValueError, match="resume=True needs checkpoint="):
        net.fit(X, y, 1, 10, lr=0.1, resume=True)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        net.fit(X, y, 1, 10, lr=0.1, checkpoint_every=0)


# -- the file -----------------------------------------------------------------------------------

def test_the_file_is_an_npz_without_pickle(saved):
    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None
    with np.load(saved, allow_pickle=False) as archive:
        assert all(archive[k].dtype != object for k in archive.files)
        meta = json.loads(str(archive["meta"]))
    assert meta["format"] == "bpcore-checkpoint" and meta["epoch"] == 2
    assert meta["optimizer"]["type"] == "Adam"
    assert meta["rng"]["bit_generator"] == "PCG64"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permissions_are_those_open_would_give(tmp_path):
    old = os.umask(0o027)
    try:
        path = tmp_path / "a.ckpt"
        with _checkpoint.atomic_write(str(path)) as f:
            f.write(b"x")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640  # 0666 less the umask
        os.chmod(path, 0o604)
        with _checkpoint.atomic_write(str(path)) as f:
            f.write(b"y")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o604  # the replaced file's mode
        assert path.read_bytes() == b"y"
    finally:
        os.umask(old)


def test_an_interrupted_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.ckpt"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with _checkpoint.atomic_write(str(path)) as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.ckpt"]  # no temporary file left


def test_history_round_trips_exactly():
    history = bpcore.History(train_cost=[0.1 + 0.2, 1 / 3], lr=[1e-3, 2.5e-7],
                             seconds=[0.5, 0.25])
    again = bpcore.History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert again == history
    with pytest.raises(ValueError, match="no list"):
        bpcore.History.from_dict({"accuracy": []})
    with pytest.raises(ValueError, match="must be a list of numbers"):
        bpcore.History.from_dict({"lr": ["0.1"]})
