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
    KOPECK,
    Correction,
    Item,
    MeasureUnit,
    Operation,
    Payment,
    PaymentMethod,
    PaymentSubject,
    PaymentType,
    Receipt,
    TaxSystem,
    money,
    quantity,
)
from worker.receipts.config import (
    DEFAULT_LATE_AFTER_DAYS,
    DEFAULT_MAX_ITEMS_PER_RECEIPT,
    FLOW_PREPAYMENT,
    PlannedReceipt,
    ReceiptConfig,
    make_tag,
)
from worker.receipts import marking as mk
from worker.receipts.discounts import reprice, spread_discount, spread_discount_keyed
from worker.receipts.plan import Stage
from worker.receipts.rules import (
    VAT22_FROM,
    InvalidPayment,
    alias_key,
    calculated_rate,
    check_vat,
    check_vat_for_tax_system,
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
    "DEFAULT_LATE_AFTER_DAYS",
    "IssuedLine",
    "IssuedSale",
    "Refunded",
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
class IssuedLine:
    """A receipt line as issued (or to be issued) with the shop line it came from.

    ``credit`` is the part of the line's amount paid by credit (1216), for 1214 = 5 / 6 lines.
    """

    line_no: int
    item: Item
    credit: Decimal = Decimal(0)


#: kept for callers of the previous name
_Line = IssuedLine


@dataclass(frozen=True)
class IssuedSale:
    """What was fiscalized for a sale, read back from the ledger: the lines a refund or a settlement
    mirrors (VAT, 1214, 1212, 2108, prices *as issued*), the 1008 contact and the sale's local date."""

    lines: tuple[IssuedLine, ...]
    contact: str
    day: dt.date | None = None
    #: 1055 of the issued receipt: a refund keeps the tax system of the sale even if the shop changed it
    tax_system: TaxSystem | None = None


@dataclass(frozen=True)
class Refunded:
    """What earlier refunds took from one shop line: cumulative quantity and amount."""

    quantity: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class _Sale:
    """A validated sale row: its date, contact, lines, warnings."""

    day: dt.date
    contact: str
    lines: tuple[IssuedLine, ...]
    warnings: tuple[str, ...] = ()


def build_receipts(
    payment: ShopPayment,
    cfg: ReceiptConfig,
    *,
    original: ShopPayment | None = None,
    already_refunded: Mapping[int, Any] | None = None,
    refund_stage: str | None = None,
    settled_on: dt.date | None = None,
    issued: IssuedSale | None = None,
    today: dt.date | None = None,
) -> list[PlannedReceipt]:
    """Turn one shop payment into the receipts to fiscalize, or raise :class:`InvalidPayment`.

    For a refund, *issued* is what the refunded sale's receipts carried (from the ledger); without
    it the lines are rebuilt from *original* (a sale fiscalized by another system before go-live,
    or a unit test). *already_refunded* maps the sale's line numbers to what earlier refunds took
    (:class:`Refunded`, or a bare quantity). In the prepayment flow *refund_stage* says which stage a
    refund mirrors when the lines are rebuilt from *original*. *today* (the local date the receipt is
    planned on) makes a late payment a correction receipt (:func:`is_late`).
    """
    kind = payment.kind
    if kind not in (KIND_SALE, KIND_REFUND):
        raise InvalidPayment(
            "payments.kind", f"{short_repr(payment.kind)} is an unknown kind; it must be "
                             f"'{KIND_SALE}' or '{KIND_REFUND}' (case and spaces do not matter)"
        )
    if not isinstance(payment.id, int) or isinstance(payment.id, bool) or payment.id < 0:
        raise InvalidPayment("payments.id", f"must be a non-negative integer, got {short_repr(payment.id)}")
    if kind == KIND_SALE:
        sale = _validate_sale(payment, cfg, prefix="")
        late = _late_day(sale.day, today, cfg)
        if cfg.flow == FLOW_PREPAYMENT:
            _check_full_payment_lines(sale)
            lines = [dataclasses.replace(ln, item=_as_prepayment(ln.item)) for ln in sale.lines]
            return _plan(Stage.PREPAYMENT, payment.id, Operation.SALE, lines, sale.contact, cfg,
                         warnings=sale.warnings, late_day=late)
        return _plan(Stage.SALE, payment.id, Operation.SALE, list(sale.lines), sale.contact, cfg,
                     warnings=sale.warnings, late_day=late)
    return _build_refund(payment, cfg, original, already_refunded or {}, refund_stage, settled_on, issued, today)


def is_late(day: dt.date, today: dt.date | None, cfg: ReceiptConfig) -> bool:
    """Whether a payment of local date *day* planned on *today* must be a correction receipt.

    Late when more than ``cfg.late_after_days`` days passed, or — whatever the threshold — when the
    general VAT rate changed in between (a 2025 payment fiscalized in 2026 would otherwise be a 2026
    receipt at the 2025 rate).
    """
    if today is None or today <= day:
        return False
    return (today - day).days > cfg.late_after_days or (day < VAT22_FROM <= today)


def _late_day(day: dt.date, today: dt.date | None, cfg: ReceiptConfig) -> dt.date | None:
    return day if is_late(day, today, cfg) else None


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
    already_refunded: Mapping[int, Any] | None = None,
    issued: IssuedSale | None = None,
    today: dt.date | None = None,
) -> list[PlannedReceipt]:
    """The settlement receipts («зачёт предоплаты», §4.5 B) of a prepaid sale delivered at *delivered_at*.

    The prepayment's lines as issued (*issued*, from the ledger; rebuilt from *sale_row* without it)
    minus what was refunded before the delivery, 1214 = 4, the ordinary rate on the delivery date,
    paid by the prepayment offset (1215 = total). A partly refunded line offsets exactly what is left
    of its prepaid amount (never more: 5.00 left of 10.01 after a 5.01 refund). Tags use the sale's id.
    """
    if sale_row.kind != KIND_SALE:
        raise InvalidPayment(
            "deliveries.payment_id", f"payment {short_repr(sale_row.id)} is not a sale ({short_repr(sale_row.kind)})",
            "nothing: fix deliveries.payment_id in the shop if the delivery names the wrong payment",
        )
    if issued is None:
        sale = _validate_sale(sale_row, cfg, prefix="original.")
        _check_full_payment_lines(sale, "original.")
        issued = IssuedSale(tuple(dataclasses.replace(ln, item=_as_prepayment(ln.item)) for ln in sale.lines),
                            sale.contact, sale.day)
    sale_day = issued.day if issued.day is not None else parse_paid_at(sale_row.paid_at, "payments.paid_at", cfg.zone)
    day = parse_paid_at(delivered_at, "deliveries.delivered_at", cfg.zone)
    if day < sale_day:
        raise InvalidPayment("deliveries.delivered_at", f"delivery dated {day} is before the payment ({sale_day})")
    already = already_refunded or {}
    lines: list[IssuedLine] = []
    for line_no, group in _by_line(issued.lines).items():
        whole = _whole(group)
        done = _refunded(already, line_no, whole)
        left_qty, left_amount = whole.quantity - done.quantity, whole.amount - done.amount
        if left_qty <= 0:
            continue
        if any(ln.item.marking_code is not None for ln in group):
            # marked units: the first ones of the line are those refunded before the delivery
            lines.extend(IssuedLine(line_no, _as_settlement(ln.item, day)) for ln in group[int(done.quantity):])
            continue
        for it in reprice(whole, left_qty, max(left_amount, Decimal(0))):
            lines.append(IssuedLine(line_no, _as_settlement(it, day)))
    if not any(ln.item.amount > 0 for ln in lines):
        raise InvalidPayment(
            "deliveries.payment_id", f"payment {sale_row.id} was refunded in full before the delivery; nothing to settle",
            "nothing",
        )
    return _plan(Stage.SETTLEMENT, sale_row.id, Operation.SALE, lines, issued.contact, cfg, PaymentType.PREPAID,
                 late_day=_late_day(day, today, cfg), tax_system=issued.tax_system)


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

