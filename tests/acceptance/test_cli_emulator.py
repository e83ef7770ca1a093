"""``kkt-worker emulator serve NAME``: emulators come from the drivers' registry; ``emulator shtrih`` is its alias."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from kkt_drivers import open_driver
from tests.shop import cli_env, free_port, wait_serving

def test_serve_by_name_answers_and_stops_warm_on_sigterm(tmp_path: Path) -> None:
    """Given `emulator serve shtrih DIR --port P --option serial=…`, a driver reads the register's status;
    SIGTERM stops it cleanly (exit 0) and prints where it served."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "worker", "emulator", "serve", "shtrih", str(tmp_path / "reg"),
                             "--port", str(port), "--seed", "3", "--option", "serial=0000000000000042"],
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_serving(proc, port)
        with open_driver(f"shtrih+socket://127.0.0.1:{port}?timeout=3") as drv:
            status = drv.status()
        assert status.fn_serial and status.last_fd_number == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=15)[1]
    assert proc.returncode == 0
    assert f"shtrih emulator at shtrih+socket://127.0.0.1:{port}" in out


def test_unknown_emulator_name_lists_the_known_ones(tmp_path: Path) -> None:
    """A name the drivers package does not register is refused with the choices."""
    res = subprocess.run([sys.executable, "-m", "worker", "emulator", "serve", "nosuch", str(tmp_path)],
                         env=cli_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "shtrih" in res.stderr and "emulator" in res.stderr
