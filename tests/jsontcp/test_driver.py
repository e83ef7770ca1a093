"""The jsontcp driver against a misbehaving bridge: bad answers end the session with a clear error,
classified by whether the closing command was on the wire."""
from __future__ import annotations

import json
import socket
import struct
import threading
from typing import Iterator

import pytest

from kkt_drivers.errors import DriverConfigError, OutcomeUnknownError, TransientError
from kkt_drivers.jsontcp.driver import JsonTcpDriver
from tests.atol_online.test_protocol import sale


class BadBridge:
    """Logs any client in, answers every command ok, but answers *poison_cmd* with *poison* bytes."""

    def __init__(self, poison_cmd: str, poison: bytes) -> None:
        self.poison_cmd, self.poison = poison_cmd, poison
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.commands: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    while True:
                        (n,) = struct.unpack(">I", conn.recv(4, socket.MSG_WAITALL))
                        msg = json.loads(conn.recv(n, socket.MSG_WAITALL))
                        self.commands.append(msg["cmd"])
                        if msg["cmd"] == self.poison_cmd:
                            conn.sendall(self.poison)
                            break
                        result = {"session": "k"} if msg["cmd"] == "login" else {}
                        body = json.dumps({"id": msg["id"], "ok": True, "result": result}).encode()
                        conn.sendall(struct.pack(">I", len(body)) + body)
                except (OSError, struct.error, ValueError):
                    pass

    def driver(self) -> JsonTcpDriver:
        return JsonTcpDriver("127.0.0.1", self.port, login="l", password="p", connection_password="c",
                             timeout_s=0.5, close_timeout_s=0.5)


POISONS = {
    "too long": struct.pack(">I", (1 << 20) + 1),
    "not utf-8": struct.pack(">I", 2) + b"\xff\xfe",
    "not json": struct.pack(">I", 3) + b"{1:",
    "stops mid-frame": struct.pack(">I", 50) + b'{"id":',
}


@pytest.fixture(params=sorted(POISONS))
def poison(request: pytest.FixtureRequest) -> Iterator[bytes]:
    yield POISONS[request.param]


def test_bad_answer_before_close_is_transient(poison: bytes) -> None:
    bridge = BadBridge("add_item", poison)
    drv = bridge.driver()
    with pytest.raises(TransientError) as e:
        drv.fiscalize(sale("B1"))
    assert not isinstance(e.value, OutcomeUnknownError) and "add_item" in str(e.value)
    assert "close_receipt" not in bridge.commands


def test_bad_answer_to_close_is_outcome_unknown(poison: bytes) -> None:
    bridge = BadBridge("close_receipt", poison)
    drv = bridge.driver()
    with pytest.raises(OutcomeUnknownError, match="close_receipt"):
        drv.fiscalize(sale("B2"))
    assert bridge.commands[-1] == "close_receipt"


def test_url_takes_passwords_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "jsontcp://127.0.0.1:7790?login=kassa&password_env=KP&connection_password_env=KC"
    with pytest.raises(DriverConfigError, match="KP"):
        JsonTcpDriver.from_url(url)
    monkeypatch.setenv("KP", "a")
    monkeypatch.setenv("KC", "b")
    with pytest.raises(DriverConfigError, match="password"):
        JsonTcpDriver.from_url(url + "&password=a")
    drv = JsonTcpDriver.from_url(url + "&timeout=2")
    assert (drv.host, drv.port, drv.timeout_s, drv.reads_documents) == ("127.0.0.1", 7790, 2.0, True)
