"""bpcore.callbacks: the plateau rule (scikit-learn's), and EarlyStopping, which the CLI and
the estimators use."""
from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bpcore.callbacks
from bpcore import History, Network
from bpcore.callbacks import EarlyStopping, Plateau
from conftest import params_of


@given(values=st.lists(st.sampled_from([0.5, 0.6, 0.6, 0.60005, 0.7, 0.4]), max_size=40),
       tol=st.sampled_from([1e-4, 0.05, 0.2]))
def test_plateau_counts_as_scikit_learn(values, tol):
    """The count after each epoch equals scikit-learn's _no_improvement_count, both ways."""
    mlp = pytest.importorskip("sklearn.neural_network._multilayer_perceptron")
    update = mlp.BaseMultilayerPerceptron._update_no_improvement_count
    loss_state = types.SimpleNamespace(loss_curve_=[], best_loss_=np.inf, tol=tol,
                                       _no_improvement_count=0)
    score_state = types.SimpleNamespace(validation_scores_=[], best_validation_score_=-np.inf,
                                        tol=tol, _no_improvement_count=0, verbose=False,
                                        coefs_=[], intercepts_=[])
    losses, scores = Plateau("min", tol), Plateau("max", tol)
    for value in values:
        loss_state.loss_curve_.append(value)
        update(loss_state, False, None, None, None)
        losses.update(value)
        assert losses.wait == loss_state._no_improvement_count
        assert losses.best == loss_state.best_loss_
        score_state._score = lambda X, y, sample_weight: value
        update(score_state, True, None, None, None)
        scores.update(value)
        assert scores.wait == score_state._no_improvement_count
        assert scores.best == score_state.best_validation_score_


def test_plateau_with_zero_tol_counts_a_tie_as_no_improvement():
    plateau = Plateau("max")
    for value, wait in [(0.5, 0), (0.5, 1), (0.6, 0), (0.6, 1), (0.59, 2)]:
        plateau.update(value)
        assert plateau.wait == wait


def _history(accuracies):
    history = History()
    for a in accuracies:
        history.train_cost.append(1.0)
        history.val_accuracy.append(a)
    return history


def test_early_stopping_stops_and_restores_the_best_epoch():
    net = Network([2, 3, 2], seed=0)
    stopper = EarlyStopping(net, patience=2)
    accuracies = [0.5, 0.7, 0.6, 0.7, 0.65]
    results = []
    for epoch in range(1, 6):
        net.weights = [w + 1.0 for w in net.weights]  # this epoch's "training"
        if epoch == 2:
            best = params_of(net)
        results.append(stopper(epoch, _history(accuracies[:epoch])))
        if results[-1]:
            break
    # 0.7 again at epoch 4 is no improvement: two epochs without one after epoch 2
    assert results == [False, False, False, True]
    assert stopper.stopped_epoch == 4 and stopper.best_epoch == 2 and stopper.best == 0.7
    assert stopper.values == accuracies[:4]
    for a, b in zip(params_of(net), best):  # restored when it stopped
        assert np.array_equal(a, b)


def test_early_stopping_in_fit(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] > 0).astype(int)
    net = Network([3, 4, 2], seed=0, num_threads=1)
    stopper = EarlyStopping(net, patience=3, monitor="val_cost")
    history = net.fit(X, y, 300, 10, lr=2.0, validation_data=(X[:20], y[:20]),
                      callback=stopper)
    assert stopper.stopped_epoch == history.epochs < 300
    assert history.epochs - stopper.best_epoch == 3
    assert stopper.best == min(history.val_cost)
    assert net.cost(X[:20], y[:20]) == pytest.approx(stopper.best, rel=1e-12)


def test_arguments_are_checked():
    net = Network([2, 2])
    with pytest.raises(ValueError, match="patience must be >= 1"):
        EarlyStopping(net, patience=0)
    with pytest.raises(ValueError, match="unknown monitor 'accuracy'"):
        EarlyStopping(net, monitor="accuracy")
    with pytest.raises(ValueError, match="mode must be 'min' for monitor 'val_cost'"):
        EarlyStopping(net, monitor="val_cost", mode="max")
    with pytest.raises(ValueError, match="mode must be 'max' or 'min' when monitor is a callable"):
        EarlyStopping(net, monitor=lambda history: 0.0)
    with pytest.raises(ValueError, match="needs fit's validation_data"):
        EarlyStopping(net)(1, History(train_cost=[1.0]))


def test_the_cli_and_the_estimators_use_it(monkeypatch, tmp_path):
    """One early-stopping rule: bpcore train --early-stopping and the estimators call it."""
    calls = []
    original = EarlyStopping.__call__

    def counting(self, epoch, history):
        calls.append(type(self))
        return original(self, epoch, history)

    monkeypatch.setattr(bpcore.callbacks.EarlyStopping, "__call__", counting)
    from bpcore.cli import main
    assert main(["train", "--sizes", "784,8,10", "--epochs", "2", "--threads", "1",
                 "--validation-split", "0.5", "--early-stopping", "5", "--quiet"]) == 0
    assert len(calls) == 2
    sklearn = pytest.importorskip("bpcore.sklearn")
    X = np.random.default_rng(0).normal(size=(40, 3))
    sklearn.BPClassifier(hidden_layer_sizes=(4,), max_iter=3, early_stopping=True,
                         validation_fraction=0.25, num_threads=1).fit(X, X[:, 0] > 0)
    assert len(calls) == 5
