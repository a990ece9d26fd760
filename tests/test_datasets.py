"""bpcore.datasets: the IDX reader, the MNIST loaders and the shipped subset."""
from __future__ import annotations

import gzip
import importlib.util
import struct
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_DIR

from bpcore.datasets import MNIST_FILES, load_mnist, load_mnist_subset, read_idx

REPO = Path(__file__).resolve().parents[1]
SUBSET = files("bpcore") / "data" / "mnist-subset"  # as installed
NAMES = [name for pair in MNIST_FILES.values() for name in pair]

needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / (name + ".gz")).is_file() for name in NAMES),
    reason=f"the real MNIST files are not in {MNIST_DIR}")


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
    for name in NAMES:
        (tmp_path / (name + ".gz")).write_bytes((SUBSET / (name + ".gz")).read_bytes())
    return tmp_path


def assert_same_data(a, b):
    for (X_a, y_a), (X_b, y_b) in zip(a, b):
        np.testing.assert_array_equal(X_a, X_b)
        np.testing.assert_array_equal(y_a, y_b)


def test_load_mnist_accepts_uncompressed_files(subset_copy):
    for name in NAMES:
        gz = subset_copy / (name + ".gz")
        (subset_copy / name).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert_same_data(load_mnist(str(subset_copy)), load_mnist_subset())


def test_load_mnist_names_the_missing_file(subset_copy):
    (subset_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz") as excinfo:
        load_mnist(subset_copy)
    message = str(excinfo.value)
    assert str(subset_copy) in message and "train-images" not in message


def test_load_mnist_rejects_a_missing_directory_or_a_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        load_mnist(write(tmp_path / "file", b""))


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


def test_load_mnist_without_path_or_env_raises(monkeypatch):
    monkeypatch.delenv("BPCORE_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="BPCORE_DATA"):
        load_mnist()


def test_load_mnist_reads_bpcore_data(monkeypatch, subset_copy):
    monkeypatch.setenv("BPCORE_DATA", str(subset_copy))
    assert_same_data(load_mnist(), load_mnist_subset())


def test_load_mnist_rejects_a_non_path():
    with pytest.raises(TypeError, match="path must be"):
        load_mnist(42)
