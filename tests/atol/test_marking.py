"""Marked goods on ATOL: the emulator driven by hand-written vendor-shaped JSON, and our driver's
requests compared with what ATOL's own task scripts send (marking.md §4; kkt_drivers/atol/marking.py).

The expected JSON below is written from the vendor sources (ATOLJS ``myscripts_marks.js`` /
``myscripts_items.js``, KKTServiceLib), not produced by our code: base64 literals were computed by hand
(``base64 -w0``) from the raw codes.
"""
from __future__ import annotations

import base64
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kkt_drivers.atol.driver import AtolDriver
from kkt_drivers.atol.emulation import AtolEmulation, TaskFailed
from kkt_drivers.atol.libfptr import LibFptrTransport
from kkt_drivers.atol.server import AtolEmulatorServer
from kkt_drivers.errors import DeviceStateError, KktError, RejectedError
from kkt_drivers.receipt import (
    IndustryRequisite, Item, MeasureUnit, Operation, Payment, PaymentSubject, PaymentType, Receipt, TaxSystem, Vat,
)
from kkt_drivers.registry import open_driver
from tests.atol.conftest import base_url, driver_url

#: a milk code with AI 93 (FN cannot check its crypto part offline) and a shoe code with AI 91 + 92
MILK = b"0104650194496163215'oQ5YJ\x1d93dGVz"
MILK_B64 = "MDEwNDY1MDE5NDQ5NjE2MzIxNSdvUTVZSh05M2RHVno="
SHOE = b"0104603988000001215Jr7Ypq2Z1X9A\x1d91EE10\x1d92" + b"AbC/+=" * 7 + b"zz"
ALL_TRUE = {"imcCheckFlag": True, "imcCheckResult": True, "imcStatusInfo": True,
            "imcEstimatedStatusCorrect": True, "ecrStandAloneFlag": False}


def test_hand_computed_base64_matches_the_raw_code() -> None:
    assert base64.b64decode(MILK_B64) == MILK


def marked_receipt(tag: str, operation: Operation = Operation.SALE, **item_kw: Any) -> Receipt:
    milk = Item("Молоко", Decimal("99.90"), Decimal("1"), Decimal("99.90"), Vat.VAT10,
                payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=MILK, **item_kw)
    bag = Item("Пакет", Decimal("5.00"), Decimal("2"), Decimal("10.00"), Vat.VAT22)
    return Receipt(operation=operation, tax_system=TaxSystem.OSN, items=(milk, bag),
                   payments=(Payment(PaymentType.ELECTRONIC, Decimal("109.90")),), tag=tag,
                   customer_contact="buyer@example.com", settlement_place="https://shop.example")


