"""Network.save / Network.load: exact round trips, and refusal of anything else."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import bpcore
from bpcore.network import FORMAT_VERSION
from conftest import params_of

ARCHS = [
    ([3, 2], "sigmoid", "quadratic"),
    ([4, 7, 3], ["tanh", "softmax"], "log_likelihood"),
    ([5, 6, 6, 1], ["relu", "leaky_relu", "sigmoid"], "cross_entropy"),
    ([2, 9, 8, 7, 2], ["identity", "sigmoid", "tanh", "relu"], "squared_error"),
]


def _trained(sizes, activations, cost, dtype="float64", seed=0):
    net = bpcore.Network(sizes, activations, cost, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20, sizes[0]))
    labels = rng.integers(0, max(sizes[-1], 2), size=20)
    Y = labels[:, None].astype(float) if sizes[-1] == 1 else labels
    net.fit(X, Y, epochs=2, batch_size=6, lr=0.1, seed=seed)
    return net, X


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes, activations, cost", ARCHS)
def test_round_trip_is_exact(tmp_path, sizes, activations, cost, dtype):
    net, X = _trained(sizes, activations, cost, dtype)
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = bpcore.Network.load(path)
    assert type(loaded) is bpcore.Network
    assert loaded.sizes == net.sizes and loaded.activations == net.activations
    assert loaded.cost_name == net.cost_name and loaded.dtype == net.dtype == np.dtype(dtype)
    for a, b in zip(params_of(loaded), params_of(net)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(loaded.feedforward(X), net.feedforward(X))
    # the loaded parameters are the live views of the new network
    loaded.weights[0][...] = 0
    assert not np.array_equal(loaded.feedforward(X), net.feedforward(X))
    # no temporary file is left beside the model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_round_trip_with_str_path_overwrite_and_num_threads(tmp_path):
    path = str(tmp_path / "m.npz")
    bpcore.Network([3, 4, 2], seed=1).save(path)
    net, X = _trained([3, 4, 2], "sigmoid", "quadratic", seed=2)
    net.save(path)  # replaces the first file
    loaded = bpcore.Network.load(path, num_threads=3)
    assert loaded.num_threads == (3 if bpcore.build_info()["openmp"] else 1)
    assert np.array_equal(loaded.feedforward(X), net.feedforward(X))
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_keeps_the_given_name(tmp_path):
    """np.savez would append ".npz" to a bare name; save writes exactly ``path``."""
    net, X = _trained([3, 4, 2], "sigmoid", "quadratic")
    net.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert np.array_equal(bpcore.Network.load(tmp_path / "model").feedforward(X),
                          net.feedforward(X))


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = bpcore.Network([3, 4, 2], seed=1)
    old.save(path)
    content = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        bpcore.Network([3, 4, 2], seed=2).save(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


# -- corrupt and foreign files --------------------------------------------------------------

def _arrays(tmp_path, dtype="float64"):
    """The arrays of a saved [3, 4, 2] network, as a dict."""
    path = tmp_path / "good.npz"
    bpcore.Network([3, 4, 2], ["tanh", "sigmoid"], dtype=dtype, seed=0).save(path)
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _write(tmp_path, arrays, name="bad.npz"):
    path = tmp_path / name
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _edit(**changes):
    def make(tmp_path):
        arrays = _arrays(tmp_path)
        for key, value in changes.items():
            if value is None:
                del arrays[key]
            else:
                arrays[key] = value(arrays) if callable(value) else value
        return _write(tmp_path, arrays)
    return make


def _truncated(keep):
    """The first ``keep`` bytes (an int) or fraction (a float) of a saved model."""
    def make(tmp_path):
        good = tmp_path / "good.npz"
        bpcore.Network([3, 4, 2], seed=0).save(good)
        data = good.read_bytes()
        path = tmp_path / "bad.npz"
        n = keep if isinstance(keep, int) else int(len(data) * keep)
        assert 0 <= n < len(data)
        path.write_bytes(data[:n])
        return path
    return make


def _random_bytes(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    return path


def _plain_npy(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.arange(12.0))
    return path


def _object_array(tmp_path):
    """np.savez of an object array pickles it: loading must refuse, not unpickle."""
    arrays = _arrays(tmp_path)
    arrays["w1"] = np.array([{"evil": 1}] * 12, dtype=object).reshape(4, 3)
    return _write(tmp_path, arrays)


def _pickle_file(tmp_path):
    import pickle
    path = tmp_path / "bad.npz"
    path.write_bytes(pickle.dumps({"w1": [1, 2, 3]}))
    return path


def _zip_of_text(tmp_path):
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w1.npy", "not an npy file")
    return path


def _member_not_npy(member):
    """A saved model whose ``member`` (e.g. "w1.npy") is replaced by bytes that are no .npy."""
    def make(tmp_path):
        good = tmp_path / "good.npz"
        bpcore.Network([3, 4, 2], seed=0).save(good)
        path = tmp_path / "bad.npz"
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
            for name in src.namelist():
                dst.writestr(name, b"not an npy file" if name == member else src.read(name))
        return path
    return make


def _float32_arrays_in_float64_file(arrays):
    return arrays["w1"].astype(np.float32)


BAD_FILES = [
    ("truncated-half", _truncated(0.5), r"not a readable"),
    ("truncated-to-3-bytes", _truncated(3), r"not a readable"),
    ("truncated-to-zip-magic", _truncated(4), r"not a readable"),
    ("truncated-end", _truncated(0.999), r"not a readable"),
    ("empty-file", _truncated(0), r"not a readable"),
    ("random-bytes", _random_bytes, r"not a readable"),
    ("plain-npy", _plain_npy, r"not an \.npz|not a readable"),
    ("pickle", _pickle_file, r"not a readable"),
    ("zip-of-text", _zip_of_text, r"bpcore model file"),
    ("w1-member-not-npy", _member_not_npy("w1.npy"), r"w1"),
    ("sizes-member-not-npy", _member_not_npy("sizes.npy"), r"sizes"),
    ("object-array", _object_array, r"not a readable"),
    ("missing-w2", _edit(w2=None), r"w2"),
    ("missing-b1", _edit(b1=None), r"b1"),
    ("missing-sizes", _edit(sizes=None), r"sizes"),
    ("missing-format_version", _edit(format_version=None), r"format_version"),
    ("extra-array", _edit(w3=np.zeros((2, 2))), r"w3"),
    ("extra-layer-arrays", _edit(w3=np.zeros((2, 2)), b3=np.zeros(2)), r"w3"),
    ("w1-transposed", _edit(w1=lambda a: a["w1"].T.copy()), r"w1.*shape"),
    ("b2-too-long", _edit(b2=np.zeros(3)), r"b2.*shape"),
    ("sizes-disagree", _edit(sizes=np.array([3, 5, 2])), r"shape"),
    ("sizes-2d", _edit(sizes=np.array([[3, 4, 2]])), r"sizes"),
    ("sizes-zero", _edit(sizes=np.array([3, 0, 2])), r"sizes"),
    ("sizes-float", _edit(sizes=np.array([3.0, 4.0, 2.0])), r"sizes"),
    ("format-version-2", _edit(format_version=np.array(FORMAT_VERSION + 1)), r"version"),
    ("format-version-0", _edit(format_version=np.array(0)), r"version"),
    ("format-version-string", _edit(format_version=np.array("1")), r"format_version"),
    ("format-version-1d", _edit(format_version=np.array([1])), r"format_version"),
    ("dtype-float32-arrays-float64", _edit(w1=_float32_arrays_in_float64_file), r"w1.*dtype"),
    ("dtype-name-float32", _edit(dtype=np.array("float32")), r"dtype"),
    ("dtype-unknown", _edit(dtype=np.array("float16")), r"dtype"),
    ("dtype-int-arrays", _edit(b1=np.zeros(4, dtype=np.int64)), r"b1.*dtype"),
    ("activation-unknown", _edit(activations=np.array(["tanh", "swish"])), r"swish"),
    ("activations-count", _edit(activations=np.array(["tanh"])), r"activations"),
    ("activations-not-names", _edit(activations=np.array([1, 2])), r"activations"),
    ("cost-unknown", _edit(cost=np.array("hinge")), r"hinge"),
    ("cost-mismatch", _edit(cost=np.array("log_likelihood")), r"log_likelihood"),
    ("w1-nan", _edit(w1=lambda a: np.full_like(a["w1"], np.nan)), r"w1.*NaN"),
    ("b2-inf", _edit(b2=lambda a: np.array([np.inf, 0.0])), r"b2"),
]


@pytest.mark.parametrize("make, match", [pytest.param(*c[1:], id=c[0]) for c in BAD_FILES])
def test_load_rejects(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=match) as info:
        bpcore.Network.load(path)
    assert type(info.value) is ValueError
    assert str(path) in str(info.value)  # the message names the file
    assert "pickle" not in str(info.value).replace(str(path), "").lower()  # never advice it


def test_load_refuses_object_array_without_unpickling(tmp_path, monkeypatch):
    """Loading must never call pickle: make unpickling fail loudly if it is tried."""
    import pickle
    path = _object_array(tmp_path)
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        raise AssertionError("pickle.load called")
    monkeypatch.setattr(pickle, "load", spy)
    monkeypatch.setattr(pickle, "loads", spy)
    with pytest.raises(ValueError):
        bpcore.Network.load(path)
    assert calls == []


def test_load_accepts_the_unmodified_arrays(tmp_path):
    """The rewriting helpers themselves produce loadable files when nothing is changed."""
    arrays = _arrays(tmp_path, "float32")
    net = bpcore.Network.load(_write(tmp_path, arrays))
    assert net.dtype == np.float32
    assert np.array_equal(net.weights[1], arrays["w2"])


def test_load_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        bpcore.Network.load(tmp_path / "no-such-model.npz")
    with pytest.raises(FileNotFoundError):
        bpcore.Network.load(str(tmp_path / "no-such-dir" / "m.npz"))


def test_load_of_a_directory_is_refused(tmp_path):
    with pytest.raises((ValueError, IsADirectoryError)):
        bpcore.Network.load(tmp_path)


def test_load_checks_shapes_before_allocating(tmp_path):
    """A small file whose ``sizes`` claim a layer of 10^9 neurons while its arrays are
    tiny has mismatched shapes: ValueError, found from the arrays in the file, not
    a MemoryError (or minutes of filling gigabytes) from building that network first.

    Run in a subprocess with its address space capped at 2 GiB, so that an attempt
    to allocate the 8+ GB fails at once whatever the machine's overcommit policy.
    """
    import subprocess
    import sys
    import textwrap
    arrays = _arrays(tmp_path)
    arrays["sizes"] = np.array([3, 10**9, 2])
    path = _write(tmp_path, arrays)
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
        import bpcore
        try:
            bpcore.Network.load({str(path)!r})
        except Exception as exc:
            print(type(exc).__name__, exc)
        else:
            print("loaded")
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ValueError"), result.stdout
    assert "shape" in result.stdout
