"""neoncc: YAML CNN descriptions -> C++ on ARM Compute Library NEON -> cross-built engines for ARMv7 boards."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
