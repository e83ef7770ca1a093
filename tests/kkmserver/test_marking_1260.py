"""KKMServer and 1260 (разрешительный режим): what KKMServer's contract can carry — ``GoodCodeData.IndustryProps``
= 1265, with 1262/1263/1264 from KKMServer's own settings (decompiled data contract: ``Props1262 = "030"``,
``Props1263 = "21.11.2023"``, ``Props1264 = "1944"``, no DataMember; ``AddIndustryProps`` appended)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from kkt_drivers.errors import RejectedError
from kkt_drivers.kkmserver import commands as c
from kkt_drivers.receipt import (
    IndustryRequisite, Item, Operation, Payment, PaymentSubject, PaymentType, Receipt, TaxSystem, Vat,
)
from tests.kkmserver.conftest import execute
from tests.kkmserver.test_driver import FAST, driver_for
from tests.unit.test_marking_permit import CODE, KEY, api  # noqa: F401 - the fake state system fixture

MILK = "0104650194496163215'oQ5YJ\x1d93dGVz"
PERMIT = IndustryRequisite("030", "21.11.2023", "1944", "UUID=7f0e2a8c&Time=1764500000000")


def _receipt(*industry: IndustryRequisite, marked: bool = True) -> Receipt:
    item = Item("Молоко", Decimal("99.90"), Decimal(1), Decimal("99.90"), Vat.VAT10,
                payment_subject=PaymentSubject.MARKED_COMMODITY if marked else PaymentSubject.COMMODITY,
                marking_code=MILK.encode() if marked else None, industry=industry)
    return Receipt(Operation.SALE, TaxSystem.OSN, (item,), (Payment(PaymentType.ELECTRONIC, Decimal("99.90")),),
                   tag="k1260")


def test_permit_goes_as_industry_props_in_good_code_data() -> None:
    reg = c.register_check(_receipt(PERMIT), num_device=1, id_command="x", timeout_s=30)["CheckStrings"][0]["Register"]
    assert reg["GoodCodeData"] == {"BarCode": MILK, "ContainsSerialNumber": True, "AcceptOnBad": False,
                                   "IndustryProps": "UUID=7f0e2a8c&Time=1764500000000"}


@pytest.mark.parametrize("receipt, words", [
    (_receipt(IndustryRequisite("030", "26.03.2022", "477", "x")), "1262/1263/1264 come from its settings"),
    (_receipt(PERMIT, PERMIT), "one 1260 per line"),
    (_receipt(PERMIT, marked=False), "only in GoodCodeData"),
])
def test_what_kkmserver_cannot_carry_is_refused_by_field(receipt: Receipt, words: str) -> None:
    with pytest.raises(RejectedError) as e:
        c.register_check(receipt, num_device=1, id_command="x", timeout_s=30)
    assert e.value.field == "items[0].industry" and words in str(e.value)


def test_hand_written_industry_props_become_1260_in_the_emulated_document(make_server) -> None:
    srv = make_server()
    execute(srv, {"Command": "OpenShift", "NumDevice": 1, "IdCommand": "s1", "Timeout": 10})
    answer = execute(srv, {
        "Command": "RegisterCheck", "NumDevice": 1, "IdCommand": "r1", "Timeout": 10, "IsFiscalCheck": True,
        "TypeCheck": 0, "TaxVariant": "0", "ElectronicPayment": 99.9, "CheckStrings": [{"Register": {
            "Name": "Молоко", "Quantity": 1, "Price": 99.9, "Amount": 99.9, "Tax": 10,
            "SignMethodCalculation": 4, "SignCalculationObject": 33, "MeasureOfQuantity": 0,
            "GoodCodeData": {"BarCode": MILK, "ContainsSerialNumber": True, "AcceptOnBad": False,
                             "IndustryProps": "UUID=abc&Time=1764500000000", "AddIndustryProps": "&extra=1"}}}]})
    assert answer["Status"] == 0, answer
    doc = [d for d in srv.model.documents() if d["kind"] == "receipt"][0]
    assert doc["items"][0]["1260"] == [["030", "21.11.2023", "1944", "UUID=abc&Time=1764500000000&extra=1"]]


def test_driver_takes_the_permit_from_the_state_system_and_sends_it(make_server, api, monkeypatch) -> None:  # noqa: F811
    """Given permit_url on the KKMServer URL (a local fake of codes/check), the marked line's document
    carries 1260 = 030 / 21.11.2023 / 1944 / UUID=<reqId>&Time=<reqTimestamp>."""
    monkeypatch.setenv("KKT_TEST_CZ_KEY", KEY)
    srv = make_server()
    host, port = api.server_address
    drv = driver_for(srv, f"{FAST}&permit_url=http://{host}:{port}&permit_key_env=KKT_TEST_CZ_KEY")
    drv.open_shift()
    item = Item("Вода", Decimal("50"), Decimal(1), Decimal("50"), Vat.VAT22,
                payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=CODE)
    r = Receipt(Operation.SALE, TaxSystem.OSN, (item,), (Payment(PaymentType.ELECTRONIC, Decimal("50")),), tag="kp1")
    doc = drv.fiscalize(r)
    stored = srv.model.document(doc.fd_number)
    assert stored["items"][0]["1260"] == [["030", "21.11.2023", "1944",
                                           "UUID=7f0e2a8c-0000-4000-8000-000000000001&Time=1764500000000"]]
    assert [m.result for m in doc.marking_results] == [0x0F]
    [req] = api.requests
    assert req["body"]["codes"] == [CODE.decode()]
