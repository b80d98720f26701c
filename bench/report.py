"""The benchmark report: our engine and its peers on the same network, weights and input under the same
emulator, in one run. Guest instructions per single-thread inference (exact, repeatable) are the cost; emulated
wall times are shown too, labelled as such: qemu ranks NEON code wrongly and a 2-core host cannot show 4-thread
scaling, so they are not board times.

    python3 -m bench report [--models squeezenet_v1_1 squeezenet_v1_0 efficientnet_lite0]
                            [--peers tflite acl_graph acl_graph_nhwc opencv_dnn plain_cpp xnnpack xnnpack_a7
                                     xnnpack_int8 acl24_graph_nhwc ncnn ncnn_int8 onnxruntime onnxruntime_xnnpack]

writes results/<stamp>/report.md, report.json and charts, and the same report as docs/benchmarks.md (keeping
its int8 and notes sections) with charts in docs/benchmarks/.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench import layout  # noqa: E402
from bench import threads as thread_scaling  # noqa: E402
from bench import peers as peer_engines  # noqa: E402
from bench.engine import build, count_engine  # noqa: E402
import bench  # noqa: E402
from neoncc import PROJECT_ROOT  # noqa: E402
from neoncc.errors import UserError  # noqa: E402
from neoncc.frontend.yaml_model import load_yaml_model  # noqa: E402
from neoncc.ir.shapes import macs  # noqa: E402
from neoncc.passes import lower, optimize  # noqa: E402
from neoncc.targets import toolchain  # noqa: E402
from neoncc.tools.preprocess import preprocess  # noqa: E402
from neoncc.weights.pack import random_weights  # noqa: E402

DOCS = PROJECT_ROOT / "docs" / "benchmarks.md"
# Hand-written sections the regenerated page keeps: the int8 results and the notes on what was tried.
KEPT_SECTIONS = re.compile(r"<!-- (int8|notes|kernels):begin -->.*?<!-- \1:end -->", re.S)


def largest_live_set(model: Path) -> int:
    """Bytes of the largest set of activations alive at once between the network's input and output (both held
    outside the pool): the floor for any lifetime-based activation memory, computed from the graph."""
    graph = lower(optimize(load_yaml_model(model)), layout_mode="nchw")
    steps = graph.nodes
    home = {name: t.view_of[0] for name, t in graph.tensors.items() if t.view_of}
    size = {name: 4 * math.prod(t.shape) for name, t in graph.tensors.items()}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, node in enumerate(steps):
        written = home.get(node.output, node.output)
        first.setdefault(written, index)
        last[written] = max(last.get(written, index), index)
        for tensor in node.inputs:
            last[home.get(tensor, tensor)] = index
    inner = [t for t in first if t != graph.output]
    return max(sum(size[t] for t in inner if first[t] <= i <= last[t]) for i in range(len(steps)))


def emulated_ms(binary: Path, input_path: Path, threads: int, runs: int, target: str | None = None) -> dict:
    runner = toolchain.load(target or toolchain.default_target()).runner()
    proc = subprocess.run([*runner, str(binary), "--input", str(input_path), "--output", str(input_path) + ".out",
                           "--threads", str(threads), "--runs", str(runs), "--warmup", "1", "--json"],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def measure_model(name: str, peer_names: list[str], runs: int, work: Path, log, target: str | None = None) -> dict:
    model = bench.model_path(name)
    name = model.stem
    graph = load_yaml_model(model)
    total_macs = sum(macs(graph, n) for n in graph.nodes)
    np.savez(work / f"{name}.npz", **random_weights(graph, 0))
    import skimage.data
    photo = preprocess(Image.fromarray(skimage.data.chelsea()), graph.meta["preprocess"], graph.input_shape)
    input_path = work / f"{name}.input.f32"
    photo.astype("<f4").tofile(input_path)

    log(f"{name}: our engine (tuned), counting")
    ours = build(model, work / "tuned", work / f"{name}.npz", target=target)
    counted = count_engine(ours, input_path, target=target)
    log(f"{name}: our engine with ACL's own convolution choice, counting")
    untuned = count_engine(build(model, work / "untuned", work / f"{name}.npz", tuning="none", target=target),
                           input_path, target=target)
    scaling = {}
    for threads in (1, 2, 3, 4):
        log(f"{name}: emulated wall time, {threads} thread(s)")
        scaling[threads] = emulated_ms(ours, input_path, threads, runs, target)
    report = scaling[1]
    per_thread = thread_scaling.scaling(ours, input_path, target=target, log=log)
    if per_thread["threads"][1]["critical_path"] != counted.per_inference:
        raise UserError(f"{name}: the 1-thread critical path ({per_thread['threads'][1]['critical_path']}) differs from "
                        f"the single-thread count ({counted.per_inference})")
    result = {
        "model": name, "macs": total_macs, "params": sum(math.prod(p.shape) for p in graph.params),
        "ours": {"instructions": counted.per_inference, "per_layer": counted.per_layer, "groups": counted.groups,
                 "emulated_ms": report["median_ms"], "untuned_instructions": untuned.per_inference,
                 "activation_pool_bytes": report["activation_pool_bytes"], "weights_bytes": report["weights_bytes"],
                 "peak_rss_kb": report["peak_rss_kb"], "largest_live_set_bytes": largest_live_set(model),
                 "all_activations_bytes": sum(4 * math.prod(n.shape) for n in optimize(load_yaml_model(model)).nodes),
                 "scaling_ms": {t: s["median_ms"] for t, s in scaling.items()},
                 "threads": per_thread,
                 "scaling_range_ms": {t: [min(s["times_ms"]), max(s["times_ms"])] for t, s in scaling.items()
                                      if s.get("times_ms")}},
        "peers": {},
    }
    for peer in peer_names:
        log(f"{name}: peer {peer}")
        try:
            engine = peer_engines.prepare(peer, model, work / f"{name}.npz", work / peer, target)
            measured = engine.run(input_path, runs=runs)
            peer_engines.check_agreement(peer, measured.probabilities, counted.output)
            result["peers"][peer] = {"instructions": measured.instructions_per_inference,
                                     "emulated_ms": float(np.median(measured.wall_ms)),
                                     "max_abs_diff": float(np.abs(measured.probabilities - counted.output).max()),
                                     "details": measured.details}
        except UserError as err:   # a peer that fails or disagrees is reported (paths from the project), not measured
            result["peers"][peer] = {"error": str(err).replace(f"{PROJECT_ROOT}/", "")}
    return result


def _charts(results: list[dict], out: Path) -> list[str]:
    names = []
    for r in results:
        layers = r["ours"]["per_layer"]
        fig, ax = plt.subplots(figsize=(10, 4))
        ax.bar(range(len(layers)), [v / 1e6 for v in layers.values()], color="#3b7dd8")
        ax.set_xticks(range(len(layers)), list(layers), rotation=90, fontsize=7)
        ax.set_ylabel("M guest instructions")
        ax.set_title(f"{r['model']}: per layer, one single-thread inference")
        fig.tight_layout()
        fig.savefig(out / f"{r['model']}_layers.png", dpi=110)
        plt.close(fig)
        names.append(f"{r['model']}_layers.png")
    fig, axes = plt.subplots(len(results), 1, figsize=(9, 1.2 + 0.45 * (2 + max(len(r["peers"]) for r in results))
                                                       * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results):  # horizontal bars: the engines' names stay readable, values on them
        engines = {"ours (tuned)": r["ours"]["instructions"], "ours, ACL's own choice": r["ours"]["untuned_instructions"]}
        engines.update({_PEER_LABELS.get(p, p): v["instructions"] for p, v in r["peers"].items() if v.get("instructions")})
        bars = ax.barh(list(engines)[::-1], [v / 1e6 for v in engines.values()][::-1], color="#3b7dd8")
        ax.bar_label(bars, fmt="%.1f M", padding=3, fontsize=8)
        ax.set_xlim(0, 1.15 * max(engines.values()) / 1e6)
        ax.set_title(f"{r['model']}: per single-thread inference (fewer is better)")
        ax.set_xlabel("M guest instructions (qemu-user, exact)")
    fig.tight_layout()
    fig.savefig(out / "peers.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in results:
        groups = r["ours"]["groups"]
        bars = axes[0].bar([f"{r['model']}\n{g}" for g in groups], [v / 1e6 for v in groups.values()])
        axes[0].bar_label(bars, fmt="%.1f", fontsize=7)
        scaling = r["ours"]["scaling_ms"]
        threads = [int(t) for t in scaling]
        spread = r["ours"].get("scaling_range_ms") or {}
        low = [scaling[t] - spread.get(t, (scaling[t], scaling[t]))[0] for t in scaling]
        high = [spread.get(t, (scaling[t], scaling[t]))[1] - scaling[t] for t in scaling]
        axes[1].errorbar(threads, list(scaling.values()), yerr=[low, high], marker="o", capsize=3,
                         label=f"{r['model']} (median, min–max bars)")
        for t, ms in zip(threads, scaling.values()):
            axes[1].annotate(f"{ms:.0f}", (t, ms), textcoords="offset points", xytext=(6, 4), fontsize=7)
    axes[0].set_title("time breakdown as in the paper" if all(r["model"] in PAPER_MODELS for r in results)
                      else "time by layer group")
    axes[0].set_ylabel("M guest instructions per inference")
    axes[0].tick_params(axis="x", labelsize=7)
    axes[1].set_title("threads (EMULATED on a 2-core host, not board times)")
    axes[1].set_xlabel("threads")
    axes[1].set_ylabel("emulated ms per inference")
    axes[1].set_xticks([1, 2, 3, 4])
    axes[1].set_ylim(bottom=0)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "groups_threads.png", dpi=110)
    plt.close(fig)
    return names + ["peers.png", "groups_threads.png"]


_PEER_LABELS = {
    "tflite": "TensorFlow Lite 2.14 (tflite-runtime)",
    "litert": "LiteRT 1.4 (ai-edge-litert)",
    "acl_graph": "ACL 20.08 graph API, NCHW",
    "acl_graph_nhwc": "ACL 20.08 graph API, NHWC",
    "opencv_dnn": "OpenCV 4.6 DNN (Debian armhf)",
    "plain_cpp": "plain C++ loops (GCC -O3, no ACL)",
    "xnnpack": "XNNPACK 2022 (Debian), generic kernels (no core named in qemu's /proc/cpuinfo)",
    "xnnpack_a7": "XNNPACK 2022 (Debian), Cortex-A7 kernels (board's /proc/cpuinfo)",
    "xnnpack_int8": "XNNPACK 2022 (Debian), int8 (QC8 per-channel weights, our int8 plan; checked to 2e-2)",
    "acl24_graph_nhwc": "ACL 24.11 graph API, NHWC (Debian trixie)",
    "ncnn": "ncnn 1.0.20261020 (PyPI wheel), float32",
    "ncnn_int8": "ncnn 1.0.20261020, int8 (per-channel weights, calibrated; checked to 2e-2)",
    "onnxruntime": "ONNX Runtime 1.21 (Debian trixie), CPU EP",
    "onnxruntime_xnnpack": "ONNX Runtime 1.21 (Debian trixie), XNNPACK EP",
}


def _peer_label(peer: str, measured: dict) -> str:
    label = _PEER_LABELS.get(peer, peer)
    if peer == "tflite":   # say what ran: the armv7l wheel may lack XNNPACK
        xnnpack = measured["details"].get("xnnpack")
        label += ", XNNPACK applied" if xnnpack else ", no XNNPACK in the armv7l wheel (built-in kernels)"
    if peer == "litert":
        label += ", XNNPACK applied" if measured["details"].get("xnnpack") else ", XNNPACK NOT applied"
    return label


PAPER_MODELS = {"squeezenet_v1_0", "squeezenet_v1_1"}  # the models the paper and the project's targets are about
# Issue 11: EfficientNet-Lite0 in float32 below these peers (those that run it) on the same weights.
RIVALS = {"efficientnet_lite0": ("ncnn", "xnnpack", "xnnpack_a7")}


def _rival_targets(r: dict) -> list[str]:
    """The issue's per-peer targets for a model of RIVALS, each met or missed, or why it was not measured."""
    lines = []
    for peer in RIVALS.get(r["model"], ()):
        measured = r["peers"].get(peer)
        if measured is None:
            continue
        label = _PEER_LABELS.get(peer, peer)
        if "instructions" not in measured:
            lines.append(f"fewer instructions than {label}: not measured ({measured['error'].splitlines()[0]})")
            continue
        ratio = measured["instructions"] / r["ours"]["instructions"]
        lines.append(f"fewer instructions than {label}: {'met' if ratio > 1 else 'MISSED'} ({ratio:.2f}x ours)")
    return lines


