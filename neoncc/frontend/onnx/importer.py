"""ONNX model -> ImportedModel: CNNs as PyTorch's exporters write them (the TorchScript one and the default
torch.export one), e.g. SqueezeNet: Conv + Relu, ceil-mode MaxPool, Concat, Dropout, GlobalAveragePool or
ReduceMean over H and W, Flatten or Reshape, Softmax.

Tensors are (1, C, H, W); ONNX's shape inference gives every tensor's shape, which is what decides whether a
Flatten/Reshape is a mere relabelling of a (C, 1, 1) tensor (dropped) or a real reshape (refused). Layers are
named after their weights (`fire2.squeeze1x1.weight` -> `fire2.squeeze1x1`), otherwise after the node.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from neoncc.errors import UserError
from neoncc.frontend.emit import ImportedModel, identifier, unique
from neoncc.frontend.emit import preprocess as preprocess_for

SUPPORTED = ("Conv, Relu, MaxPool, AveragePool, GlobalAveragePool, ReduceMean (over H, W), Concat (channels), "
             "Dropout, Identity, Flatten/Reshape/Squeeze of a (C, 1, 1) tensor, Softmax")


class _Reader:
    def __init__(self, path: Path, model: onnx.ModelProto):
        self.path, self.graph = path, model.graph
        self.opset = _opset(model)
        self.constants = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.shapes = {v.name: _dims(v) for v in [*self.graph.input, *self.graph.value_info, *self.graph.output]}
        self.layers: list[dict] = []
        self.weights: dict[str, np.ndarray] = {}
        self.producer: dict[str, str] = {}  # ONNX tensor -> the layer (our name) whose output it is
        self.names: set[str] = set()

    def refuse(self, node, why: str) -> UserError:
        return UserError(f"{self.path}: node '{node.name or node.output[0]}' ({node.op_type}): {why}")

    def read(self) -> None:
        for node in self.graph.node:
            if node.domain not in ("", "ai.onnx"):
                raise self.refuse(node, f"operators of domain '{node.domain}' are not supported")
            handler = getattr(self, f"_{node.op_type}", None)
            if handler is None:
                raise self.refuse(node, f"this operator is not supported (supported: {SUPPORTED})")
            handler(node, _attributes(node))

    # --- helpers ---------------------------------------------------------------------------------------------

    def data_input(self, node, index: int = 0) -> str:
        tensor = node.input[index]
        if tensor not in self.producer:
            raise self.refuse(node, f"input '{tensor}' is not computed from the model's input (a constant?)")
        return self.producer[tensor]

    def constant(self, node, index: int, default=None):
        if len(node.input) <= index or not node.input[index]:
            return default
        if node.input[index] not in self.constants:
            raise self.refuse(node, f"input '{node.input[index]}' must be a constant")
        return self.constants[node.input[index]]

    def shape(self, tensor: str) -> tuple:
        return self.shapes.get(tensor, ())

    def add(self, node, entry: dict, inputs: list[str], name: str | None = None) -> str:
        name = unique(name or identifier(_module_path(node), node.op_type.lower()), self.names)
        self.layers.append({"name": name, **entry, "input": inputs})
        self.producer[node.output[0]] = name
        return name

    def alias(self, node) -> None:
        """An operator that changes nothing the engine sees: its output is its input."""
        self.producer[node.output[0]] = self.data_input(node)

    @staticmethod
    def vector_like(dims: tuple) -> bool:
        """(1, C), (1, C, 1, 1): one value per channel, however ONNX labels the axes."""
        return len(dims) >= 2 and dims[1] is not None and all(d == 1 for d in (dims[0], *dims[2:]))

    # --- operators -------------------------------------------------------------------------------------------

    def _Conv(self, node, attrs: dict) -> None:
        weight = self.constant(node, 1)
        if weight is None or weight.ndim != 4:
            raise self.refuse(node, "only 2-D convolutions with constant weights are supported")
        if attrs.get("group", 1) != 1:
            raise self.refuse(node, f"grouped convolution (group {attrs['group']}) is not supported")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise self.refuse(node, f"dilated convolution (dilations {attrs['dilations']}) is not supported")
        bias = self.constant(node, 2, np.zeros(weight.shape[0], np.float32))
        kernel = tuple(attrs.get("kernel_shape", weight.shape[2:]))
        entry = {"type": "conv", "filters": int(weight.shape[0]), **self.window(node, attrs, kernel)}
        base = node.input[1].removesuffix(".weight") if node.input[1].endswith(".weight") else node.name
        name = self.add(node, entry, [self.data_input(node)], identifier(base, "conv"))
        self.weights[f"{name}.weight"], self.weights[f"{name}.bias"] = weight, bias

    def window(self, node, attrs: dict, kernel: tuple) -> dict:
        """kernel, stride and pad of a Conv or pooling node, ONNX pads [t, l, b, r] -> ours [t, b, l, r]."""
        if len(kernel) != 2:
            raise self.refuse(node, f"{len(kernel)}-D windows are not supported (2-D only)")
        stride = tuple(attrs.get("strides", [1, 1]))
        auto_pad = attrs.get("auto_pad", b"NOTSET").decode()
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            top, left, bottom, right = self.same_pads(node, kernel, stride, auto_pad == "SAME_UPPER")
        elif auto_pad in ("NOTSET", "VALID"):
            top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0]) if auto_pad == "NOTSET" else [0, 0, 0, 0]
        else:
            raise self.refuse(node, f"auto_pad {auto_pad} is not supported")
        entry = {"kernel": _size(kernel)}
        if stride != (1, 1):
            entry["stride"] = _size(stride)
        if any((top, left, bottom, right)):
            entry["pad"] = int(top) if len({top, left, bottom, right}) == 1 else [int(p) for p in
                                                                                 (top, bottom, left, right)]
        return entry

    def same_pads(self, node, kernel: tuple, stride: tuple, upper: bool) -> list[int]:
        dims = self.shape(node.input[0])
        if len(dims) != 4 or None in dims:
            raise self.refuse(node, "auto_pad SAME needs the input's shape, which shape inference did not find")
        pads = []
        for size, k, s in zip(dims[2:], kernel, stride):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if upper else (large, small))
        (top, bottom), (left, right) = pads
        return [top, left, bottom, right]

    def _Constant(self, node, attrs: dict) -> None:
        value = attrs.get("value")
        self.constants[node.output[0]] = (numpy_helper.to_array(value) if value is not None
                                          else np.array(next(iter(attrs.values()))))

    def _Relu(self, node, attrs: dict) -> None:
        self.add(node, {"type": "relu"}, [self.data_input(node)])

    def _MaxPool(self, node, attrs: dict) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise self.refuse(node, "the indices output is not supported")
        self.pool(node, attrs, "maxpool")

    def _AveragePool(self, node, attrs: dict) -> None:
        if any(attrs.get("pads", [0])) or attrs.get("auto_pad", b"NOTSET") != b"NOTSET":
            raise self.refuse(node, "average pooling with padding is not supported")
        self.pool(node, attrs, "avgpool")

    def pool(self, node, attrs: dict, kind: str) -> None:
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise self.refuse(node, f"dilated pooling (dilations {attrs['dilations']}) is not supported")
        entry = {"type": kind, **self.window(node, attrs, tuple(attrs["kernel_shape"]))}
        entry["rounding"] = "ceil" if attrs.get("ceil_mode", 0) else "floor"
        self.add(node, entry, [self.data_input(node)])

    def _GlobalAveragePool(self, node, attrs: dict) -> None:
        self.add(node, {"type": "global_avgpool"}, [self.data_input(node)])

    def _ReduceMean(self, node, attrs: dict) -> None:
        """The mean over H and W (torch.export's spelling of adaptive_avg_pool2d(x, 1)) is global pooling."""
        axes = attrs.get("axes")
        if axes is None:
            axes = self.constant(node, 1)
        rank = len(self.shape(node.input[0]))
        if rank != 4 or axes is None or sorted(int(a) % 4 for a in np.ravel(axes)) != [2, 3]:
            raise self.refuse(node, f"only a mean over height and width of a 4-D tensor is supported "
                                    f"(axes {None if axes is None else np.ravel(axes).tolist()})")
        self._GlobalAveragePool(node, attrs)

    def _Concat(self, node, attrs: dict) -> None:
        rank = len(self.shape(node.input[0])) or 4
        if attrs["axis"] % rank != 1:
            raise self.refuse(node, f"concatenation along axis {attrs['axis']} is not supported (channels only)")
        self.add(node, {"type": "concat"}, [self.data_input(node, i) for i in range(len(node.input))])

    def _Dropout(self, node, attrs: dict) -> None:
        """Inverted dropout (PyTorch's, ONNX's): nothing to do at inference, kept in the YAML for the reader."""
        if len(node.output) > 1 and node.output[1]:
            raise self.refuse(node, "the mask output is not supported")
        if bool(np.ravel(self.constant(node, 2, False))[0]):
            raise self.refuse(node, "dropout in training mode is not supported")
        rate = attrs.get("ratio", self.constant(node, 1, 0.5))
        self.add(node, {"type": "dropout", "rate": round(float(np.ravel(rate)[0]), 6)}, [self.data_input(node)])

    def _Identity(self, node, attrs: dict) -> None:
        self.alias(node)

    def _Flatten(self, node, attrs: dict) -> None:
        before, after = self.shape(node.input[0]), self.shape(node.output[0])
        if not (self.vector_like(before) and self.vector_like(after) and before[1] == after[1]):
            raise self.refuse(node, f"reshaping {list(before)} to {list(after)} is not supported (only between "
                                    "(1, C, 1, 1) and (1, C), e.g. after global pooling)")
        self.alias(node)

    _Reshape = _Squeeze = _Flatten

    def _Softmax(self, node, attrs: dict) -> None:
        dims = self.shape(node.input[0])
        axis = attrs.get("axis", 1 if self.opset < 13 else -1)
        if not self.vector_like(dims) or axis % len(dims) != 1:
            raise self.refuse(node, f"softmax along axis {axis} of a {list(dims)} tensor is not supported (along "
                                    "the channels of a (1, C) or (1, C, 1, 1) tensor only)")
        self.add(node, {"type": "softmax"}, [self.data_input(node)])


def _module_path(node) -> str:
    """The PyTorch module a TorchScript-exported node came from: `/features/features.2/MaxPool` -> `features.2`
    (each scope repeats its parent's name; the operator's name is dropped). Other names are kept as they are."""
    parts = [part for part in node.name.split("/") if part]
    if len(parts) < 2 or not node.name.startswith("/"):
        return node.name
    parts = [part for part, after in zip(parts, parts[1:] + [""]) if not after.startswith(part + ".")]
    if len(parts) > 1 and parts[-1].split("_")[0] == node.op_type:
        parts.pop()
    return "/".join(parts)


def _dims(value) -> tuple:
    shape = value.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim)


