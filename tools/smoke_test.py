"""Smoke test of an *installed* bpcore: a wheel or an sdist build, never the source tree.

Run it with the interpreter of the environment to test, from any directory:

    python tools/smoke_test.py                  # whatever the build found
    python tools/smoke_test.py --openmp yes     # the build must have OpenMP
    python tools/smoke_test.py --openmp no      # the build must be serial

It prints ``bpcore.build_info()``, checks that ``bpcore`` was imported from an
installation (not from this checkout), that the package data shipped (``py.typed``,
the MNIST subset), that ``__version__`` is the installed distribution's version,
then trains two tiny networks: XOR (which must be learnt) and one epoch of
784-30-10 on the shipped MNIST subset (which must beat chance by far).  With
OpenMP it also checks that 1 and 2 threads train bitwise-identical weights.
``.ci/run`` and cibuildwheel's ``test-command`` run it.  Exit status 0 means pass.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import numpy as np

CHECKOUT = Path(__file__).resolve().parents[1]


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"smoke test FAILED: {message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openmp", choices=("yes", "no", "any"), default="any",
                        help="what build_info()['openmp'] must say (default: anything)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    import bpcore
    from bpcore import Network
    from bpcore.datasets import load_mnist_subset

    info = bpcore.build_info()
    print(json.dumps(info, indent=1))
    location = Path(bpcore.__file__).resolve().parent
    print(f"bpcore {bpcore.__version__} imported from {location}")
    check(CHECKOUT not in location.parents and location != CHECKOUT,
          f"bpcore was imported from the source tree ({location}), not an installation")
    check(bpcore.__version__ == version("bpcore") == info["version"],
          f"__version__ {bpcore.__version__!r} != distribution version {version('bpcore')!r}")
    # The compiled kernels (on x86-64 also one module per instruction set; only the
    # ones this CPU runs may be imported, which bpcore does by itself).
    compiled = sorted(p.name for p in location.glob("_kernels*") if p.suffix in (".so", ".pyd"))
    print("compiled modules:", ", ".join(compiled) or "none")
    check(any(name.split(".")[0] == "_kernels" for name in compiled),
          f"no compiled bpcore._kernels in {location}")
    check((files("bpcore") / "py.typed").is_file(), "py.typed is not installed")
    if args.openmp != "any":
        check(info["openmp"] is (args.openmp == "yes"),
              f"build_info()['openmp'] is {info['openmp']!r}, expected {args.openmp == 'yes'} "
              f"({info['openmp_reason']})")

    # XOR: the network must learn it.
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    Y = np.array([[0], [1], [1], [0]], dtype=float)
    net = Network([2, 8, 1], activations=["tanh", "sigmoid"], cost="cross_entropy", seed=1)
    net.fit(X, Y, epochs=2000, batch_size=4, lr=1.0, seed=0)
    check(np.round(net.feedforward(X)[:, 0]).tolist() == [0, 1, 1, 0], "XOR was not learnt")

    # One epoch of Nielsen's network on the shipped subset, with 1 and 2 threads.
    (X_train, y_train), (X_test, y_test) = load_mnist_subset()
    weights = {}
    for threads in (1, 2) if info["openmp"] else (1,):
        net = Network([784, 30, 10], init="gaussian", seed=0, num_threads=threads)
        history = net.fit(X_train, y_train, epochs=1, batch_size=10, lr=3.0, seed=0,
                          validation_data=(X_test, y_test))
        accuracy = history.val_accuracy[-1]
        print(f"MNIST subset, 1 epoch, {threads} thread(s): test accuracy {accuracy:.3f}")
        check(accuracy > 0.5, f"test accuracy {accuracy:.3f} after one epoch (expected > 0.5)")
        weights[threads] = [w.copy() for w in net.weights] + [b.copy() for b in net.biases]
    if 2 in weights:
        check(all(np.array_equal(a, b) for a, b in zip(weights[1], weights[2])),
              "1 and 2 threads trained different weights")

    print(f"smoke test passed in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
