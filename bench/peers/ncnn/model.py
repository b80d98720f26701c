"""Our own writer of ncnn's model format (.param text + .bin weights) from the peer network, float32 or int8.

.param: the magic 7767517, "<layers> <blobs>", then one line a layer: type, name, input and output counts, input
and output blob names, `key=value` parameters. ncnn hands a blob to one consumer only, so a blob read by several
layers goes through a Split layer first (one output per consumer).

    Input        0=w 1=h 2=c
    Convolution  0=out 1=kw 11=kh 3=sw 13=sh 4=pad_left 14=pad_top 15=pad_right 16=pad_bottom 5=bias_term
                 6=weight_count 9=1 (fused ReLU) [8=2: int8, per-channel weight scales]
    Pooling      0=max(0)/avg(1) 1=kw 11=kh 2=sw 12=sh 3=pad_left 13=pad_top 14=pad_right 15=pad_bottom 4=global
                 5=pad mode (1: only the explicit padding)
    ConvolutionDepthWise  the same keys, 7=group [8=1: int8, one weight scale per group]; 9=3 -23310=2,0,6 is a
                 fused clip to [0, 6] (ReLU6; -23310 is the array form of key 10)
    InnerProduct 0=out 1=bias_term 2=weight_count [8=1: int8, per-output weight scales]
    BinaryOp     0=0 (add)
    Concat       0=axis (0: channels of a C,H,W blob)
    Softmax      0=axis 1=1 (the fixed axis numbering)

Caffe's rounding up of pooling windows is written as explicit end padding with pad mode 1 (the padding given and
nothing more), as the ONNX writer does; max pooling pads with -FLT_MAX in ncnn, so padding never wins. Global
pooling leaves a 1-D blob of C values, which the softmax then reads along axis 0.

.bin: per convolution, in .param order, the weights (a 4-byte tag, 0 for raw float32 or 0x000D4B38 for int8 padded
to 4 bytes, then O*I*kh*kw values in OIHW order), the bias (O float32, no tag) and, for int8, the per-output-channel
weight scales (O float32) and the input's activation scale (1 float32): int8 = round(x * scale).
"""

from __future__ import annotations

import struct

import numpy as np

from bench.peers.network import Layer, Network
from neoncc.errors import UserError

MAGIC = 7767517
INT8_TAG = 0x000D4B38


def weight_scales(weight: np.ndarray) -> np.ndarray:
    """Per output channel (row of an OIHW or (O, I) weight): 127 / max |w| (1 for an all-zero filter), as ncnn's int8 convolution expects."""
    peak = np.abs(weight.reshape(weight.shape[0], -1)).max(axis=1).astype(np.float64)
    return np.where(peak > 0, 127.0 / np.where(peak > 0, peak, 1.0), 1.0).astype(np.float32)


