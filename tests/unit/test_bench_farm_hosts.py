"""bench.farm_hosts: one process serves several Shtrih-M registers on the wire, each its own device."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kkt_drivers.registry import open_driver
from tests.shop import cli_env


@pytest.mark.parametrize("model", ["shtrih", "jsontcp"])
def test_one_host_process_serves_distinct_registers(tmp_path: Path, model: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from kkt_drivers.jsontcp import server as jsontcp

    # the jsontcp URL names its password variables; the host's defaults are the emulator's
    monkeypatch.setenv(jsontcp.PASSWORD_ENV, jsontcp.EMULATOR_PASSWORD)
    monkeypatch.setenv(jsontcp.CONNECTION_PASSWORD_ENV, jsontcp.EMULATOR_CONNECTION_PASSWORD)
    proc = subprocess.Popen([sys.executable, "-m", "bench.farm_hosts", str(tmp_path), "--first", "3",
                             "--count", "2", "--receipt-ms", "0", "--model", model],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=cli_env(), text=True)
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())["urls"]
        assert len(urls) == 2 and len(set(urls)) == 2
        serials = []
        for url in urls:
            drv = open_driver(url)
            drv.connect()
            try:
                serials.append(drv.status().register_serial)
            finally:
                drv.disconnect()
        assert len(set(serials)) == 2   # two devices, not one answering twice
        assert sorted(p.name for p in tmp_path.iterdir()) == ["reg3", "reg4"]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()   # closing stdin is how the benchmark stops a host
        assert proc.wait(timeout=30) == 0
