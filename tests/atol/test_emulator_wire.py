"""The Web Requests emulator driven by hand-written HTTP/JSON shaped like the vendor's examples —
independent of our driver and of kkt_drivers.atol.tasks (requests are literal JSON text)."""
from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest

from tests.atol.conftest import base_url

SELL = """{"uuid": "%s", "request": [{
  "type": "sell", "taxationType": "osn", "electronically": true, "ignoreNonFiscalPrintErrors": false,
  "operator": {"name": "Иванов", "vatin": "123654789507"},
  "clientInfo": {"emailOrPhone": "+79161234567"},
  "items": [
    {"type": "position", "name": "Бананы", "price": 73.15, "quantity": 1.0, "amount": 73.15,
     "infoDiscountAmount": 0.0, "department": 1, "measurementUnit": "piece",
     "paymentMethod": "fullPayment", "paymentObject": "commodity", "tax": {"type": "vat10"}},
    {"type": "text", "text": "--------------------------------"},
    {"type": "additionalAttribute", "value": "WIRE-1"}],
  "payments": [{"type": "electronically", "sum": 73.15}],
  "total": 73.15}]}"""
OPEN_SHIFT = '{"uuid": "%s", "request": [{"type": "openShift", "operator": {"name": "Иванов"}}]}'


#: one client for the module: creating one per call costs more than the calls themselves
HTTP = httpx.Client()


def post(srv: Any, body: str, **kw: Any) -> httpx.Response:
    return HTTP.post(base_url(srv) + "/requests", content=body.encode(),
                      headers={"Content-Type": "application/json"}, **kw)


def result(srv: Any, uuid: str, until_done: bool = True, pending: tuple[str, ...] = ("wait", "inProgress"),
           **kw: Any) -> httpx.Response:
    """GET the request's results, polled (up to 5 s) while any subtask's status is in *pending*."""
    deadline = time.monotonic() + 5
    while True:
        resp = HTTP.get(f"{base_url(srv)}/requests/{uuid}", **kw)
        if not until_done or resp.status_code != 200 or time.monotonic() > deadline:
            return resp
        if all(r["status"] not in pending for r in resp.json()["results"]):
            return resp
        time.sleep(0.02)


def open_shift(srv: Any) -> None:
    assert post(srv, OPEN_SHIFT % "a0000000-0000-4000-8000-000000000001").status_code == 201
    assert result(srv, "a0000000-0000-4000-8000-000000000001").json()["results"][0]["status"] == "ready"


def test_sell_lifecycle_duplicate_and_unknown(atol_server) -> None:
    """POST → poll → ready with fiscalParams; the same uuid again → 409 and no second document;
    an unknown uuid → 404."""
    srv = atol_server()
    open_shift(srv)
    uid = "0ba40014-5fa5-11ea-b5e9-037d4786a49d"
    taken = post(srv, SELL % uid)
    assert taken.status_code == 201 and taken.json()["uuid"] == uid and taken.json()["isBlocked"] is False
    res = result(srv, uid).json()["results"][0]
    fp = res["result"]["fiscalParams"]
    assert res["status"] == "ready" and res["error"]["code"] == 0
    assert fp["fiscalDocumentNumber"] == 2 and fp["total"] == 73.15 and '"total":73.15' in result(srv, uid).text
    again = post(srv, SELL % uid)
    assert again.status_code == 409 and "results" not in again.json()
    docs = [d for d in srv.model.documents() if d["kind"] == "receipt"]
    assert len(docs) == 1 and docs[0]["tag"] == "WIRE-1" and docs[0]["requisites"]["1008"] == "+79161234567"
    assert docs[0]["items"][0]["vat"] == 2 and docs[0]["requisites"]["1021"] == "Иванов"
    assert HTTP.get(f"{base_url(srv)}/requests/ffffffff-0000-4000-8000-000000000000").status_code == 404


