"""Build the MNIST subset shipped in ``python/data/mnist-subset/`` from the real MNIST files.

Writes the first N training and first M test examples as IDX files with the
standard names, gzipped with mtime 0 so that the same inputs give the same
bytes.  If the four files would exceed ``--max-bytes``, N and M are reduced in
proportion until they fit.  See ``--help`` for the options.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _datasets():
    """``bpcore.datasets`` loaded from the source tree: needs neither an install nor the core."""
    spec = importlib.util.spec_from_file_location("_bpcore_datasets",
                                                  REPO / "python" / "datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (type code 0x08)."""
    if array.dtype != np.uint8:
        raise TypeError(f"only uint8 arrays are written, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path,
                        default=REPO.parent / "shared" / "data" / "mnist",
                        help="directory with the four MNIST files (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "python" / "data" / "mnist-subset",
                        help="output directory (default: %(default)s)")
    parser.add_argument("--train", type=int, default=8000,
                        help="training examples (default: %(default)s)")
    parser.add_argument("--test", type=int, default=2000,
                        help="test examples (default: %(default)s)")
    parser.add_argument("--max-bytes", type=int, default=2_000_000,
                        help="limit on the four files' total size (default: %(default)s)")
    args = parser.parse_args(argv)

    datasets = _datasets()
    counts = {"train": args.train, "test": args.test}
    arrays = {}
    for split, names in datasets.MNIST_FILES.items():
        for name in names:
            matches = [p for p in (args.source / (name + ".gz"), args.source / name)
                       if p.is_file()]
            if not matches:
                parser.error(f"{name}.gz not found in {args.source}")
            arrays[name] = datasets.read_idx(matches[0])
            if not 0 <= counts[split] <= len(arrays[name]):
                parser.error(f"--{split} must be in [0, {len(arrays[name])}] (the examples in "
                             f"{matches[0]}), got {counts[split]}")

    while True:
        blobs = {name: gzip.compress(idx_bytes(arrays[name][:counts[split]]), compresslevel=9,
                                     mtime=0)
                 for split, names in datasets.MNIST_FILES.items() for name in names}
        total = sum(len(blob) for blob in blobs.values())
        if total <= args.max_bytes:
            break
        if not any(counts.values()):
            parser.error(f"--max-bytes {args.max_bytes} is below the size of empty files "
                         f"({total})")
        factor = 0.95 * args.max_bytes / total
        counts = {split: int(n * factor) for split, n in counts.items()}

    args.out.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        path = args.out / (name + ".gz")
        path.write_bytes(blob)
        print(f"{path}: {len(blob):,} bytes")
    print(f"{counts['train']} train + {counts['test']} test examples, {total:,} bytes in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
