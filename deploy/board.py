"""Manage the emulated board: `python3 -m deploy.board {image,start,status,stop,ssh} [--board NAME]`.

`image` builds what the board boots (scripts/setup runs it), `start` boots it and waits until SSH answers,
`status` tells whether it runs and where, `stop` ends its qemu, `ssh` prints the command line to log in by hand.
"""

from __future__ import annotations

import argparse
import sys
import time

from deploy import boards, image, vm
from deploy.errors import DeployError
from neoncc.errors import exit_status


def _emulated(name: str) -> boards.Board:
    board = boards.load(name)
    if board.emulator is None:
        raise DeployError(f"board {board.name} ({board.source}) is a real board; only emulated boards are managed")
    return board


def ensure_running(board: boards.Board, log=print, progress: bool = True) -> int:
    """Start an emulated board on demand; returns its SSH port."""
    return vm.Instance(board).start(log=log, progress=progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m deploy.board", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["image", "start", "status", "stop", "ssh"])
    parser.add_argument("--board", default=boards.DEFAULT_BOARD, help="board name or YAML file (default: %(default)s)")
    args = parser.parse_args(argv)

    def act() -> int | None:
        board = _emulated(args.board)
        instance = vm.Instance(board)
        if args.action == "image":
            img = image.ensure(board)
            print(f"board {board.name}: image {img.dir}")
        elif args.action == "start":
            started = time.monotonic()
            was_running = instance.port() is not None
            port = instance.start(progress=sys.stderr.isatty())
            note = "already running" if was_running else f"booted in {time.monotonic() - started:.1f} s"
            print(f"board {board.name}: running on 127.0.0.1:{port} ({note}); console log {instance.console}")
        elif args.action == "status":
            port = instance.port()
            if port is None:
                print(f"board {board.name}: stopped")
                return 3
            print(f"board {board.name}: running, pid {instance.pid()}, ssh on 127.0.0.1:{port}; "
                  f"console log {instance.console}")
        elif args.action == "stop":
            print(f"board {board.name}: " + ("stopped" if instance.stop() else "was not running"))
        elif args.action == "ssh":
            port = board.port
            alias = f" -o HostKeyAlias={board.host_key_alias}" if board.host_key_alias else ""
            identity = f" -i {board.key_file}" if board.key_file else ""
            print(f"ssh -p {port}{identity} -o UserKnownHostsFile={board.known_hosts}"
                  f" -o StrictHostKeyChecking=yes{alias} {board.user}@{board.host}")
    return exit_status(act)


if __name__ == "__main__":
    sys.exit(main())
