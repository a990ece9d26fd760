"""A network as a ``torch.nn.Sequential``, and back (torch is optional).

bpcore's layer l is ``Linear(n_{l-1}, n_l)`` followed by its activation's module;
``Linear.weight`` has bpcore's shape (n_l, n_{l-1}) and computes x W^T + b, so
``weight[j, k]`` is w^l_jk and the parameters are copied over unchanged, in the
network's dtype: a round trip ``Network.from_torch(net.to_torch())`` gives
bitwise the same parameters.

==============  =================================
identity        ``nn.Identity()``
sigmoid         ``nn.Sigmoid()``
tanh            ``nn.Tanh()``
relu            ``nn.ReLU()``
leaky_relu      ``nn.LeakyReLU(0.01)``
softmax         ``nn.Softmax(dim=-1)``
==============  =================================

The cost is not a module of the Sequential; ``from_torch`` takes it as an
argument.
"""
from __future__ import annotations

import numpy as np

from ._config import LEAKY_SLOPE


def _require_torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError('to_torch and from_torch need PyTorch: pip install torch '
                          f"(importing it failed: {exc})") from None
    return torch


def _modules(nn):
    """activation name -> a function making its module."""
    return {
        "identity": nn.Identity,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE),
        "softmax": lambda: nn.Softmax(dim=-1),
    }


def to_torch(net):
    """``torch.nn.Sequential`` of ``Linear`` and activation modules holding ``net``'s parameters."""
    torch = _require_torch()
    nn = torch.nn
    make = _modules(nn)
    dtype = torch.float32 if net.dtype == np.float32 else torch.float64
    layers = []
    for w, b, act in zip(net.weights, net.biases, net.activations):
        # skip_init: no random initialisation (that would draw from torch's global generator)
        linear = torch.nn.utils.skip_init(nn.Linear, w.shape[1], w.shape[0], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(w)))
            linear.bias.copy_(torch.from_numpy(np.array(b)))
        layers += [linear, make[act]()]
    return nn.Sequential(*layers)


def _activation_name(nn, module, position: int) -> str:
    """bpcore's name for an activation module, or a ValueError saying why not."""
    if type(module) is nn.LeakyReLU:
        if module.negative_slope != LEAKY_SLOPE:
            raise ValueError(f"module[{position}] is LeakyReLU with negative_slope "
                             f"{module.negative_slope}; bpcore's leaky_relu has slope "
                             f"{LEAKY_SLOPE}")
        return "leaky_relu"
    if type(module) is nn.Softmax:
        if module.dim not in (-1, 1):
            raise ValueError(f"module[{position}] is Softmax(dim={module.dim}); bpcore "
                             "normalises each example's outputs: dim=-1 or dim=1")
        return "softmax"
    names = {nn.Identity: "identity", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu"}
    if type(module) in names:
        return names[type(module)]
    raise ValueError(f"module[{position}] is {type(module).__name__}; from_torch reads a "
                     "Sequential of Linear layers, each followed by at most one of Identity, "
                     "Sigmoid, Tanh, ReLU, LeakyReLU(0.01), Softmax(dim=-1)")


def parse_sequential(module):
    """``(sizes, activations, weights, biases, dtype)`` of a Sequential that ``to_torch`` could
    have written; ``ValueError`` (``TypeError`` for something not a Sequential) otherwise.

    A Linear followed directly by another Linear (or ending the Sequential) has
    the identity activation; a Linear without bias has biases 0.
    """
    torch = _require_torch()
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"module must be a torch.nn.Sequential, got {type(module).__name__}")
    children = list(module)
    if not children or type(children[0]) is not nn.Linear:
        first = type(children[0]).__name__ if children else "nothing"
        raise ValueError(f"module must start with a Linear layer, got {first}")
    sizes, activations, weights, biases, dtypes = [], [], [], [], set()
    for position, child in enumerate(children):
        if type(child) is nn.Linear:
            if sizes and sizes[-1] != child.in_features:
                raise ValueError(f"module[{position}] is Linear({child.in_features}, "
                                 f"{child.out_features}) after a layer of {sizes[-1]} outputs")
            if not sizes:
                sizes.append(child.in_features)
            sizes.append(child.out_features)
            if len(activations) < len(weights):  # the Linear before had no activation
                activations.append("identity")
            weight = child.weight.detach().cpu()
            bias = (torch.zeros(child.out_features, dtype=weight.dtype) if child.bias is None
                    else child.bias.detach().cpu())
            dtypes.update({weight.dtype, bias.dtype})
            weights.append(weight.numpy().copy())
            biases.append(bias.numpy().copy())
        else:
            if len(activations) == len(weights):
                raise ValueError(f"module[{position}] is {type(child).__name__} right after an "
                                 "activation; each Linear takes at most one")
            activations.append(_activation_name(nn, child, position))
    if len(activations) < len(weights):
        activations.append("identity")
    if len(dtypes) != 1 or next(iter(dtypes)) not in (torch.float32, torch.float64):
        raise ValueError("the Linear layers' parameters must all be float32 or all float64, got "
                         f"{sorted(str(d) for d in dtypes)}")
    dtype = "float32" if dtypes == {torch.float32} else "float64"
    return sizes, activations, weights, biases, dtype
