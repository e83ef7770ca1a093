"""A shop payment row → the 54-FZ receipts to fiscalize, or :class:`InvalidPayment` naming the field.

Pure functions, no I/O. :func:`build_receipts` validates the raw row (:mod:`worker.shop.rows`)
field by field and stops at the first problem, so the ledger records one precise reason
(``payment_items[3].vat: 'vat18' is not a valid rate for a sale on 2026-11-21``). Field indexes are
0-based positions in ``payment.items``; ``original.`` prefixes fields of the refunded sale.

* sale   → 1054 = 1, 1214 from the line or the config, one electronic payment (1081) = total;
* sale in the prepayment flow (``cfg.flow = "prepayment"``, §4.5 B) → stage "prepayment": 1214 = 1
  at the calculated rate (22 % → 22/122), electronic payment; the delivery later gives stage
  "settlement" (:func:`build_settlement`): 1214 = 4 at the ordinary rate on the delivery date, paid
  by the prepayment offset (1215);
* refund → 1054 = 2 mirroring the refunded sale's lines (name, price, VAT *as issued*, 1214, 1212,
  2108); the refund row only says which lines (``line_no``) and how much;
* refund in the prepayment flow → mirrors the stage it refunds: the prepayment (1214 = 1, calculated
  rate) while the goods are not delivered, the settlement (1214 = 4, ordinary rate) after (§5.1);
* corrections (§5.2) → :func:`correction_of` / :func:`reverse_correction_of` copy a built receipt;
* more than ``max_items_per_receipt`` lines → several receipts, each balanced, each with its tag.

Rule references (§) are to ``fz54-receipts.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kkt_drivers.receipt import (
    CONTACT_MAX_LEN,
    Correction,
    Item,
    MeasureUnit,
    Operation,
    Payment,
    PaymentMethod,
    PaymentType,
    Receipt,
    quantity,
)
from worker.receipts.config import (
    DEFAULT_MAX_ITEMS_PER_RECEIPT,
    FLOW_PREPAYMENT,
    PlannedReceipt,
    ReceiptConfig,
    make_tag,
)
from worker.receipts.discounts import spread_discount
from worker.receipts.rules import (
    InvalidPayment,
    calculated_rate,
    check_vat,
    default_vat_for,
    mask_contact,
    ordinary_rate,
    parse_alias,
    parse_email,
    parse_line_no,
    parse_money,
    parse_paid_at,
    parse_phone,
    parse_quantity,
    rate_on,
    round_kop,
    short_repr,
    text,
)
from worker.shop.rows import KIND_REFUND, KIND_SALE, ShopItem, ShopPayment

__all__ = [
    "InvalidPayment",
    "PlannedReceipt",
    "ReceiptConfig",
    "build_receipts",
    "build_settlement",
    "correction_of",
    "reverse_correction_of",
    "make_tag",
    "mask_contact",
    "spread_discount",
    "DEFAULT_MAX_ITEMS_PER_RECEIPT",
]


@dataclass(frozen=True)
class _Line:
    """A validated line with the shop's line number (refunds reference it)."""

    line_no: int
    item: Item


@dataclass(frozen=True)
class _Sale:
    """A validated sale row: its date, contact and lines."""

    day: dt.date
    contact: str
    lines: tuple[_Line, ...]


def build_receipts(
    payment: ShopPayment,
    cfg: ReceiptConfig,
    *,
    original: ShopPayment | None = None,
    already_refunded: Mapping[int, Decimal] | None = None,
    refund_stage: str | None = None,
    settled_on: dt.date | None = None,
) -> list[PlannedReceipt]:
    """Turn one shop payment into the receipts to fiscalize, or raise :class:`InvalidPayment`.

    *original* is the refunded sale (required for a refund); *already_refunded* maps the sale's
    line numbers to the quantities refunded by earlier refunds (from the ledger). In the
    prepayment flow *refund_stage* says which stage a refund mirrors: ``"prepayment"`` or
    ``"settlement"`` (then *settled_on* is the delivery date that fixed the settlement's rate);
    None mirrors an ordinary sale.
    """
    kind = payment.kind.strip().lower() if isinstance(payment.kind, str) else payment.kind
    if kind not in (KIND_SALE, KIND_REFUND):
        raise InvalidPayment(
            "payments.kind", f"must be '{KIND_SALE}' or '{KIND_REFUND}', got {short_repr(payment.kind)}"
        )
    if not isinstance(payment.id, int) or isinstance(payment.id, bool) or payment.id < 0:
        raise InvalidPayment("payments.id", f"must be a non-negative integer, got {short_repr(payment.id)}")
    if kind == KIND_SALE:
        sale = _validate_sale(payment, cfg, prefix="")
        if cfg.flow == FLOW_PREPAYMENT:
            _check_full_payment_lines(sale)
            items = [_as_prepayment(ln.item) for ln in sale.lines]
            return _plan("prepayment", payment.id, Operation.SALE, items, sale.contact, cfg)
        return _plan("sale", payment.id, Operation.SALE, [ln.item for ln in sale.lines], sale.contact, cfg)
    return _build_refund(payment, cfg, original, already_refunded or {}, refund_stage, settled_on)