def _targets(r: dict) -> list[str]:
    """The issue's targets, each met or missed by how much, from this run's numbers."""
    o, measured = r["ours"], {p: v for p, v in r["peers"].items() if "instructions" in v}
    lines = []
    if measured:
        best = min(measured, key=lambda p: measured[p]["instructions"])
        fewest = measured[best]["instructions"]
        verdict = "met" if o["instructions"] < fewest else "MISSED"
        lines.append(f"fewer instructions than every peer: {verdict} (closest: {_PEER_LABELS.get(best, best)}, "
                     f"{fewest / o['instructions']:.2f}x ours)")
    if "opencv_dnn" in measured:
        ratio = measured["opencv_dnn"]["instructions"] / o["instructions"]
        lines.append(f"at least 3x fewer than OpenCV DNN: {'met' if ratio >= 3 else 'MISSED'} ({ratio:.2f}x)")
    per_mac = o["instructions"] / r["macs"]
    lines.append(f"at most 0.6 instructions per MAC: {'met' if per_mac <= 0.6 else 'MISSED'} ({per_mac:.3f}; "
                 f"{r['macs'] / 1e6:.1f} M MACs)")
    if r["model"] == "squeezenet_v1_1" and o.get("threads"):
        ratio = o["threads"]["threads"][4]["critical_path"] / o["threads"]["threads"][1]["critical_path"]
        lines.append(f"4-thread critical path at most 0.3x the 1-thread count: {'met' if ratio <= 0.3 else 'MISSED'} "
                     f"({ratio:.3f}x)")
    pool = o["activation_pool_bytes"] / o["largest_live_set_bytes"]
    lines.append(f"activation memory at most 1.3x the largest live set: {'met' if pool <= 1.3 else 'MISSED'} "
                 f"({pool:.2f}x)")
    missing = [p for p, v in r["peers"].items() if "error" in v]
    if missing:
        lines.append(f"not measured (see the table): {', '.join(missing)}")
    return lines


