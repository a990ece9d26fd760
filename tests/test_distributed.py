"""Data-parallel training over MPI, on two ranks on loopback (one thread each).

Each test starts ``mpiexec -n 2`` with a timeout, so that a deadlock fails the
test instead of blocking the run.  ``tests/distributed/`` holds the tests that run
on every rank; this file starts them, the command line and a real Ctrl-C.
Skipped when mpi4py or mpiexec are missing (``pip install ".[mpi]" (in the bpcore source tree)``) unless
``BPCORE_REQUIRE_MPI=1`` (set by CI) makes that a failure.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Seconds an mpiexec run may take; each takes a few (start-up included).
TIMEOUT = 300


@pytest.fixture(scope="module")
def mpiexec():
    missing = None
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        missing = "mpi4py"
    here = Path(sys.executable).parent  # a virtual environment's mpiexec comes first
    exe = shutil.which("mpiexec", path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))
    if missing is None and exe is None:
        missing = "mpiexec"
    if missing is not None:
        message = f'{missing} is not installed: pip install ".[mpi]" (in the bpcore source tree)'
        if os.environ.get("BPCORE_REQUIRE_MPI") == "1":
            pytest.fail(message + " (BPCORE_REQUIRE_MPI=1)")
        pytest.skip(message)
    return exe


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def run(mpiexec, args, cwd, timeout=TIMEOUT):
    """``mpiexec -n 2 python ARGS``: (exit status, stdout + stderr)."""
    try:
        done = subprocess.run([mpiexec, "-n", "2", sys.executable, *args], cwd=cwd, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"mpiexec did not finish in {timeout} s (a deadlock?):\n{out[-5000:]}")
    return done.returncode, done.stdout


def test_the_distributed_tests_pass_on_two_ranks(mpiexec):
    status, out = run(mpiexec, ["-m", "pytest", "tests/distributed", "-q", "-p",
                                "no:cacheprovider"], cwd=ROOT)
    # mpiexec's status is nonzero when any rank's is; the ranks' summaries may interleave
    assert status == 0, out[-8000:]
    assert out.count(" passed") == 2 and " failed" not in out, out[-3000:]


def test_cli_train_distributed_prints_once_and_trains_as_one_process(mpiexec, tmp_path):
    status, out = run(mpiexec, ["-m", "bpcore", "train", "--distributed", "--epochs", "2",
                                "--save", "net.npz"], cwd=tmp_path)
    assert status == 0, out
    assert out.count("test accuracy:") == 1 and out.count("epoch 2/2") == 1, out
    assert "2 MPI ranks x 1 thread(s)" in out
    alone = subprocess.run([sys.executable, "-m", "bpcore", "train", "--epochs", "2"],
                           cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=TIMEOUT)
    accuracy = re.compile(r"test accuracy: ([0-9.]+)")
    # the parameters agree to ~1e-15: no test example changes class
    assert accuracy.findall(out)[-1] == accuracy.findall(alone.stdout)[-1], (out, alone.stdout)
    assert (tmp_path / "net.npz").is_file()


RANK = textwrap.dedent("""
    import os, sys
    import numpy as np
    from mpi4py import MPI
    from bpcore import Network

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    print(f"rank {rank} pid {os.getpid()}", flush=True)
    rng = np.random.default_rng(0)
    X, y = rng.random((1000, 50)), rng.integers(0, 10, 1000)

    def make():
        return Network([50, 32, 10], seed=1, num_threads=1)

    def ready(epoch, history):
        print(f"rank {rank} epoch {epoch}", flush=True)

    net = make()
    try:
        net.fit(X, y, 100000, 10, 0.05, momentum=0.5, seed=2, comm=comm, callback=ready)
    except KeyboardInterrupt as exc:
        done = exc.history.epochs
        again = make()
        again.fit(X, y, done, 10, 0.05, momentum=0.5, seed=2, comm=comm)
        same = all(np.array_equal(a, b) for a, b in
                   zip(net.weights + net.biases, again.weights + again.biases))
        print(f"rank {rank} interrupted ({exc}) after {done} epochs, same {same}", flush=True)
        sys.exit(0)
    sys.exit(3)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a rank on Windows")
def test_ctrl_c_on_one_rank_stops_both(mpiexec, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    job = subprocess.Popen([mpiexec, "-n", "2", sys.executable, str(script)], cwd=tmp_path,
                           env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    lines, pids, started = [], {}, False
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = job.stdout.readline()
            if not line:
                break
            lines.append(line)
            # mpiexec forwards the two ranks' writes as they come, so one rank's text
            # may land in the middle of the other's line: look anywhere in it
            for found in re.finditer(r"rank (\d) pid (\d+)", line):
                pids[int(found[1])] = int(found[2])
            if re.search(r"rank 1 epoch 1(?!\d)", line):
                started = True
                break
        assert 1 in pids and started, "".join(lines)
        time.sleep(0.2)  # into epoch 2
        os.kill(pids[1], signal.SIGINT)
        out, _ = job.communicate(timeout=TIMEOUT)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    out = "".join(lines) + out
    assert job.returncode == 0, out
    for rank, origin in ((0, "interrupted on rank 1"), (1, "interrupted on rank 1")):
        assert re.search(rf"rank {rank} interrupted \({origin}\) after \d+ epochs, same True",
                         out), out
    epochs = re.findall(r"interrupted \(.*\) after (\d+) epochs", out)
    assert len(set(epochs)) == 1 and int(epochs[0]) >= 1, out


# -- without MPI ------------------------------------------------------------------------------
def _python(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_import_bpcore_does_not_import_mpi4py(tmp_path):
    done = _python("""
        import sys
        import bpcore, bpcore.distributed, bpcore.cli
        assert "mpi4py" not in sys.modules, sorted(m for m in sys.modules if "mpi" in m)
    """, tmp_path)
    assert done.returncode == 0, done.stderr


def test_comm_without_mpi4py_names_the_extra(tmp_path):
    done = _python("""
        import sys
        sys.modules["mpi4py"] = None  # as if it were not installed
        import numpy as np
        from bpcore import Network
        try:
            Network([2, 3, 1], seed=0).fit(np.zeros((4, 2)), np.zeros((4, 1)), 1, 2, 0.1,
                                           comm=object())
        except ImportError as exc:
            print(exc)
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert 'fit(comm=...) needs mpi4py' in done.stdout and 'pip install ".[mpi]"' in done.stdout


def test_the_reference_network_refuses_comm():
    import numpy as np
    from bpcore import reference
    net = reference.Network([2, 3, 1], seed=0)
    with pytest.raises(TypeError, match="comm: bpcore.reference.Network trains in one "
                                        "process; bpcore.Network trains over MPI"):
        net.fit(np.zeros((4, 2)), np.zeros((4, 1)), 1, 2, 0.1, comm=object())
