"""The network a peer engine must run, read from the same YAML description and .npz weights as our engine.

Every peer exports the network into its own format (TFLite flatbuffer, ONNX, an ACL graph plan), so they all
start from this one neutral list of layers: the YAML graph after shape inference, with dropout's attenuation
folded into the next convolution's weights (as our engine does), each ReLU joined to the convolution it follows
and the weights checked against the shapes the description implies. Only what SqueezeNet-like networks use is
supported; anything else is refused by name rather than exported wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.graph import Graph, Node
from neoncc.ir.shapes import pair, padding

SUPPORTED = "conv (+relu), maxpool, avgpool without padding, global_avgpool, concat, dropout, softmax"


@dataclass
class Layer:
    """One operation of the exported network. Shapes are (C, H, W) of batch 1; padding is (top, bottom, left,
    right); `ceil` is Caffe's rounding up of a window's output size."""

    kind: str                      # conv | maxpool | avgpool | global_avgpool | concat | softmax
    name: str
    inputs: list[str]
    input_shapes: list[tuple[int, int, int]]
    shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    ceil: bool = False
    relu: bool = False
    weight: np.ndarray | None = None   # float32 OIHW
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

    @property
    def output_size(self) -> int:
        return int(np.prod(self.layers[-1].shape))


def load(model_yaml: str | Path, npz: str | Path) -> Network:
    """The network of a YAML description with the weights of an .npz (keys `<layer>.weight` OIHW, `.bias`)."""
    graph = load_yaml_model(model_yaml)
    return lower(graph, load_weights(graph, npz))


def load_weights(graph: Graph, npz: str | Path) -> dict[str, np.ndarray]:
    """The graph's parameters from an .npz, as float32, each checked for presence and shape."""
    try:
        archive = np.load(npz)
    except (OSError, ValueError) as error:
        raise UserError(f"{npz}: cannot read weights: {error}") from None
    weights = {}
    with archive:
        for param in graph.params:
            if param.name not in archive.files:
                raise UserError(f"{npz}: no array '{param.name}' (model {graph.name} needs it, shape "
                                f"{param.shape})")
            array = archive[param.name]
            if tuple(array.shape) != param.shape:
                raise UserError(f"{npz}: '{param.name}' has shape {tuple(array.shape)}, model {graph.name} "
                                f"needs {param.shape}")
            weights[param.name] = np.ascontiguousarray(array, dtype=np.float32)
    return weights


def lower(graph: Graph, weights: dict[str, np.ndarray]) -> Network:
    """The graph as peer layers: dropout removed (its attenuation scales the consuming convolutions' weights),
    ReLU after a convolution fused into it, tensors renamed to the layer that now produces them."""
    alias: dict[str, str] = {}          # graph tensor -> exported tensor
    scale: dict[str, float] = {}        # conv name -> input attenuation from a preceding dropout
    shapes = {graph.input_name: graph.input_shape}
    layers: dict[str, Layer] = {}

    def source(tensor: str) -> str:
        return alias.get(tensor, tensor)

    for node in graph.nodes:
        inputs = [source(t) for t in node.inputs]
        if node.op == "dropout":
            factor = float(node.attrs.get("attenuation", 1.0))
            consumers = graph.consumers(node.output)
            if factor != 1.0 and not all(c.op == "conv" for c in consumers):
                raise _unsupported(node, "attenuating dropout that feeds other than convolutions")
            for conv in consumers:
                scale[conv.name] = scale.get(conv.name, 1.0) * factor
            alias[node.output] = inputs[0]
            continue
        if node.op == "relu":
            producer = layers.get(inputs[0])
            if producer is None or producer.kind != "conv" or len(graph.consumers(node.inputs[0])) != 1:
                raise _unsupported(node, "a ReLU other than one after a convolution that feeds nothing else")
            producer.relu = True
            alias[node.output] = producer.name
            continue
        layer = _layer(node, inputs, [shapes[t] for t in inputs], weights, scale.get(node.name, 1.0))
        layers[layer.name] = layer
        shapes[layer.name] = layer.shape
    network = Network(graph.name, graph.input_name, graph.input_shape, list(layers.values()),
                      source(graph.output))
    if network.output != network.layers[-1].name:
        raise UserError(f"{graph.source}: the network's output must be its last layer")
    return network


def _layer(node: Node, inputs: list[str], input_shapes: list[tuple[int, int, int]],
           weights: dict[str, np.ndarray], input_scale: float) -> Layer:
    layer = Layer(node.op, node.name, inputs, input_shapes, node.shape)
    attrs = node.attrs
    if node.op in ("conv", "maxpool", "avgpool"):
        layer.kernel, layer.stride = pair(attrs["kernel"]), pair(attrs.get("stride", 1))
        layer.pad = padding(attrs.get("pad", 0))
        layer.ceil = attrs.get("rounding", "floor") == "ceil"
    if node.op == "conv":
        if attrs.get("groups", 1) != 1:
            raise _unsupported(node, "grouped/depthwise convolutions")
        layer.weight = weights[f"{node.name}.weight"] * np.float32(input_scale)
        bias = weights.get(f"{node.name}.bias")
        layer.bias = bias if bias is not None else np.zeros(node.shape[0], np.float32)
    elif node.op == "avgpool" and (any(layer.pad) or layer.extra_rows_cols() != (0, 0)):
        raise _unsupported(node, "padded average pooling (runtimes disagree on counting the padding)")
    elif node.op == "softmax" and input_shapes[0][1:] != (1, 1):
        raise _unsupported(node, "softmax over a tensor with height or width > 1")
    elif node.op == "concat" and len(inputs) != 2:
        raise _unsupported(node, "concatenation of other than two tensors")
    elif node.op not in ("maxpool", "avgpool", "global_avgpool", "softmax", "concat"):
        raise _unsupported(node, f"op '{node.op}'")
    return layer


def _unsupported(node: Node, what: str) -> UserError:
    return UserError(f"{node.origin}: layer '{node.name}': the peer engines do not support {what} "
                     f"(supported: {SUPPORTED})")
