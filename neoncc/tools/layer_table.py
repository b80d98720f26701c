"""The table of layer types and their fields, generated from the op registry (each op's `fields`, `required`,
`arity` and doc line), so the documentation cannot drift from what the model schema accepts.

    python3 -m neoncc.tools.layer_table            prints it (docs/layers.md holds it; a test compares)
"""

from __future__ import annotations

import argparse
import json

from neoncc import ops

BEGIN, END = "<!-- layer-table:begin -->", "<!-- layer-table:end -->"


SHARED = {  # the model schema's $defs the ops' fields point at, in words
    "#/$defs/size2": "N or [h, w]",
    "#/$defs/padding": "N or [top, bottom, left, right]",
}


def _defs() -> dict:
    import yaml
    from pathlib import Path
    import neoncc.frontend
    return yaml.safe_load((Path(neoncc.frontend.__file__).with_name("model.schema.yaml")).read_text())["$defs"]


def _kind(spec: dict) -> str:
    if "$ref" in spec:
        return SHARED.get(spec["$ref"]) or _kind(_defs()[spec["$ref"].rsplit("/", 1)[-1]])
    if "const" in spec:
        return json.dumps(spec["const"])
    if "enum" in spec:
        return " or ".join(map(str, spec["enum"]))
    kind = spec.get("type") or " or ".join(_kind(s) for s in spec.get("oneOf", spec.get("anyOf", []))) or "value"
    return " or ".join(kind) if isinstance(kind, list) else kind


def _field(name: str, spec: dict, required: bool) -> str:
    kind = _kind(spec)
    default = f", default {json.dumps(spec['default'])}" if "default" in spec else ""
    text = f"`{name}` ({kind}{default})"
    return f"**{text}**" if required else text


def table() -> str:
    rows = ["| type | fields (**required**) | inputs | what it is |", "|---|---|---|---|"]
    for name, op in sorted(ops.all_ops().items()):
        if not op.yaml:
            continue
        fields = ", ".join(_field(f, spec if isinstance(spec, dict) else {}, f in op.required)
                           for f, spec in op.fields.items()) or "—"
        inputs = {1: "one (`input: a`, default the previous layer)",
                  2: "**two** (`input: [a, b]`)"}.get(op.arity, "one or more (`input: [a, b, ...]`)")
        doc = (op.doc or op.__doc__ or "").strip().split("\n")[0].replace("|", "\\|")
        rows.append(f"| `{name}` | {fields} | {inputs} | {doc} |")
    return "\n".join([BEGIN, *rows, END]) + "\n"


if __name__ == "__main__":
    argparse.ArgumentParser(prog="python3 -m neoncc.tools.layer_table", description=__doc__.split("\n\n")[0]).parse_args()
    print(table(), end="")