_CREDIT_METHODS = (PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT, PaymentMethod.CREDIT)


def _validate_sale(p: ShopPayment, cfg: ReceiptConfig, *, prefix: str) -> _Sale:
    """Every rule of a sale row, in the order an admin would fix them."""
    day = parse_paid_at(p.paid_at, f"{prefix}payments.paid_at", cfg.zone)
    amount = _paid_now(p, prefix)
    contact, warnings = _contact(p, prefix)
    if not isinstance(p.items, (tuple, list)) or not p.items:
        raise InvalidPayment(f"{prefix}payment_items", "a payment needs at least one item")
    keyed: list[tuple[int, Item]] = []
    seen: set[int] = set()
    coded: list[tuple[str, list[bytes]]] = []
    for n, raw in enumerate(p.items):
        f = f"{prefix}payment_items[{n}]"
        if not isinstance(raw, ShopItem):
            raise InvalidPayment(f, "is not an item row")
        line_no = parse_line_no(raw.line_no, f"{f}.line_no")
        if line_no in seen:
            raise InvalidPayment(f"{f}.line_no", f"line {line_no} appears twice in the payment")
        seen.add(line_no)
        item = _validate_item(raw, cfg, day, f)
        # marked goods: one line per unit, each with its code (worker/receipts/marking.py)
        codes = mk.codes_of(raw, f)
        item = dataclasses.replace(item, payment_subject=mk.subject_for(
            item.payment_subject, raw.payment_subject is not None, codes, f))
        coded.append((f, codes))
        keyed.extend((line_no, unit) for unit in mk.units(item, codes, f))
    mk.check_unique(coded)
    items_total = sum((it.amount for _, it in keyed), Decimal(0))
    if p.discount is not None:
        d = parse_money(p.discount, f"{prefix}payments.discount", max_value=None)
        if d > items_total:
            raise InvalidPayment(f"{prefix}payments.discount", f"{d} is larger than the items' total {items_total}")
        # each spread line keeps its shop line number: refunds of discounted orders find their lines
        keyed = spread_discount_keyed(keyed, d)
    goods = sum((it.amount for _, it in keyed), Decimal(0))
    lines = _credit_split(keyed, amount, goods, p, prefix)
    return _Sale(day, contact, tuple(lines), warnings)


