"""The bridge emulator fed hand-written frames over raw sockets (no driver code).

Each bad frame ends its session with an error frame (where the peer can still hear one) and the
emulator keeps serving: a fresh session afterwards logs in and works.
"""
from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any, Iterator

import pytest

from kkt_drivers.emulators import RunningEmulator
from kkt_drivers.jsontcp.server import start_emulator

LOGIN = b'{"id":1,"cmd":"login","login":"kassa","password":"cashier-secret","connection_password":"bridge-secret"}'


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[RunningEmulator]:
    e = start_emulator(str(tmp_path / "reg"), fsync=False)
    yield e
    e.stop()


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read(sock: socket.socket) -> dict[str, Any]:
    (n,) = struct.unpack(">I", recv_exact(sock, 4))
    return json.loads(recv_exact(sock, n).decode("utf-8"))


def closed(sock: socket.socket) -> bool:
    sock.settimeout(3)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def session(emu: RunningEmulator) -> tuple[socket.socket, str]:
    sock = socket.create_connection(emu.server.address, timeout=5)
    sock.sendall(frame(LOGIN))
    ans = read(sock)
    assert ans["ok"] and ans["id"] == 1 and ans["result"]["protocol"] == 1
    return sock, ans["result"]["session"]


def call(sock: socket.socket, key: str, n: int, body: str) -> dict[str, Any]:
    sock.sendall(frame(('{"id":%d,"session":"%s",' % (n, key) + body[1:]).encode()))
    ans = read(sock)
    assert ans["id"] == n
    return ans


def test_a_receipt_by_hand_and_read_back_by_number(emu: RunningEmulator) -> None:
    sock, key = session(emu)
    assert call(sock, key, 2, '{"cmd":"open_shift","cashier":null}')["result"]["document"]["kind"] == "open_shift"
    assert call(sock, key, 3, '{"cmd":"open_receipt","operation":1,"correction":null}')["ok"]
    assert call(sock, key, 4, '{"cmd":"add_item","item":{"name":"Чай","price":"150.50","quantity":"2",'
                              '"amount":"301.00","vat":"vat22","payment_method":4,"payment_subject":1,'
                              '"measure_unit":0}}')["ok"]
    assert call(sock, key, 5, '{"cmd":"add_requisite","tag":1192,"value":"HAND1"}')["ok"]
    closed_doc = call(sock, key, 6, '{"cmd":"close_receipt","tax_system":1,'
                                    '"payments":[{"type":"electronic","amount":"301.00"}]}')["result"]["document"]
    assert closed_doc["kind"] == "receipt" and closed_doc["total"] == "301.00" and closed_doc["tag"] == "HAND1"
    back = call(sock, key, 7, '{"cmd":"document","number":%d}' % closed_doc["number"])["result"]["document"]
    assert back == closed_doc
    assert call(sock, key, 8, '{"cmd":"last_document"}')["result"]["document"] == closed_doc
    assert call(sock, key, 9, '{"cmd":"document","number":99}')["result"]["document"] is None
    bad = call(sock, key, 10, '{"cmd":"close_receipt","tax_system":1,"payments":[]}')
    assert bad["error"]["class"] == "device"       # no receipt open: the register's state, session stays
    status = call(sock, key, 11, '{"cmd":"status"}')["result"]
    assert status["last_fd"] == closed_doc["number"] and status["shift_open"] and not status["receipt_open"]
    sock.sendall(frame(b'{"id":12,"cmd":"logout","session":"%s"}' % key.encode()))
    assert read(sock)["ok"] and closed(sock)


def test_refused_login_and_missing_session_end_the_session(emu: RunningEmulator) -> None:
    sock = socket.create_connection(emu.server.address, timeout=5)
    sock.sendall(frame(LOGIN.replace(b"bridge-secret", b"guess")))
    ans = read(sock)
    assert ans["error"]["class"] == "auth" and ans["error"]["code"] == 4 and closed(sock)
    sock, key = session(emu)
    sock.sendall(frame(b'{"id":2,"cmd":"status","session":"not-it"}'))
    assert read(sock)["error"]["code"] == 3 and closed(sock)


