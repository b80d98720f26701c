"""deploy: boards to run the cross-built engines on, and the push-and-run path to them over SSH.

A board is a YAML file (configs/boards/); the default one is an emulated Zuluko-class board that this package
builds from Debian's armhf packages and runs under qemu-system-arm, so the whole flow works without hardware
(emulated-aarch64 is its arm64 / qemu-system-aarch64 counterpart for the aarch64 target).
"""

from neoncc import PROJECT_ROOT

CACHE = PROJECT_ROOT / ".cache"
BOARD_CACHE = CACHE / "board"
