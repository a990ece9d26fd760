"""bpcore.schedules: the rate of each epoch, scikit-learn's invscaling and adaptive, saved state.

The closed forms are checked against their formulas; ``InverseScaling`` and
``Adaptive`` against scikit-learn's own code (``SGDOptimizer`` and the MLP's
no-improvement count) when scikit-learn is installed; every schedule's state
against an uninterrupted sequence; ``fit`` against the schedule it is given.
"""
from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bpcore
from bpcore import History, Network
from bpcore.schedules import (SCHEDULES, Adaptive, Constant, Cosine, Exponential,
                              InverseScaling, Schedule, StepDecay)


def rates(schedule: Schedule, epochs: int, costs=None) -> list[float]:
    """The rate of each of ``epochs`` epochs, stepping with a history of ``costs``."""
    history, out = History(), []
    for e in range(epochs):
        out.append(schedule.lr)
        history.train_cost.append(1.0 if costs is None else costs[e])
        schedule.step(history)
    return out


def test_closed_forms():
    assert rates(Constant(0.3), 4) == [0.3] * 4
    assert rates(StepDecay(2, gamma=0.5, lr=1.0), 6) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert rates(Exponential(0.9, lr=2.0), 4) == [2.0, 2.0 * 0.9, 2.0 * 0.9 ** 2, 2.0 * 0.9 ** 3]
    cosine = rates(Cosine(4, eta_min=0.1, lr=1.1), 7)
    expected = [0.1 + 1.0 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)]
    assert cosine[:5] == pytest.approx(expected, rel=1e-15)
    assert cosine[0] == 1.1 and cosine[4:] == [0.1, 0.1, 0.1]  # stays at eta_min
    assert rates(InverseScaling(0.5, lr=1.0), 4) == [1.0, 1 / 2 ** 0.5, 1 / 3 ** 0.5, 0.5]
    assert rates(InverseScaling(0.25, t_per_epoch=10, lr=1.0), 3) == [1.0, 11 ** -0.25,
                                                                       21 ** -0.25]


def test_invscaling_is_scikit_learns():
    """scikit-learn sets its rate at the end of each epoch from the samples seen so far."""
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    n = 1797  # load_digits
    theirs = optimizers.SGDOptimizer([np.zeros(3)], learning_rate_init=0.01,
                                     lr_schedule="invscaling", power_t=0.3)
    expected = []
    for epoch in range(1, 8):
        expected.append(theirs.learning_rate)
        theirs.iteration_ends(epoch * n)  # MLP's t_ after the epoch
    assert rates(InverseScaling(0.3, t_per_epoch=n, lr=0.01), 7) == expected  # bitwise


def _sklearn_adaptive(costs, tol, n_iter_no_change, lr):
    """scikit-learn's MLP loop reduced to its rate logic: (rates, epoch it stops or None)."""
    mlp = pytest.importorskip("sklearn.neural_network._multilayer_perceptron")
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    opt = optimizers.SGDOptimizer([np.zeros(1)], learning_rate_init=lr,
                                  lr_schedule="adaptive")
    state = types.SimpleNamespace(loss_curve_=[], best_loss_=np.inf, tol=tol,
                                  _no_improvement_count=0)
    out = []
    for epoch, cost in enumerate(costs, start=1):
        out.append(opt.learning_rate)
        state.loss_curve_.append(cost)
        mlp.BaseMultilayerPerceptron._update_no_improvement_count(state, False, None, None, None)
        if state._no_improvement_count > n_iter_no_change:
            if opt.trigger_stopping("", False):
                return out, epoch
            state._no_improvement_count = 0
    return out, None


@given(costs=st.lists(st.sampled_from([1.0, 0.9, 0.8, 0.8, 0.79995, 0.7]), min_size=1,
                      max_size=60),
       tol=st.sampled_from([1e-4, 0.05]), n_iter_no_change=st.integers(1, 4))
def test_adaptive_is_scikit_learns(costs, tol, n_iter_no_change):
    theirs, stop = _sklearn_adaptive(costs, tol, n_iter_no_change, lr=1e-5)
    schedule = Adaptive(1e-5, tol=tol, patience=n_iter_no_change + 1)
    ours = []
    history = History()
    for epoch, cost in enumerate(costs, start=1):
        ours.append(schedule.lr)
        history.train_cost.append(cost)
        schedule.step(history)
        if schedule.exhausted:
            assert epoch == stop
            break
    else:
        assert stop is None
    assert ours == theirs  # bitwise: the same divisions by 5


