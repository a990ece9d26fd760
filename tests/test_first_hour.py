"""What a new user meets in the first hour (issue 13): files, fit's options, progress, imports."""
from __future__ import annotations

import inspect
import io
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import bpcore
from bpcore import Network, reference

FIT_OPTIONS = ["X", "Y", "epochs", "batch_size", "lr", "l2", "momentum", "shuffle", "seed",
               "validation_data", "verbose", "progress", "callback"]


# -- load: never advice to unpickle ------------------------------------------------------
def _text_renamed(path):
    path.write_text("label,pixel0\n3,0\n")


def _zip_of_junk(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("junk.bin", os.urandom(64))
        z.writestr("w1.npy", b"\x00not a header" * 4)


def _object_arrays(path):
    np.savez(path, w1=np.array([{"a": 1}, None], dtype=object), sizes=np.array([2, 1]))


@pytest.mark.parametrize("make", [_text_renamed, _zip_of_junk, _object_arrays])
def test_load_of_a_non_model_never_mentions_pickle(tmp_path, make):
    path = tmp_path / "notamodel.npz"
    make(path)
    with pytest.raises(ValueError, match="bpcore model file") as info:
        Network.load(path)
    assert "pickle" not in str(info.value).replace(str(path), "").lower()
    assert str(path) in str(info.value)


def test_load_names_object_arrays_as_such(tmp_path):
    path = tmp_path / "objects.npz"
    _object_arrays(path)
    with pytest.raises(ValueError, match="holds Python objects"):
        Network.load(path)


@pytest.mark.parametrize("content", [b"0,1,2\n", np.array([{"a": 1}] * 784, dtype=object)])
def test_predict_of_a_non_array_never_mentions_pickle(tmp_path, capsys, content):
    from bpcore.cli import main

    Network([784, 5, 10], seed=0).save(tmp_path / "m.npz")
    if isinstance(content, bytes):
        (tmp_path / "fake.npy").write_bytes(content)
    else:
        np.save(tmp_path / "fake.npy", content, allow_pickle=True)
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "fake.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bpcore: error: ") and "not a .npy file of numbers" in err
    assert "pickle" not in err.replace(str(tmp_path), "").lower()


# -- save: permissions and a missing directory ------------------------------------------------
@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_save_gives_the_permissions_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain", "w"):
            pass
        Network([2, 3, 1], seed=0).save(tmp_path / "model.npz")
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "model.npz").st_mode & 0o777
    assert mode == os.stat(tmp_path / "plain").st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_save_over_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "model.npz"
    Network([2, 3, 1], seed=0).save(path)
    os.chmod(path, 0o640)
    Network([2, 3, 1], seed=1).save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_downloaded_datasets_get_the_permissions_of_a_plain_open(tmp_path, monkeypatch):
    from bpcore import datasets

    payload = b"idx file bytes"
    digest = __import__("hashlib").sha256(payload).hexdigest()
    source = datasets._Source("test", "test", ("https://example.invalid/",), "sha256",
                              {"f.gz": digest})
    monkeypatch.setattr(datasets, "urlopen", lambda url, timeout: _Response(payload))
    old = os.umask(0o027)
    try:
        datasets._download(source, "f.gz", tmp_path / "cache")
    finally:
        os.umask(old)
    assert (tmp_path / "cache" / "f.gz").read_bytes() == payload
    assert os.stat(tmp_path / "cache" / "f.gz").st_mode & 0o777 == 0o640


class _Response(io.BytesIO):
    def __init__(self, payload):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def test_save_to_a_missing_directory_names_the_given_path(tmp_path):
    target = tmp_path / "no" / "such" / "model.npz"
    with pytest.raises(FileNotFoundError) as info:
        Network([2, 3, 1], seed=0).save(target)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)


# -- fit's signature ------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [Network, reference.Network])
def test_fit_lists_every_option(cls):
    params = inspect.signature(cls.fit).parameters
    assert list(params)[1:] == FIT_OPTIONS
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())


@pytest.mark.parametrize("cls", [Network, reference.Network])
def test_a_misspelt_option_names_the_public_class(cls):
    net = cls([2, 2, 1], seed=0)
    with pytest.raises(TypeError) as info:
        net.fit(np.zeros((4, 2)), np.zeros((4, 1)), 1, 2, 0.1, verbos=True)
    message = str(info.value)
    assert message.startswith("Network.fit() got an unexpected keyword argument 'verbos'")
    assert "did you mean 'verbose'" in message and "Base" not in message


# -- verbose and progress -------------------------------------------------------------------
def test_verbose_prints_the_lines_of_the_cli(capsys):
    (X, y), (Xt, yt) = bpcore.datasets.load_mnist_subset()
    Network([784, 10, 10], seed=0).fit(X[:500], y[:500], 2, 10, 3.0, verbose=True,
                                      validation_data=(Xt[:100], yt[:100]))
    lines = capsys.readouterr().out.splitlines()
    pattern = (r"epoch {}/2  train cost \d\.\d{{4}}  validation cost \d\.\d{{4}}  validation "
               r"accuracy [01]\.\d{{4}}  \d+\.\d\d s  \([\d,]+ samples/s\)")
    assert len(lines) == 2
    for epoch, line in enumerate(lines, 1):
        assert re.fullmatch(pattern.format(epoch), line), line


def test_progress_shows_a_tqdm_bar(capsys):
    X = np.random.default_rng(0).random((50, 3))
    history = Network([3, 4, 1], seed=0).fit(X, X[:, :1], 4, 10, 0.5, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"training: 100%.*\| 4/4 .*train cost \d\.\d{4}", err), err
    assert history.epochs == 4


def test_progress_must_be_a_bool():
    with pytest.raises(TypeError, match="progress"):
        Network([1, 1], seed=0).fit(np.zeros((2, 1)), np.zeros((2, 1)), 1, 1, 0.1,
                                    progress="yes")


# -- optional extras --------------------------------------------------------------------------
def test_import_sklearn_without_scikit_learn_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "try:\n    import bpcore.sklearn\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert 'the extra "sklearn": pip install scikit-learn (or pip install ".[sklearn]"' in out, out
