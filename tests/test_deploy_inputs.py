"""Bad input to deploy.py and SCons, checked on this host: each case ends in one `error:` line naming what is
wrong, a non-zero exit and no traceback, before anything is built or sent; and no character in a file or model
name runs anything (a marker file that a shell would create stays absent).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deploy import testing
from deploy.image import ensure_client_key
from neoncc import PROJECT_ROOT
from neoncc.errors import UserError
from neoncc.frontend.yaml_model import load_yaml_model
from neoncc.tools.preprocess import image_to_tensor
from neoncc.weights.pack import random_weights
from neoncc.weights.state_dict import write_npz

TINY = PROJECT_ROOT / "tests" / "models" / "tiny_passes.yaml"
SQUEEZENET = PROJECT_ROOT / "configs" / "models" / "squeezenet_v1_1.yaml"
MODEL = """name: m
input: {{shape: [3, 8, 8]}}
layers:
{layers}
"""
CONV = "  - {name: c1, type: conv, filters: 4, kernel: 3}\n"


def _model(tmp: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _png_header(tmp: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels (its data is a few bytes): a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path = tmp / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def _npz_claiming(tmp: Path, shape: tuple[int, ...]) -> Path:
    """An .npz whose one array's header claims `shape` float32 but holds 16 bytes."""
    import zipfile
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = shape
    buffer = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    path = tmp / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("c1.weight.npy", buffer.getvalue() + b"\0" * 16)
    return path