def test_adaptive_defaults_divide_after_two_stale_epochs():
    out = rates(Adaptive(1.0, tol=0.0), 6, costs=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert out == [1.0, 1.0, 1.0, 0.2, 0.2, 0.04]
    assert rates(Adaptive(1.0), 4, costs=[4.0, 3.0, 2.0, 1.0]) == [1.0] * 4


@pytest.mark.parametrize("make", [
    lambda: Constant(0.3), lambda: StepDecay(3, 0.5, lr=0.2), lambda: Exponential(0.8, lr=0.5),
    lambda: Cosine(7, 0.01, lr=0.4), lambda: InverseScaling(0.5, 100, lr=0.1),
    lambda: Adaptive(0.1, tol=0.01, patience=2)])
def test_state_continues_exactly(make):
    costs = [1.0, 0.99, 0.99, 0.98, 0.5, 0.5, 0.5, 0.5, 0.49, 0.3]
    whole = rates(make(), 10, costs)
    first = make()
    history = History()
    for e in range(4):
        history.train_cost.append(costs[e])
        first.step(history)
    state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores
    second = make()
    second.load_state_dict(state)
    rest = []
    for e in range(4, 10):
        rest.append(second.lr)
        history.train_cost.append(costs[e])
        second.step(history)
    assert rest == whole[4:]


def test_bad_states_and_arguments_are_refused():
    with pytest.raises(ValueError, match="that of schedule 'Cosine', not of 'StepDecay'"):
        StepDecay(2, lr=0.1).load_state_dict(Cosine(3, lr=0.1).state_dict())
    with pytest.raises(ValueError, match="invalid Adaptive state"):
        Adaptive(0.1).load_state_dict({"type": "Adaptive", "base_lr": 0.1, "epoch": 0})
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        Constant(0.1).load_state_dict({"type": "Constant", "base_lr": 0.1, "epoch": -1})
    with pytest.raises(ValueError, match="step_size must be >= 1"):
        StepDecay(0)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        Exponential(-0.5)
    with pytest.raises(ValueError, match="mode must be given|mode must be 'max' or 'min'"):
        Adaptive(0.1, monitor=lambda h: 0.0)
    with pytest.raises(RuntimeError, match="no base rate yet"):
        Cosine(5).lr
    assert set(SCHEDULES) == {"Constant", "StepDecay", "Exponential", "Cosine",
                              "InverseScaling", "Adaptive"}


# -- in fit ---------------------------------------------------------------------------------

@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def test_fit_runs_each_epoch_at_the_schedule_rate(data):
    X, y = data
    schedule = StepDecay(2, gamma=0.5)
    net = Network([4, 5, 2], seed=0, num_threads=1)
    history = net.fit(X, y, 5, 10, lr=0.8, schedule=schedule)
    assert history.lr == [0.8, 0.8, 0.4, 0.4, 0.2]
    # Epoch by epoch at those rates, without a schedule: the same parameters, bitwise.
    same = Network([4, 5, 2], seed=0, num_threads=1)
    opt = bpcore.optim.SGD(0.8)
    ours = Network([4, 5, 2], seed=0, num_threads=1)
    ours.fit(X, y, 5, 10, optimizer=bpcore.optim.SGD(0.8), schedule=StepDecay(2, gamma=0.5))
    for lr in [0.8, 0.8, 0.4, 0.4, 0.2]:
        opt.lr = lr
        same.fit(X, y, 1, 10, optimizer=opt)
    for a, b in zip(same.weights + same.biases, ours.weights + ours.biases):
        assert np.array_equal(a, b)
    # The same schedule object continues in the next call.
    assert net.fit(X, y, 2, 10, lr=0.8, schedule=schedule).lr == [0.2, 0.1]


def test_fit_records_the_rate_without_a_schedule(data):
    X, y = data
    assert Network([4, 3, 2], seed=0).fit(X, y, 3, 20, lr=0.25).lr == [0.25] * 3


def test_adaptive_in_fit_watches_the_training_cost(data):
    X, y = data
    net = Network([4, 3, 2], seed=0, num_threads=1)
    # After the first epoch (better than none) nothing improves by 10: divide every epoch.
    schedule = Adaptive(tol=10.0, patience=1)
    history = net.fit(X, y, 4, 20, optimizer=bpcore.optim.Adam(0.01), schedule=schedule)
    assert history.lr == pytest.approx([0.01, 0.01, 0.002, 0.0004], rel=1e-15)


def test_fit_refuses_what_is_not_a_schedule(data):
    X, y = data
    with pytest.raises(TypeError, match="schedule must be a bpcore.schedules.Schedule"):
        Network([4, 3, 2]).fit(X, y, 1, 10, lr=0.1, schedule="cosine")