def test_error_interrupts_the_rest(atol_server) -> None:
    """A failing subtask is error; those after it are interrupted (code 502)."""
    srv = atol_server()
    body = """{"uuid": "b0000000-0000-4000-8000-000000000001", "request": [
      {"type": "getShiftStatus"},
      {"type": "sell", "taxationType": "osn", "items": [{"type": "position", "name": "x", "price": 1.00,
       "quantity": 1, "amount": 1.00, "tax": {"type": "vat20"}}], "payments": [{"type": "cash", "sum": 1.00}]},
      {"type": "getFnStatus"}]}"""
    assert post(srv, body).status_code == 201
    first, sell, last = result(srv, "b0000000-0000-4000-8000-000000000001").json()["results"]
    assert first["status"] == "ready" and first["result"]["shiftStatus"]["state"] == "closed"
    assert sell["status"] == "error" and sell["error"]["code"] == 73    # shift closed
    assert last["status"] == "interrupted" and last["error"]["code"] == 502


def test_only_a_waiting_request_can_be_cancelled(atol_server) -> None:
    srv = atol_server(task_delay_s=3.0)
    assert post(srv, '{"uuid": "c1", "request": [{"type": "getShiftStatus"}]}').status_code == 201
    assert post(srv, '{"uuid": "c2", "request": [{"type": "getShiftStatus"}]}').status_code == 201
    while result(srv, "c1", until_done=False).json()["results"][0]["status"] == "wait":
        time.sleep(0.01)
    assert HTTP.delete(f"{base_url(srv)}/requests/c1").status_code == 409      # already running
    assert HTTP.delete(f"{base_url(srv)}/requests/c2").status_code == 200
    assert result(srv, "c2").json()["results"][0]["status"] == "canceled"
    assert result(srv, "c1").json()["results"][0]["status"] == "ready"


@pytest.mark.parametrize("fault,made", [("lose_reply_after_close", True), ("lose_reply_before_close", False)])
def test_link_lost_mid_receipt_blocks_the_queue_until_the_fd_counter_decides(atol_server, fault: str,
                                                                             made: bool) -> None:
    """blocked, the queue stops (a later request waits), then ready (FD grew) or error (it did not)."""
    srv = atol_server(faults={fault: "first:1"}, block_s=3.0)
    open_shift(srv)
    assert post(srv, SELL % "d1").status_code == 201
    assert result(srv, "d1").json()["results"][0]["status"] == "blocked"
    later = post(srv, '{"uuid": "d2", "request": [{"type": "getFnStatus"}]}')
    assert later.json()["isBlocked"] is True and later.json()["blockedUUID"] == "d1"
    queue = HTTP.get(base_url(srv) + "/getRequestsQueueStatus").json()
    assert queue["isBlocked"] is True
    assert result(srv, "d2", until_done=False).json()["results"][0]["status"] == "wait"
    deadline = time.monotonic() + 10
    while (blocked := result(srv, "d1").json()["results"][0])["status"] == "blocked" and time.monotonic() < deadline:
        time.sleep(0.05)
    receipts = [d for d in srv.model.documents() if d["kind"] == "receipt"]
    if made:
        assert blocked["status"] == "ready" and len(receipts) == 1
        assert blocked["result"]["fiscalParams"]["fiscalDocumentNumber"] == receipts[0]["fd"]
    else:
        assert blocked["status"] == "error" and not receipts and not srv.model.status().receipt_open
    assert result(srv, "d2").json()["results"][0]["result"]["fnStatus"]["fiscalDocumentNumber"] == \
        srv.model.status().last_fd_number


