"""The buyer's contact (1008) of a payment row: the e-mail if valid, else a valid phone (§1)."""

from __future__ import annotations

from typing import Any

from kkt_drivers.receipt import CONTACT_MAX_LEN
from worker.receipts.rules import InvalidPayment, mask_contact, parse_email, parse_phone
from worker.shop.rows import ShopPayment


def contact_of(p: ShopPayment, prefix: str) -> tuple[str, tuple[str, ...]]:
    """1008 and warnings: the e-mail if valid, else a valid phone (§1).

    One broken contact does not cost the buyer the receipt: the valid one is used and the broken one
    is reported as a warning (masked). Only when neither is usable is the row rejected.
    """
    email_field, phone_field = f"{prefix}payments.customer_email", f"{prefix}payments.customer_phone"
    email = phone = None
    problems: list[InvalidPayment] = []
    if not blank(p.customer_email):
        try:
            email = parse_email(p.customer_email, email_field)
        except InvalidPayment as exc:
            problems.append(exc)
    if not blank(p.customer_phone):
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


def blank(value: Any) -> bool:
    """Whether a contact field is empty (None, or only spaces)."""
    return value is None or (isinstance(value, (str, bytes)) and not value.strip())

