"""Reporting the epochs of a ``fit``: one format for ``fit(verbose=True)`` and the CLI.

:func:`epoch_line` is the line printed per epoch (by ``fit(verbose=True)`` and by
``bpcore train`` when stdout is not a terminal); :func:`epoch_postfix` the same
figures for the text beside a progress bar.  :class:`EpochReport` is what
``fit`` calls after each epoch for ``verbose`` and ``progress``.  tqdm is
imported from ``tqdm.auto`` when a bar is asked for, so that a notebook shows
its widget and a terminal its text bar.
"""
from __future__ import annotations


def _speed(history, n: int) -> float:
    return n / max(history.seconds[-1], 1e-9)


def epoch_line(history, epoch: int, epochs: int, n: int, label: str = "validation") -> str:
    """``epoch 3/30  train cost 0.1234  validation cost 0.1300  validation accuracy 0.9012
    0.52 s  (96,154 samples/s)``: the last epoch of ``history``, ``n`` training examples.

    The validation figures appear only if ``history`` has them; ``label`` names the
    validation set ("test" when the CLI validates on the test set).
    """
    line = f"epoch {epoch}/{epochs}  train cost {history.train_cost[-1]:.4f}  "
    if history.val_cost:
        line += (f"{label} cost {history.val_cost[-1]:.4f}  "
                 f"{label} accuracy {history.val_accuracy[-1]:.4f}  ")
    return line + f"{history.seconds[-1]:.2f} s  ({_speed(history, n):,.0f} samples/s)"


def epoch_postfix(history, n: int, label: str = "validation") -> str:
    """The figures of :func:`epoch_line` shown beside a progress bar (no epoch, no time)."""
    text = f"train cost {history.train_cost[-1]:.4f}, "
    if history.val_accuracy:
        text += f"{label} accuracy {history.val_accuracy[-1]:.4f}, "
    return text + f"{_speed(history, n):,.0f} samples/s"


class EpochReport:
    """Per-epoch reporting of one ``fit``: a line (``verbose``) and/or a tqdm bar (``progress``).

    The bar's unit is epochs: an epoch runs as one call into the compiled core.
    Call the object after each epoch, and :meth:`close` when ``fit`` ends, however
    it ends.
    """

    def __init__(self, epochs: int, n: int, verbose: bool, progress: bool):
        self.epochs, self.n, self.verbose = epochs, n, verbose
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs, unit="epoch", desc="training", dynamic_ncols=True)

    def __call__(self, epoch: int, history) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(epoch_postfix(history, self.n), refresh=False)
            self.bar.update(1)
        if self.verbose:
            line = epoch_line(history, epoch, self.epochs, self.n)
            if self.bar is not None:
                self.bar.write(line)
            else:
                print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