# ---------------------------------------------------------------- prepayment flow


def _as_prepayment(item: Item) -> Item:
    """A goods line as prepaid in full: 1214 = 1 at the calculated rate (§3.2)."""
    return dataclasses.replace(item, payment_method=PaymentMethod.FULL_PREPAYMENT, vat=calculated_rate(item.vat))


def _as_settlement(item: Item, on: dt.date) -> Item:
    """A goods line handed over: 1214 = 4 at the ordinary rate in force on *on* (§3.3)."""
    return dataclasses.replace(
        item, payment_method=PaymentMethod.FULL_PAYMENT, vat=rate_on(ordinary_rate(item.vat), on)
    )


def _check_full_payment_lines(sale: _Sale, prefix: str = "") -> None:
    """The prepayment flow sets 1214 itself; a line asking for another method is a mapping mistake."""
    for n, ln in enumerate(sale.lines):
        if ln.item.payment_method is not PaymentMethod.FULL_PAYMENT:
            raise InvalidPayment(
                f"{prefix}payment_items[{n}].payment_method",
                f"is {ln.item.payment_method.name.lower()}; with receipts.flow = prepayment the lines "
                "describe the goods (full_payment or empty) and the worker sets 1214 per stage",
            )


def build_settlement(
    sale_row: ShopPayment,
    cfg: ReceiptConfig,
    *,
    delivered_at: Any,
    already_refunded: Mapping[int, Decimal] | None = None,
) -> list[PlannedReceipt]:
    """The settlement receipts («зачёт предоплаты», §4.5 B) of a prepaid sale delivered at *delivered_at*.

    Same goods as the prepayment minus what was refunded before the delivery, 1214 = 4, the ordinary
    rate on the delivery date, paid by the prepayment offset (1215 = total). Tags use the sale's id.
    """
    kind = sale_row.kind.strip().lower() if isinstance(sale_row.kind, str) else sale_row.kind
    if kind != KIND_SALE:
        raise InvalidPayment(
            "deliveries.payment_id", f"payment {short_repr(sale_row.id)} is not a sale ({short_repr(sale_row.kind)})"
        )
    sale = _validate_sale(sale_row, cfg, prefix="original.")
    _check_full_payment_lines(sale, "original.")
    day = parse_paid_at(delivered_at, "deliveries.delivered_at")
    if day < sale.day:
        raise InvalidPayment("deliveries.delivered_at", f"delivery dated {day} is before the payment ({sale.day})")
    already = already_refunded or {}
    items: list[Item] = []
    for ln in sale.lines:
        left = ln.item.quantity - _refunded(already, ln.line_no)
        if left <= 0:
            continue
        item = ln.item if left == ln.item.quantity else dataclasses.replace(
            ln.item, quantity=left, amount=round_kop(ln.item.price * left))
        items.append(_as_settlement(item, day))
    if not any(it.amount > 0 for it in items):
        raise InvalidPayment(
            "deliveries.payment_id", f"payment {sale_row.id} was refunded in full before the delivery; nothing to settle"
        )
    return _plan("settlement", sale_row.id, Operation.SALE, items, sale.contact, cfg, PaymentType.PREPAID)


# ---------------------------------------------------------------- corrections (§5.2)


