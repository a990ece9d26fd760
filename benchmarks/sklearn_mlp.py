"""BPClassifier against scikit-learn's MLPClassifier with the same parameters.

Both estimators get one parameter set, ``MLPClassifier(**params).get_params()``
passed unchanged to :class:`bpcore.sklearn.BPClassifier`, and are scored on the
same held-out data: scikit-learn's digits (raw pixel values 0-16, unscaled, as
``load_digits`` gives them; a stratified quarter held out) and MNIST (60,000
training and 10,000 test images, pixels in [0, 1]).  MNIST is read with
``bpcore.datasets.load_mnist`` from ``--mnist DIR``, ``$BPCORE_DATA/mnist``, the
download cache, or ``shared/data/mnist`` beside the repository; without the
files it is skipped (never downloaded).  Prints a Markdown table: test
accuracy, epochs run (``n_iter_``) and fit time of each.

    python benchmarks/sklearn_mlp.py                    # digits and MNIST, defaults
    python benchmarks/sklearn_mlp.py --datasets digits --param learning_rate_init=0.01
    python benchmarks/sklearn_mlp.py --quick            # digits only, 20 epochs
"""
from __future__ import annotations

import argparse
import ast
import sys
import time
import warnings
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from bpcore.datasets import load_mnist
from bpcore.sklearn import BPClassifier

#: Where the repository's CI keeps the MNIST files: shared/data/mnist beside the checkout.
_BESIDE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def mnist(directory):
    for source in ([directory] if directory else [None, _BESIDE]):
        try:
            (X, y), (X_test, y_test) = load_mnist(source, download=False)
            return X, X_test, y, y_test
        except (FileNotFoundError, OSError):
            continue
    return None


def run(name: str, model, split) -> dict:
    X, X_test, y, y_test = split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    return {"implementation": name, "accuracy": model.score(X_test, y_test),
            "epochs": model.n_iter_, "seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,mnist")
    parser.add_argument("--mnist", metavar="DIR", help="directory of the four MNIST IDX files")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="an MLPClassifier parameter (Python literal), repeatable")
    parser.add_argument("--threads", type=int, default=None, help="bpcore's num_threads")
    parser.add_argument("--quick", action="store_true", help="digits only, max_iter=20")
    args = parser.parse_args(argv)
    params = {"random_state": 0}
    if args.quick:
        params["max_iter"] = 20
    for item in args.param:
        key, _, value = item.partition("=")
        params[key] = ast.literal_eval(value)
    datasets = ["digits"] if args.quick else args.datasets.split(",")
    shared = MLPClassifier(**params).get_params()  # the whole parameter set, defaults included

    print(f"parameters besides MLPClassifier's defaults: {params}")
    print("| data | implementation | test accuracy | epochs | fit seconds |")
    print("|---|---|---|---|---|")
    for dataset in datasets:
        split = digits() if dataset == "digits" else mnist(args.mnist)
        if split is None:
            print("(MNIST skipped: no IDX files found; pass --mnist DIR)", file=sys.stderr)
            continue
        for name, model in (("scikit-learn MLPClassifier", MLPClassifier(**shared)),
                            ("bpcore BPClassifier", BPClassifier(**shared,
                                                                 num_threads=args.threads))):
            row = run(name, model, split)
            print(f"| {dataset} | {row['implementation']} | {row['accuracy']:.4f} | "
                  f"{row['epochs']} | {row['seconds']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
