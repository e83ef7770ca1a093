"""The emulator driven by hand-written JSON shaped like KKMServer's documented examples.

No code of our driver is used here: requests are literal dicts sent with http.client, answers
parsed with the standard json module. Field names and values follow the command descriptions
reproduced by public clients (salesduck/kkmserver-types ``RegisterCheck.ts``, ``Register.ts``,
``GetDataKKT.ts``, ``request.ts``/``response.ts``/``status.ts``; Muraveiko/kkmserver ``kkmserver.js``).
"""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

from tests.kkmserver.conftest import execute, post_raw

#: a sale the way KKMServer's own example builds one: a text line, two goods, card payment
VENDOR_STYLE_SALE = {
    "Command": "RegisterCheck",
    "NumDevice": 0,
    "InnKkm": "",
    "KktNumber": "",
    "Timeout": 30,
    "IdCommand": "9f3c6b1e-2b0d-4c59-9d8e-000000000001",
    "IsFiscalCheck": True,
    "TypeCheck": 0,
    "CancelOpenedCheck": True,
    "NotPrint": False,
    "NumberCopies": 0,
    "CashierName": "Иванов И.И.",
    "CashierVATIN": "430601071197",
    "ClientAddress": "sochi@papa.com",
    "TaxVariant": "",
    "AdditionalAttribute": "S-1001",
    "CheckStrings": [
        {"PrintText": {"Text": "Спасибо за покупку", "Font": 4, "Intensity": 0}},
        {"Register": {"Name": "Сапоги женские DF-3099-1", "Quantity": 1, "Price": 123.45, "Amount": 123.45,
                      "Department": 0, "Tax": 20, "SignMethodCalculation": 4, "SignCalculationObject": 1,
                      "MeasureOfQuantity": 0}},
        {"Register": {"Name": "Шнурки", "Quantity": 2.5, "Price": 10.10, "Amount": 25.25,
                      "Department": 0, "Tax": -1, "SignMethodCalculation": 4, "SignCalculationObject": 1}},
    ],
    "Cash": 0,
    "ElectronicPayment": 148.70,
    "AdvancePayment": 0,
    "Credit": 0,
    "CashProvision": 0,
}


def open_shift(server) -> dict:
    return execute(server, {"Command": "OpenShift", "NumDevice": 0, "CashierName": "Иванов И.И.",
                            "CashierVATIN": "430601071197", "IdCommand": "open-1"})


def test_get_data_kkt_reports_serials_last_document_and_session_state(make_server) -> None:
    srv = make_server()
    answer = execute(srv, {"Command": "GetDataKKT", "NumDevice": 0, "InnKkm": "", "KktNumber": ""})
    assert answer["Status"] == 0 and answer["Error"] == "" and answer["Command"] == "GetDataKKT"
    assert answer["CheckNumber"] == 0 and answer["Info"]["SessionState"] == 1
    assert answer["Info"]["KktNumber"] and answer["Info"]["FnNumber"]
    opened = open_shift(srv)
    assert opened["Status"] == 0 and opened["CheckNumber"] == 1 and opened["SessionNumber"] == 1
    assert "fn=" in opened["QRCode"] and "i=1" in opened["QRCode"]
    assert execute(srv, {"Command": "GetDataKKT", "NumDevice": 1})["Info"]["SessionState"] == 2


def test_vendor_style_sale_makes_one_document_with_exact_money(make_server) -> None:
    srv = make_server()
    open_shift(srv)
    answer = execute(srv, VENDOR_STYLE_SALE)
    assert answer["Status"] == 0, answer
    assert answer["IdCommand"] == VENDOR_STYLE_SALE["IdCommand"] and answer["NumDevice"] == 1
    assert answer["CheckNumber"] == 2 and answer["SessionNumber"] == 1 and answer["SessionCheckNumber"] == 1
    qr = dict(p.split("=", 1) for p in answer["QRCode"].split("&"))
    assert qr["s"] == "148.70" and qr["i"] == "2" and qr["n"] == "1"
    [doc] = [d for d in srv.model.documents() if d["kind"] == "receipt"]
    assert doc["total"] == "148.70" and doc["tag"] == "S-1001"
    assert doc["requisites"]["1008"] == "sochi@papa.com" and doc["requisites"]["1021"] == "Иванов И.И."
    assert [i["quantity"] for i in doc["items"]] == ["1.000", "2.500"]
    assert doc["payments"] == [{"type": "electronic", "amount": "148.70"}]
    back = execute(srv, {"Command": "GetDataCheck", "NumDevice": 1, "FiscalNumber": 2, "NumberCopies": 0})
    assert back["Status"] == 0 and back["QRCode"] == answer["QRCode"]
    check = back["RegisterCheck"]
    assert (check["FiscalNumber"], check["AllSumm"], check["ElectronicPayment"]) == ("2", Decimal("148.70"),
                                                                                    Decimal("148.70"))
    assert [r["Name"] for r in check["Register"]] == ["Сапоги женские DF-3099-1", "Шнурки"]


def test_repeated_id_command_is_already_done_and_get_rezult_has_the_result(make_server) -> None:
    """KKMServer's queue: a known IdCommand (not failed) → Status 5, no second execution."""
    srv = make_server()
    open_shift(srv)
    first = execute(srv, VENDOR_STYLE_SALE)
    again = execute(srv, VENDOR_STYLE_SALE)
    assert again["Status"] == 5 and again["Error"] and "QRCode" not in again
    assert len([d for d in srv.model.documents() if d["kind"] == "receipt"]) == 1
    rez = execute(srv, {"Command": "GetRezult", "IdCommand": VENDOR_STYLE_SALE["IdCommand"]})
    assert rez["Status"] == 0 and rez["Rezult"]["Status"] == 0 and rez["Rezult"]["QRCode"] == first["QRCode"]


