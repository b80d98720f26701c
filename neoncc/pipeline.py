"""The build steps SConstruct runs: model description -> graph -> passes -> C++ / weight file / manifest."""

from __future__ import annotations

import json
from pathlib import Path

from neoncc.codegen.cpp import generate, write_atomically
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.graph import Graph
from neoncc.passes import optimize
from neoncc.passes.conv_method import load_tuning
from neoncc.quantize.calibration import load_calibration
from neoncc.quantize.plan import QuantPlan, check_supported, make_plan, quantized_tensors
from neoncc.weights import engine_format
from neoncc.weights.pack import engine_tensors, load_npz, random_weights


def load_optimized(model: Path) -> Graph:
    return optimize(load_yaml_model(model))


def write_source(model: Path, out: Path, tuning: Path | None = None, plan: Path | None = None) -> None:
    graph = optimize(load_yaml_model(model), load_tuning(tuning), str(tuning))
    write_atomically(Path(out), generate(graph, QuantPlan.read(plan) if plan else None))


def _float_engine_tensors(model: Path, npz: Path | None, seed: int) -> tuple[Graph, list]:
    graph = load_yaml_model(model)  # the weights are checked against the model as written, before any pass
    weights = load_npz(graph, Path(npz)) if npz else random_weights(graph, seed)
    optimized = optimize(graph)
    return optimized, engine_tensors(optimized, weights)


def write_weights(model: Path, npz: Path | None, seed: int, out: Path, plan: Path | None = None) -> None:
    graph, tensors = _float_engine_tensors(model, npz, seed)
    if plan:
        tensors = quantized_tensors(graph, QuantPlan.read(plan), tensors)
    engine_format.write(Path(out), tensors)


def write_plan(model: Path, npz: Path | None, seed: int, calibration: Path, out: Path,
               method: str = "percentile") -> None:
    """The 8-bit plan (neoncc/quantize/plan.py) from the float engine run on the calibration set."""
    check_supported(optimize(load_yaml_model(model)))  # refuse unsupported layers before any other work
    graph, tensors = _float_engine_tensors(model, npz, seed)
    inputs = load_calibration(calibration, graph)
    write_atomically(Path(out), make_plan(graph, dict(tensors), inputs, method).to_json())


def write_manifest(model: Path, npz: Path | None, seed: int, target: str, out: Path,
                   precision: str = "float32") -> None:
    """What deploy and validation tools need to know about a built engine, without re-reading the YAML."""
    graph = load_optimized(model)
    manifest = {
        "model": graph.name,
        "target": target,
        "precision": precision,
        "source": str(model),
        "input_name": graph.input_name,
        "input_shape": list(graph.input_shape),
        "output_shape": [graph.nodes[-1].shape[0]],
        "weights": str(npz) if npz else None,
        "weights_random": npz is None,
        "seed": None if npz else seed,
        "labels": graph.meta["labels"],
        "preprocess": graph.meta["preprocess"],
    }
    write_atomically(Path(out), json.dumps(manifest, indent=2) + "\n")