def post(srv: AtolEmulatorServer, uuid: str, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST hand-written tasks to the emulator and wait for their results."""
    with httpx.Client(base_url=base_url(srv)) as client:
        assert client.post("/requests", json={"uuid": uuid, "request": tasks}).status_code == 201
        for _ in range(200):
            results = client.get(f"/requests/{uuid}").json()["results"]
            if all(r["status"] not in ("wait", "inProgress") for r in results):
                return results
            time.sleep(0.02)
    raise AssertionError("emulator did not finish")


def sent_tasks(srv: AtolEmulatorServer) -> list[dict[str, Any]]:
    """Every task the service received, in order."""
    reqs = sorted(srv.service.requests.values(), key=lambda r: r["number"])
    return [task for r in reqs for task in r["tasks"]]


# -- the emulator against hand-written JSON ------------------------------------------------------
def test_hand_written_check_accept_and_sell_make_a_marked_line(atol_server: Any) -> None:
    """Given hand-written begin → status → accept → sell tasks (ATOLJS shapes), the journal holds the
    line with the FN's 1163/2106 and the 1260 from industryInfo with the date turned into ДД.ММ.ГГГГ."""
    srv = atol_server()
    assert post(srv, "shift", [{"type": "openShift"}])[0]["status"] == "ready"
    begin, status = post(srv, "check", [
        {"type": "beginMarkingCodeValidation",
         "params": {"imcType": "auto", "imc": MILK_B64, "itemEstimatedStatus": "itemPieceSold",
                    "imcModeProcessing": 0}},
        {"type": "getMarkingCodeValidationStatus"}])
    # AI 93: the FN cannot check the crypto part itself (fmCheck false, reason typeIncorrect)
    assert begin["result"] == {"offlineValidation": {"fmCheck": False, "fmCheckResult": False,
                                                     "fmCheckErrorReason": "typeIncorrect"}}
    assert status["result"]["ready"] is True and status["result"]["driverError"]["code"] == 0
    assert status["result"]["onlineValidation"]["itemInfoCheckResult"] == ALL_TRUE
    (accept,) = post(srv, "accept", [{"type": "acceptMarkingCode"}])
    assert accept["result"] == {"itemInfoCheckResult": ALL_TRUE}
    (sell,) = post(srv, "sell", [{
        "type": "sell", "taxationType": "osn", "electronically": True, "internet": True,
        "paymentsPlace": "https://shop.example", "clientInfo": {"emailOrPhone": "buyer@example.com"},
        "items": [{"type": "position", "name": "Молоко", "price": 99.90, "quantity": 1, "amount": 99.90,
                   "tax": {"type": "vat10"}, "paymentMethod": "fullPayment", "paymentObject": "commodityWithMarking",
                   "measurementUnit": "piece",
                   "imcParams": {"imc": MILK_B64, "imcType": "auto", "itemEstimatedStatus": "itemPieceSold",
                                 "imcModeProcessing": 0, "itemInfoCheckResult": ALL_TRUE},
                   "industryInfo": [{"fois": "030", "date": "2023.11.21", "number": "1944",
                                     "industryAttribute": "UUID=1f0e&Time=1700000000000"}]},
                  {"type": "additionalAttribute", "value": "hand-1"}],
        "payments": [{"type": "electronically", "sum": 99.90}], "total": 99.90}])
    assert sell["status"] == "ready", sell
    doc = srv.model.document(sell["result"]["fiscalParams"]["fiscalDocumentNumber"])
    line = doc["items"][0]
    assert line["subject"] == 33 and line["marking"]["2106"] == 0x0F and line["marking"]["2003"] == 1
    assert line["marking"]["1163"] == {"1305": "0104650194496163215'oQ5YJ"}
    assert line["1260"] == [["030", "21.11.2023", "1944", "UUID=1f0e&Time=1700000000000"]]
    assert doc["2107"] == 0


def test_a_position_whose_code_was_not_accepted_is_refused_with_420(atol_server: Any) -> None:
    srv = atol_server()
    post(srv, "shift", [{"type": "openShift"}])
    (sell,) = post(srv, "sell", [{
        "type": "sell", "taxationType": "osn",
        "items": [{"type": "position", "name": "Молоко", "price": 99.90, "quantity": 1, "amount": 99.90,
                   "tax": {"type": "vat10"}, "paymentObject": "commodityWithMarking",
                   "imcParams": {"imc": MILK_B64, "imcType": "auto", "itemEstimatedStatus": "itemPieceSold",
                                 "imcModeProcessing": 0}}],
        "payments": [{"type": "electronically", "sum": 99.90}], "total": 99.90}])
    assert sell["status"] == "error" and sell["error"]["code"] == 420
    assert not [d for d in srv.model.documents() if d["kind"] == "receipt"]


def test_a_begin_while_a_check_runs_is_401_and_cancel_frees_it(atol_server: Any) -> None:
    srv = atol_server()
    post(srv, "shift", [{"type": "openShift"}])
    begin = {"type": "beginMarkingCodeValidation",
             "params": {"imcType": "auto", "imc": MILK_B64, "itemEstimatedStatus": "itemPieceSold",
                        "imcModeProcessing": 0}}
    assert post(srv, "b1", [begin])[0]["status"] == "ready"
    second = post(srv, "b2", [begin])[0]
    assert second["status"] == "error" and second["error"]["code"] == 401
    assert [r["status"] for r in post(srv, "b3", [{"type": "cancelMarkingCodeValidation"}, begin])] == ["ready"] * 2


def test_a_measured_check_without_unit_is_refused_like_atol_148(atol_server: Any) -> None:
    srv = atol_server()
    post(srv, "shift", [{"type": "openShift"}])
    (begin,) = post(srv, "m", [{"type": "beginMarkingCodeValidation",
                                "params": {"imcType": "auto", "imc": MILK_B64,
                                           "itemEstimatedStatus": "itemDryForSale", "imcModeProcessing": 0}}])
    assert begin["status"] == "error" and begin["error"]["code"] == 148


def test_check_imc_work_state_reports_blocked_notifications(atol_server: Any) -> None:
    srv = atol_server()
    srv.model.set_unsent_notifications(10_000)
    (state,) = post(srv, "w", [{"type": "checkImcWorkState"}])
    fm = state["result"]["fm"]
    assert fm["status"] == "blocked" and fm["noticeFreeMemory"] == "outOfMemory" and fm["noticeUnsentCount"] == 10_000


# -- our driver's requests against vendor-shaped expectations --------------------------------------
def test_driver_sends_atols_task_sequence_and_shapes(atol_server: Any) -> None:
    """Given a sale with one marked line, the driver sends exactly: checkImcWorkState + clear, begin +
    status, acceptMarkingCode, then the sell with imcParams as ATOLJS builds them."""
    srv = atol_server()
    drv = open_driver(driver_url(srv))
    drv.connect()
    drv.open_shift()
    r = marked_receipt("mk-1")
    doc = drv.fiscalize(r)
    tasks = [t for t in sent_tasks(srv) if t["type"] != "openShift"]
    assert [t["type"] for t in tasks] == [
        "checkImcWorkState", "clearMarkingCodeValidationResult", "beginMarkingCodeValidation",
        "getMarkingCodeValidationStatus", "acceptMarkingCode", "sell"]
    assert tasks[2] == {"type": "beginMarkingCodeValidation",
                        "params": {"imcType": "auto", "imc": MILK_B64, "itemEstimatedStatus": "itemPieceSold",
                                   "imcModeProcessing": 0}}
    milk, bag = [i for i in tasks[-1]["items"] if i["type"] == "position"]
    assert milk["paymentObject"] == "commodityWithMarking" and "imcParams" not in bag
    assert milk["imcParams"] == {"imc": MILK_B64, "imcType": "auto", "itemEstimatedStatus": "itemPieceSold",
                                 "imcModeProcessing": 0, "itemInfoCheckResult": ALL_TRUE}
    assert [(m.line, m.code, m.result) for m in doc.marking_results] == [(0, MILK, 0x0F)]


def test_refund_and_measured_and_industry_fields(atol_server: Any) -> None:
    """A refund sends itemPieceReturn; a measured sale sends itemDryForSale with itemQuantity/itemUnits
    (ATOLJS copies them into the check); 1260 goes as industryInfo with the date as YYYY.MM.DD."""
    srv = atol_server()
    drv = open_driver(driver_url(srv))
    drv.connect()
    drv.open_shift()
    drv.fiscalize(marked_receipt("mk-2"))
    drv.fiscalize(marked_receipt("mk-2r", Operation.SALE_REFUND))
    permit = IndustryRequisite("030", "21.11.2023", "1944", "UUID=abc&Time=1700000000000")
    cheese = Item("Сыр", Decimal("1000.00"), Decimal("0.250"), Decimal("250.00"), Vat.VAT10,
                  payment_subject=PaymentSubject.MARKED_COMMODITY, measure_unit=MeasureUnit.KILOGRAM,
                  marking_code=SHOE, industry=(permit,))
    r = Receipt(operation=Operation.SALE, tax_system=TaxSystem.OSN, items=(cheese,),
                payments=(Payment(PaymentType.ELECTRONIC, Decimal("250.00")),), tag="mk-3",
                customer_contact="buyer@example.com", settlement_place="https://shop.example")
    doc = drv.fiscalize(r)
    begins = [t["params"] for t in sent_tasks(srv) if t["type"] == "beginMarkingCodeValidation"]
    assert begins[1]["itemEstimatedStatus"] == "itemPieceReturn" and "itemQuantity" not in begins[1]
    assert begins[2]["itemEstimatedStatus"] == "itemDryForSale"
    assert str(begins[2]["itemQuantity"]) == "0.250" and begins[2]["itemUnits"] == "kilogram"
    sell = [t for t in sent_tasks(srv) if t["type"] == "sell"][-1]
    assert sell["items"][0]["industryInfo"] == [{"fois": "030", "date": "2023.11.21", "number": "1944",
                                                 "industryAttribute": "UUID=abc&Time=1700000000000"}]
    line = srv.model.document(doc.fd_number)["items"][0]
    assert line["marking"]["2003"] == 2 and line["1260"][0][1] == "21.11.2023"


def test_late_answer_times_out_cancels_and_clears(atol_server: Any) -> None:
    """ОИСМ silent: the driver polls until marking_timeout, then cancels and clears (ATOLJS), raises
    marking_check_timeout, and the FN is left with nothing pending and an empty table."""
    srv = atol_server()
    drv = open_driver(driver_url(srv, "&marking_timeout=0.5&marking_poll_s=0.05"))
    drv.connect()
    drv.open_shift()
    srv.model.set_marking_verdict(MILK, "late")
    started = time.monotonic()
    with pytest.raises(DeviceStateError) as e:
        drv.fiscalize(marked_receipt("mk-4"))
    assert e.value.condition == "marking_check_timeout" and time.monotonic() - started >= 0.5
    types = [t["type"] for t in sent_tasks(srv)]
    assert types.count("getMarkingCodeValidationStatus") >= 3
    assert types[-2:] == ["cancelMarkingCodeValidation", "clearMarkingCodeValidationResult"]
    assert "sell" not in types and srv.model.marking_counters() == {
        "checked": 0, "pending": False, "unsent": 0, "blocked": False, "requests": 1}


def test_late_answer_with_sell_option_sells_with_the_fns_own_result(atol_server: Any) -> None:
    srv = atol_server()
    drv = open_driver(driver_url(srv, "&marking_timeout=0.3&marking_poll_s=0.05&marking_unanswered=sell"))
    drv.connect()
    drv.open_shift()
    srv.model.set_marking_verdict(MILK, "late")
    doc = drv.fiscalize(marked_receipt("mk-5"))
    stored = srv.model.document(doc.fd_number)
    # AI 93: no offline crypto check, no ОИСМ answer → 2106 = 0 and 2107 = 1 («КМ?»)
    assert stored["items"][0]["marking"]["2106"] == 0 and stored["2107"] == 1
    sell = [t for t in sent_tasks(srv) if t["type"] == "sell"][-1]
    assert sell["items"][0]["imcParams"]["itemInfoCheckResult"]["imcCheckFlag"] is False


def test_declined_code_sends_decline_and_refuses_the_payment(atol_server: Any) -> None:
    srv = atol_server()
    drv = open_driver(driver_url(srv))
    drv.connect()
    drv.open_shift()
    srv.model.set_marking_verdict(MILK, "invalid")
    with pytest.raises(RejectedError) as e:
        drv.fiscalize(marked_receipt("mk-6"))
    assert e.value.field == "items[0].marking_code" and "INCORRECT" in str(e.value)
    types = [t["type"] for t in sent_tasks(srv)]
    assert "declineMarkingCode" in types and "acceptMarkingCode" not in types and "sell" not in types


def test_marking_blocked_is_a_device_state_before_any_check(atol_server: Any) -> None:
    srv = atol_server()
    drv = open_driver(driver_url(srv))
    drv.connect()
    drv.open_shift()
    srv.model.set_unsent_notifications(10_000)
    with pytest.raises(DeviceStateError) as e:
        drv.fiscalize(marked_receipt("mk-7"))
    assert e.value.condition == "marking_blocked"
    assert "beginMarkingCodeValidation" not in [t["type"] for t in sent_tasks(srv)]


def test_a_receipt_the_service_already_holds_is_not_checked_again(atol_server: Any) -> None:
    """After a crash between the POST and the ledger write, the retry must not run the FN check again
    (the codes would be checked for a receipt that already exists): it reads the request's result."""
    srv = atol_server()
    drv = open_driver(driver_url(srv))
    drv.connect()
    drv.open_shift()
    r = marked_receipt("mk-8")
    first = drv.fiscalize(r)
    again = drv.fiscalize(r)
    assert again.fd_number == first.fd_number and again.marking_results == ()
    assert [t["type"] for t in sent_tasks(srv)].count("beginMarkingCodeValidation") == 1


# -- the libfptr10 path: processJson one task at a time ------------------------------------------
class EmulatedLibFptr(LibFptrTransport):
    """processJson answered by the emulation (the real libfptr10 is not installed here)."""

    def __init__(self, emulation: AtolEmulation) -> None:
        super().__init__("/nonexistent/libfptr10.so", {})
        self.emulation = emulation
        self.log: list[dict[str, Any]] = []

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def process(self, task: dict[str, Any], *, fiscal: bool) -> dict[str, Any]:
        from kkt_drivers.atol import codes as c
        from kkt_drivers.atol import tasks as t

        self.log.append(task)
        try:
            return self.emulation.execute(t.loads(t.dumps(task)))
        except TaskFailed as exc:
            raise c.error_for(exc.code, exc.description, task=task["type"]) from exc


def test_libfptr_path_runs_the_same_flow(atol_server: Any) -> None:
    srv = atol_server()
    tr = EmulatedLibFptr(AtolEmulation(srv.model))
    drv = AtolDriver(tr, marking_timeout_s=0.3, marking_poll_s=0.02)
    drv.open_shift()
    doc = drv.fiscalize(marked_receipt("lib-1"))
    assert [m.result for m in doc.marking_results] == [0x0F]
    assert [t["type"] for t in tr.log][1:6] == ["checkImcWorkState", "clearMarkingCodeValidationResult",
                                                "beginMarkingCodeValidation", "getMarkingCodeValidationStatus",
                                                "acceptMarkingCode"]
    srv.model.set_marking_verdict(MILK, "invalid")
    with pytest.raises(KktError):
        drv.fiscalize(marked_receipt("lib-2"))
    assert not srv.model.marking_counters()["pending"]


def test_status_reports_the_marking_work_state(atol_server: Any) -> None:
    srv = atol_server()
    drv = open_driver(driver_url(srv))
    drv.connect()
    assert not drv.status().marking_blocked
    srv.model.set_unsent_notifications(10_000)
    st = drv.status()
    assert st.marking_blocked and st.marking_unsent_notifications == 10_000


def test_permit_from_the_state_system_goes_as_industry_info(atol_server: Any, monkeypatch: Any) -> None:
    """permit_url on the ATOL URL: the state system's answer becomes 1260 on the marked line."""
    from tests.unit.test_marking_permit import CODE, KEY, FakeTrueApi
    import threading

    api = FakeTrueApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("KKT_TEST_CZ_KEY", KEY)
        srv = atol_server()
        host, port = api.server_address
        drv = open_driver(driver_url(srv, f"&permit_url=http://{host}:{port}&permit_key_env=KKT_TEST_CZ_KEY"))
        drv.connect()
        drv.open_shift()
        item = Item("Вода", Decimal("50.00"), Decimal("1"), Decimal("50.00"), Vat.VAT22,
                    payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=CODE)
        r = Receipt(operation=Operation.SALE, tax_system=TaxSystem.OSN, items=(item,),
                    payments=(Payment(PaymentType.ELECTRONIC, Decimal("50.00")),), tag="pm-1",
                    customer_contact="buyer@example.com", settlement_place="https://shop.example")
        doc = drv.fiscalize(r)
    finally:
        api.shutdown()
        api.server_close()
    sell = [t for t in sent_tasks(srv) if t["type"] == "sell"][-1]
    assert sell["items"][0]["industryInfo"] == [{"fois": "030", "date": "2023.11.21", "number": "1944",
                                                 "industryAttribute": "UUID=7f0e2a8c-0000-4000-8000-000000000001"
                                                                      "&Time=1764500000000"}]
    assert srv.model.document(doc.fd_number)["items"][0]["1260"][0][1] == "21.11.2023"


def test_an_accept_rides_with_the_next_codes_check(atol_server: Any) -> None:
    """Three codes: each accept goes first in the next code's request (before its begin, the FN's order),
    the last one alone before the sell — 6 requests instead of 8; every code is accepted with 0x0F."""
    srv = atol_server()
    drv = open_driver(driver_url(srv))
    drv.connect()
    drv.open_shift()
    codes = [b"0104650194496163215'oQ5Y" + bytes([65 + k]) + b"\x1d93dGVz" for k in range(3)]
    items = tuple(Item(f"Молоко {k}", Decimal("10.00"), Decimal("1"), Decimal("10.00"), Vat.VAT10,
                       payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=c) for k, c in enumerate(codes))
    r = Receipt(operation=Operation.SALE, tax_system=TaxSystem.OSN, items=items,
                payments=(Payment(PaymentType.ELECTRONIC, Decimal("30.00")),), tag="mk-9",
                customer_contact="buyer@example.com", settlement_place="https://shop.example")
    doc = drv.fiscalize(r)
    reqs = [[t["type"] for t in q["tasks"]] for q in sorted(srv.service.requests.values(), key=lambda q: q["number"])]
    assert reqs[1:] == [
        ["checkImcWorkState", "clearMarkingCodeValidationResult"],
        ["beginMarkingCodeValidation", "getMarkingCodeValidationStatus"],
        ["acceptMarkingCode", "beginMarkingCodeValidation", "getMarkingCodeValidationStatus"],
        ["acceptMarkingCode", "beginMarkingCodeValidation", "getMarkingCodeValidationStatus"],
        ["acceptMarkingCode"], ["sell"]]
    assert [m.result for m in doc.marking_results] == [0x0F] * 3
    assert [i["marking"]["2106"] for i in srv.model.document(doc.fd_number)["items"]] == [0x0F] * 3
