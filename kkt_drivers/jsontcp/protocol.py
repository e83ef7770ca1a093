"""Length-prefixed JSON over TCP (see ``PROTOCOL.md`` beside this file): framing and codecs, pure.

A frame is a 4-byte big-endian unsigned length N followed by N bytes of UTF-8 JSON (one object).
Reading works on any ``recv``-like callable so that the driver and the emulator share it and
unit tests can feed it bytes.
"""
from __future__ import annotations

import datetime as dt
import json
import struct
from decimal import Decimal
from typing import Any, Callable

from kkt_drivers.receipt import (
    DocumentKind, FiscalDocument, Item, MeasureUnit, Operation, Payment, PaymentMethod, PaymentSubject,
    PaymentType, Vat, money, quantity,
)

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">I")
#: the largest body either side accepts, bytes (a 100-item receipt is ~30 KiB)
MAX_FRAME_BYTES = 1 << 20

#: error classes on the wire (``error.class``)
CLASS_PROTOCOL = "protocol"      # bad frame or message: the session ends
CLASS_AUTH = "auth"              # login refused / no session: the session ends
CLASS_DEVICE = "device"          # the register cannot work now (``error.condition`` says why)
CLASS_REJECTED = "rejected"      # the data is refused (or the command unknown); repeating cannot help

COMMANDS = ("login", "logout", "status", "open_shift", "close_shift", "x_report", "open_receipt", "add_item",
            "add_requisite", "close_receipt", "cancel_receipt", "last_document", "document", "shift_totals")


class FrameError(Exception):
    """A frame that breaks the framing rules; the session must end."""


class PeerClosed(FrameError):
    """The peer closed the connection (cleanly between frames, or in the middle of one)."""

    def __init__(self, message: str, *, mid_frame: bool) -> None:
        super().__init__(message)
        self.mid_frame = mid_frame


def encode(message: dict[str, Any]) -> bytes:
    """One frame for *message* (amounts must already be strings: see :func:`amount`)."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_FRAME_BYTES:
        raise FrameError(f"message of {len(body)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    return HEADER.pack(len(body)) + body


def _read_exact(recv: Callable[[int], bytes], n: int, *, started: bool) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = recv(n - len(buf))
        if not chunk:
            mid = started or bool(buf)
            raise PeerClosed("peer closed the connection" + (" in the middle of a frame" if mid else ""),
                             mid_frame=mid)
        buf += chunk
    return bytes(buf)


class FrameTimeout(FrameError):
    """The peer stopped in the middle of a frame."""


def read_frame(recv: Callable[[int], bytes], max_bytes: int = MAX_FRAME_BYTES,
               on_header: Callable[[], None] | None = None) -> dict[str, Any]:
    """Read one frame and decode its JSON object; FrameError for any violation.

    *recv* raises ``socket.timeout`` (an OSError) when the peer stalls: before a frame that propagates
    (the caller decides what idleness means), inside the body it becomes :class:`FrameTimeout`.
    *on_header* runs once the length is known (e.g. to shorten the socket timeout for the body).
    """
    (length,) = HEADER.unpack(_read_exact(recv, HEADER.size, started=False))
    if length == 0 or length > max_bytes:
        raise FrameError(f"frame length {length} outside 1..{max_bytes}")
    if on_header is not None:
        on_header()
    try:
        body = _read_exact(recv, length, started=True)
    except TimeoutError as exc:
        raise FrameTimeout(f"peer stopped after the header of a {length}-byte frame") from exc
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError(f"frame body is not UTF-8: {exc}") from exc
    try:
        msg = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise FrameError(f"frame body is not JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise FrameError("frame body is not a JSON object")
    return msg


def amount(value: Decimal) -> str:
    """Money on the wire: a decimal string with two places ("599.97")."""
    return str(money(value))


def item_to_wire(item: Item) -> dict[str, Any]:
    return {"name": item.name, "price": amount(item.price), "quantity": str(quantity(item.quantity)),
            "amount": amount(item.amount), "vat": item.vat.value, "payment_method": int(item.payment_method),
            "payment_subject": int(item.payment_subject), "measure_unit": int(item.measure_unit)}


def item_from_wire(obj: dict[str, Any]) -> Item:
    """An :class:`Item` from its wire form; KeyError/ValueError for a bad one."""
    return Item(name=str(obj["name"]), price=money(str(obj["price"])), quantity=quantity(str(obj["quantity"])),
                amount=money(str(obj["amount"])), vat=Vat(obj["vat"]),
                payment_method=PaymentMethod(int(obj.get("payment_method", 4))),
                payment_subject=PaymentSubject(int(obj.get("payment_subject", 1))),
                measure_unit=MeasureUnit(int(obj.get("measure_unit", 0))))


def payment_to_wire(p: Payment) -> dict[str, Any]:
    return {"type": p.type.value, "amount": amount(p.amount)}


def payment_from_wire(obj: dict[str, Any]) -> Payment:
    return Payment(PaymentType(obj["type"]), money(str(obj["amount"])))


def document_to_wire(doc: dict[str, Any]) -> dict[str, Any]:
    """A register journal record as the ``document`` / ``last_document`` result."""
    return {"number": doc["fd"], "fiscal_sign": doc["fp"], "fn_serial": doc["fn"], "kind": doc["kind"],
            "datetime": doc["dt"], "shift": doc["shift"], "receipt_number": doc.get("receipt_no"),
            "operation": doc.get("operation"), "total": doc.get("total"), "tag": doc.get("tag")}


def document_from_wire(obj: dict[str, Any]) -> FiscalDocument:
    """The :class:`FiscalDocument` of a ``document`` result; KeyError/ValueError for a bad one."""
    return FiscalDocument(
        fd_number=int(obj["number"]), fiscal_sign=int(obj["fiscal_sign"]), fn_serial=str(obj["fn_serial"]),
        kind=DocumentKind(obj["kind"]), issued_at=dt.datetime.fromisoformat(obj["datetime"]),
        shift_number=int(obj["shift"]),
        receipt_number=int(obj["receipt_number"]) if obj.get("receipt_number") is not None else None,
        operation=Operation(int(obj["operation"])) if obj.get("operation") else None,
        total=money(str(obj["total"])) if obj.get("total") is not None else None, tag=obj.get("tag"))
