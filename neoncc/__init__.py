"""neoncc: YAML CNN descriptions -> C++ on ARM Compute Library NEON -> cross-built engines for ARMv7 boards."""

import os
from pathlib import Path

__version__ = "0.1.0"


def _project_root() -> Path:
    """Where the templates, runtime sources, toolchain and board files live: $NEONCC_ROOT if set, the checkout
    this package sits in (also an editable install), else the copy an installed wheel carries (neoncc/_data)."""
    if os.environ.get("NEONCC_ROOT"):
        return Path(os.environ["NEONCC_ROOT"]).resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "templates").is_dir() and (checkout / "runtime").is_dir():
        return checkout
    return Path(__file__).resolve().parent / "_data"


PROJECT_ROOT = _project_root()
