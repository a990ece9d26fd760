"""MNIST in its original IDX format: a reader, and loaders for the full set and the shipped subset.

The IDX format (http://yann.lecun.com/exdb/mnist/) is a 4-byte magic
``0x00 0x00 <type code> <ndim>``, then ``ndim`` big-endian uint32 dimensions,
then the data, big-endian, in C order.  Files may be gzip-compressed.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np

__all__ = ["MNIST_FILES", "load_mnist", "load_mnist_subset", "read_idx"]

#: IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The standard MNIST file names (each may also be stored gzipped, as ``<name>.gz``),
#: as (images, labels) for the training and the test set.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_NAMES = tuple(name for pair in MNIST_FILES.values() for name in pair)

_GZIP_MAGIC = b"\x1f\x8b"

Split = tuple[np.ndarray, np.ndarray]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file, gzip-compressed or not, into an array of native byte order.

    Compression is recognised from the file's first bytes, not its name.  Raises
    ``ValueError`` naming the file if it is not IDX, is truncated, or has bytes
    beyond the data its header declares.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as f:
            return _parse_idx(f, path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from None


def _parse_idx(f, path: Path) -> np.ndarray:
    magic = f.read(4)
    if len(magic) < 4:
        raise ValueError(f"{path}: truncated IDX header: expected 4 magic bytes, got {len(magic)}")
    if magic[:2] != b"\x00\x00" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        codes = ", ".join(f"0x{code:02X} ({dt.name})" for code, dt in _IDX_DTYPES.items())
        raise ValueError(
            f"{path}: bad IDX magic {magic.hex(' ')}: expected 00 00 <type code> <ndim>, "
            f"with type code one of {codes} and ndim >= 1")
    dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
    header = f.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimension(s) need {4 * ndim} bytes, "
            f"got {len(header)}")
    shape = tuple(int(d) for d in np.frombuffer(header, dtype=">u4"))
    expected = dtype.itemsize * math.prod(shape)
    data = f.read()  # all of it: a corrupt header must not make us allocate its claim
    if len(data) < expected:
        raise ValueError(
            f"{path}: truncated IDX file: header declares shape {shape} of {dtype.name}, "
            f"{expected} data bytes, but only {len(data)} follow")
    if len(data) > expected:
        raise ValueError(
            f"{path}: {len(data) - expected} unexpected byte(s) after the {expected} data "
            f"bytes that the header's shape {shape} of {dtype.name} declares")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(path: str | os.PathLike | None = None) -> tuple[Split, Split]:
    """The full MNIST set as ``((X_train, y_train), (X_test, y_test))``.

    ``path`` is a directory holding the four standard files (see
    :data:`MNIST_FILES`), gzipped or not; if it is None, the directory named by
    the environment variable ``BPCORE_DATA`` is used.  ``X`` is float32 of shape
    ``(n, 784)`` with pixels scaled to [0, 1]; ``y`` holds the int64 labels 0..9.

    Raises ``FileNotFoundError`` naming the directory and the files missing from
    it, and ``ValueError`` for a file that is not valid IDX or not MNIST-shaped.
    """
    directory = _data_dir(path)
    found = {name: next((p for p in (directory / (name + ".gz"), directory / name)
                         if p.is_file()), None)
             for name in _MNIST_NAMES}
    missing = [name + ".gz" for name, p in found.items() if p is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST file(s) not found in {directory}: {', '.join(missing)} (un-gzipped "
            "files are accepted too); put them there or pass the directory that holds them")
    return tuple(_split(read_idx(found[images]), read_idx(found[labels]),
                        found[images], found[labels])
                 for images, labels in MNIST_FILES.values())


def load_mnist_subset() -> tuple[Split, Split]:
    """The MNIST subset shipped with bpcore, in the same form as :func:`load_mnist`.

    It holds the first examples of the MNIST training and test files (built by
    ``tools/make_mnist_subset.py``) and needs no download.
    """
    root = files("bpcore") / "data" / "mnist-subset"
    splits = []
    for images, labels in MNIST_FILES.values():
        with as_file(root / (images + ".gz")) as ipath, as_file(root / (labels + ".gz")) as lpath:
            splits.append(_split(read_idx(ipath), read_idx(lpath), ipath, lpath))
    return tuple(splits)


def _data_dir(path: str | os.PathLike | None) -> Path:
    """The directory to read MNIST from: ``path``, else ``$BPCORE_DATA``."""
    if path is None:
        env = os.environ.get("BPCORE_DATA")
        if not env:
            raise FileNotFoundError(
                "no MNIST directory given: pass path=<directory> or set the environment "
                "variable BPCORE_DATA to a directory holding the four files "
                + ", ".join(name + ".gz" for name in _MNIST_NAMES))
        directory, origin = Path(env), " (from BPCORE_DATA)"
    elif isinstance(path, (str, os.PathLike)):
        directory, origin = Path(path), ""
    else:
        raise TypeError(f"path must be a str or os.PathLike directory, got "
                        f"{type(path).__name__} {path!r}")
    if not directory.exists():
        raise FileNotFoundError(f"MNIST directory {str(directory)!r}{origin} does not exist")
    if not directory.is_dir():
        raise NotADirectoryError(f"MNIST directory {str(directory)!r}{origin} is not a directory")
    return directory


def _split(images: np.ndarray, labels: np.ndarray, images_path, labels_path) -> Split:
    """Check one (images, labels) pair of IDX arrays and convert it to (X, y)."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: expected uint8 images of shape (n, 28, 28), "
                         f"got {images.dtype} of shape {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected 1-D uint8 labels, "
                         f"got {labels.dtype} of shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} "
                         f"holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must be digits 0..9, got {labels.max()}")
    X = images.reshape(len(images), -1).astype(np.float32)
    X /= 255
    return X, labels.astype(np.int64)
