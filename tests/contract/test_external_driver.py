"""A driver from another package: installed beside kkt-worker, found through the entry-point group."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "example_driver"


def test_an_installed_package_adds_a_url_scheme(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    code = ("from kkt_drivers.registry import open_driver; import sys; "
            "d = open_driver('example:' + sys.argv[1]); d.connect(); d.open_shift(); "
            "print(d.model, d.status().shift_open)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "reg")], env=env, capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["example", "True"]
