"""What the importer tests share: running `python3 -m neoncc import`, building and running an imported engine
under qemu-arm (one build directory for all of them, so ACL's runtime objects compile once), and the agreement
check against the source framework."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, build, infer
from neoncc.__main__ import main

RTOL, ATOL = 1e-4, 1e-5


def run_import(*argv: str) -> None:
    assert main(["import", *map(str, argv)]) == 0


def refused(capsys, *argv: str) -> str:
    """The one message of a refused import (exit status 1)."""
    capsys.readouterr()
    assert main(["import", *map(str, argv)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def engine_output(tmp_path_factory: pytest.TempPathFactory, model: Path, weights: Path,
                  tensor: np.ndarray) -> np.ndarray:
    """Probabilities of the engine built from an imported model, for one input (C, H, W)."""
    build_dir = tmp_path_factory.getbasetemp() / "import-builds"
    binary = build(model, build_dir, weights)
    probabilities, _ = infer(binary, tensor, binary.parent, "--threads", "2")
    return probabilities


def assert_agrees(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Within 1e-4 relative / 1e-5 absolute on probabilities, on a softmax far from one-hot."""
    assert expected.max() < 0.5, "reference softmax is nearly one-hot: the comparison would be too weak"
    assert actual.shape == expected.shape
    diff = np.abs(actual.astype(np.float64) - expected)
    print(f"\n{what}: max abs diff {diff.max():.3g}, max relative diff {(diff / np.abs(expected)).max():.3g}")
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)
    assert int(np.argmax(actual)) == int(np.argmax(expected))


def assert_logits_agree(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Within 1e-4 relative on logits (absolute 1e-4 of the largest, for those near zero), on logits that spread
    over many classes, with the same top class."""
    assert actual.shape == expected.shape
    scale = float(np.abs(expected).max())
    assert np.count_nonzero(expected) > expected.size // 2 and expected.std() > 0.1 * scale, \
        "reference logits are mostly zero or flat: the comparison would be too weak"
    diff = np.abs(actual.astype(np.float64) - expected)
    print(f"\n{what}: max abs diff {diff.max():.3g} (largest logit {scale:.3g}), "
          f"L2 relative {np.linalg.norm(diff) / np.linalg.norm(expected):.3g}")
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale)
    assert int(np.argmax(actual)) == int(np.argmax(expected))


def yaml_layers(path: Path) -> list[str]:
    """The `layers:` lines of a model description, comments stripped."""
    lines = Path(path).read_text().splitlines()
    return [line.split("#")[0].rstrip() for line in lines[lines.index("layers:") + 1:] if line.strip()]


def config_layers(version: str) -> list[str]:
    return yaml_layers(ROOT / f"configs/models/squeezenet_v{version}.yaml")
