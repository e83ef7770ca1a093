"""Receipts an inspector and an accountant would pass, end to end (slow tier: each test runs the real CLI).

MariaDB shop (reference schema) → ``python -m worker run --burst`` → the emulated register's fiscal
journal, the ground truth. Rules from fz54-receipts.md: refunds mirror the receipt as issued (§3.3,
§5.1), credit payments (§4.4, §4.5 F), correction receipts for late settlements (§5.2), shop time zones.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.shop import receipts_by_tag, run_cli, write_settings

pytestmark = pytest.mark.acceptance   # slow tier: each test runs the CLI two or three times (~20 s)

NOW_ISH = dt.datetime(2026, 11, 20, 12, 0, 0)     # within late_after_days of the test run (2026-11-30)
VAT22, VAT20 = 11, 1                              # FFD 1199: 11 = 22 %, 1 = 20 %
CREDIT, CREDIT_PAYMENT = 6, 7                     # FFD 1214
PAYMENT_SUBJECT = 10                              # FFD 1212 «платёж»


def setup_run(tmp_path: Path, shop_url: sa.URL, **sections: Any) -> tuple[Path, Path]:
    reg = tmp_path / "reg"
    source = {"url": shop_url.render_as_string(hide_password=False), **sections.pop("source", {})}
    settings = write_settings(
        tmp_path / "settings.yaml", source_url=source.pop("url"), ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        registers=[("kkt1", f"emulator://{reg}?seed=7")], source=source, **sections)
    run_cli(settings, "migrate")
    return settings, reg


def set_receipts(settings: Path, **values: Any) -> None:
    data = yaml.safe_load(settings.read_text())
    data["receipts"].update(values)
    settings.write_text(yaml.safe_dump(data, allow_unicode=True))


def insert(conn: sa.Connection, items: list[dict[str, Any]], *, kind: str = "sale", refund_of: int | None = None,
           amount: Decimal | str | None = None, paid_at: dt.datetime = NOW_ISH, email: str | None = "buyer@example.ru",
           phone: str | None = None, **extra: Any) -> int:
    """One payment row with its items, every column the reference schema has."""
    total = Decimal(amount) if amount is not None else sum((Decimal(i["amount"]) for i in items), Decimal(0))
    cols = {"kind": kind, "order_ref": "ORD", "refund_of": refund_of, "amount": total, "customer_email": email,
            "customer_phone": phone, "paid_at": paid_at, **extra}
    res = conn.execute(sa.text(f"INSERT INTO payments ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"),
                       cols)
    pid = int(res.lastrowid)
    for it in items:
        row = {"payment_id": pid, "vat": "vat22", "payment_method": None, "payment_subject": None, **it}
        row["amount"] = Decimal(row.get("amount") or Decimal(it["price"]) * Decimal(it["quantity"]))
        conn.execute(sa.text(f"INSERT INTO payment_items ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"),
                     row)
    return pid


def line(no: int, price: str, qty: str = "1", **kw: Any) -> dict[str, Any]:
    amount = (Decimal(price) * Decimal(qty)).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    return {"line_no": no, "name": f"Товар {no}", "price": Decimal(price), "quantity": Decimal(qty),
            "amount": amount, **kw}


def ledger_rows(tmp_path: Path) -> dict[str, tuple]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        return {r[0]: r[1:] for r in db.execute("SELECT tag, state, stage, total, last_error FROM receipts")}


def one(docs: dict[str, list[dict]], tag: str) -> dict:
    assert len(docs.get(tag, [])) == 1, f"{tag}: {docs.get(tag)}"
    return docs[tag][0]


def burst(settings: Path) -> None:
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")


def test_refunds_mirror_the_receipt_as_issued_after_a_settings_change(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given a sale issued at 22 % under ОСН, when the shop switches to УСН with default 5 % and refunds a
    line (its row carries no VAT of its own), then the refund carries 22 % and 1055 = ОСН as issued.
    The same run: a discounted order is refunded line by line at its discounted amounts, and a weight
    line is refunded in three parts that add up exactly to the line (the last part takes the remainder)."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        conn.execute(sa.text("ALTER TABLE payments ADD COLUMN coupon DECIMAL(18, 6) NULL"))
        # class 1: a shop whose line_no is text ('1', '2'): one line whatever the column type
        conn.execute(sa.text("ALTER TABLE payment_items MODIFY line_no VARCHAR(8) NOT NULL"))
        s1 = insert(conn, [line(1, "100.00"), line(2, "50.00")])
        # class 8: 10.01 off 250.00 → line 2 (3 × 50.00) becomes 143.99, split 2 × 47.99 + 1 × 48.01
        s2 = insert(conn, [line(1, "100.00"), line(2, "50.00", "3")], amount="239.99", coupon=Decimal("10.01"))
        # class 2: 0.999 kg at 99.99 = 99.89
        s3 = insert(conn, [line(1, "99.99", "0.999", measure_unit="kg")])
    settings, reg = setup_run(tmp_path, shop_schema, source={"mapping": {"payment_discount": "coupon"}})
    burst(settings)
    assert {t: r[0] for t, r in ledger_rows(tmp_path).items()} == {"S1": "done", "S2": "done", "S3": "done"}

    set_receipts(settings, tax_system="usn_income", default_vat="vat5")
    with eng.begin() as conn:
        r4 = insert(conn, [{"line_no": "2", "name": "Товар 2", "price": Decimal("50.00"), "quantity": Decimal(1),
                            "amount": Decimal("50.00"), "vat": "vat5"}], kind="refund", refund_of=s1)
        r5 = insert(conn, [line(2, "48.00", "1")], kind="refund", refund_of=s2)
        parts = [insert(conn, [line(1, "99.99", "0.333", amount=a)], kind="refund", refund_of=s3, amount=a)
                 for a in ("33.30", "33.30", "33.29")]
    burst(settings)

    docs = receipts_by_tag(reg)
    rows = ledger_rows(tmp_path)
    r4d = one(docs, f"R{r4}")
    assert (r4d["operation"], r4d["total"], r4d["tax_system"]) == (2, "50.00", 1)
    assert [(i["name"], i["vat"]) for i in r4d["items"]] == [("Товар 2", VAT22)]
    r5d = one(docs, f"R{r5}")
    assert (r5d["total"], [i["vat"] for i in r5d["items"]]) == ("48.00", [VAT22]), r5d
    assert sum(Decimal(d["total"]) for p in parts for d in docs[f"R{p}"]) == Decimal("99.89"), rows
    assert all(rows[f"R{p}"][0] == "done" for p in parts), rows
    # a second refund of the same line (stored under '2' before) is refused: the line is one line
    with eng.begin() as conn:
        r9 = insert(conn, [line(2, "50.00")], kind="refund", refund_of=s1)
    burst(settings)
    state, _, _, error = ledger_rows(tmp_path)[f"R{r9}"]
    assert state == "rejected" and "payment_items[0].quantity" in error and f"resend --id {r9}" in error


def test_credit_late_payment_idn_email_and_pre_go_live_refund(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given a credit hand-over (1214 = 6, nothing paid now), its later payment (1214 = 7), a payment of
    2025-12-31 reaching the register in 2026-11, an IDN e-mail, a broken e-mail with a valid phone, and a
    refund of a sale made before go-live, when the worker runs, then: the credit receipt is paid by
    1216 and the credit payment by 1081 with 1212 = 10; the late one is a correction (1173 = 0, 1178 =
    2025-12-31) at 20 %; the IDN address is sent as A-labels; the phone is used with a warning; the old
    sale is read from the shop, recorded as issued by another system, and its refund fiscalized."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        old = insert(conn, [line(1, "300.00")])                                                  # before go-live
        credit = insert(conn, [line(1, "500.00", payment_method="credit")], amount="0")
        paid = insert(conn, [line(1, "500.00", payment_method="credit_payment")])
        late = insert(conn, [line(1, "120.00", vat="vat20")], paid_at=dt.datetime(2025, 12, 31, 18, 0))
        idn = insert(conn, [line(1, "10.00")], email="ivan@пример.рф")
        phone = insert(conn, [line(1, "20.00")], email="ivan@", phone="8 (912) 345-67-89")
        refund_old = insert(conn, [line(1, "300.00")], kind="refund", refund_of=old)
        frac = insert(conn, [line(1, "33.297")])     # class 12: the schema keeps the third decimal
    settings, reg = setup_run(tmp_path, shop_schema, source={"start_after_id": old})
    burst(settings)

    docs = receipts_by_tag(reg)
    rows = ledger_rows(tmp_path)
    c = one(docs, f"S{credit}")
    assert c["payments"] == [{"type": "credit", "amount": "500.00"}]
    assert [i["method"] for i in c["items"]] == [CREDIT]
    p = one(docs, f"S{paid}")
    assert p["payments"] == [{"type": "electronic", "amount": "500.00"}]
    assert [(i["method"], i["subject"]) for i in p["items"]] == [(CREDIT_PAYMENT, PAYMENT_SUBJECT)]
    lt = one(docs, f"S{late}")
    assert lt["kind"] == "correction" and lt["correction"]["1173"] == 0 and lt["correction"]["1178"] == "2025-12-31"
    assert [i["vat"] for i in lt["items"]] == [VAT20]
    assert "late: settled on 2025-12-31" in rows[f"S{late}"][3]
    assert one(docs, f"S{idn}")["requisites"]["1008"] == "ivan@xn--e1afmkfd.xn--p1ai"
    assert one(docs, f"S{phone}")["requisites"]["1008"] == "+79123456789"
    assert "customer_email" in rows[f"S{phone}"][3] and "i***@" in rows[f"S{phone}"][3]
    # the sale before go-live: no receipt of ours, a note in the ledger, the refund fiscalized
    assert f"S{old}" not in docs and f"X{old}" not in docs
    assert rows[f"X{old}"][:2] == ("done", "external") and "another system" in rows[f"X{old}"][3]
    r = one(docs, f"R{refund_old}")
    assert (r["operation"], r["total"], [i["vat"] for i in r["items"]]) == (2, "300.00", [VAT22])
    assert "another system" in run_cli(settings, "ledger", "show", str(old)).stdout
    state, _, _, error = rows[f"S{frac}"]
    assert state == "rejected" and error.startswith("payment_items[0].price: 33.297 has more than 2 decimal")
    assert error.endswith(f"`kkt-worker resend --id {frac}`")


def test_a_utc_shop_new_year_sale_is_a_2026_sale(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given a shop storing UTC (source.timezone: UTC), when its sale of 2025-12-31 21:30 UTC (00:30 MSK on
    New Year's night) at 22 % arrives, then it is accepted as a 2026 sale, and — fiscalized eleven months
    later — issued as a correction dated 2026-01-01 (the shop's local date), never a 2025 rejection."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        s = insert(conn, [line(1, "100.00", vat="vat22")], paid_at=dt.datetime(2025, 12, 31, 21, 30))
        # the same wall-clock time at 20 % is a 2025 rate on a 2026 date: refused, naming field and rule
        bad = insert(conn, [line(1, "100.00", vat="vat20")], paid_at=dt.datetime(2025, 12, 31, 21, 30))
    settings, reg = setup_run(tmp_path, shop_schema, source={"timezone": "UTC"})
    burst(settings)
    doc = one(receipts_by_tag(reg), f"S{s}")
    assert doc["correction"]["1178"] == "2026-01-01" and [i["vat"] for i in doc["items"]] == [VAT22]
    state, _, _, error = ledger_rows(tmp_path)[f"S{bad}"]
    assert state == "rejected" and "payment_items[0].vat" in error and "2026-01-01" in error
