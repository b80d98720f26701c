"""A peer network written as a TensorFlow Lite flatbuffer, with the schema bindings of the `tflite` PyPI package.

Writing the flatbuffer directly keeps TensorFlow (hundreds of MB) out of the set-up. The graph is what TF's own
converter makes of such a network: NHWC activations, OHWI filters, ReLU fused into CONV_2D, global average
pooling as MEAN over height and width, SOFTMAX over channels. Caffe's rounded-up pooling needs no explicit
padding when the windows divide the input exactly (SqueezeNet's do: 113 -> 56 -> 28 -> 14 in v1.1); otherwise a
PAD/PADV2 op adds the missing rows and columns, which XNNPACK may leave to TFLite's own kernels.
"""

from __future__ import annotations

import numpy as np

from bench.peers.network import Layer, Network
from neoncc.ir.shapes import same_padding

try:
    import flatbuffers
    import tflite
except ImportError:   # reported by write(); requirements.txt lists them
    flatbuffers = tflite = None

BUFFER_ALIGNMENT = 16   # TF's converter aligns constant buffers so kernels may read them with vector loads
SCHEMA_VERSION = 3
LOWEST_FLOAT = float(np.finfo(np.float32).min)
_TENSOR_TYPES = {"<f4": 0, "<i4": 2}   # TensorType.FLOAT32, INT32 (numbers fixed by the schema)


class _Writer:
    """Collects tensors, buffers and operators, then serialises them in flatbuffer order (children first)."""

    def __init__(self):
        self.tensors: list[tuple[str, list[int], int, int]] = []   # (name, shape, buffer index, TensorType)
        self.buffers: list[bytes] = [b""]                      # buffer 0: the empty sentinel the schema wants
        self.opcodes: list[int] = []
        self.operators: list[tuple[int, list[int], list[int], int, object]] = []

    def tensor(self, name: str, shape: list[int], data: np.ndarray | None = None) -> int:
        """A float32 activation, or a constant (float32 or int32) when data is given."""
        buffer, kind = 0, tflite.TensorType.FLOAT32
        if data is not None:
            kind = _TENSOR_TYPES[np.dtype(data.dtype).str]
            self.buffers.append(np.ascontiguousarray(data).tobytes())
            buffer = len(self.buffers) - 1
        self.tensors.append((name, [int(d) for d in shape], buffer, kind))
        return len(self.tensors) - 1

    def operator(self, code: int, inputs: list[int], outputs: list[int], options_type: int = 0,
                 options=None) -> None:
        """options is a function(builder) -> table offset, called while serialising."""
        if code not in self.opcodes:
            self.opcodes.append(code)
        self.operators.append((self.opcodes.index(code), inputs, outputs, options_type, options))

    def serialise(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        b = flatbuffers.Builder(1 << 20)
        buffers = [self._buffer(b, data) for data in self.buffers]
        tensors = [self._tensor(b, *t) for t in self.tensors]
        operators = [self._operator(b, *op) for op in self.operators]
        opcodes = [self._opcode(b, code) for code in self.opcodes]
        name = b.CreateString("main")
        subgraph_vectors = (_int_vector(b, inputs), _int_vector(b, outputs), _offsets(b, tensors),
                            _offsets(b, operators))
        tflite.SubGraphStart(b)
        tflite.SubGraphAddInputs(b, subgraph_vectors[0])
        tflite.SubGraphAddOutputs(b, subgraph_vectors[1])
        tflite.SubGraphAddTensors(b, subgraph_vectors[2])
        tflite.SubGraphAddOperators(b, subgraph_vectors[3])
        tflite.SubGraphAddName(b, name)
        subgraph = tflite.SubGraphEnd(b)
        model_vectors = (_offsets(b, opcodes), _offsets(b, [subgraph]), _offsets(b, buffers))
        text = b.CreateString(description)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, SCHEMA_VERSION)
        tflite.ModelAddOperatorCodes(b, model_vectors[0])
        tflite.ModelAddSubgraphs(b, model_vectors[1])
        tflite.ModelAddBuffers(b, model_vectors[2])
        tflite.ModelAddDescription(b, text)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _buffer(b, data: bytes) -> int:
        vector = None
        if data:
            b.StartVector(1, len(data), BUFFER_ALIGNMENT)
            b.head -= len(data)
            b.Bytes[b.head:b.head + len(data)] = data
            vector = b.EndVector(len(data))
        tflite.BufferStart(b)
        if vector is not None:
            tflite.BufferAddData(b, vector)
        return tflite.BufferEnd(b)

    @staticmethod
    def _tensor(b, name: str, shape: list[int], buffer: int, kind: int) -> int:
        name_offset, shape_offset = b.CreateString(name), _int_vector(b, shape)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape_offset)
        tflite.TensorAddType(b, kind)
        tflite.TensorAddBuffer(b, buffer)
        tflite.TensorAddName(b, name_offset)
        return tflite.TensorEnd(b)

    @staticmethod
    def _operator(b, opcode_index: int, inputs: list[int], outputs: list[int], options_type: int, options) -> int:
        options_offset = options(b) if options else None
        input_offset, output_offset = _int_vector(b, inputs), _int_vector(b, outputs)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, opcode_index)
        tflite.OperatorAddInputs(b, input_offset)
        tflite.OperatorAddOutputs(b, output_offset)
        if options_offset is not None:
            tflite.OperatorAddBuiltinOptionsType(b, options_type)
            tflite.OperatorAddBuiltinOptions(b, options_offset)
        return tflite.OperatorEnd(b)

    @staticmethod
    def _opcode(b, code: int) -> int:
        tflite.OperatorCodeStart(b)
        # Readers before schema 2.4 look only at the int8 field; newer ones take the larger of the two.
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        return tflite.OperatorCodeEnd(b)


