"""Notebook helpers: History.to_dataframe and History.plot."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import bpcore


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
    assert list(frame.columns) == ["train_cost", "val_cost", "val_accuracy", "seconds", "lr",
                                   "grad_norm_1", "grad_norm_2"]
    assert frame["train_cost"].tolist() == history.train_cost
    assert frame["val_accuracy"].tolist() == history.val_accuracy
    assert frame["grad_norm_2"].tolist() == [epoch[1] for epoch in history.grad_norms]
    plain = _history(validation=False, norms=False).to_dataframe()
    assert list(plain.columns) == ["train_cost", "seconds", "lr"]
    assert plain["lr"].tolist() == [0.5] * 3
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

