"""ATOL Online mapping on plain data: receipt → JSON bytes, keys, error classes, report → document."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from decimal import Decimal

import pytest

from kkt_drivers.atol_online import protocol as p
from kkt_drivers.atol_online.driver import AtolOnlineDriver
from kkt_drivers.errors import (
    DeviceStateError, DriverConfigError, OutcomeUnknownError, RejectedError, TransientError,
)
from kkt_drivers.receipt import (
    Correction, DocumentKind, Item, Operation, Payment, PaymentMethod, PaymentType, Receipt, TaxSystem, Vat,
)

COMPANY = p.Company(inn="5544332219", payment_address="https://shop.example.ru", email="shop@example.ru")
NOW = dt.datetime(2026, 11, 20, 12, 30, 5)


def sale(tag: str = "S1", **kw: object) -> Receipt:
    base = Receipt(
        operation=Operation.SALE, tax_system=TaxSystem.USN_INCOME,
        items=(Item("Книга", Decimal("199.99"), Decimal("3"), Decimal("599.97"), Vat.VAT22,
                    payment_method=PaymentMethod.FULL_PREPAYMENT),),
        payments=(Payment(PaymentType.ELECTRONIC, Decimal("599.97")),), tag=tag,
        customer_contact="buyer@example.ru", settlement_place="https://shop.example.ru")
    return replace(base, **kw)


def test_body_writes_money_as_exact_json_numbers_and_the_tag_as_1192() -> None:
    raw = p.dumps(p.receipt_body(sale(), COMPANY, "S1.sell", now=NOW))
    assert b'"price":199.99' in raw and b'"sum":599.97' in raw and b'"quantity":3.000' in raw
    doc = json.loads(raw, parse_float=Decimal)
    assert doc["external_id"] == "S1.sell" and doc["timestamp"] == "20.11.2026 12:30:05"
    r = doc["receipt"]
    assert r["company"] == {"email": "shop@example.ru", "sno": "usn_income", "inn": "5544332219",
                            "payment_address": "https://shop.example.ru"}
    assert r["client"] == {"email": "buyer@example.ru"} and r["internet"] is True
    assert r["additional_check_props"] == "S1"
    item = r["items"][0]
    assert (item["payment_method"], item["payment_object"], item["measure"]) == ("full_prepayment", 1, 0)
    # VAT inside the amount: 599.97 × 22 / 122 = 108.19
    assert item["vat"] == {"type": "vat22", "sum": Decimal("108.19")}
    assert r["payments"] == [{"type": 1, "sum": Decimal("599.97")}] and r["total"] == Decimal("599.97")


def test_phone_contact_and_correction_block() -> None:
    fix = Correction(self_made=False, corrected_date=dt.date(2026, 3, 2), order_number="12-34")
    body = p.receipt_body(sale(customer_contact="+79990000000", correction=fix), COMPANY, "k", now=NOW)
    assert "receipt" not in body
    c = body["correction"]
    assert c["client"] == {"phone": "+79990000000"}
    assert c["correction_info"] == {"type": "instruction", "base_date": "02.03.2026", "base_number": "12-34"}
    assert p.operation_name(sale(correction=fix)) == "sell_correction"
    assert p.operation_name(sale(operation=Operation.SALE_REFUND, correction=fix)) == "sell_refund_correction"


def test_dumps_refuses_float() -> None:
    with pytest.raises(TypeError):
        p.dumps({"sum": 1.5})


def test_external_id_is_deterministic_per_tag_operation_and_generation() -> None:
    assert p.external_id(sale("S1")) == p.external_id(sale("S1")) == "S1.sell"
    assert p.external_id(sale("S1", operation=Operation.SALE_REFUND)) == "S1.sell_refund"
    assert p.external_id(sale("S1"), 1) == "S1.sell.2"
    assert p.external_id(sale("S1"), 0, "shopA-") == "shopA-S1.sell"


@pytest.mark.parametrize("kind, code, cls", [
    ("timeout", 1, TransientError),
    ("agent", 1, RejectedError), ("agent", 2, DriverConfigError), ("agent", 3, DeviceStateError),
    ("driver", -3897, RejectedError), ("driver", -3910, DeviceStateError), ("driver", -3822, DeviceStateError),
    ("driver", -21, OutcomeUnknownError), ("driver", -199, OutcomeUnknownError),
    ("system", 32, RejectedError), ("system", 12, DriverConfigError), ("system", 11, TransientError), ("system", 50, OutcomeUnknownError),
    ("unknown", 0, OutcomeUnknownError),
])
def test_failure_classes(kind: str, code: int, cls: type) -> None:
    err = p.ServiceError(code=code, text="x", type=kind)
    exc = p.failure_error(err)
    assert type(exc) is cls and exc.vendor_code == f"{kind}:{code}"
    assert p.registered_nothing(err) is (cls is not OutcomeUnknownError)


def test_done_report_becomes_a_fiscal_document() -> None:
    rep = p.Report.from_json(json.loads(
        '{"uuid":"u1","status":"done","error":null,"payload":{"total":599.97,"fns_site":"www.nalog.gov.ru",'
        '"fn_number":"9999078900001234","shift_number":12,"receipt_datetime":"20.11.2026 12:30:09",'
        '"fiscal_receipt_number":3,"fiscal_document_number":115,"ecr_registration_number":"0000000001000001",'
        '"fiscal_document_attribute":1865575866}}', parse_float=Decimal))
    doc = p.fiscal_document(rep, sale())
    assert (doc.fd_number, doc.fiscal_sign, doc.fn_serial, doc.shift_number, doc.receipt_number) == \
        (115, 1865575866, "9999078900001234", 12, 3)
    assert doc.total == Decimal("599.97") and doc.issued_at == dt.datetime(2026, 11, 20, 12, 30, 9)
    assert doc.kind is DocumentKind.RECEIPT and doc.tag == "S1" and doc.operation is Operation.SALE
    assert doc.qr == "t=20261120T1230&s=599.97&fn=9999078900001234&i=115&fp=1865575866&n=1"
    with pytest.raises(ValueError):
        p.fiscal_document(replace(rep, payload={"total": 1}), sale())


def test_url_keeps_secrets_out_and_refuses_unknown_options(monkeypatch: pytest.MonkeyPatch) -> None:
    base = "atol-online+https://online.atol.ru/possystem/v5?login=l&group=g&inn=1&payment_address=https://s"
    with pytest.raises(DriverConfigError, match="password_env"):
        AtolOnlineDriver.from_url(base + "&password=secret")
    with pytest.raises(DriverConfigError, match="ATOL_PW"):
        AtolOnlineDriver.from_url(base + "&password_env=ATOL_PW")
    monkeypatch.setenv("ATOL_PW", "pw")
    with pytest.raises(DriverConfigError, match="colour"):
        AtolOnlineDriver.from_url(base + "&password_env=ATOL_PW&colour=red")
    with pytest.raises(DriverConfigError, match="loopback"):
        AtolOnlineDriver.from_url(base.replace("+https", "+http") + "&password_env=ATOL_PW")
    drv = AtolOnlineDriver.from_url(base + "&password_env=ATOL_PW&report_deadline_s=30")
    assert drv.base_url == "https://online.atol.ru/possystem/v5/" and drv.report_deadline_s == 30
    assert (drv.reads_documents, drv.lookup_by_key) == (False, True)
