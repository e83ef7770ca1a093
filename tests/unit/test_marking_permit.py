"""The разрешительный режим pre-check against a local fake of the state system's codes/check API."""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from kkt_drivers import marking as mk
from kkt_drivers.emulator.driver import EmulatorDriver
from kkt_drivers.errors import DeviceStateError, RejectedError
from kkt_drivers.receipt import Item, Operation, Payment, PaymentSubject, PaymentType, Receipt, TaxSystem, Vat

CODE = mk.build_gs1("04650194496163", "P00001", check_code="dGVz")
KEY = "test-key-123"


class FakeTrueApi(ThreadingHTTPServer):
    """codes/check as integrations read it: per-code flags, reqId and reqTimestamp (UNVERIFIED shape)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []


class _Handler(BaseHTTPRequestHandler):
    server: FakeTrueApi

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "key": self.headers.get("X-API-KEY"), "body": body})
        if self.headers.get("X-API-KEY") != KEY:
            self.send_response(401)
            self.end_headers()
            return
        if self.server.mode == "slow":
            time.sleep(2.5)
        sold = self.server.mode == "sold"
        answer = {"code": 0, "description": "ok", "reqId": "7f0e2a8c-0000-4000-8000-000000000001",
                  "reqTimestamp": 1764500000000, "codes": [
                      {"cis": c, "found": True, "valid": True, "verified": True, "realizable": True,
                       "utilised": True, "isBlocked": False, "sold": sold, "errorCode": 0,
                       "expireDate": "2099-01-01T00:00:00Z"} for c in body["codes"]]}
        data = json.dumps(answer).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (the 1.5 s rule)


@pytest.fixture
def api() -> Iterator[FakeTrueApi]:
    srv = FakeTrueApi()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _sale() -> Receipt:
    it = Item("Вода", Decimal("50"), Decimal(1), Decimal("50"), Vat.VAT22,
              payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=CODE)
    plain = Item("Пакет", Decimal("5"), Decimal(1), Decimal("5"), Vat.VAT22)
    return Receipt(Operation.SALE, TaxSystem.OSN, (it, plain), (Payment(PaymentType.ELECTRONIC, Decimal("55")),), tag="p1")


@pytest.fixture
def driver(api, tmp_path, monkeypatch) -> EmulatorDriver:
    monkeypatch.setenv("KKT_TEST_CZ_KEY", KEY)
    host, port = api.server_address
    drv = EmulatorDriver.from_url(f"emulator://{tmp_path}/r?permit_url=http://{host}:{port}&permit_key_env=KKT_TEST_CZ_KEY")
    drv.open_shift()
    return drv


def test_permit_goes_into_1260_of_the_marked_line(api, driver) -> None:
    doc = driver.register.document(driver.fiscalize(_sale()).fd_number)
    assert doc["items"][0]["1260"] == [["030", "21.11.2023", "1944",
                                        "UUID=7f0e2a8c-0000-4000-8000-000000000001&Time=1764500000000"]]
    assert "1260" not in doc["items"][1]
    [req] = api.requests
    assert req["path"] == "/api/v4/true-api/codes/check" and req["key"] == KEY
    assert req["body"] == {"codes": [CODE.decode()], "fiscalDriveNumber": driver.status().fn_serial}


def test_a_code_the_state_system_refuses_rejects_the_receipt(api, driver) -> None:
    api.mode = "sold"
    with pytest.raises(RejectedError, match=r"items\[0\]\.marking_code: .*refused by the state system: sold is true"):
        driver.fiscalize(_sale())
    assert not [d for d in driver.register.documents() if d["kind"] == "receipt"]


def test_no_answer_within_1_5_s_sells_without_the_permit(api, driver) -> None:
    api.mode = "slow"
    doc = driver.register.document(driver.fiscalize(_sale()).fd_number)
    assert "1260" not in doc["items"][0] and doc["items"][0]["marking"]["2106"] == 0x0F


def test_a_wrong_key_pauses_the_lane(api, driver, monkeypatch) -> None:
    driver.permit.api_key = "wrong"
    with pytest.raises(DeviceStateError) as e:
        driver.fiscalize(_sale())
    assert e.value.condition == "permit_auth"
