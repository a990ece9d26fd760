"""Notebook helpers: History.to_dataframe, History.plot, and the epoch progress report."""
from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest

import bpcore
from bpcore import _notebook


def _history(validation=True, norms=True):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, size=40)
    net = bpcore.Network([3, 4, 2], seed=0)
    return net.fit(X, y, epochs=3, batch_size=8, lr=0.5,
                   validation_data=(X, y) if validation else None, record_grad_norms=norms)


def test_to_dataframe_has_one_row_per_epoch():
    pd = pytest.importorskip("pandas")
    history = _history()
    frame = history.to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == [1, 2, 3] and frame.index.name == "epoch"
    assert list(frame.columns) == ["train_cost", "val_cost", "val_accuracy", "seconds",
                                   "grad_norm_1", "grad_norm_2"]
    assert frame["train_cost"].tolist() == history.train_cost
    assert frame["val_accuracy"].tolist() == history.val_accuracy
    assert frame["grad_norm_2"].tolist() == [epoch[1] for epoch in history.grad_norms]
    plain = _history(validation=False, norms=False).to_dataframe()
    assert list(plain.columns) == ["train_cost", "seconds"]
    assert len(bpcore.History().to_dataframe()) == 0


def test_to_dataframe_without_pandas_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="to_dataframe needs pandas: pip install pandas"):
        bpcore.History().to_dataframe()


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    fig = _history().plot(tmp_path / "h.png", validation_label="held out")
    assert len(fig.axes) == 3 and (tmp_path / "h.png").stat().st_size > 0
    assert len(_history(norms=False).plot(tmp_path / "g.png").axes) == 2


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "bpcore.plot", raising=False)
    monkeypatch.delattr(bpcore, "plot", raising=False)
    for name in ["matplotlib", *(m for m in sys.modules if m.startswith("matplotlib."))]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'History.plot needs matplotlib: pip install "bpcore\[plot\]"'):
        bpcore.History().plot()


def _report(progress, history):
    for epoch in range(1, history.epochs + 1):
        partial = bpcore.History(history.train_cost[:epoch], history.val_cost[:epoch],
                                 history.val_accuracy[:epoch], history.seconds[:epoch])
        progress(epoch, partial)
    progress.close()


def test_progress_prints_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = _notebook.EpochProgress(3, 40, file=out)
    assert progress.kind == "lines"
    _report(progress, _history())
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3: train cost ")
    assert "\r" not in out.getvalue()


def test_progress_draws_a_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    progress = _notebook.EpochProgress(3, 40, file=out)
    assert progress.kind == "terminal"
    _report(progress, _history())
    assert "3/3" in out.getvalue() and "\r" in out.getvalue()


class _FakeShell:
    config = {"IPKernelApp": {}}


def test_progress_uses_the_notebook_widget_in_jupyter(monkeypatch):
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: _FakeShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert _notebook.in_notebook()
    made = []

    class Widget:
        def __init__(self, **kwargs):
            made.append(kwargs)
            self.n = 0

        def set_postfix_str(self, text, refresh=True):
            self.postfix = text

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm.notebook", types.SimpleNamespace(tqdm=Widget))
    progress = _notebook.EpochProgress(3, 40, file=io.StringIO())
    assert progress.kind == "notebook" and made[0]["total"] == 3
    _report(progress, _history())
    assert progress.bar.n == 3 and progress.bar.closed


def test_progress_falls_back_to_lines_in_jupyter_without_ipywidgets(monkeypatch):
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: _FakeShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)

    class NoWidgets:
        def __init__(self, **kwargs):
            raise ImportError("IProgress not found. Please update jupyter and ipywidgets.")

    monkeypatch.setitem(sys.modules, "tqdm.notebook", types.SimpleNamespace(tqdm=NoWidgets))
    out = io.StringIO()
    progress = _notebook.EpochProgress(3, 40, file=out)
    assert progress.kind == "lines"
    _report(progress, _history())
    assert len(out.getvalue().splitlines()) == 3


def test_not_a_notebook_outside_jupyter(monkeypatch):
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: None  # IPython imported, no shell running
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert not _notebook.in_notebook()
    monkeypatch.setitem(sys.modules, "IPython", None)
    assert not _notebook.in_notebook()
