"""Choose each convolution's method (ACL's own choice, GEMM, Winograd, direct, or ours: the NCHW pointwise matrix
product, the NHWC packed GEMM, Winograd F(6x6, 3x3) and F(4x4, 3x3), the direct 3x3 stride-2 convolution of 3-channel
images, the NHWC depthwise convolution of runtime/)
and each layer's layout (NCHW or NHWC) by counting: build the engine once per (method, layout) (every layer that
method supports switched to it), count guest instructions per layer, keep per layer and layout the cheapest method,
choose the layouts on an estimate that counts the permutes between them too (bench/mixed_choice.py), then check the
tuned engine as a whole (with the permutes it implies) against the best uniform build and ACL's own choice. The
result is data, configs/tuning/<target>/<model>.yaml, which the build picks up; it is written only when the counts
say it pays.

    python3 -m bench tune configs/models/squeezenet_v1_1.yaml
    python3 -m bench tune --target aarch64 squeezenet_v1_1            # configs/tuning/aarch64/, under qemu-aarch64
    python3 -m bench tune --candidates auto/NHWC,packed_gemm/NHWC,winograd63/NHWC configs/models/squeezenet_v1_1.yaml
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import yaml

from bench.engine import EngineCount, build, count_files
from bench.mixed_choice import Costs, choose, per_value
from bench.parallel import Serial
from neoncc import PROJECT_ROOT, ops
from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.ir.graph import Graph, Node
from neoncc.passes import layout as layout_pass
from neoncc.passes import optimize
from neoncc.targets import toolchain
from neoncc.tools.preprocess import random_inputs


def supports(method: str, node: Node) -> bool:
    """Whether a method runs the node (the op registry's requirements; ACL's validate() has the last word)."""
    if method == "auto":  # ACL's own choice for a dense convolution; the op's default kernel for a depthwise one
        return True
    return ops.get("conv").implementations[method].accepts(node)


CANDIDATES = [("auto", "NCHW"), ("gemm", "NCHW"), ("direct", "NCHW"), ("winograd", "NCHW"), ("pointwise", "NCHW"),
              ("auto", "NHWC"), ("gemm", "NHWC"), ("winograd", "NHWC"), ("packed_gemm", "NHWC"),
              ("winograd63", "NHWC"), ("winograd43", "NHWC"), ("direct3x3s2", "NHWC"),
              ("dw_nhwc", "NHWC")]


def _cheapest(name: str, counts: dict, candidates: list[tuple[str, str]]) -> tuple[str, int] | None:
    """The method, and its count, that cost the layer least among one layout's candidates: ACL's own choice unless
    another is at least 1 % cheaper (smaller differences are not worth a pin); None when none was counted. A build
    without a row for the layer counts it as ACL's NCHW build does."""
    base = counts[("auto", "NCHW")].per_layer.get(name, 0) if ("auto", "NCHW") in counts else 0
    measured = [(counts[c].per_layer.get(name, base), c[0]) for c in candidates]
    if not measured:
        return None
    cost, method = min(measured)
    auto = [count for count, m in measured if m == "auto"]
    return ("auto", auto[0]) if auto and not cost < 0.99 * auto[0] else (method, cost)


def choose_layouts(graph: Graph, convs: dict[str, Node], counts: dict) -> dict[str, tuple[str, str]]:
    """Each layer's (method, layout): per layout its cheapest method, then the layouts by the estimate of
    bench/mixed_choice.py (each layer's count in its layout, plus a permute wherever a tensor is read in the other
    layout, at the instructions per value the counted builds' own permutes took), so that a layer a little cheaper
    in one layout does not pay more than that in permutes around it. NCHW is home: the engine's input arrives in it
    and a spatial output leaves in it. The layout pass's own rules hold: a concatenation (not in a tuning file) and
    a softmax of a vector follow their first input, a fully connected layer with a vector output runs in NCHW."""
    follows = frozenset(n.name for n in graph.nodes if n.op == "concat" or layout_pass.follows_input(graph, n))
    choices: dict[str, dict[str, tuple[str, int]]] = {}
    for node in graph.nodes:
        if node.op == "concat":
            continue
        runs = (lambda method: supports(method, convs[node.name])) if node.name in convs else (lambda m: m == "auto")
        picks = {layout: _cheapest(node.name, counts, [c for c in counts if c[1] == layout and runs(c[0])])
                 for layout in ("NCHW", "NHWC")}
        choices[node.name] = {layout: pick for layout, pick in picks.items() if pick}
    builds = [count.per_layer for count in counts.values()]
    costs = Costs(graph, {n: c["NCHW"][1] for n, c in choices.items() if "NCHW" in c},
                  {n: c["NHWC"][1] for n, c in choices.items() if "NHWC" in c},
                  per_value(graph, builds, "to_nhwc"), per_value(graph, builds, "to_nchw"), follows=follows,
                  vector_output_free=True)
    fixed = {n.name for n in graph.nodes if layout_pass.fixed_layout(graph, n) == "NCHW"}
    at_home = choose(costs, fixed | {n for n, c in choices.items() if "NHWC" not in c},
                     {n for n, c in choices.items() if "NCHW" not in c} - fixed)
    home = costs.homes(at_home)  # the followers' layouts too, as the estimate took them
    layouts = {n.name: "NCHW" if home[n.output] else "NHWC" for n in graph.nodes if n.name in choices}
    return {n: (choices[n][layout][0], layout) for n, layout in layouts.items()}


def _tuning_file(choices: dict[str, tuple[str, str]], convs: set[str]) -> dict:
    return {"conv_method": {n: m for n, (m, _) in choices.items() if n in convs and m != "auto"},
            "layout": {n: layout for n, (_, layout) in choices.items()}}


