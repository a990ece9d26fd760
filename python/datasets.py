"""MNIST and Fashion-MNIST: the IDX reader, loaders that find or download the files, the subset.

The IDX format (http://yann.lecun.com/exdb/mnist/) is a 4-byte magic
``0x00 0x00 <type code> <ndim>``, then ``ndim`` big-endian uint32 dimensions,
then the data, big-endian, in C order.  Files may be gzip-compressed.

:func:`load_mnist` and :func:`load_fashion_mnist` look for the four standard
files (:data:`MNIST_FILES`; Fashion-MNIST uses the same names) in ``path``,
then in ``$BPCORE_DATA/mnist`` (``fashion-mnist``), then in the per-user cache
directory (``platformdirs.user_cache_dir("bpcore")``, same sub-folders), and
download what is missing into the cache.  A download is verified against the
digest recorded here before it is moved into place, so the cache only ever
holds complete, verified files.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import math
import os
import pickle
import secrets
import zlib
from importlib.resources import as_file, files
from pathlib import Path
from typing import NamedTuple
from urllib.request import urlopen

import numpy as np
import platformdirs
from tqdm import tqdm

__all__ = ["MNIST_FILES", "MNIST_SHA256", "FASHION_MNIST_MD5", "load_mnist",
           "load_fashion_mnist", "load_mnist_subset", "load_mnist_pkl", "read_idx"]

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

#: SHA-256 of the gzipped MNIST files as the mirrors serve them.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: MD5 of the gzipped Fashion-MNIST files, as published by its authors (Zalando
#: Research, in the README of github.com/zalandoresearch/fashion-mnist); they
#: publish no SHA-256.  MD5 detects a corrupt or truncated download, not a
#: deliberately forged one.
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

_GZIP_MAGIC = b"\x1f\x8b"
#: The most dimensions a NumPy array can have (NPY_MAXDIMS: 32 before NumPy 2, 64 since).
_MAX_NDIM = 64 if int(np.__version__.split(".")[0]) >= 2 else 32
_TIMEOUT = 30  # seconds without an answer before a mirror is given up
_CHUNK = 1 << 16

Split = tuple[np.ndarray, np.ndarray]


# The argument checks of bpcore._checks, repeated: tools/make_mnist_subset.py
# loads this module from the source tree on its own, without the package.
def as_path(name: str, value) -> str:
    """A file path given as str, bytes or os.PathLike, as a str."""
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike file path, got "
                        f"{type(value).__name__} {value!r:.80}")
    return os.fsdecode(os.fspath(value))


def check_bool(name: str, value) -> bool:
    """A bool (or NumPy bool); anything else, even if it has a truth value, is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} "
                        f"{value!r:.80}")
    return bool(value)


class _Source(NamedTuple):
    """Where one data set is looked for and downloaded from."""

    title: str
    folder: str  # sub-folder of $BPCORE_DATA and of the cache
    mirrors: tuple[str, ...]  # base URLs, tried in order
    algorithm: str  # hashlib name of the digests
    digests: dict[str, str]  # <name>.gz -> hex digest


_MNIST = _Source("MNIST", "mnist",
                 ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "https://storage.googleapis.com/cvdf-datasets/mnist/"),
                 "sha256", MNIST_SHA256)