def test_fn_document_carries_the_tlv_with_1192(atol_server) -> None:
    srv = atol_server()
    open_shift(srv)
    post(srv, SELL % "e1")
    fd = result(srv, "e1").json()["results"][0]["result"]["fiscalParams"]["fiscalDocumentNumber"]
    post(srv, '{"uuid": "e2", "request": [{"type": "getFnDocument", "fiscalDocumentNumber": %d, "withRawData": false},'
              ' {"type": "getFnDocument", "fiscalDocumentNumber": 99}]}' % fd)
    ok, missing = result(srv, "e2").json()["results"]
    tlv = ok["result"]["documentTLV"]
    assert tlv["fiscalDocumentType"] == "receipt" and tlv["1040"] == fd and tlv["1192"] == "WIRE-1"
    assert tlv["1020"] == 73.15 and tlv["1054"] == 1 and tlv["qr"].startswith("t=")
    assert missing["status"] == "error" and missing["error"]["code"] == 123


def test_shift_over_24_hours_and_paper(atol_server) -> None:
    srv = atol_server()
    open_shift(srv)
    srv.model.advance_clock(24 * 3600 + 1)
    post(srv, SELL % "f1")
    assert result(srv, "f1").json()["results"][0]["error"]["code"] == 68
    post(srv, '{"uuid": "f2", "request": [{"type": "closeShift"}, {"type": "openShift"}]}')
    assert [r["status"] for r in result(srv, "f2").json()["results"]] == ["ready", "ready"]
    srv.model.take_paper()
    post(srv, SELL % "f3")
    assert result(srv, "f3").json()["results"][0]["error"]["code"] == 44


def test_basic_auth(atol_server) -> None:
    srv = atol_server(users={"kkt": "pw"})
    assert HTTP.get(base_url(srv) + "/serverInfo").status_code == 401
    good = "Basic " + base64.b64encode(b"kkt:pw").decode()
    assert HTTP.get(base_url(srv) + "/serverInfo", headers={"Authorization": good}).status_code == 200


def test_requests_and_results_survive_a_restart(atol_server) -> None:
    """The service keeps results (retention) across its own restart: the uuid still answers."""
    srv = atol_server()
    open_shift(srv)
    post(srv, SELL % "g1")
    assert result(srv, "g1").json()["results"][0]["status"] == "ready"
    srv.stop()
    again = atol_server()
    assert result(again, "g1").json()["results"][0]["status"] == "ready"
    assert post(again, SELL % "g1").status_code == 409


def test_malformed_requests_are_400(atol_server) -> None:
    srv = atol_server()
    assert post(srv, "not json").status_code == 400
    assert post(srv, '{"request": [{"type": "getFnStatus"}]}').status_code == 400
    assert HTTP.post(base_url(srv) + "/requests?deviceID=nope", content=b'{"uuid":"x","request":[{}]}').status_code == 404


def test_a_block_survives_a_service_restart(atol_server) -> None:
    """Blocked when the service stops: after its restart the FD counter still decides (ready here)."""
    srv = atol_server(faults={"lose_reply_after_close": "first:1"}, block_s=60)
    open_shift(srv)
    post(srv, SELL % "h1")
    assert result(srv, "h1").json()["results"][0]["status"] == "blocked"
    srv.stop()
    again = atol_server(block_s=60)
    # the restarted service resolves the block on its device thread: until then the GET still says blocked
    res = result(again, "h1", pending=("wait", "inProgress", "blocked")).json()["results"][0]
    assert res["status"] == "ready" and res["result"]["fiscalParams"]["fiscalDocumentNumber"] == 2
    assert post(again, SELL % "h2").status_code == 201 and result(again, "h2").json()["results"][0]["status"] == "ready"
    assert [d["tag"] for d in again.model.documents() if d["kind"] == "receipt"] == ["WIRE-1", "WIRE-1"]


def test_results_are_purged_after_the_retention(atol_server) -> None:
    """A finished request is forgotten after retention_s: its uuid answers 404 again."""
    srv = atol_server(retention_s=0.3)
    post(srv, '{"uuid": "i1", "request": [{"type": "getFnStatus"}]}')
    assert result(srv, "i1").status_code == 200
    time.sleep(0.5)
    assert HTTP.get(f"{base_url(srv)}/requests/i1").status_code == 404
