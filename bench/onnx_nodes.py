"""ONNX's own backend node tests (the generators shipped in the `onnx` package, onnx.backend.test.case.node) for
the operators the ONNX importer maps: each single-node model is imported with `neoncc import onnx`, built, run
under qemu-arm and compared with the output ONNX expects.

A case is applicable when its first input is what the engine takes: one float32 (1, C, H, W) tensor, and the model
has one output. Its other inputs (a Conv's weights, an Add's second operand) become constants of the model, as in
an exported network. Each case ends in one of:
  pass      the engine's output matches ONNX's expected output (1e-4 relative to its largest value),
  fail      it builds and runs but computes something else (a silent wrong result: never acceptable),
  refused   the importer or the build refuses it with one `error:` line naming the node (or layer) and why,
  n/a       not applicable (see above).

`python3 -m bench onnx-nodes` runs every case and prints the counts (results/onnx_nodes.md lists each case);
tests/test_onnx_nodes.py runs a subset.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from neoncc import PROJECT_ROOT

# The ONNX operators the importer maps (a case is taken when its node is one of these).
OPS = ("Conv", "BatchNormalization", "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish",
       "Add", "Sub", "Mul", "Div", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean",
       "ReduceMax", "Concat", "Split", "Slice", "Gemm", "MatMul", "Flatten", "Reshape", "Squeeze", "Unsqueeze",
       "Transpose", "Softmax", "Pad", "Resize", "Upsample", "Dropout", "Identity")


@dataclass
class Outcome:
    name: str
    op: str
    status: str  # pass, fail, refused, n/a
    detail: str = ""


def cases(names: list[str] | None = None) -> list:
    import warnings
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = [c for c in collect_testcases(None) if "expanded" not in c.name and c.model.graph.node
                 and c.model.graph.node[0].op_type in OPS and len(c.model.graph.node) == 1]
    if names:
        found = [c for c in found if c.name in names]
    return found


def applicable(case) -> str | None:
    """Why the case is not applicable, or None."""
    inputs, _ = case.data_sets[0]
    first = inputs[0] if inputs else None
    if not isinstance(first, np.ndarray) or first.dtype != np.float32 or first.ndim != 4 or first.shape[0] != 1:
        return "the first input is not a float32 (1, C, H, W) tensor"
    if len(case.model.graph.output) != 1:
        return f"{len(case.model.graph.output)} outputs"
    return None


def as_model(case) -> onnx.ModelProto:
    """The case's model with every input but the first turned into a constant (initializer)."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, _ = case.data_sets[0]
    graph = model.graph
    for value, data in list(zip(list(graph.input)[1:], inputs[1:])):
        graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(data), value.name))
        graph.input.remove(value)
    return model


def run_case(case, work: Path, build_dir: Path | None = None) -> Outcome:
    """One case in `work`; engines are built under `build_dir` (shared, so ACL's runtime objects compile once)."""
    from bench.engine import build
    from neoncc.__main__ import main
    from neoncc.errors import UserError
    op = case.model.graph.node[0].op_type
    why = applicable(case)
    if why:
        return Outcome(case.name, op, "n/a", why)
    work.mkdir(parents=True, exist_ok=True)
    path, yaml_path, npz = work / f"{case.name}.onnx", work / f"{case.name}.yaml", work / f"{case.name}.npz"
    onnx.save(as_model(case), path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["import", "onnx", str(path), "-o", str(yaml_path), "--weights-out", str(npz)])
    if status != 0:
        lines = err.getvalue().strip().splitlines()
        if "Traceback" in err.getvalue() or len(lines) != 1 or not lines[0].startswith("error: "):
            return Outcome(case.name, op, "fail", "not one error line: " + err.getvalue()[-300:])
        return Outcome(case.name, op, "refused", lines[0].split(": node ", 1)[-1])
    try:
        binary = build(yaml_path, build_dir or work / "build", npz, tuning="none")
    except UserError as error:
        text = str(error)
        if "Traceback" in text:
            return Outcome(case.name, op, "fail", "build traceback: " + text[-300:])
        message = next((line for line in text.splitlines() if "error:" in line), text.splitlines()[0])
        return Outcome(case.name, op, "refused", "build: " + message.split("error:", 1)[-1].strip())
    inputs, outputs = case.data_sets[0]
    try:
        actual = run_engine(binary, inputs[0][0], work)
    except RuntimeError as error:
        return Outcome(case.name, op, "fail", str(error)[-300:])
    expected = np.asarray(outputs[0], np.float32)
    if actual.size != expected.size:
        return Outcome(case.name, op, "fail", f"{actual.size} values, expected {expected.size}")
    expected = expected.ravel()
    scale = max(float(np.abs(expected).max()), 1e-6)
    diff = np.abs(actual - expected)
    if not np.all(diff <= 1e-4 * scale + 1e-4 * np.abs(expected)):
        return Outcome(case.name, op, "fail", f"max abs diff {diff.max():.3g} (largest value {scale:.3g})")
    return Outcome(case.name, op, "pass", f"max abs diff {diff.max():.2g}")


def run_engine(binary: Path, tensor: np.ndarray, work: Path) -> np.ndarray:
    """One inference under the default target's runner (qemu-arm)."""
    import subprocess
    from neoncc.targets import toolchain
    source, result = work / "input.f32", work / "output.f32"
    np.ascontiguousarray(tensor, "<f4").tofile(source)
    target = toolchain.load(toolchain.default_target())
    proc = subprocess.run([*target.runner(), str(binary), "--input", str(source), "--output", str(result)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"engine exited with {proc.returncode}: {proc.stderr.strip()}")
    return np.fromfile(result, "<f4")


def node_tests(names: list[str] | None = None, log=print) -> list[Outcome]:
    found = cases(names)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="neoncc-onnx-nodes-") as work:
        for case in found:
            outcome = run_case(case, Path(work) / case.name, Path(work) / "build")
            log(f"{outcome.status:8} {outcome.name}: {outcome.detail}")
            outcomes.append(outcome)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("pass", "fail", "refused", "n/a")}
    applicable_count = len(outcomes) - counts["n/a"]
    lines = [f"# ONNX backend node tests: {counts['pass']} of {applicable_count} applicable cases pass", "",
             f"{counts['pass']} passed, {counts['fail']} failed, {counts['refused']} refused, {counts['n/a']} not "
             f"applicable ({len(outcomes)} cases of {', '.join(OPS)}). Written by `python3 -m bench onnx-nodes`.", "",
             "| case | op | result | detail |", "| --- | --- | --- | --- |"]
    lines += [f"| {o.name} | {o.op} | {o.status} | {o.detail.replace('|', '/')} |" for o in outcomes]
    out = PROJECT_ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "onnx_nodes.md").write_text("\n".join(lines) + "\n")
    log(f"{counts['pass']} passed, {counts['fail']} failed")
    log(f"({counts['refused']} refused, {counts['n/a']} not applicable; {counts['pass']} of {applicable_count} "
        f"applicable cases pass; results/onnx_nodes.md)")
    return outcomes