def write(network: Network, activation_scales: dict[str, float] | None = None) -> tuple[str, bytes]:
    """(.param text, .bin bytes). With activation_scales (conv name -> scale of its input), every convolution is
    stored in int8 with per-channel weight scales; without, everything is float32."""
    consumers: dict[str, int] = {}
    for layer in network.layers:
        for blob in layer.inputs:
            consumers[blob] = consumers.get(blob, 0) + 1
    c, h, w = network.input_shape
    lines: list[str] = []
    blobs: set[str] = set()
    weights = bytearray()
    handed: dict[str, list[str]] = {}   # blob -> the names its remaining consumers read it by

    def produce(layer_type: str, name: str, inputs: list[str], output: str, params: str) -> None:
        lines.append(f"{layer_type:<16} {name:<24} {len(inputs)} 1 {' '.join(inputs)} {output} {params}".rstrip())
        blobs.add(output)
        if consumers.get(output, 0) > 1:   # one Split output per consumer
            outs = [f"{output}_split_{i}" for i in range(consumers[output])]
            lines.append(f"{'Split':<16} {output + '_split':<24} 1 {len(outs)} {output} {' '.join(outs)}")
            blobs.update(outs)
            handed[output] = outs
        else:
            handed[output] = [output]

    def take(blob: str) -> str:
        if blob not in handed or not handed[blob]:
            raise UserError(f"ncnn export of {network.name}: blob '{blob}' is read before it is written")
        return handed[blob].pop(0)

    lines.append(f"{'Input':<16} {network.input_name:<24} 0 1 {network.input_name} 0={w} 1={h} 2={c}")
    blobs.add(network.input_name)
    handed[network.input_name] = ([f"{network.input_name}_split_{i}" for i in range(consumers[network.input_name])]
                                  if consumers.get(network.input_name, 0) > 1 else [network.input_name])
    if len(handed[network.input_name]) > 1:
        outs = handed[network.input_name]
        lines.append(f"{'Split':<16} {network.input_name + '_split':<24} 1 {len(outs)} {network.input_name} "
                     f"{' '.join(outs)}")
        blobs.update(outs)

    for layer in network.layers:
        inputs = [take(blob) for blob in layer.inputs]
        if layer.kind == "conv":
            kind = "Convolution" if layer.groups == 1 else "ConvolutionDepthWise"
            produce(kind, layer.name, inputs, layer.name, _conv_params(layer, activation_scales))
            weights += _weights(layer, activation_scales)
        elif layer.kind == "fc":
            int8 = " 8=1" if activation_scales is not None else ""
            produce("InnerProduct", layer.name, inputs, layer.name,
                    f"0={layer.shape[0]} 1=1 2={layer.weight.size}{int8}{_activation(layer)}")
            weights += _weights(layer, activation_scales)
        elif layer.kind == "add" and not (layer.relu or layer.relu6):
            produce("BinaryOp", layer.name, inputs, layer.name, "0=0")
        elif layer.kind == "add":   # BinaryOp has no fused activation: a ReLU or Clip layer follows
            sum_blob = f"{layer.name}_sum"
            lines.append(f"{'BinaryOp':<16} {layer.name:<24} 2 1 {' '.join(inputs)} {sum_blob} 0=0")
            blobs.add(sum_blob)
            produce("ReLU" if layer.relu else "Clip", f"{layer.name}_act", [sum_blob], layer.name,
                    "" if layer.relu else "0=0.000000e+00 1=6.000000e+00")
        elif layer.kind in ("maxpool", "avgpool"):
            extra_h, extra_w = layer.extra_rows_cols()
            top, bottom, left, right = layer.pad
            (kh, kw), (sh, sw) = layer.kernel, layer.stride
            produce("Pooling", layer.name, inputs, layer.name,
                    f"0={int(layer.kind == 'avgpool')} 1={kw} 11={kh} 2={sw} 12={sh} 3={left} 13={top} "
                    f"14={right + extra_w} 15={bottom + extra_h} 5=1")
        elif layer.kind == "global_avgpool":
            produce("Pooling", layer.name, inputs, layer.name, "0=1 4=1")
        elif layer.kind == "concat":
            produce("Concat", layer.name, inputs, layer.name, "0=0")
        elif layer.kind == "softmax":
            produce("Softmax", layer.name, inputs, layer.name, "0=0 1=1")
        else:
            raise UserError(f"ncnn export of {network.name}: layer '{layer.name}': no ncnn form for '{layer.kind}'")
    param = "\n".join([str(MAGIC), f"{len(lines)} {len(blobs)}", *lines]) + "\n"
    return param, bytes(weights)


def _conv_params(layer: Layer, activation_scales: dict[str, float] | None) -> str:
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    top, bottom, left, right = layer.pad
    params = (f"0={layer.shape[0]} 1={kw} 11={kh} 3={sw} 13={sh} 4={left} 14={top} 15={right} 16={bottom} "
              f"5=1 6={layer.weight.size}")
    if layer.groups != 1:
        params += f" 7={layer.groups}"
    if activation_scales is not None:   # per output channel (Convolution) / per group (ConvolutionDepthWise)
        params += " 8=2" if layer.groups == 1 else " 8=1"
    return params + _activation(layer)


def _activation(layer: Layer) -> str:
    """A fused activation of Convolution/ConvolutionDepthWise/InnerProduct: 9=1 ReLU, 9=3 clip to [0, 6]."""
    if layer.relu:
        return " 9=1"
    if layer.relu6:
        return " 9=3 -23310=2,0.000000e+00,6.000000e+00"
    return ""


def _weights(layer: Layer, activation_scales: dict[str, float] | None) -> bytes:
    weight = np.ascontiguousarray(layer.weight, dtype="<f4")
    bias = np.ascontiguousarray(layer.bias, dtype="<f4")
    if activation_scales is None:
        return struct.pack("<I", 0) + weight.tobytes() + bias.tobytes()
    if layer.name not in activation_scales:
        raise UserError(f"ncnn int8 export: no activation scale for the input of '{layer.name}'")
    # Convolution, InnerProduct: one scale per output channel; ConvolutionDepthWise (8=1): one per group, over
    # the group's output channels (a depthwise convolution's group is one channel)
    rows = weight.reshape(layer.groups if layer.groups != 1 else weight.shape[0], -1)
    scales = weight_scales(rows)
    quantized = np.clip(np.round(rows * scales[:, None]), -127, 127).astype(np.int8)
    data = quantized.tobytes()
    data += b"\0" * (-len(data) % 4)
    return (struct.pack("<I", INT8_TAG) + data + bias.tobytes() + scales.astype("<f4").tobytes()
            + np.array([activation_scales[layer.name]], "<f4").tobytes())
