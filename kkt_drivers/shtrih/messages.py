"""Shtrih-M command payloads: encoders and decoders for each command the driver and emulator use.

Pure functions over bytes (after the command echo / after the password). Layouts follow the
vendor's protocol v1.16 (§5 of the project's reference) and were cross-checked against real
device traces and pyshtrih's decoders (see ``tests/shtrih/test_protocol.py``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from kkt_drivers.shtrih.protocol import (
    PAYMENT_SLOT_COUNT, TEXT_ENCODING, UNSPECIFIED5, FrameError, fn_datetime, kop_to_money, money5,
    qty6, read_fn_datetime, read_text, read_uint, text, uint,
)

FF46_NAME_MAX = 128
FF45_TEXT_MAX = 64


# -- FF46 operation V2 ----------------------------------------------------------------------
@dataclass(frozen=True)
class OperationV2:
    """One FF46 item line."""

    operation: int          # 1054
    quantity: Decimal
    price: Decimal
    amount: Decimal | None  # None: the register computes price x quantity
    tax: int                # the vendor's tax byte (see codes.tax_byte)
    department: int
    payment_method: int     # 1214
    payment_subject: int    # 1212
    name: str


def encode_operation_v2(op: OperationV2) -> bytes:
    """FF46 data after the password."""
    return (bytes([op.operation]) + qty6(op.quantity) + money5(op.price)
            + (UNSPECIFIED5 if op.amount is None else money5(op.amount)) + UNSPECIFIED5
            + bytes([op.tax, op.department, op.payment_method, op.payment_subject])
            + text(op.name, limit=FF46_NAME_MAX))


def decode_operation_v2(data: bytes) -> OperationV2:
    """Inverse of :func:`encode_operation_v2` (FrameError when too short)."""
    if len(data) < 26:
        raise FrameError(f"FF46 data too short ({len(data)} bytes)")
    amount_raw = data[12:17]
    return OperationV2(
        operation=data[0], quantity=Decimal(read_uint(data, 1, 6)) / 1_000_000,
        price=kop_to_money(read_uint(data, 7, 5)),
        amount=None if amount_raw == UNSPECIFIED5 else kop_to_money(read_uint(data, 12, 5)),
        tax=data[22], department=data[23], payment_method=data[24], payment_subject=data[25],
        name=read_text(data[26:], TEXT_ENCODING))


# -- FF45 close receipt (extended, variant 2) --------------------------------------------------
@dataclass(frozen=True)
class CloseReceipt:
    """FF45 request: payments by slot (kopecks), rounding, tax system bit, text."""

    payments: tuple[int, ...]   # 16 slots, kopecks
    tax_system: int
    rounding: int = 0
    taxes: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
    text: str = ""


def encode_close_receipt(c: CloseReceipt) -> bytes:
    """FF45 data after the password (182 bytes with command, password and 64 bytes of text)."""
    if len(c.payments) != PAYMENT_SLOT_COUNT:
        raise ValueError("FF45 needs 16 payment slots")
    return (b"".join(uint(p, 5) for p in c.payments) + bytes([c.rounding])
            + b"".join(uint(t, 5) for t in c.taxes) + bytes([c.tax_system])
            + text(c.text, limit=FF45_TEXT_MAX))


def decode_close_receipt(data: bytes) -> CloseReceipt:
    """Inverse of :func:`encode_close_receipt`."""
    if len(data) < 16 * 5 + 1 + 30 + 1:
        raise FrameError(f"FF45 data too short ({len(data)} bytes)")
    pays = tuple(read_uint(data, 5 * i, 5) for i in range(16))
    taxes = tuple(read_uint(data, 81 + 5 * i, 5) for i in range(6))
    return CloseReceipt(payments=pays, rounding=data[80], taxes=taxes, tax_system=data[111],
                        text=read_text(data[112:]))


@dataclass(frozen=True)
class CloseAnswer:
    """FF45 answer: change, FD number, fiscal sign."""

    change: Decimal
    fd_number: int
    fiscal_sign: int


def encode_close_answer(a: CloseAnswer) -> bytes:
    """FF45 answer data after the error byte."""
    return money5(a.change) + uint(a.fd_number, 4) + uint(a.fiscal_sign, 4)


def decode_close_answer(data: bytes) -> CloseAnswer:
    """Decode the FF45 answer (an optional trailing DATE_TIME is ignored)."""
    return CloseAnswer(kop_to_money(read_uint(data, 0, 5)), read_uint(data, 5, 4), read_uint(data, 9, 4))


# -- 10 short status ------------------------------------------------------------------------
#: 0x10/0x11 flag bits (Appendix 4): receipt roll present, cover open
FLAG_RECEIPT_ROLL = 1 << 1
FLAG_COVER_OPEN = 1 << 10


@dataclass(frozen=True)
class ShortStatus:
    """0x10 answer."""

    operator: int
    flags: int
    mode: int
    submode: int
    operations: int = 0


def encode_short_status(s: ShortStatus) -> bytes:
    """0x10 answer data after the error byte (15 bytes in all with the error)."""
    return (bytes([s.operator]) + uint(s.flags, 2) + bytes([s.mode, s.submode, s.operations & 0xFF])
            + bytes([0x9F, 0xE5, 0, 0, s.operations >> 8]) + b"\0\0\0")


def decode_short_status(data: bytes) -> ShortStatus:
    """Decode the 0x10 answer (the operations count's high byte sits at offset 10)."""
    if len(data) < 11:
        raise FrameError(f"0x10 answer too short ({len(data)} bytes)")
    return ShortStatus(operator=data[0], flags=read_uint(data, 1, 2), mode=data[3], submode=data[4],
                       operations=data[5] | (data[10] << 8))


# -- 11 full status -------------------------------------------------------------------------
@dataclass(frozen=True)
class FullStatus:
    """The 0x11 fields the driver uses."""

    operator: int
    flags: int
    mode: int
    submode: int
    now: dt.datetime
    serial: int
    last_closed_shift: int
    inn: int = 0


_FW_DATE = dt.date(2024, 3, 1)


def _dmy(d: dt.date) -> bytes:
    return bytes([d.day, d.month, d.year % 100])


def encode_full_status(s: FullStatus) -> bytes:
    """0x11 answer after the error byte: 46 + 4 bytes (reserved, serial high word)."""
    return (bytes([s.operator]) + b"10" + uint(1, 2) + _dmy(_FW_DATE) + bytes([1]) + uint(0, 2)
            + uint(s.flags, 2) + bytes([s.mode, s.submode, 128])
            # FM version/build/date are reserved on FN models but must hold a valid date
            + b"10" + uint(1, 2) + _dmy(_FW_DATE)
            + _dmy(s.now.date()) + bytes([s.now.hour, s.now.minute, s.now.second])
            + bytes([0]) + uint(s.serial & 0xFFFFFFFF, 4) + uint(s.last_closed_shift, 2)
            + uint(0, 2) + bytes([1, 0]) + uint(s.inn, 6) + b"\0\0" + uint(s.serial >> 32, 2))


def decode_full_status(data: bytes) -> FullStatus:
    """Decode a 0x11 answer (46 bytes after the error, optionally 50 with the serial high word)."""
    if len(data) < 46:
        raise FrameError(f"0x11 answer too short ({len(data)} bytes)")
    d, m, y = data[23:26]
    hh, mi, ss = data[26:29]
    serial = read_uint(data, 30, 4) | (read_uint(data, 48, 2) << 32 if len(data) >= 50 else 0)
    return FullStatus(operator=data[0], flags=read_uint(data, 11, 2), mode=data[13], submode=data[14],
                      now=dt.datetime(2000 + y, m, d, hh, mi, ss), serial=serial,
                      last_closed_shift=read_uint(data, 34, 2), inn=read_uint(data, 40, 6))


# -- FF01 FN status -------------------------------------------------------------------------
@dataclass(frozen=True)
class FnStatus:
    """FF01 answer."""

    phase: int
    current_document: int
    document_data: int
    shift_open: bool
    warnings: int
    now: dt.datetime
    fn_serial: str
    last_fd: int


def encode_fn_status(s: FnStatus) -> bytes:
    """FF01 answer data after the error byte (30 bytes)."""
    return (bytes([s.phase, s.current_document, s.document_data, int(s.shift_open), s.warnings])
            + fn_datetime(s.now) + s.fn_serial.encode("ascii")[:16].ljust(16, b"0") + uint(s.last_fd, 4))


def decode_fn_status(data: bytes) -> FnStatus:
    """Decode the FF01 answer."""
    if len(data) < 30:
        raise FrameError(f"FF01 answer too short ({len(data)} bytes)")
    return FnStatus(phase=data[0], current_document=data[1], document_data=data[2],
                    shift_open=bool(data[3]), warnings=data[4], now=read_fn_datetime(data, 5),
                    fn_serial=data[10:26].decode("ascii", errors="replace"), last_fd=read_uint(data, 26, 4))


# -- FF0A find document ---------------------------------------------------------------------
@dataclass(frozen=True)
class FoundDocument:
    """FF0A answer: the common header plus the receipt or shift fields."""

    doc_type: int
    ofd_ack: bool
    when: dt.datetime
    fd_number: int
    fiscal_sign: int
    operation: int | None = None
    total: Decimal | None = None
    shift_number: int | None = None


def encode_found_document(d: FoundDocument) -> bytes:
    """FF0A answer data after the error byte."""
    out = (bytes([d.doc_type, int(d.ofd_ack)]) + fn_datetime(d.when) + uint(d.fd_number, 4)
           + uint(d.fiscal_sign, 4))
    if d.operation is not None and d.total is not None:
        out += bytes([d.operation]) + money5(d.total)
    elif d.shift_number is not None:
        out += uint(d.shift_number, 2)
    return out


def decode_found_document(data: bytes, receipt_types: tuple[int, ...] = (3, 31, 4, 41),
                          shift_types: tuple[int, ...] = (2, 5)) -> FoundDocument:
    """Decode the FF0A answer by document type."""
    if len(data) < 15:
        raise FrameError(f"FF0A answer too short ({len(data)} bytes)")
    common = dict(doc_type=data[0], ofd_ack=bool(data[1]), when=read_fn_datetime(data, 2),
                  fd_number=read_uint(data, 7, 4), fiscal_sign=read_uint(data, 11, 4))
    if data[0] in receipt_types and len(data) >= 21:
        return FoundDocument(**common, operation=data[15], total=kop_to_money(read_uint(data, 16, 5)))
    if data[0] in shift_types and len(data) >= 17:
        return FoundDocument(**common, shift_number=read_uint(data, 15, 2))
    return FoundDocument(**common)


# -- FF40 shift parameters, FF39 OFD status, FC device type -------------------------------------
def encode_shift_params(shift_open: bool, shift_number: int, receipt_number: int) -> bytes:
    """FF40 answer data after the error byte."""
    return bytes([int(shift_open)]) + uint(shift_number, 2) + uint(receipt_number, 2)


def decode_shift_params(data: bytes) -> tuple[bool, int, int]:
    """``(shift open, shift number, receipt number)`` from an FF40 answer."""
    return bool(read_uint(data, 0, 1)), read_uint(data, 1, 2), read_uint(data, 3, 2)


def encode_ofd_status(unsent: int, first_fd: int, first_when: dt.datetime) -> bytes:
    """FF39 answer data after the error byte."""
    return bytes([0, 0]) + uint(unsent, 2) + uint(first_fd, 4) + fn_datetime(first_when)


def decode_ofd_unsent(data: bytes) -> int:
    """The count of documents not yet sent to the OFD from an FF39 answer."""
    return read_uint(data, 2, 2)


def encode_device_type(name: str, model: int = 250) -> bytes:
    """FC answer data after the error byte (ШТРИХ-М-01Ф by default: protocol 1.14, model 250)."""
    return bytes([0, 0, 1, 14, model, 0]) + text(name)


def decode_device_type(data: bytes) -> tuple[int, str]:
    """``(model number, name)`` from an FC answer."""
    return read_uint(data, 4, 1), read_text(data[6:])


# -- 1F / 1E tables -------------------------------------------------------------------------
def encode_table_address(table: int, row: int, field: int) -> bytes:
    """1F request data after the password (1E adds the value): table(1), row(2), field(1)."""
    return bytes([table]) + uint(row, 2) + bytes([field])


def decode_table_address(data: bytes) -> tuple[int, int, int, bytes]:
    """``(table, row, field, rest)`` of a 1F/1E request after the password."""
    if len(data) < 4:
        raise FrameError(f"table request too short ({len(data)} bytes)")
    return data[0], read_uint(data, 1, 2), data[3], data[4:]


# -- FF03 FN validity -----------------------------------------------------------------------
@dataclass(frozen=True)
class FnExpiry:
    """FF03 answer: the FN's validity date and re-registrations left / done."""

    valid_until: dt.date
    registrations_left: int = 0
    registrations_done: int = 0


def encode_fn_expiry(e: FnExpiry) -> bytes:
    """FF03 answer data after the error byte: YY MM DD, left, done (javapos ``FSReadExpDate``)."""
    d = e.valid_until
    return bytes([d.year % 100, d.month, d.day, e.registrations_left, e.registrations_done])


def decode_fn_expiry(data: bytes) -> FnExpiry:
    """Decode an FF03 answer (the two counters are optional on older firmware)."""
    if len(data) < 3:
        raise FrameError(f"FF03 answer too short ({len(data)} bytes)")
    try:
        when = dt.date(2000 + data[0], data[1], data[2])
    except ValueError as exc:
        raise FrameError(f"FF03 date {data[:3].hex()} is not a date") from exc
    return FnExpiry(when, data[3] if len(data) > 3 else 0, data[4] if len(data) > 4 else 0)
