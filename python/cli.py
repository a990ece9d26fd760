"""The ``bpcore`` command: train, evaluate, predict, export, explain, info, gradcheck, bench.

Run as ``bpcore ...`` or ``python -m bpcore ...``; :func:`main` is the entry
point.  matplotlib is imported only when a plot is asked for (``--plot``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import bench as bench_configs
from . import ConvergenceWarning, DivergenceError, History, Network, __version__, build_info
from ._progress import epoch_line, epoch_postfix
from ._config import ACTIVATIONS, COSTS, DTYPES, INITS
from ._checks import check_fit_args
from .callbacks import EarlyStopping
from .distributed import DistributedError
from .datasets import load_fashion_mnist, load_mnist, load_mnist_subset

_DATA_HELP = ("the data: 'subset' (the first MNIST images, shipped with bpcore), 'mnist' or "
              "'fashion-mnist' (the full sets, looked for in $BPCORE_DATA/<name> and in the "
              "download cache, and downloaded into the cache if in neither), or a directory "
              "holding the four MNIST IDX files, looked in first (default: %(default)s)")

_TRAIN_EPILOG = """\
examples:
  bpcore train --epochs 1                      # 784-30-10 on the shipped subset, seconds
  bpcore train --data mnist --epochs 30 --lr 3.0 --save net.npz --plot curves.png
                                               # Nielsen's chapter 1 network, ~95% accuracy
  bpcore train --data mnist --sizes 784,100,10 --cost cross_entropy --init scaled_gaussian \\
      --lr 0.5 --l2 5 --validation-split 0.1 --early-stopping 5

Progress: on a terminal, a bar advances once per epoch (its unit is epochs: an
epoch runs as one call into the compiled core) and shows the training cost,
the validation accuracy and samples/s of the last epoch; otherwise one line is
printed per epoch.  Without --validation-split the per-epoch figures are those
of the test set.  Ctrl-C stops training, still writes --save and --plot with
the network as it is (after its last completed epoch; nothing if none has
completed), and exits with status 130.