def _paid_now(p: ShopPayment, prefix: str) -> Decimal:
    """``payments.amount``: > 0, except 0 for a row whose every line is handed over on credit (1214 = 6)."""
    try:
        return parse_money(p.amount, f"{prefix}payments.amount", positive=True, max_value=None)
    except InvalidPayment:
        # a malformed row's items may be anything: only a real list of lines can be "all on credit"
        credit_only = isinstance(p.items, (list, tuple)) and bool(p.items) and all(
            isinstance(it, ShopItem) and it.payment_method is not None
            and alias_key(it.payment_method) in ("6", "credit") for it in p.items)
        if credit_only and isinstance(p.amount, (Decimal, int)) and not isinstance(p.amount, bool) and p.amount == 0:
            return Decimal("0.00")
        raise


def _credit_split(keyed: Sequence[tuple[int, Item]], amount: Decimal, goods: Decimal, p: ShopPayment,
                  prefix: str) -> list[IssuedLine]:
    """Which part of each line is on credit (1216), from ``payments.amount`` = the money received now.

    1214 = 6 (передача в кредит): the whole line is credit. 1214 = 5 (частичный расчёт и кредит): the
    lines are paid in part now; what the row did not receive is credit, spread over those lines in
    order. Every other line is paid in full now.
    """
    full = sum((it.amount for _, it in keyed if it.payment_method not in _CREDIT_METHODS), Decimal(0))
    partial = sum((it.amount for _, it in keyed if it.payment_method is PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT),
                  Decimal(0))
    discount = "" if p.discount is None else f" after the discount {p.discount}"
    if not partial:
        if amount != full:
            credit = goods - full
            detail = (f"items' total{discount} {goods}" if not credit else
                      f"what is paid now: {full} (items' total{discount} {goods} minus {credit} on credit, 1214 = 6)")
            raise InvalidPayment(f"{prefix}payments.amount", f"{amount} != {detail}")
    elif not full <= amount < full + partial:
        raise InvalidPayment(
            f"{prefix}payments.amount",
            f"{amount} must be the money received now: at least {full} (lines paid in full) and less than "
            f"{full + partial} (lines with 1214 = 5, частичный расчёт и кредит, are not paid in full)")
    unpaid = full + partial - amount
    out: list[IssuedLine] = []
    for line_no, it in keyed:
        if it.payment_method is PaymentMethod.CREDIT:
            out.append(IssuedLine(line_no, it, it.amount))
        elif it.payment_method is PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT:
            c = min(unpaid, it.amount)
            unpaid -= c
            out.append(IssuedLine(line_no, it, c))
        else:
            out.append(IssuedLine(line_no, it))
    if goods <= 0:
        raise InvalidPayment(f"{prefix}payments.amount", f"the receipt total must be greater than 0, got {goods}")
    return out


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
    # «оплата кредита» pays a debt: its subject is «платёж» (1212 = 10, §4.5 F) unless the row says otherwise
    default_subject = PaymentSubject.PAYMENT if method is PaymentMethod.CREDIT_PAYMENT else cfg.default_payment_subject
    subject = (
        default_subject
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
        vat = parse_alias(raw.vat, f"{f}.vat", cfg.vat_aliases, "VAT rate")
        shown = raw.vat
    check_vat(vat, shown, day, method, f"{f}.vat")
    check_vat_for_tax_system(vat, shown, cfg.tax_system, f"{f}.vat")
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


def _contact(p: ShopPayment, prefix: str) -> tuple[str, tuple[str, ...]]:
    """1008 and warnings: the e-mail if valid, else a valid phone (§1).

    One broken contact does not cost the buyer the receipt: the valid one is used and the broken one
    is reported as a warning (masked). Only when neither is usable is the row rejected.
    """
    email_field, phone_field = f"{prefix}payments.customer_email", f"{prefix}payments.customer_phone"
    email = phone = None
    problems: list[InvalidPayment] = []
    if not _blank(p.customer_email):
        try:
            email = parse_email(p.customer_email, email_field)
        except InvalidPayment as exc:
            problems.append(exc)
    if not _blank(p.customer_phone):
        try:
            phone = parse_phone(p.customer_phone, phone_field)
        except InvalidPayment as exc:
            problems.append(exc)
    contact = email or phone
    if contact is None:
        if problems:
            first = problems[0]
            also = f"; {problems[1]}" if len(problems) > 1 else "; the phone is empty"
            raise InvalidPayment(first.field, f"{first.message}{also} — an internet sale needs a valid e-mail "
                                              "or phone (1008)")
        raise InvalidPayment(
            email_field, "an internet sale needs the customer's e-mail or phone (1008), both are empty",
        )
    assert len(contact) <= CONTACT_MAX_LEN
    warnings = tuple(f"{exc}; the receipt went to {'the e-mail' if contact == email else 'the phone'} "
                     f"{mask_contact(contact)}" for exc in problems)
    return contact, warnings


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, (str, bytes)) and not value.strip())


