"""The KKMServer driver: its URL, lookup by IdCommand, the asynchronous path, and bad servers.

Bad answers come from tiny misbehaving HTTP servers defined here (not JSON, a 5xx, a slow
answer, missing fields, a dropped connection): each must give a classified error, never a crash,
and never a second RegisterCheck.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest

from kkt_drivers.errors import (
    DeviceStateError, DriverConfigError, OutcomeUnknownError, RejectedError, TransientError,
)
from kkt_drivers.kkmserver import commands as c
from kkt_drivers.kkmserver.driver import KkmServerDriver
from kkt_drivers.receipt import DocumentKind, Operation
from kkt_drivers.registry import open_driver
from tests.kkmserver.conftest import sale

FAST = "timeout=1&wait=1&deadline_s=2&poll_ms=20"


def driver_for(server: Any, options: str = FAST) -> KkmServerDriver:
    host, port = server.address
    drv = open_driver(f"kkmserver+http://{host}:{port}?num_device=1&{options}")
    assert isinstance(drv, KkmServerDriver)
    drv.connect()
    return drv


# -- URL ---------------------------------------------------------------------------------------
def test_url_options_and_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KKT_KKM_PASSWORD", "s3cret")
    drv = KkmServerDriver.from_url("kkmserver+https://kkm.local:5894/api?num_device=3&password_env=KKT_KKM_PASSWORD"
                                   "&wait=5&key_prefix=shop2")
    assert drv.endpoint == "https://kkm.local:5894/api/Execute" and drv.num_device == 3 and drv.wait_s == 5
    assert c.idempotency_key(sale("A1"), drv.key_prefix) == "shop2-r1-A1"


@pytest.mark.parametrize("url, words", [
    ("kkmserver+http://h:5893?password=x", "password_env"),
    ("kkmserver+http://Admin:x@h:5893", "credentials"),
    ("kkmserver+http://h:5893?color=red", "color"),
    ("kkmserver+http://h:5893?password_env=KKT_SURELY_UNSET_VAR", "KKT_SURELY_UNSET_VAR"),
    ("kkmserver+http://h:5893?wait=0", "wait"),
])
def test_bad_urls_are_refused_with_the_reason(url: str, words: str) -> None:
    with pytest.raises(DriverConfigError, match=words):
        KkmServerDriver.from_url(url)


def test_id_command_is_stable_and_tells_operations_and_corrections_apart() -> None:
    import datetime as dt

    from kkt_drivers.receipt import Correction
    r = sale("T-77")
    assert c.idempotency_key(r) == c.idempotency_key(sale("T-77")) == "kktw-r1-T-77"
    assert c.idempotency_key(sale("T-77", Operation.SALE_REFUND)) == "kktw-r2-T-77"
    corr = replace(r, correction=Correction(True, dt.date(2026, 1, 2)))
    assert c.idempotency_key(corr) == "kktw-c1-T-77"


# -- against the emulator ---------------------------------------------------------------------------
def test_auth_with_password_env_works_and_a_wrong_password_pauses_the_lane(make_server, monkeypatch) -> None:
    srv = make_server(password="s3cret")
    host, port = srv.address
    monkeypatch.setenv("KKT_KKM_PASSWORD", "s3cret")
    assert not open_driver(f"kkmserver+http://{host}:{port}?password_env=KKT_KKM_PASSWORD").status().shift_open
    monkeypatch.setenv("KKT_KKM_PASSWORD", "wrong")
    with pytest.raises(DeviceStateError, match="credentials"):
        open_driver(f"kkmserver+http://{host}:{port}?password_env=KKT_KKM_PASSWORD").status()


def test_find_by_key_unknown_then_done(make_server) -> None:
    srv = make_server()
    drv = driver_for(srv)
    drv.open_shift("Кассир")
    r = sale("K-1")
    assert drv.find_by_key(r) is None                       # never sent: safe to send
    doc = drv.fiscalize(r)
    found = drv.find_by_key(r)
    assert found == doc and found.kind is DocumentKind.RECEIPT and found.total == Decimal("1200.00")


def test_find_by_key_while_the_register_still_works_is_outcome_unknown(make_server) -> None:
    srv = make_server(latency_ms=600)
    drv = driver_for(srv, "timeout=2&wait=1&deadline_s=0.2&poll_ms=20")
    drv.open_shift()
    r = sale("K-2")
    with pytest.raises(OutcomeUnknownError):
        drv.fiscalize(r)                                     # deadline shorter than the register
    with pytest.raises(OutcomeUnknownError, match="still executing"):
        drv.find_by_key(r)
    time.sleep(0.8)
    assert drv.find_by_key(r).tag == "K-2"
    assert len([d for d in srv.model.documents() if d["kind"] == "receipt"]) == 1


def test_slow_register_answers_running_and_the_driver_polls_get_rezult(make_server) -> None:
    srv = make_server(latency_ms=150)
    drv = driver_for(srv, "timeout=2&wait=1&deadline_s=10&poll_ms=20")   # wait=1: asynchronous
    drv.open_shift()
    doc = drv.fiscalize(sale("K-3"))
    assert doc.tag == "K-3" and drv.document(doc.fd_number).fiscal_sign == doc.fiscal_sign


def test_find_by_key_after_a_lost_close_is_none_and_resending_makes_one_document(make_server) -> None:
    srv = make_server(faults_options={"lose_reply_before_close": "first:1"})
    drv = driver_for(srv)
    drv.open_shift()
    r = sale("K-4")
    with pytest.raises(OutcomeUnknownError):
        drv.fiscalize(r)
    assert drv.find_by_key(r) is None
    assert drv.status().receipt_open
    drv.cancel_receipt()
    assert drv.fiscalize(r).tag == "K-4" and drv.find_by_key(r).tag == "K-4"


def test_refund_and_correction_read_back_by_number(make_server) -> None:
    import datetime as dt

    from kkt_drivers.receipt import Correction
    srv = make_server()
    drv = driver_for(srv)
    drv.open_shift()
    refund = drv.fiscalize(sale("K-5", Operation.SALE_REFUND))
    corr = drv.fiscalize(replace(sale("K-6"), correction=Correction(False, dt.date(2026, 2, 1), "ФНС-1")))
    assert drv.document(refund.fd_number).operation is Operation.SALE_REFUND
    back = drv.document(corr.fd_number)
    assert back.kind is DocumentKind.CORRECTION and back.tag == "K-6"
    assert srv.model.document(corr.fd_number)["correction"] == {"1173": 1, "1178": "2026-02-01", "1179": "ФНС-1"}
    closed = drv.close_shift()
    assert closed.kind is DocumentKind.CLOSE_SHIFT and drv.document(closed.fd_number).kind is DocumentKind.CLOSE_SHIFT


def test_unreachable_server_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    drv = open_driver(f"kkmserver+http://127.0.0.1:{port}?{FAST}")
    with pytest.raises(TransientError):
        drv.fiscalize(sale())


# -- misbehaving servers --------------------------------------------------------------------------------
KKT_OK = {"Command": "GetDataKKT", "Status": 0, "Error": "", "CheckNumber": 5, "SessionNumber": 2,
          "Info": {"KktNumber": "0000000000000001", "FnNumber": "9999078900000001", "SessionState": 2}}

Behaviour = Callable[[BaseHTTPRequestHandler], None]


class Misbehaving(ThreadingHTTPServer):
    """Answers GetDataKKT correctly and RegisterCheck with *behaviour*; counts RegisterChecks."""

    daemon_threads = True

    def __init__(self, behaviour: Behaviour, get_rezult: dict | None = None) -> None:
        self.behaviour = behaviour
        self.register_checks = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body["Command"] == "RegisterCheck":
                    server.register_checks += 1
                    server.behaviour(self)
                elif body["Command"] == "GetRezult" and get_rezult is not None:
                    send(self, 200, json.dumps(get_rezult).encode())
                else:
                    send(self, 200, json.dumps(KKT_OK).encode())

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def address(self) -> tuple[str, int]:
        return self.server_address[0], self.server_address[1]


def send(h: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
    h.send_response(code)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture
def misbehaving() -> Iterator[Callable[..., Misbehaving]]:
    servers: list[Misbehaving] = []

    def make(behaviour: Behaviour, get_rezult: dict | None = None) -> Misbehaving:
        srv = Misbehaving(behaviour, get_rezult)
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _answer(payload: dict) -> Behaviour:
    return lambda h: send(h, 200, json.dumps(payload).encode())


@pytest.mark.parametrize("behaviour, error", [
    (lambda h: send(h, 200, b"<html>Internal error</html>"), OutcomeUnknownError),
    (lambda h: send(h, 500, b"oops"), OutcomeUnknownError),
    (lambda h: send(h, 502, b""), OutcomeUnknownError),
    (lambda h: (time.sleep(4), send(h, 200, b"{}")), OutcomeUnknownError),      # slower than the driver waits
    (lambda h: None, OutcomeUnknownError),                                    # connection closed, no answer
    (_answer({"Command": "RegisterCheck", "Status": 0, "Error": ""}), OutcomeUnknownError),   # fields missing
    (_answer({"Command": "RegisterCheck", "Status": 0, "QRCode": "t=20260101T1200&fn=1&i=6&fp=x&s=1&n=1",
              "SessionNumber": 2}), OutcomeUnknownError),                     # a malformed fiscal sign
    (_answer({"Command": "RegisterCheck", "Error": ""}), OutcomeUnknownError),            # no Status
    (_answer({"Command": "RegisterCheck", "Status": 3, "Error": "Устройство не найдено"}), TransientError),
    (_answer({"Command": "RegisterCheck", "Status": 2, "Error": "Нет бумаги"}), DeviceStateError),
    (_answer({"Command": "RegisterCheck", "Status": 2, "Error": "Неверная сумма оплаты"}), RejectedError),
    (_answer({"Command": "RegisterCheck", "Status": 2, "Error": "Потеряна связь с ККТ"}), OutcomeUnknownError),
    (lambda h: send(h, 401, b""), DeviceStateError),
], ids=["not-json", "500", "502", "slow", "dropped", "missing-fields", "bad-fp", "no-status", "status-3",
        "paper", "rejected", "link-lost", "http-401"])
def test_bad_answers_to_register_check_are_classified_and_never_resent(misbehaving, behaviour, error) -> None:
    srv = misbehaving(behaviour)
    drv = driver_for(srv, "timeout=1&wait=1&deadline_s=1&poll_ms=20")
    with pytest.raises(error) as e:
        drv.fiscalize(sale("M-1"))
    assert type(e.value) is error or issubclass(type(e.value), error)
    assert srv.register_checks == 1
    drv.disconnect()


def test_bad_answers_to_reads_are_transient(misbehaving) -> None:
    srv = misbehaving(_answer({}))
    host, port = srv.address
    srv.RequestHandlerClass.do_POST = lambda h: send(h, 200, b"not json")  # type: ignore[method-assign]
    drv = open_driver(f"kkmserver+http://{host}:{port}?{FAST}")
    with pytest.raises(TransientError):
        drv.status()
    srv.RequestHandlerClass.do_POST = lambda h: send(  # type: ignore[method-assign]
        h, 200, json.dumps({"Command": "GetDataKKT", "Status": 0, "Error": ""}).encode())
    with pytest.raises(TransientError, match="incomplete"):
        drv.status()


def test_a_stored_result_with_another_total_is_not_bound_silently(misbehaving) -> None:
    qr = "t=20260101T1200&s=999.00&fn=9999078900000001&i=6&fp=123456&n=1"
    srv = misbehaving(_answer({"Command": "RegisterCheck", "Status": 0, "Error": "", "QRCode": qr,
                               "SessionNumber": 2, "CheckNumber": 6}))
    drv = driver_for(srv)
    with pytest.raises(OutcomeUnknownError, match="total"):
        drv.fiscalize(sale("M-2"))
    assert srv.register_checks == 1


def test_a_resend_of_a_done_receipt_takes_the_stored_result_never_a_second_document(make_server) -> None:
    """Status 5 (already done) → the driver fetches the stored result by GetRezult."""
    srv = make_server()
    drv = driver_for(srv)
    drv.open_shift()
    r = sale("K-7")
    first = drv.fiscalize(r)
    assert drv.fiscalize(r) == first
    assert len([d for d in srv.model.documents() if d["kind"] == "receipt"]) == 1


def test_already_done_without_a_stored_result_is_outcome_unknown(misbehaving) -> None:
    """Status 5 but GetRezult no longer knows the IdCommand: never send again, reconcile."""
    srv = misbehaving(_answer({"Command": "RegisterCheck", "Status": 5, "Error": "Команда уже была выполнена"}),
                      get_rezult={"Command": "GetRezult", "Status": 3, "Error": "Команда с таким IdCommand не найдена"})
    drv = driver_for(srv)
    with pytest.raises(OutcomeUnknownError, match="no longer"):
        drv.fiscalize(sale("M-3"))
    assert srv.register_checks == 1


def test_an_error_answer_while_the_last_fd_moved_is_outcome_unknown(misbehaving) -> None:
    """"Нет бумаги" is trusted only if the register's last FD did not move meanwhile."""
    srv = misbehaving(_answer({"Command": "RegisterCheck", "Status": 2, "Error": "Нет бумаги"}))
    drv = driver_for(srv)
    drv.status()                       # baseline: FD 5
    KKT_OK["CheckNumber"] = 6          # a document appeared after the baseline
    try:
        with pytest.raises(OutcomeUnknownError, match="moved 5 → 6"):
            drv.fiscalize(sale("M-4"))
    finally:
        KKT_OK["CheckNumber"] = 5
    assert srv.register_checks == 1


def test_a_read_refused_for_an_unnamed_reason_pauses_the_lane_not_the_payment(misbehaving) -> None:
    srv = misbehaving(_answer({}))
    host, port = srv.address
    srv.RequestHandlerClass.do_POST = lambda h: send(  # type: ignore[method-assign]
        h, 200, json.dumps({"Command": "GetDataKKT", "Status": 2, "Error": "Неизвестная ошибка драйвера"}).encode())
    with pytest.raises(DeviceStateError, match="Неизвестная"):
        open_driver(f"kkmserver+http://{host}:{port}?{FAST}").status()
