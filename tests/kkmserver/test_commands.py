"""Pure mapping: receipt → RegisterCheck JSON, answers → documents, error texts → error classes."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from kkt_drivers.errors import DeviceStateError, OutcomeUnknownError, RejectedError, TransientError
from kkt_drivers.kkmserver import commands as c
from kkt_drivers.receipt import DocumentKind, Operation, Payment, PaymentType, Vat
from tests.kkmserver.conftest import sale


def test_money_goes_out_as_exact_json_numbers_and_float_is_refused() -> None:
    assert c.dumps({"Amount": Decimal("900.00"), "Quantity": Decimal("2.000"), "Ok": True, "N": None}) == \
        b'{"Amount":900.00,"Quantity":2.000,"Ok":true,"N":null}'
    assert c.loads(b'{"s": 0.1}')["s"] == Decimal("0.1")
    with pytest.raises(TypeError):
        c.dumps({"Amount": 0.1})


def test_register_check_carries_lines_payments_tag_contact_and_tax_variant() -> None:
    from dataclasses import replace
    r = replace(sale("T-1"), payments=(Payment(PaymentType.ELECTRONIC, Decimal("1000.00")),
                                       Payment(PaymentType.PREPAID, Decimal("200.00"))), cashier="Иванова А.")
    cmd = json.loads(c.dumps(c.register_check(r, num_device=2, id_command="kktw-r1-T-1", timeout_s=30)),
                     parse_float=Decimal)
    assert (cmd["Command"], cmd["NumDevice"], cmd["IdCommand"], cmd["TypeCheck"]) == \
        ("RegisterCheck", 2, "kktw-r1-T-1", 0)
    assert cmd["AdditionalAttribute"] == "T-1" and cmd["ClientAddress"] == "+79990000000"
    assert cmd["TaxVariant"] == "1" and cmd["CashierName"] == "Иванова А." and cmd["CancelOpenedCheck"] is True
    assert cmd["InternetMode"] is True
    assert cmd["ElectronicPayment"] == Decimal("1000.00") and cmd["AdvancePayment"] == Decimal("200.00")
    first, second = (s["Register"] for s in cmd["CheckStrings"])
    assert (first["Quantity"], first["Price"], first["Amount"], first["Tax"]) == \
        (Decimal("2.000"), Decimal("450.00"), Decimal("900.00"), -1)
    assert second["Tax"] == c.TAX[Vat.VAT22] == 22 and second["SignMethodCalculation"] == 4


def test_correction_and_refund_type_checks() -> None:
    from dataclasses import replace

    from kkt_drivers.receipt import Correction
    refund = c.register_check(sale("R", Operation.SALE_REFUND), num_device=1, id_command="x", timeout_s=1)
    assert refund["TypeCheck"] == 1
    corr = replace(sale("C", Operation.SALE_REFUND), correction=Correction(False, dt.date(2026, 3, 2), "N-5"))
    cmd = c.register_check(corr, num_device=1, id_command="x", timeout_s=1)
    assert (cmd["TypeCheck"], cmd["CorrectionType"], cmd["CorrectionBaseDate"], cmd["CorrectionBaseNumber"]) == \
        (3, 1, "2026-03-02T00:00:00", "N-5")


def test_document_from_the_vendors_example_answer() -> None:
    # the QRCode example from KKMServer's RegisterCheck description
    answer = {"Status": 0, "CheckNumber": 3, "SessionNumber": 1, "SessionCheckNumber": 2,
              "QRCode": "t=20190101T195300&s=0.03&fn=9999078900002838&i=3&fp=839499349&n=1"}
    doc = c.document_from_answer(answer, kind=DocumentKind.RECEIPT, tag="A")
    assert (doc.fd_number, doc.fiscal_sign, doc.fn_serial, doc.total, doc.operation, doc.receipt_number) == \
        (3, 839499349, "9999078900002838", Decimal("0.03"), Operation.SALE, 2)
    assert doc.issued_at == dt.datetime(2019, 1, 1, 19, 53)
    with pytest.raises(c.AnswerError):
        c.checked_document(answer, sale("A", Operation.SALE_REFUND))  # operation mismatch
    with pytest.raises(c.AnswerError, match="SessionNumber"):
        c.document_from_answer({**answer, "SessionNumber": None}, kind=DocumentKind.RECEIPT)


@pytest.mark.parametrize("text, fiscal, cls, condition", [
    ("Нет бумаги", True, DeviceStateError, DeviceStateError.COND_PAPER_OUT),
    ("Смена превысила 24 часа", True, DeviceStateError, DeviceStateError.COND_SHIFT_EXPIRED),
    ("Смена закрыта, операция невозможна", True, DeviceStateError, DeviceStateError.COND_SHIFT_CLOSED),
    ("Ошибка ФН: документ не принят", True, DeviceStateError, DeviceStateError.COND_FN_ERROR),
    ("Потеряна связь с ККТ", True, OutcomeUnknownError, None),
    ("Потеряна связь с ККТ", False, TransientError, None),
    ("Неверная сумма оплаты", True, RejectedError, None),
])
def test_error_texts_are_classified(text, fiscal, cls, condition) -> None:
    err = c.error_for(text, fiscal=fiscal)
    assert type(err) is cls and text in str(err)
    if condition:
        assert err.condition == condition