def _layout(r: dict) -> str:
    """NCHW vs NHWC, measured with ACL's own graph API on the whole network in both layouts."""
    nchw, nhwc = (r["peers"].get(p, {}).get("instructions") for p in ("acl_graph", "acl_graph_nhwc"))
    if not (nchw and nhwc):
        return ""
    ours = r["ours"]["instructions"]
    return (f"NCHW vs NHWC (the same ACL graph, both layouts): NHWC {nhwc / 1e6:.1f} M vs NCHW {nchw / 1e6:.1f} M "
            f"instructions ({100 * (nhwc - nchw) / nchw:+.0f} %; NHWC concatenations copy, NCHW ones are "
            f"sub-tensors). Ours, with each layer's kernel and layout chosen by `bench tune` (layout=auto): "
            f"{ours / 1e6:.1f} M, "
            + (f"{nhwc / ours:.2f}x fewer than ACL's NHWC graph." if ours < nhwc else
               f"ABOVE ACL's NHWC graph by {100 * (ours - nhwc) / nhwc:.0f} %."))


def _markdown(results: list[dict], charts: list[str], image_dir: str, stamp: str, minutes: float,
              layout_rows: list[dict], target: str | None = None) -> str:
    spec = toolchain.load(target or toolchain.default_target())
    # the command that writes this page: docs/benchmarks.md for the default target, results/ only for another
    command = "python3 -m bench report" + (" --update-docs" if spec.name == toolchain.default_target() else
                                           f" --target {spec.name}")
    lines = ["# Benchmarks" + ("" if spec.name == toolchain.default_target() else f": {spec.name}"), "",
             f"Generated by `{command}` on {stamp}. Cost = guest instructions per single-thread "
             f"inference under {spec.spec['qemu_user']} (-cpu {spec.spec['qemu_cpu']}), counted by our TCG plugin between markers around the "
             "inference: exact and repeatable. Emulated milliseconds are qemu's, not a board's. All engines run "
             "the same network with the same (seeded, calibrated random) weights on the same input (scikit-image's "
             "chelsea photo), and each peer's output is checked against ours (max |diff| <= 1e-4; an int8 peer "
             "against our float32 output to the looser bound its label names) before it is counted. Peers run single-threaded like ours, their set-up (model load, weight packing) outside the "
             f"counted span. The whole command took {minutes:.0f} min on this 2-core host.", ""]
    for r in results:
        o = r["ours"]
        lines += [f"## {r['model']} ({r['macs'] / 1e6:.1f} M MACs, {r['params'] / 1e6:.3f} M parameters)", "",
                  "| engine | M instructions / inference | vs ours | instructions / MAC | emulated ms (qemu, not a board) "
                  "| max abs diff to ours |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |",
                  f"| **ours (neoncc, tuned)** | {o['instructions'] / 1e6:.1f} | 1.00x | "
                  f"{o['instructions'] / r['macs']:.3f} | {o['emulated_ms']:.0f} | - |",
                  f"| ours, ACL's own convolution choice | {o['untuned_instructions'] / 1e6:.1f} | "
                  f"{o['untuned_instructions'] / o['instructions']:.2f}x | {o['untuned_instructions'] / r['macs']:.3f} | - | - |"]
        for peer, p in r["peers"].items():
            if "error" in p:
                lines.append(f"| {_PEER_LABELS.get(peer, peer)} | not measured: {p['error'].splitlines()[0]} | | | | |")
            else:
                lines.append(f"| {_peer_label(peer, p)} | {p['instructions'] / 1e6:.1f} | "
                             f"{p['instructions'] / o['instructions']:.2f}x | {p['instructions'] / r['macs']:.3f} | "
                             f"{p['emulated_ms']:.0f} | {p['max_abs_diff']:.1e} |")
        if r["model"] in PAPER_MODELS:  # the project's targets are about SqueezeNet, not a user's model
            lines += ["", "Targets:", ""] + [f"- {line}" for line in _targets(r)] + [""]
        elif _rival_targets(r):
            lines += ["", "Targets:", ""] + [f"- {line}" for line in _rival_targets(r)] + [""]
        layout_line = _layout(r)
        if layout_line:
            lines += [layout_line, ""]
        pool, live = o["activation_pool_bytes"], o["largest_live_set_bytes"]
        lines += ["", f"Memory: activation pool {pool / 1e6:.2f} MB = {pool / live:.2f}x the largest set of "
                      f"activations alive at once ({live / 1e6:.2f} MB; all activations together "
                      f"{o['all_activations_bytes'] / 1e6:.2f} MB); weights {o['weights_bytes'] / 1e6:.2f} MB; "
                      f"peak RSS {o['peak_rss_kb'] / 1024:.1f} MB (emulated process).", "",
                  ("Time breakdown as in the paper" if r["model"] in PAPER_MODELS else "Time by layer group")
                  + " (M instructions): " + ", ".join(
                      f"{g} {v / 1e6:.1f} ({100 * v / o['instructions']:.0f} %)" for g, v in o["groups"].items()),
                  "", "Threads, EMULATED ms (2 host cores: no scaling beyond 2 is visible here): " + ", ".join(
                      f"{t}: {ms:.0f}" for t, ms in o["scaling_ms"].items()), ""]
        if o.get("threads"):
            lines += ["Threads, counted: the critical path in guest instructions (`python3 -m bench threads`; one "
                      "inference per thread count, every guest thread counted):", "",
                      *thread_scaling.markdown(o["threads"], r["model"]), ""]
        lines += [
                  f"![per layer]({image_dir}/{r['model']}_layers.png)", ""]
    lines += [f"![engines]({image_dir}/peers.png)", "", f"![groups and threads]({image_dir}/groups_threads.png)", ""]
    if layout_rows:
        wins = all(r["acl_graph_nhwc"] < r["ours"] for r in layout_rows)
        lines += ["## NCHW vs NHWC, layer by layer", "",
                  "SqueezeNet's layer kinds as one-layer networks at their real sizes (`python3 -m bench.layout`): our "
                  "NCHW engine with its tuned methods and copy-free concatenation against ACL's graph API in both "
                  "layouts (ACL's spans include copying input and output; NHWC's concatenation copies). Outputs "
                  "checked against ours.", "", *layout.markdown(layout_rows), "",
                  ("Choice: the counts favour NHWC for every layer kind, concatenation copies included, so the "
                   "no-copy concatenation does not pay for NCHW: our generator should emit NHWC (not done yet: "
                   "see the targets above)." if wins else
                   "Choice: NCHW stays where our engine is cheaper than ACL's NHWC; see the table."), ""]
    return "\n".join(lines)


