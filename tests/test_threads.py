"""Thread-count settings, build information, and concurrent use from Python threads."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import bpcore
from conftest import params_of


#: A build without OpenMP runs every network on one thread, whatever is asked.
OPENMP = bpcore.build_info()["openmp"]


def _used(n):
    """The thread count a network asked for n threads really uses."""
    return n if OPENMP else 1


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_set_and_get_num_threads(restore_num_threads):
    bpcore.set_num_threads(3)
    assert bpcore.get_num_threads() == 3
    net = bpcore.Network([3, 2], seed=0)
    own = bpcore.Network([3, 2], seed=0, num_threads=5)
    assert net.num_threads == _used(3)   # follows the default
    assert own.num_threads == _used(5)   # its own setting wins
    assert bpcore.build_info()["num_threads"] == _used(3)
    bpcore.set_num_threads(1)
    assert net.num_threads == 1 and own.num_threads == _used(5)
    assert bpcore.build_info()["num_threads"] == 1
    net.num_threads = 4
    assert net.num_threads == _used(4)
    net.num_threads = None               # back to following the default
    assert net.num_threads == 1
    bpcore.set_num_threads(np.int64(2))  # NumPy integers are integers
    assert bpcore.get_num_threads() == 2 and type(bpcore.get_num_threads()) is int
    bpcore.set_num_threads(None)         # back to OMP_NUM_THREADS / all cores
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    expected = int(env) if env.isdigit() and int(env) >= 1 else _cores()
    assert bpcore.get_num_threads() == expected


@pytest.mark.parametrize("value, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                        ("4", TypeError), (True, TypeError)])
def test_set_num_threads_rejects(value, exc, restore_num_threads):
    bpcore.set_num_threads(2)
    with pytest.raises(exc):
        bpcore.set_num_threads(value)
    assert bpcore.get_num_threads() == 2   # unchanged


def _run_python(code, **env_changes):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(env_changes)
    # cwd outside the repository: from its root, the Cython folder bpcore/ would
    # shadow the installed package
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, cwd=os.path.dirname(sys.executable))
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


CODE = ("import bpcore; n = bpcore.Network([3, 2], seed=0); "
        "print(bpcore.get_num_threads(), n.num_threads, bpcore.build_info()['num_threads'], "
        "bpcore.build_info()['openmp'])")


@pytest.mark.parametrize("value, expected", [("3", 3), ("1", 1), ("5,2", 5), (" 2 ", 2)])
def test_omp_num_threads_is_respected(value, expected):
    default, per_net, info, openmp = _run_python(CODE, OMP_NUM_THREADS=value)
    assert int(default) == expected
    assert int(per_net) == int(info) == (expected if openmp == "True" else 1)


@pytest.mark.parametrize("value", [None, "", "0", "abc", "-2"])
def test_unset_or_invalid_omp_num_threads_means_all_cores(value):
    env = {} if value is None else {"OMP_NUM_THREADS": value}
    default, per_net, _, openmp = _run_python(CODE, **env)
    assert int(default) == _cores()
    assert int(per_net) == (_cores() if openmp == "True" else 1)


def test_build_info_keys_and_types():
    info = bpcore.build_info()
    types = {"version": str, "openmp": bool, "openmp_version": int, "openmp_reason": str,
             "compile_args": str, "compiler": str, "isa": str, "l2_bytes": int, "kernels": str,
             "kernels_available": list, "num_threads": int, "cores": int,
             "numpy": str, "python": str, "machine": str}
    assert set(info) == set(types)
    for key, kind in types.items():
        assert type(info[key]) is kind, (key, info[key])
    assert info["kernels"] in info["kernels_available"]
    assert "baseline" in info["kernels_available"]
    assert set(info["kernels_available"]) <= set(VARIANTS)
    assert info["version"] == bpcore.__version__
    assert info["numpy"] == np.__version__
    assert info["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert info["cores"] == _cores() and info["cores"] >= 1
    assert info["num_threads"] >= 1
    if info["openmp"]:
        assert info["openmp_version"] >= 200505  # OpenMP 2.5 or later, a yyyymm date
        assert info["num_threads"] == bpcore.get_num_threads()
    else:
        assert info["openmp_version"] == 0 and info["num_threads"] == 1


VARIANTS = ("x86-64-v4", "x86-64-v3", "baseline")

VARIANT_CODE = """
import hashlib, json, numpy as np, bpcore, bpcore.network
bpcore.network._MIN_PARALLEL_FLOP = 0  # really run this small network on 2 and 3 threads
rng = np.random.default_rng(0)
X = rng.normal(size=(97, 21)); y = rng.integers(0, 5, size=97)
digests, params = [], None
for threads in (1, 2, 3):
    net = bpcore.Network([21, 19, 13, 5], ["tanh", "relu", "softmax"], "log_likelihood",
                         seed=1, num_threads=threads)
    net.fit(X, y, epochs=2, batch_size=6, lr=0.1, momentum=0.5, l2=0.1, seed=2)
    flat = np.concatenate([w.ravel() for w in net.weights + net.biases])
    digests.append(hashlib.sha256(flat.tobytes()).hexdigest())
    params = flat.tolist()
