"""`bench tune`'s layout choice: per layer and layout the cheapest method, then the layouts on an estimate that
counts the permutes a mix implies (bench/mixed_choice.py), so a layer a little cheaper in NCHW between NHWC layers
is not left paying more than that in permutes."""

from __future__ import annotations

from types import SimpleNamespace

from bench.tune import choose_layouts
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.passes import optimize
from test_tune_int8 import CHAIN


def chosen(tmp_path, nhwc_expand: int) -> dict[str, tuple[str, str]]:
    model = tmp_path / "chain.yaml"
    model.write_text(CHAIN.format(name="chain"))
    convs = {n.name: n for n in load_yaml_model(model).nodes if n.op == "conv"}
    names = ("conv1", "squeeze", "expand", "head", "pool", "prob")
    # every layer costs 10,000 in NCHW and 500 in NHWC, but expand (450 in NCHW); our packed GEMM runs head 4 % below
    # ACL's NHWC choice (taken) and squeeze 0.6 % below (not worth a pin); a permute to NHWC costs 2 instructions per
    # value (the input's, 3x16x12 = 576 values), one to NCHW 3 (head's output, 10x8x6)
    counts = {("auto", "NCHW"): {**dict.fromkeys(names, 10_000), "expand": 450},
              ("auto", "NHWC"): {**dict.fromkeys(names, 500), "expand": nhwc_expand, "data.to_nhwc": 2 * 576,
                                 "head.to_nchw": 3 * 480},
              ("packed_gemm", "NHWC"): {**dict.fromkeys(names, 500), "expand": nhwc_expand, "squeeze": 497,
                                        "head": 480}}
    return choose_layouts(optimize(load_yaml_model(model)), convs,
                          {c: SimpleNamespace(per_layer=rows) for c, rows in counts.items()})


def test_a_layer_a_little_cheaper_in_nchw_between_nhwc_layers_goes_nhwc(tmp_path):
    # expand alone in NCHW saves 50 but permutes squeeze's output (8x8x6 = 384 values) to NCHW at 3 per value and its
    # own (24x8x6 = 1,152) back to NHWC at 2
    layouts = chosen(tmp_path, nhwc_expand=500)
    assert layouts == {"conv1": ("auto", "NHWC"), "squeeze": ("auto", "NHWC"), "expand": ("auto", "NHWC"),
                       "head": ("packed_gemm", "NHWC"), "pool": ("auto", "NHWC"), "prob": ("auto", "NHWC")}


def test_a_layer_much_cheaper_in_nchw_stays_there(tmp_path):
    # 99,550 more in NHWC: worth the 384 x 3 + 1,152 x 2 of permutes (and no neighbour follows it into NCHW: each
    # costs 9,500 more there)
    layouts = chosen(tmp_path, nhwc_expand=100_000)
    assert layouts["expand"] == ("auto", "NCHW")
    assert {layout for name, (_, layout) in layouts.items() if name != "expand"} == {"NHWC"}
