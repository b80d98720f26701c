"""`bench tune --precision int8`: the estimate it searches on (per-layer counts plus one conversion per tensor
where precisions meet), the search itself (a pair of layers worth 8 bits only together), and the command as a
user meets it: a tuning file the 8-bit build honours, a tighter accuracy budget keeping more layers in float32,
and clear refusals."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import yaml

from bench.mixed_choice import Costs, choose
from bench.tune_int8 import precision_costs
from conftest import ROOT, scons
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.passes import optimize

CHAIN = """name: {name}
input: {{name: data, shape: [3, 16, 12]}}
layers:
  - {{name: conv1, type: conv, filters: 16, kernel: 3, stride: 2, pad: 1, activation: relu}}
  - {{name: squeeze, type: conv, filters: 8, kernel: 1, activation: relu}}
  - {{name: expand, type: conv, filters: 24, kernel: 3, pad: 1, activation: relu}}
  - {{name: head, type: conv, filters: 10, kernel: 1, activation: relu}}
  - {{name: pool, type: global_avgpool}}
  - {{name: prob, type: softmax}}
"""


def chain_costs(tmp_path, float32: dict, int8: dict) -> Costs:
    model = tmp_path / "chain.yaml"
    model.write_text(CHAIN.format(name="chain"))
    graph = optimize(load_yaml_model(model))  # as tune_int8 sees it: ReLUs fused into their convolutions
    # conversions measured on the 8-bit build: 2 instructions per value in, 4 per value out (data: 3x16x12 = 576
    # values, pool: 10)
    int8 = {**int8, "data.quantize": 2 * 576, "pool.dequantize": 4 * 10}
    return precision_costs(graph, SimpleNamespace(per_layer=float32), SimpleNamespace(per_layer=int8))


def test_the_estimate_adds_each_layers_count_and_one_conversion_per_tensor_where_precisions_meet(tmp_path):
    names = ("conv1", "squeeze", "expand", "head", "pool", "prob")
    costs = chain_costs(tmp_path, {n: 1000 * (i + 1) for i, n in enumerate(names)},
                        {n: 100 * (i + 1) for i, n in enumerate(names)})
    assert costs.to_away == 2 and costs.to_home == 4
    # prob alone in float32: the others' 8-bit counts, the input quantized (576 values x 2), pool's output (10)
    # dequantized for prob, once
    assert costs.total({"prob"}) == 100 + 200 + 300 + 400 + 500 + 6000 + 576 * 2 + 10 * 4
    # squeeze in float32 between 8-bit layers: conv1's output (16x8x6 = 768 values) dequantized and squeeze's
    # (8x8x6 = 384) quantized again; the network ends in 8 bits, so prob's output (10) is dequantized
    assert costs.total({"squeeze"}) == 100 + 2000 + 300 + 400 + 500 + 600 + 576 * 2 + 768 * 4 + 384 * 2 + 10 * 4


def test_the_search_moves_two_layers_into_8_bits_that_pay_only_together(tmp_path):
    # expand and head each cost 100 fewer instructions in float32, so the search starts with both there; between
    # them lies expand's large output (24x8x6 = 1,152 values): either one alone in 8 bits converts it, both
    # together convert nothing
    big = 10 ** 6
    float32 = {"conv1": big, "squeeze": big, "expand": 1000, "head": 1000, "pool": big, "prob": big}
    int8 = {"conv1": 10, "squeeze": 10, "expand": 1100, "head": 1100, "pool": 10, "prob": 10}
    costs = chain_costs(tmp_path, float32, int8)
    start = {"expand", "head"}
    assert costs.total({"head"}) > costs.total(start) and costs.total({"expand"}) > costs.total(start)
    assert costs.total(set()) < costs.total(start)
    assert choose(costs, set(), set()) == set()
    assert choose(costs, {"head"}, set()) == {"head", "expand"}  # a layer kept in float32 stays there


def tune(*args, timeout=1800):
    return subprocess.run([sys.executable, "-m", "bench", "tune", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_bench_tune_int8_writes_a_file_the_8_bit_build_honours(tmp_path):
    model = tmp_path / "tune_int8_chain.yaml"
    model.write_text(CHAIN.format(name="tune_int8_chain"))
    rng = np.random.default_rng(5)
    (tmp_path / "calibration").mkdir()
    rng.normal(0, 1, (6, 3, 16, 12)).astype("<f4").tofile(tmp_path / "calibration/inputs.f32")
    refused = tune(str(model), "--precision", "int8", timeout=120)
    assert refused.returncode == 1 and refused.stderr.startswith("error: --precision int8 needs --calibration DIR")
    refused = tune(str(model), "--calibration", str(tmp_path / "calibration"), timeout=120)
    assert refused.returncode == 1 and "are for --precision int8" in refused.stderr

    files, kl = {}, {}
    for run in ("any", "tight"):  # any error allowed; then a third of the error every layer in 8 bits makes
        budget = "1" if run == "any" else f"{kl['any'] / 3:.3g}"
        out = tmp_path / f"tuning-{run}.yaml"
        proc = tune(str(model), "--precision", "int8", "--calibration", str(tmp_path / "calibration"),
                    "--max-kl", budget, "--output", str(out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"wrote {out}" in proc.stderr.splitlines()[-1]
        files[run] = yaml.safe_load(out.read_text())
        header = [line for line in out.read_text().splitlines() if line.startswith("#")]
        counts = {label: int(line.split()[-1].replace(",", "")) for line in header
                  for label in ("every layer in 8 bits", "this file") if line.startswith(f"#   {label}")}
        kl[run] = float(next(line for line in header if "KL divergence" in line).split(": ")[1].split()[0])
        assert kl[run] <= float(budget)
        if run == "any":  # no accuracy constraint: every layer in 8 bits, or fewer instructions than that
            assert counts["this file"] <= counts["every layer in 8 bits"] and kl["any"] > 0

        build_dir = tmp_path / f"build-{run}"
        scons("target=armv7", f"model={model}", f"build_dir={build_dir}", "precision=int8",
              f"calibration={tmp_path / 'calibration'}", f"tuning={out}")
        manifest = yaml.safe_load((build_dir / "armv7/tune_int8_chain-int8/tune_int8_chain.json").read_text())
        precision = {layer["name"]: layer["precision"] for layer in manifest["layers"]}
        for layer in ("conv1", "squeeze", "expand", "head", "pool"):
            assert precision[layer] == ("float32" if layer in files[run]["int8_float_layers"] else "int8"), layer
    assert len(files["tight"]["int8_float_layers"]) > len(files["any"]["int8_float_layers"])
