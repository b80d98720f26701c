"""The YAML model description (configs/models/*.yaml) -> graph IR, validated against model.schema.yaml.

Every error names the file, the line and the field, because the YAML is what the user edits.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import yaml

from neoncc import ops
from neoncc.errors import UserError
from neoncc.ir.graph import Graph, Node
from neoncc.ir.shapes import infer_shapes

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
    graph = _build_graph(path, root, data)
    infer_shapes(graph)
    return graph


def read_checked(path: Path, schema: dict, what: str) -> tuple[yaml.Node, dict]:
    """A YAML file checked against a JSON Schema; every error names the file, the line and the field."""
    try:
        text = path.read_text()
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror}") from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if root is None:
        raise UserError(f"{path}: empty {what}")

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data),
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