# ---------------------------------------------------------------- refund


def _by_line(lines: Sequence[IssuedLine]) -> dict[int, list[IssuedLine]]:
    """Issued lines grouped by shop line (a discount or an earlier repricing may have split one)."""
    out: dict[int, list[IssuedLine]] = {}
    for ln in lines:
        out.setdefault(ln.line_no, []).append(ln)
    return out


def _whole(group: Sequence[IssuedLine]) -> Item:
    """One shop line as issued: its pieces' quantity and amount, the first piece's requisites."""
    qty = sum((ln.item.quantity for ln in group), Decimal(0))
    amount = sum((ln.item.amount for ln in group), Decimal(0))
    first = group[0].item
    price = first.price if len(group) == 1 else (amount / qty).quantize(KOPECK)
    return dataclasses.replace(first, price=price, quantity=qty, amount=amount)


def portion_amount(whole_qty: Decimal, whole_amount: Decimal, before: Refunded, qty: Decimal) -> Decimal:
    """The amount of refunding *qty* more of a line (cumulative rounding, §4.2).

    The cumulative refunded amount is ``round(amount × cumulative qty / qty)``, so the parts of a line
    add up to exactly its amount when it is refunded in full — the last part takes the remainder —
    and never exceed it whatever the sequence (three refunds of 0.333 kg of a 99.89 line: 33.30 + 33.29
    + 33.30).
    """
    total_qty = before.quantity + qty
    if total_qty >= whole_qty:
        return whole_amount - before.amount
    return max(round_kop(whole_amount * total_qty / whole_qty) - before.amount, Decimal(0))


