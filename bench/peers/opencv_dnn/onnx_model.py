"""A peer network written as an ONNX model (opset 11, NCHW), the format OpenCV's DNN module imports.

Built with the onnx package's helpers straight from the peer network rather than by exporting a PyTorch module,
so the file holds exactly our layers and weights. Caffe's rounding up is written as explicit end padding with
floor rounding (ceil_mode=0): every ONNX reader agrees on that, while importers differ in how they honour
ceil_mode. Max pooling ignores padded cells in ONNX and in OpenCV alike. For the peers that take
network.EXTENSIONS (ONNX Runtime) it also writes depthwise convolutions, ReLU6 (Clip), Add and fully connected
layers (Flatten + Gemm, reshaped back to N, C, 1, 1 so a following softmax sees what it sees after pooling).
"""

from __future__ import annotations

import numpy as np

from bench.peers.network import Layer, Network

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:   # reported by write(); requirements.txt lists it
    onnx = None

OPSET = 11
IR_VERSION = 6   # what ONNX 1.5-1.7 wrote for opset 11; OpenCV 4.6's bundled protobuf schema reads it


def _window_attributes(layer: Layer) -> dict:
    extra_h, extra_w = layer.extra_rows_cols()
    top, bottom, left, right = layer.pad
    return {"kernel_shape": list(layer.kernel), "strides": list(layer.stride),
            "pads": [top, left, bottom + extra_h, right + extra_w]}


def _activation(layer: Layer, source: str, nodes: list, initializers: list) -> None:
    """The layer's fused activation as its own node, from `source` to the layer's output: Relu, or ReLU6 as Clip
    (opset 11: the bounds are inputs)."""
    if layer.relu:
        nodes.append(helper.make_node("Relu", [source], [layer.name], name=f"{layer.name}/relu"))
    elif layer.relu6:
        if not any(i.name == "relu6.min" for i in initializers):
            initializers += [numpy_helper.from_array(np.array(0, np.float32), "relu6.min"),
                             numpy_helper.from_array(np.array(6, np.float32), "relu6.max")]
        nodes.append(helper.make_node("Clip", [source, "relu6.min", "relu6.max"], [layer.name],
                                      name=f"{layer.name}/relu6"))


def write(network: Network) -> bytes:
    """The network as a serialised ONNX ModelProto (input `network.input_name`, output the last layer)."""
    if onnx is None:
        raise ImportError("the OpenCV peer needs the `onnx` Python package "
                          "(requirements.txt; scripts/setup installs it)")
    nodes, initializers = [], []
    for layer in network.layers:
        out = layer.name
        if layer.kind == "conv":
            initializers += [numpy_helper.from_array(layer.weight, f"{layer.name}.weight"),
                             numpy_helper.from_array(layer.bias, f"{layer.name}.bias")]
            conv_out = f"{out}/conv" if layer.relu or layer.relu6 else out   # the activation writes `out`
            groups = {"group": layer.groups} if layer.groups != 1 else {}
            nodes.append(helper.make_node("Conv", [layer.inputs[0], f"{layer.name}.weight", f"{layer.name}.bias"],
                                          [conv_out], name=layer.name, **_window_attributes(layer), **groups))
            _activation(layer, conv_out, nodes, initializers)
        elif layer.kind == "fc":   # peers with the fc extension: (C, 1, 1) -> Flatten -> Gemm (B: (O, I))
            initializers += [numpy_helper.from_array(layer.weight, f"{layer.name}.weight"),
                             numpy_helper.from_array(layer.bias, f"{layer.name}.bias"),
                             numpy_helper.from_array(np.array([1, layer.shape[0], 1, 1], np.int64),
                                                     f"{layer.name}.shape")]
            nodes.append(helper.make_node("Flatten", layer.inputs, [f"{out}/flat"], name=f"{out}/flatten", axis=1))
            nodes.append(helper.make_node("Gemm", [f"{out}/flat", f"{layer.name}.weight", f"{layer.name}.bias"],
                                          [f"{out}/gemm"], name=layer.name, transB=1))
            fc_out = f"{out}/fc" if layer.relu or layer.relu6 else out
            nodes.append(helper.make_node("Reshape", [f"{out}/gemm", f"{layer.name}.shape"], [fc_out],
                                          name=f"{out}/reshape"))
            _activation(layer, fc_out, nodes, initializers)
        elif layer.kind == "add":
            add_out = f"{out}/add" if layer.relu or layer.relu6 else out
            nodes.append(helper.make_node("Add", layer.inputs, [add_out], name=layer.name))
            _activation(layer, add_out, nodes, initializers)
        elif layer.kind in ("maxpool", "avgpool"):
            op = "MaxPool" if layer.kind == "maxpool" else "AveragePool"
            nodes.append(helper.make_node(op, layer.inputs, [out], name=layer.name, **_window_attributes(layer)))
        elif layer.kind == "global_avgpool":
            nodes.append(helper.make_node("GlobalAveragePool", layer.inputs, [out], name=layer.name))
        elif layer.kind == "concat":
            nodes.append(helper.make_node("Concat", layer.inputs, [out], name=layer.name, axis=1))
        elif layer.kind == "softmax":
            nodes.append(helper.make_node("Flatten", layer.inputs, [f"{out}/flat"], name=f"{out}/flatten", axis=1))
            nodes.append(helper.make_node("Softmax", [f"{out}/flat"], [out], name=layer.name, axis=1))
    last = network.layers[-1]
    output_shape = [1, last.shape[0]] if last.kind == "softmax" else [1, *last.shape]
    graph = helper.make_graph(
        nodes, network.name,
        [helper.make_tensor_value_info(network.input_name, TensorProto.FLOAT, [1, *network.input_shape])],
        [helper.make_tensor_value_info(network.output, TensorProto.FLOAT, output_shape)],
        initializers)
    model = helper.make_model(graph, producer_name="neoncc bench.peers",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()
