"""Receipt lines → the planned receipts of one stage: parts, payments, tags, late → correction.

* more than ``max_items_per_receipt`` lines (or 128 marking codes) → several receipts, each
  balanced, each with its tag (1192);
* payments from the lines: 1216 for what is on credit, the rest by 1081 (or 1215 for a settlement);
* a payment planned late (:func:`is_late`) is a self-made correction (1173 = 0, 1178 = its date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from kkt_drivers.receipt import Correction, Operation, Payment, PaymentType, Receipt, TaxSystem
from worker.receipts import marking as mk
from worker.receipts.config import PlannedReceipt, ReceiptConfig, make_tag
from worker.receipts.issued import IssuedLine
from worker.receipts.rules import VAT22_FROM, InvalidPayment


def is_late(day: dt.date, today: dt.date | None, cfg: ReceiptConfig) -> bool:
    """Whether a payment of local date *day* planned on *today* must be a correction receipt.

    Late when more than ``cfg.late_after_days`` days passed, or — whatever the threshold — when the
    general VAT rate changed in between (a 2025 payment fiscalized in 2026 would otherwise be a 2026
    receipt at the 2025 rate).
    """
    if today is None or today <= day:
        return False
    return (today - day).days > cfg.late_after_days or (day < VAT22_FROM <= today)


def late_day(day: dt.date, today: dt.date | None, cfg: ReceiptConfig) -> dt.date | None:
    """*day* if a payment of that date planned on *today* is late (:func:`is_late`), else None."""
    return day if is_late(day, today, cfg) else None



def _payments(lines: Sequence[IssuedLine], paid_by: PaymentType) -> tuple[Payment, ...]:
    """Payments of a receipt from its lines' payment methods: credit (1216) for what is on credit
    (1214 = 5 / 6), the rest by *paid_by* (1081 electronic, or 1215 the prepayment offset)."""
    total = sum((ln.item.amount for ln in lines), Decimal(0))
    credit = sum((ln.credit for ln in lines), Decimal(0))
    out = [Payment(paid_by, total - credit)] if total - credit > 0 else []
    if credit > 0:
        out.append(Payment(PaymentType.CREDIT, credit))
    return tuple(out)


def plan_receipts(
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
    """*lines* as the receipts of one stage: cut into parts (``max_items_per_receipt``, ≤ 128 codes),
    each balanced and tagged (1192 = ``make_tag(source_id, stage, part)``); a correction when *late_day*."""
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
