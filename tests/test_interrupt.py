"""Ctrl-C during a compiled epoch: prompt KeyboardInterrupt, consistent network.

A child process trains; the parent sends it a real SIGINT once an epoch has
completed.  The child checks that the network equals an uninterrupted run of
the completed epochs, bitwise, and reports how long the interrupt took (printed
for the record, not asserted: timing is not a test criterion here).
"""
import signal
import subprocess
import sys
import textwrap
import time

import pytest

CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from bpcore import Network

    rng = np.random.default_rng(0)
    X = rng.random((8000, 200))
    y = rng.integers(0, 10, 8000)

    def make():
        return Network([200, 64, 10], seed=1, num_threads=2)

    net = make()
    def ready(epoch, history):
        print("epoch", epoch, flush=True)

    try:
        net.fit(X, y, 10000, 10, 0.05, momentum=0.5, seed=2, callback=ready)
    except KeyboardInterrupt as exc:
        caught = time.time()
        done = exc.history.epochs
        again = make()
        again.fit(X, y, done, 10, 0.05, momentum=0.5, seed=2)
        same = all(np.array_equal(a, b) for a, b in
                   zip(net.weights + net.biases, again.weights + again.biases))
        print(f"caught {caught!r} epochs {done} same {same}", flush=True)
        sys.exit(0)
    sys.exit(3)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a child on Windows")
def test_sigint_stops_fit_and_restores_last_epoch(tmp_path):
    # Run outside the checkout, whose bpcore/ source folder must not shadow the package.
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                             cwd=tmp_path)
    try:
        first = child.stdout.readline()
        assert first.startswith("epoch 1"), first
        time.sleep(0.2)  # well inside the next epoch
        sent = time.time()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, out
    report = out.strip().splitlines()[-1].split()
    assert report[0] == "caught" and report[-2:] == ["same", "True"], out
    assert int(report[3]) >= 1
    print(f"interrupt latency: {float(report[1]) - sent:.3f} s")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a child on Windows")
def test_ctrl_c_in_the_first_epoch_of_the_cli_saves_nothing(tmp_path):
    # A network large enough that its first epoch on the shipped subset takes seconds; the
    # header is printed just before fit starts.
    child = subprocess.Popen(
        [sys.executable, "-m", "bpcore", "train", "--sizes", "784,1500,1500,10", "--epochs",
         "3", "--threads", "1", "--save", "model.npz", "--plot", "curves.png"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        header = child.stdout.readline()
        assert header.startswith("bpcore "), header
        time.sleep(0.3)  # inside fit's first epoch
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert out == "", out  # no epoch was reported
    assert "saved model" not in err and "Traceback" not in err, err
    assert err.startswith("bpcore: interrupted"), err
    assert not (tmp_path / "model.npz").exists() and not (tmp_path / "curves.png").exists()



@pytest.mark.parametrize("where", ["callback", "recording"])
def test_ctrl_c_outside_the_compiled_epoch_keeps_the_recorded_epochs(where):
    """Ctrl-C lands between epochs as well as inside one: in the callback once epoch 2
    is recorded, or in epoch 3 after its steps, its history recorded in part (its
    validation cost, not yet its accuracy: the interrupt comes from ``_classify``).
    Either way ``exc.history`` holds exactly epochs 1 and 2, every list of the same
    length as an uninterrupted 2-epoch fit's and equal to it, and the network is
    bitwise that fit's."""
    import numpy as np
    from bpcore import Network

    rng = np.random.default_rng(0)
    X, y = rng.random((300, 12)), rng.integers(0, 3, 300)
    val = (X[:50], y[:50])

    def make():
        return Network([12, 8, 3], seed=1, num_threads=1)

    net, armed = make(), []
    classify = net._classify

    def interrupting_classify(*args, **kwargs):
        if armed:
            raise KeyboardInterrupt
        return classify(*args, **kwargs)

    def callback(epoch, history):
        if epoch == 2:
            if where == "callback":
                raise KeyboardInterrupt
            armed.append(True)

    net._classify = interrupting_classify
    with pytest.raises(KeyboardInterrupt) as info:
        net.fit(X, y, 5, 10, 0.05, momentum=0.5, seed=2, validation_data=val,
                callback=callback)
    assert armed == ([] if where == "callback" else [True])
    again = make()
    want = again.fit(X, y, 2, 10, 0.05, momentum=0.5, seed=2, validation_data=val)
    got = info.value.history
    assert got.epochs == 2
    for name, values in want.to_dict().items():
        assert len(getattr(got, name)) == len(values), name
    assert got.train_cost == want.train_cost
    assert got.val_cost == want.val_cost and got.val_accuracy == want.val_accuracy
    for a, b in zip(net.weights + net.biases, again.weights + again.biases):
        assert np.array_equal(a, b)
