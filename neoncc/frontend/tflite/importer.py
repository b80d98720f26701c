""".tflite model -> ImportedModel: float CNNs as TensorFlow Lite's converter writes them (MediaPipe's face, hand and
iris models, MobileNet-style classifiers), read with the `tflite` package (the flatbuffers schema bindings).

TFLite tensors are NHWC ([1, H, W, C], or [1, N] after a flattening or a global mean); the engine's are (C, H, W).
So weights change order here: a convolution's OHWI kernel becomes OIHW, a depthwise one's 1HWO (output channel
o = c * multiplier + m) becomes O1HW, and a fully connected layer reading a flattened [1, H, W, C] tensor gets its
columns reordered from H, W, C to C, H, W (the order our `fc` flattens in). The engine reads its input as NCHW and
writes its output as (C, H, W): both are the transposes of TFLite's.

Each supported builtin operator has a method named after it (`_CONV_2D`, ...): the convert map. Float16 weights
(DEQUANTIZE of a constant) are widened to float32 at import; zero padding of channels before a residual ADD
(BlazeFace's `channel_padding`) becomes slices, an add and a concat of the wider tensor; zero padding of height and
width is taken over by the convolution that alone reads it. A model with several outputs is imported for one of
them (`--output NAME`): the operators that output does not need are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neoncc.errors import UserError
from neoncc.frontend.emit import ImportedModel, identifier, scale_shift, unique
from neoncc.frontend.emit import preprocess as preprocess_for

_ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}  # tflite.ActivationFunctionType: NONE, RELU, RELU6
_ACTIVATION_NAMES = {2: "RELU_N1_TO_1", 4: "TANH", 5: "SIGN_BIT"}
_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
          9: np.int8}
_TYPE_NAMES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 6: "BOOL", 7: "INT16", 9: "INT8"}


def _operator_names() -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator
    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


class _Tensor:
    def __init__(self, model, graph, index: int):
        t = graph.Tensors(index)
        self.index = index
        self.name = (t.Name() or b"").decode("utf-8", "replace")
        self.shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        self.type = t.Type()
        q = t.Quantization()
        self.scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        self.zero_point = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else None
        self.axis = q.QuantizedDimension() if q is not None else 0
        buffer = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        self.data = None
        if buffer is not None and buffer.DataLength():
            self.data = np.frombuffer(buffer.DataAsNumpy().tobytes(), _TYPES.get(self.type, np.uint8))
        elif buffer is not None and buffer.Offset() > 1:
            self.data = "external"  # weights stored after the flatbuffer (models over 2 GB); read lazily below
            self.offset, self.size = buffer.Offset(), buffer.Size()

    def array(self, raw: bytes) -> np.ndarray:
        data = self.data
        if isinstance(data, str):
            data = np.frombuffer(raw[self.offset:self.offset + self.size], _TYPES.get(self.type, np.uint8))
        return data.reshape(self.shape) if self.shape else data.reshape(())

    def dequantized(self, raw: bytes) -> np.ndarray:
        """Values of a constant: float16 widened to float32, quantized integers scaled by its (per-axis) scales and
        zero points, other integers (axes, paddings) as they are."""
        values = self.array(raw)
        if values.dtype in (np.float32, np.float16):
            return values.astype(np.float32)
        if self.scale is None:  # integers: axes, paddings, shapes
            return values
        zero = self.zero_point if self.zero_point is not None else np.zeros_like(self.scale, np.int64)
        view = [1] * values.ndim
        if self.scale.size > 1:
            view[self.axis] = -1
        return ((values.astype(np.float64) - zero.reshape(view)) * self.scale.reshape(view)).astype(np.float32)


def _chw(shape: tuple) -> tuple | None:
    """Our (C, H, W) of a TFLite tensor of batch 1: [1, H, W, C]; [1, N] -> N x 1 x 1; [1, A, B] -> A * B x 1 x 1,
    its values in TFLite's (row-major) order (detection heads: A anchors of B values)."""
    if len(shape) == 4 and shape[0] == 1:
        return (shape[3], shape[1], shape[2])
    if len(shape) == 2 and shape[0] == 1:
        return (shape[1], 1, 1)
    if len(shape) == 3 and shape[0] == 1:
        return (shape[1] * shape[2], 1, 1)
    return None


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one dimension: output ceil(size / stride), the odd pixel at the end."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _size(pair: tuple) -> int | list[int]:
    return int(pair[0]) if pair[0] == pair[1] else [int(pair[0]), int(pair[1])]