@pytest.mark.parametrize("garbage, expect", [
    (struct.pack(">I", (1 << 20) + 1), "outside"),
    (frame(b"\xc3\x28\xa0\xa1"), "UTF-8"),
    (frame(b'{"id":2,"cmd":'), "JSON"),
    (frame(b"[1,2]"), "object"),
])
def test_bad_frames_end_the_session_and_the_emulator_survives(emu: RunningEmulator, garbage: bytes,
                                                              expect: str) -> None:
    sock, _ = session(emu)
    sock.sendall(garbage)
    ans = read(sock)
    assert ans["ok"] is False and ans["error"]["class"] == "protocol" and expect in ans["error"]["message"]
    assert closed(sock)
    again, key = session(emu)
    assert call(again, key, 2, '{"cmd":"status"}')["ok"]


def test_peer_stopping_mid_frame_is_timed_out_and_the_emulator_survives(emu: RunningEmulator) -> None:
    sock, _ = session(emu)
    sock.sendall(struct.pack(">I", 40) + b'{"id":2,')     # then nothing more
    ans = read(sock)                                       # within the server's 2 s frame timeout
    assert ans["error"]["class"] == "protocol" and "stopped" in ans["error"]["message"] and closed(sock)
    half, _ = session(emu)
    half.sendall(struct.pack(">I", 40) + b'{"id"')
    half.close()                                           # a peer that vanishes mid-frame
    again, key = session(emu)
    assert call(again, key, 2, '{"cmd":"status"}')["ok"]


def test_first_frame_must_be_login(emu: RunningEmulator) -> None:
    sock = socket.create_connection(emu.server.address, timeout=5)
    sock.sendall(frame(b'{"id":1,"cmd":"status"}'))
    ans = read(sock)
    assert ans["error"]["class"] == "auth" and ans["error"]["code"] == 2 and closed(sock)


def test_refusals_keep_the_session(emu: RunningEmulator) -> None:
    sock, key = session(emu)
    err = call(sock, key, 2, '{"cmd":"teleport"}')["error"]
    assert (err["class"], err["code"]) == ("rejected", 20) and "teleport" in err["message"]
    assert call(sock, key, 3, '{"cmd":"open_shift","cashier":null}')["ok"]
    assert call(sock, key, 4, '{"cmd":"open_receipt","operation":1,"correction":null}')["ok"]
    bad = call(sock, key, 5, '{"cmd":"add_item","item":{"name":"Чай","price":"150.50","quantity":"2",'
                             '"amount":"300.00","vat":"vat22"}}')
    assert bad["error"]["class"] == "rejected"             # amount != price × quantity
    assert call(sock, key, 6, '{"cmd":"add_item","item":{"price":"1"}}')["error"]["code"] == 21
    assert call(sock, key, 7, '{"cmd":"cancel_receipt"}')["result"] == {"cancelled": True}
    assert call(sock, key, 8, '{"cmd":"status"}')["result"]["receipt_open"] is False


def test_shift_totals_by_hand_running_then_from_the_z_report(emu: RunningEmulator) -> None:
    """PROTOCOL.md §3.2: the register's own counters, amounts as decimal strings; the open shift's are
    running, a closed shift's come from its Z report; a shift the register does not hold is null."""
    sock, key = session(emu)
    assert call(sock, key, 2, '{"cmd":"open_shift","cashier":null}')["ok"]
    assert call(sock, key, 3, '{"cmd":"open_receipt","operation":1,"correction":null}')["ok"]
    assert call(sock, key, 4, '{"cmd":"add_item","item":{"name":"Чай","price":"150.50","quantity":"2",'
                              '"amount":"301.00","vat":"vat22","payment_method":4,"payment_subject":1,'
                              '"measure_unit":0}}')["ok"]
    assert call(sock, key, 5, '{"cmd":"close_receipt","tax_system":1,"payments":[{"type":"cash","amount":"1.00"},'
                              '{"type":"electronic","amount":"300.00"}]}')["ok"]
    running = call(sock, key, 6, '{"cmd":"shift_totals","shift":null}')["result"]["totals"]
    assert running["shift"] == 1 and running["final"] is False
    assert running["operations"]["sale"] == {"count": 1, "amount": "301.00",
                                             "by_payment": {"cash": "1.00", "electronic": "300.00"}}
    assert running["operations"]["sale_refund"] == {"count": 0, "amount": "0.00", "by_payment": {}}
    assert call(sock, key, 7, '{"cmd":"close_shift","cashier":null}')["ok"]
    final = call(sock, key, 8, '{"cmd":"shift_totals","shift":1}')["result"]["totals"]
    assert final["final"] is True and final["source"].startswith("Z report FD 3")
    assert final["operations"]["sale"]["amount"] == "301.00"
    assert call(sock, key, 9, '{"cmd":"shift_totals","shift":2}')["result"]["totals"] is None
