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
#: a :class:`FrameReader`'s receive buffer, bytes. Every answer the worker gets (status, a document,
#: shift totals) is under 2 KiB; a longer body is read into its own buffer. Not 64 KiB: a farm keeps
#: one reader per register, and 200 × 64 KiB showed as +12 MB of the worker's peak RSS (96 → 110 MB).
RECV_BUFFER_BYTES = 8 * 1024

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


#: one encoder for every frame (``json.dumps`` with options builds a new one per call); it keeps only
#: its options, so threads may share it
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(message: dict[str, Any]) -> bytes:
    """One frame for *message* (amounts must already be strings: see :func:`amount`)."""
    body = _ENCODER.encode(message).encode("utf-8")
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
    return decode_body(body)


def decode_body(body: bytes | bytearray | memoryview, decoder: json.JSONDecoder | None = None) -> dict[str, Any]:
    """The JSON object of one frame body; FrameError if it is not UTF-8 or not one JSON object.

    *decoder*: a ``JSONDecoder(parse_float=Decimal)`` to reuse (a connection keeps its own: the C
    scanner's key memo is per decoder, so one decoder is not shared between threads)."""
    try:
        text = str(body, "utf-8")   # straight from a buffer view: no intermediate bytes copy
    except UnicodeDecodeError as exc:
        raise FrameError(f"frame body is not UTF-8: {exc}") from exc
    try:
        # without a decoder exactly json.loads (the emulator's error texts stay as they were)
        msg = json.loads(text, parse_float=Decimal) if decoder is None else decoder.decode(text)
    except ValueError as exc:
        raise FrameError(f"frame body is not JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise FrameError("frame body is not a JSON object")
    return msg


class FrameReader:
    """Frames out of one connection's byte stream, through a receive buffer kept between frames.

    ``read_frame`` on a bare ``recv`` costs two reads per frame (the 4-byte length, then the body),
    each a poll plus a recv on a socket with a timeout. Here one ``recv_into`` takes whatever has
    arrived, up to the buffer's size, so a whole answer usually costs one read; bytes past the frame
    (the next frame, or part of it) stay in the buffer for the next call. A body longer than the
    buffer gets its own bytearray, read to exactly its end.

    *recv_into* reads into the given view (at most its length) and returns the count, 0 at EOF; it
    raises TimeoutError (``socket.timeout``) when the peer stays silent. Errors as :func:`read_frame`:
    :class:`PeerClosed` (``mid_frame`` once any byte of the frame arrived), a timeout before the header
    is complete propagates as is, one after it becomes :class:`FrameTimeout`, a bad length or body
    is a :class:`FrameError`. Not thread-safe: one reader per connection, used by one thread at a time.
    """

    def __init__(self, recv_into: Callable[[memoryview], int], *, max_bytes: int = MAX_FRAME_BYTES,
                 buffer_bytes: int = RECV_BUFFER_BYTES) -> None:
        if buffer_bytes < HEADER.size:
            raise ValueError(f"buffer_bytes must be at least {HEADER.size}")
        self._recv_into = recv_into
        self._max = max_bytes
        self._buf = bytearray(buffer_bytes)
        self._view = memoryview(self._buf)
        self._start = 0   # first unread byte
        self._end = 0     # one past the last received byte
        self._decoder = json.JSONDecoder(parse_float=Decimal)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return self._end - self._start

    def read_frame(self) -> dict[str, Any]:
        """The next frame's JSON object (see the class docstring for the errors)."""
        if self._end - self._start < HEADER.size:
            self._fill_header()
        (length,) = HEADER.unpack_from(self._buf, self._start)
        if length == 0 or length > self._max:
            raise FrameError(f"frame length {length} outside 1..{self._max}")
        begin = self._start + HEADER.size
        stop = begin + length
        if stop > self._end:
            try:
                if stop - self._start > len(self._buf):
                    return decode_body(self._read_large(begin, length), self._decoder)
                begin, stop = self._fill_body(begin, stop)
            except TimeoutError as exc:
                raise FrameTimeout(f"peer stopped after the header of a {length}-byte frame") from exc
        # the body is decoded before the buffer is touched again, so a view into it is enough
        msg = decode_body(self._view[begin:stop], self._decoder)
        if stop == self._end:
            self._start = self._end = 0   # the usual case: the buffer is empty, the next read starts at 0
        else:
            self._start = stop
        return msg

    def _fill_header(self) -> None:
        if self._start + HEADER.size > len(self._buf):
            self._compact()
        while self._end - self._start < HEADER.size:
            self._receive(mid_frame=self._end > self._start)

    def _fill_body(self, begin: int, stop: int) -> tuple[int, int]:
        """Receive until the frame [start, stop) is whole (it fits the buffer); its body's new bounds."""
        if stop > len(self._buf):
            shift = self._start
            self._compact()
            begin, stop = begin - shift, stop - shift
        while self._end < stop:
            self._receive(mid_frame=True)
        return begin, stop

    def _read_large(self, begin: int, length: int) -> bytearray:
        """A body longer than the buffer: its own bytearray, received to exactly its end (so nothing of
        the next frame is taken); the buffer is left empty."""
        body = bytearray(length)
        have = self._end - begin
        body[:have] = self._view[begin:self._end]
        self._start = self._end = 0
        view = memoryview(body)
        while have < length:
            n = self._recv_into(view[have:])
            if not n:
                raise PeerClosed("peer closed the connection in the middle of a frame", mid_frame=True)
            have += n
        return body

    def _receive(self, *, mid_frame: bool) -> None:
        n = self._recv_into(self._view[self._end:])
        if not n:
            raise PeerClosed("peer closed the connection" + (" in the middle of a frame" if mid_frame else ""),
                             mid_frame=mid_frame)
        self._end += n

    def _compact(self) -> None:
        """Move the unread bytes to the front (memoryview assignment is a memmove: overlap is fine)."""
        n = self._end - self._start
        self._view[:n] = self._view[self._start:self._end]
        self._start, self._end = 0, n


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