def report(models: list[str], peer_names: list[str], runs: int = 3, log=print, update_docs: bool = False,
           target: str | None = None) -> Path:
    """Measures into results/<stamp>/ (results/<stamp>-<target>/ for a target other than the default: report.md,
    report.json, charts); docs/benchmarks.md and its charts (the default target's) are rewritten only with
    update_docs."""
    spec = toolchain.load(target or toolchain.default_target())
    other_target = spec.name != toolchain.default_target()
    if update_docs and other_target:
        raise UserError(f"--update-docs rewrites {DOCS.relative_to(PROJECT_ROOT)}, the {toolchain.default_target()} "
                        f"report; a {spec.name} report stays in results/ (docs/targets.md quotes it)")
    for peer in peer_names:
        if peer not in peer_engines.available(spec.name):
            raise UserError(f"peer {peer} does not exist for {spec.name} (for it: "
                            f"{', '.join(peer_engines.available(spec.name))})")
    for model in models:
        bench.model_path(model)  # names or paths; a wrong one fails before any work
    start = time.monotonic()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = PROJECT_ROOT / "results" / (time.strftime("%Y%m%d-%H%M%S", time.gmtime())
                                      + (f"-{spec.name}" if other_target else ""))
    work = out / "work"
    work.mkdir(parents=True)
    if peer_names:
        log(f"peers: setting up {', '.join(peer_names)}")
        peer_engines.setup(peer_names)   # the default target's builds; another target's are built when prepared
    results = [measure_model(name, peer_names, runs, work, log, spec.name) for name in models]
    # bench.layout's one-layer networks are measured on the default target only
    layout_rows = layout.measure(log) if {"acl_graph", "acl_graph_nhwc"} <= set(peer_names) and not other_target \
        else []
    charts = _charts(results, out)
    minutes = (time.monotonic() - start) / 60
    (out / "report.json").write_text(json.dumps({"target": spec.name, "models": results, "layout": layout_rows},
                                                indent=2, default=str))
    (out / "report.md").write_text(_markdown(results, charts, ".", stamp, minutes, layout_rows, spec.name))
    shutil.rmtree(work)
    if not update_docs:
        log(f"report: {out.relative_to(PROJECT_ROOT)}/report.md (docs/ untouched; --update-docs rewrites "
            f"{DOCS.relative_to(PROJECT_ROOT)})")
        return out
    images = DOCS.parent / "benchmarks"
    images.mkdir(parents=True, exist_ok=True)
    for chart in charts:
        shutil.copy(out / chart, images / chart)
    text = _markdown(results, charts, "benchmarks", stamp, minutes, layout_rows)
    if DOCS.is_file():
        for kept in KEPT_SECTIONS.finditer(DOCS.read_text()):
            text += "\n" + kept.group(0) + "\n"
    partial = DOCS.with_name(DOCS.name + ".partial")
    partial.write_text(text)
    partial.replace(DOCS)
    log(f"report: {out.relative_to(PROJECT_ROOT)}/report.md and {DOCS.relative_to(PROJECT_ROOT)}")
    return out