def parse_candidates(names: list[str]) -> list[tuple[str, str]]:
    """`method/LAYOUT` names (e.g. packed_gemm/NHWC) as candidates; ACL's own NCHW choice is always measured (it is
    the baseline every per-layer choice is compared with)."""
    known = {f"{m}/{layout}": (m, layout) for m, layout in CANDIDATES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"--candidates: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return [("auto", "NCHW")] + [known[n] for n in names if known[n] != ("auto", "NCHW")]


def measure(model: str, model_text: str, tuning_text: str, target: str, inputs: bytes) -> EngineCount:
    """One candidate: build the model with a tuning file, then count one inference. A task: it runs here or on a
    Dask worker (another host takes the model's text when it lacks the file), in a build directory of its own."""
    with tempfile.TemporaryDirectory(prefix="neoncc-measure-") as work:
        work = Path(work)
        path = Path(model)
        if not (path.is_file() and path.read_text() == model_text):
            path = work / path.name
            path.write_text(model_text)
        (work / "tuning.yaml").write_text(tuning_text)
        binary = build(path, work / "build", tuning=work / "tuning.yaml", target=target)
        return count_files(binary.name, binary.read_bytes(), binary.with_name(f"{binary.name}.weights").read_bytes(),
                           inputs, target=target)


def tune(model: Path, log=print, target: str | None = None,
         candidates: list[tuple[str, str]] | None = None, runner=None, out: Path | None = None) -> Path | None:
    """Tune a model and write its tuning file (to `out`, default toolchain.tuning_file: where a build looks). Each
    candidate (its build into a directory of its own, then its counted run) is a task of `runner` (bench.parallel:
    one after another in this process by default, or a Dask cluster, where they run side by side)."""
    target = target or toolchain.default_target()
    candidates = candidates or CANDIDATES
    runner = runner or Serial()
    graph = load_yaml_model(model)
    convs = {n.name: n for n in graph.nodes if n.op == "conv"}
    optimized = optimize(load_yaml_model(model))  # the graph the layout pass sees: ReLUs fused, dropout removed
    others = [n.name for n in optimized.nodes if n.op not in ("conv", "concat")]
    out = out or toolchain.tuning_file(target, Path(model).stem)
    inputs = runner.scatter(random_inputs(graph, 1, 0).astype("<f4").tobytes())
    model_text = Path(model).read_text()
    pending = {}
    for method, layout in candidates:
        chosen = {n: (method if supports(method, node) else "auto", layout) for n, node in convs.items()}
        if method != "auto" and all(m == "auto" for m, _ in chosen.values()):
            continue
        text = yaml.safe_dump(_tuning_file({**chosen, **{n: ("auto", layout) for n in others}}, set(convs)))
        pending[(method, layout)] = runner.submit(measure, str(model), model_text, text, target, inputs)
    counts = {}
    for (method, layout), future in pending.items():
        counts[(method, layout)] = future.result()
        log(f"{graph.name}: every layer {method}, {layout}: "
            f"{counts[(method, layout)].per_inference / 1e6:.1f} M instructions")
    best = choose_layouts(optimized, convs, counts)
    tuning = _tuning_file(best, set(convs))
    tuned = runner.submit(measure, str(model), model_text, yaml.safe_dump(tuning), target, inputs).result()
    uniform = min(counts.values(), key=lambda c: c.per_inference)
    if uniform.per_inference < tuned.per_inference:  # the conversions cost more than the per-layer choices gain
        (choice,) = [c for c in counts if counts[c] is uniform]
        best = {n: (choice[0] if supports(choice[0], convs[n]) else "auto", choice[1])
                for n in convs} | {n: ("auto", choice[1]) for n in others}
        tuning, tuned = _tuning_file(best, set(convs)), uniform
    auto = counts[("auto", "NCHW")]
    gain = auto.per_inference - tuned.per_inference
    log(f"{graph.name}: tuned {tuned.per_inference / 1e6:.1f} M vs ACL's NCHW choice {auto.per_inference / 1e6:.1f} M")
    if not np.allclose(tuned.output, auto.output, rtol=1e-4, atol=1e-6):
        raise AssertionError(f"{graph.name}: the tuned engine's output differs from ACL's choice")
    if gain <= 0:
        log(f"{graph.name}: no gain; {_shown(out)} not written")
        return None
    names = [f"{m}/{layout}" for m, layout in counts]
    lines = [f"# Convolution methods and layouts for {graph.name} on {target}, chosen by `python3 -m bench tune` from",
             f"# guest-instruction counts under qemu-user (single thread): {tuned.per_inference:,} instructions per",
             f"# inference with this file, {auto.per_inference:,} with ACL's own NCHW choice "
             f"({100 * gain / auto.per_inference:.1f} % fewer).",
             f"model: {graph.name}",
             f"fingerprint: {graph.meta['fingerprint']}  # the model this was measured on (its input and layers)",
             "# Per layer (M instructions): " + ", ".join(names), "conv_method:"]
    for name, method in tuning["conv_method"].items():
        lines.append(f"  {name}: {method}")
    lines.append("layout:")
    for name, layout in tuning["layout"].items():
        per = ", ".join(f"{counts[c].per_layer[name] / 1e6:.2f}" if name in counts[c].per_layer else "-" for c in counts)
        lines.append(f"  {name}: {layout}{' ' * max(1, 26 - len(name) - len(layout))}# {per}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(out)
    log(f"{graph.name}: wrote {_shown(out)}")
    return out


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
