"""Figures: training curves, benchmark throughput, misclassified digits.

Needs matplotlib, the optional extra ``plot`` (``pip install ".[plot]"`` in the source tree);
``import bpcore`` never imports this module.  Each function returns the
matplotlib ``Figure``.  Given a ``path``, it also writes the figure there (PNG,
or the format the file's suffix names, at the figure's size and dpi), drawn by
the Agg backend on a figure pyplot never sees: no window opens and no pyplot
state changes.  Without a ``path`` the figure is made by pyplot, so that
``plt.show()`` or a notebook displays it.
"""
from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence

import numpy as np

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('bpcore.plot needs matplotlib, the extra "plot": pip install matplotlib '
                      '(or pip install ".[plot]" in bpcore\'s source tree)') from exc

__all__ = ["plot_history", "plot_grad_norms", "plot_benchmark", "plot_misclassified",
           "check_path"]

_BENCHMARK_KEYS = ("config", "implementation", "threads", "samples_per_s")


def plot_history(history, path: str | os.PathLike | None = None, *,
                 validation_label: str = "validation") -> Figure:
    """Cost per epoch (training and validation) and validation accuracy per epoch.

    ``history`` is the :class:`bpcore.History` that ``fit`` returned;
    ``validation_label`` names its validation set in the legend (the CLI says
    "test" when it validated on the test set).  A history with ``grad_norms``
    (``fit(record_grad_norms=True)``) gets a third panel, the speed of learning
    of each layer (:func:`plot_grad_norms`).
    """
    def per_epoch(values):  # the lists may differ in length after an interruption
        return np.arange(1, len(values) + 1), values

    panels = 3 if getattr(history, "grad_norms", None) else 2
    fig = _figure(path, figsize=(5 * panels, 4))
    cost_ax, accuracy_ax, *rest = fig.subplots(1, panels)
    if rest:
        _draw_grad_norms(rest[0], history.grad_norms)
    cost_ax.plot(*per_epoch(history.train_cost), marker="o", label="training")
    if history.val_cost:
        cost_ax.plot(*per_epoch(history.val_cost), marker="o", label=validation_label)
    cost_ax.set(title="Cost", xlabel="epoch", ylabel="mean cost per example")
    cost_ax.legend()
    if history.val_accuracy:
        accuracy_ax.plot(*per_epoch(history.val_accuracy), marker="o", color="C1",
                         label=validation_label)
        accuracy_ax.legend()
    else:
        accuracy_ax.text(0.5, 0.5, "no validation data", ha="center", va="center",
                         transform=accuracy_ax.transAxes)
    accuracy_ax.set(title="Accuracy", xlabel="epoch", ylabel="fraction classified correctly")
    for ax in (cost_ax, accuracy_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_grad_norms(history, path: str | os.PathLike | None = None) -> Figure:
    """The speed of learning of each layer: ||dC/db^l|| per epoch, one line per layer.

    ``history`` comes from ``fit(..., record_grad_norms=True)``; each point is
    the mean over an epoch's mini-batches of the norm of the bias gradient of
    layer l (Nielsen's measure; in a deep sigmoid network the first layers'
    lines lie lowest: they learn slowest).  The scale is logarithmic.
    """
    norms = getattr(history, "grad_norms", None)
    if not norms:
        raise ValueError("history has no grad_norms: train with fit(..., "
                         "record_grad_norms=True)")
    fig = _figure(path, figsize=(6, 4))
    _draw_grad_norms(fig.subplots(), norms)
    return _save(fig, path)


def _draw_grad_norms(ax, norms) -> None:
    norms = np.asarray(norms, dtype=float)
    epochs = np.arange(1, len(norms) + 1)
    for l in range(norms.shape[1]):
        ax.plot(epochs, norms[:, l], marker="o", label=f"layer {l + 1}")
    if (norms > 0).all():
        ax.set_yscale("log")
    ax.set(title="Speed of learning", xlabel="epoch",
           ylabel=r"mean $\|\partial C/\partial b^l\|$ over the mini-batches")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")


def plot_benchmark(rows: Sequence[Mapping], path: str | os.PathLike | None = None) -> Figure:
    """Bars of training throughput, samples/s on a linear axis from zero, grouped by config.

    Linear and from zero so that the bars' heights compare as the speeds do (on a
    log axis with a cut-off bottom, 89k against 134k looked like 1 to 8).

    ``rows`` are mappings with the keys ``config``, ``implementation``,
    ``threads`` (an int, or None for a library default) and ``samples_per_s``
    (> 0), as ``bpcore bench`` and ``benchmarks/compare.py`` measure them; one
    bar per row, one colour per (implementation, threads).
    """
    rows = _check_benchmark_rows(rows)
    configs = list(dict.fromkeys(row["config"] for row in rows))
    series = list(dict.fromkeys((row["implementation"], row["threads"]) for row in rows))
    width = 0.8 / len(series)
    fig = _figure(path, figsize=(max(6.0, 2.0 + 2.0 * len(configs)), 4.5))
    ax = fig.subplots()
    for i, (implementation, threads) in enumerate(series):
        mine = [row for row in rows
                if row["implementation"] == implementation and row["threads"] == threads]
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar([configs.index(row["config"]) + offset for row in mine],
               [row["samples_per_s"] for row in mine], width,
               label=f"{implementation}, {_threads_label(threads)}")
    ax.set_ylim(bottom=0)
    ax.set_xticks(range(len(configs)), configs)
    ax.set(title="Training throughput", xlabel="config", ylabel="samples/s")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_misclassified(network, X, labels, path: str | os.PathLike | None = None,
                       n: int = 25) -> Figure:
    """A grid of the first ``n`` examples of X the network misclassifies.

    X holds 28x28 images, as rows of 784 pixels or as (n, 28, 28); each is
    titled with the predicted class (the argmax of the network's output) and
    the true label.
    """
    X = np.asarray(X)
    labels = np.asarray(labels)
    if network.sizes[0] != 784:
        raise ValueError(f"plot_misclassified draws 28x28 images: the network must have 784 "
                         f"inputs, got sizes {list(network.sizes)}")
    if X.shape[1:] not in ((784,), (28, 28)):
        raise ValueError(f"X must have shape (n, 784) or (n, 28, 28), got {X.shape}")
    if labels.shape != (len(X),) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be {len(X)} integer class labels, got {labels.dtype} of "
                         f"shape {labels.shape}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    images = X.reshape(len(X), 28, 28)
    predicted = np.argmax(network.feedforward(X.reshape(len(X), 784)), axis=1)
    wrong = np.flatnonzero(predicted != labels)
    shown = wrong[:n]
    cols = max(1, math.ceil(math.sqrt(len(shown))))
    rows = max(1, math.ceil(len(shown) / cols))
    fig = _figure(path, figsize=(1.4 * cols + 0.4, 1.6 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, i in zip(axes, shown):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{predicted[i]} (true {labels[i]})", fontsize=9)
    if len(wrong):
        fig.suptitle(f"{len(wrong)} of {len(X)} misclassified; first {len(shown)}: "
                     "predicted (true)")
    else:
        axes[0].text(0.5, 0.5, f"all {len(X)} examples classified correctly", ha="center",
                     va="center", transform=axes[0].transAxes)
    return _save(fig, path)


def check_path(path: str | os.PathLike, option: str = "path") -> None:
    """Raise ``ValueError`` unless matplotlib can write the format that ``path``'s suffix names.

    For checking an output path before the work whose figure it is to hold.
    """
    suffix = os.path.splitext(os.fspath(path))[1][1:].lower()
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if suffix and suffix not in formats:
        raise ValueError(f"{option} {os.fspath(path)}: matplotlib cannot write '.{suffix}' "
                         f"files; use a suffix from {', '.join(sorted(formats))}")


def _figure(path, figsize) -> Figure:
    """A figure for the Agg canvas alone when saving to ``path``; else one of pyplot's."""
    if path is None:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize, layout="constrained")
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Figure:
    if path is not None:
        fig.savefig(path, dpi="figure")
    return fig


def _threads_label(threads) -> str:
    if threads is None:
        return "default threads"
    return f"{threads} thread" + ("" if threads == 1 else "s")


def _check_benchmark_rows(rows) -> list[Mapping]:
    rows = list(rows)
    if not rows:
        raise ValueError("plot_benchmark needs at least one row")
    seen = set()
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"rows[{i}] must be a mapping with keys {list(_BENCHMARK_KEYS)}, "
                            f"got {type(row).__name__}")
        missing = [key for key in _BENCHMARK_KEYS if key not in row]
        if missing:
            raise ValueError(f"rows[{i}] lacks the key(s) {missing}; each row needs "
                             f"{list(_BENCHMARK_KEYS)}")
        speed = row["samples_per_s"]
        if (isinstance(speed, bool) or not isinstance(speed, numbers.Real)
                or not math.isfinite(speed) or speed <= 0):
            raise ValueError(f"rows[{i}]['samples_per_s'] must be a finite number > 0, got "
                             f"{speed!r}")
        key = (row["config"], row["implementation"], row["threads"])
        if key in seen:
            raise ValueError(f"rows[{i}] repeats config {key[0]!r}, implementation {key[1]!r}, "
                             f"threads {key[2]!r}")
        seen.add(key)
    return rows
