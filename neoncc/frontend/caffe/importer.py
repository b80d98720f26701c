"""Caffe deploy.prototxt + .caffemodel -> ImportedModel (SqueezeNet's original release format).

The prototxt says what the network computes; the .caffemodel supplies each layer's blobs by layer name. Layers
are read in the order Caffe runs them; blobs are tracked by name because Caffe's ReLU and Dropout usually work
in place (top == bottom). Pooling rounds up, as Caffe's does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from google.protobuf import message as protobuf_message
from google.protobuf import text_format

from neoncc.errors import UserError
from neoncc.frontend.caffe import proto
from neoncc.frontend.emit import ImportedModel, identifier, unique
from neoncc.frontend.emit import preprocess as preprocess_for

# V1 `layers { type: CONVOLUTION }` -> the V2 type string.
V1_TYPES = {"CONVOLUTION": "Convolution", "RELU": "ReLU", "POOLING": "Pooling", "CONCAT": "Concat",
            "DROPOUT": "Dropout", "SOFTMAX": "Softmax", "SPLIT": "Split"}
SUPPORTED = "Input, Convolution, ReLU, Pooling (MAX, AVE), Concat, Dropout, Split, Softmax"


class _Reader:
    def __init__(self, prototxt: Path, caffemodel: Path):
        self.prototxt, self.caffemodel = prototxt, caffemodel
        self.net = _parse_text(prototxt)
        self.blobs = _read_blobs(caffemodel)
        self.v1 = bool(self.net.layers)
        self.layers: list[dict] = []
        self.weights: dict[str, np.ndarray] = {}
        self.producer: dict[str, str] = {}  # Caffe blob -> the layer (our name) that last wrote it
        self.names: set[str] = set()
        self.input_name: str | None = None
        self.input_shape: tuple[int, ...] | None = None

    def refuse(self, layer, why: str) -> UserError:
        return UserError(f"{self.prototxt}: layer '{layer.name}' ({_type(layer)}): {why}")

    def read(self) -> None:
        if self.net.layer and self.net.layers:
            raise UserError(f"{self.prototxt}: mixes V2 'layer' and V1 'layers' entries")
        if self.net.input:
            self._declare_input(self.net.input, _net_input_shape(self.net), self.net)
        for layer in self.net.layers if self.v1 else self.net.layer:
            if _in_test_phase(layer):
                self._layer(layer)
        if self.input_name is None:
            raise UserError(f"{self.prototxt}: the net declares no input (an Input layer or `input:`)")
        if not self.layers:
            raise UserError(f"{self.prototxt}: no layers to import")
        read = {tensor for layer in self.layers for tensor in layer["input"]}
        outputs = [layer["name"] for layer in self.layers if layer["name"] not in read]
        if outputs != [self.layers[-1]["name"]]:
            raise UserError(f"{self.prototxt}: the net has {len(outputs)} outputs ({', '.join(outputs)}); "
                            "the engine computes one, from the last layer")

    def _declare_input(self, tops, shape, where) -> None:
        if self.input_name is not None or len(tops) != 1:
            raise UserError(f"{self.prototxt}: the net has {len(tops) + (self.input_name is not None)} inputs; "
                            "the engine takes one")
        self.input_name = identifier(tops[0], "data")
        self.input_shape = shape
        self.producer[tops[0]] = self.input_name
        self.names.add(self.input_name)

    def _bottoms(self, layer) -> list[str]:
        missing = [b for b in layer.bottom if b not in self.producer]
        if missing:
            raise self.refuse(layer, f"reads blob '{missing[0]}', which no earlier layer writes")
        return [self.producer[b] for b in layer.bottom]

    def _add(self, layer, entry: dict, inputs: list[str]) -> str:
        if len(layer.top) != 1:
            raise self.refuse(layer, f"has {len(layer.top)} outputs; one is supported")
        name = unique(identifier(layer.name, "layer"), self.names)
        self.layers.append({"name": name, **entry, "input": inputs})
        self.producer[layer.top[0]] = name
        return name

    def _layer(self, layer) -> None:
        kind = _type(layer)
        if kind == "Input":
            shapes = layer.input_param.shape
            self._declare_input(layer.top, tuple(shapes[0].dim) if shapes else None, layer)
            return
        inputs = self._bottoms(layer)
        if kind == "Split":  # Caffe's explicit fan-out: every top is the bottom
            for top in layer.top:
                self.producer[top] = inputs[0]
            return
        if kind != "Concat" and len(inputs) != 1:
            raise self.refuse(layer, f"has {len(inputs)} inputs; one is supported")
        if kind == "Convolution":
            self._convolution(layer, inputs)
        elif kind == "ReLU":
            if layer.relu_param.negative_slope != 0:
                raise self.refuse(layer, f"leaky ReLU (negative_slope {layer.relu_param.negative_slope:g}) "
                                         "is not supported")
            self._add(layer, {"type": "relu"}, inputs)
        elif kind == "Pooling":
            self._pooling(layer, inputs)
        elif kind == "Concat":
            param = layer.concat_param
            axis = param.axis if param.HasField("axis") or not param.HasField("concat_dim") else param.concat_dim
            if axis not in (1, -3):
                raise self.refuse(layer, f"concatenation along axis {axis} is not supported (channels only)")
            self._add(layer, {"type": "concat"}, inputs)
        elif kind == "Dropout":  # Caffe's dropout scales while training: nothing to undo at inference
            self._add(layer, {"type": "dropout", "rate": round(float(layer.dropout_param.dropout_ratio), 6)},
                      inputs)
        elif kind == "Softmax":
            if layer.softmax_param.axis != 1:
                raise self.refuse(layer, f"softmax along axis {layer.softmax_param.axis} is not supported "
                                         "(channels only)")
            self._add(layer, {"type": "softmax"}, inputs)
        else:
            raise self.refuse(layer, f"this layer type is not supported (supported: {SUPPORTED})")

    def _convolution(self, layer, inputs: list[str]) -> None:
        param = layer.convolution_param
        if param.group != 1:
            raise self.refuse(layer, f"grouped convolution (group {param.group}) is not supported")
        if any(d != 1 for d in param.dilation):
            raise self.refuse(layer, f"dilated convolution (dilation {list(param.dilation)}) is not supported")
        if param.axis != 1:
            raise self.refuse(layer, f"convolution over axis {param.axis} is not supported")
        kernel = _pair(layer, param.kernel_size, param, "kernel", None, self.refuse)
        stride = _pair(layer, param.stride, param, "stride", 1, self.refuse)
        pad = _pair(layer, param.pad, param, "pad", 0, self.refuse)
        blobs = self._blobs(layer, 2 if param.bias_term else 1)
        weight = blobs[0]
        expected = (param.num_output, kernel[0], kernel[1])
        if weight.ndim != 4 or (weight.shape[0], *weight.shape[2:]) != expected:
            raise self.refuse(layer, f"weights have shape {list(weight.shape)} in {self.caffemodel}; the prototxt "
                                     f"asks for {param.num_output} filters of {kernel[0]}x{kernel[1]}")
        bias = blobs[1].reshape(-1) if param.bias_term else np.zeros(param.num_output, np.float32)
        if bias.shape != (param.num_output,):
            raise self.refuse(layer, f"bias has {bias.size} values in {self.caffemodel}; expected "
                                     f"{param.num_output}")
        entry = {"type": "conv", "filters": int(param.num_output), **_window(kernel, stride, pad)}
        name = self._add(layer, entry, inputs)
        self.weights[f"{name}.weight"], self.weights[f"{name}.bias"] = weight, bias

    def _pooling(self, layer, inputs: list[str]) -> None:
        param = layer.pooling_param
        method = type(param).PoolMethod.Name(param.pool)
        if method not in ("MAX", "AVE"):
            raise self.refuse(layer, f"{method} pooling is not supported (MAX and AVE are)")
        if param.global_pooling:
            if method != "AVE":
                raise self.refuse(layer, "global max pooling is not supported (global average pooling is)")
            self._add(layer, {"type": "global_avgpool"}, inputs)
            return
        kernel = _pooling_pair(layer, param, "kernel", "kernel_size", None, self.refuse)
        stride = _pooling_pair(layer, param, "stride", "stride", 1, self.refuse)
        pad = _pooling_pair(layer, param, "pad", "pad", 0, self.refuse)
        if method == "AVE" and pad != (0, 0):
            raise self.refuse(layer, "average pooling with padding is not supported (Caffe counts the padding in "
                                     "the divisor)")
        entry = {"type": "maxpool" if method == "MAX" else "avgpool", **_window(kernel, stride, pad)}
        entry["rounding"] = "floor" if param.round_mode == type(param).FLOOR else "ceil"
        self._add(layer, entry, inputs)

    def _blobs(self, layer, count: int) -> list[np.ndarray]:
        blobs = self.blobs.get(layer.name)
        if blobs is None:
            raise self.refuse(layer, f"{self.caffemodel} has no weights for this layer")
        if len(blobs) < count:
            raise self.refuse(layer, f"{self.caffemodel} holds {len(blobs)} blob(s) for it; expected {count}")
        return blobs[:count]


def _type(layer) -> str:
    if isinstance(layer, proto.messages()["caffe.V1LayerParameter"]):
        name = layer.LayerType.Name(layer.type)
        return V1_TYPES.get(name, name)
    return layer.type


def _in_test_phase(layer) -> bool:
    """Caffe's NetState rules for an inference net (phase TEST, no stages, level 0)."""
    def matches(rule) -> bool:
        return ((not rule.HasField("phase") or rule.phase == 1) and not rule.stage
                and (not rule.HasField("min_level") or rule.min_level <= 0)
                and (not rule.HasField("max_level") or rule.max_level >= 0))
    if layer.include:
        return any(matches(rule) for rule in layer.include)
    return not any(matches(rule) for rule in layer.exclude)


