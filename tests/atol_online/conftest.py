"""Fixtures: an ATOL Online emulator over plain HTTP or HTTPS (a self-signed cert made by openssl)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from kkt_drivers.atol_online.server import start_emulator
from kkt_drivers.emulators import RunningEmulator


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., RunningEmulator]]:
    """``make_service(faults={...}, **options)`` → a running emulator, stopped after the test."""
    running: list[RunningEmulator] = []

    def make(faults: dict[str, str] | None = None, **options: Any) -> RunningEmulator:
        emu = start_emulator(str(tmp_path / f"svc{len(running)}"), faults=faults, fsync=False, **options)
        running.append(emu)
        return emu

    yield make
    for emu in running:
        emu.stop()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(certfile, keyfile) for 127.0.0.1, made with the openssl binary."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)
