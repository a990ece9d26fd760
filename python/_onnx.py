"""Export a network to ONNX, with the ``onnx`` package alone (extra ``onnx``).

The graph is the forward pass as the seeds write it, one layer after another:

    z^l = a^(l-1) (W^l)^T + b^l       Gemm(a, W^l, b^l, transB=1)
    a^l = sigma(z^l)                   the activation's op

with W^l stored as it is in bpcore, shape (n_l, n_{l-1}), so that an initializer
``W{l}`` of the file is ``net.weights[l-1]`` element for element.  Rows are
examples; the batch dimension is symbolic (``"batch"``), so the model takes any
number of rows.  Parameters and arithmetic keep the network's dtype (float32 or
float64).

Activations, and the op each is written with:

==============  ===================================================================
identity        ``Identity``
sigmoid         ``Sigmoid``
tanh            ``Tanh``
relu            ``Relu``
leaky_relu      ``LeakyRelu(alpha=0.01)`` in float32; in float64
                ``Where(Greater(z, 0), z, Mul(z, 0.01))``, the kernels' own
                definition: an ONNX attribute is a 32-bit float, so ``alpha``
                would be 0.01 rounded to float32 (0.009999999776...), a
                relative error of 2e-8 on every negative z; the float64
                constant of ``Mul`` is 0.01 as the kernels have it
softmax         ``Softmax(axis=-1)`` (opset 13 and later: per row)
==============  ===================================================================

The cost is not part of the graph: the model computes a^L, as ``feedforward``
does.
"""
from __future__ import annotations

import numpy as np

from ._config import LEAKY_SLOPE

#: The opset the files declare (onnxruntime 1.10 and later run it).
OPSET = 17
#: The IR version written: the oldest that opset 17 allows, so that older
#: runtimes read the files too (``onnx.helper.make_model`` would write its own,
#: newest one).
IR_VERSION = 8


def _require_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError('to_onnx needs the onnx package: pip install ".[onnx]" (in the bpcore source tree) '
                          f"(importing it failed: {exc})") from None
    return onnx


def _activation_nodes(helper, act: str, z: str, a: str, dtype: np.dtype, l: int):
    """Nodes (and initializers) that compute a = sigma(z) for layer l."""
    simple = {"identity": "Identity", "sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
    if act in simple:
        return [helper.make_node(simple[act], [z], [a], name=f"{act}{l}")], []
    if act == "softmax":
        return [helper.make_node("Softmax", [z], [a], axis=-1, name=f"softmax{l}")], []
    if act == "leaky_relu":
        if dtype == np.float32:
            return [helper.make_node("LeakyRelu", [z], [a], alpha=LEAKY_SLOPE,
                                     name=f"leaky_relu{l}")], []
        from onnx import numpy_helper

        zero = numpy_helper.from_array(np.zeros((), dtype), f"zero{l}")
        slope = numpy_helper.from_array(np.array(LEAKY_SLOPE, dtype), f"slope{l}")
        nodes = [helper.make_node("Greater", [z, zero.name], [f"positive{l}"]),
                 helper.make_node("Mul", [z, slope.name], [f"scaled{l}"]),
                 helper.make_node("Where", [f"positive{l}", z, f"scaled{l}"], [a],
                                  name=f"leaky_relu{l}")]
        return nodes, [zero, slope]
    raise ValueError(f"no ONNX form for activation {act!r}")  # _config.ACTIVATIONS grew


def build_model(net, input_name: str = "input", output_name: str = "output"):
    """The ``onnx.ModelProto`` of ``net``'s forward pass (see the module docstring)."""
    onnx = _require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    for name, value in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if input_name == output_name:
        raise ValueError(f"input_name and output_name must differ, both are {input_name!r}")
    dtype = np.dtype(net.dtype)
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    nodes, initializers = [], []
    previous = input_name
    L = net.n_layers
    for l, (w, b, act) in enumerate(zip(net.weights, net.biases, net.activations), start=1):
        initializers += [numpy_helper.from_array(np.array(w, dtype), f"W{l}"),
                         numpy_helper.from_array(np.array(b, dtype), f"b{l}")]
        z, a = f"z{l}", (output_name if l == L else f"a{l}")
        nodes.append(helper.make_node("Gemm", [previous, f"W{l}", f"b{l}"], [z], transB=1,
                                      name=f"layer{l}"))
        act_nodes, act_inits = _activation_nodes(helper, act, z, a, dtype, l)
        nodes += act_nodes
        initializers += act_inits
        previous = a
    graph = helper.make_graph(
        nodes, "bpcore_network",
        inputs=[helper.make_tensor_value_info(input_name, elem, ["batch", net.sizes[0]])],
        outputs=[helper.make_tensor_value_info(output_name, elem, ["batch", net.sizes[-1]])],
        initializer=initializers,
        doc_string=(f"bpcore network: sizes {list(net.sizes)}, activations "
                    f"{list(net.activations)}, cost {net.cost_name} (not in the graph), "
                    f"{dtype.name}"))
    model = helper.make_model(graph, producer_name="bpcore", ir_version=IR_VERSION,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    return model


def to_onnx(net, path, input_name: str = "input", output_name: str = "output") -> None:
    """Write ``net`` to ``path`` as an ONNX model (see :meth:`bpcore.Network.to_onnx`)."""
    from ._checks import as_path

    path = as_path("path", path)
    model = build_model(net, input_name, output_name)
    with open(path, "wb") as file:
        file.write(model.SerializeToString())
