"""The ``bpcore`` command: ``train`` fits Nielsen's MNIST network, ``info`` shows the build.

Run as ``bpcore ...`` or ``python -m bpcore ...``; :func:`main` is the entry point.
"""
from __future__ import annotations

import argparse
import sys

from . import DivergenceError, Network, __version__, build_info
from ._config import ACTIVATIONS, COSTS, DTYPES, INITS
from ._validation import check_fit_args
from .datasets import load_mnist, load_mnist_subset

_TRAIN_EPILOG = """\
example: Nielsen's chapter 1 network on the full MNIST set (about 95% test accuracy)
  python -m bpcore train --data ~/mnist --sizes 784,30,10 --epochs 30 --lr 3.0

--data DIR names a directory holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (gzipped or not)."""


class _UsageError(Exception):
    """A command line that argparse rejected: ``args`` is (usage, message)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing and exiting, so main can return 2."""

    def error(self, message):
        raise _UsageError(self.format_usage(), message)


def _int_list(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 784,30,10, got {text!r}") from None


def _build_parser() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")

    parser = _Parser(prog="bpcore", description="Train fully-connected networks on MNIST "
                                                "with bpcore, or show how it was built.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_TRAIN_EPILOG, help="train a network on MNIST and report its test accuracy",
        description="Train a fully-connected network on MNIST by mini-batch SGD, then print\n"
                    "the training cost, test cost and test accuracy of every epoch.")
    train.add_argument("--data", metavar="DIR",
                       help="directory with the full MNIST set (default: the subset shipped "
                            "with bpcore, the first images of the MNIST files)")
    train.add_argument("--sizes", type=_int_list, default="784,30,10", metavar="N,N,...",
                       help="neurons per layer, inputs first: 784 in, 10 out "
                            "(default: %(default)s)")
    train.add_argument("--activations", default="sigmoid", metavar="NAME[,NAME...]",
                       help="one activation for every layer, or one per layer, from "
                            f"{', '.join(ACTIVATIONS)} (default: %(default)s)")
    train.add_argument("--cost", default="quadratic", choices=COSTS, metavar="NAME",
                       help=f"{', '.join(COSTS)} (default: %(default)s)")
    train.add_argument("--init", default="gaussian", choices=INITS, metavar="NAME",
                       help=f"initial parameters: {', '.join(INITS)} (default: %(default)s, "
                            "all N(0, 1) as in network.py)")
    train.add_argument("--epochs", type=int, default=30, metavar="N",
                       help="passes over the training set (default: %(default)s)")
    train.add_argument("--batch-size", type=int, default=10, metavar="N",
                       help="examples per SGD step (default: %(default)s)")
    train.add_argument("--lr", type=float, default=3.0, help="learning rate (default: %(default)s)")
    train.add_argument("--l2", type=float, default=0.0,
                       help="L2 regularisation strength lambda (default: %(default)s)")
    train.add_argument("--momentum", type=float, default=0.0, metavar="MU",
                       help="momentum coefficient in [0, 1) (default: %(default)s)")
    train.add_argument("--dtype", default="float64", choices=DTYPES, metavar="NAME",
                       help=f"{', '.join(DTYPES)} (default: %(default)s)")
    train.add_argument("--threads", type=int, metavar="N",
                       help="OpenMP threads (default: OMP_NUM_THREADS, else all cores)")
    train.add_argument("--seed", type=int, default=0, metavar="N",
                       help="seeds the initial parameters and the shuffling (default: %(default)s)")
    train.set_defaults(run=_train)

    info = commands.add_parser("info", parents=[common], help="show how bpcore was built",
                               description="Print bpcore.build_info() as 'key: value' lines.")
    info.set_defaults(run=_info)
    return parser


def _train(args: argparse.Namespace) -> int:
    sizes = args.sizes
    if sizes[0] != 784 or sizes[-1] != 10:
        raise ValueError("--sizes must start with 784 (the 28x28 pixels) and end with 10 "
                         f"(the digits) for MNIST, got {','.join(map(str, sizes))}")
    names = args.activations.split(",")
    net = Network(sizes, activations=names[0] if len(names) == 1 else names, cost=args.cost,
                  dtype=args.dtype, init=args.init, seed=args.seed, num_threads=args.threads)
    check_fit_args(args.epochs, args.batch_size, args.lr, args.l2, args.momentum)

    if args.data is None:
        (X, y), (X_test, y_test) = load_mnist_subset()
        source = "the MNIST subset shipped with bpcore"
    else:
        (X, y), (X_test, y_test) = load_mnist(args.data)
        source = f"MNIST from {args.data}"
    threads = (f"{net.num_threads} thread(s)" if build_info()["openmp"]
               else "1 thread (built without OpenMP)")
    print(f"bpcore {__version__}: {source} ({len(X):,} train, {len(X_test):,} test); "
          f"sizes {','.join(map(str, sizes))}, {args.activations}, {args.cost} cost; "
          f"{net.dtype.name}, {threads}", flush=True)

    def report(epoch, history):
        seconds = history.seconds[-1]
        print(f"epoch {epoch}/{args.epochs}  train cost {history.train_cost[-1]:.4f}  "
              f"test cost {history.val_cost[-1]:.4f}  test accuracy "
              f"{history.val_accuracy[-1]:.4f}  {seconds:.2f} s  "
              f"({len(X) / seconds:,.0f} samples/s)", flush=True)

    net.fit(X, y, args.epochs, args.batch_size, args.lr, l2=args.l2, momentum=args.momentum,
            validation_data=(X_test, y_test), callback=report)
    print(f"test accuracy: {net.evaluate(X_test, y_test):.4f}")
    return 0


def _info(args: argparse.Namespace) -> int:
    for key, value in build_info().items():
        print(f"{key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Bad arguments print ``bpcore: error: <message>`` to stderr and give 2; a
    training run that diverges gives 1, one interrupted by Ctrl-C 130.  With
    ``--debug`` errors propagate, with their traceback.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        usage, message = exc.args
        print(f"{usage}bpcore: error: {message}", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError, DivergenceError) as exc:
        if args.debug:
            raise
        print(f"bpcore: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, DivergenceError) else 2
    except KeyboardInterrupt:
        print("bpcore: interrupted", file=sys.stderr)
        return 130