class _Reader:
    def __init__(self, path: Path, raw: bytes, model):
        import tflite
        self.tflite = tflite
        self.path, self.raw, self.model = path, raw, model
        self.graph = model.Subgraphs(0)
        self.op_names = _operator_names()
        self.tensors = [_Tensor(model, self.graph, i) for i in range(self.graph.TensorsLength())]
        self.constants: dict[int, np.ndarray] = {}  # tensor -> float32 values (weights, DEQUANTIZE of weights)
        self.layers: list[dict] = []
        self.weights: dict[str, np.ndarray] = {}
        self.producer: dict[int, str] = {}     # tensor -> the layer (our name) whose output it is
        self.ours: dict[str, tuple] = {}       # our layer -> its (C, H, W)
        self.flat: dict[int, str] = {}         # tensor -> layer: that layer's [1, H, W, C] flattened (H, W, C order)
        self.padded: dict[int, tuple] = {}     # tensor -> (layer, [top, bottom, left, right]): zero padding
        self.channel_padded: dict[int, tuple] = {}  # tensor -> (layer, before, after): zero channels added
        self.readers: dict[int, list[int]] = {}  # tensor -> the operators reading it
        self.names: set[str] = set()
        # A fully 8-bit model's own quantization, in the terms of our int8 plan: per layer output (scale, offset)
        # as QASYMM8 (TFLite's int8 zero point + 128: the same real values), per convolution its weights'
        # symmetric per-channel scales, per fully connected layer its weights' (scale, offset).
        self.scales: dict[str, list] = {}
        self.weight_scales: dict[str, list[float]] = {}
        self.dequantized_from: dict[int, int] = {}  # DEQUANTIZE output -> its stored input
        self.weight_tensor = -1
        self.input_name = ""
        self.fc_weights: dict[str, list] = {}
        self.index, self.op = -1, ""
        for i in range(self.graph.OperatorsLength()):
            for tensor in self.graph.Operators(i).InputsAsNumpy() if self.graph.Operators(i).InputsLength() else []:
                self.readers.setdefault(int(tensor), []).append(i)

    # --- helpers ---------------------------------------------------------------------------------------------

    def refuse(self, why: str) -> UserError:
        return UserError(f"{self.path}: operator {self.index} ({self.op}): {why}")

    def operator(self, index: int) -> tuple[str, object]:
        op = self.graph.Operators(index)
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = self.op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM '{(code.CustomCode() or b'').decode('utf-8', 'replace')}'"
        return name, op

    def options(self, op, kind: str):
        table = op.BuiltinOptions()
        if table is None:
            return None
        options = getattr(self.tflite, kind)()
        options.Init(table.Bytes, table.Pos)
        return options

    def inputs(self, op) -> list[int]:
        return [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []

    def outputs(self, op) -> list[int]:
        return [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []

    def constant(self, tensor: int) -> np.ndarray | None:
        if tensor < 0:
            return None
        if tensor not in self.constants and self.tensors[tensor].data is not None:
            try:
                self.constants[tensor] = self.tensors[tensor].dequantized(self.raw)
            except ValueError as err:
                raise self.refuse(str(err)) from None
        return self.constants.get(tensor)

    def required_constant(self, tensor: int, what: str) -> np.ndarray:
        value = self.constant(tensor)
        if value is None:
            raise self.refuse(f"the {what} ('{self.tensors[tensor].name}') must be a constant")
        return value

    def data(self, tensor: int) -> str:
        """Our layer whose output is this TFLite tensor."""
        name = self.tensors[tensor].name
        if tensor in self.padded:
            raise self.refuse(f"input '{name}' is zero-padded by a PAD operator: only a convolution reading it "
                              "alone can take that padding over")
        if tensor in self.channel_padded:
            raise self.refuse(f"input '{name}' is padded with zero channels: only an ADD can read that")
        if tensor in self.flat:
            raise self.refuse(f"input '{name}' is a [1, H, W, C] tensor flattened: only FULLY_CONNECTED can read it")
        if tensor not in self.producer:
            raise self.refuse(f"input '{name}' is not computed from the model's input (a constant?)")
        return self.producer[tensor]

    def is_data(self, tensor: int) -> bool:
        return tensor in self.producer or tensor in self.channel_padded

    def shape(self, tensor: int) -> tuple:
        return self.tensors[tensor].shape

    def chw(self, tensor: int) -> tuple:
        found = _chw(self.shape(tensor))
        if found is None:
            raise self.refuse(f"tensor '{self.tensors[tensor].name}' has shape {list(self.shape(tensor))}: "
                              "only [1, H, W, C] and [1, N] tensors are supported")
        return found

    def layer_name(self, tensor: int, fallback: str) -> str:
        """After the TFLite tensor it computes: the first of the converter's `;`-joined names."""
        text = self.tensors[tensor].name.split(";")[0]
        return unique(identifier(text, fallback), self.names)

    def add(self, entry: dict, inputs: list[str], tensor: int | None, chw: tuple | None = None,
            name: str | None = None) -> str:
        name = name or self.layer_name(tensor, entry["type"])
        self.layers.append({"name": name, **entry, "input": inputs})
        if tensor is not None:
            self.producer[tensor] = name
            self.record(name, tensor)
        self.ours[name] = chw if chw is not None else self.chw(tensor)
        return name

    def activation(self, code: int) -> str | None:
        if code not in _ACTIVATIONS:
            raise self.refuse(f"fused activation {_ACTIVATION_NAMES.get(code, code)} is not supported (NONE, RELU, "
                              "RELU6)")
        return _ACTIVATIONS[code]

    def then(self, name: str, activation: str | None, tensor: int) -> None:
        """A fused activation the layer kind cannot hold: a layer of its own after it."""
        if activation is None:
            return
        self.producer[tensor] = self.add({"type": activation}, [name], None, chw=self.ours[name],
                                         name=unique(f"{name}.{activation}", self.names))

    def window(self, options, source: str, kernel: tuple, dilation: tuple = (1, 1),
               extra: list[int] | None = None) -> dict:
        """kernel, stride and pad ([top, bottom, left, right]) of a convolution or pooling operator reading the
        layer `source` (`extra`: the zero padding of a PAD operator before it)."""
        stride = (options.StrideH(), options.StrideW())
        _, h, w = self.ours[source]
        if options.Padding() == self.tflite.Padding.SAME:
            extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
            pads = [*_same_pads(h, extent[0], stride[0]), *_same_pads(w, extent[1], stride[1])]
        else:
            pads = [0, 0, 0, 0]
        if extra:
            if any(pads):
                raise self.refuse("SAME padding after a PAD operator is not supported")
            pads = extra
        entry = {"kernel": _size(kernel)}
        if stride != (1, 1):
            entry["stride"] = _size(stride)
        if any(pads):
            entry["pad"] = pads[0] if len(set(pads)) == 1 else [int(p) for p in pads]
        return entry

    def weight_source(self, tensor: int) -> int:
        """The tensor holding a weight's stored values (through a DEQUANTIZE of it)."""
        return self.dequantized_from.get(tensor, tensor)

    def source(self, tensor: int) -> tuple[str, list[int] | None, tuple]:
        """A convolution's input: a layer, with the zero padding of a PAD operator it takes over."""
        if tensor in self.padded:
            layer, pads = self.padded[tensor]
            c, h, w = self.ours[layer]
            return layer, pads, (c, h, w)
        layer = self.data(tensor)
        return layer, None, self.ours[layer]

    # --- the convert map: one method per builtin operator ----------------------------------------------------

    def record(self, layer: str, tensor: int) -> None:
        """An 8-bit tensor's scale and zero point, as our plan's QASYMM8 (scale, offset)."""
        t = self.tensors[tensor]
        if t.type not in (3, 9) or t.scale is None:
            return
        if t.scale.size != 1:
            raise self.refuse(f"tensor '{t.name}' has {t.scale.size} scales: per-channel activations are not "
                              "supported (our 8-bit activations have one scale per tensor)")
        zero = int(t.zero_point[0]) if t.zero_point is not None else 0
        self.scales[layer] = [float(t.scale[0]), zero + 128 if t.type == 9 else zero]

    def weight_quantization(self, layer: str, tensor: int, filters: int, kind: str) -> None:
        t = self.tensors[tensor]
        if t.type not in (3, 9) or t.scale is None:
            return
        zero = np.zeros(t.scale.size, np.int64) if t.zero_point is None else t.zero_point.astype(np.int64)
        if kind == "conv":
            if t.type != 9 or zero.any():
                raise self.refuse(f"weights '{t.name}' are not symmetric int8 (our 8-bit convolutions take "
                                  "symmetric int8 weights, one scale per output channel)")
            self.weight_scales[layer] = [float(v) for v in np.broadcast_to(t.scale, (filters,))]
        elif t.scale.size == 1:
            self.fc_weights[layer] = [float(t.scale[0]), int(zero[0]) + (128 if t.type == 9 else 0)]
        else:
            self.fc_weights[layer] = [[float(v) for v in t.scale], [int(v) for v in zero]]  # per unit

    def _QUANTIZE(self, op) -> None:
        """The float input's quantization (a fully 8-bit model with a float interface): our int8 engine
        quantizes its input itself; any other re-quantization has no place in our plan."""
        (tensor,), (out,) = self.inputs(op), self.outputs(op)
        if self.tensors[tensor].type != 0 or self.producer.get(tensor) != self.input_name:
            raise self.refuse("re-quantizing a computed tensor is not supported (only the float input's "
                              "quantization)")
        self.producer[out] = self.input_name
        self.record(self.input_name, out)

    def _DEQUANTIZE(self, op) -> None:
        (tensor,), (out,) = self.inputs(op), self.outputs(op)
        value = self.constant(tensor)
        if value is not None:
            self.constants[out] = value  # float16 or 8-bit weights
            self.dequantized_from[out] = tensor
        elif self.tensors[tensor].type in (3, 9) and tensor in self.producer:
            self.producer[out] = self.producer[tensor]  # an 8-bit result read as float: our engine's last step
        else:
            raise self.refuse(f"dequantizing '{self.tensors[tensor].name}' is not supported")

    # Shape arithmetic (Keras's Flatten and squeeze-excitation Reshape compute their target shape at run time):
    # evaluated here, since every shape is fixed in the file. RESHAPE itself reads its output's shape.

    def _SHAPE(self, op) -> None:
        (tensor,), (out,) = self.inputs(op), self.outputs(op)
        self.constants[out] = np.array(self.shape(tensor), np.int64)

    def _STRIDED_SLICE(self, op) -> None:
        tensor, *rest = self.inputs(op)
        (out,) = self.outputs(op)
        value = self.constant(tensor)
        begin, end, strides = (self.constant(t) for t in rest[:3])
        options = self.options(op, "StridedSliceOptions")
        if value is None or begin is None or end is None or strides is None:
            raise self.refuse("slicing a computed tensor is not supported (only shape arithmetic on constants)")
        if options is not None and (options.EllipsisMask() or options.NewAxisMask()):
            raise self.refuse("ellipsis and new-axis masks are not supported")
        index = []
        for axis, (b, e, st) in enumerate(zip(begin.tolist(), end.tolist(), strides.tolist())):
            b = None if options is not None and options.BeginMask() >> axis & 1 else int(b)
            e = None if options is not None and options.EndMask() >> axis & 1 else int(e)
            if options is not None and options.ShrinkAxisMask() >> axis & 1:
                index.append(int(b or 0))
            else:
                index.append(slice(b, e, int(st)))
        self.constants[out] = np.asarray(value[tuple(index)])

    def _PACK(self, op) -> None:
        (out,) = self.outputs(op)
        values = [self.constant(t) for t in self.inputs(op)]
        if any(v is None for v in values):
            raise self.refuse("packing computed tensors is not supported (only shape arithmetic on constants)")
        options = self.options(op, "PackOptions")
        self.constants[out] = np.stack(values, axis=options.Axis() if options is not None else 0)

    def _CONV_2D(self, op) -> None:
        tensor_in, tensor_w, *rest = self.inputs(op)
        options = self.options(op, "Conv2DOptions")
        weight = self.required_constant(tensor_w, "kernel")  # O, H, W, I
        self.weight_tensor = self.weight_source(tensor_w)
        source, extra, (c, h, w) = self.source(tensor_in)
        if weight.ndim != 4 or weight.shape[3] != c:
            raise self.refuse(f"kernel of shape {list(weight.shape)} for {c} input channels (grouped convolutions "
                              "are not supported)")
        self.conv(op, source, extra, weight.transpose(0, 3, 1, 2), rest, options, groups=1)

    def _DEPTHWISE_CONV_2D(self, op) -> None:
        tensor_in, tensor_w, *rest = self.inputs(op)
        options = self.options(op, "DepthwiseConv2DOptions")
        weight = self.required_constant(tensor_w, "kernel")  # 1, H, W, C * multiplier
        self.weight_tensor = self.weight_source(tensor_w)
        source, extra, (c, h, w) = self.source(tensor_in)
        if weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[3] % c:
            raise self.refuse(f"depthwise kernel of shape {list(weight.shape)} for {c} input channels")
        self.conv(op, source, extra, weight[0].transpose(2, 0, 1)[:, None], rest, options, groups=c)

    def conv(self, op, source: str, extra, weight: np.ndarray, rest: list[int], options, groups: int) -> None:
        (out,) = self.outputs(op)
        dilation = (options.DilationHFactor(), options.DilationWFactor())
        entry = {"type": "conv", "filters": int(weight.shape[0])}
        if groups > 1:
            entry["groups"] = groups
        entry.update(self.window(options, source, tuple(weight.shape[2:]), dilation, extra))
        if dilation != (1, 1):
            entry["dilation"] = _size(dilation)
        activation = self.activation(options.FusedActivationFunction())
        if activation:
            entry["activation"] = activation
        bias = self.constant(rest[0]) if rest and rest[0] >= 0 else None
        name = self.add(entry, [source], out)
        self.weight_quantization(name, self.weight_tensor, int(weight.shape[0]), "conv")
        self.weights[f"{name}.weight"] = np.ascontiguousarray(weight, np.float32)
        self.weights[f"{name}.bias"] = (np.zeros(weight.shape[0], np.float32) if bias is None
                                        else np.ascontiguousarray(bias.ravel(), np.float32))

    def _PAD(self, op) -> None:
        tensor_in, tensor_pads, *_ = self.inputs(op)
        (out,) = self.outputs(op)
        pads = self.required_constant(tensor_pads, "padding").astype(np.int64)
        if len(self.shape(tensor_in)) != 4 or pads.shape != (4, 2) or pads.min() < 0 or pads[0].any():
            raise self.refuse(f"padding {pads.tolist()} of a {list(self.shape(tensor_in))} tensor is not supported")
        if len(self.inputs(op)) > 2 and self.inputs(op)[2] >= 0:
            value = self.constant(self.inputs(op)[2])
            if value is None or float(np.ravel(value)[0]) != 0.0:
                raise self.refuse("only zero padding is supported")
        source = self.data(tensor_in)
        spatial, channels = pads[1:3].any(), pads[3].any()
        readers = [self.operator(i)[0] for i in self.readers.get(out, [])]
        if spatial and not channels:
            if readers not in (["CONV_2D"], ["DEPTHWISE_CONV_2D"]):
                raise self.refuse(f"zero padding of height and width is supported only when a convolution alone "
                                  f"reads it (read by {', '.join(readers) or 'nothing'})")
            (top, bottom), (left, right) = pads[1].tolist(), pads[2].tolist()
            self.padded[out] = (source, [top, bottom, left, right])
        elif channels and not spatial:
            if not readers or any(r != "ADD" for r in readers):
                raise self.refuse(f"zero padding of channels is supported only when ADD operators read it (read by "
                                  f"{', '.join(readers) or 'nothing'})")
            self.channel_padded[out] = (source, int(pads[3][0]), int(pads[3][1]))
        else:
            raise self.refuse(f"padding {pads.tolist()}: height/width and channels at once is not supported")

    def pool(self, op, kind: str) -> None:
        (tensor_in,), (out,) = self.inputs(op), self.outputs(op)
        options = self.options(op, "Pool2DOptions")
        source = self.data(tensor_in)
        entry = {"type": kind, **self.window(options, source, (options.FilterHeight(), options.FilterWidth()))}
        activation = self.activation(options.FusedActivationFunction())
        name = self.add(entry, [source], out)
        self.then(name, activation, out)

    def _MAX_POOL_2D(self, op) -> None:
        self.pool(op, "maxpool")  # ACL leaves SAME padding out of the maximum, as TFLite does

    def _AVERAGE_POOL_2D(self, op) -> None:
        self.pool(op, "avgpool")  # SAME padding left out of the divisor: TFLite's rule and our default

    def _MEAN(self, op) -> None:
        tensor_in, tensor_axes = self.inputs(op)
        (out,) = self.outputs(op)
        axes = self.required_constant(tensor_axes, "axes").astype(np.int64).ravel()
        if len(self.shape(tensor_in)) != 4 or sorted(int(a) % 4 for a in axes) != [1, 2]:
            raise self.refuse(f"a mean over axes {axes.tolist()} is not supported (over height and width of a "
                              "[1, H, W, C] tensor only)")
        self.add({"type": "global_avgpool"}, [self.data(tensor_in)], out)

    def _FULLY_CONNECTED(self, op) -> None:
        tensor_in, tensor_w, *rest = self.inputs(op)
        (out,) = self.outputs(op)
        options = self.options(op, "FullyConnectedOptions")
        weight = self.required_constant(tensor_w, "weight matrix")
        if tensor_in in self.flat:
            source = self.flat[tensor_in]
        else:
            source = self.data(tensor_in)
        c, h, w = self.ours[source]
        if weight.ndim != 2 or weight.shape[1] != c * h * w:
            raise self.refuse(f"a weight matrix of shape {list(weight.shape)} for an input of {c * h * w} values")
        if h * w > 1:  # columns in TFLite's H, W, C order -> ours, C, H, W
            weight = weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)
        if _chw(self.shape(out)) != (weight.shape[0], 1, 1):
            raise self.refuse(f"output of shape {list(self.shape(out))} is not supported ([1, units] only)")
        entry = {"type": "fc", "units": int(weight.shape[0])}
        activation = self.activation(options.FusedActivationFunction()) if options is not None else None
        if activation:
            entry["activation"] = activation
        bias = self.constant(rest[0]) if rest and rest[0] >= 0 else None
        name = self.add(entry, [source], out)
        self.weight_quantization(name, self.weight_source(tensor_w), int(weight.shape[0]), "fc")
        self.weights[f"{name}.weight"] = np.ascontiguousarray(weight, np.float32)
        self.weights[f"{name}.bias"] = (np.zeros(weight.shape[0], np.float32) if bias is None
                                        else np.ascontiguousarray(bias.ravel(), np.float32))

    def _RESHAPE(self, op) -> None:
        tensor_in, *_ = self.inputs(op)
        (out,) = self.outputs(op)
        before, after = self.shape(tensor_in), self.shape(out)
        source = self.data(tensor_in)
        c, h, w = self.ours[source]
        if _chw(after) == (c, h, w) or (h == w == 1 and _chw(after) == (c, 1, 1)) or \
                (len(before) < 4 and len(after) < 4 and _chw(after) == (c, h, w)):
            self.producer[out] = source  # a relabelling: [1, 1, 1, C] <-> [1, C], [1, A, B] <-> [1, A * B]
        elif len(after) == 2 and after[0] == 1 and after[1] == c * h * w:
            self.flat[out] = source  # for a FULLY_CONNECTED layer, which reorders its weights instead
        elif len(after) == 3 and after[0] == 1 and after[1] * after[2] == c * h * w and len(before) == 4:
            self.add({"type": "flatten"}, [source], out)  # NHWC memory order, as TFLite's values lie
        else:
            raise self.refuse(f"reshaping {list(before)} to {list(after)} is not supported (only flattening, or "
                              "relabelling a [1, 1, 1, C] tensor)")

    _SQUEEZE = _RESHAPE

    def _SOFTMAX(self, op) -> None:
        (tensor_in,), (out,) = self.inputs(op), self.outputs(op)
        options = self.options(op, "SoftmaxOptions")
        source = self.data(tensor_in)
        c, h, w = self.ours[source]
        if h * w != 1 or (options is not None and options.Beta() != 1.0):
            raise self.refuse(f"softmax of a {list(self.shape(tensor_in))} tensor"
                              f"{'' if options is None else f' (beta {options.Beta()})'} is not supported (over the "
                              "channels of [1, C] or [1, 1, 1, C], beta 1)")
        self.add({"type": "softmax"}, [source], out)

    def _CONCATENATION(self, op) -> None:
        inputs, (out,) = self.inputs(op), self.outputs(op)
        options = self.options(op, "ConcatenationOptions")
        rank = len(self.shape(out))
        # Channels (the last axis); or the anchors of [1, A, B] tensors, which lie one after the other in memory:
        # a concatenation of our A * B vectors.
        along = options.Axis() % rank if rank else -1
        if _chw(self.shape(out)) is None or not (along == rank - 1 or (rank == 3 and along == 1)):
            raise self.refuse(f"concatenation along axis {options.Axis()} of {list(self.shape(out))} tensors is "
                              "not supported (channels, the last axis; or axis 1 of [1, A, B] tensors)")
        layers = [self.data(t) for t in inputs]
        entry = {"type": "concat"}
        activation = self.activation(options.FusedActivationFunction())
        name = self.add(entry, layers, out)
        self.then(name, activation, out)

    def unary(self, op, kind: str, **attrs) -> None:
        (tensor_in,), (out,) = self.inputs(op)[:1], self.outputs(op)
        self.add({"type": kind, **attrs}, [self.data(tensor_in)], out)

    def _RELU(self, op) -> None:
        self.unary(op, "relu")

    def _RELU6(self, op) -> None:
        self.unary(op, "relu6")

    def _LOGISTIC(self, op) -> None:
        self.unary(op, "sigmoid")

    def _HARD_SWISH(self, op) -> None:
        self.unary(op, "hardswish")

    def _LEAKY_RELU(self, op) -> None:
        self.unary(op, "leaky_relu", alpha=float(self.options(op, "LeakyReluOptions").Alpha()))

    def _PRELU(self, op) -> None:
        tensor_in, tensor_alpha = self.inputs(op)
        (out,) = self.outputs(op)
        c = self.chw(tensor_in)[0]
        alpha = self.required_constant(tensor_alpha, "slope")
        if alpha.size == 1 or np.all(alpha == alpha.ravel()[0]):
            return self.unary(op, "leaky_relu", alpha=float(alpha.ravel()[0]))
        if alpha.size != c or any(d != 1 for d in alpha.shape[:-1]):
            raise self.refuse(f"slopes of shape {list(alpha.shape)} are not supported (one, or one per channel)")
        name = self.add({"type": "prelu"}, [self.data(tensor_in)], out)
        self.weights[f"{name}.weight"] = np.ascontiguousarray(alpha.ravel(), np.float32)

    # --- element-wise arithmetic -------------------------------------------------------------------------------

    def _ADD(self, op) -> None:
        self.arithmetic(op, "add", self.options(op, "AddOptions"))

    def _MUL(self, op) -> None:
        self.arithmetic(op, "mul", self.options(op, "MulOptions"))

    def arithmetic(self, op, kind: str, options) -> None:
        a, b = self.inputs(op)
        (out,) = self.outputs(op)
        activation = self.activation(options.FusedActivationFunction()) if options is not None else None
        if self.is_data(a) and self.is_data(b):
            if kind == "add" and (a in self.channel_padded or b in self.channel_padded):
                name = self.padded_add(a, b, out)
            else:
                name = self.binary(a, b, out, kind, activation)
                activation = None if kind == "add" else activation
        else:
            data, value = (a, self.constant(b)) if self.is_data(a) else (b, self.constant(a))
            if value is None:
                self.data(a if not self.is_data(a) else b)  # refuses with the reason
            name = self.affine(data, value, out, kind)
        self.then(name, activation, out)

    def binary(self, a: int, b: int, out: int, kind: str, activation: str | None) -> str:
        la, lb = self.data(a), self.data(b)
        sa, sb = self.ours[la], self.ours[lb]
        if sa != sb and sa == (sb[0], 1, 1):
            la, lb, sa, sb = lb, la, sb, sa  # commutative: the per-channel one second
        if sb != sa and sb != (sa[0], 1, 1):
            raise self.refuse(f"inputs of shapes {list(self.shape(a))} and {list(self.shape(b))} are not supported "
                              "(equal, or the second one value per channel)")
        entry = {"type": kind}
        if kind == "add" and activation:
            entry["activation"] = activation
        return self.add(entry, [la, lb], out, chw=sa)

    def padded_add(self, a: int, b: int, out: int) -> str:
        """x padded with zero channels plus y: y's channels beside x's as they are, x added to the others
        (slices of y, an add and a concat: the same sums, no zeros computed)."""
        if a not in self.channel_padded:
            a, b = b, a
        source, before, after = self.channel_padded[a]
        other = self.data(b)
        c, h, w = self.ours[source]
        wide = self.ours[other]
        if wide != (before + c + after, h, w):
            raise self.refuse(f"a channel-padded {[1, h, w, before + c + after]} tensor added to a "
                              f"{list(self.shape(b))} one")
        base = self.layer_name(out, "add")
        pieces = []
        for start, end, role in ((0, before, "before"), (before, before + c, "sum"), (before + c, wide[0], "after")):
            if end <= start:
                continue
            part = other
            if (start, end) != (0, wide[0]):
                part = self.add({"type": "slice", "start": start, "end": end}, [other], None, chw=(end - start, h, w),
                                name=unique(f"{base}.{role}" if role != "sum" else f"{base}.slice", self.names))
            if role == "sum":
                part = self.add({"type": "add"}, [source, part], None, chw=(c, h, w),
                                name=unique(f"{base}.add", self.names))
            pieces.append(part)
        return self.add({"type": "concat"}, pieces, out, name=base, chw=wide)

    def affine(self, data: int, value: np.ndarray, out: int, kind: str) -> str:
        """A tensor plus or times a constant: one value for all channels (an `affine` layer) or one per channel
        (a `batchnorm` with unit variance and zero mean)."""
        source = self.data(data)
        c = self.ours[source][0]
        value = np.asarray(value, np.float64)
        if value.size == 1:
            vector = np.full(c, value.ravel()[0])
        elif value.size == c and value.shape[-1] == c:
            vector = value.ravel()
        else:
            raise self.refuse(f"a constant of shape {list(value.shape)} is not supported (a scalar or one value per "
                              "channel)")
        scale, shift = (np.ones(c), vector) if kind == "add" else (vector, np.zeros(c))
        entry, arrays = scale_shift(scale, shift)
        name = self.add(entry, [source], out)
        self.weights.update({f"{name}.{role}": array for role, array in arrays.items()})
        return name


SUPPORTED = ", ".join(name[1:] for name in dir(_Reader) if name.startswith("_") and name[1].isupper())


def _needed(reader: _Reader, output: int) -> list[int]:
    """The operators the output depends on, in the file's (topological) order."""
    made_by = {}
    for i in range(reader.graph.OperatorsLength()):
        for tensor in reader.outputs(reader.graph.Operators(i)):
            made_by[tensor] = i
    wanted, stack = set(), [output]
    while stack:
        tensor = stack.pop()
        if tensor in made_by and made_by[tensor] not in wanted:
            wanted.add(made_by[tensor])
            stack.extend(t for t in reader.inputs(reader.graph.Operators(made_by[tensor])) if t >= 0)
    return sorted(wanted)


def _printable(text: str, limit: int = 120) -> str:
    """A string from the model file as it may appear in a one-line comment: no line breaks or control characters."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _shorten(layers: list[dict], weights: dict[str, np.ndarray], keep: set[str], *by_layer: dict) -> None:
    """Drops the scope the scoped layer names share (Keras's `model_1.model.`), when the names stay distinct."""
    names = [layer["name"] for layer in layers]
    scoped = [n.split(".")[:-1] for n in names if "." in n]
    if not scoped:
        return
    common = 0
    while common < len(scoped[0]) and all(s[common:common + 1] == [scoped[0][common]] for s in scoped):
        common += 1
    if not common:
        return
    prefix = ".".join(scoped[0][:common]) + "."
    rename = {n: n[len(prefix):] if n.startswith(prefix) else n for n in names}
    if len(set(rename.values())) != len(names) or set(rename.values()) & keep:
        return
    for layer in layers:
        layer["name"] = rename[layer["name"]]
        layer["input"] = [rename.get(i, i) for i in layer["input"]]
    for key in list(weights):
        layer, role = key.rsplit(".", 1)
        weights[f"{rename[layer]}.{role}"] = weights.pop(key)
    for table in by_layer:
        for key in list(table):
            table[rename.get(key, key)] = table.pop(key)


def _read(path: Path):
    import tflite
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(raw) < 8 or not tflite.Model.ModelBufferHasIdentifier(raw, 0):
        raise UserError(f"{path}: not a TFLite model (no 'TFL3' flatbuffer identifier)")
    try:
        model = tflite.Model.GetRootAsModel(raw, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        model.Subgraphs(0).TensorsLength()
    except Exception as err:  # noqa: BLE001 - a damaged flatbuffer raises whatever its accessors hit
        raise UserError(f"{path}: not a readable TFLite model: {err}") from None
    return raw, model


def load_tflite(path: Path, name: str, output: str | None = None, preprocess: str = "none") -> ImportedModel:
    path = Path(path)
    raw, model = _read(path)
    reader = _Reader(path, raw, model)
    graph = reader.graph
    inputs = [int(i) for i in graph.InputsAsNumpy()] if graph.InputsLength() else []
    if len(inputs) != 1:
        raise UserError(f"{path}: the model has {len(inputs)} inputs; the engine takes one")
    tensor_in = reader.tensors[inputs[0]]
    if tensor_in.type != 0:
        raise UserError(f"{path}: input '{tensor_in.name}' is {_TYPE_NAMES.get(tensor_in.type, tensor_in.type)}; "
                        "the float importer takes a FLOAT32 input")
    if len(tensor_in.shape) != 4 or tensor_in.shape[0] != 1 or min(tensor_in.shape) < 1:
        raise UserError(f"{path}: input '{tensor_in.name}' has shape {list(tensor_in.shape)}; the engine takes one "
                        "[1, H, W, C] image")
    outputs = {reader.tensors[int(i)].name: int(i) for i in graph.OutputsAsNumpy()}
    if output is None and len(outputs) != 1:
        raise UserError(f"{path}: the model has {len(outputs)} outputs ({', '.join(outputs)}); the engine computes "
                        "one: choose it with --output-tensor NAME")
    computed = {t.name: t.index for t in reader.tensors if t.data is None}  # any tensor an operator computes
    if output is not None and output not in outputs and output not in computed:
        raise UserError(f"{path}: --output-tensor {_printable(output)}: the model has no tensor of that name "
                        f"(outputs: {', '.join(outputs)})")
    output = output or next(iter(outputs))
    tensor_out = outputs.get(output, computed.get(output))
    input_name = identifier(tensor_in.name, "data")
    reader.names.add(input_name)
    reader.input_name = input_name
    reader.producer[inputs[0]] = input_name
    reader.ours[input_name] = _chw(tensor_in.shape)
    for index in _needed(reader, tensor_out):
        reader.index = index
        reader.op, op = reader.operator(index)
        handler = getattr(reader, f"_{reader.op}", None)
        if handler is None:
            raise reader.refuse(f"this operator is not supported (supported: {SUPPORTED})")
        handler(op)
    if tensor_out not in reader.producer or reader.producer[tensor_out] == input_name:
        raise UserError(f"{path}: output '{output}' is not computed by a layer the engine runs")
    if reader.producer[tensor_out] != reader.layers[-1]["name"]:
        raise UserError(f"{path}: output '{output}' is not computed by the model's last operator")
    out_shape = reader.shape(tensor_out)
    if _chw(out_shape) is None:
        raise UserError(f"{path}: output '{output}' has shape {list(out_shape)}: only [1, H, W, C] and [1, N] "
                        "outputs are supported")
    _shorten(reader.layers, reader.weights, {input_name}, reader.scales, reader.weight_scales, reader.fc_weights)
    quantization = None
    if reader.scales:
        quantization = {"source": f"{path.name}: the scales and zero points of its 8-bit tensors",
                        "tensors": reader.scales, "weight_scales": reader.weight_scales,
                        "fc_weights": reader.fc_weights}
    shape = _chw(tensor_in.shape)
    description = _printable((model.Description() or b"").decode("utf-8", "replace").strip())
    c, h, w = _chw(out_shape)
    return ImportedModel(
        name=name, input_shape=shape, layers=reader.layers, weights=reader.weights, input_name=input_name,
        preprocess=preprocess_for(preprocess, shape),
        source=f"TFLite: {_printable(str(path), 1000)} (schema version {model.Version()}"
               f"{', ' + description if description else ''})",
        description=f"{path.stem}, output '{output}', imported from TFLite",
        quantization=quantization,
        notes=[f"Input '{_printable(tensor_in.name)}' {list(tensor_in.shape)} NHWC is read as NCHW {[1, *shape]}; "
               f"output '{_printable(output)}' {list(out_shape)} is written as (C, H, W) = {[c, h, w]}",
               f"Preprocessing: {preprocess}" + (" (not recorded in TFLite files: say it with --preprocess)"
                                                 if preprocess == "none" else "")])
