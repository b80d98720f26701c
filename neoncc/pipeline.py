"""The build steps SConstruct runs: model description -> graph (+ weights as constants) -> passes -> one lowered
graph, from which the C++, the weight file and the manifest are all written in one step (`compile_engine`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.graph import Graph
from neoncc.passes import lower, optimize
from neoncc.passes.select_kernels import load_tuning
from neoncc.quantize.plan import QuantPlan
from neoncc.weights.pack import attach, engine_tensors, load_npz, random_weights

PRECISIONS = ("float32", "int8")


def content_sha256(path: Path | str | None) -> str | None:
    """The sha256 of a file's bytes, or of a folder's files (names and bytes, sorted; subfolders ignored, as the
    calibration loader does); None for no path."""
    if not path:
        return None
    path = Path(path)
    if path.is_file():
        return _file_digest(path).hexdigest()
    digest = hashlib.sha256()
    for member in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(member.name.encode() + b"\0" + _file_digest(member).digest())
    return digest.hexdigest()


def _file_digest(path: Path):
    """A file's sha256, read in 1 MiB blocks (weight files and engines need not fit in memory twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


def identity(description: dict) -> str:
    """What makes two builds the same engine: the model file, the weights (content, or the seed of random ones),
    precision and calibration, tuning, layout and target. A short hash deploy compares before reusing a build."""
    keys = ("model_sha256", "target", "precision", "layout", "weights_sha256", "seed", "tuning_sha256",
            "calibration")
    return hashlib.sha256(json.dumps({k: description.get(k) for k in keys}, sort_keys=True).encode()).hexdigest()[:16]


def float_graph(model: Path, npz: Path | None, seed: int) -> Graph:
    """The optimised float graph with its constants: the weights are checked against the model as written, before
    any pass rewrites them."""
    graph = load_yaml_model(model)
    arrays = load_npz(graph, Path(npz)) if npz else random_weights(graph, seed)
    return optimize(attach(graph, arrays))


def lowered_graph(model: Path, npz: Path | None, seed: int, target: str, tuning: Path | None = None,
                  plan: QuantPlan | None = None, layout: str = "auto") -> Graph:
    """What the engine is: precision (`plan`, an 8-bit build's), a kernel for every node, layouts and conversions,
    constants as stored."""
    from neoncc.targets import toolchain
    spec = toolchain.load(target).spec
    return lower(float_graph(model, npz, seed), tuning=load_tuning(tuning), plan=plan,
                 strategy=spec.get("strategy", {}), layout_mode=layout,
                 default_layout=spec.get("default_layout", "NCHW"))


def compile_engine(model: Path, npz: Path | None, seed: int, target: str, cpp: Path, weights: Path, manifest: Path,
                   tuning: Path | None = None, plan: Path | None = None, layout: str = "auto",
                   calibration: Path | None = None, calibration_method: str | None = None) -> None:
    """The one compile step: the lowered graph, then its C++, its weight file and its manifest. The manifest
    records what the build is made of (model, weights, precision, calibration, tuning: content hashes), so a
    later deploy can tell whether this build is the one asked for."""
    from neoncc.codegen.cpp import generate, write_atomically
    from neoncc.weights import engine_format
    quant = QuantPlan.read(plan) if plan else None
    graph = lowered_graph(model, npz, seed, target, tuning, quant, layout)
    source = generate(graph)
    tensors = engine_tensors(graph)
    description = {
        "model": graph.name,
        "target": target,
        "precision": "int8" if plan else "float32",
        "layout": layout,
        "source": str(model),
        "input_name": graph.input_name,
        "input_shape": list(graph.input_shape),
        "output_shape": [graph.shape_of(graph.output)[0]],
        "weights": str(npz) if npz else None,
        "model_sha256": content_sha256(model),
        "weights_sha256": content_sha256(npz),
        "weights_random": npz is None,
        "seed": None if npz else seed,
        "tuning": str(tuning) if tuning else None,
        "tuning_sha256": content_sha256(tuning),
        "calibration": {"dir": str(calibration), "sha256": content_sha256(calibration), "method": calibration_method,
                        "bias_correction": bool(quant.bias_corrections),
                        "plan_sha256": content_sha256(plan)} if plan else None,
        "labels": graph.meta["labels"],
        "preprocess": graph.meta["preprocess"],
        "layers": [{"name": n.name, "op": n.op, "kernel": n.attrs["impl"], "layout": n.attrs["layout"],
                    "precision": n.attrs.get("precision", "float32")} for n in graph.nodes],
    }
    description["build_id"] = identity(description)
    # Weights first, manifest last: a manifest always describes the files beside it.
    engine_format.write(Path(weights), tensors)
    write_atomically(Path(cpp), source)
    write_atomically(Path(manifest), json.dumps(description, indent=2) + "\n")


def write_plan(model: Path, npz: Path | None, seed: int, calibration: Path, out: Path,
               method: str = "percentile", bias_correction: bool = True) -> None:
    """The 8-bit plan (neoncc/quantize/plan.py) from the float graph run on the calibration set."""
    from neoncc.codegen.cpp import write_atomically
    from neoncc.quantize.calibration import load_calibration
    from neoncc.quantize.plan import check_supported, make_plan
    check_supported(optimize(load_yaml_model(model)))  # refuse unsupported layers before any other work
    graph = float_graph(model, npz, seed)
    inputs = load_calibration(calibration, graph)
    write_atomically(Path(out), make_plan(graph, inputs, method, correct_biases=bias_correction).to_json())


def import_plan(model: Path, npz: Path | None, seed: int, scales: Path, out: Path) -> None:
    """The 8-bit plan from the scales and zero points a quantized model came with (`neoncc import tflite` writes
    them), instead of a calibration."""
    from neoncc.codegen.cpp import write_atomically
    from neoncc.errors import UserError
    from neoncc.quantize.plan import check_supported, plan_from_scales
    check_supported(optimize(load_yaml_model(model)))
    try:
        data = json.loads(Path(scales).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"int8_scales={scales}: not a readable scales file: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tensors"), dict):
        raise UserError(f"int8_scales={scales}: no 'tensors' table (write the file with neoncc import tflite)")
    graph = float_graph(model, npz, seed)
    write_atomically(Path(out), plan_from_scales(graph, data, str(scales)).to_json())