def correction_of(receipt: Receipt, *, tag: str, corrected_on: dt.date) -> Receipt:
    """*receipt* as a self-made correction receipt (1173 = 0, 1178 = *corrected_on*) with our *tag* in 1192."""
    return dataclasses.replace(receipt, tag=tag, correction=Correction(self_made=True, corrected_date=corrected_on))


_REVERSED = {
    Operation.SALE: Operation.SALE_REFUND,
    Operation.SALE_REFUND: Operation.SALE,
    Operation.EXPENSE: Operation.EXPENSE_REFUND,
    Operation.EXPENSE_REFUND: Operation.EXPENSE,
}


def reverse_correction_of(wrong: Receipt, *, tag: str, corrected_on: dt.date) -> Receipt:
    """The reverse correction of a wrong receipt: the opposite 1054 repeating the wrong data (§5.2)."""
    return dataclasses.replace(
        correction_of(wrong, tag=tag, corrected_on=corrected_on), operation=_REVERSED[wrong.operation]
    )


# ---------------------------------------------------------------- sale


def _validate_sale(p: ShopPayment, cfg: ReceiptConfig, *, prefix: str) -> _Sale:
    """Every rule of a sale row, in the order an admin would fix them."""
    day = parse_paid_at(p.paid_at, f"{prefix}payments.paid_at")
    amount = parse_money(p.amount, f"{prefix}payments.amount", positive=True, max_value=None)
    contact = _contact(p, prefix)
    if not isinstance(p.items, (tuple, list)) or not p.items:
        raise InvalidPayment(f"{prefix}payment_items", "a payment needs at least one item")
    lines: list[_Line] = []
    seen: set[int] = set()
    for n, raw in enumerate(p.items):
        f = f"{prefix}payment_items[{n}]"
        if not isinstance(raw, ShopItem):
            raise InvalidPayment(f, f"is not an item row ({type(raw).__name__})")
        line_no = parse_line_no(raw.line_no, f"{f}.line_no")
        if line_no in seen:
            raise InvalidPayment(f"{f}.line_no", f"line {line_no} appears twice in the payment")
        seen.add(line_no)
        lines.append(_Line(line_no, _validate_item(raw, cfg, day, f)))
    items_total = sum((ln.item.amount for ln in lines), Decimal(0))
    discount = p.discount
    if discount is not None:
        d = parse_money(discount, f"{prefix}payments.discount", max_value=None)
        if d > items_total:
            raise InvalidPayment(
                f"{prefix}payments.discount", f"{d} is larger than the items' total {items_total}"
            )
        if items_total - d != amount:
            raise InvalidPayment(
                f"{prefix}payments.amount",
                f"{amount} != items' total {items_total} minus discount {d}",
            )
        spread = spread_discount([ln.item for ln in lines], d)
        # line numbers do not survive a split line; refunds of discounted sales are refused below
        return _Sale(day, contact, tuple(_Line(0, it) for it in spread))
    if items_total != amount:
        raise InvalidPayment(
            f"{prefix}payments.amount", f"{amount} != sum of the items' amounts {items_total}"
        )
    return _Sale(day, contact, tuple(lines))


def _validate_item(raw: ShopItem, cfg: ReceiptConfig, day: dt.date, f: str) -> Item:
    name = text(raw.name, f"{f}.name")
    price = parse_money(raw.price, f"{f}.price")
    qty = parse_quantity(raw.quantity, f"{f}.quantity")
    amount = parse_money(raw.amount, f"{f}.amount")
    if round_kop(price * qty) != amount:
        raise InvalidPayment(
            f"{f}.amount",
            f"{amount} != price {price} x quantity {qty} rounded half up ({round_kop(price * qty)})",
        )
    method = (
        cfg.default_payment_method
        if raw.payment_method is None
        else parse_alias(
            raw.payment_method, f"{f}.payment_method", cfg.method_aliases, "payment method (1214)"
        )
    )
    subject = (
        cfg.default_payment_subject
        if raw.payment_subject is None
        else parse_alias(
            raw.payment_subject, f"{f}.payment_subject", cfg.subject_aliases, "payment subject (1212)"
        )
    )
    unit = (
        MeasureUnit.PIECE
        if raw.measure_unit is None
        else parse_alias(raw.measure_unit, f"{f}.measure_unit", cfg.measure_aliases, "measure unit (2108)")
    )
    if raw.vat is None:
        vat = default_vat_for(cfg.default_vat, day, method)
        shown = f"default {vat.value}"
    else:
        # one wording for unknown and out-of-date rates: the admin needs the date either way
        vat = parse_alias(
            raw.vat,
            f"{f}.vat",
            cfg.vat_aliases,
            "VAT rate",
            unknown=f"is not a valid rate for a sale on {day}",
        )
        shown = raw.vat
    check_vat(vat, shown, day, method, f"{f}.vat")
    return Item(
        name=name,
        price=price,
        quantity=qty,
        amount=amount,
        vat=vat,
        payment_method=method,
        payment_subject=subject,
        measure_unit=unit,
    )