def _build_refund(
    p: ShopPayment,
    cfg: ReceiptConfig,
    original: ShopPayment | None,
    already: Mapping[int, Any],
    refund_stage: str | None = None,
    settled_on: dt.date | None = None,
    issued: IssuedSale | None = None,
    today: dt.date | None = None,
) -> list[PlannedReceipt]:
    if p.refund_of is None or isinstance(p.refund_of, bool) or not isinstance(p.refund_of, int):
        raise InvalidPayment(
            "payments.refund_of", f"a refund must name the refunded sale's id, got {short_repr(p.refund_of)}"
        )
    if issued is None:
        issued = _issued_from_row(p, cfg, original, refund_stage, settled_on)
    sale_lines = _by_line(issued.lines)

    day = parse_paid_at(p.paid_at, "payments.paid_at", cfg.zone)
    if issued.day is not None and day < issued.day:
        raise InvalidPayment(
            "payments.paid_at", f"refund dated {day} is before the sale it refunds ({issued.day}); "
                                f"dates are local to {cfg.timezone}, shop times read in source.timezone"
        )
    amount = parse_money(p.amount, "payments.amount", positive=True, max_value=None)
    # 1008: the refund's own contact, else the one the sale receipt went to (§5.1 keeps 1008)
    warnings: tuple[str, ...] = ()
    if _blank(p.customer_email) and _blank(p.customer_phone):
        contact = issued.contact
    else:
        contact, warnings = _contact(p, "")
    if not isinstance(p.items, (tuple, list)) or not p.items:
        raise InvalidPayment("payment_items", "a refund needs at least one item")

    lines: list[IssuedLine] = []
    seen: set[int] = set()
    for n, raw in enumerate(p.items):
        f = f"payment_items[{n}]"
        if not isinstance(raw, ShopItem):
            raise InvalidPayment(f, "is not an item row")
        line_no = parse_line_no(raw.line_no, f"{f}.line_no")
        if line_no not in sale_lines:
            raise InvalidPayment(f"{f}.line_no", f"line {line_no} is not in the refunded sale {p.refund_of} "
                                                 f"(its lines: {', '.join(map(str, sorted(sale_lines)))})")
        if line_no in seen:
            raise InvalidPayment(f"{f}.line_no", f"line {line_no} appears twice in the refund")
        seen.add(line_no)
        whole = _whole(sale_lines[line_no])
        qty = parse_quantity(raw.quantity, f"{f}.quantity")
        if raw.price is not None and len(sale_lines[line_no]) == 1 \
                and parse_money(raw.price, f"{f}.price") != whole.price:
            raise InvalidPayment(f"{f}.price", f"{raw.price} must equal the refunded line's price as issued "
                                               f"{whole.price} (or be empty)")
        line_amount = parse_money(raw.amount, f"{f}.amount")
        done = _refunded(already, line_no, whole)
        if qty + done.quantity > whole.quantity:
            raise InvalidPayment(
                f"{f}.quantity",
                f"refunding {qty} of line {line_no} exceeds what is left: "
                f"sold {whole.quantity}, refunded {done.quantity}",
            )
        expected = portion_amount(whole.quantity, whole.amount, done, qty)
        left = whole.amount - done.amount
        last = qty + done.quantity == whole.quantity
        # the shop may round each part on its own (±1 kopeck); the cumulative amount never may pass the line
        if (last and line_amount != left) or (not last and (abs(line_amount - expected) > KOPECK
                                                            or line_amount > left)):
            rule = ("the last part of a line is what is left of it" if last else
                    "refunds of a line are rounded cumulatively and never exceed it")
            raise InvalidPayment(
                f"{f}.amount",
                f"{line_amount} for {qty} of line {line_no} should be {expected}: {rule} "
                f"(line {whole.amount} for {whole.quantity}, refunded before {done.amount} for {done.quantity})",
            )
        # name, VAT as issued (20 % stays 20 % in 2026), 1214, 1212, 2108 all mirror the sale's receipt;
        # the price is the issued one unless the exact amount needs another kopeck price
        # a line handed over on credit (1214 = 6) was not paid: its refund cancels credit (1216), no money
        # goes back. GUESS: a 1214 = 5 line is refunded as money (1081); the shop's refund row says so.
        on_credit = whole.payment_method is PaymentMethod.CREDIT
        if any(ln.item.marking_code is not None for ln in sale_lines[line_no]):
            # marked goods go back unit by unit with the codes they were sold with (2003 = 3)
            units = mk.refund_units([ln.item for ln in sale_lines[line_no]], qty, done.quantity,
                                    mk.codes_of(raw, f), f, line_amount)
            lines.extend(IssuedLine(line_no, it, it.amount if on_credit else Decimal(0)) for it in units)
            continue
        lines.extend(IssuedLine(line_no, it, it.amount if on_credit else Decimal(0))
                     for it in reprice(whole, qty, line_amount))

    total = sum((ln.item.amount for ln in lines), Decimal(0))
    if total != amount:
        raise InvalidPayment("payments.amount", f"{amount} != sum of the items' amounts {total}")
    return _plan(Stage.REFUND, p.id, Operation.SALE_REFUND, lines, contact, cfg, warnings=warnings,
                 late_day=_late_day(day, today, cfg), tax_system=issued.tax_system)