@pytest.fixture(scope="module")
def silent_port():
    """A TCP port that accepts connections and never says anything (not an SSH server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _real_board(tmp: Path, **fields) -> Path:
    with socket.socket() as s:  # nothing listens there: a check that comes too late says "unreachable"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return testing.board_file(tmp, "pytest-inputs", emulated=False, **{"port": port, **fields})


def _case_args(case: str, tmp: Path, silent_port: int) -> tuple[list[str], str]:
    """deploy.py's arguments for a case, and what its error line must contain."""
    board = ["--board", str(_real_board(tmp))]
    layers = lambda text: MODEL.format(layers=text)  # noqa: E731
    if case == "binary yaml":
        path = tmp / "bin.yaml"
        path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01" * 50)
        return board + ["--model", str(path)], "not a text file"
    if case == "kernel: 3.0":
        return board + ["--model", str(_model(tmp, layers(CONV.replace("kernel: 3", "kernel: 3.0"))))], \
            "layers[0].kernel: 3.0 is not valid"
    if case == "filters: 64.0":
        return board + ["--model", str(_model(tmp, layers(CONV.replace("filters: 4", "filters: 64.0"))))], \
            "filters: 64.0 is not of type 'integer'"
    if case == "yaml alias bomb":
        bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
        return board + ["--model", str(_model(tmp, bomb))], "YAML aliases"
    if case == "huge input shape":
        return board + ["--model", str(_model(tmp, layers(CONV).replace("[3, 8, 8]", "[3, 100000, 100000]")))], \
            "input.shape: [3, 100000, 100000] is 30,000,000,000 values"
    if case == "huge filters":
        return board + ["--model", str(_model(tmp, layers(CONV.replace("filters: 4", "filters: 1000000000000"))))], \
            "greater than the maximum"
    if case == "model named _":
        return board + ["--model", str(_model(tmp, layers(CONV).replace("name: m", "name: _")))], "name: '_'"
    if case == "model named Tensor":
        return board + ["--model", str(_model(tmp, layers(CONV).replace("name: m", "name: Tensor")))], \
            "already declares"
    if case == "model named class":
        return board + ["--model", str(_model(tmp, layers(CONV).replace("name: m", "name: class")))], "C++ keyword"
    if case == "layer names meet after mangling":
        text = layers("  - {name: c1, type: conv, filters: 4, kernel: 3, activation: relu}\n"
                      "  - {name: c1_relu, type: conv, filters: 4, kernel: 1}\n")
        return board + ["--model", str(_model(tmp, text))], "same C++ name"
    if case == "model file name with backticks":
        return board + ["--model", str(_model(tmp, layers(CONV), "m`touch MARK`.yaml"))], "use only letters"
    if case.startswith("--timeout "):
        return board + ["--model", str(TINY), "--timeout", case.split()[1]], "--timeout must be"
    if case == "--output to a missing directory":
        return board + ["--model", str(TINY), "--output", str(tmp / "nowhere" / "out.f32")], "does not exist"
    if case == "--output is a directory":
        return board + ["--model", str(TINY), "--output", str(tmp)], "is a directory"
    if case == "--weights missing":
        return board + ["--model", str(TINY), "--weights", str(tmp / "none.npz")], "no such file"
    if case == "npz header claiming TiBs":
        return board + ["--model", str(TINY), "--weights", str(_npz_claiming(tmp, (1 << 40,)))], "header claims"
    if case == "npz of pickled objects":
        path = tmp / "objects.npz"
        np.savez(path, **{"c1.weight": np.array([{"a": 1}], dtype=object)})
        return board + ["--model", str(TINY), "--weights", str(path)], "holds object data"
    if case == "float64 weights of 1e300":
        weights = random_weights(load_yaml_model(TINY), 0)
        name = next(iter(weights))
        weights[name] = np.full(weights[name].shape, 1e300)
        path = tmp / "big.npz"
        write_npz(weights, path)
        return board + ["--model", str(TINY), "--weights", str(path)], "build of tiny_passes failed"
    if case == "decompression bomb image":
        return board + ["--model", str(SQUEEZENET), "--image", str(_png_header(tmp, 20000, 20000))], "bomb.png"
    if case == "1x20000 image":
        path = tmp / "thin.png"
        Image.fromarray(np.zeros((1, 20000), np.uint8)).save(path)
        return board + ["--model", str(SQUEEZENET), "--image", str(path)], "sides are too unequal"
    if case == "passphrase-protected key":
        key = tmp / "locked_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)], check=True)
        return ["--board", str(_real_board(tmp, key_file=str(key))), "--model", str(TINY)], "passphrase"
    if case == "port that never speaks SSH":
        path = testing.board_file(tmp, "pytest-silent", emulated=False, port=silent_port, connect_timeout_s=2)
        return ["--board", str(path), "--model", str(TINY)], f"no SSH server answers at 127.0.0.1:{silent_port}"
    if case == "garbage known_hosts":
        known = tmp / "garbage_known_hosts"
        known.write_bytes(b"\x00\xff\xfe garbage\n")
        return ["--board", str(_real_board(tmp, known_hosts=str(known))), "--model", str(TINY)], "cannot be read"
    if case == "known_hosts is a directory":
        return ["--board", str(_real_board(tmp, known_hosts=str(tmp))), "--model", str(TINY)], "is not a file"
    if case == "remote_dir /etc":
        return ["--board", str(_real_board(tmp, remote_dir="/etc")), "--model", str(TINY)], "system directory"
    if case == "remote_dir with a shell word":
        return ["--board", str(_real_board(tmp, remote_dir="/data/$(touch MARK)")), "--model", str(TINY)], \
            "field remote_dir"
    raise AssertionError(case)