def _contact(p: ShopPayment, prefix: str) -> str:
    """1008: the e-mail if given, else the phone; whatever is given must be valid (§1)."""
    email = (
        None
        if _blank(p.customer_email)
        else parse_email(p.customer_email, f"{prefix}payments.customer_email")
    )
    phone = (
        None
        if _blank(p.customer_phone)
        else parse_phone(p.customer_phone, f"{prefix}payments.customer_phone")
    )
    contact = email or phone
    if contact is None:
        raise InvalidPayment(
            f"{prefix}payments.customer_email",
            "an internet sale needs the customer's e-mail or phone (1008), both are empty",
        )
    assert len(contact) <= CONTACT_MAX_LEN
    return contact


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, (str, bytes)) and not value.strip())


# ---------------------------------------------------------------- refund


def _build_refund(
    p: ShopPayment,
    cfg: ReceiptConfig,
    original: ShopPayment | None,
    already: Mapping[int, Decimal],
    refund_stage: str | None = None,
    settled_on: dt.date | None = None,
) -> list[PlannedReceipt]:
    if p.refund_of is None or isinstance(p.refund_of, bool) or not isinstance(p.refund_of, int):
        raise InvalidPayment(
            "payments.refund_of", f"a refund must name the refunded sale's id, got {short_repr(p.refund_of)}"
        )
    if original is None:
        # the wording is matched by Ledger.orphan_refunds: such a refund is rebuilt when its sale arrives
        raise InvalidPayment("payments.refund_of", f"the refunded sale {p.refund_of} is not in the ledger yet")
    if original.id != p.refund_of:
        raise InvalidPayment(
            "payments.refund_of",
            f"is {short_repr(p.refund_of)}, but the sale given is {short_repr(original.id)}",
        )
    okind = original.kind.strip().lower() if isinstance(original.kind, str) else original.kind
    if okind != KIND_SALE:
        raise InvalidPayment(
            "payments.refund_of",
            f"payment {short_repr(p.refund_of)} is not a sale ({short_repr(original.kind)})",
        )
    if getattr(original, "discount", None) is not None:
        raise InvalidPayment(
            "payments.refund_of", "refunds of orders with an order-level discount are not supported"
        )
    sale = _validate_sale(original, cfg, prefix="original.")

    day = parse_paid_at(p.paid_at, "payments.paid_at")
    if day < sale.day:
        raise InvalidPayment(
            "payments.paid_at", f"refund dated {day} is before the sale it refunds ({sale.day})"
        )
    amount = parse_money(p.amount, "payments.amount", positive=True, max_value=None)
    # 1008: the refund's own contact, else the one the sale receipt went to (§5.1 keeps 1008)
    contact = sale.contact if _blank(p.customer_email) and _blank(p.customer_phone) else _contact(p, "")
    if not isinstance(p.items, (tuple, list)) or not p.items:
        raise InvalidPayment("payment_items", "a refund needs at least one item")

    by_no = {ln.line_no: ln.item for ln in sale.lines}
    items: list[Item] = []
    seen: set[int] = set()
    for n, raw in enumerate(p.items):
        f = f"payment_items[{n}]"
        if not isinstance(raw, ShopItem):
            raise InvalidPayment(f, f"is not an item row ({type(raw).__name__})")
        line_no = parse_line_no(raw.line_no, f"{f}.line_no")
        if line_no not in by_no:
            raise InvalidPayment(f"{f}.line_no", f"line {line_no} is not in the refunded sale {original.id}")
        if line_no in seen:
            raise InvalidPayment(f"{f}.line_no", f"line {line_no} appears twice in the refund")
        seen.add(line_no)
        orig = by_no[line_no]
        qty = parse_quantity(raw.quantity, f"{f}.quantity")
        if raw.price is not None and parse_money(raw.price, f"{f}.price") != orig.price:
            raise InvalidPayment(f"{f}.price", f"must equal the refunded line's price {orig.price}")
        line_amount = parse_money(raw.amount, f"{f}.amount")
        done = _refunded(already, line_no)
        if qty + done > orig.quantity:
            raise InvalidPayment(
                f"{f}.quantity",
                f"refunding {qty} of line {line_no} exceeds what is left: "
                f"sold {orig.quantity}, refunded {done}",
            )
        if round_kop(orig.price * qty) != line_amount:
            raise InvalidPayment(
                f"{f}.amount",
                f"{line_amount} != price {orig.price} x quantity {qty} ({round_kop(orig.price * qty)})",
            )
        # name, price, VAT as issued (20 % stays 20 % in 2026), 1214, 1212, 2108 all mirror the sale
        items.append(dataclasses.replace(orig, quantity=qty, amount=line_amount))

    total = sum((it.amount for it in items), Decimal(0))
    if total != amount:
        raise InvalidPayment("payments.amount", f"{amount} != sum of the items' amounts {total}")
    paid = sum((it.amount for it in (ln.item for ln in sale.lines)), Decimal(0))
    refunded_before = sum((round_kop(by_no[no].price * _refunded(already, no)) for no in by_no), Decimal(0))
    if amount + refunded_before > paid:
        raise InvalidPayment(
            "payments.amount",
            f"refund {amount} exceeds what is left of the sale: paid {paid}, refunded {refunded_before}",
        )
    if refund_stage == "prepayment":
        items = [_as_prepayment(it) for it in items]
    elif refund_stage == "settlement":
        items = [_as_settlement(it, settled_on or day) for it in items]
    elif refund_stage is not None:
        raise ValueError(f"refund_stage must be prepayment, settlement or None, got {refund_stage!r}")
    return _plan("refund", p.id, Operation.SALE_REFUND, items, contact, cfg)


