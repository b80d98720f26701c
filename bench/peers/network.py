"""The network a peer engine must run, read from the same YAML description and .npz weights as our engine.

Every peer exports the network into its own format (TFLite flatbuffer, ONNX, an ACL graph plan), so they all
start from this one neutral list of layers: the compiler's optimised float graph (neoncc.passes.optimize, the one
our engine is generated from), with its constants. Only what SqueezeNet-like networks use is
supported; anything else is refused by name rather than exported wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neoncc.errors import UserError
from neoncc.ir.graph import Graph, Node
from neoncc.ir.shapes import pair, padding

SUPPORTED = "conv (+relu), maxpool, avgpool without padding, global_avgpool, concat, dropout, softmax"
# What some peers also run (a peer class lists the ones it does in `features`; load() refuses the others by name):
# depthwise convolutions, ReLU6 after a convolution or addition, element-wise addition, fully connected on 1x1.
EXTENSIONS = {"depthwise": "depthwise convolutions", "relu6": "a fused relu6", "add": "op 'add'",
              "fc": "op 'fc'"}


@dataclass
class Layer:
    """One operation of the exported network. Shapes are (C, H, W) of batch 1; padding is (top, bottom, left,
    right); `ceil` is Caffe's rounding up of a window's output size."""

    kind: str                      # conv | maxpool | avgpool | global_avgpool | concat | softmax | add | fc
    name: str
    inputs: list[str]
    input_shapes: list[tuple[int, int, int]]
    shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    ceil: bool = False
    relu: bool = False
    relu6: bool = False            # (extension) min(max(x, 0), 6) after a conv or add
    groups: int = 1                # (extension) depthwise: groups = input channels (output: a multiple)
    weight: np.ndarray | None = None   # float32 OIHW (conv: O, I/groups, H, W; fc: O, I)
    bias: np.ndarray | None = None     # float32 (O,)

    def extra_rows_cols(self) -> tuple[int, int]:
        """Rows and columns of padding, beyond `pad`, that a floor-rounding runtime needs at the bottom and right
        to produce this layer's (ceil-rounded) output size: 0 when the windows divide the input exactly."""
        (_, h, w), (kh, kw), (sh, sw) = self.input_shapes[0], self.kernel, self.stride
        top, bottom, left, right = self.pad
        _, out_h, out_w = self.shape
        return (max((out_h - 1) * sh + kh - (h + top + bottom), 0),
                max((out_w - 1) * sw + kw - (w + left + right), 0))


@dataclass
class Network:
    name: str
    input_name: str
    input_shape: tuple[int, int, int]
    layers: list[Layer]
    output: str
    graph: Graph | None = field(default=None, repr=False)   # the optimised float graph (for peers that calibrate)

    @property
    def output_size(self) -> int:
        return int(np.prod(self.layers[-1].shape))


def load(model_yaml: str | Path, npz: str | Path, features: frozenset[str] = frozenset()) -> Network:
    """The network of a YAML description with the weights of an .npz, after the compiler's own float passes
    (neoncc.passes.optimize: dropout attenuation folded into the weights, batch norms folded, ReLU fused): the
    same optimised graph our engine is generated from. `features` (names in EXTENSIONS) are the extensions the
    peer runs."""
    from neoncc.pipeline import float_graph
    graph = float_graph(Path(model_yaml), Path(npz), 0)
    layers = [_layer(graph, node, features) for node in graph.nodes]
    return Network(graph.name, graph.input_name, graph.input_shape, layers, graph.output, graph)


def _layer(graph: Graph, node: Node, features: frozenset[str] = frozenset()) -> Layer:
    input_shapes = [graph.shape_of(t) for t in node.inputs]

    def activation(layer: Layer) -> None:
        act = node.attrs.get("activation") or "none"
        if act == "relu6" and "relu6" in features:
            layer.relu6 = True
        elif act not in ("relu", "none"):
            raise _unsupported(node, EXTENSIONS["relu6"] if act == "relu6" else f"a fused {act}")
        layer.relu = act == "relu"

    layer = Layer(node.op, node.name, list(node.inputs), input_shapes, node.shape)
    attrs = node.attrs
    if node.op in ("conv", "maxpool", "avgpool"):
        layer.kernel, layer.stride = pair(attrs["kernel"]), pair(attrs.get("stride", 1))
        layer.pad = padding(attrs.get("pad", 0))
        layer.ceil = attrs.get("rounding", "floor") == "ceil"
    if node.op == "conv":
        groups = attrs.get("groups", 1)
        depthwise = groups == input_shapes[0][0] and node.shape[0] % groups == 0 and "depthwise" in features
        if (groups != 1 and not depthwise) or pair(attrs.get("dilation", 1)) != (1, 1):
            raise _unsupported(node, "grouped/depthwise or dilated convolutions")
        activation(layer)
        layer.groups = groups
        layer.weight = graph.constant(f"{node.name}.weight")
        layer.bias = graph.constant(f"{node.name}.bias")
    elif node.op in ("add", "fc") and node.op in features:
        activation(layer)
        if node.op == "fc":
            if input_shapes[0][1:] != (1, 1):
                raise _unsupported(node, "a fully connected layer on a tensor with height or width > 1")
            layer.weight = graph.constant(f"{node.name}.weight")
            layer.bias = graph.constant(f"{node.name}.bias")
        elif input_shapes[0] != input_shapes[1]:
            raise _unsupported(node, "addition with broadcasting")
    elif node.op == "avgpool" and (any(layer.pad) or layer.extra_rows_cols() != (0, 0)):
        raise _unsupported(node, "padded average pooling (runtimes disagree on counting the padding)")
    elif node.op == "softmax" and input_shapes[0][1:] != (1, 1):
        raise _unsupported(node, "softmax over a tensor with height or width > 1")
    elif node.op == "concat" and len(node.inputs) != 2:
        raise _unsupported(node, "concatenation of other than two tensors")
    elif node.op not in ("conv", "maxpool", "avgpool", "global_avgpool", "softmax", "concat", "add", "fc") or \
            node.op in ("add", "fc") and node.op not in features:
        raise _unsupported(node, f"op '{node.op}'")
    return layer


def _unsupported(node: Node, what: str) -> UserError:
    return UserError(f"{node.origin}: layer '{node.name}': the peer engines do not support {what} "
                     f"(supported: {SUPPORTED})")
