"""The shipped systemd unit stays hardened: `systemd-analyze security` scores it 2.0 or below."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "kkt-worker.service"
MAX_EXPOSURE = 2.0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_unit_exposure_score_is_at_most_2(tmp_path: Path) -> None:
    unit = tmp_path / "kkt-worker.service"  # the tool names the unit after the file
    unit.write_text(UNIT.read_text())
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for kkt-worker\.service: ([0-9.]+)", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, out.stdout


def test_unit_is_notify_with_watchdog_and_reload() -> None:
    text = UNIT.read_text()
    assert re.search(r"^Type=notify$", text, re.M) and re.search(r"^WatchdogSec=\d+", text, re.M)
    assert re.search(r"^ExecReload=.*-HUP", text, re.M)
    # passwords come as systemd credentials, never as Environment= values
    assert re.search(r"^LoadCredentialEncrypted=", text, re.M)
    assert not re.search(r"^Environment=.*PASSWORD=", text, re.M)
