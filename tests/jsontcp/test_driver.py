"""The jsontcp driver against a misbehaving bridge: bad answers end the session with a clear error,
classified by whether the closing command was on the wire."""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
from typing import Iterator

import pytest

from kkt_drivers.errors import DriverConfigError, OutcomeUnknownError, TransientError
from kkt_drivers.jsontcp import protocol as p
from kkt_drivers.jsontcp.driver import JsonTcpDriver
from tests.atol_online.test_protocol import sale


class FakeBridge:
    """A hand-written jsontcp peer on a free port: reads each framed command, records its name and lets
    :meth:`answer` reply (False: hang up)."""

    nodelay = False

    def __init__(self) -> None:
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
            if self.nodelay:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # each write its own segment
            with conn:
                try:
                    while True:
                        (n,) = struct.unpack(">I", conn.recv(4, socket.MSG_WAITALL))
                        msg = json.loads(conn.recv(n, socket.MSG_WAITALL))
                        self.commands.append(msg["cmd"])
                        if not self.answer(conn, msg):
                            break
                except (OSError, struct.error, ValueError):
                    pass

    def answer(self, conn: socket.socket, msg: dict) -> bool:
        raise NotImplementedError


class BadBridge(FakeBridge):
    """Logs any client in, answers every command ok, but answers *poison_cmd* with *poison* bytes."""

    def __init__(self, poison_cmd: str, poison: bytes) -> None:
        self.poison_cmd, self.poison = poison_cmd, poison
        super().__init__()

    def answer(self, conn: socket.socket, msg: dict) -> bool:
        if msg["cmd"] == self.poison_cmd:
            conn.sendall(self.poison)
            return False
        result = {"session": "k"} if msg["cmd"] == "login" else {}
        body = json.dumps({"id": msg["id"], "ok": True, "result": result}).encode()
        conn.sendall(struct.pack(">I", len(body)) + body)
        return True

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
    for bad in ("timeout=0", "timeout=-1", "close_timeout=-5", "timeout=nan"):
        with pytest.raises(DriverConfigError, match="positive"):
            JsonTcpDriver.from_url(f"{url}&{bad}")


DOC = {"fd": 5, "fp": 123, "fn": "9999078900000001", "kind": "receipt", "dt": "2026-11-20T12:00:01",
       "shift": 1, "receipt_no": 1, "operation": 1, "total": "599.97", "tag": "T1"}


class TimedBridge(FakeBridge):
    """Answers every command ok (``close_receipt`` with a document) and shapes how the answer travels:
    *delay_s* per command before it, *stale* frames (answers to other ids) in the same write, and
    *pieces*: the answer (with its stale frames) cut into that many writes *gap_s* apart."""

    nodelay = True

    def __init__(self, *, delay_s: dict[str, float] | None = None, stale: int = 0, pieces: int = 1,
                 gap_s: float = 0.0) -> None:
        self.delay_s, self.stale, self.pieces, self.gap_s = delay_s or {}, stale, pieces, gap_s
        super().__init__()

    def answer(self, conn: socket.socket, msg: dict) -> bool:
        time.sleep(self.delay_s.get(msg["cmd"], 0.0))
        result: dict = {"session": "k"} if msg["cmd"] == "login" else {}
        if msg["cmd"] == "close_receipt":
            result = {"document": p.document_to_wire(DOC)}
        data = b"".join(p.encode({"id": 10_000 + i, "ok": True, "result": {}}) for i in range(self.stale))
        data += p.encode({"id": msg["id"], "ok": True, "result": result})
        step = -(-len(data) // self.pieces)
        for k in range(0, len(data), step):
            if k:
                time.sleep(self.gap_s)
            conn.sendall(data[k:k + step])
        return True

    def driver(self, timeout_s: float, close_timeout_s: float) -> JsonTcpDriver:
        return JsonTcpDriver("127.0.0.1", self.port, login="l", password="p", connection_password="c",
                             timeout_s=timeout_s, close_timeout_s=close_timeout_s)


def test_close_receipt_waits_its_longer_timeout() -> None:
    drv = TimedBridge(delay_s={"close_receipt": 1.0}).driver(timeout_s=0.3, close_timeout_s=5)
    assert drv.fiscalize(sale("T1")).fd_number == 5


def test_a_slow_answer_before_the_close_is_transient_after_the_short_timeout() -> None:
    bridge = TimedBridge(delay_s={"add_item": 1.5})
    drv = bridge.driver(timeout_s=0.3, close_timeout_s=5)
    started = time.monotonic()
    with pytest.raises(TransientError, match="add_item.*TimeoutError") as e:
        drv.fiscalize(sale("T1"))
    assert not isinstance(e.value, OutcomeUnknownError)
    assert 0.25 < time.monotonic() - started < 1.2
    assert "close_receipt" not in bridge.commands


def test_a_lost_answer_to_the_close_is_outcome_unknown_after_the_close_timeout() -> None:
    drv = TimedBridge(delay_s={"close_receipt": 60}).driver(timeout_s=0.2, close_timeout_s=0.8)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError, match="close_receipt.*TimeoutError"):
        drv.fiscalize(sale("T1"))
    assert 0.7 < time.monotonic() - started < 5


@pytest.mark.parametrize("pieces", [1, 3, 50])
def test_answers_to_abandoned_commands_are_skipped_however_the_bytes_arrive(pieces: int) -> None:
    bridge = TimedBridge(stale=2, pieces=pieces, gap_s=0.002)
    drv = bridge.driver(timeout_s=2, close_timeout_s=2)
    assert drv.fiscalize(sale("T1")).fd_number == 5
    assert bridge.commands == ["login", "open_receipt", "add_item", *["add_requisite"] * 4, "close_receipt"]


def test_the_answer_timeout_is_per_wait_for_more_bytes_as_a_socket_timeout() -> None:
    """An answer trickling in 5 pieces 0.3 s apart (1.2 s in all) beats a 1 s timeout: each wait for
    the next bytes gets the whole timeout, as ``recv`` on a socket with a timeout did."""
    drv = TimedBridge(pieces=5, gap_s=0.3).driver(timeout_s=1.0, close_timeout_s=1.0)
    drv.connect()
    started = time.monotonic()
    drv.x_report()
    assert time.monotonic() - started > 1.0