A run that learns nothing (inputs far off scale, a training cost no lower than
predicting the same digit for every image, dead or saturated units) prints a
"bpcore: warning:" line naming the likely cause; --strict makes it exit with
status 1 after reporting the test accuracy."""


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
    threads = _Parser(add_help=False)
    threads.add_argument("--threads", type=int, metavar="N",
                         help="OpenMP threads (default: OMP_NUM_THREADS, else all cores)")
    data = _Parser(add_help=False)
    data.add_argument("--data", default="subset", metavar="SOURCE", help=_DATA_HELP)
    network = _Parser(add_help=False)
    network.add_argument("--activations", default="sigmoid", metavar="NAME[,NAME...]",
                         help="one activation for every layer, or one per layer, from "
                              f"{', '.join(ACTIVATIONS)} (default: %(default)s)")
    network.add_argument("--cost", default="quadratic", choices=COSTS, metavar="NAME",
                         help=f"{', '.join(COSTS)} (default: %(default)s)")
    network.add_argument("--dtype", default="float64", choices=DTYPES, metavar="NAME",
                         help=f"{', '.join(DTYPES)} (default: %(default)s)")

    parser = _Parser(prog="bpcore", description="Train fully-connected networks on MNIST with "
                                                "bpcore, use them, and check the build.",
                     epilog="'bpcore COMMAND --help' shows a command's options and examples.")
    parser.add_argument("--version", action="version", version=f"bpcore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, run, parents, help, description, epilog):
        sub = commands.add_parser(name, parents=[common, *parents], help=help,
                                  description=description, epilog=epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=run)
        return sub

    train = command(
        "train", _train, [data, network, threads],
        "train a network on MNIST and report its test accuracy",
        "Train a fully-connected network by mini-batch SGD, report each epoch, then the\n"
        "accuracy on the test set.", _TRAIN_EPILOG)
    train.add_argument("--sizes", type=_int_list, default="784,30,10", metavar="N,N,...",
                       help="neurons per layer, inputs first: 784 in, 10 out "
                            "(default: %(default)s)")
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
    train.add_argument("--seed", type=int, default=0, metavar="N",
                       help="seeds the initial parameters, the shuffling and the validation "
                            "split (default: %(default)s)")
    train.add_argument("--validation-split", type=float, metavar="FRACTION",
                       help="hold out this fraction of the training set, drawn at random, to "
                            "validate on after each epoch (the test set is still evaluated "
                            "at the end)")
    train.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                       help="stop when the validation accuracy has not improved for PATIENCE "
                            "epochs and keep the parameters of the best epoch (needs "
                            "--validation-split)")
    train.add_argument("--save", metavar="PATH", help="write the trained network to PATH (.npz)")
    train.add_argument("--plot", metavar="PATH",
                       help="draw the cost and accuracy per epoch, and the speed of learning "
                            "of each layer (mean ||dC/db^l||), to PATH (.png; needs "
                            "matplotlib: pip install matplotlib)")
    train.add_argument("--quiet", action="store_true",
                       help="print only the final test accuracy")
    train.add_argument("--strict", action="store_true",
                       help="exit with status 1 if training learnt nothing (after the "
                            "'bpcore: warning:' line that says why)")
    train.add_argument("--distributed", action="store_true",
                       help="train data-parallel over the ranks of an MPI job, e.g. "
                            "'mpiexec -n 2 bpcore train --distributed' (needs pip install "
                            "\".[mpi]\" in the bpcore source tree); every rank reads the data, rank 0 prints and "
                            "writes --save and --plot")

    evaluate = command(
        "evaluate", _evaluate, [data, threads],
        "accuracy, cost and confusion matrix of a saved model",
        "Evaluate a model written by 'bpcore train --save' on a test set: accuracy, mean\n"
        "cost and the 10x10 confusion matrix (rows: true class, columns: predicted).",
        "example:\n  bpcore evaluate net.npz --data mnist")
    evaluate.add_argument("model", metavar="MODEL", help="model file (.npz)")

    predict = command(
        "predict", _predict, [threads], "classify the examples of a .npy or .csv file",
        "Feed each row of INPUT (one example per row: 784 pixels in [0, 1] for MNIST;\n"
        ".npy of shape (n, 784) or (n, 28, 28), or comma-separated .csv) through a model\n"
        "and write the predicted class of each, one per line.",
        "examples:\n  bpcore predict net.npz digits.npy                 # labels to stdout\n"
        "  bpcore predict net.npz digits.csv --out labels.npy\n"
        "  bpcore predict net.npz digits.npy --proba --out activations.csv")
    predict.add_argument("model", metavar="MODEL", help="model file (.npz)")
    predict.add_argument("input", metavar="INPUT", help="examples, .npy or .csv")
    predict.add_argument("--out", metavar="PATH",
                         help="write to PATH instead of stdout: a .npy array if PATH ends in "
                              ".npy, else text (.csv: comma-separated)")
    predict.add_argument("--proba", action="store_true",
                         help="write the output activations a^L (one row per example) instead "
                              "of class labels")

    export = command(
        "export", _export, [], "write a saved model as ONNX or as a network2.py file",
        "Convert a model written by 'bpcore train --save' (.npz): to ONNX (.onnx; needs\n"
        "pip install \".[onnx]\" in bpcore's source tree), whose graph computes a^L for a batch of examples\n"
        "(input 'input', output 'output'), or to the JSON of Nielsen's network2.py\n"
        "(.json; sigmoid networks with the quadratic or cross-entropy cost only).",
        "examples:\n  bpcore export net.npz net.onnx\n  bpcore export net.npz net.json"
        "              # network2.load('net.json')")
    export.add_argument("model", metavar="MODEL", help="model file (.npz)")
    export.add_argument("output", metavar="OUTPUT", help="file to write: .onnx or .json")

    explain = command(
        "explain", _explain, [data],
        "the chain rule of one weight's gradient for one test example",
        "Show how dC_x/dw^l_jk of a saved model, for one example x of the test set, is\n"
        "the product of its chain-rule factors: a^(l-1)_k * sigma'(z^l_j) * dC_x/da^l_j,\n"
        "where dC_x/da^l_j = sum_i w^(l+1)_ij delta^(l+1)_i below the output layer.",
        "example:\n  bpcore explain net.npz --example 0 --layer 1 --weight 3 400")
    explain.add_argument("model", metavar="MODEL", help="model file (.npz)")
    explain.add_argument("--example", type=int, default=0, metavar="N",
                         help="index of the example in the test set (default: %(default)s)")
    explain.add_argument("--layer", type=int, required=True, metavar="L",
                         help="layer l of the weight, 1 (first hidden) to L (output)")
    explain.add_argument("--weight", type=int, nargs=2, required=True, metavar=("J", "K"),
                         help="w^l_jk: neuron j of layer l, neuron k of layer l-1 (from 0)")

    info = command(
        "info", _info, [], "show how bpcore was built and how it runs here",
        "Show the version, whether OpenMP is on and why, the default thread count, the\n"
        "compile arguments, the compiler and the NumPy version.",
        "examples:\n  bpcore info\n  bpcore info --json          # bpcore.build_info() as JSON")
    info.add_argument("--json", action="store_true", help="print bpcore.build_info() as JSON")

    gradcheck = command(
        "gradcheck", _gradcheck, [network], "check backpropagation against finite differences",
        "Build a random network and random data, and compare every backpropagated\n"
        "derivative with a central difference of the cost (bpcore.check_gradients).\n"
        "Prints the largest relative error per layer; exits 0 if all are within the\n"
        "tolerance of the dtype, 1 otherwise.",
        "example:\n  bpcore gradcheck --sizes 5,8,3 --activations tanh,softmax "
        "--cost log_likelihood --dtype float32")
    gradcheck.add_argument("--sizes", type=_int_list, default="4,5,3", metavar="N,N,...",
                           help="neurons per layer, inputs first (default: %(default)s)")
    gradcheck.add_argument("--examples", type=int, default=10, metavar="N",
                           help="random examples the cost is averaged over (default: "
                                "%(default)s)")
    gradcheck.add_argument("--seed", type=int, default=0, metavar="N",
                           help="seeds the network and the data (default: %(default)s)")

    bench = command(
        "bench", _bench, [], "measure bpcore's training throughput on synthetic data",
        "Time one epoch of training (median of 3, after a warm-up epoch) for the\n"
        "benchmark configs on synthetic data, at each thread count; print samples/s.\n"
        "N1: 784-30-10 sigmoid, quadratic cost, batch 10 (Nielsen's network.py);\n"
        "M: 784-256-128-10 relu/softmax, log-likelihood cost, batch 64.\n"
        "The comparison with NumPy and PyTorch is benchmarks/compare.py in bpcore's\n"
        "source repository.",
        "examples:\n  bpcore bench\n  bpcore bench --configs M-f32 --threads 1,2,4 "
        "--plot bench.png")
    bench.add_argument("--configs", default=",".join(_BENCH_DEFAULT), metavar="NAME,...",
                       help="configs to run, from "
                            f"{', '.join(c.name for c in bench_configs.CONFIGS)} "
                            "(default: %(default)s)")
    bench.add_argument("--threads", type=_int_list, metavar="N,N,...",
                       help="thread counts (default: 1 and the default thread count)")
    bench.add_argument("--samples", type=int, default=2000, metavar="N",
                       help="training examples per epoch (default: %(default)s)")
    bench.add_argument("--plot", metavar="PATH", help="draw the samples/s as bars to PATH (.png)")
    return parser


# -- helpers shared by the commands ---------------------------------------------------------
def _load_data(source: str):
    """``(train, test, description)`` for a --data SOURCE."""
    if source == "subset":
        return *load_mnist_subset(), "the MNIST subset shipped with bpcore"
    if source == "mnist":
        return *load_mnist(), "MNIST"
    if source == "fashion-mnist":
        return *load_fashion_mnist(), "Fashion-MNIST"
    return *load_mnist(source), "MNIST"


def _check_output_path(option: str, path: str | None) -> None:
    """Fail before any work if an output file could not be written where it is to go."""
    if path is None:
        return
    directory = Path(path).resolve().parent
    if not directory.is_dir():
        raise FileNotFoundError(f"{option} {path}: directory {directory} does not exist")
    if Path(path).is_dir():
        raise IsADirectoryError(f"{option} {path}: is a directory, not a file name")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"{option} {path}: directory {directory} is not writable")


def _plot_module(path: str):
    """bpcore.plot, imported now: a missing matplotlib or a format it cannot write
    (``--plot PATH``'s suffix) is reported before any work."""
    try:
        from . import plot
    except ImportError as exc:
        raise ImportError(f"--plot needs matplotlib ({exc.__cause__ or exc}): pip install "
                          "matplotlib (or pip install \".[plot]\" in bpcore's source tree)"
                          ) from None
    plot.check_path(path, "--plot")
    return plot


def _describe(net: Network) -> str:
    acts = net.activations
    act = acts[0] if len(set(acts)) == 1 else ",".join(acts)
    return (f"{'-'.join(map(str, net.sizes))}, {act}, {net.cost_name} cost, "
            f"{net.dtype.name}")


def _check_mnist_shape(net: Network, what: str) -> None:
    if net.sizes[0] != 784 or net.sizes[-1] != 10:
        raise ValueError(f"{what} must have 784 inputs (the 28x28 pixels) and 10 outputs (the "
                         f"classes) for MNIST, got sizes {','.join(map(str, net.sizes))}")


# -- train ------------------------------------------------------------------------------------
class _Progress:
    """The fit callback: reports each epoch, and stops early when asked to.

    Reports with a tqdm bar (unit: epochs) when stdout is a terminal, else one
    line per epoch.  With ``patience``, a :class:`bpcore.callbacks.EarlyStopping`
    on the validation accuracy stops ``fit`` once ``patience`` epochs have passed
    without improvement, and puts back the parameters of the best epoch.
    """

    def __init__(self, net: Network, epochs: int, n_train: int, label: str, quiet: bool,
                 patience: int | None):
        self.net, self.epochs, self.n_train, self.label = net, epochs, n_train, label
        self.history = History()  # until fit hands over its own, live one
        self.early = None if patience is None else EarlyStopping(net, patience)
        self.no_progress = False  # a ConvergenceWarning was shown
        self.bar = None
        self.lines = not quiet
        if not quiet and sys.stdout.isatty():
            self.bar = tqdm(total=epochs, unit="epoch", file=sys.stdout, desc="training",
                            dynamic_ncols=True)
            self.lines = False

    def __call__(self, epoch: int, history: History) -> bool:
        self.history = history
        if self.bar is not None:
            self.bar.set_postfix_str(epoch_postfix(history, self.n_train, self.label),
                                     refresh=False)
            self.bar.update(1)
        elif self.lines:
            print(epoch_line(history, epoch, self.epochs, self.n_train, self.label), flush=True)
        return self.early is not None and self.early(epoch, history)

    @property
    def stopped(self) -> bool:
        """Whether early stopping ended training (and restored the best epoch)."""
        return self.early is not None and self.early.stopped_epoch is not None

    def warn(self, message, category, filename, lineno, file=None, line=None) -> None:
        """``warnings.showwarning`` during training: one line on stderr, below the bar."""
        text = f"bpcore: warning: {_one_line(str(message))}"
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)
        if issubclass(category, ConvergenceWarning):
            self.no_progress = True

    @property
    def epochs_done(self) -> int:
        """Epochs trained so far (also one whose report an interruption cut short)."""
        return len(self.history.train_cost)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_train_args(args: argparse.Namespace) -> None:
    """What can be checked before the network is built and the data read."""
    if args.sizes[0] != 784 or args.sizes[-1] != 10:
        raise ValueError("--sizes must start with 784 (the 28x28 pixels) and end with 10 "
                         f"(the classes) for MNIST, got {','.join(map(str, args.sizes))}")
    check_fit_args(args.epochs, args.batch_size, args.lr, args.l2, args.momentum)
    if args.validation_split is not None and not 0 < args.validation_split < 1:
        raise ValueError("--validation-split must be a fraction in (0, 1), got "
                         f"{args.validation_split}")
    if args.early_stopping is not None:
        if args.early_stopping < 1:
            raise ValueError(f"--early-stopping must be >= 1 epoch, got {args.early_stopping}")
        if args.validation_split is None:
            raise ValueError("--early-stopping needs --validation-split: stopping on the test "
                             "set would tune the model to it")
    _check_output_path("--save", args.save)
    _check_output_path("--plot", args.plot)


