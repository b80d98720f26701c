"""The YAML model description (configs/models/*.yaml) -> graph IR, validated against model.schema.yaml.

Every error names the file, the line and the field, because the YAML is what the user edits.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import math
from pathlib import Path

import jsonschema
import yaml

from neoncc import ops
from neoncc.codegen.names import class_name, identifier
from neoncc.errors import UserError
from neoncc.ir.graph import Graph, Node
from neoncc.ir.shapes import infer_shapes

MAX_FILE_BYTES = 16 << 20     # a model description is a few kB; anything this big is not one
MAX_TENSOR_ELEMENTS = 1 << 26  # 256 MiB of float32 in one activation or weight tensor: far past any 512 MB board
# A JSON-Schema "integer" is any whole number, 3.0 included; a description means 3 where it says integer.
_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))
_VALIDATOR = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)
# Names the generated C++ declares or sees (it says `using namespace arm_compute`): a model whose class name is one
# of these would not compile.
_CPP_KEYWORDS = {
    "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch", "char",
    "char16_t", "char32_t", "class", "compl", "const", "constexpr", "const_cast", "continue", "decltype", "default",
    "delete", "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float", "for",
    "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
    "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register", "reinterpret_cast", "return",
    "short", "signed", "sizeof", "static", "static_assert", "static_cast", "struct", "switch", "template", "this",
    "thread_local", "throw", "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual",
    "void", "volatile", "wchar_t", "while", "final", "override"}
_RESERVED_CLASSES = {"Network", "Layer", "WeightBinding", "Error", "Tensor", "SubTensor", "ITensor", "TensorInfo",
                     "TensorShape", "Coordinates", "Window", "Size2D", "PadStrideInfo", "PoolingLayerInfo",
                     "ActivationLayerInfo", "DataLayout", "DataType", "QuantizationInfo", "Scheduler", "MemoryGroup",
                     "MemoryManagerOnDemand", "BlobLifetimeManager", "OffsetLifetimeManager", "PoolManager",
                     "IFunction", "IMemoryManager", "Allocator", "TensorAllocator", "Status", "Strides", "Steps",
                     "PermutationVector", "NormalizationLayerInfo", "WeightsInfo", "GEMMInfo", "BorderSize"}

SCHEMA = yaml.safe_load((Path(__file__).with_name("model.schema.yaml")).read_text())
SCHEMA["$defs"]["layer"] = ops.layer_schema()


def _line_of(root: yaml.Node, path: list) -> int:
    """1-based line of the YAML node at a JSON path (the deepest node that exists)."""
    node = root
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == key]
            if not match:
                break
            node = match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1


def _field(path: list) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "(top level)"


def _describe(error: jsonschema.ValidationError) -> tuple[list, str]:
    """Path and message of a schema error, phrased for a person editing the YAML."""
    path = list(error.absolute_path)
    if "propertyNames" in error.relative_schema_path or error.validator == "additionalProperties":
        names = [error.instance] if "propertyNames" in error.relative_schema_path else \
            sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return path + names[:1], f"unknown field '{names[0]}'" if names else error.message
    if error.validator == "required":
        return path, error.message.replace("is a required property", "is required")
    return path, error.message


def load_yaml_model(path: str | Path) -> Graph:
    path = Path(path)
    root, data = read_checked(path, SCHEMA, "model description")
    _check_model_name(path, root, data["name"])
    _check_sizes(path, root, data)
    graph = _build_graph(path, root, data)
    _check_mangled_names(graph)
    infer_shapes(graph)
    _check_tensor_sizes(graph)
    return graph


def _check_model_name(path: Path, root: yaml.Node, name: str) -> None:
    cls = class_name(name)
    problem = None
    if not cls:
        problem = "has no letter or digit to name the engine's C++ class with"
    elif keyword.iskeyword(cls) or cls in _CPP_KEYWORDS or name in _CPP_KEYWORDS:
        problem = f"is a C++ keyword ({cls})"
    elif cls in _RESERVED_CLASSES:
        problem = f"gives the C++ class name {cls}, which the engine's runtime or ACL already declares"
    if problem:
        raise UserError(f"{path}:{_line_of(root, ['name'])}: name: '{name}' {problem}; choose another name")


def _check_sizes(path: Path, root: yaml.Node, data: dict) -> None:
    """The input tensor is bounded before anything is allocated for it."""
    shape = data["input"]["shape"]
    if math.prod(shape) > MAX_TENSOR_ELEMENTS:
        raise UserError(f"{path}:{_line_of(root, ['input', 'shape'])}: input.shape: {shape} is "
                        f"{math.prod(shape):,} values; at most {MAX_TENSOR_ELEMENTS:,} are supported")


def _check_mangled_names(graph: Graph) -> None:
    """Layer names become C++ names (`fire2/squeeze1x1` and `fire2_squeeze1x1` both `fire2_squeeze1x1`): two
    layers must not meet there."""
    seen: dict[str, Node] = {}
    for node in graph.nodes:
        mangled = identifier(node.name)
        other = seen.get(mangled)
        if other is not None:
            raise UserError(f"{node.origin}: layer '{node.name}' would have the same C++ name ({mangled}) as layer "
                            f"'{other.name}' ({other.origin}); rename one of them")
        seen[mangled] = node


def _check_tensor_sizes(graph: Graph) -> None:
    for node in graph.nodes:
        for label, shape in [("output", node.shape)] + [(p.name, p.shape) for p in node.params]:
            if shape is not None and math.prod(shape) > MAX_TENSOR_ELEMENTS:
                raise UserError(f"{node.origin}: layer '{node.name}': {label} of shape {list(shape)} has "
                                f"{math.prod(shape):,} values; at most {MAX_TENSOR_ELEMENTS:,} are supported")


def read_checked(path: Path, schema: dict, what: str) -> tuple[yaml.Node, dict]:
    """A YAML file checked against a JSON Schema; every error names the file, the line and the field."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"{path}: {path.stat().st_size:,} bytes is too large for a {what} "
                            f"(at most {MAX_FILE_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a text file (byte {err.start} is not UTF-8); a {what} is YAML text") from None
    if "\0" in text:
        raise UserError(f"{path}: not a text file (it holds NUL bytes); a {what} is YAML text")
    try:
        for event in yaml.parse(text):
            if isinstance(event, yaml.AliasEvent):
                raise UserError(f"{path}:{event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                                f"allowed in a {what}; write the value out")
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if root is None:
        raise UserError(f"{path}: empty {what}")

    errors = sorted(_VALIDATOR(schema).iter_errors(data),
                    key=lambda e: _line_of(root, list(e.absolute_path)))
    if errors:
        lines = []
        for error in errors:
            field_path, message = _describe(error)
            lines.append(f"{path}:{_line_of(root, field_path)}: {_field(field_path)}: {message}")
        raise UserError("\n".join(dict.fromkeys(lines)))
    return root, data


def fingerprint(data: dict) -> str:
    """What a tuning file is bound to: the input's shape and the layers as written (names, kinds, fields), not the
    model's name, description or file."""
    text = json.dumps({"input": data["input"].get("shape"), "layers": data["layers"]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _build_graph(path: Path, root: yaml.Node, data: dict) -> Graph:
    input_name = data["input"].get("name", "data")
    graph = Graph(name=data["name"], input_name=input_name, input_shape=tuple(data["input"]["shape"]),
                  nodes=[], source=str(path))
    if "labels" in data and not (path.parent / data["labels"]).is_file():
        raise UserError(f"{path}:{_line_of(root, ['labels'])}: labels: no such file: {path.parent / data['labels']} "
                        "(a relative path is read from the description's folder)")
    graph.meta = {
        "description": data.get("description", ""),
        "preprocess": data.get("preprocess", {}),
        "labels": str((path.parent / data["labels"]).resolve()) if "labels" in data else None,
        "fingerprint": fingerprint(data),
    }
    outputs = {input_name: input_name}  # layer name -> the tensor later layers mean by it
    previous = input_name
    for index, layer in enumerate(data["layers"]):
        origin = f"{path}:{_line_of(root, ['layers', index])}"
        name = layer["name"]
        if name in outputs:
            raise UserError(f"{origin}: layers[{index}].name: '{name}' is used twice")
        wanted = layer.get("input", [])
        inputs = []
        for tensor in [wanted] if isinstance(wanted, str) else wanted:
            if tensor not in outputs:
                raise UserError(f"{origin}: layers[{index}].input: no earlier layer named '{tensor}'")
            inputs.append(outputs[tensor])
        inputs = inputs or [previous]
        outputs[name] = previous = _expand(graph, layer, inputs, origin)
    return graph


def _expand(graph: Graph, layer: dict, inputs: list[str], origin: str) -> str:
    """Add the nodes of one YAML layer (several for ops the reader expands, like fire); an `activation` field
    becomes its own node after the layer (the fuse_activation pass fuses it where a kernel can). Returns the tensor
    that stands for the layer's output."""
    name, kind = layer["name"], layer["type"]
    attrs = {k: v for k, v in layer.items() if k not in ("name", "type", "input")}
    op = ops.get(kind)
    nodes = op.expand(name, attrs, inputs, origin) if hasattr(op, "expand") else [Node(name, kind, inputs, attrs,
                                                                                          origin=origin)]
    output: dict[str, str] = {}  # node -> the tensor its readers mean (after its activation)
    for node in nodes:
        node.inputs = [output.get(t, t) for t in node.inputs]
        activation = node.attrs.pop("activation", "none")
        graph.nodes.append(node)
        output[node.name] = node.name
        if activation != "none":
            graph.nodes.append(Node(f"{node.name}.{activation}", activation, [node.name], origin=origin))
            output[node.name] = f"{node.name}.{activation}"
    return output[nodes[-1].name]