info = bpcore.build_info()
print(json.dumps({"kernels": info["kernels"], "isa": info["isa"], "digests": digests,
                  "params": params}))
"""


def _variant_run(name):
    import json
    env = {k: v for k, v in os.environ.items() if k != "BPCORE_KERNELS"}
    if name is not None:
        env["BPCORE_KERNELS"] = name
    result = subprocess.run([sys.executable, "-c", VARIANT_CODE], capture_output=True,
                            text=True, env=env, timeout=300,
                            cwd=os.path.dirname(sys.executable))
    return result, (json.loads(result.stdout) if result.returncode == 0 else None)


def test_every_kernel_variant_is_thread_count_independent_and_agrees():
    """Each instruction-set build gives bitwise the same training on 1, 2 and 3 threads;
    between builds, results may differ only by rounding (FMA rounds once where the
    baseline rounds twice): after 34 small SGD steps on this well-conditioned network
    that stays far below 1e-10 relative."""
    runs = {}
    for name in bpcore.build_info()["kernels_available"]:
        result, out = _variant_run(name)
        assert out is not None, result.stderr
        assert out["kernels"] == name
        assert len(set(out["digests"])) == 1, f"{name}: results depend on the thread count"
        runs[name] = np.array(out["params"])
    base = runs["baseline"]
    for name, params in runs.items():
        assert np.max(np.abs(params - base)) <= 1e-10 * max(1.0, np.max(np.abs(base))), name
    # the default is the best variant available
    _, out = _variant_run(None)
    assert out["kernels"] == bpcore.build_info()["kernels_available"][0]


@pytest.mark.parametrize("value", ["bogus", "x86-64-v9"])
def test_unknown_kernel_variant_is_refused(value):
    result, _ = _variant_run(value)
    assert result.returncode != 0
    assert "BPCORE_KERNELS" in result.stderr and "ValueError" in result.stderr


# -- two networks trained at once from two Python threads ----------------------------------

def _job(sizes, activations, cost, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, sizes[0]))
    y = rng.integers(0, sizes[-1], size=300)

    def run(net):
        history = net.fit(X, y, epochs=4, batch_size=7, lr=0.2, momentum=0.5, l2=0.1, seed=seed)
        return params_of(net), history.train_cost, net.feedforward(X)
    return lambda: bpcore.Network(sizes, activations, cost, dtype=dtype, seed=seed,
                                  num_threads=2), run


JOBS = [
    ([10, 16, 4], ["tanh", "softmax"], "log_likelihood", "float64", 1),
    ([12, 9, 9, 3], ["relu", "sigmoid", "sigmoid"], "quadratic", "float32", 2),
]


@pytest.mark.parametrize("repeat", range(3))
def test_concurrent_training_from_python_threads_matches_sequential(repeat):
    jobs = [_job(*spec) for spec in JOBS]
    sequential = [run(make()) for make, run in jobs]

    nets = [make() for make, _ in jobs]
    results = [None] * len(jobs)
    errors = []
    barrier = threading.Barrier(len(jobs))

    def worker(i):
        try:
            barrier.wait()
            results[i] = jobs[i][1](nets[i])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a training thread hung"
    assert errors == []
    for (params, costs, out), (params_s, costs_s, out_s) in zip(results, sequential):
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(params, params_s))
        assert costs == costs_s
        assert np.array_equal(out, out_s)


def test_concurrent_training_of_the_same_architecture_with_different_data():
    """Same shapes, so any accidental sharing of buffers between networks would show."""
    make, run = _job([8, 8, 3], ["tanh", "softmax"], "log_likelihood", "float64", 5)
    make2, run2 = _job([8, 8, 3], ["tanh", "softmax"], "log_likelihood", "float64", 6)
    expected = [run(make()), run2(make2())]
    nets = [make(), make2()]
    results = [None, None]
    barrier = threading.Barrier(2)

    def worker(i, fn):
        barrier.wait()
        results[i] = fn(nets[i])

    threads = [threading.Thread(target=worker, args=(0, run)),
               threading.Thread(target=worker, args=(1, run2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for (p, c, o), (pe, ce, oe) in zip(results, expected):
        assert all(np.array_equal(a, b) for a, b in zip(p, pe))
        assert c == ce and np.array_equal(o, oe)


def test_small_steps_run_on_one_thread_whatever_the_count(monkeypatch):
    """num_threads is a maximum: a step under _MIN_PARALLEL_FLOP runs on one thread."""
    monkeypatch.setattr(bpcore.network, "_MIN_PARALLEL_FLOP", 4_000_000)
    if not bpcore.build_info()["openmp"]:
        pytest.skip("a build without OpenMP always runs one thread")
    net = bpcore.Network([784, 30, 10], num_threads=2)
    assert net.num_threads == 2
    assert net._threads_for(10) == 1        # 6 * 10 * 23,820 = 1.4 MFLOP
    assert net._threads_for(100) == 2       # 14 MFLOP
    assert bpcore.Network([784, 30, 10], num_threads=1)._threads_for(1000) == 1