def _hold_out(X, y, fraction: float, seed: int):
    """``(X_train, y_train, X_val, y_val)``: a random ``fraction`` of the rows held out."""
    n_val = round(fraction * len(X))
    if not 1 <= n_val < len(X):
        raise ValueError(f"--validation-split {fraction} of {len(X)} training examples leaves "
                         f"{n_val} for validation and {len(X) - n_val} for training; both need "
                         "at least 1")
    order = np.random.default_rng(seed).permutation(len(X))
    val, train = order[:n_val], order[n_val:]
    return X[train], y[train], X[val], y[val]


def _mpi_world():
    """MPI.COMM_WORLD for --distributed (mpi4py imported only then)."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"--distributed needs mpi4py and an MPI library ({exc}): pip install "
                          "\".[mpi]\" in bpcore's source tree, then run 'mpiexec -n 2 bpcore train --distributed'"
                          ) from None
    return MPI.COMM_WORLD


def _load_data_in_turn(source: str, comm):
    """_load_data on every rank, rank 0 first: a download into the cache happens once."""
    if comm is None:
        return _load_data(source)
    loaded, error = None, None
    if comm.Get_rank() == 0:
        try:
            loaded = _load_data(source)
        except Exception as exc:
            error = exc
    failure = comm.bcast(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if failure is not None:
        raise DistributedError(f"rank 0 could not read the data: {failure}")
    return loaded if loaded is not None else _load_data(source)


def _train(args: argparse.Namespace) -> int:
    _check_train_args(args)
    comm = _mpi_world() if args.distributed else None
    if comm is not None and comm.Get_rank() != 0:  # rank 0 speaks for all
        args.quiet, args.save, args.plot = True, None, None
    names = args.activations.split(",")
    net = Network(args.sizes, activations=names[0] if len(names) == 1 else names,
                  cost=args.cost, dtype=args.dtype, init=args.init, seed=args.seed,
                  num_threads=args.threads)
    plot = _plot_module(args.plot) if args.plot else None

    (X, y), (X_test, y_test), source = _load_data_in_turn(args.data, comm)
    if args.validation_split is None:
        X_val, y_val, label = X_test, y_test, "test"
    else:
        X, y, X_val, y_val = _hold_out(X, y, args.validation_split, args.seed)
        label = "validation"
    if not args.quiet:
        held_out = "" if args.validation_split is None else f", {len(X_val):,} validation"
        threads = (f"{net.num_threads} thread(s)" if build_info()["openmp"]
                   else "1 thread (built without OpenMP)")
        if comm is not None:
            threads = f"{comm.Get_size()} MPI ranks x {threads}"
        print(f"bpcore {__version__}: {source} ({len(X):,} train{held_out}, {len(X_test):,} "
              f"test); sizes {','.join(map(str, args.sizes))}, {args.activations}, "
              f"{args.cost} cost; {net.dtype.name}, {threads}", flush=True)

    progress = _Progress(net, args.epochs, len(X), label, args.quiet, args.early_stopping)
    interrupted = False
    try:
        with warnings.catch_warnings():
            warnings.showwarning = progress.warn
            net.fit(X, y, args.epochs, args.batch_size, args.lr, l2=args.l2,
                    momentum=args.momentum, validation_data=(X_val, y_val), callback=progress,
                    record_grad_norms=plot is not None, comm=comm)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    if interrupted and progress.epochs_done == 0:
        print("bpcore: interrupted before the first epoch completed; nothing saved",
              file=sys.stderr, flush=True)
        return 130

    stopped = progress.stopped
    saved = []
    if args.save:
        net.save(args.save)
        saved.append(f"saved model to {args.save}")
    if plot is not None:
        plot.plot_history(progress.history, args.plot, validation_label=label)
        saved.append(f"saved training curves to {args.plot}")
    if interrupted:
        if comm is not None and comm.Get_rank() != 0:
            return 130
        print("; ".join([f"bpcore: interrupted after epoch {progress.epochs_done}", *saved]),
              file=sys.stderr, flush=True)
        return 130
    if stopped and not args.quiet:
        print(f"early stopping after epoch {progress.epochs_done}: validation accuracy has not "
              f"improved for {args.early_stopping} epoch(s); keeping epoch "
              f"{progress.early.best_epoch} (validation accuracy {progress.early.best:.4f})")
    if comm is None or comm.Get_rank() == 0:
        print(f"test accuracy: {net.evaluate(X_test, y_test):.4f}")
    if not args.quiet:
        for line in saved:
            print(line)
    if args.strict and progress.no_progress:
        print("bpcore: error: --strict: training made no progress (see the warning above)",
              file=sys.stderr)
        return 1
    return 0


# -- evaluate, predict --------------------------------------------------------------------
def _evaluate(args: argparse.Namespace) -> int:
    net = Network.load(args.model, num_threads=args.threads)
    _check_mnist_shape(net, f"model {args.model}")
    _, (X, y), source = _load_data(args.data)
    predicted = np.argmax(net.feedforward(X), axis=1)
    correct = int(np.sum(predicted == y))
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    print(f"{args.model} ({_describe(net)}) on the test set of {source}")
    print(f"accuracy: {correct / len(y):.4f} ({correct:,} of {len(y):,})")
    print(f"cost: {net.cost(X, y):.4f} (mean {net.cost_name} cost)")
    print("confusion matrix (rows: true class, columns: predicted class):")
    width = max(6, len(f"{confusion.max():,}") + 2)
    print("true\\pred" + "".join(f"{j:>{width}}" for j in range(10)))
    for i, row in enumerate(confusion):
        print(f"{i:>9}" + "".join(f"{count:>{width},}" for count in row))
    return 0


def _read_examples(path: str, n_inputs: int) -> np.ndarray:
    """INPUT of ``predict`` as an (n, n_inputs) array."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise ValueError(f"INPUT must be a .npy or a .csv file, got {path!r}")
    try:
        if suffix == ".npy":
            with open(path, "rb") as file:  # np.load would leak its own on a broken zip
                # np.load takes anything else for a pickle, and advises allow_pickle=True
                if file.read(6) not in (b"", b"\x93NUMPY"):  # empty: np.load says so
                    raise ValueError("it does not start with the .npy header")
                file.seek(0)
                X = np.load(file, allow_pickle=False)
        else:
            with warnings.catch_warnings():  # an empty file is reported below
                warnings.simplefilter("ignore", UserWarning)
                X = np.loadtxt(path, delimiter=",", ndmin=2)
    except (ValueError, EOFError) as exc:
        why = ("it holds Python objects (an object array)" if "pickle" in str(exc).lower()
               else exc)
        raise ValueError(f"{path}: not a {suffix} file of numbers ({why})") from None
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected numbers, got an array of dtype {X.dtype}")
    if X.ndim == 1 and X.size == n_inputs:
        X = X.reshape(1, n_inputs)
    elif X.ndim == 3 and X.shape[1] * X.shape[2] == n_inputs:
        X = X.reshape(len(X), n_inputs)
    if X.ndim != 2 or X.shape[1] != n_inputs or len(X) == 0:
        raise ValueError(f"{path}: expected one example of {n_inputs} values per row, got an "
                         f"array of shape {X.shape}")
    return X


