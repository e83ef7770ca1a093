"""KKMServer marking: ValidationMarkingCode and GoodCodeData, written by hand against the emulator."""
from __future__ import annotations

from decimal import Decimal

from kkt_drivers.kkmserver import commands as c
from kkt_drivers.receipt import Item, Operation, Payment, PaymentSubject, PaymentType, Receipt, TaxSystem, Vat
from tests.kkmserver.conftest import execute

MILK = "0104650194496163215'oQ5YJ\x1d93dGVz"


def _marked() -> Receipt:
    items = (Item("Молоко", Decimal("99.90"), Decimal(1), Decimal("99.90"), Vat.VAT10,
                  payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=MILK.encode()),
             Item("Пакет", Decimal("5"), Decimal(1), Decimal("5"), Vat.VAT22))
    return Receipt(Operation.SALE, TaxSystem.OSN, items, (Payment(PaymentType.ELECTRONIC, Decimal("104.90")),), tag="k1")


def test_register_check_carries_good_code_data_with_the_raw_code() -> None:
    cmd = c.register_check(_marked(), num_device=1, id_command="x", timeout_s=30)
    reg = cmd["CheckStrings"][0]["Register"]
    assert reg["SignCalculationObject"] == 33
    assert reg["GoodCodeData"] == {"BarCode": MILK, "ContainsSerialNumber": True, "AcceptOnBad": False}
    assert "GoodCodeData" not in cmd["CheckStrings"][1]["Register"]
    assert b"\\u001d" in c.dumps(cmd)  # GS travels as a JSON escape, never as text "<GS>"


def test_validation_marking_code_over_the_wire(make_server) -> None:
    srv = make_server()
    execute(srv, {"Command": "OpenShift", "NumDevice": 1, "IdCommand": "s1", "Timeout": 10})
    srv.model.set_marking_verdict(MILK.encode(), "invalid")
    answer = execute(srv, {"Command": "ValidationMarkingCode", "NumDevice": 1, "IdCommand": "v1", "Timeout": 10,
                           "GoodCodeDatas": [{"Name": "Молоко", "BarCode": MILK}]})
    assert answer["Status"] == 0
    [row] = answer["MarkingCodeValidation"]
    assert row["BarCode"] == MILK and row["ValidationResult"] == 0x05 and "INCORRECT" in row["DecryptionResult"]


def test_register_check_refuses_a_declined_code_without_a_document(make_server) -> None:
    srv = make_server()
    execute(srv, {"Command": "OpenShift", "NumDevice": 1, "IdCommand": "s1", "Timeout": 10})
    srv.model.set_marking_verdict(MILK.encode(), "invalid")
    answer = execute(srv, {
        "Command": "RegisterCheck", "NumDevice": 1, "IdCommand": "r1", "Timeout": 10, "IsFiscalCheck": True,
        "TypeCheck": 0, "TaxVariant": "0", "ElectronicPayment": 99.9, "CheckStrings": [{"Register": {
            "Name": "Молоко", "Quantity": 1, "Price": 99.9, "Amount": 99.9, "Tax": 10,
            "SignMethodCalculation": 4, "SignCalculationObject": 33, "MeasureOfQuantity": 0,
            "GoodCodeData": {"BarCode": MILK, "ContainsSerialNumber": True, "AcceptOnBad": False}}}]})
    assert answer["Status"] == 2 and "не прошел проверку" in answer["Error"]
    assert [d["kind"] for d in srv.model.documents()] == ["open_shift"]
