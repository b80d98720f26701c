"""ACL-NPY import: folders of .npy files named as ACL's examples/graph_squeezenet.cpp and graph_squeezenet_v1_1.cpp
read them (conv1_w.npy, fire2_squeeze1x1_b.npy, fire2_expand3x3_w.npy, ..., conv10_b.npy; OIHW float32), written
here from tests/torch_reference.py's seeded models, imported for configs/models/squeezenet_v1_*.yaml. The engine
(v1.0, under qemu-arm) and the host interpreter (v1.1) must compute what the PyTorch model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ROOT
from import_helpers import assert_agrees, engine_output, refused, run_import
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.reference import torch_graph
from torch_reference import make_model

CONFIG = {version: ROOT / f"configs/models/squeezenet_v{version}.yaml" for version in ("1_0", "1_1")}


def acl_file_names() -> list[str]:
    """The 52 files of ACL's SqueezeNet examples, spelled out as they are there (not derived from our keys)."""
    names = ["conv1_w.npy", "conv1_b.npy"]
    for fire in range(2, 10):
        names += [f"fire{fire}_{part}_{kind}.npy" for part in ("squeeze1x1", "expand1x1", "expand3x3")
                  for kind in ("w", "b")]
    return names + ["conv10_w.npy", "conv10_b.npy"]


def write_acl_folder(model: torch.nn.Module, folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    for name in acl_file_names():
        layer, kind = name.removesuffix(".npy").rsplit("_", 1)
        layer = layer.replace("_squeeze", ".squeeze").replace("_expand", ".expand")
        np.save(folder / name, state[f"{layer}.{'weight' if kind == 'w' else 'bias'}"])


@pytest.fixture(scope="module")
def acl_v1_0(tmp_path_factory, sample_input):
    work = tmp_path_factory.mktemp("acl_npy")
    model = make_model("1_0", seed=61, sample=torch.from_numpy(sample_input))
    folder = work / "cnn_data" / "squeezenet_v1.0_model"
    write_acl_folder(model, folder)
    npz = work / "squeezenet_v1_0.npz"
    run_import("acl-npy", folder, "--model", CONFIG["1_0"], "--weights-out", npz)
    return model, folder, npz


def test_engine_matches_pytorch(acl_v1_0, tmp_path_factory, sample_input):
    model, _, npz = acl_v1_0
    probabilities = engine_output(tmp_path_factory, CONFIG["1_0"], npz, sample_input[0])
    with torch.no_grad():
        expected = model(torch.from_numpy(sample_input))[0].numpy()
    assert_agrees(probabilities, expected, "acl-npy v1.0, engine under qemu-arm")


def test_weights_are_the_files_unchanged(acl_v1_0):
    model, folder, npz = acl_v1_0
    with np.load(npz) as weights:
        assert sorted(weights.files) == sorted(model.state_dict())
        np.testing.assert_array_equal(weights["fire2.expand3x3.weight"], np.load(folder / "fire2_expand3x3_w.npy"))
        np.testing.assert_array_equal(weights["conv10.bias"], model.conv10.bias.detach().numpy())


def test_v1_1_and_caffe_style_4d_biases(tmp_path, sample_input):
    """v1.1 on the host; biases saved as Caffe's old 1 x 1 x 1 x N blobs import as vectors."""
    model = make_model("1_1", seed=62, sample=torch.from_numpy(sample_input))
    folder = tmp_path / "squeezenet_v1_1_model"
    write_acl_folder(model, folder)
    for path in folder.glob("*_b.npy"):
        np.save(path, np.load(path).reshape(1, 1, 1, -1))
    run_import("acl-npy", folder, "--model", CONFIG["1_1"], "--weights-out", tmp_path / "v11.npz")
    with np.load(tmp_path / "v11.npz") as weights:
        actual = torch_graph.run(load_yaml_model(CONFIG["1_1"]), dict(weights), sample_input)[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(sample_input))[0].numpy()
    assert_agrees(actual, expected, "acl-npy v1.1, host interpreter")


def test_refusals_name_the_file(acl_v1_0, tmp_path, capsys):
    _, folder, _ = acl_v1_0
    outputs = ("--model", CONFIG["1_0"], "--weights-out", tmp_path / "out.npz")
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in folder.iterdir():
        (bad / path.name).write_bytes(path.read_bytes())

    (bad / "fire5_expand1x1_b.npy").unlink()
    assert f"{bad}: missing 1 file(s) that squeezenet_v1_0 needs: fire5_expand1x1_b.npy" in \
        refused(capsys, "acl-npy", bad, *outputs)
    np.save(bad / "fire5_expand1x1_b.npy", np.zeros(64, np.float32))  # 128 in v1.0
    assert f"{bad / 'fire5_expand1x1_b.npy'}: shape [64]; squeezenet_v1_0's fire5.expand1x1.bias is [128]" in \
        refused(capsys, "acl-npy", bad, *outputs)
    (bad / "fire5_expand1x1_b.npy").write_bytes(b"not numpy")
    assert f"{bad / 'fire5_expand1x1_b.npy'}: not a readable .npy file" in refused(capsys, "acl-npy", bad, *outputs)
    assert f"{tmp_path / 'nowhere'}: no such folder" in refused(capsys, "acl-npy", tmp_path / "nowhere", *outputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"], "nothing half-written"