def _predict(args: argparse.Namespace) -> int:
    net = Network.load(args.model, num_threads=args.threads)
    out = net.feedforward(_read_examples(args.input, net.sizes[0]))
    result = out if args.proba else net._classify(out)
    fmt = "%.9g" if args.proba else "%d"
    if args.out is None:
        np.savetxt(sys.stdout, result, fmt=fmt, delimiter=",")
        return 0
    if Path(args.out).suffix.lower() == ".npy":
        np.save(args.out, result.astype(np.int64) if not args.proba else result)
    else:
        np.savetxt(args.out, result, fmt=fmt, delimiter=",")
    what = "output activations" if args.proba else "predicted labels"
    print(f"wrote the {what} of {len(result):,} example(s) to {args.out}")
    return 0


# -- export, explain -----------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    suffix = Path(args.output).suffix.lower()
    if suffix not in (".onnx", ".json"):
        raise ValueError(f"OUTPUT must end in .onnx (ONNX) or .json (network2.py), got "
                         f"{args.output!r}")
    _check_output_path("OUTPUT", args.output)
    net = Network.load(args.model)
    if suffix == ".onnx":
        net.to_onnx(args.output)
        print(f"wrote {args.model} ({_describe(net)}) to {args.output} as ONNX: input 'input' "
              f"(batch, {net.sizes[0]}), output 'output' (batch, {net.sizes[-1]})")
    else:
        net.save_network2(args.output)
        print(f"wrote {args.model} ({_describe(net)}) to {args.output} as a network2.py file")
    return 0