def _issued_from_row(p: ShopPayment, cfg: ReceiptConfig, original: ShopPayment | None, refund_stage: str | None,
                     settled_on: dt.date | None) -> IssuedSale:
    """The refunded sale's lines rebuilt from its shop row (no stored receipt: another system issued it)."""
    if original is None:
        # the wording is matched by Ledger.orphan_refunds: such a refund is rebuilt when its sale arrives
        raise InvalidPayment("payments.refund_of", f"the refunded sale {p.refund_of} is not in the ledger yet",
                             "nothing: the refund is built again automatically when the sale arrives; if the sale "
                             "never comes, check payments.refund_of in the shop")
    if original.id != p.refund_of:
        raise InvalidPayment(
            "payments.refund_of",
            f"is {short_repr(p.refund_of)}, but the sale given is {short_repr(original.id)}",
        )
    if original.kind != KIND_SALE:
        raise InvalidPayment(
            "payments.refund_of",
            f"payment {short_repr(p.refund_of)} is not a sale ({short_repr(original.kind)})",
        )
    sale = _validate_sale(original, cfg, prefix="original.")
    lines = list(sale.lines)
    if refund_stage == Stage.PREPAYMENT:
        lines = [dataclasses.replace(ln, item=_as_prepayment(ln.item)) for ln in lines]
    elif refund_stage == Stage.SETTLEMENT:
        lines = [dataclasses.replace(ln, item=_as_settlement(ln.item, settled_on or sale.day)) for ln in lines]
    elif refund_stage is not None:
        raise ValueError(f"refund_stage must be prepayment, settlement or None, got {refund_stage!r}")
    return IssuedSale(tuple(lines), sale.contact, sale.day)


