"""Mixed precision chosen by counting: which layers of an 8-bit build stay in float32 (a tuning file's
`int8_float_layers`), written as configs/tuning/<target>/<model>-int8.yaml, which `scons ... precision=int8` reads.

    python3 -m bench tune squeezenet_v1_1 --precision int8 --calibration DIR [--weights W.npz] [--max-kl 0.002]

Two builds are counted per layer (guest instructions, one single-threaded inference under qemu-user): the float32
engine with the model's float tuning file, and the engine with every layer in 8 bits (our NHWC 8-bit kernel wherever
it runs the convolution). A layer's cost is its count in the precision it is given; a tensor whose producer and a
reader differ in precision adds one conversion, at the instructions per value the all-8-bit build's own input
quantize and output dequantize took. The precisions are chosen by local search on that estimate (flipping one layer,
or a layer with a neighbour, while the estimate falls; bench/mixed_choice.py, which `bench tune` uses for layouts),
then the accuracy is checked on the host (neoncc/quantize/simulate.py, on the calibration inputs): while the
outputs' mean KL divergence from float32's is above --max-kl, the 8-bit layer most sensitive to 8 bits (by itself)
is kept in float32 and the search re-run. The chosen file is then built and counted as a whole (with whatever
layout permutes it implies); it is kept only if it costs fewer instructions than the all-8-bit build that meets the
budget, else that build's file is written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from bench.engine import EngineCount, build, count_engine
from bench.mixed_choice import Costs, choose, per_value
from neoncc import ops
from neoncc.errors import UserError
from neoncc.ir.graph import Graph
from neoncc.passes.select_kernels import load_tuning
from neoncc.pipeline import float_graph
from neoncc.quantize.calibration import load_calibration
from neoncc.quantize.plan import QuantPlan
from neoncc.quantize.simulate import kl_divergence, sensitivity, simulate
from neoncc.reference import torch_graph
from neoncc.targets import toolchain

MAX_KL = 0.002  # default budget: mean KL divergence of the simulated 8-bit outputs from float32's
INT8_METHOD = "qconv_nhwc"  # our 8-bit kernel (runtime/quantized_convolution_nhwc.h); ACL's otherwise


def precision_costs(graph: Graph, float32: EngineCount, int8: EngineCount) -> Costs:
    """The estimate: float32 is home (the network's input and output), 8 bits away; a conversion costs what the
    8-bit build's own quantizes and dequantizes took per value."""
    return Costs(graph, float32.per_layer, int8.per_layer, per_value(graph, [int8.per_layer], "quantize"),
                 per_value(graph, [int8.per_layer], "dequantize"))


def _tuning_text(graph: Graph, float_tuning: dict, float_layers: set[str], tail: list[str], header: list[str]) -> str:
    """The int8 tuning file: float32 layers keep the float tuning's method and layout, 8-bit convolutions run our
    8-bit NHWC kernel wherever it runs them; the plan's float32 tail is not listed (it always is float32)."""
    methods, kernel = {}, ops.get("conv").implementations[INT8_METHOD]
    for node in graph.nodes:
        if node.op != "conv":
            continue
        if node.name in float_layers:
            if node.name in float_tuning.get("conv_method", {}):
                methods[node.name] = float_tuning["conv_method"][node.name]
        elif kernel.accepts(node):
            methods[node.name] = INT8_METHOD
    layouts = {k: v for k, v in float_tuning.get("layout", {}).items() if k in float_layers}
    order = [n.name for n in graph.nodes if n.name in float_layers and n.name not in tail]
    body = {"model": graph.name, "fingerprint": graph.meta["fingerprint"], "int8_float_layers": order,
            "conv_method": methods, "layout": layouts}
    return "".join(f"# {line}\n" for line in header) + yaml.safe_dump(body, sort_keys=False, width=120)


def tune_int8(model: Path, calibration: Path, weights: Path | None = None, log=print, target: str | None = None,
              out: Path | None = None, max_kl: float = MAX_KL) -> Path:
    """Writes the int8 tuning file of `model` (to `out`, default toolchain.tuning_file(..., "int8")); returns it."""
    target = target or toolchain.default_target()
    name = Path(model).stem
    out = out or toolchain.tuning_file(target, name, "int8")
    graph = float_graph(model, weights, 0)
    inputs = load_calibration(calibration, graph, field="--calibration")
    float_file = toolchain.tuning_file(target, name)
    float_tuning = load_tuning(float_file) if float_file.is_file() else {}
    if not float_tuning:
        log(f"{name}: no float32 tuning file {float_file.name} (`python3 -m bench tune {name}` writes one): the "
            "float32 layers get the default methods")
    with tempfile.TemporaryDirectory(prefix="neoncc-tune-int8-") as work:
        work = Path(work)
        inputs[:1].astype("<f4").tofile(work / "input.f32")

        def counted(label: str, tuning_text: str | None, int8: bool) -> EngineCount:
            """Build and count one variant (one build folder: the runtime compiles once; each 8-bit variant is
            counted before the next replaces it)."""
            tuning = "none"
            if tuning_text is not None:
                tuning = work / f"{label}.yaml"
                tuning.write_text(tuning_text)
            binary = build(model, work / "build", weights, tuning=tuning, target=target,
                           calibration=calibration if int8 else None)
            result = count_engine(binary, work / "input.f32", target=target)
            log(f"{name}: {label} build: {result.per_inference / 1e6:.1f} M instructions")
            return result

        float32 = counted("float32", float_file.read_text() if float_file.is_file() else None, False)
        all_int8_text = _tuning_text(graph, float_tuning, set(), [], [])
        all_int8 = counted("all-int8", all_int8_text, True)
        plan = QuantPlan.read(toolchain.build_dir(work / "build", target, name, "int8") / f"{name}.quant.json")
        costs = precision_costs(graph, float32, all_int8)
        reference = torch_graph.run(graph, None, inputs)
        concats = {n.name for n in graph.nodes if n.op == "concat"}  # written in place by their producers: 8-bit
        forced = set(plan.float_tail)
        sensitive: dict[str, float] = {}
        while True:
            chosen = choose(costs, forced, concats - forced)
            kl = kl_divergence(reference, simulate(graph, plan, chosen, inputs))
            log(f"{name}: {len(chosen - set(plan.float_tail))} layers in float32: estimated "
                f"{costs.total(chosen) / 1e6:.1f} M, simulated KL divergence from float32 {kl:.2e}")
            if kl <= max_kl:
                break
            eight_bit = [n.name for n in graph.nodes if n.name not in chosen and n.name not in concats]
            if not eight_bit:
                raise UserError(f"{name}: no 8-bit layer is left and the outputs still move by KL {kl:.2e} "
                                f"> --max-kl {max_kl}")
            missing = [layer for layer in eight_bit if layer not in sensitive]
            if missing:
                log(f"{name}: each 8-bit layer's sensitivity (host simulation, {len(missing)} layers)")
                sensitive.update(sensitivity(graph, plan, missing, inputs))
            worst = max(eight_bit, key=lambda layer: sensitive[layer])
            log(f"{name}: {worst} kept in float32 (KL {sensitive[worst]:.2e} by itself)")
            forced.add(worst)
        if len(chosen) == len(graph.nodes):
            raise UserError(f"{name}: keeping the outputs within --max-kl {max_kl} of float32's needs every layer in "
                            "float32; no int8 tuning file written" if forced - set(plan.float_tail) else
                            f"{name}: no layer costs fewer instructions in 8 bits than in float32 on {target} "
                            f"(every layer 8-bit: {all_int8.per_inference / 1e6:.1f} M, float32: "
                            f"{float32.per_inference / 1e6:.1f} M); no int8 tuning file written")
        mixed = counted("mixed", _tuning_text(graph, float_tuning, chosen, plan.float_tail, []), True)
        estimate = costs.total(chosen)
        if all_int8.per_inference < mixed.per_inference:
            kl_all = kl_divergence(reference, simulate(graph, plan, (), inputs))
            if kl_all <= max_kl:
                log(f"{name}: every layer in 8 bits counts fewer instructions than the choice: taken instead")
                chosen, mixed, kl = set(plan.float_tail), all_int8, kl_all
                estimate = costs.total(chosen)
    rows = [(f"float32 ({float_file.name if float_file.is_file() else 'no tuning file'})", float32.per_inference),
            ("every layer in 8 bits", all_int8.per_inference), ("this file", mixed.per_inference)]
    header = [f"8-bit build of {name} on {target} (scons ... precision=int8 reads this file), written by",
              "`python3 -m bench tune --precision int8` from guest-instruction counts (one single-threaded inference):",
              *[f"  {label:<48}{count:>13,}" for label, count in rows],
              f"  (this file estimated {estimate:,.0f} from the per-layer counts of the two builds above)",
              f"Outputs' mean KL divergence from float32 in the host simulation: {kl:.2e} (budget {max_kl}), on "
              f"{len(inputs)} calibration inputs."]
    text = _tuning_text(graph, float_tuning, chosen, plan.float_tail, header)
    if mixed.per_inference >= float32.per_inference:
        log(f"{name}: the 8-bit build ({mixed.per_inference / 1e6:.1f} M) does not cost fewer instructions than "
            f"float32 ({float32.per_inference / 1e6:.1f} M) on {target}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(text)
    partial.replace(out)
    log(f"{name}: wrote {out} ({mixed.per_inference / 1e6:.1f} M instructions, "
        f"{len(chosen - set(plan.float_tail))} layers in float32 besides the tail)")
    return out