CASES = ["binary yaml", "kernel: 3.0", "filters: 64.0", "yaml alias bomb", "huge input shape", "huge filters",
         "model named _", "model named Tensor", "model named class", "layer names meet after mangling",
         "model file name with backticks", "--timeout 0", "--timeout -5", "--timeout nan", "--timeout inf",
         "--timeout 1e12", "--output to a missing directory", "--output is a directory", "--weights missing",
         "npz header claiming TiBs", "npz of pickled objects", "float64 weights of 1e300",
         "decompression bomb image", "1x20000 image", "passphrase-protected key", "port that never speaks SSH",
         "garbage known_hosts", "known_hosts is a directory", "remote_dir /etc", "remote_dir with a shell word"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line(case, tmp_path, silent_port):
    args, expected = _case_args(case, tmp_path, silent_port)
    proc = testing.deploy(*args, "--runs", "1", "--warmup", "0", timeout=240)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = testing.error_line(proc)
    assert expected in line, line
    assert not (PROJECT_ROOT / "MARK").exists() and not (tmp_path / "MARK").exists()


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((260, 300), 32768, np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    tensor = image_to_tensor(SQUEEZENET, path)
    # 32768 of 65535 is 128 on the 0..255 scale; minus the Caffe means (BGR 104, 117, 123).
    assert np.allclose(tensor.reshape(3, -1).mean(1), [128 - 104, 128 - 117, 128 - 123], atol=0.01)


def test_a_png_header_claiming_400_megapixels_is_refused_before_decoding(tmp_path):
    with pytest.raises(UserError, match="bomb.png"):
        image_to_tensor(SQUEEZENET, _png_header(tmp_path, 20000, 20000))


def test_known_hosts_is_written_private(tmp_path):
    from deploy import known_hosts
    import paramiko
    path = tmp_path / "known_hosts"
    known_hosts.pin(path, "[127.0.0.1]:2222", paramiko.ECDSAKey.generate())
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)  # as older versions left it: tightened when the pin is next confirmed
    known_hosts.pin(path, "[127.0.0.1]:2222", next(iter(known_hosts.lookup(path, "[127.0.0.1]:2222").values())))
    assert path.stat().st_mode & 0o777 == 0o600


# -- no shell where a name flows -----------------------------------------------------------------------------

NASTY_DIR = "d `touch MARK1` $(touch MARK2); touch MARK3 'q' \"dq\" $HOME"


def test_scons_runs_no_shell_whatever_the_model_and_weights_paths_hold(tmp_path):
    directory = tmp_path / NASTY_DIR
    directory.mkdir()
    model = directory / "tiny_passes.yaml"
    model.write_text(TINY.read_text())
    weights = directory / "w `touch MARK4` $(touch MARK5);.npz"
    write_npz(random_weights(load_yaml_model(TINY), 3), weights)
    build_dir = tmp_path / "build `touch MARK6`"
    proc = subprocess.run(["scons", "-Q", "target=armv7", f"model={model}", f"weights={weights}",
                           f"build_dir={build_dir}", "link=static"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (build_dir / "armv7" / "tiny_passes" / "tiny_passes").is_file()
    for place in (PROJECT_ROOT, tmp_path, directory, build_dir, Path.cwd()):
        assert not list(place.glob("MARK*")), f"something ran a shell in {place}"


@pytest.mark.parametrize("stem", ["z`touch MARK`", "q$(touch MARK)", "a;touch MARK", "it's \"quoted\" x"])
def test_scons_refuses_model_file_names_it_would_name_files_after(tmp_path, stem):
    model = tmp_path / f"{stem}.yaml"
    model.write_text(TINY.read_text())
    proc = subprocess.run(["scons", "-Q", "target=armv7", f"model={model}", f"build_dir={tmp_path / 'build'}"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "use only letters, digits" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("MARK*")) and not list(PROJECT_ROOT.glob("MARK*"))


def test_model_name_field_cannot_carry_shell_words(tmp_path):
    path = _model(tmp_path, MODEL.format(layers=CONV).replace("name: m", "name: \"m`touch MARK`\""))
    with pytest.raises(UserError, match="name: 'm`touch MARK`' does not match"):
        load_yaml_model(path)
    assert not list(tmp_path.glob("MARK*"))


def test_key_is_checked_before_connecting(tmp_path):
    ensure_client_key(tmp_path / "k")  # a usable key passes the early check; the board is then unreachable
    proc = testing.deploy("--board", str(_real_board(tmp_path, key_file=str(tmp_path / "k"))), "--model", str(TINY))
    assert proc.returncode == 1 and "unreachable" in testing.error_line(proc)


def test_a_failed_weights_build_keeps_the_previous_good_outputs(tmp_path):
    """Weights the compiler refuses (float64 1e300 is +inf in float32) leave the last good engine, weight file
    and manifest in place, consistent with each other; no partial files remain."""
    build_dir = tmp_path / "build"
    good = tmp_path / "good.npz"
    write_npz(random_weights(load_yaml_model(TINY), 4), good)
    args = ["scons", "-Q", "target=armv7", f"model={TINY}", f"build_dir={build_dir}"]
    first = subprocess.run([*args, f"weights={good}"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    out = build_dir / "armv7" / "tiny_passes"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    weights = random_weights(load_yaml_model(TINY), 4)
    name = next(iter(weights))
    weights[name] = np.full(weights[name].shape, 1e300)
    bad = tmp_path / "bad.npz"
    write_npz(weights, bad)
    failed = subprocess.run([*args, f"weights={bad}"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert failed.returncode != 0 and "beyond-float32" in failed.stderr
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before
    import hashlib
    import json
    assert json.loads(after["tiny_passes.json"])["weights_sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
