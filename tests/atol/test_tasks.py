"""Pure mapping: receipt → ATOL JSON task text (exact money), answers → our types."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from kkt_drivers.atol import tasks as t
from kkt_drivers.receipt import (
    Correction, DocumentKind, Item, MeasureUnit, Operation, Payment, PaymentMethod, PaymentSubject, PaymentType,
    TaxSystem, Vat,
)
from tests.atol.conftest import sample_receipt


def test_money_is_written_with_exactly_two_decimals_from_the_decimal() -> None:
    """Given amounts as Decimal, the JSON text carries them digit for digit (no float on the way)."""
    text = t.dumps(t.receipt_task(sample_receipt()))
    assert '"price":450.00' in text and '"amount":900.00' in text and '"quantity":2.000' in text
    assert '"payments":[{"type":"electronically","sum":1200.00}]' in text and '"total":1200.00' in text
    back = t.loads(text)
    assert back["total"] == Decimal("1200.00") and isinstance(back["items"][0]["price"], Decimal)
    assert t.dumps({"x": t.Money(Decimal("0.1") + Decimal("0.2"))}) == '{"x":0.30}'
    with pytest.raises(TypeError):
        t.dumps({"price": 0.1})


def test_sale_task_fields() -> None:
    """Internet sale: taxation, tax types, payment method/object, unit, contacts, place, operator, 1192 tag."""
    r = replace(sample_receipt(), company_email="shop@example.ru", cashier="Иванов", cashier_inn="500100732259")
    task = t.receipt_task(r)
    assert task["type"] == "sell" and task["taxationType"] == "usnIncome"
    assert task["internet"] is True and task["electronically"] is True
    assert task["paymentsPlace"] == "https://shop.example"
    assert task["clientInfo"] == {"emailOrPhone": "+79990000000"} and task["companyInfo"] == {"email": "shop@example.ru"}
    assert task["operator"] == {"name": "Иванов", "vatin": "500100732259"}
    book, delivery, tag = task["items"]
    assert (book["tax"], delivery["tax"]) == ({"type": "none"}, {"type": "vat22"})
    assert (book["paymentMethod"], book["paymentObject"], book["measurementUnit"]) == \
        ("fullPayment", "commodity", "piece")
    assert tag == {"type": "additionalAttribute", "value": "order-1"}


@pytest.mark.parametrize("vat,name", [(Vat.VAT22, "vat22"), (Vat.VAT122, "vat122"), (Vat.VAT5, "vat5"),
                                      (Vat.VAT7, "vat7"), (Vat.VAT105, "vat105"), (Vat.VAT107, "vat107"),
                                      (Vat.VAT10, "vat10"), (Vat.VAT110, "vat110"), (Vat.VAT0, "vat0"),
                                      (Vat.NONE, "none"), (Vat.VAT20, "vat20"), (Vat.VAT120, "vat120")])
def test_every_vat_rate_has_its_tax_type(vat: Vat, name: str) -> None:
    """Each 1199 rate maps to ATOL's tax.type (20/120 stay for refunds of receipts issued with them)."""
    item = Item("x", Decimal("10.00"), Decimal("1"), Decimal("10.00"), vat, PaymentMethod.FULL_PREPAYMENT,
                PaymentSubject.SERVICE, MeasureUnit.KILOGRAM)
    r = replace(sample_receipt(operation=Operation.SALE_REFUND), items=(item,),
                payments=(Payment(PaymentType.CASH, Decimal("10.00")),))
    task = t.receipt_task(r)
    assert task["type"] == "sellReturn" and task["items"][0]["tax"] == {"type": name}
    assert (task["items"][0]["paymentMethod"], task["items"][0]["paymentObject"],
            task["items"][0]["measurementUnit"]) == ("fullPrepayment", "service", "kilogram")
    assert task["payments"] == [{"type": "cash", "sum": Decimal("10.00")}]


def test_every_enum_value_is_mapped() -> None:
    """No receipt the model can express makes a KeyError in the mapping."""
    assert set(t.TAX_TYPES) == set(Vat) and set(t.PAYMENT_METHODS) == set(PaymentMethod)
    assert set(t.PAYMENT_OBJECTS) == set(PaymentSubject) and set(t.MEASUREMENT_UNITS) == set(MeasureUnit)
    assert set(t.PAYMENT_TYPES) == set(PaymentType) and set(t.TAXATION_TYPES) == set(TaxSystem)


@pytest.mark.parametrize("op,kind", [(Operation.SALE, "sellCorrection"), (Operation.SALE_REFUND, "sellReturnCorrection"),
                                     (Operation.EXPENSE, "buyCorrection"), (Operation.EXPENSE_REFUND, "buyReturnCorrection")])
