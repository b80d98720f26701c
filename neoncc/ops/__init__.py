"""The op registry: every op the compiler knows, each defined once, in one module of this package.

An op is a subclass of `Op` that says, in one place:
  - `fields` / `required`: its YAML fields (a JSON Schema fragment; the model schema is assembled from these),
  - `infer`: its shape rule (and the trained tensors it needs, as `Param`s), `macs`: its cost,
  - `reference`: what it computes, in PyTorch (the host reference every engine is checked against),
  - `quant`: how it behaves in 8 bits ("own" range, "inherit" its input's, "float" after de-quantization,
    or None: no 8-bit path),
  - `implementations`: how it is lowered — one `Impl` per kernel (an ACL function or one of ours in runtime/),
    each with its template (templates/ops/<template>.cpp.j2), the layouts and precisions it runs in;
    `lower` fills the template's fields for a node.
Ops that a pass always removes (dropout) or that the reader expands (fire) say so in `removed_by` instead of
having implementations. `check_registry()` runs when the registry loads: an op missing a piece is an error
then, never a traceback at build time.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from neoncc import PROJECT_ROOT
from neoncc.errors import UserError

TEMPLATE_DIR = PROJECT_ROOT / "templates"
LAYOUTS = ("NCHW", "NHWC")
PRECISIONS = ("float32", "int8")
QUANT_KINDS = ("own", "inherit", "float", None)


@dataclass(frozen=True)
class Impl:
    """One way to run an op: a C++ function class (ACL's, or `engine::...` from runtime/) and its template."""

    function: str
    template: str
    layouts: tuple[str, ...] = LAYOUTS
    precisions: tuple[str, ...] = ("float32",)
    scratch: bool = False   # its constructor takes the network's scratch memory manager
    extra: tuple[str, ...] = ()  # further C++ functions the template declares (their headers are included)
    # It writes its output at any pixel strides, so its output can be a channel range of a wider NHWC tensor (a
    # copy-free concat in NHWC; ACL's own kernels need NCHW for that).
    strided_output: bool = False
    # A float32 kernel that can also write a QASYMM8 output, quantizing at its store (passes/fuse_quantize.py).
    quantized_output: bool = False
    # Which nodes it runs (None: any): a test of the node, and what it needs in words, for refusals.
    requires: tuple[Callable[[Any], bool], str] | None = None

    def accepts(self, node) -> bool:
        return self.requires is None or self.requires[0](node)


class Op:
    name: ClassVar[str]
    doc: ClassVar[str] = ""
    fields: ClassVar[dict[str, Any]] = {}
    required: ClassVar[tuple[str, ...]] = ()
    arity: ClassVar[int | None] = 1          # inputs it takes; None: one or more
    yaml: ClassVar[bool] = True              # can be written in a model description
    quant: ClassVar[str | None] = None
    imported_quant: ClassVar[str | None] = None  # "own": takes a quantized model's own output quantization
    group: ClassVar[str] = "conv+relu+concat"  # the paper's time breakdown
    implementations: ClassVar[dict[str, Impl]] = {}
    removed_by: ClassVar[str | None] = None  # the pass (or reader) that always removes it

    def infer(self, node, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        raise NotImplementedError

    def macs(self, node, shapes: list[tuple[int, ...]]) -> int:
        return 0

    def reference(self, node, xs: list, w: dict):
        raise NotImplementedError

    def lower(self, node, ctx, impl: Impl) -> dict:
        """The template's fields for a node (the code generator adds name, function, inputs and output)."""
        return {}

    def summary(self, node) -> str:
        return self.name

    def default_impl(self, node, precision: str, strategy: dict[str, str]) -> str:
        """Which implementation a node gets when nothing (tuning) chose one: the target's strategy table, else
        the first one that runs in this precision."""
        if self.name in strategy.get(precision, {}):
            return strategy[precision][self.name]
        for key, impl in self.implementations.items():
            if precision in impl.precisions and impl.accepts(node):
                return key
        raise UserError(f"{node.origin}: layer '{node.name}': '{self.name}' has no {precision} implementation; "
                        f"build this model with precision=float32")


_REGISTRY: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: adds one instance of the op to the registry under its name."""
    if cls.name in _REGISTRY:
        raise RuntimeError(f"op '{cls.name}' registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _load() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def get(name: str, node=None) -> Op:
    try:
        return _REGISTRY[name]
    except KeyError:
        where = f"{node.origin}: layer '{node.name}': " if node is not None else ""
        raise UserError(f"{where}unknown op '{name}' (known: {', '.join(sorted(_REGISTRY))})") from None


def all_ops() -> dict[str, Op]:
    return dict(_REGISTRY)


def check_registry() -> list[str]:
    """Every op complete: a shape rule, a reference, a known 8-bit behaviour, and implementations whose templates
    exist (or the pass that removes it). Returns the problems found, one line each."""
    problems = []
    for name, op in sorted(_REGISTRY.items()):
        cls = type(op)
        if cls.infer is Op.infer:
            problems.append(f"op '{name}': no shape rule (infer)")
        if cls.reference is Op.reference:
            problems.append(f"op '{name}': no host reference")
        if op.quant not in QUANT_KINDS:
            problems.append(f"op '{name}': quant '{op.quant}' is not one of {QUANT_KINDS}")
        if op.removed_by is None and not op.implementations:
            problems.append(f"op '{name}': no implementation and no pass that removes it")
        for key, impl in op.implementations.items():
            if not (TEMPLATE_DIR / "ops" / f"{impl.template}.cpp.j2").is_file():
                problems.append(f"op '{name}': implementation '{key}': templates/ops/{impl.template}.cpp.j2 is missing")
            if not set(impl.layouts) <= set(LAYOUTS) or not set(impl.precisions) <= set(PRECISIONS):
                problems.append(f"op '{name}': implementation '{key}': unknown layout or precision")
        if op.yaml and not isinstance(op.fields, dict):
            problems.append(f"op '{name}': fields must be a JSON Schema properties mapping")
        if op.yaml and (not inspect.getdoc(cls) or not op.doc):
            problems.append(f"op '{name}': no description (doc)")
    return problems


def layer_schema() -> dict:
    """The JSON Schema of a YAML layer, assembled from every op's fields."""
    kinds = sorted(name for name, op in _REGISTRY.items() if op.yaml)
    branches = []
    for name in kinds:
        op = _REGISTRY[name]
        branch: dict[str, Any] = {"propertyNames": {"enum": ["name", "type", "input", *op.fields]}}
        if op.fields:
            branch["properties"] = dict(op.fields)
        required = list(op.required) + (["input"] if op.arity == 2 else [])
        if required:
            branch["required"] = required
        if op.arity == 2:
            branch.setdefault("properties", {})["input"] = {"type": "array", "minItems": 2, "maxItems": 2}
        branches.append({"if": {"properties": {"type": {"const": name}}}, "then": branch})
    return {"type": "object", "required": ["name", "type"],
            "properties": {"name": {"$ref": "#/$defs/identifier"}, "type": {"enum": kinds},
                           "input": {"$ref": "#/$defs/inputs"}},
            "allOf": branches}


_load()
_problems = check_registry()
if _problems:
    raise RuntimeError("incomplete op registry:\n" + "\n".join(_problems))