def _explain(args: argparse.Namespace) -> int:
    net = Network.load(args.model)
    _check_mnist_shape(net, f"model {args.model}")
    _, (X, y), source = _load_data(args.data)
    if not 0 <= args.example < len(X):
        raise ValueError(f"--example must be in [0, {len(X) - 1}] (the test set of {source}), "
                         f"got {args.example}")
    j, k = args.weight
    sizes = ",".join(map(str, net.sizes))
    if not 1 <= args.layer <= net.n_layers:
        raise ValueError(f"--layer must be in [1, {net.n_layers}] for sizes {sizes}, got "
                         f"{args.layer}")
    for name, value, top in (("J", j, net.sizes[args.layer]), ("K", k, net.sizes[args.layer - 1])):
        if not 0 <= value < top:
            raise ValueError(f"--weight {name} must be in [0, {top - 1}] for layer {args.layer} "
                             f"of sizes {sizes}, got {value}")
    explanation = net.explain(X[args.example], int(y[args.example]), args.layer, j, k)
    print(f"{args.model} ({_describe(net)}), test example {args.example} of {source} "
          f"(label {y[args.example]})")
    print(explanation)
    return 0


# -- info, gradcheck -----------------------------------------------------------------------
def _info(args: argparse.Namespace) -> int:
    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    if info["openmp"]:
        openmp = f"on (OpenMP {info['openmp_version']}; {info['openmp_reason']})"
        threads = (f"{info['num_threads']} by default (OMP_NUM_THREADS, else all "
                   f"{info['cores']} usable cores; --threads overrides)")
    else:
        openmp = f"off ({info['openmp_reason']})"
        threads = "1 (built without OpenMP)"
    rows = [("OpenMP", openmp), ("threads", threads), ("compile args", info["compile_args"]),
            ("compiler", info["compiler"]), ("NumPy", info["numpy"]),
            ("Python", f"{info['python']} on {info['machine']}")]
    print(f"bpcore {info['version']}")
    for key, value in rows:
        print(f"{key + ':':<14}{value}")
    return 0


