"""Thread scaling counted per guest thread (bench/threads.py, bench.insncount's per-vCPU snapshots at markers).

The digits network (32x32, fire modules) is built once and counted at 1 and 4 threads: the per-thread counts exist
for every layer, several threads do work at 4, the 1-thread critical path is the single-thread count computed the
way it always was (the marking thread's instructions between the inference markers), and 4 threads compute the
same output as 1. Behaviour only: no speed is asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.engine import INFERENCE_BEGIN, INFERENCE_END, _engine_count
from bench.insncount import count, target_options
from bench.threads import markdown, poor_layers, scaling
from conftest import ROOT, build

MODEL = ROOT / "configs/models/digits_fire.yaml"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    work = tmp_path_factory.mktemp("threads")
    binary = build(MODEL, work / "build")
    image = np.random.default_rng(3).uniform(0, 1, (1, 1, 32, 32)).astype("<f4")
    image.tofile(work / "input.f32")
    return binary, work / "input.f32"


def counted(engine, threads: int):
    binary, input_path = engine
    output = input_path.with_suffix(f".{threads}.out")
    result = count([str(binary), "--input", str(input_path), "--output", str(output), "--threads", str(threads),
                    "--runs", "1", "--warmup", "0", "--json"], **target_options())
    return result, _engine_count(result, output)


@pytest.fixture(scope="module")
def one(engine):
    return counted(engine, 1)


@pytest.fixture(scope="module")
def four(engine):
    return counted(engine, 4)


def test_one_thread_critical_path_is_the_single_thread_count(one):
    result, c = one
    (marking_thread,) = result.between(INFERENCE_BEGIN, INFERENCE_END)
    assert c.critical_path == c.per_inference == marking_thread
    assert result.critical_path(INFERENCE_BEGIN, INFERENCE_END) == [marking_thread]
    for name, per_thread in c.per_layer_threads.items():
        assert per_thread and per_thread[0] == c.per_layer[name] and not any(per_thread[1:])


def test_every_layer_has_per_thread_counts_that_add_up(four):
    result, c = four
    assert set(c.per_layer_threads) == set(c.per_layer)
    for name, per_thread in c.per_layer_threads.items():
        assert len(per_thread) >= 4 and sum(per_thread) == c.per_layer[name], name
    for region in result.regions():
        assert sum(region.threads) == region.all_insns and region.critical == max(region.threads)
    assert c.critical_path == sum(r.critical for r in result.regions()
                                  if r.vcpu == 0 and r.start != INFERENCE_END)


def test_four_threads_share_the_work(one, four):
    _, c1 = one
    _, c4 = four
    busy = {name: sum(1 for x in t if x) for name, t in c4.per_layer_threads.items()}
    assert max(busy.values()) >= 2 and sum(1 for n in busy.values() if n >= 2) >= len(busy) // 2, busy
    assert c4.critical_path < c4.per_inference
    assert c4.critical_path < c1.critical_path
    # what threading costs on top of the work itself: more instructions in all, never fewer
    assert c4.per_inference >= c1.per_inference


def test_four_threads_compute_what_one_does(one, four):
    np.testing.assert_allclose(four[1].output, one[1].output, rtol=0, atol=1e-5)


def test_scaling_table(engine):
    binary, input_path = engine
    result = scaling(binary, input_path, threads=(1, 2), log=lambda message: None)
    assert result["threads"][2]["working_threads"] >= 2
    assert result["threads"][1]["working_threads"] == 1
    assert result["threads"][2]["max_abs_diff_to_1_thread"] <= 1e-5
    text = "\n".join(markdown(result, "digits_fire"))
    assert "| 1 | " in text and "| 2 | " in text and "1.000x" in text
    assert all(row["ratio"] > 0.6 for row in poor_layers(result))