def test_correction_task_carries_1173_1178_1179(op: Operation, kind: str) -> None:
    fix = Correction(self_made=False, corrected_date=dt.date(2026, 3, 2), order_number="ЕД-1/2")
    task = t.receipt_task(replace(sample_receipt(operation=op), correction=fix))
    assert task["type"] == kind
    assert (task["correctionType"], task["correctionBaseDate"], task["correctionBaseNumber"]) == \
        ("instruction", "2026-03-02", "ЕД-1/2")


def test_request_uuid_is_deterministic_per_receipt_and_generation() -> None:
    """The same receipt always gets the same uuid (attempt-independent); tag, operation, generation change it."""
    r = sample_receipt()
    assert t.request_uuid(r) == t.request_uuid(sample_receipt()) == \
        str(uuid.uuid5(t.KEY_NAMESPACE, "1/r/order-1/0"))
    others = {t.request_uuid(r, 1), t.request_uuid(sample_receipt("order-2")),
              t.request_uuid(sample_receipt(operation=Operation.SALE_REFUND)),
              t.request_uuid(replace(r, correction=Correction(True, dt.date(2026, 1, 1))))}
    assert len(others) == 4 and t.request_uuid(r) not in others


RESULT = """{"fiscalParams": {"fiscalDocumentNumber": 41, "fiscalDocumentSign": "2143256432",
  "fiscalDocumentDateTime": "2026-11-30T12:01:02+03:00", "shiftNumber": 7, "fnNumber": "9999078900012345",
  "fiscalReceiptNumber": 3, "total": 1200.10, "registrationNumber": "0000000000000000"}}"""


def test_fiscal_params_answer_to_document() -> None:
    """Amounts parsed as Decimal (1200.10 stays 1200.10); the FP as string or number; offset dropped."""
    doc = t.document_from_fiscal_params(t.loads(RESULT), DocumentKind.RECEIPT, operation=Operation.SALE, tag="x")
    assert (doc.fd_number, doc.fiscal_sign, doc.shift_number, doc.receipt_number) == (41, 2143256432, 7, 3)
    assert doc.total == Decimal("1200.10") and doc.issued_at == dt.datetime(2026, 11, 30, 12, 1, 2)
    assert doc.qr == "t=20261130T1201&s=1200.10&fn=9999078900012345&i=41&fp=2143256432&n=1"


@pytest.mark.parametrize("drop", ["fiscalDocumentNumber", "fiscalDocumentSign", "fnNumber", "total",
                                  "fiscalDocumentDateTime", "shiftNumber"])
def test_missing_field_names_itself(drop: str) -> None:
    body = json.loads(RESULT)
    del body["fiscalParams"][drop]
    with pytest.raises(t.AnswerError, match=drop):
        t.document_from_fiscal_params(t.loads(json.dumps(body)), DocumentKind.RECEIPT)


def test_wrong_types_are_answer_errors() -> None:
    body = t.loads(RESULT)
    body["fiscalParams"]["fiscalDocumentNumber"] = "forty-one"
    with pytest.raises(t.AnswerError):
        t.document_from_fiscal_params(body, DocumentKind.RECEIPT)
    body = t.loads(RESULT)
    body["fiscalParams"]["fiscalDocumentDateTime"] = "yesterday"
    with pytest.raises(t.AnswerError):
        t.document_from_fiscal_params(body, DocumentKind.RECEIPT)


def test_fn_document_tlv_gives_our_tag() -> None:
    """getFnDocument's documentTLV (tag numbers as keys) → the document with 1192."""
    answer = t.loads("""{"documentTLV": {"fiscalDocumentType": "receipt", "short": false, "1040": 12, "1077": 3735928559,
      "1041": "9999078900012345", "1012": "2026-11-30T12:00:00", "1038": 2, "1042": 5, "1054": 2, "1020": 99.90,
      "1192": "order-9"}}""")
    doc = t.document_from_fn_document(answer, "")
    assert (doc.kind, doc.fd_number, doc.tag, doc.total, doc.operation) == \
        (DocumentKind.RECEIPT, 12, "order-9", Decimal("99.90"), Operation.SALE_REFUND)
    answer["documentTLV"]["fiscalDocumentType"] = "registration"
    with pytest.raises(t.AnswerError):
        t.document_from_fn_document(answer, "")


def test_error_codes_classify_and_are_recoverable_from_the_error() -> None:
    from kkt_drivers.atol import codes as c
    from kkt_drivers.errors import DeviceStateError, OutcomeUnknownError, RejectedError, TransientError

    cases = {2: TransientError, 44: DeviceStateError, 68: DeviceStateError, 141: DeviceStateError,
             73: DeviceStateError, 82: DeviceStateError, 118: DeviceStateError, 177: OutcomeUnknownError,
             227: RejectedError, 999: RejectedError}
    for code, cls in cases.items():
        err = c.error_for(code, "", task="sell")
        assert type(err) is cls and c.code_of(err) == code
    assert c.error_for(44, "Нет бумаги", task="sell").condition == DeviceStateError.COND_PAPER_OUT
    assert c.error_for(141, "", task="sell").condition == DeviceStateError.COND_SHIFT_EXPIRED
