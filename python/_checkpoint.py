"""Checkpoints of a ``fit``: everything needed to continue it exactly, written atomically.

``fit(..., checkpoint=path, checkpoint_every=k)`` writes one after every k-th
epoch and after the last; ``resume=True`` continues from it when it exists.  A
resumed run ends with parameters bitwise equal to those of a run that was never
interrupted, because everything an epoch reads is in the file, exactly:

* the parameters ``w1..wL``, ``b1..bL`` (the network's dtype);
* the optimizer's state (``state_dict()``: its buffers as arrays, its step count
  and hyper-parameters as numbers);
* the state of the generator that shuffles (``bit_generator.state``: the PCG64
  state and increment, 128-bit integers);
* the schedule's state (epochs seen, Adaptive's rate and plateau count);
* the number of epochs done and the history so far.

The file is an ``.npz`` archive (no pickle; ``np.load(..., allow_pickle=False)``
reads it): the arrays, and ``meta``, one JSON string for the rest.  Python's
``json`` writes a float as the shortest text that reads back to the same double
and an int of any size exactly, so nothing is rounded.  The archive's CRC-32 of
each member detects a damaged file; a truncated one is not a zip archive.

The file is written under a temporary name in the same directory and renamed
over ``path`` (``os.replace``, atomic on POSIX and Windows), after ``fsync``:
a process killed at any moment leaves either the previous checkpoint or the new
one, never a mixture.  The new file gets the permissions ``open(path, "w")``
would give it: those of the checkpoint it replaces, else 0666 less the umask.
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from contextlib import contextmanager

import numpy as np

from ._checks import as_path, check_bool, check_int
from .datasets import _create_beside
from .history import History

#: ``meta["format"]`` of every checkpoint.
FORMAT = "bpcore-checkpoint"
#: Version of the checkpoint format this bpcore writes and reads.
VERSION = 1

_OPTIMIZER_PREFIX = "optimizer."


# -- writing a file atomically ------------------------------------------------------------------
@contextmanager
def atomic_write(path: str):
    """A binary file to write; it replaces ``path`` atomically when the block ends without error.

    The temporary file is created in ``path``'s directory with the permissions a
    plain ``open`` would give (``datasets._create_beside``, the one place that
    makes such files); it is flushed to disk before the rename, and removed if
    the block raises.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):  # else the error would name the temporary file
        raise FileNotFoundError(f"cannot write {path!r}: directory {directory!r} does not exist")
    fd, tmp = _create_beside(path, f".{os.path.basename(path)}.", ".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# -- what a checkpoint holds ----------------------------------------------------------------------
def _architecture(net) -> dict:
    return {"sizes": list(net.sizes), "activations": list(net.activations),
            "cost": net.cost_name, "dtype": net.dtype.name}


def _plain(value):
    """A NumPy scalar as the Python number it holds (JSON cannot write NumPy's integers)."""
    return value.item() if isinstance(value, np.generic) else value


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def save(path, net, *, epoch: int, history: History, rng: np.random.Generator,
         optimizer=None, schedule=None, run: dict | None = None) -> None:
    """Write a checkpoint of ``net`` after ``epoch`` epochs to ``path``, atomically.

    ``run`` holds facts about the ``fit`` call that a resume must repeat
    (``n_examples``, ``batch_size``); ``optimizer``/``schedule`` are saved
    through their ``state_dict()``.
    """
    arrays = {}
    for l, (w, b) in enumerate(zip(net.weights, net.biases), start=1):
        arrays[f"w{l}"], arrays[f"b{l}"] = np.asarray(w), np.asarray(b)
    optimizer_meta = None
    if optimizer is not None:
        scalars, array_keys = {}, []
        for key, value in optimizer.state_dict().items():
            if isinstance(value, np.ndarray):
                arrays[_OPTIMIZER_PREFIX + key] = value
                array_keys.append(key)
            else:
                scalars[key] = _plain(value)
        optimizer_meta = {"type": type(optimizer).__name__, "scalars": scalars,
                          "arrays": array_keys}
    meta = {
        "format": FORMAT, "version": VERSION, "architecture": _architecture(net),
        "epoch": int(epoch), "history": history.to_dict(), "rng": _rng_state(rng),
        "optimizer": optimizer_meta,
        "schedule": None if schedule is None else schedule.state_dict(),
        "run": dict(run or {}),
    }
    arrays["meta"] = np.array(json.dumps(meta, allow_nan=True))
    with atomic_write(path) as file:
        np.savez(file, **arrays)


class Checkpoint:
    """A checkpoint read back by :func:`load`, checked against the network it is for."""

    def __init__(self, path: str, meta: dict, arrays: dict):
        self.path, self.meta, self.arrays = path, meta, arrays

    @property
    def epoch(self) -> int:
        return self.meta["epoch"]

    def history(self) -> History:
        return History.from_dict(self.meta["history"])

    def optimizer_state(self) -> dict:
        info = self.meta["optimizer"]
        state = dict(info["scalars"])
        for key in info["arrays"]:
            state[key] = self.arrays[_OPTIMIZER_PREFIX + key]
        return state


def _bad(path: str, why) -> ValueError:
    return ValueError(f"{path!r} is not a valid bpcore checkpoint: {why}")


def load(path, net) -> Checkpoint:
    """Read and check the checkpoint at ``path`` for ``net``; never executes code from the file.

    ``ValueError`` naming the problem for a file that is not a checkpoint, is
    damaged, or was written by a network of another architecture.
    """
    path = as_path("checkpoint", path)
    try:
        with open(path, "rb") as file:
            archive = np.load(file, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single .npy array, not an .npz archive")
            with archive:
                contents = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error,
            RuntimeError) as exc:  # a damaged archive raises any of these
        raise _bad(path, exc) from None
    if "meta" not in contents:
        raise _bad(path, "it has no 'meta' entry")
    text = contents.pop("meta")
    if text.shape != () or text.dtype.kind != "U":
        raise _bad(path, "'meta' is not a string")
    try:
        meta = json.loads(str(text))
    except ValueError as exc:
        raise _bad(path, f"'meta' is not JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, f"'meta' does not say format {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise _bad(path, f"format version {meta.get('version')!r} is not supported (this "
                         f"bpcore reads {VERSION})")
    keys = {"architecture", "epoch", "history", "rng", "optimizer", "schedule", "run"}
    if not keys <= set(meta):
        raise _bad(path, f"'meta' lacks {sorted(keys - set(meta))}")

    ours, theirs = _architecture(net), meta["architecture"]
    if theirs != ours:
        raise ValueError(
            f"checkpoint {path!r} was written by a network of sizes {theirs.get('sizes')}, "
            f"activations {theirs.get('activations')}, cost {theirs.get('cost')!r}, dtype "
            f"{theirs.get('dtype')!r}; this network has sizes {ours['sizes']}, activations "
            f"{ours['activations']}, cost {ours['cost']!r}, dtype {ours['dtype']!r}: resume "
            "it with the network it was written by, or pass resume=False to start afresh")
    try:
        check_int("epoch", meta["epoch"], 0)
        History.from_dict(meta["history"])
    except (TypeError, ValueError) as exc:
        raise _bad(path, exc) from None
    L = len(ours["sizes"]) - 1
    expected = {f"{k}{l}" for k in "wb" for l in range(1, L + 1)}
    optimizer = meta["optimizer"]
    if optimizer is not None:
        if not (isinstance(optimizer, dict) and isinstance(optimizer.get("type"), str)
                and isinstance(optimizer.get("scalars"), dict)
                and isinstance(optimizer.get("arrays"), list)):
            raise _bad(path, "its optimizer entry is malformed")
        expected |= {_OPTIMIZER_PREFIX + k for k in optimizer["arrays"]}
    if set(contents) != expected:
        raise _bad(path, f"arrays {sorted(expected - set(contents))} missing, "
                         f"{sorted(set(contents) - expected)} unexpected")
    sizes, dtype = ours["sizes"], np.dtype(ours["dtype"])
    for l in range(1, L + 1):
        for name, shape in ((f"w{l}", (sizes[l], sizes[l - 1])), (f"b{l}", (sizes[l],))):
            value = contents[name]
            if value.shape != shape or value.dtype != dtype:
                raise _bad(path, f"{name} is {value.dtype} of shape {value.shape}, expected "
                                 f"{dtype.name} of shape {shape}")
            if not np.isfinite(value).all():
                raise _bad(path, f"{name} contains NaN or infinite values")
    return Checkpoint(path, meta, contents)


# -- the fit loop's side ------------------------------------------------------------------------
class Checkpointer:
    """What ``fit`` does with ``checkpoint=``, ``checkpoint_every=`` and ``resume=``.

    :meth:`resume` restores a run before the first epoch; :meth:`after_epoch`
    writes the checkpoint when one is due.
    """

    def __init__(self, path, every, resume, net, run: dict):
        self.path = as_path("checkpoint", path)
        self.every = check_int("checkpoint_every", every, 1)
        self.resume_requested = check_bool("resume", resume)
        self.net, self.run = net, run
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):  # found now, not after the first epochs
            raise FileNotFoundError(f"checkpoint {self.path!r}: directory {directory!r} does "
                                    "not exist")

    @classmethod
    def for_fit(cls, path, every, resume, net, run: dict) -> "Checkpointer | None":
        """The checkpointer of a ``fit`` call, None without ``checkpoint``."""
        if path is None:
            check_int("checkpoint_every", every, 1)
            if check_bool("resume", resume):
                raise ValueError("resume=True needs checkpoint=, the file to resume from")
            return None
        return cls(path, every, resume, net, run)

    def resume(self, epochs: int, rng, optimizer, schedule) -> tuple[int, History]:
        """``(epochs done, history)``, after restoring net, optimizer, rng and schedule.

        ``(0, History())`` if resuming was not asked for or there is no checkpoint.
        """
        if not self.resume_requested or not os.path.exists(self.path):
            return 0, History()
        ckpt = load(self.path, self.net)
        meta = ckpt.meta
        for key, value in self.run.items():
            saved = meta["run"].get(key)
            if saved != value:
                raise ValueError(f"checkpoint {self.path!r} was written by a fit with "
                                 f"{key}={saved}, this fit has {key}={value}: resume it with "
                                 "the same data and arguments, or pass resume=False")
        if ckpt.epoch > epochs:
            raise ValueError(f"checkpoint {self.path!r} holds {ckpt.epoch} epochs, more than "
                             f"this fit's epochs={epochs}")
        saved_opt, saved_sched = meta["optimizer"], meta["schedule"]
        if (saved_opt is None) != (optimizer is None) or (
                optimizer is not None and saved_opt["type"] != type(optimizer).__name__):
            raise ValueError(f"checkpoint {self.path!r} holds the state of optimizer "
                             f"{None if saved_opt is None else saved_opt['type']}, this fit "
                             f"uses {type(optimizer).__name__ if optimizer is not None else None}")
        ours = None if schedule is None else type(schedule).__name__
        theirs = None if saved_sched is None else saved_sched.get("type")
        if ours != theirs:
            raise ValueError(f"checkpoint {self.path!r} holds the state of schedule {theirs}, "
                             f"this fit uses {ours}")
        try:
            if optimizer is not None:
                optimizer.load_state_dict(ckpt.optimizer_state())
            if schedule is not None:
                schedule.load_state_dict(saved_sched)
            rng.bit_generator.state = meta["rng"]
        except (TypeError, KeyError, ValueError) as exc:
            raise _bad(self.path, exc) from None
        L = len(self.net.sizes) - 1
        self.net.weights = [ckpt.arrays[f"w{l}"] for l in range(1, L + 1)]
        self.net.biases = [ckpt.arrays[f"b{l}"] for l in range(1, L + 1)]
        return ckpt.epoch, ckpt.history()

    def after_epoch(self, epoch: int, epochs: int, history: History, rng, optimizer,
                    schedule) -> None:
        """Write the checkpoint after every ``every``-th epoch and after the last."""
        if epoch % self.every == 0 or epoch == epochs:
            save(self.path, self.net, epoch=epoch, history=history, rng=rng,
                 optimizer=optimizer, schedule=schedule, run=self.run)


__all__ = ["save", "load", "Checkpoint", "Checkpointer", "atomic_write", "FORMAT", "VERSION"]