def test_a_command_that_failed_runs_again_under_the_same_id_command(make_server) -> None:
    srv = make_server()
    failed = execute(srv, dict(VENDOR_STYLE_SALE, IdCommand="retry-1"))    # shift closed
    assert failed["Status"] == 2
    open_shift(srv)
    again = execute(srv, dict(VENDOR_STYLE_SALE, IdCommand="retry-1"))
    assert again["Status"] == 0 and again["CheckNumber"] == 2


def test_only_the_last_commands_are_kept(make_server) -> None:
    srv = make_server(results_kept=3)
    open_shift(srv)
    execute(srv, dict(VENDOR_STYLE_SALE, IdCommand="old-1"))
    for n in range(3):
        execute(srv, {"Command": "GetDataKKT", "NumDevice": 1, "IdCommand": f"read-{n}"})
    gone = execute(srv, {"Command": "GetRezult", "IdCommand": "old-1"})
    assert gone["Status"] == 3 and gone["Rezult"]["Status"] == 3
    assert execute(srv, {"Command": "GetRezult"})["Status"] == 2        # no IdCommand at all


def test_async_timeout_1_answers_at_once_then_get_rezult_gives_the_result(make_server) -> None:
    srv = make_server(latency_ms=300)
    open_shift(srv)
    cmd = dict(VENDOR_STYLE_SALE, Timeout=1, IdCommand="async-1")
    first = execute(srv, cmd)
    assert first["Status"] in (1, 4) and first["IdCommand"] == "async-1"
    for _ in range(100):
        rez = execute(srv, {"Command": "GetRezult", "IdCommand": "async-1"})
        if rez["Rezult"]["Status"] not in (1, 4):
            break
        time.sleep(0.05)
    assert rez["Rezult"]["Status"] == 0 and rez["Rezult"]["CheckNumber"] == 2


def test_error_answers_for_device_states_and_bad_data(make_server) -> None:
    srv = make_server()
    closed = execute(srv, dict(VENDOR_STYLE_SALE, IdCommand="closed-1"))
    assert closed["Status"] == 2 and "Смена" in closed["Error"]
    open_shift(srv)
    bad = dict(VENDOR_STYLE_SALE, IdCommand="bad-1", ElectronicPayment=1)
    answer = execute(srv, bad)
    assert answer["Status"] == 2 and answer["Error"]
    srv.model.take_paper()
    paper = execute(srv, dict(VENDOR_STYLE_SALE, IdCommand="paper-1"))
    assert paper["Status"] == 2 and "бумаг" in paper["Error"].lower()
    assert not [d for d in srv.model.documents() if d["kind"] == "receipt"]


def test_bad_input_gets_an_error_answer_and_the_server_survives(make_server) -> None:
    srv = make_server()
    status, body = post_raw(srv, b"{not json")
    assert status == 200 and json.loads(body)["Status"] == 2
    status, body = post_raw(srv, b"[1, 2]")
    assert status == 200 and json.loads(body)["Status"] == 2
    assert execute(srv, {"Command": "LaunchRockets"})["Status"] == 3
    assert execute(srv, {"Command": "GetDataKKT", "NumDevice": 7})["Status"] == 3
    weird = execute(srv, {"Command": "RegisterCheck", "NumDevice": 1, "IsFiscalCheck": True,
                          "CheckStrings": [{"Register": {"Name": "x", "Quantity": "много"}}]})
    assert weird["Status"] == 2
    assert post_raw(srv, b"{}", path="/nowhere")[0] == 404
    assert execute(srv, {"Command": "GetDataKKT"})["Status"] == 0   # still serving


def test_basic_auth_is_required_when_a_password_is_set(make_server) -> None:
    srv = make_server(user="Admin", password="s3cret")
    body = json.dumps({"Command": "GetDataKKT"}).encode()
    assert post_raw(srv, body)[0] == 401
    assert post_raw(srv, body, auth=("Admin", "wrong"))[0] == 401
    assert execute(srv, {"Command": "GetDataKKT"}, auth=("Admin", "s3cret"))["Status"] == 0


def test_concurrent_clients_on_one_register_make_distinct_documents(make_server) -> None:
    srv = make_server()
    open_shift(srv)
    answers: list[dict] = []

    def one(n: int) -> None:
        answers.append(execute(srv, dict(VENDOR_STYLE_SALE, IdCommand=f"par-{n}", AdditionalAttribute=f"P{n}")))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a["CheckNumber"] for a in answers) == [2, 3, 4, 5]
    assert sum(Decimal(d["total"]) for d in srv.model.documents() if d["kind"] == "receipt") == Decimal("594.80")


def test_num_device_0_takes_the_first_register_not_blocked(make_server) -> None:
    """A pool of two: device 1 out of paper → NumDevice 0 lands on device 2; explicit numbers stick."""
    srv = make_server(devices=2)
    for n in (1, 2):
        assert execute(srv, {"Command": "OpenShift", "NumDevice": n, "IdCommand": f"open-{n}"})["Status"] == 0
    srv.devices[1].model.take_paper()
    answer = execute(srv, dict(VENDOR_STYLE_SALE, IdCommand="pool-1"))
    assert answer["Status"] == 0 and answer["NumDevice"] == 2
    assert [d["tag"] for d in srv.devices[2].model.documents() if d["kind"] == "receipt"] == ["S-1001"]
    kkt1 = execute(srv, {"Command": "GetDataKKT", "NumDevice": 1})
    kkt2 = execute(srv, {"Command": "GetDataKKT", "NumDevice": 2})
    assert kkt1["Info"]["PaperOver"] is True and kkt1["Info"]["KktNumber"] != kkt2["Info"]["KktNumber"]