def _gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import check_gradients

    names = args.activations.split(",")
    net = Network(args.sizes, activations=names[0] if len(names) == 1 else names,
                  cost=args.cost, dtype=args.dtype, seed=args.seed)
    if args.examples < 1:
        raise ValueError(f"--examples must be >= 1, got {args.examples}")
    rng = np.random.default_rng(args.seed)
    n_out = net.sizes[-1]
    X = rng.standard_normal((args.examples, net.sizes[0]))
    if args.cost == "log_likelihood":
        Y = rng.integers(0, n_out, size=args.examples)  # one-hot encoded by the network
    elif args.cost == "cross_entropy":
        Y = rng.uniform(0, 1, size=(args.examples, n_out))
    else:
        Y = rng.standard_normal((args.examples, n_out))
    result = check_gradients(net, X, Y)
    print(f"gradient check of {_describe(net)} on {args.examples} random examples "
          f"(seed {args.seed})")
    print(result)
    return 0 if result.ok else 1


# -- bench --------------------------------------------------------------------------------
#: The configs of benchmarks/configs.py: sizes, activations, cost, batch size, dtype, lr.
#: Configs ``bpcore bench`` runs unless told otherwise (the others are large).
_BENCH_DEFAULT = ("N1-f64", "N1-f32", "M-f32")
_TIMED_EPOCHS = 3


