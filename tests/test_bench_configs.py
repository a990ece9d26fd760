"""The benchmark configs (bpcore.bench): every one is a network bpcore trains, on data
of its own shape, and each name finds its config."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import bpcore
from bpcore.bench import (ACTIVATION_CONFIGS, CONFIGS, SHAPE_CONFIGS, flop_per_sample,
                          get_configs, true_flop_per_sample)

ALL = CONFIGS + ACTIVATION_CONFIGS + SHAPE_CONFIGS


def test_names_are_unique_and_each_finds_its_config():
    names = [c.name for c in ALL]
    assert len(set(names)) == len(names)
    assert get_configs(names) == list(ALL)
    with pytest.raises(ValueError, match="unknown config"):
        get_configs(["no-such-config"])


@pytest.mark.parametrize("config", ALL, ids=lambda c: c.name)
def test_a_config_trains_on_its_data(config):
    X, Y = config.data(n_samples=2 * config.batch_size)
    assert X.shape == (2 * config.batch_size, config.sizes[0]) and X.dtype == config.dtype
    assert Y.shape == (2 * config.batch_size, config.sizes[-1]) and Y.dtype == config.dtype
    net = bpcore.Network(config.sizes, config.activations, config.cost, config.dtype, seed=0,
                         num_threads=1)
    with warnings.catch_warnings():  # two mini-batches learn nothing: ConvergenceWarning
        warnings.simplefilter("ignore", bpcore.ConvergenceWarning)
        history = net.fit(X, Y, epochs=1, batch_size=config.batch_size, lr=config.lr)
    assert np.isfinite(history.train_cost[0])
    assert 0 < true_flop_per_sample(config) < flop_per_sample(config)
