"""bpcore.datasets: the IDX reader, the loaders' search and download, the subset, the pickle.

No test touches the network: every test runs with the download cache in a
temporary directory and ``urlopen`` replaced, by default with one that fails
the test; the download tests serve copies of the real files instead.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.util
import io
import pickle
import struct
import urllib.error
from importlib.resources import files
from pathlib import Path

import numpy as np
import platformdirs
import pytest
from conftest import MNIST_DIR

from bpcore import datasets
from bpcore.datasets import (FASHION_MNIST_MD5, MNIST_FILES, MNIST_SHA256, load_fashion_mnist,
                             load_mnist, load_mnist_pkl, load_mnist_subset, read_idx)

REPO = Path(__file__).resolve().parents[1]
SUBSET = files("bpcore") / "data" / "mnist-subset"  # as installed
NAMES = [name for pair in MNIST_FILES.values() for name in pair]
GZ = [name + ".gz" for name in NAMES]
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")

needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / (name + ".gz")).is_file() for name in NAMES),
    reason=f"the real MNIST files are not in {MNIST_DIR}")


def no_network(url, timeout=None):
    pytest.fail(f"a test tried to download {url}")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """The download cache root, in tmp_path; no $BPCORE_DATA; no network."""
    root = tmp_path / "user-cache"
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda appname: str(root / appname))
    monkeypatch.delenv("BPCORE_DATA", raising=False)
    monkeypatch.setattr(datasets, "urlopen", no_network)
    return root / "bpcore"


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def extreme_values(dtype) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        values = [-1.5, -0.0, 1e-3, 3.25, 1e30, 2.0]
    else:
        info = np.iinfo(dtype)
        values = [info.min, info.min + 1, 0, 1, info.max - 1, info.max]
    return np.array(values, dtype=dtype).reshape(2, 3)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("code, dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                         (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)])
def test_read_idx_decodes_every_type_big_endian(tmp_path, code, dtype, compress):
    expected = extreme_values(dtype)
    path = write(tmp_path / "a.idx", idx_bytes(expected, code), compress)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    assert got.shape == (2, 3)
    np.testing.assert_array_equal(got, expected)


def test_read_idx_result_is_writable(tmp_path):
    got = read_idx(write(tmp_path / "a.idx", idx_bytes(np.zeros((2, 2), np.uint8), 0x08)))
    got[0, 0] = 1
    assert got[0, 0] == 1


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_truncated_data_raises_naming_the_file(tmp_path, compress):
    data = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)
    path = write(tmp_path / "short.idx", data[:-1], compress)
    with pytest.raises(ValueError, match="truncated IDX file") as excinfo:
        read_idx(path)
    assert str(path) in str(excinfo.value)
    assert "12 data bytes, but only 11" in str(excinfo.value)


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x00\x00\x08\x03\x00\x00\x00\x02"],
                         ids=["empty", "half-magic", "half-dims"])
def test_truncated_header_raises(tmp_path, data):
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(write(tmp_path / "short.idx", data))


def test_cut_gzip_stream_raises_value_error(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(4000, dtype=np.int32), 0x0C))
    path = write(tmp_path / "cut.idx.gz", data[: len(data) // 2])
    with pytest.raises(ValueError, match="gzip") as excinfo:
        read_idx(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x0a\x01", b"\x00\x00\x08\x00",
                                   b"PK\x03\x04"],
                         ids=["nonzero-first-byte", "unknown-type", "zero-dims", "zip-file"])
def test_bad_magic_raises_naming_the_file(tmp_path, magic):
    path = write(tmp_path / "bad.idx", magic + b"\x00\x00\x00\x01" + b"\x07")
    with pytest.raises(ValueError, match="bad IDX magic") as excinfo:
        read_idx(path)
    assert str(path) in str(excinfo.value)


def test_huge_declared_shape_is_reported_not_allocated(tmp_path):
    header = b"\x00\x00\x0e\x04" + b"\xff" * 16
    with pytest.raises(ValueError, match="truncated IDX file.* but only 3 follow"):
        read_idx(write(tmp_path / "huge.idx", header + b"abc"))


def test_trailing_bytes_raise(tmp_path):
    data = idx_bytes(np.arange(6, dtype=np.uint8), 0x08)
    with pytest.raises(ValueError, match="2 unexpected byte"):
        read_idx(write(tmp_path / "long.idx", data + b"\x00\x00", compress=True))


def test_read_idx_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent.idx")


@needs_mnist
def test_read_idx_on_the_real_mnist_files():
    images = read_idx(MNIST_DIR / "train-images-idx3-ubyte.gz")
    labels = read_idx(MNIST_DIR / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                            5851, 5949]
    test_labels = read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def check_split(X, y, n=None):
    assert X.dtype == np.float32 and X.ndim == 2 and X.shape[1] == 784
    assert y.dtype == np.int64 and y.shape == (X.shape[0],)
    assert n is None or X.shape[0] == n
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y).tolist()) == set(range(10))


@needs_mnist
def test_load_mnist_real_files():
    (X, y), (X_test, y_test) = load_mnist(MNIST_DIR)
    check_split(X, y, 60000)
    check_split(X_test, y_test, 10000)
    raw = read_idx(MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(X_test, raw.reshape(10000, 784).astype(np.float32) / 255)


def test_subset_shapes_dtypes_and_ranges():
    (X, y), (X_test, y_test) = load_mnist_subset()
    check_split(X, y)
    check_split(X_test, y_test)
    assert len(X) >= 1000 and len(X_test) >= 250


def test_subset_fits_the_size_budget():
    sizes = [len((SUBSET / (name + ".gz")).read_bytes()) for name in NAMES]
    assert sum(sizes) <= 2_000_000


@needs_mnist
def test_subset_is_the_head_of_the_real_files():
    for (X_sub, y_sub), (images, labels) in zip(load_mnist_subset(), MNIST_FILES.values()):
        n = len(X_sub)
        real = read_idx(MNIST_DIR / (images + ".gz"))[:n]
        np.testing.assert_array_equal(X_sub, real.reshape(n, 784).astype(np.float32) / 255)
        np.testing.assert_array_equal(y_sub, read_idx(MNIST_DIR / (labels + ".gz"))[:n])


@needs_mnist
def test_subset_tool_reproduces_the_shipped_bytes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_mnist_subset",
                                                  REPO / "tools" / "make_mnist_subset.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    n_train, n_test = (len(X) for X, _ in load_mnist_subset())
    assert tool.main([str(MNIST_DIR), "--out", str(tmp_path),
                      "--train", str(n_train), "--test", str(n_test)]) == 0
    for name in NAMES:
        assert (tmp_path / (name + ".gz")).read_bytes() == (SUBSET / (name + ".gz")).read_bytes()


@pytest.fixture
def subset_copy(tmp_path):
    """A directory holding the shipped subset under the standard MNIST names."""
    directory = tmp_path / "subset"
    directory.mkdir()
    for name in GZ:
        (directory / name).write_bytes((SUBSET / name).read_bytes())
    return directory


def assert_same_data(a, b):
    assert len(a) == len(b)
    for (X_a, y_a), (X_b, y_b) in zip(a, b):
        np.testing.assert_array_equal(X_a, X_b)
        np.testing.assert_array_equal(y_a, y_b)


def test_load_mnist_accepts_uncompressed_files(subset_copy):
    for name in NAMES:
        gz = subset_copy / (name + ".gz")
        (subset_copy / name).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert_same_data(load_mnist(str(subset_copy)), load_mnist_subset())


def test_subset_shapes_without_flatten_and_with_one_hot():
    (X, y), _ = load_mnist_subset()
    (X3, Y), _ = load_mnist_subset(flatten=False, one_hot=True)
    assert X3.dtype == np.float32 and X3.shape == (len(X), 28, 28)
    np.testing.assert_array_equal(X3.reshape(len(X), 784), X)
    assert Y.dtype == np.float32 and Y.shape == (len(y), 10)
    assert set(np.unique(Y).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(Y.sum(axis=1), 1)
    np.testing.assert_array_equal(Y.argmax(axis=1), y)


def test_missing_files_are_named_per_directory(subset_copy, cache):
    (subset_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_mnist(subset_copy, download=False)
    message = str(excinfo.value)
    assert f"{subset_copy} (path) lacks t10k-labels-idx1-ubyte.gz;" in message
    assert f"{cache / 'mnist'} (download cache) does not exist" in message
    assert "pass download=True" in message and "downloading" not in message
    assert "Put " + ", ".join(GZ) in message


def test_a_file_as_path_is_rejected(tmp_path):
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        load_mnist(write(tmp_path / "file", b""))
    with pytest.raises(TypeError, match="path must be"):
        load_mnist(42)


def test_load_mnist_rejects_image_label_count_mismatch(subset_copy):
    labels = subset_copy / "train-labels-idx1-ubyte.gz"
    short = read_idx(labels)[:-1]
    write(labels, idx_bytes(short, 0x08), compress=True)
    with pytest.raises(ValueError, match=f"images but .* holds {len(short)} labels"):
        load_mnist(subset_copy)


def test_load_mnist_rejects_non_image_files(subset_copy):
    write(subset_copy / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((5, 784), np.uint8), 0x08))
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28\)"):
        load_mnist(subset_copy)


# -- where the files are looked for ------------------------------------------------------
def tiny_mnist(directory: Path, n: int) -> Path:
    """The four files with n examples each (all pixels n, all labels n) in directory."""
    directory.mkdir(parents=True)
    for images, labels in MNIST_FILES.values():
        write(directory / (images + ".gz"), idx_bytes(np.full((n, 28, 28), n, np.uint8), 0x08),
              compress=True)
        write(directory / labels, idx_bytes(np.full(n, n, np.uint8), 0x08))
    return directory


def n_train(data) -> int:
    return len(data[0][0])


def test_search_order_is_path_then_bpcore_data_then_cache(tmp_path, cache, monkeypatch):
    given = tiny_mnist(tmp_path / "given", 1)
    tiny_mnist(tmp_path / "env" / "mnist", 2)
    tiny_mnist(cache / "mnist", 3)
    monkeypatch.setenv("BPCORE_DATA", str(tmp_path / "env"))
    assert n_train(load_mnist(given)) == 1
    (given / "t10k-labels-idx1-ubyte").unlink()  # incomplete: the search goes on
    assert n_train(load_mnist(given)) == 2
    assert n_train(load_mnist()) == 2
    monkeypatch.delenv("BPCORE_DATA")
    assert n_train(load_mnist(tmp_path / "nowhere")) == 3
    assert n_train(load_mnist()) == 3
    X, y = load_mnist()[0]
    assert X.dtype == np.float32 and np.all(X == np.float32(3 / 255))
    assert y.dtype == np.int64 and y.tolist() == [3, 3, 3]


def test_fashion_mnist_has_its_own_folders(tmp_path, cache, monkeypatch):
    tiny_mnist(tmp_path / "env" / "mnist", 2)
    tiny_mnist(tmp_path / "env" / "fashion-mnist", 4)
    monkeypatch.setenv("BPCORE_DATA", str(tmp_path / "env"))
    assert n_train(load_fashion_mnist()) == 4
    assert n_train(load_mnist()) == 2
    monkeypatch.delenv("BPCORE_DATA")
    with pytest.raises(FileNotFoundError, match=r"^Fashion-MNIST files not found: .*"
                                                r"fashion-mnist \(download cache\)"):
        load_fashion_mnist(download=False)


# -- downloading -----------------------------------------------------------------------
class Response(io.BytesIO):
    """What urlopen returns, for bytes in memory; ``cut`` raises after the first chunk."""

    def __init__(self, data: bytes, cut: BaseException | None = None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self.cut = cut

    def read(self, size=-1):
        if self.cut is not None and self.tell() > 0:
            raise self.cut
        return super().read(size)


class Mirrors:
    """Stands in for urlopen: serves ``routes`` (URL -> bytes or Response), records requests.

    Any other URL fails as an unreachable host would.
    """

    def __init__(self, routes):
        self.routes = routes
        self.requests = []

    def __call__(self, url, timeout=None):
        assert timeout is not None and timeout > 0
        self.requests.append(url)
        if url not in self.routes:
            raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))
        body = self.routes[url]
        return body if isinstance(body, Response) else Response(body)


@pytest.fixture
def real_files(tmp_path):
    """name.gz -> bytes of a copy of the real MNIST files in tmp_path."""
    if not all((MNIST_DIR / name).is_file() for name in GZ):
        pytest.skip(f"the real MNIST files are not in {MNIST_DIR}")
    copy = tmp_path / "mirror"
    copy.mkdir()
    for name in GZ:
        (copy / name).write_bytes((MNIST_DIR / name).read_bytes())
    return {name: (copy / name).read_bytes() for name in GZ}


def cache_contents(cache: Path, folder="mnist") -> list[str]:
    """Every file in the cache folder, hidden temporary files included."""
    directory = cache / folder
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@needs_mnist
def test_the_recorded_sha256_are_those_of_the_real_files():
    for name in GZ:
        assert hashlib.sha256((MNIST_DIR / name).read_bytes()).hexdigest() == MNIST_SHA256[name]


def test_download_verifies_caches_and_is_done_once(real_files, cache, monkeypatch):
    second = Mirrors({MNIST_MIRRORS[1] + name: data for name, data in real_files.items()})
    monkeypatch.setattr(datasets, "urlopen", second)
    (X, y), (X_test, y_test) = load_mnist()
    # The first mirror is down: each file is asked of it, then of the second.
    assert second.requests == [mirror + name for name in GZ for mirror in MNIST_MIRRORS]
    assert cache_contents(cache) == sorted(GZ)
    for name, data in real_files.items():
        assert (cache / "mnist" / name).read_bytes() == data
    assert X.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert y[:5].tolist() == [5, 0, 4, 1, 9] and y_test[:5].tolist() == [7, 2, 1, 0, 4]

    monkeypatch.setattr(datasets, "urlopen", no_network)
    (X_again, _), _ = load_mnist()
    np.testing.assert_array_equal(X_again, X)


def test_only_missing_files_are_downloaded(real_files, cache, monkeypatch):
    (cache / "mnist").mkdir(parents=True)
    for name in GZ[:3]:
        (cache / "mnist" / name).write_bytes(real_files[name])
    mirrors = Mirrors({MNIST_MIRRORS[0] + name: data for name, data in real_files.items()})
    monkeypatch.setattr(datasets, "urlopen", mirrors)
    (_, y_test) = load_mnist()[1]
    assert mirrors.requests == [MNIST_MIRRORS[0] + GZ[3]]
    assert y_test[:3].tolist() == [7, 2, 1]


def test_a_corrupt_download_is_rejected_and_not_kept(real_files, cache, monkeypatch):
    corrupt = bytearray(real_files["train-labels-idx1-ubyte.gz"])
    corrupt[len(corrupt) // 2] ^= 0xFF
    routes = {mirror + name: data for name, data in real_files.items() for mirror in MNIST_MIRRORS}
    for mirror in MNIST_MIRRORS:
        routes[mirror + "train-labels-idx1-ubyte.gz"] = bytes(corrupt)
    monkeypatch.setattr(datasets, "urlopen", Mirrors(routes))
    with pytest.raises(FileNotFoundError) as excinfo:
        load_mnist()
    message = str(excinfo.value)
    expected = MNIST_SHA256["train-labels-idx1-ubyte.gz"]
    for mirror in MNIST_MIRRORS:
        assert f"{mirror}train-labels-idx1-ubyte.gz: sha256 " in message
    assert message.count(f"is not the expected {expected}") == 2
    assert "lacks train-labels-idx1-ubyte.gz, t10k-images" in message
    # The verified first file stays; nothing of the corrupt one, no temporary file.
    assert cache_contents(cache) == ["train-images-idx3-ubyte.gz"]


@pytest.mark.parametrize("cut", [http.client.IncompleteRead(b"x", 10),
                                 ConnectionResetError(104, "Connection reset by peer"),
                                 TimeoutError("The read operation timed out")],
                         ids=["incomplete-read", "reset", "timeout"])
def test_a_cut_transfer_leaves_no_partial_file(cache, monkeypatch, cut):
    data = bytes(200_000)
    monkeypatch.setattr(datasets, "urlopen", Mirrors(
        {mirror + GZ[0]: Response(data, cut) for mirror in MNIST_MIRRORS}))
    with pytest.raises(FileNotFoundError, match="downloading them failed: " + MNIST_MIRRORS[0]):
        load_mnist()
    assert cache_contents(cache) == []


def test_an_interrupted_download_leaves_no_partial_file(cache, monkeypatch):
    monkeypatch.setattr(datasets, "urlopen", Mirrors(
        {MNIST_MIRRORS[0] + GZ[0]: Response(bytes(200_000), KeyboardInterrupt())}))
    with pytest.raises(KeyboardInterrupt):
        load_mnist()
    assert cache_contents(cache) == []


def test_offline_error_names_files_directories_and_reasons(cache, monkeypatch):
    mirrors = Mirrors({})
    monkeypatch.setattr(datasets, "urlopen", mirrors)
    with pytest.raises(FileNotFoundError) as excinfo:
        load_mnist()
    message = str(excinfo.value)
    assert message.startswith(f"MNIST files not found: {cache / 'mnist'} (download cache) "
                              "lacks " + ", ".join(GZ))
    for mirror in MNIST_MIRRORS:
        assert f"{mirror}{GZ[0]}: <urlopen error" in message
    assert "Temporary failure in name resolution" in message
    assert len(mirrors.requests) == 2  # gives up after the first file
    assert cache_contents(cache) == []


def test_fashion_mnist_download_is_checked_with_the_published_md5(subset_copy, cache,
                                                                  monkeypatch):
    served = {name: (subset_copy / name).read_bytes() for name in GZ}
    fashion = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
    monkeypatch.setattr(datasets, "urlopen", Mirrors(
        {fashion + name: data for name, data in served.items()}))
    with pytest.raises(FileNotFoundError,
                       match=f"md5 [0-9a-f]{{32}} is not the expected {FASHION_MNIST_MD5[GZ[0]]}"):
        load_fashion_mnist()
    # With the subset's own digests recorded, the same bytes are accepted.
    for name, data in served.items():
        monkeypatch.setitem(FASHION_MNIST_MD5, name, hashlib.md5(data).hexdigest())
    assert_same_data(load_fashion_mnist(), load_mnist_subset())
    assert cache_contents(cache, "fashion-mnist") == sorted(GZ)
    assert cache_contents(cache, "mnist") == []


# -- Nielsen's pickle ------------------------------------------------------------------
@pytest.fixture
def nielsen_pkl(tmp_path):
    """A mnist.pkl.gz in Nielsen's layout, made from the head of the subset."""
    (X, y), (X_test, y_test) = load_mnist_subset()
    data = ((X[:300], y[:300]), (X[300:400], y[300:400]), (X_test[:100], y_test[:100]))
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        pickle.dump(data, f, protocol=2)
    return path, data


def test_pickle_is_refused_without_allow_pickle(tmp_path):
    # Refused before the file is opened: a missing file gives the same answer.
    with pytest.raises(ValueError, match="executes code") as excinfo:
        load_mnist_pkl(tmp_path / "absent.pkl.gz")
    assert "allow_pickle=True" in str(excinfo.value) and "load_mnist()" in str(excinfo.value)


def test_pickle_is_read_with_allow_pickle(nielsen_pkl):
    path, data = nielsen_pkl
    splits = load_mnist_pkl(path, allow_pickle=True)
    assert_same_data(splits, data)
    (X, Y), _, _ = load_mnist_pkl(path, allow_pickle=True, flatten=False, one_hot=True)
    assert X.shape == (len(data[0][0]), 28, 28) and Y.shape == (len(data[0][0]), 10)


def test_pickle_of_another_shape_is_rejected(tmp_path):
    path = tmp_path / "other.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(((np.zeros((3, 10), np.float32), np.zeros(3, np.int64)),) * 3, f)
    with pytest.raises(ValueError, match=r"training images must be floats of shape \(n, 784\)"):
        load_mnist_pkl(path, allow_pickle=True)
