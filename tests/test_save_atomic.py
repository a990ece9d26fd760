"""A save killed half-way never leaves a half-written model where the old one was."""
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from bpcore import Network

CHILD = textwrap.dedent("""
    import sys
    from bpcore import Network
    net = Network([1500, 1500, 10], seed=2)     # ~18 MB: a save takes a while
    print("saving", flush=True)
    while True:
        net.save(sys.argv[1])
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("delay", [0.05, 0.13, 0.31])
def test_killed_save_leaves_old_or_new_model(tmp_path, delay):
    path = tmp_path / "model.npz"
    old = Network([1500, 1500, 10], seed=1)
    old.save(path)
    new = Network([1500, 1500, 10], seed=2)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True, cwd=tmp_path)
    try:
        assert child.stdout.readline().strip() == "saving"
        time.sleep(delay)  # somewhere inside one of the saves
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    loaded = Network.load(path)  # raises if the file were partial
    assert any(all(np.array_equal(a, b) for a, b in zip(loaded.weights, ref.weights))
               for ref in (old, new))