def _refunded(already: Mapping[int, Any], line_no: int, whole: Item | None = None) -> Refunded:
    """What earlier refunds took from *line_no* (ledger data: trusted, but still never float).

    A bare quantity (older callers) gets its amount by the cumulative rule.
    """
    value = already.get(line_no)
    if value is None:
        return Refunded()
    if isinstance(value, Refunded):
        return Refunded(quantity(value.quantity), money(value.amount))
    q = quantity(value)
    if whole is None:
        return Refunded(q, Decimal(0))
    return Refunded(q, portion_amount(whole.quantity, whole.amount, Refunded(), q))


# ---------------------------------------------------------------- receipts and splitting


def _payments(lines: Sequence[IssuedLine], paid_by: PaymentType) -> tuple[Payment, ...]:
    """Payments of a receipt from its lines' payment methods: credit (1216) for what is on credit
    (1214 = 5 / 6), the rest by *paid_by* (1081 electronic, or 1215 the prepayment offset)."""
    total = sum((ln.item.amount for ln in lines), Decimal(0))
    credit = sum((ln.credit for ln in lines), Decimal(0))
    out = [Payment(paid_by, total - credit)] if total - credit > 0 else []
    if credit > 0:
        out.append(Payment(PaymentType.CREDIT, credit))
    return tuple(out)


def _plan(
    stage: str,
    source_id: int,
    op: Operation,
    lines: Sequence[IssuedLine],
    contact: str,
    cfg: ReceiptConfig,
    payment_type: PaymentType = PaymentType.ELECTRONIC,
    *,
    warnings: Sequence[str] = (),
    late_day: dt.date | None = None,
    tax_system: TaxSystem | None = None,
) -> list[PlannedReceipt]:
    chunks = mk.cut_by_codes(_chunks(list(lines), cfg.max_items_per_receipt))
    notes = list(warnings)
    correction = None
    if late_day is not None:
        # 54-FZ art. 4.3: a settlement fiscalized after its day is a self-made correction (1173 = 0)
        # dated with the settlement (1178); its lines already carry the rate of that date
        correction = Correction(self_made=True, corrected_date=late_day)
        notes.append(f"late: settled on {late_day} ({cfg.timezone}), more than {cfg.late_after_days} days before "
                     "it was planned or across a VAT rate change; issued as a correction receipt "
                     "(1173 = 0, 1178 = that date)")
    out: list[PlannedReceipt] = []
    for part, chunk in enumerate(chunks, start=1):
        try:
            tag = make_tag(source_id, stage, part)
        except ValueError as exc:
            raise InvalidPayment("payments.id", str(exc)) from None
        receipt = Receipt(
            operation=op,
            tax_system=tax_system or cfg.tax_system,
            items=tuple(ln.item for ln in chunk),
            payments=_payments(chunk, payment_type),
            tag=tag,
            customer_contact=contact,
            settlement_place=cfg.settlement_place,
            internet=True,
            company_email=cfg.company_email,
            cashier=cfg.cashier,
            cashier_inn=cfg.cashier_inn,
            correction=correction,
        )
        out.append(PlannedReceipt(stage=stage, part=part, receipt=receipt,
                                  lines=tuple(ln.line_no for ln in chunk), warnings=tuple(notes)))
    return out


def _chunks(items: list[IssuedLine], size: int) -> list[list[IssuedLine]]:
    """Split into receipts of ≤ *size* lines, each with a positive total (a receipt of 0 is refused).

    Zero-priced lines (gifts) are the only way a part could total 0; such a part swaps its first
    line for a paid line from a part that has two or more.
    """
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    for chunk in chunks:
        if any(it.item.amount > 0 for it in chunk):
            continue
        donor = next((c for c in chunks if sum(1 for it in c if it.item.amount > 0) >= 2), None)
        if donor is None:
            raise InvalidPayment(
                "payment_items",
                f"too many zero-priced lines to split into receipts of at most {size} lines "
                "with a positive total",
            )
        k = next(i for i, it in enumerate(donor) if it.item.amount > 0)
        donor[k], chunk[0] = chunk[0], donor[k]
    return chunks
