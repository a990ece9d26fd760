"""The interop and insight methods of both networks, as a mixin of ``BaseNetwork``.

Each method is a thin front for one module that does one job: ``_onnx`` (ONNX
export), ``_torch`` (PyTorch), ``_network2`` (Nielsen's network2.py files) and
``_explain`` (the chain rule of one weight).  The optional packages (onnx,
torch) are imported only when their method is called.
"""
from __future__ import annotations

import numpy as np


class InteropMixin:
    """Export, import and explain; mixed into :class:`bpcore._base.BaseNetwork`."""

    # -- ONNX ----------------------------------------------------------------------
    def to_onnx(self, path, *, input_name="input", output_name="output") -> None:
        """Write the network's forward pass to ``path`` as an ONNX model.

        Needs the ``onnx`` package (``pip install ".[onnx]" (in the bpcore source tree)``); run the file
        with onnxruntime or any ONNX runtime.  Each layer is a ``Gemm``
        (z = a W^T + b, W^l stored in bpcore's (n_l, n_{l-1}) shape as the
        initializer ``W{l}``, b^l as ``b{l}``) followed by its activation's op;
        the parameters and the arithmetic keep the network's dtype.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (``.onnx``).
        input_name, output_name : str
            Names of the graph's input, of shape ("batch", n_0), and output, of
            shape ("batch", n_L); "batch" is a dynamic dimension.

        Notes
        -----
        The cost is not part of the graph: it computes a^L, as ``feedforward``.
        In float64, ``leaky_relu`` is written with ``Where``/``Greater``/``Mul``
        instead of ``LeakyRelu``, whose ``alpha`` attribute ONNX stores as a
        32-bit float (see ``bpcore._onnx``).
        """
        from . import _onnx

        _onnx.to_onnx(self, path, input_name, output_name)

    # -- PyTorch -------------------------------------------------------------------
    def to_torch(self):
        """The network as a ``torch.nn.Sequential`` of ``Linear`` and activation modules.

        Layer l is ``Linear(n_{l-1}, n_l)`` holding W^l and b^l unchanged (in
        the network's dtype), then ``Identity``, ``Sigmoid``, ``Tanh``, ``ReLU``,
        ``LeakyReLU(0.01)`` or ``Softmax(dim=-1)``.  The copy is independent of
        the network.  Needs PyTorch (``pip install torch``).
        """
        from . import _torch

        return _torch.to_torch(self)

    @classmethod
    def from_torch(cls, module, *, cost=None, num_threads=None):
        """A network with the architecture and the parameters of a ``torch.nn.Sequential``.

        Parameters
        ----------
        module : torch.nn.Sequential
            ``Linear`` layers, each followed by at most one of ``Identity``,
            ``Sigmoid``, ``Tanh``, ``ReLU``, ``LeakyReLU(0.01)``,
            ``Softmax(dim=-1)`` (none: identity), all float32 or all float64.
            Anything else raises ``ValueError`` saying which module is not
            understood.
        cost : str, optional
            The cost to train with; default ``log_likelihood`` after a softmax,
            else ``quadratic``.
        num_threads : int, optional
            As for the constructor.

        The parameters are copied bitwise: ``Network.from_torch(net.to_torch())``
        equals ``net``.
        """
        from . import _torch

        sizes, activations, weights, biases, dtype = _torch.parse_sequential(module)
        if cost is None:
            cost = "log_likelihood" if activations[-1] == "softmax" else "quadratic"
        return cls._with_parameters(sizes, activations, cost, dtype, weights, biases,
                                    num_threads)

    # -- network2.py files ---------------------------------------------------------
    @classmethod
    def load_network2(cls, path, *, dtype="float64", num_threads=None):
        """Read a network saved by Nielsen's network2.py (``Network.save``).

        The file is JSON with ``sizes``, ``weights`` (nested lists of shape
        (n_l, n_{l-1})), ``biases`` (shape (n_l, 1)) and ``cost``
        (``"QuadraticCost"`` becomes ``quadratic``, ``"CrossEntropyCost"``
        ``cross_entropy``); every layer is sigmoid.  A file that is not such a
        JSON object, or whose arrays do not fit ``sizes``, raises ``ValueError``
        naming the problem.  ``dtype`` is the network's dtype (the file holds
        float64 numbers).
        """
        from . import _network2

        data = _network2.read(path)
        return cls._with_parameters(data["sizes"], "sigmoid", data["cost"], dtype,
                                    data["weights"], data["biases"], num_threads)

    def save_network2(self, path) -> None:
        """Write the network as network2.py's ``save`` does, for ``network2.load``.

        Only a network network2.py can hold can be written: sigmoid in every
        layer and the ``quadratic`` (``QuadraticCost``) or ``cross_entropy``
        (``CrossEntropyCost``) cost; any other raises ``ValueError`` saying
        why.  The numbers are written as float64 and read back bitwise.
        """
        from . import _network2

        _network2.save(self, path)

    # -- the chain rule of one weight ------------------------------------------------
    def explain(self, x, y, layer, j, k):
        """The chain-rule factors of dC_x/dw^layer_jk for one example (x, y).

        Parameters
        ----------
        x : array_like
            One example, n_0 inputs.
        y : array_like or int
            Its targets (n_L values) or its class label.
        layer : int
            l, 1..L (as in ``weights[l - 1]``).
        j, k : int
            The weight w^l_jk = ``weights[l - 1][j, k]`` (0-based).

        Returns
        -------
        Explanation
            ``.factors`` (numbers whose product is the derivative) with their
            ``.symbols``, ``.gradient`` (equal to ``backprop(x, y)``'s entry for
            w^l_jk), ``.delta`` (delta^l_j), and a ``str()`` that writes the
            equation with the numbers filled in:
            dC_x/dw^l_jk = a^(l-1)_k * sigma'(z^l_j) * dC_x/da^l_j, where
            dC_x/da^L_j comes from the cost and, below the output layer,
            dC_x/da^l_j = sum_i w^(l+1)_ij delta^(l+1)_i.  The output layer of
            sigmoid + cross_entropy or softmax + log_likelihood has two factors,
            a^(L-1)_k and delta^L_j = a^L_j - y_j (see ``bpcore._explain``).
            Computed in float64.
        """
        from . import _explain

        return _explain.explain(self, x, y, layer, j, k)

    # -- shared by the constructors above ----------------------------------------------
    @classmethod
    def _with_parameters(cls, sizes, activations, cost, dtype, weights, biases, num_threads):
        net = cls(sizes, activations=activations, cost=cost, dtype=dtype, init="xavier",
                  seed=0, num_threads=num_threads)
        net.weights = [np.asarray(w, dtype=net.dtype) for w in weights]
        net.biases = [np.asarray(b, dtype=net.dtype) for b in biases]
        return net