def _net_input_shape(net) -> tuple[int, ...] | None:
    if net.input_shape:
        return tuple(net.input_shape[0].dim)
    if net.input_dim:
        return tuple(net.input_dim[:4])
    return None


def _pair(layer, values, param, field: str, default, refuse) -> tuple[int, int]:
    """(h, w) of a repeated Caffe size field or its `_h`/`_w` pair, as Caffe's ConvolutionLayer reads them."""
    h_name, w_name = f"{field}_h", f"{field}_w"
    if param.HasField(h_name) or param.HasField(w_name):
        if values:
            raise refuse(layer, f"gives both {field} and {h_name}/{w_name}")
        return getattr(param, h_name), getattr(param, w_name)
    if len(values) == 0:
        if default is None:
            raise refuse(layer, f"no {field} size given")
        return default, default
    if len(values) > 2:
        raise refuse(layer, f"{len(values)}-D {field} is not supported (2-D only)")
    return (values[0], values[-1])


def _pooling_pair(layer, param, field: str, single: str, default, refuse) -> tuple[int, int]:
    """(h, w) of a pooling size: `<field>_h`/`<field>_w`, else the one square value, else the default."""
    if param.HasField(f"{field}_h") or param.HasField(f"{field}_w"):
        return getattr(param, f"{field}_h"), getattr(param, f"{field}_w")
    if param.HasField(single):
        return getattr(param, single), getattr(param, single)
    if default is None:
        raise refuse(layer, f"no {field} size given")
    return default, default