def _opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _attributes(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _size(pair: tuple) -> int | list[int]:
    return int(pair[0]) if pair[0] == pair[1] else [int(pair[0]), int(pair[1])]


def _read(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(path)
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror or err}") from None
    except Exception as err:  # protobuf's DecodeError and onnx's own, depending on versions
        raise UserError(f"{path}: not an ONNX model: {err}") from None


def _graph_input(path: Path, model: onnx.ModelProto, input_shape: tuple | None) -> onnx.ValueInfoProto:
    """The one real input (initializers may be listed as inputs too), with its shape fixed to batch 1."""
    constants = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in constants]
    if len(inputs) != 1:
        raise UserError(f"{path}: the model has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); "
                        "the engine takes one")
    value = inputs[0]
    if value.type.tensor_type.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
        raise UserError(f"{path}: input '{value.name}' is not a float tensor")
    dims = _dims(value)
    if input_shape:
        dims = (1, *input_shape)
    if len(dims) != 4 or None in dims[1:]:
        raise UserError(f"{path}: input '{value.name}' has shape {[d or '?' for d in dims]}; give a fixed "
                        "C,H,W with --input-shape")
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for size in (1, *dims[1:]):
        shape.dim.add().dim_value = size
    return value


def load_onnx(path: Path, name: str, input_shape: tuple[int, int, int] | None = None,
              preprocess: str = "none") -> ImportedModel:
    path = Path(path)
    model = _read(path)
    value = _graph_input(path, model, input_shape)
    try:
        model = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as err:  # noqa: BLE001 - onnx raises several types, all meaning "this model is inconsistent"
        raise UserError(f"{path}: ONNX shape inference failed: {err}") from None
    reader = _Reader(path, model)
    input_name = identifier(value.name, "data")
    reader.producer[value.name] = input_name
    reader.names.add(input_name)
    reader.read()
    outputs = [v.name for v in model.graph.output]
    if len(outputs) != 1:
        raise UserError(f"{path}: the model has {len(outputs)} outputs; the engine computes one")
    if not reader.layers or reader.producer.get(outputs[0]) != reader.layers[-1]["name"]:
        raise UserError(f"{path}: output '{outputs[0]}' is not computed by the model's last operator")
    shape = tuple(int(d) for d in _dims(value)[1:])
    producer = model.producer_name + (f" {model.producer_version}" if model.producer_version else "")
    return ImportedModel(
        name=name, input_shape=shape, layers=reader.layers, weights=reader.weights, input_name=input_name,
        preprocess=preprocess_for(preprocess, shape),
        source=f"ONNX: {path} (opset {reader.opset}{', by ' + producer if producer else ''})",
        description=f"{model.graph.name or name}, imported from ONNX",
        notes=[f"Preprocessing: {preprocess}" + (" (not recorded in ONNX files: say it with --preprocess)"
                                                  if preprocess == "none" else "")])
