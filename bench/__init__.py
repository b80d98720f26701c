"""Benchmarks: python3 -m bench {tune,report,threads,int8}; results go to results/<stamp>/ and docs/ changes only with
--update-docs."""

from pathlib import Path

from neoncc import PROJECT_ROOT
from neoncc.errors import UserError

MODEL_DIR = PROJECT_ROOT / "configs" / "models"


def model_path(name_or_path: str | Path) -> Path:
    """A model given by name (configs/models/NAME.yaml) or by the path of its YAML file: every bench command
    takes both."""
    text = str(name_or_path)
    path = Path(text) if text.endswith((".yaml", ".yml")) or "/" in text else MODEL_DIR / f"{text}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in MODEL_DIR.glob("*.yaml")))
        raise UserError(f"unknown model '{text}': no file {path} (known models: {known})")
    return path.resolve()