def _bench(args: argparse.Namespace) -> int:
    configs = bench_configs.get_configs(args.configs.split(","))
    info = build_info()
    threads = args.threads or sorted({1, info["num_threads"]})
    if min(threads) < 1:
        raise ValueError(f"--threads must all be >= 1, got {threads}")
    if not info["openmp"]:
        threads = [1]  # a serial build runs on one thread whatever it is told
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    _check_output_path("--plot", args.plot)
    plot = _plot_module(args.plot) if args.plot else None

    print(f"bpcore {info['version']}: OpenMP {'on' if info['openmp'] else 'off'}, compile args "
          f"{info['compile_args']}; {args.samples:,} synthetic examples per epoch, median of "
          f"{_TIMED_EPOCHS} epochs after a warm-up", flush=True)
    print(f"{'config':<8}{'threads':>9}{'samples/s':>14}")
    rows = []
    for config in configs:
        X, Y = config.data(args.samples)
        for t in threads:
            net = Network(config.sizes, config.activations, config.cost, config.dtype, seed=0,
                          num_threads=t)
            with warnings.catch_warnings():  # timing, not learning: 4 epochs teach little
                warnings.simplefilter("ignore", ConvergenceWarning)
                seconds = net.fit(X, Y, 1 + _TIMED_EPOCHS, config.batch_size, config.lr,
                                  shuffle=False).seconds[1:]
            speed = args.samples / statistics.median(seconds)
            rows.append({"config": config.name, "implementation": "bpcore",
                         "threads": net.num_threads, "samples_per_s": speed})
            print(f"{config.name:<8}{net.num_threads:>9}{speed:>14,.0f}", flush=True)
    compare = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"
    if compare.is_file():
        print(f"bpcore against NumPy and PyTorch: python {compare}")
    else:
        print("bpcore against NumPy and PyTorch: benchmarks/compare.py in bpcore's source "
              "repository (not installed with the package)")
    if plot is not None:
        plot.plot_benchmark(rows, args.plot)
        print(f"saved the chart to {args.plot}")
    return 0


def _one_line(message: str) -> str:
    """``message`` with its line breaks escaped: it may quote an argument holding one."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Errors (running out of memory too) print one line ``bpcore: error: <message>``
    to stderr and give 2; a training run that diverges, or a gradient check that
    fails, gives 1, as does ``train --strict`` that made no progress; one
    interrupted by Ctrl-C 130.  With ``--debug`` errors
    propagate, with their traceback.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        usage, message = exc.args
        print(f"{usage}bpcore: error: {_one_line(message)}", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError, ImportError, DivergenceError, MemoryError,
            DistributedError) as exc:
        if args.debug:
            raise
        # NumPy's MemoryError says what it failed to allocate; say that it is one
        prefix = "out of memory: " if isinstance(exc, MemoryError) else ""
        print(f"bpcore: error: {prefix}{_one_line(str(exc))}", file=sys.stderr)
        return 1 if isinstance(exc, DivergenceError) else 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("bpcore: interrupted", file=sys.stderr)
        return 130