def _refunded(already: Mapping[int, Decimal], line_no: int) -> Decimal:
    """Quantity of *line_no* refunded before (ledger data: trusted, but still never float)."""
    return quantity(already.get(line_no, Decimal(0)))


# ---------------------------------------------------------------- receipts and splitting


def _plan(
    stage: str,
    source_id: int,
    op: Operation,
    items: Sequence[Item],
    contact: str,
    cfg: ReceiptConfig,
    payment_type: PaymentType = PaymentType.ELECTRONIC,
) -> list[PlannedReceipt]:
    chunks = _chunks(list(items), cfg.max_items_per_receipt)
    out: list[PlannedReceipt] = []
    for part, chunk in enumerate(chunks, start=1):
        try:
            tag = make_tag(source_id, stage, part)
        except ValueError as exc:
            raise InvalidPayment("payments.id", str(exc)) from None
        total = sum((it.amount for it in chunk), Decimal(0))
        receipt = Receipt(
            operation=op,
            tax_system=cfg.tax_system,
            items=tuple(chunk),
            payments=(Payment(payment_type, total),),
            tag=tag,
            customer_contact=contact,
            settlement_place=cfg.settlement_place,
            internet=True,
            company_email=cfg.company_email,
            cashier=cfg.cashier,
            cashier_inn=cfg.cashier_inn,
        )
        out.append(PlannedReceipt(stage=stage, part=part, receipt=receipt))
    return out


def _chunks(items: list[Item], size: int) -> list[list[Item]]:
    """Split into receipts of ≤ *size* lines, each with a positive total (a receipt of 0 is refused).

    Zero-priced lines (gifts) are the only way a part could total 0; such a part swaps its first
    line for a paid line from a part that has two or more.
    """
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    for chunk in chunks:
        if any(it.amount > 0 for it in chunk):
            continue
        donor = next((c for c in chunks if sum(1 for it in c if it.amount > 0) >= 2), None)
        if donor is None:
            raise InvalidPayment(
                "payment_items",
                f"too many zero-priced lines to split into receipts of at most {size} lines "
                "with a positive total",
            )
        k = next(i for i, it in enumerate(donor) if it.amount > 0)
        donor[k], chunk[0] = chunk[0], donor[k]
    return chunks