def _int_vector(b, values: list[int]) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype="<i4"))


def _offsets(b, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector(len(offsets))


def _nhwc(shape: tuple[int, int, int]) -> list[int]:
    c, h, w = shape
    return [1, h, w, c]


def _options(start, end, **fields):
    """A builtin-options table writer: start/end and Add<Field> functions of one tflite options class."""
    def write(b):
        start(b)
        for add, value in fields.values():
            add(b, value)
        return end(b)
    return write


def write(network: Network) -> bytes:
    """The network as a .tflite flatbuffer (float32, batch 1, NHWC)."""
    if tflite is None:
        raise ImportError("the TFLite peer needs the `tflite` and `flatbuffers` Python packages "
                          "(requirements.txt; scripts/setup installs it)")
    w = _Writer()
    ids = {network.input_name: w.tensor(network.input_name, _nhwc(network.input_shape))}
    for layer in network.layers:
        ids[layer.name] = _LAYERS[layer.kind](w, layer, [ids[t] for t in layer.inputs])
    return w.serialise([ids[network.input_name]], [ids[network.output]],
                       f"neoncc peer export of {network.name}")


def _window_padding(w: _Writer, layer: Layer, source: int, fill: float) -> tuple[int, int]:
    """(input tensor id, Padding enum) for a windowed layer: SAME or VALID when they give the layer's exact
    padding, else an explicit PAD (zeros) / PADV2 (fill) in front and VALID. SAME pads convolutions with zeros
    and lets max pooling ignore the padding, which is what `fill` asks for in both cases; Caffe's rounding up
    usually is SAME (SqueezeNet v1.1's 56 -> 28 -> 14 pools pad one row and column at the end)."""
    (c, h, wd), (kh, kw), (sh, sw) = layer.input_shapes[0], layer.kernel, layer.stride
    extra_h, extra_w = layer.extra_rows_cols()
    top, bottom, left, right = layer.pad
    pads = (top, bottom + extra_h, left, right + extra_w)
    if not any(pads):
        return source, tflite.Padding.VALID
    if pads == (*same_padding(h, kh, sh), *same_padding(wd, kw, sw)):
        return source, tflite.Padding.SAME
    shape = [1, h + pads[0] + pads[1], wd + pads[2] + pads[3], c]
    padded = w.tensor(f"{layer.name}/pad", shape)
    paddings = w.tensor(f"{layer.name}/paddings", [4, 2],
                        np.array([[0, 0], pads[:2], pads[2:], [0, 0]], dtype="<i4"))
    if fill == 0.0:
        w.operator(tflite.BuiltinOperator.PAD, [source, paddings], [padded])
    else:
        value = w.tensor(f"{layer.name}/pad_value", [], np.array(fill, dtype="<f4"))
        w.operator(tflite.BuiltinOperator.PADV2, [source, paddings, value], [padded])
    return padded, tflite.Padding.VALID


def _conv(w: _Writer, layer: Layer, inputs: list[int]) -> int:
    source, pad = _window_padding(w, layer, inputs[0], 0.0)
    ohwi = layer.weight.transpose(0, 2, 3, 1)
    filters = w.tensor(f"{layer.name}/weights", list(ohwi.shape), ohwi.astype("<f4"))
    bias = w.tensor(f"{layer.name}/bias", list(layer.bias.shape), layer.bias.astype("<f4"))
    output = w.tensor(layer.name, _nhwc(layer.shape))
    activation = tflite.ActivationFunctionType.RELU if layer.relu else tflite.ActivationFunctionType.NONE
    w.operator(tflite.BuiltinOperator.CONV_2D, [source, filters, bias], [output], tflite.BuiltinOptions.Conv2DOptions,
               _options(tflite.Conv2DOptionsStart, tflite.Conv2DOptionsEnd,
                        padding=(tflite.Conv2DOptionsAddPadding, pad),
                        stride_w=(tflite.Conv2DOptionsAddStrideW, layer.stride[1]),
                        stride_h=(tflite.Conv2DOptionsAddStrideH, layer.stride[0]),
                        activation=(tflite.Conv2DOptionsAddFusedActivationFunction, activation)))
    return output


def _pool(w: _Writer, layer: Layer, inputs: list[int]) -> int:
    is_max = layer.kind == "maxpool"
    source, pad = _window_padding(w, layer, inputs[0], LOWEST_FLOAT if is_max else 0.0)
    output = w.tensor(layer.name, _nhwc(layer.shape))
    code = tflite.BuiltinOperator.MAX_POOL_2D if is_max else tflite.BuiltinOperator.AVERAGE_POOL_2D
    w.operator(code, [source], [output], tflite.BuiltinOptions.Pool2DOptions,
               _options(tflite.Pool2DOptionsStart, tflite.Pool2DOptionsEnd,
                        padding=(tflite.Pool2DOptionsAddPadding, pad),
                        stride_w=(tflite.Pool2DOptionsAddStrideW, layer.stride[1]),
                        stride_h=(tflite.Pool2DOptionsAddStrideH, layer.stride[0]),
                        filter_w=(tflite.Pool2DOptionsAddFilterWidth, layer.kernel[1]),
                        filter_h=(tflite.Pool2DOptionsAddFilterHeight, layer.kernel[0])))
    return output


def _global_avgpool(w: _Writer, layer: Layer, inputs: list[int]) -> int:
    axes = w.tensor(f"{layer.name}/axes", [2], np.array([1, 2], dtype="<i4"))
    output = w.tensor(layer.name, _nhwc(layer.shape))
    w.operator(tflite.BuiltinOperator.MEAN, [inputs[0], axes], [output], tflite.BuiltinOptions.ReducerOptions,
               _options(tflite.ReducerOptionsStart, tflite.ReducerOptionsEnd,
                        keep_dims=(tflite.ReducerOptionsAddKeepDims, True)))
    return output


def _concat(w: _Writer, layer: Layer, inputs: list[int]) -> int:
    output = w.tensor(layer.name, _nhwc(layer.shape))
    w.operator(tflite.BuiltinOperator.CONCATENATION, inputs, [output], tflite.BuiltinOptions.ConcatenationOptions,
               _options(tflite.ConcatenationOptionsStart, tflite.ConcatenationOptionsEnd,
                        axis=(tflite.ConcatenationOptionsAddAxis, 3)))
    return output


def _softmax(w: _Writer, layer: Layer, inputs: list[int]) -> int:
    output = w.tensor(layer.name, _nhwc(layer.shape))
    w.operator(tflite.BuiltinOperator.SOFTMAX, inputs, [output], tflite.BuiltinOptions.SoftmaxOptions,
               _options(tflite.SoftmaxOptionsStart, tflite.SoftmaxOptionsEnd,
                        beta=(tflite.SoftmaxOptionsAddBeta, 1.0)))
    return output


_LAYERS = {"conv": _conv, "maxpool": _pool, "avgpool": _pool, "global_avgpool": _global_avgpool,
           "concat": _concat, "softmax": _softmax}
