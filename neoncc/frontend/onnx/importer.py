"""ONNX model -> ImportedModel: CNNs as PyTorch's exporters write them (the TorchScript one and the default
torch.export one): SqueezeNet, MobileNet v1-v3, ResNet, ShuffleNet v2, MnasNet, EfficientNet, GhostNet, DenseNet.

Tensors are (1, C, H, W) (or (1, N) after a Flatten); ONNX's shape inference gives every tensor's shape, which
decides what a Reshape means: a relabelling (dropped), a flattening before a Gemm/MatMul (the `fc` layer flattens
in C, H, W order itself) or part of a channel shuffle (Reshape to (1, g, C/g, H, W), Transpose, Reshape back).
Nodes whose inputs are all constants are evaluated at import time (onnx's reference evaluator). Layers are named
after their weights (`fire2.squeeze1x1.weight` -> `fire2.squeeze1x1`), otherwise after the node.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from neoncc.errors import UserError
from neoncc.frontend.emit import ImportedModel, identifier, scale_shift, unique
from neoncc.frontend.emit import preprocess as preprocess_for

SUPPORTED = ("Conv (dense or depthwise), BatchNormalization, Relu, Clip, LeakyRelu, PRelu (one slope), Sigmoid, "
             "HardSigmoid, HardSwish, Add, Sub, Mul, Div, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, "
             "ReduceMean/ReduceMax (over H, W), Concat (channels), Split/Slice (channels), Gemm, MatMul, Flatten, "
             "Reshape, Squeeze, Unsqueeze, Transpose (channel shuffle), Softmax, Pad (constant, reflect), "
             "Resize and Upsample (nearest, linear, cubic), Dropout, Identity, and any node of constants")

# Nodes that are evaluated when all their inputs are constants, besides any other op the reference evaluator runs.
_NO_FOLD = {"Dropout"}


class _Reader:
    def __init__(self, path: Path, model: onnx.ModelProto):
        self.path, self.graph = path, model.graph
        self.opset = _opset(model)
        self.constants = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.shapes = {v.name: _dims(v) for v in [*self.graph.input, *self.graph.value_info, *self.graph.output]}
        self.layers: list[dict] = []
        self.weights: dict[str, np.ndarray] = {}
        self.producer: dict[str, str] = {}  # ONNX tensor -> the layer (our name) whose output it is
        self.ours: dict[str, tuple] = {}    # our layer -> its (C, H, W)
        self.shuffle: dict[str, tuple] = {}  # ONNX tensor -> (layer, groups, transposed): a channel shuffle so far
        self.padded: dict[str, tuple] = {}   # ONNX tensor -> (layer, [t, l, b, r]): zero padding a Conv takes over
        self.readers: dict[str, int] = {}   # ONNX tensor -> how many nodes read it
        for node in self.graph.node:
            for tensor in node.input:
                self.readers[tensor] = self.readers.get(tensor, 0) + 1
        self.names: set[str] = set()
        self.outputs = {v.name for v in self.graph.output}

    def refuse(self, node, why: str) -> UserError:
        return UserError(f"{self.path}: node '{node.name or node.output[0]}' ({node.op_type}): {why}")

    def read(self) -> None:
        for node in self.graph.node:
            if node.domain not in ("", "ai.onnx"):
                raise self.refuse(node, f"operators of domain '{node.domain}' are not supported")
            if self.fold(node):
                continue
            handler = getattr(self, f"_{node.op_type}", None)
            if handler is None:
                raise self.refuse(node, f"this operator is not supported (supported: {SUPPORTED})")
            handler(node, _attributes(node))

    def fold(self, node) -> bool:
        """A node of constants only (shape arithmetic, the old exporter's shared weights behind Identity nodes) is
        evaluated here, as is Shape of a tensor whose shape is known."""
        if node.op_type == "Shape" and node.input[0] in self.shapes and None not in self.shape(node.input[0]):
            dims = np.array(self.shape(node.input[0]), np.int64)
            attrs = _attributes(node)
            self.constants[node.output[0]] = dims[attrs.get("start", 0):attrs.get("end", len(dims))]
            return True
        if node.op_type in _NO_FOLD or node.op_type == "Constant" or \
                not all(not name or name in self.constants for name in node.input):
            return False
        from onnx.reference import ReferenceEvaluator
        try:
            results = ReferenceEvaluator(node, opsets={"": self.opset}).run(
                None, {name: self.constants[name] for name in node.input if name})
        except Exception as err:  # noqa: BLE001 - the evaluator raises whatever the op's code raises
            raise self.refuse(node, f"cannot evaluate this node of constants: {err}") from None
        for name, value in zip(node.output, results):
            if name:
                self.constants[name] = np.asarray(value)
        return True

    # --- helpers ---------------------------------------------------------------------------------------------

    def data_input(self, node, index: int = 0) -> str:
        tensor = node.input[index]
        if tensor in self.padded:
            raise self.refuse(node, f"input '{tensor}' is zero-padded by a Pad node: only a convolution can take "
                                    "that padding over")
        if tensor in self.shuffle:
            raise self.refuse(node, f"input '{tensor}' is a 5-D view of a tensor (only a channel shuffle, Reshape "
                                    "-> Transpose(0, 2, 1, 3, 4) -> Reshape, is supported)")
        if tensor not in self.producer:
            raise self.refuse(node, f"input '{tensor}' is not computed from the model's input (a constant?)")
        return self.producer[tensor]

    def is_data(self, node, index: int) -> bool:
        return len(node.input) > index and (node.input[index] in self.producer or node.input[index] in self.padded)

    def constant(self, node, index: int, default=None):
        if len(node.input) <= index or not node.input[index]:
            return default
        if node.input[index] not in self.constants:
            raise self.refuse(node, f"input '{node.input[index]}' must be a constant")
        return self.constants[node.input[index]]

    def shape(self, tensor: str) -> tuple:
        return self.shapes.get(tensor, ())

    def rule(self, entry: dict, name: str, inputs: list[str]) -> tuple | None:
        """The layer's output shape by the op's own shape rule (where ONNX shape inference found none)."""
        from neoncc import ops
        from neoncc.ir.graph import Node
        layer = Node(name, entry["type"], inputs, {k: v for k, v in entry.items() if k != "type"},
                     origin=str(self.path))
        try:
            return tuple(ops.get(entry["type"]).infer(layer, [self.ours[i] for i in inputs]))
        except UserError:
            return None  # the description's own check reports it, with the layer's name

    def known(self, node, layer: str) -> tuple:
        """Our (C, H, W) of a layer's output, which a decision about `node` needs."""
        if self.ours.get(layer) is None:
            raise self.refuse(node, f"the shape of '{layer}' is unknown (ONNX shape inference did not find it)")
        return self.ours[layer]

    def chw(self, node, index: int = 0) -> tuple:
        """Our (C, H, W) of a data input."""
        found = self.ours.get(self.data_input(node, index))
        if found is None:
            raise self.refuse(node, f"the shape of input '{node.input[index]}' is unknown (ONNX shape inference did "
                                    "not find it)")
        return found

    def add(self, node, entry: dict, inputs: list[str], name: str | None = None, chw: tuple | None = None,
            output: int = 0) -> str:
        name = unique(name or identifier(_module_path(node), node.op_type.lower()), self.names)
        self.layers.append({"name": name, **entry, "input": inputs})
        self.producer[node.output[output]] = name
        if chw is None:
            dims = self.shape(node.output[output])
            if len(dims) == 4 and None not in dims:
                chw = tuple(int(d) for d in dims[1:])
            elif len(dims) == 2 and dims[1] is not None:
                chw = (int(dims[1]), 1, 1)
            elif inputs and all(self.ours.get(i) is not None for i in inputs):
                chw = self.rule(entry, name, inputs)
        self.ours[name] = chw
        return name

    def alias(self, node) -> None:
        """An operator that changes nothing the engine sees: its output is its input."""
        self.producer[node.output[0]] = self.data_input(node)

    @staticmethod
    def vector_like(dims: tuple) -> bool:
        """(1, C), (1, C, 1, 1): one value per channel, however ONNX labels the axes."""
        return len(dims) >= 2 and dims[1] is not None and all(d == 1 for d in (dims[0], *dims[2:]))

    def per_channel(self, value: np.ndarray, channels: int) -> np.ndarray | None:
        """A constant broadcast against (1, C, H, W) as one value per channel (C,), or None if it is not."""
        value = np.asarray(value, np.float32)
        if value.size == 1:
            return np.full(channels, value.ravel()[0], np.float32)
        squeezed = value.reshape(value.shape[-3:]) if value.ndim >= 3 and value.size == value.shape[-3] else None
        if squeezed is not None and squeezed.shape == (channels, 1, 1):
            return squeezed.ravel()
        return None

    # --- operators -------------------------------------------------------------------------------------------

    def _Conv(self, node, attrs: dict) -> None:
        weight = self.constant(node, 1)
        if weight is None or weight.ndim != 4:
            raise self.refuse(node, "only 2-D convolutions with constant weights are supported")
        extra = None
        if node.input[0] in self.padded:
            source, extra = self.padded[node.input[0]]
            if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
                raise self.refuse(node, "auto_pad SAME after a Pad node is not supported")
            pads = list(attrs.get("pads", [0, 0, 0, 0])) if attrs.get("auto_pad", b"NOTSET") == b"NOTSET" \
                else [0, 0, 0, 0]
            attrs = {**attrs, "auto_pad": b"NOTSET", "pads": [a + b for a, b in zip(pads, extra)]}
            node_input = source
        channels = self.known(node, node_input)[0] if extra else self.chw(node)[0]
        group = int(attrs.get("group", 1))
        entry = {"type": "conv", "filters": int(weight.shape[0])}
        if group != 1:
            if group != channels:
                raise self.refuse(node, f"grouped convolution (group {group} of {channels} input channels) is not "
                                        "supported: only dense (group 1) and depthwise (group = input channels)")
            entry["groups"] = group
        bias = self.constant(node, 2, np.zeros(weight.shape[0], np.float32))
        kernel = tuple(attrs.get("kernel_shape", weight.shape[2:]))
        dilation = tuple(attrs.get("dilations", [1, 1]))
        entry.update(self.window(node, attrs, kernel, dilation))
        if dilation != (1, 1):
            entry["dilation"] = _size(dilation)
        base = node.input[1].removesuffix(".weight") if node.input[1].endswith(".weight") else node.name
        name = self.add(node, entry, [node_input if extra else self.data_input(node)], identifier(base, "conv"))
        self.weights[f"{name}.weight"] = np.asarray(weight, np.float32)
        self.weights[f"{name}.bias"] = np.asarray(bias, np.float32)

    def _Pad(self, node, attrs: dict) -> None:
        """Padding of height and width: zero padding that a convolution alone reads is taken over by it
        (TensorFlow's explicit padding before strided convolutions); otherwise a `pad` layer."""
        mode = attrs.get("mode", b"constant").decode()
        pads = attrs.get("pads", self.constant(node, 1))
        value = attrs.get("value", self.constant(node, 2, 0.0))
        value = float(np.ravel(value)[0]) if np.size(value) else 0.0
        axes = self.constant(node, 3)
        if pads is None:
            raise self.refuse(node, "the pads must be a constant")
        if mode not in ("constant", "reflect"):
            raise self.refuse(node, f"padding mode '{mode}' is not supported (constant or reflect)")
        pads = [int(p) for p in np.ravel(pads)]
        rank = len(pads) // 2
        axes = list(range(rank)) if axes is None else [int(a) % 4 for a in np.ravel(axes)]
        begin = dict(zip(axes, pads[:rank]))
        end = dict(zip(axes, pads[rank:]))
        if any(begin.get(a, 0) or end.get(a, 0) for a in (0, 1)) or any(p < 0 for p in pads):
            raise self.refuse(node, f"padding {pads} is not supported (height and width only, not negative)")
        sides = [begin.get(2, 0), begin.get(3, 0), end.get(2, 0), end.get(3, 0)]  # t, l, b, r
        source = self.data_input(node)
        if mode == "constant" and value == 0.0 and self.readers.get(node.output[0], 0) == 1 and any(
                n.op_type == "Conv" and n.input[0] == node.output[0] for n in self.graph.node):
            self.padded[node.output[0]] = (source, sides)
            return
        entry = {"type": "pad", "pad": [sides[0], sides[2], sides[1], sides[3]]}
        if mode != "constant":
            entry["mode"] = mode
        if value != 0.0:
            entry["value"] = value
        self.add(node, entry, [source])

    def _Resize(self, node, attrs: dict) -> None:
        """Resizing of height and width (the `resize` layer computes every ONNX mode: neoncc/ops/resize.py)."""
        c, h, w = self.chw(node)
        dims = (1, c, h, w)

        def given(index: int):
            value = self.constant(node, index)
            return None if value is None or np.size(value) == 0 else np.ravel(value)
        if self.opset < 11:
            roi, scales, sizes = None, given(1), None
        else:
            roi, scales, sizes = given(1), given(2), given(3)
        axes = [int(a) % 4 for a in attrs.get("axes", range(4))]
        mode = attrs.get("mode", b"nearest").decode()
        default = "half_pixel" if self.opset >= 11 else "asymmetric"
        coordinates = attrs.get("coordinate_transformation_mode", default.encode()).decode()
        self.resize(node, dims, axes, roi, scales, sizes, {
            "mode": mode, "coordinates": coordinates,
            "nearest_mode": attrs.get("nearest_mode", b"round_prefer_floor" if self.opset >= 11 else b"floor").decode(),
            "cubic_a": float(np.float32(attrs.get("cubic_coeff_a", -0.75))),
            "exclude_outside": bool(attrs.get("exclude_outside", 0)), "antialias": bool(attrs.get("antialias", 0)),
            "extrapolation_value": float(np.float32(attrs.get("extrapolation_value", 0.0)))},
            attrs.get("keep_aspect_ratio_policy", b"stretch").decode())

    def _Upsample(self, node, attrs: dict) -> None:
        """The deprecated Upsample: Resize with the `asymmetric` coordinates, nearest rounding down."""
        c, h, w = self.chw(node)
        scales = attrs.get("scales")
        scales = np.ravel(self.constant(node, 1)) if scales is None else np.ravel(scales)
        self.resize(node, (1, c, h, w), list(range(4)), None, scales, None,
                    {"mode": attrs.get("mode", b"nearest").decode(), "coordinates": "asymmetric",
                     "nearest_mode": "floor"}, "stretch")

    def resize(self, node, dims: tuple, axes: list[int], roi, scales, sizes, fields: dict, policy: str) -> None:
        from neoncc.ops.resize import COORDINATES, MODES, NEAREST
        mode, coordinates = fields["mode"], fields["coordinates"]
        if mode not in MODES or coordinates not in COORDINATES or fields["nearest_mode"] not in NEAREST:
            raise self.refuse(node, f"mode '{mode}', coordinates '{coordinates}', nearest_mode "
                                    f"'{fields['nearest_mode']}' are not all ONNX's")
        if (scales is None) == (sizes is None):
            raise self.refuse(node, "give either constant scales or constant sizes")
        if len(scales if sizes is None else sizes) != len(axes):
            raise self.refuse(node, f"{len(scales if sizes is None else sizes)} scales or sizes for {len(axes)} axes")
        if sizes is not None:
            size = list(dims)
            for axis, value in zip(axes, sizes):
                size[axis] = int(value)
            scale = [s / d for s, d in zip(size, dims)]
            if policy in ("not_larger", "not_smaller"):
                pick = (min if policy == "not_larger" else max)(scale[a] for a in axes)
                scale = [pick if a in axes else 1.0 for a in range(4)]
                size = [int(pick * d + 0.5) if a in axes else d for a, d in enumerate(dims)]
            elif policy != "stretch":
                raise self.refuse(node, f"keep_aspect_ratio_policy '{policy}' is not ONNX's")
        else:
            scale = [1.0] * 4
            for axis, value in zip(axes, scales):
                scale[axis] = float(value)
            size = [int(s * d) for s, d in zip(scale, dims)]
        if size[:2] != list(dims[:2]) or scale[:2] != [1.0, 1.0]:
            raise self.refuse(node, f"resizing {list(dims)} to {size} is not supported (height and width only)")
        if min(size[2:]) < 1:
            raise self.refuse(node, f"resizing {list(dims)} to {size}: an empty output")
        entry = {"type": "resize", "size": size[2:], "mode": mode}
        if [scale[2], scale[3]] != [size[2] / dims[2], size[3] / dims[3]]:
            entry["scale"] = scale[2:]
        if mode != "nearest" or coordinates != "half_pixel":
            entry["coordinates"] = coordinates
        if coordinates == "tf_crop_and_resize":
            if roi is None:
                raise self.refuse(node, "tf_crop_and_resize needs a constant roi")
            full = [0.0] * 4 + [1.0] * 4
            for i, axis in enumerate(axes):
                full[axis], full[4 + axis] = float(roi[i]), float(roi[len(axes) + i])
            if full[:2] != [0.0, 0.0] or full[4:6] != [1.0, 1.0]:
                raise self.refuse(node, "cropping batch or channels is not supported")
            entry["roi"] = [full[2], full[3], full[6], full[7]]
            entry["extrapolation_value"] = fields.get("extrapolation_value", 0.0)
        if mode == "nearest":
            entry["nearest_mode"] = fields["nearest_mode"]
        if mode == "cubic":
            entry["cubic_a"] = fields.get("cubic_a", -0.75)
            if fields.get("exclude_outside"):
                entry["exclude_outside"] = True
        if mode != "nearest" and fields.get("antialias"):
            entry["antialias"] = True
        self.add(node, entry, [self.data_input(node)], chw=(dims[1], size[2], size[3]))

    def window(self, node, attrs: dict, kernel: tuple, dilation: tuple = (1, 1)) -> dict:
        """kernel, stride and pad of a Conv or pooling node, ONNX pads [t, l, b, r] -> ours [t, b, l, r]."""
        if len(kernel) != 2:
            raise self.refuse(node, f"{len(kernel)}-D windows are not supported (2-D only)")
        stride = tuple(attrs.get("strides", [1, 1]))
        auto_pad = attrs.get("auto_pad", b"NOTSET").decode()
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
            top, left, bottom, right = self.same_pads(node, extent, stride, auto_pad == "SAME_UPPER")
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

    def _BatchNormalization(self, node, attrs: dict) -> None:
        if attrs.get("training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])):
            raise self.refuse(node, "batch normalization in training mode is not supported")
        roles = [self.constant(node, i) for i in range(1, 5)]
        if any(r is None for r in roles):
            raise self.refuse(node, "scale, bias, mean and variance must be constants")
        entry = {"type": "batchnorm"}
        eps = float(np.float32(attrs.get("epsilon", 1e-5)))
        if eps != float(np.float32(1e-5)):
            entry["eps"] = eps
        base = node.input[1].removesuffix(".weight") if node.input[1].endswith(".weight") else None
        name = self.add(node, entry, [self.data_input(node)], identifier(base, "batchnorm") if base else None)
        for role, value in zip(("weight", "bias", "running_mean", "running_var"), roles):
            self.weights[f"{name}.{role}"] = np.asarray(value, np.float32).ravel()

    def _Relu(self, node, attrs: dict) -> None:
        self.add(node, {"type": "relu"}, [self.data_input(node)])

    def _Sigmoid(self, node, attrs: dict) -> None:
        self.add(node, {"type": "sigmoid"}, [self.data_input(node)])

    def _HardSwish(self, node, attrs: dict) -> None:
        self.add(node, {"type": "hardswish"}, [self.data_input(node)])

    def _HardSigmoid(self, node, attrs: dict) -> None:
        entry = {"type": "hardsigmoid", "alpha": float(np.float32(attrs.get("alpha", 0.2))),
                 "beta": float(np.float32(attrs.get("beta", 0.5)))}
        self.add(node, entry, [self.data_input(node)])

    def _LeakyRelu(self, node, attrs: dict) -> None:
        self.add(node, {"type": "leaky_relu", "alpha": float(np.float32(attrs.get("alpha", 0.01)))},
                 [self.data_input(node)])

    def _PRelu(self, node, attrs: dict) -> None:
        slope = np.ravel(self.constant(node, 1))
        if slope.size != 1 and not np.all(slope == slope[0]):
            raise self.refuse(node, "a slope per channel is not supported (one slope for all: leaky ReLU)")
        self.add(node, {"type": "leaky_relu", "alpha": float(slope[0])}, [self.data_input(node)])

    def _Clip(self, node, attrs: dict) -> None:
        low = attrs.get("min", self.constant(node, 1))
        high = attrs.get("max", self.constant(node, 2))
        low = None if low is None else float(np.ravel(low)[0])
        high = None if high is None else float(np.ravel(high)[0])
        if low == 0 and high == 6:
            entry = {"type": "relu6"}
        elif low == 0 and high is None:
            entry = {"type": "relu"}
        elif low is None and high is None:
            return self.alias(node)
        else:
            big = float(np.finfo(np.float32).max)
            entry = {"type": "clip", "min": -big if low is None else low, "max": big if high is None else high}
        self.add(node, entry, [self.data_input(node)])

    def _MaxPool(self, node, attrs: dict) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise self.refuse(node, "the indices output is not supported")
        self.pool(node, attrs, "maxpool")

    def _AveragePool(self, node, attrs: dict) -> None:
        self.pool(node, attrs, "avgpool")

    def pool(self, node, attrs: dict, kind: str) -> None:
        dilation = tuple(attrs.get("dilations", [1, 1]))
        entry = {"type": kind, **self.window(node, attrs, tuple(attrs["kernel_shape"]), dilation)}
        if dilation != (1, 1):
            entry["dilation"] = _size(dilation)
        if attrs.get("ceil_mode", 0):
            entry.update(rounding="ceil", ceil_rule="onnx")
        if kind == "avgpool" and attrs.get("count_include_pad", 0) and "pad" in entry:
            entry["count_include_pad"] = True
        self.add(node, entry, [self.data_input(node)])

    def _GlobalAveragePool(self, node, attrs: dict) -> None:
        self.add(node, {"type": "global_avgpool"}, [self.data_input(node)])

    def _GlobalMaxPool(self, node, attrs: dict) -> None:
        self.add(node, {"type": "global_maxpool"}, [self.data_input(node)])

    def spatial_reduction(self, node, attrs: dict) -> None:
        axes = attrs.get("axes")
        if axes is None:
            axes = self.constant(node, 1)
        rank = len(self.shape(node.input[0]))
        if rank != 4 or axes is None or sorted(int(a) % 4 for a in np.ravel(axes)) != [2, 3]:
            raise self.refuse(node, f"only a reduction over height and width of a 4-D tensor is supported "
                                    f"(axes {None if axes is None else np.ravel(axes).tolist()})")

    def _ReduceMean(self, node, attrs: dict) -> None:
        """The mean over H and W (torch.export's spelling of adaptive_avg_pool2d(x, 1)) is global pooling."""
        self.spatial_reduction(node, attrs)
        self._GlobalAveragePool(node, attrs)

    def _ReduceMax(self, node, attrs: dict) -> None:
        self.spatial_reduction(node, attrs)
        self._GlobalMaxPool(node, attrs)

    def _Concat(self, node, attrs: dict) -> None:
        rank = len(self.shape(node.input[0])) or 4
        if rank != 4 or attrs["axis"] % rank != 1:
            raise self.refuse(node, f"concatenation along axis {attrs['axis']} of a {rank}-D tensor is not "
                                    "supported (channels of 4-D tensors only)")
        inputs = [self.data_input(node, i) for i in range(len(node.input))]
        shapes = [self.known(node, name) for name in inputs]
        self.add(node, {"type": "concat"}, inputs, chw=(sum(s[0] for s in shapes), *shapes[0][1:]))

    def _Split(self, node, attrs: dict) -> None:
        rank = len(self.shape(node.input[0]))
        if rank != 4 or attrs.get("axis", 0) % rank != 1:
            raise self.refuse(node, f"splitting along axis {attrs.get('axis', 0)} is not supported (channels of "
                                    "4-D tensors only)")
        sizes = attrs.get("split", self.constant(node, 1))
        channels = self.chw(node)[0]
        if sizes is None:
            parts = attrs.get("num_outputs", len(node.output))
            step = -(-channels // parts)
            sizes = [min(step, channels - i * step) for i in range(parts)]
        start, source = 0, self.data_input(node)
        for index, size in enumerate(np.ravel(sizes).tolist()):
            if node.output[index]:
                self.slice(node, source, start, start + int(size), index)
            start += int(size)

    def slice(self, node, source: str, start: int, end: int, output: int = 0) -> None:
        c, h, w = self.known(node, source)
        if (start, end) == (0, c):
            self.producer[node.output[output]] = source
            return
        base = f"{_module_path(node)}.{output}" if len(node.output) > 1 else _module_path(node)
        self.add(node, {"type": "slice", "start": start, "end": end}, [source],
                 identifier(base, "slice"), chw=(end - start, h, w), output=output)

    def _Slice(self, node, attrs: dict) -> None:
        rank = len(self.shape(node.input[0]))
        if self.opset < 10:
            starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
        else:
            starts, ends = self.constant(node, 1), self.constant(node, 2)
            axes, steps = self.constant(node, 3), self.constant(node, 4)
        axes = list(range(len(np.ravel(starts)))) if axes is None else [int(a) % rank for a in np.ravel(axes)]
        steps = [1] * len(axes) if steps is None else np.ravel(steps).tolist()
        dims, source = self.shape(node.input[0]), self.data_input(node)
        cut = {}
        for axis, start, end, step in zip(axes, np.ravel(starts).tolist(), np.ravel(ends).tolist(), steps):
            size = dims[axis]
            start, end = (max(0, min(size, v + size if v < 0 else v)) for v in (start, end))
            if (start, end, step) != (0, size, 1):
                cut[axis] = (start, end, step)
        if rank != 4 or set(cut) - {1} or any(step != 1 for _, _, step in cut.values()):
            raise self.refuse(node, f"slicing {list(dims)} on axes {axes} (steps {steps}) is not supported "
                                    "(a range of channels of a 4-D tensor, step 1)")
        start, end, _ = cut.get(1, (0, dims[1], 1))
        if start >= end:
            raise self.refuse(node, "the slice is empty")
        self.slice(node, source, start, end)

    def _Dropout(self, node, attrs: dict) -> None:
        """Inverted dropout (PyTorch's, ONNX's): nothing to do at inference."""
        if len(node.output) > 1 and node.output[1]:
            raise self.refuse(node, "the mask output is not supported")
        if bool(np.ravel(self.constant(node, 2, False))[0]):
            raise self.refuse(node, "dropout in training mode is not supported")
        self.alias(node)

    def _Identity(self, node, attrs: dict) -> None:
        self.alias(node)

    def _Flatten(self, node, attrs: dict) -> None:
        self.reshape(node)

    _Reshape = _Squeeze = _Unsqueeze = _Flatten

    def reshape(self, node) -> None:
        """A relabelling of (C, H, W) (flattening to (1, C*H*W) included: `fc` reads its input in that order), or a
        step of a channel shuffle."""
        after = self.shape(node.output[0])
        if node.input[0] in self.shuffle:
            layer, groups, transposed = self.shuffle[node.input[0]]
            if transposed and tuple(after[1:]) == self.known(node, layer):
                name = self.add(node, {"type": "channel_shuffle", "groups": groups}, [layer],
                                identifier(_module_path(node), "channel_shuffle"))
                self.ours[name] = self.ours[layer]
                return
            raise self.refuse(node, f"reshaping to {list(after)} is not supported (after a channel shuffle's "
                                    "Transpose, only back to the 4-D tensor)")
        c, h, w = self.chw(node)
        if None in after:
            raise self.refuse(node, "shape inference did not find this reshape's output shape")
        if node.output[0] in self.outputs and not self.readers.get(node.output[0]) and \
                int(np.prod(after)) == c * h * w:
            return self.alias(node)  # the model's output: its values in the same order, whatever their labels
        if (len(after) == 5 and after[0] == 1 and after[1] * after[2] == c and tuple(after[3:]) == (h, w)
                and after[1] > 1):
            self.shuffle[node.output[0]] = (self.data_input(node), int(after[1]), False)
            return
        if (len(after) == 2 and after[0] == 1 and after[1] == c * h * w) or \
                (len(after) == 4 and tuple(after) == (1, c, h, w)) or \
                (h == w == 1 and self.vector_like(after) and after[1] == c):
            return self.alias(node)
        raise self.refuse(node, f"reshaping {[1, c, h, w]} to {list(after)} is not supported (only flattening, "
                                "relabelling a (1, C, 1, 1) tensor, or a channel shuffle)")

    def _Transpose(self, node, attrs: dict) -> None:
        perm = list(attrs.get("perm", []))
        if node.input[0] in self.shuffle and perm == [0, 2, 1, 3, 4]:
            layer, groups, transposed = self.shuffle[node.input[0]]
            if not transposed:
                self.shuffle[node.output[0]] = (layer, groups, True)
                return
        raise self.refuse(node, f"transposing with perm {perm} is not supported (only a channel shuffle's "
                                "(0, 2, 1, 3, 4) between two Reshapes)")

    def _Gemm(self, node, attrs: dict) -> None:
        if attrs.get("transA", 0):
            raise self.refuse(node, "transA is not supported")
        weight = self.constant(node, 1)
        if weight is None or weight.ndim != 2:
            raise self.refuse(node, "the second input must be a constant matrix")
        weight = weight if attrs.get("transB", 0) else weight.T
        bias = self.constant(node, 2, np.zeros(weight.shape[0], np.float32))
        bias = np.broadcast_to(np.ravel(bias), (weight.shape[0],)) if np.size(bias) in (1, weight.shape[0]) \
            else None
        if bias is None:
            raise self.refuse(node, "the bias must have one value per output or be a scalar")
        self.fc(node, weight * float(attrs.get("alpha", 1.0)), bias * float(attrs.get("beta", 1.0)))

    def _MatMul(self, node, attrs: dict) -> None:
        weight = self.constant(node, 1)
        if weight is None or weight.ndim != 2 or len(self.shape(node.input[0])) != 2:
            raise self.refuse(node, "only a (1, N) tensor times a constant matrix is supported")
        self.fc(node, weight.T, np.zeros(weight.shape[1], np.float32))

    def fc(self, node, weight: np.ndarray, bias: np.ndarray) -> None:
        c, h, w = self.chw(node)
        if weight.shape[1] != c * h * w:
            raise self.refuse(node, f"the matrix has {weight.shape[1]} inputs, the tensor {c * h * w} values")
        base = node.input[1].removesuffix(".weight") if node.input[1].endswith(".weight") else None
        name = self.add(node, {"type": "fc", "units": int(weight.shape[0])}, [self.data_input(node)],
                        identifier(base, "fc") if base else None, chw=(int(weight.shape[0]), 1, 1))
        self.weights[f"{name}.weight"] = np.ascontiguousarray(weight, np.float32)
        self.weights[f"{name}.bias"] = np.ascontiguousarray(bias, np.float32)

    # --- element-wise arithmetic -------------------------------------------------------------------------------

    def _Add(self, node, attrs: dict) -> None:
        self.arithmetic(node, "add")

    def _Sub(self, node, attrs: dict) -> None:
        self.arithmetic(node, "sub")

    def _Mul(self, node, attrs: dict) -> None:
        self.arithmetic(node, "mul")

    def _Div(self, node, attrs: dict) -> None:
        self.arithmetic(node, "div")

    def arithmetic(self, node, kind: str) -> None:
        if self.is_data(node, 0) and self.is_data(node, 1):
            return self.binary(node, kind)
        data = 0 if self.is_data(node, 0) else 1
        value = self.constant(node, 1 - data)
        if not self.is_data(node, data):
            self.data_input(node, data)  # refuses with the reason
        c = self.chw(node, data)[0]
        vector = self.per_channel(value, c)
        if vector is None:
            raise self.refuse(node, f"a constant of shape {list(np.shape(value))} is not supported (a scalar or "
                                    f"one value per channel)")
        if kind == "div" and data == 1:
            raise self.refuse(node, "dividing a constant by a tensor is not supported")
        scale, shift = np.ones(c, np.float64), np.zeros(c, np.float64)
        if kind == "add":
            shift = vector.astype(np.float64)
        elif kind == "sub":
            scale, shift = (scale, -vector.astype(np.float64)) if data == 0 else (-scale, vector.astype(np.float64))
        elif kind == "mul":
            scale = vector.astype(np.float64)
        else:
            scale = 1.0 / vector.astype(np.float64)
        self.affine(node, scale, shift, data)

    def affine(self, node, scale: np.ndarray, shift: np.ndarray, data: int) -> None:
        """scale * x + shift per channel: folded into the fully connected layer just before, read by nothing else
        (MatMul + Add), else an `affine` layer (one value for all channels) or a `batchnorm` (per channel)."""
        source = self.data_input(node, data)
        producer = next(layer for layer in self.layers if layer["name"] == source) if source in self.ours else None
        if producer is not None and producer["type"] == "fc" \
                and self.readers.get(node.input[data], 0) == 1 and producer is self.layers[-1]:
            w, b = self.weights[f"{source}.weight"], self.weights[f"{source}.bias"]
            self.weights[f"{source}.weight"] = (w * scale.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32)
            self.weights[f"{source}.bias"] = (b * scale + shift).astype(np.float32)
            self.producer[node.output[0]] = source
            return
        entry, arrays = scale_shift(scale, shift)
        if not arrays:
            self.add(node, entry, [source])
            return
        name = self.add(node, entry, [source], identifier(_module_path(node), "affine"))
        self.weights.update({f"{name}.{role}": array for role, array in arrays.items()})

    def binary(self, node, kind: str) -> None:
        a, b = self.data_input(node, 0), self.data_input(node, 1)
        sa, sb = self.known(node, a), self.known(node, b)
        if kind in ("add", "mul") and sa != sb and sa == (sb[0], 1, 1):
            a, b, sa, sb = b, a, sb, sa  # commutative: the per-channel one second
        if sb != sa and sb != (sa[0], 1, 1):
            raise self.refuse(node, f"inputs of shapes {[1, *sa]} and {[1, *sb]} are not supported (equal, or the "
                                    "second one value per channel)")
        if kind == "div":
            raise self.refuse(node, "dividing two tensors is not supported")
        if kind == "sub":
            negated = unique(identifier(_module_path(node), "sub") + ".negated", self.names)
            self.layers.append({"name": negated, "type": "affine", "alpha": -1.0, "input": [b]})
            self.ours[negated] = sb
            b, kind = negated, "add"
        self.add(node, {"type": kind}, [a, b], chw=sa)

    def _Softmax(self, node, attrs: dict) -> None:
        dims = self.shape(node.input[0])
        axis = attrs.get("axis", 1 if self.opset < 13 else -1)
        c, h, w = self.chw(node)
        if not self.vector_like(dims) or axis % len(dims) != 1 or h * w != 1:
            raise self.refuse(node, f"softmax along axis {axis} of a {list(dims)} tensor is not supported (along "
                                    "the channels of a (1, C) or (1, C, 1, 1) tensor only)")
        self.add(node, {"type": "softmax"}, [self.data_input(node)])


def _single_reader(layers: list[dict], name: str) -> dict | None:
    readers = [layer for layer in layers if name in layer["input"]]
    return readers[0] if len(readers) == 1 else None


def _is(layer: dict | None, kind: str, **attrs) -> bool:
    return layer is not None and layer["type"] == kind and all(
        abs(layer.get(k, default) - value) < 1e-7 for k, (value, default) in attrs.items())


def fuse_patterns(layers: list[dict]) -> list[dict]:
    """The exporters' spellings of activations the engine has as one layer:
    x * sigmoid(x) -> swish; relu6(x + 3) / 6 -> hardsigmoid; x * relu6(x + 3) / 6 (either order) -> hardswish."""
    by_name = {layer["name"]: layer for layer in layers}

    def drop(*gone: dict, keep: dict) -> dict:
        """`keep` replaces the last of `gone` (its name, its place); the others disappear."""
        last = gone[-1]
        for layer in gone[:-1]:
            layers.remove(layer)
        keep["name"] = last["name"]
        layers[layers.index(last)] = keep
        by_name.update({keep["name"]: keep})
        return keep

    for layer in list(layers):
        if layer not in layers or not _is(layer, "relu6"):
            continue
        plus3 = by_name.get(layer["input"][0])
        if not _is(plus3, "affine", alpha=(1.0, 1.0), beta=(3.0, 0.0)) or _single_reader(layers, plus3["name"]) \
                is not layer:
            continue
        x, after = plus3["input"][0], _single_reader(layers, layer["name"])
        if _is(after, "affine", alpha=(1 / 6, 1.0), beta=(0.0, 0.0)):  # relu6(x + 3) / 6
            gate = drop(plus3, layer, after, keep={"name": "", "type": "hardsigmoid", "input": [x]})
            times = _single_reader(layers, gate["name"])
            if _is(times, "mul") and sorted(times["input"]) == sorted([x, gate["name"]]):  # x * hardsigmoid(x)
                drop(gate, times, keep={"name": "", "type": "hardswish", "input": [x]})
        elif _is(after, "mul") and sorted(after["input"]) == sorted([x, layer["name"]]):  # x * relu6(x + 3) ...
            last = _single_reader(layers, after["name"])
            if _is(last, "affine", alpha=(1 / 6, 1.0), beta=(0.0, 0.0)):  # ... / 6
                drop(plus3, layer, after, last, keep={"name": "", "type": "hardswish", "input": [x]})
    for layer in list(layers):
        if layer in layers and _is(layer, "sigmoid"):
            times = _single_reader(layers, layer["name"])
            if _is(times, "mul") and sorted(times["input"]) == sorted([layer["input"][0], layer["name"]]):
                drop(layer, times, keep={"name": "", "type": "swish", "input": layer["input"]})
    return layers


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
        model = onnx.load(path, load_external_data=False)
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror or err}") from None
    except Exception as err:  # protobuf's DecodeError and onnx's own, depending on versions
        raise UserError(f"{path}: not an ONNX model: {err}") from None
    # Weights kept beside the model (ONNX files over 2 GB; torch.onnx.export's MODEL.onnx.data): each must exist.
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if not (path.parent / location).is_file():
                raise UserError(f"{path}: the weights of '{tensor.name}' are in an external data file, "
                                f"{path.parent / location}, which is missing (keep it beside the model)")
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except Exception as err:  # noqa: BLE001 - truncated or unreadable external data
        raise UserError(f"{path}: cannot read its external data: {err}") from None
    return model


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
        model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as err:  # noqa: BLE001 - onnx raises several types, all meaning "this model is inconsistent"
        raise UserError(f"{path}: ONNX shape inference failed: {err}") from None
    reader = _Reader(path, model)
    input_name = identifier(value.name, "data")
    reader.producer[value.name] = input_name
    reader.names.add(input_name)
    reader.ours[input_name] = tuple(int(d) for d in _dims(value)[1:])
    reader.read()
    outputs = [v.name for v in model.graph.output]
    if len(outputs) != 1:
        raise UserError(f"{path}: the model has {len(outputs)} outputs; the engine computes one")
    if reader.producer.get(outputs[0]) == input_name:
        # Only Identity/Dropout/relabelling nodes: the engine copies its input (an affine map with alpha 1, beta 0).
        copy = unique(identifier(outputs[0], "copy"), reader.names)
        reader.layers.append({"name": copy, "type": "affine", "input": [input_name]})
        reader.producer[outputs[0]] = copy
    reader.layers = fuse_patterns(reader.layers)
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