def _size(pair: tuple[int, int]):
    return int(pair[0]) if pair[0] == pair[1] else [int(pair[0]), int(pair[1])]


def _window(kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]) -> dict:
    """YAML kernel/stride/pad of a convolution or pooling window, leaving out the defaults."""
    entry = {"kernel": _size(kernel)}
    if stride != (1, 1):
        entry["stride"] = _size(stride)
    if pad != (0, 0):
        entry["pad"] = int(pad[0]) if pad[0] == pad[1] else [int(pad[0]), int(pad[0]), int(pad[1]), int(pad[1])]
    return entry


def _parse_text(path: Path):
    net = proto.net_parameter()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read: {err}") from None
    try:  # fields this importer does not need (fillers, learning rates, ...) are skipped
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as err:
        raise UserError(f"{path}:{err}") from None
    return net


def _read_blobs(path: Path) -> dict[str, list[np.ndarray]]:
    """Each layer's parameter blobs in the .caffemodel (a binary NetParameter), by layer name."""
    net = proto.net_parameter()
    try:
        net.ParseFromString(path.read_bytes())
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror}") from None
    except protobuf_message.DecodeError as err:
        raise UserError(f"{path}: not a Caffe model (binary NetParameter): {err}") from None
    blobs = {}
    for layer in [*net.layer, *net.layers]:
        if layer.blobs:
            try:
                blobs[layer.name] = [_blob_array(blob) for blob in layer.blobs]
            except ValueError as err:
                raise UserError(f"{path}: layer '{layer.name}': {err}") from None
    return blobs


def _blob_array(blob) -> np.ndarray:
    values = np.asarray(blob.data if len(blob.data) else blob.double_data, dtype=np.float32)
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:
        shape = tuple(d for d in (blob.num, blob.channels, blob.height, blob.width))
    if int(np.prod(shape)) != values.size:
        raise ValueError(f"a blob of shape {list(shape)} holds {values.size} values")
    return values.reshape(shape)


def load_caffe(prototxt: Path, caffemodel: Path, name: str, input_shape: tuple[int, int, int] | None = None,
               preprocess: str = "caffe") -> ImportedModel:
    reader = _Reader(Path(prototxt), Path(caffemodel))
    reader.read()
    shape = input_shape or reader.input_shape
    if shape is None:
        raise UserError(f"{prototxt}: the input has no shape; give one with --input-shape C,H,W")
    shape = tuple(int(d) for d in shape[-3:])
    if len(shape) != 3:
        raise UserError(f"{prototxt}: input shape {list(shape)}: expected N, C, H, W")
    fmt = "V1 `layers`" if reader.v1 else "V2 `layer`"
    return ImportedModel(
        name=name, input_shape=shape, layers=reader.layers, weights=reader.weights,
        input_name=reader.input_name, preprocess=preprocess_for(preprocess, shape),
        source=f"Caffe: {prototxt} + {caffemodel} ({fmt} format)",
        description=f"{reader.net.name or name}, imported from Caffe",
        notes=[f"Preprocessing: {preprocess}" + (" (Caffe's: BGR, mean 104/117/123, 0..255)"
                                                  if preprocess == "caffe" else "")])
