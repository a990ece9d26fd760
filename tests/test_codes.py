"""Names and codes of activations, costs and update rules are defined once and agree.

The codes are defined in ``bpcore/_codes.h`` and ``bpcore/_optim.h``; the kernels
export them as enums, ``_config`` reads the names from those, and the reference's
tables are keyed by the same names.  A rename or a new code on one side only fails here.
"""
import numpy as np
import pytest


from bpcore import _config, _dispatch, optim, reference


@pytest.mark.parametrize("variant", _dispatch.available())
def test_every_variant_exports_the_same_contiguous_codes(variant):
    kernels = _dispatch.load(variant)
    for enum, names in [(kernels.Activation, _config.ACTIVATIONS),
                        (kernels.Cost, _config.COSTS)]:
        assert sorted(int(m) for m in enum) == list(range(len(enum)))
        assert [enum(code).name.lower() for code in range(len(enum))] == list(names)
    assert {m.name.lower(): int(m) for m in kernels.Rule} == optim.RULES


def test_config_names_are_the_kernels_codes_in_order():
    assert _config.ACTIVATIONS == ("identity", "sigmoid", "tanh", "relu", "leaky_relu",
                                   "softmax")
    assert _config.COSTS == ("quadratic", "squared_error", "cross_entropy", "log_likelihood")
    assert set(_config._ALLOWED_OUTPUT) == set(_config.COSTS)
    assert all(set(acts) <= set(_config.ACTIVATIONS)
               for acts in _config._ALLOWED_OUTPUT.values())


def test_the_reference_has_one_function_per_name():
    assert set(reference.SIGMA) == set(_config.ACTIVATIONS)
    # softmax's derivative only appears fused into delta^L
    assert set(reference.SIGMA_PRIME) == set(_config.ACTIVATIONS) - {"softmax"}
    assert set(reference.COST) == set(reference.OUTPUT_ERROR) == set(_config.COSTS)
    assert set(reference.UPDATE_RULES) == set(optim.RULES)
    with pytest.raises(KeyError):  # an unknown name has no formula to fall through to
        reference.example_cost("hinge", np.zeros(2), np.zeros(2), np.zeros(2))


def test_layout_codes_are_the_names_indices():
    from bpcore import Network
    net = Network([2, 3, 2], ["relu", "softmax"], "log_likelihood", seed=0)
    kernels = _dispatch.kernels
    assert [kernels.Activation(c).name.lower() for c in net._layout.act[1:]] == ["relu",
                                                                                "softmax"]
