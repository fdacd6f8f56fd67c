"""The code and the Python in docs/*.md are ruff clean: `make lint` runs inside the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> str:
    found = Path(sys.executable).with_name("ruff")
    if found.exists():
        return str(found)
    path = shutil.which("ruff")
    assert path, "ruff is missing: pip install -e '.[dev]'"
    return path


def test_ruff_check_and_format_are_clean() -> None:
    for args in (["check", "."], ["format", "--check", "."]):
        out = subprocess.run([_ruff(), *args], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, f"ruff {' '.join(args)}:\n{out.stdout[-3000:]}{out.stderr}"
