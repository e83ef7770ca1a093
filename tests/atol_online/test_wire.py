"""The ATOL Online emulator answered with hand-written requests (http.client, no driver code).

The request bodies are written from the v5 field lists (sushi-market/atol-online-sdk DTOs) and the
error codes from mygento/kkm, independently of :mod:`kkt_drivers.atol_online.protocol`.
"""
from __future__ import annotations

import http.client
import json
import ssl
import time
from decimal import Decimal
from typing import Any, Callable

import pytest

from kkt_drivers.emulators import RunningEmulator

SELL = """{
 "external_id": "hand-1", "timestamp": "20.11.2026 12:00:00",
 "receipt": {
  "client": {"email": "buyer@example.ru"},
  "company": {"email": "shop@example.ru", "sno": "osn", "inn": "5544332219",
              "payment_address": "https://shop.example.ru"},
  "items": [{"name": "Чай", "price": 150.50, "quantity": 2.0, "measure": 0, "sum": 301.00,
             "payment_method": "full_payment", "payment_object": 1, "vat": {"type": "vat22", "sum": 54.28}}],
  "payments": [{"type": 1, "sum": 301.00}],
  "total": 301.00, "internet": true, "additional_check_props": "HAND1"
 }
}"""


class Api:
    """A bare HTTP(S) client of the emulator."""

    def __init__(self, emu: RunningEmulator, context: ssl.SSLContext | None = None) -> None:
        self.host, self.port = emu.server.address
        self.context = context
        self.token = ""

    def call(self, method: str, path: str, body: str | bytes | None = None,
             token: str | None = None) -> tuple[int, Any]:
        cls = http.client.HTTPSConnection if self.context else http.client.HTTPConnection
        kw = {"context": self.context} if self.context else {}
        conn = cls(self.host, self.port, timeout=5, **kw)
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if token is not None or self.token:
            headers["Token"] = token if token is not None else self.token
        conn.request(method, "/possystem/v5/" + path, body=body.encode() if isinstance(body, str) else body,
                     headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, json.loads(data, parse_float=Decimal) if data else None

    def login(self) -> None:
        status, ans = self.call("POST", "getToken", '{"login": "kkt-worker", "pass": "emulator-secret"}')
        assert status == 200 and ans["error"] is None and ans["token"]
        self.token = ans["token"]


def wait_done(api: Api, uuid: str) -> dict:
    for _ in range(100):
        status, ans = api.call("GET", f"emulator-group/report/{uuid}")
        assert status == 200
        if ans["status"] != "wait":
            return ans
        time.sleep(0.05)
    raise AssertionError("report never left 'wait'")


def test_token_sell_report_and_duplicate(make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service()
    api = Api(emu)
    api.login()
    status, ans = api.call("POST", "emulator-group/sell", SELL)
    assert status == 200 and ans["status"] == "wait" and ans["error"] is None
    uuid = ans["uuid"]
    rep = wait_done(api, uuid)
    assert rep["status"] == "done" and rep["external_id"] == "hand-1"
    pay = rep["payload"]
    assert pay["total"] == Decimal("301.00") and pay["fiscal_document_number"] >= 1
    assert isinstance(pay["fiscal_document_attribute"], int) and len(pay["fn_number"]) == 16
    # the same external_id again: error 33 and the first uuid, no second document
    status, dup = api.call("POST", "emulator-group/sell", SELL)
    assert dup["error"]["code"] == 33 and dup["error"]["type"] == "system" and dup["uuid"] == uuid
    receipts = [d for d in emu.model.documents() if d["kind"] == "receipt"]
    assert len(receipts) == 1 and receipts[0]["tag"] == "HAND1" and receipts[0]["total"] == "301.00"
    assert receipts[0]["requisites"]["1008"] == "buyer@example.ru"


def test_token_errors(make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service()
    api = Api(emu)
    status, ans = api.call("POST", "getToken", '{"login": "kkt-worker", "pass": "wrong"}')
    assert status == 401 and ans["error"]["code"] == 12
    status, ans = api.call("POST", "emulator-group/sell", SELL, token="no-such-token")
    assert status == 401 and ans["error"]["code"] == 10
    api.login()
    emu.server.service.expire_tokens()
    status, ans = api.call("POST", "emulator-group/sell", SELL)
    assert status == 401 and ans["error"]["code"] == 11
    api.login()
    status, ans = api.call("POST", "other-group/sell", SELL)
    assert ans["error"]["code"] == 20


def test_refusals_register_nothing(make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service()
    api = Api(emu)
    api.login()
    status, ans = api.call("POST", "emulator-group/sell", '{123:}')
    assert status == 400 and ans["error"]["type"] == "unknown"
    bad = SELL.replace('"total": 301.00', '"total": 302.00')
    status, ans = api.call("POST", "emulator-group/sell", bad)
    assert status == 400 and ans["error"]["code"] == 32
    status, ans = api.call("POST", "emulator-group/teleport", SELL)
    assert ans["error"]["code"] == 31
    status, ans = api.call("GET", "emulator-group/report/00000000-0000-0000-0000-000000000000")
    assert ans["error"]["code"] == 34
    assert emu.server.service.requests() == [] and emu.model.documents() == []


def test_delayed_done_and_rate_limit(make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service(faults={"rate_limit": "first:1"}, done_delay_s=0.5)
    api = Api(emu)
    status, _ = api.call("POST", "getToken", '{"login": "kkt-worker", "pass": "emulator-secret"}')
    assert status == 429
    api.login()
    _, ans = api.call("POST", "emulator-group/sell", SELL)
    _, first = api.call("GET", f"emulator-group/report/{ans['uuid']}")
    assert first["status"] == "wait" and first["payload"] is None
    assert wait_done(api, ans["uuid"])["status"] == "done"


def test_lost_reply_after_registration_keeps_the_request(make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service(faults={"lose_reply_after_close": "first:1"})
    api = Api(emu)
    api.login()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        api.call("POST", "emulator-group/sell", SELL)
    _, dup = api.call("POST", "emulator-group/sell", SELL)
    assert dup["error"]["code"] == 33
    assert wait_done(api, dup["uuid"])["status"] == "done"
    assert len([d for d in emu.model.documents() if d["kind"] == "receipt"]) == 1


def test_fn_error_is_a_fail_report(make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service(faults={"fn_error": "first:1"})
    api = Api(emu)
    api.login()
    _, ans = api.call("POST", "emulator-group/sell", SELL)
    rep = wait_done(api, ans["uuid"])
    assert rep["status"] == "fail" and rep["error"]["type"] == "driver" and rep["payload"] is None
    assert not [d for d in emu.model.documents() if d["kind"] == "receipt"]


def test_https_with_a_self_signed_certificate(make_service: Callable[..., RunningEmulator],
                                              self_signed: tuple[str, str]) -> None:
    cert, key = self_signed
    emu = make_service(certfile=cert, keyfile=key)
    assert emu.url.startswith("atol-online+https://")
    api = Api(emu, ssl.create_default_context(cafile=cert))
    api.login()
    _, ans = api.call("POST", "emulator-group/sell", SELL)
    assert wait_done(api, ans["uuid"])["status"] == "done"
    with pytest.raises(ssl.SSLError):   # an unverified client is refused by its own TLS stack
        Api(emu, ssl.create_default_context()).login()


def test_emulator_restart_mid_fiscalization_never_duplicates(make_service: Callable[..., RunningEmulator],
                                                              tmp_path) -> None:
    """A crash of the service between writing the document and saving the request's result: on restart
    it finds the document by its 1192 tag and total instead of fiscalizing again."""
    from kkt_drivers.atol_online import protocol as p
    from kkt_drivers.atol_online.server import AtolOnlineService, parse_faults

    emu = make_service()
    api = Api(emu)
    api.login()
    _, ans = api.call("POST", "emulator-group/sell", SELL)
    done = wait_done(api, ans["uuid"])
    emu.stop()
    table = emu.server.service._path
    rows = p.loads(table.read_bytes())
    rows[ans["uuid"]].update(status="processing", payload=None)   # as if cut right after the close
    table.write_bytes(p.dumps(rows))
    again = AtolOnlineService(str(table.parent), faults=parse_faults({}), fsync=False)
    (row,) = again.requests()
    assert row["status"] == "done" and row["payload"]["fiscal_document_number"] == done["payload"]["fiscal_document_number"]
    assert len([d for d in again.model.documents() if d["kind"] == "receipt"]) == 1
