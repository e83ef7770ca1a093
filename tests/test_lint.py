"""The tree has no unused imports, undefined names or syntax errors (ruff's pyflakes rules)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_ruff_finds_no_mistakes() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: `pip install -e .[test]` (start.sh test does it)")
    proc = subprocess.run([ruff, "check", "worker", "kkt_drivers", "tests", "bench", "migrations"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