_FASHION_MNIST = _Source(
    "Fashion-MNIST", "fashion-mnist",
    ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
     "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    "md5", FASHION_MNIST_MD5)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file, gzip-compressed or not, into an array of native byte order.

    Compression is recognised from the file's first bytes, not its name.  Raises
    ``ValueError`` naming the file if it is not IDX, is truncated, or has bytes
    beyond the data its header declares.
    """
    path = Path(as_path("path", path))
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
    if ndim > _MAX_NDIM:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions, more than the "
                         f"{_MAX_NDIM} an array can have")
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


def load_mnist(path: str | os.PathLike | None = None, *, download: bool = True,
               flatten: bool = True, one_hot: bool = False) -> tuple[Split, Split]:
    """The full MNIST set as ``((X_train, y_train), (X_test, y_test))``.

    The four files (:data:`MNIST_FILES`, gzipped or not) are looked for in
    ``path``, then in ``$BPCORE_DATA/mnist``, then in the cache directory
    ``<platformdirs.user_cache_dir("bpcore")>/mnist``; the first directory that
    holds all four is read.  If none does and ``download`` is true, the
    missing ones are downloaded into the cache (about 11 MB), each checked
    against :data:`MNIST_SHA256` before it is moved into place.

    ``X`` is float32 with pixels scaled to [0, 1], of shape ``(n, 784)``, or
    ``(n, 28, 28)`` without ``flatten``; ``y`` holds the int64 labels 0..9, or
    with ``one_hot`` their float32 one-hot rows of shape ``(n, 10)``.

    Raises ``FileNotFoundError`` naming each directory searched and the files
    it lacks (and why a download failed), ``ValueError`` for a file that is not
    valid IDX or not MNIST-shaped.
    """
    return _load(_MNIST, path, download, flatten, one_hot)


def load_fashion_mnist(path: str | os.PathLike | None = None, *, download: bool = True,
                       flatten: bool = True, one_hot: bool = False) -> tuple[Split, Split]:
    """Zalando's Fashion-MNIST (10 classes of clothing), exactly like :func:`load_mnist`.

    Same file names and format as MNIST; looked for in ``path``,
    ``$BPCORE_DATA/fashion-mnist`` and ``<cache>/fashion-mnist``, downloaded
    (about 30 MB) and checked against :data:`FASHION_MNIST_MD5`, the digests
    its authors publish.  Label k is, in order: T-shirt/top, trouser, pullover,
    dress, coat, sandal, shirt, sneaker, bag, ankle boot.
    """
    return _load(_FASHION_MNIST, path, download, flatten, one_hot)


def load_mnist_subset(*, flatten: bool = True, one_hot: bool = False) -> tuple[Split, Split]:
    """The MNIST subset shipped with bpcore, in the same form as :func:`load_mnist`.

    It holds the first examples of the MNIST training and test files (built by
    ``tools/make_mnist_subset.py``) and needs no download.
    """
    flatten, one_hot = check_bool("flatten", flatten), check_bool("one_hot", one_hot)
    root = files("bpcore") / "data" / "mnist-subset"
    splits = []
    for images, labels in MNIST_FILES.values():
        with as_file(root / (images + ".gz")) as ipath, as_file(root / (labels + ".gz")) as lpath:
            splits.append(_split(read_idx(ipath), read_idx(lpath), ipath, lpath,
                                 flatten, one_hot))
    return tuple(splits)


def load_mnist_pkl(path: str | os.PathLike, *, allow_pickle: bool = False,
                   flatten: bool = True, one_hot: bool = False) -> tuple[Split, Split, Split]:
    """Nielsen's ``mnist.pkl.gz``: ``((X_train, y_train), (X_val, y_val), (X_test, y_test))``.

    The file is a gzipped pickle, and unpickling runs whatever code the file
    names: a tampered ``mnist.pkl.gz`` can do anything your account can.  It is
    therefore read only with ``allow_pickle=True``, for a copy you trust;
    otherwise ``ValueError`` is raised before the file is opened.  The IDX
    files of :func:`load_mnist` carry the same images (its 60,000 training
    examples are Nielsen's 50,000 + 10,000 validation ones) and need no pickle.

    Arrays come in the form :func:`load_mnist` gives.  Raises ``ValueError``
    naming the file if it is not a gzipped pickle of that structure.
    """
    path = as_path("path", path)
    # a bool: a truthy string such as "no" must not switch the check off
    if not check_bool("allow_pickle", allow_pickle):
        raise ValueError(
            f"refusing to unpickle {path!r}: loading a pickle executes code the "
            "file names, so a tampered file could run anything; pass allow_pickle=True only "
            "for a file you trust, or use load_mnist() (IDX files, no pickle)")
    flatten, one_hot = check_bool("flatten", flatten), check_bool("one_hot", one_hot)
    try:
        with gzip.open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")  # written by Python 2
            f.read()  # on to the end of the stream, where gzip checks its CRC and length
    except (EOFError, zlib.error, gzip.BadGzipFile, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a gzipped pickle ({type(exc).__name__}: {exc})") from None
    if not (isinstance(data, tuple) and len(data) == 3
            and all(isinstance(s, tuple) and len(s) == 2 for s in data)):
        raise ValueError(f"{path}: expected a tuple of 3 (images, labels) pairs, as in "
                         f"Nielsen's mnist.pkl.gz, got {type(data).__name__}")
    splits = []
    for name, (images, labels) in zip(("training", "validation", "test"), data):
        try:
            images, labels = np.asarray(images), np.asarray(labels)
        except ValueError as exc:  # ragged lists
            raise ValueError(f"{path}: {name} images or labels are not arrays ({exc})") from None
        if images.ndim != 2 or images.shape[1] != 784 or images.dtype.kind != "f":
            raise ValueError(f"{path}: {name} images must be floats of shape (n, 784), got "
                             f"{images.dtype} of shape {images.shape}")
        if labels.shape != images.shape[:1] or labels.dtype.kind not in "iu":
            raise ValueError(f"{path}: {name} labels must be {len(images)} integers, got "
                             f"{labels.dtype} of shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{path}: {name} labels must be digits 0..9, got values in "
                             f"[{labels.min()}, {labels.max()}]")
        with np.errstate(over="ignore"):  # beyond the float32 range: reported just below
            X = images.astype(np.float32)
        if not np.isfinite(X).all():
            raise ValueError(f"{path}: {name} images hold NaN or infinite values (in float32)")
        splits.append(_finish(X, labels, flatten, one_hot))
    return tuple(splits)


# -- finding and downloading -------------------------------------------------------------
def _load(source: _Source, path, download: bool, flatten: bool, one_hot: bool):
    download = check_bool("download", download)
    flatten, one_hot = check_bool("flatten", flatten), check_bool("one_hot", one_hot)
    found = _locate(source, path, download)
    return tuple(_split(read_idx(found[images]), read_idx(found[labels]),
                        found[images], found[labels], flatten, one_hot)
                 for images, labels in MNIST_FILES.values())


def _search_path(source: _Source, path) -> list[tuple[Path, str]]:
    """The directories to look in, in order, each with how it was chosen; the cache last."""
    searched = []
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike directory, got "
                            f"{type(path).__name__} {path!r}")
        directory = Path(path).expanduser()
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"{source.title} directory {str(directory)!r} is not a "
                                     "directory")
        searched.append((directory, "path"))
    env = os.environ.get("BPCORE_DATA")
    if env:
        searched.append((Path(env).expanduser() / source.folder, "$BPCORE_DATA"))
    searched.append((Path(platformdirs.user_cache_dir("bpcore")) / source.folder,
                     "download cache"))
    return searched


def _present(directory: Path) -> dict[str, Path]:
    """The standard files found in ``directory``, gzipped (preferred) or not."""
    found = {}
    for name in _MNIST_NAMES:
        for candidate in (directory / (name + ".gz"), directory / name):
            if candidate.is_file():
                found[name] = candidate
                break
    return found


def _locate(source: _Source, path, download: bool) -> dict[str, Path]:
    """The four files of ``source``: found on the search path, or downloaded into the cache."""
    searched = _search_path(source, path)
    for directory, _ in searched:
        found = _present(directory)
        if len(found) == len(_MNIST_NAMES):
            return found
    if download:
        cache = searched[-1][0]
        try:
            for name in _MNIST_NAMES:
                if name not in _present(cache):
                    _download(source, name + ".gz", cache)
        except _DownloadError as exc:
            raise _not_found(source, searched, exc.reasons) from None
        return _present(cache)
    raise _not_found(source, searched, None)


class _DownloadError(Exception):
    """No mirror delivered a file with the expected digest; ``reasons`` says why, per URL."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def _create_beside(path: str | os.PathLike, prefix: str, suffix: str) -> tuple[int, str]:
    """``(fd, name)`` of a new file, opened for writing, in the directory of ``path``.

    For writing a file under a temporary name and renaming it over ``path``.
    Unlike ``tempfile.mkstemp`` (mode 0600) the file gets the permissions a
    plain ``open(path, "w")`` would give: those of ``path`` if it exists, else
    0666 less the process's umask (applied by the system as it creates the file).
    """
    directory = os.path.dirname(os.path.abspath(path))
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
             | getattr(os, "O_NOFOLLOW", 0))
    for _ in range(100):
        name = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            fd = os.open(name, flags, 0o666)
        except FileExistsError:
            continue
        try:
            os.chmod(name, os.stat(path).st_mode & 0o7777)  # replacing: keep its mode
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            os.unlink(name)
            raise
        return fd, name
    raise FileExistsError(f"no free temporary name in {directory}")  # pragma: no cover


def _download(source: _Source, filename: str, directory: Path) -> None:
    """Fetch ``filename`` into ``directory`` from the first mirror that serves it intact.

    Each attempt writes to a temporary file in ``directory`` that is renamed
    over ``filename`` only once its digest matches; it is removed otherwise,
    also when the download is interrupted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    expected, reasons = source.digests[filename], []
    for mirror in source.mirrors:
        url = mirror + filename
        fd, tmp = _create_beside(directory / filename, f".{filename}.", ".part")
        try:
            with os.fdopen(fd, "wb") as out:
                digest = _fetch(url, out, source.algorithm, filename)
            if digest == expected:
                os.replace(tmp, directory / filename)
                return
            reasons.append(f"{url}: {source.algorithm} {digest} is not the expected {expected}")
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, cut transfers
            reasons.append(f"{url}: {exc}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    raise _DownloadError(reasons)


def _fetch(url: str, out, algorithm: str, label: str) -> str:
    """Copy ``url`` to the file ``out`` with a progress bar; return the hex digest of the bytes."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with urlopen(url, timeout=_TIMEOUT) as response:
        length = response.headers.get("Content-Length")
        with tqdm(total=int(length) if length else None, desc=label, unit="B",
                  unit_scale=True, unit_divisor=1024, disable=None, leave=False) as bar:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def _not_found(source: _Source, searched, failures: list[str] | None) -> FileNotFoundError:
    where = []
    for directory, how in searched:
        if not directory.is_dir():
            state = "does not exist"
        else:
            missing = [name + ".gz" for name in _MNIST_NAMES if name not in _present(directory)]
            state = "lacks " + ", ".join(missing)
        where.append(f"{directory} ({how}) {state}")
    names = ", ".join(name + ".gz" for name in _MNIST_NAMES)
    message = (f"{source.title} files not found: {'; '.join(where)}. Put {names} (gzipped or "
               "not) into one of these directories")
    if failures is None:
        message += ", or pass download=True to download them"
    else:
        message += f"; downloading them failed: {'; '.join(failures)}"
    return FileNotFoundError(message)


# -- conversion ------------------------------------------------------------------------
def _split(images: np.ndarray, labels: np.ndarray, images_path, labels_path,
           flatten: bool, one_hot: bool) -> Split:
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
    X = images.astype(np.float32)
    X /= 255
    return _finish(X, labels, flatten, one_hot)


def _finish(X: np.ndarray, labels: np.ndarray, flatten: bool, one_hot: bool) -> Split:
    """float32 images (n, 784) or (n, 28, 28); int64 labels or float32 one-hot rows."""
    X = X.reshape(len(X), 784) if flatten else X.reshape(len(X), 28, 28)
    y = labels.astype(np.int64)
    return X, (np.eye(10, dtype=np.float32)[y] if one_hot else y)
