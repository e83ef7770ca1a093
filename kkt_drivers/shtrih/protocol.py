"""Shtrih-M binary protocol, the pure part: frames, fields, command payloads.

Frame: ``STX LEN CMD[1|2] DATA… LRC`` — LEN counts command + data bytes, LRC is the XOR of LEN
and every byte after it. Two-byte commands start with 0xFF on the wire. Answers echo the
command, then an error byte, then data only when the error is 0. Numbers are little-endian;
money is in kopecks; FF46 quantities carry 6 decimals. Text in print/fiscal fields is WIN-1251,
TLV values for the FN are CP866 (both per the vendor's protocol v1.16).

Nothing here does I/O: the driver and the emulator server feed bytes in and out.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

STX = 0x02
ENQ = 0x05
ACK = 0x06
NAK = 0x15
#: sent by TCP/RNDIS firmware after the host ACKs an answer; hosts skip it
FILLER = 0xFF

MAX_LEN = 255
TEXT_ENCODING = "cp1251"
TLV_ENCODING = "cp866"
#: FF46 "amount" / "tax amount" meaning "let the register compute it"
UNSPECIFIED5 = b"\xff" * 5

# -- command codes --------------------------------------------------------------------------
WRITE_TABLE = 0x1E
READ_TABLE = 0x1F
SHORT_STATUS = 0x10
FULL_STATUS = 0x11
X_REPORT = 0x40
Z_REPORT = 0x41
CANCEL_RECEIPT = 0x88
OPEN_RECEIPT = 0x8D
CONTINUE_PRINT = 0xB0
OPEN_SHIFT = 0xE0
DEVICE_TYPE = 0xFC
FN_STATUS = 0xFF01
FN_EXPIRY = 0xFF03
FN_FIND_DOCUMENT = 0xFF0A
FN_WRITE_TLV = 0xFF0C
FN_BEGIN_CORRECTION = 0xFF35
FN_OFD_STATUS = 0xFF39
FN_READ_DOC_BEGIN = 0xFF3A
FN_READ_DOC_BLOCK = 0xFF3B
FN_SHIFT_PARAMS = 0xFF40
FN_BEGIN_OPEN_SHIFT = 0xFF41
FN_BEGIN_CLOSE_SHIFT = 0xFF42
FN_CLOSE_RECEIPT = 0xFF45
FN_OPERATION = 0xFF46
FN_WRITE_OPERATION_TLV = 0xFF4D

#: 8D receipt types by FFD 1054 operation (8D numbers them differently from FF46)
RECEIPT_TYPE_BY_OPERATION = {1: 0, 2: 2, 3: 1, 4: 3}
OPERATION_BY_RECEIPT_TYPE = {v: k for k, v in RECEIPT_TYPE_BY_OPERATION.items()}
#: 8D type bit of an FFD 1.2 correction receipt: 0x80 | type (javapos SMFP_RECTYPE_CORRECTION_*)
CORRECTION_RECEIPT_FLAG = 0x80

#: FF45 payment slots (1-based in the spec): cash, electronic, prepayment, credit, counter-provision
PAYMENT_SLOTS = {"cash": 0, "electronic": 1, "prepaid": 13, "credit": 14, "other": 15}
PAYMENT_SLOT_COUNT = 16

#: FFD document types in FF0A answers
DOC_OPEN_SHIFT = 2
DOC_RECEIPT = 3
DOC_CORRECTION = 31
DOC_CLOSE_SHIFT = 5


class FrameError(ValueError):
    """Bytes that are not a valid frame (bad length, bad LRC)."""


# -- frames ---------------------------------------------------------------------------------
def lrc(data: bytes) -> int:
    """XOR of every byte of *data* (LEN and payload)."""
    x = 0
    for b in data:
        x ^= b
    return x


def command_bytes(cmd: int) -> bytes:
    """The command code as sent: one byte, or ``FF xx`` for two-byte commands."""
    return bytes([cmd]) if cmd <= 0xFF else cmd.to_bytes(2, "big")


def encode_frame(payload: bytes) -> bytes:
    """``STX LEN payload LRC`` for a payload of 1..255 bytes."""
    if not 1 <= len(payload) <= MAX_LEN:
        raise FrameError(f"payload length {len(payload)} outside 1..{MAX_LEN}")
    body = bytes([len(payload)]) + payload
    return bytes([STX]) + body + bytes([lrc(body)])


def decode_frame(frame: bytes) -> bytes:
    """The payload of a complete frame; FrameError when it is malformed."""
    if len(frame) < 3 or frame[0] != STX:
        raise FrameError("frame does not start with STX")
    n = frame[1]
    if len(frame) != n + 3:
        raise FrameError(f"frame length {len(frame)} does not match LEN {n}")
    if lrc(frame[1:-1]) != frame[-1]:
        raise FrameError(f"bad LRC {frame[-1]:02X}, expected {lrc(frame[1:-1]):02X}")
    return frame[2:-1]


def encode_request(cmd: int, data: bytes = b"", password: int | None = None) -> bytes:
    """A request frame: command, optional 4-byte password, data."""
    pw = b"" if password is None else u32(password)
    return encode_frame(command_bytes(cmd) + pw + data)


def split_command(payload: bytes) -> tuple[int, bytes]:
    """``(command, rest)`` of a request or answer payload."""
    if not payload:
        raise FrameError("empty payload")
    if payload[0] == 0xFF:
        if len(payload) < 2:
            raise FrameError("two-byte command cut short")
        return 0xFF00 | payload[1], payload[2:]
    return payload[0], payload[1:]


def encode_answer(cmd: int, error: int, data: bytes = b"") -> bytes:
    """An answer frame; data is dropped when *error* is not 0, as the device does."""
    return encode_frame(command_bytes(cmd) + bytes([error]) + (data if error == 0 else b""))


@dataclass(frozen=True)
class Answer:
    """A decoded answer: the echoed command, the error byte, the data after it."""

    cmd: int
    error: int
    data: bytes


def parse_answer(payload: bytes) -> Answer:
    """Split an answer payload. A two-byte command echoed as ``FF <err>`` is tolerated."""
    cmd, rest = split_command(payload)
    if not rest:
        if payload[0] == 0xFF and len(payload) == 2:
            return Answer(0xFF, payload[1], b"")  # short error answer seen from some firmware
        raise FrameError("answer has no error byte")
    return Answer(cmd, rest[0], rest[1:])


# -- fields ---------------------------------------------------------------------------------
def uint(value: int, size: int) -> bytes:
    """Unsigned little-endian integer of *size* bytes."""
    return int(value).to_bytes(size, "little")


def u32(value: int) -> bytes:
    """A 4-byte little-endian number (passwords, FD numbers)."""
    return uint(value, 4)


def read_uint(data: bytes, offset: int, size: int) -> int:
    """Read an unsigned little-endian integer; FrameError if the data is too short."""
    if len(data) < offset + size:
        raise FrameError(f"answer too short: need {offset + size} bytes, got {len(data)}")
    return int.from_bytes(data[offset:offset + size], "little")


def money5(amount: Decimal) -> bytes:
    """Money as 5-byte kopecks."""
    kop = amount * 100
    if kop != kop.to_integral_value() or kop < 0:
        raise ValueError(f"amount {amount} is not a whole non-negative number of kopecks")
    return uint(int(kop), 5)


def kop_to_money(kop: int) -> Decimal:
    """Kopecks to a Decimal amount (exact)."""
    return (Decimal(kop) / 100).quantize(Decimal("0.01"))


def qty6(qty: Decimal) -> bytes:
    """FF46 quantity: 6 bytes with 6 decimals."""
    return uint(int(qty * 1_000_000), 6)


def fn_datetime(when: dt.datetime) -> bytes:
    """FN DATE_TIME: ``YY MM DD HH MM``."""
    return bytes([when.year % 100, when.month, when.day, when.hour, when.minute])


def read_fn_datetime(data: bytes, offset: int = 0) -> dt.datetime:
    """Decode an FN DATE_TIME field."""
    y, m, d, hh, mm = data[offset:offset + 5]
    return dt.datetime(2000 + y, m, d, hh, mm)


def text(value: str, *, encoding: str = TEXT_ENCODING, limit: int | None = None) -> bytes:
    """Encode text for a command; a character the code page lacks raises UnicodeEncodeError.

    Callers fit user text first (:func:`kkt_drivers.shtrih.text.fit`): nothing becomes a silent ``?``.
    """
    raw = value.encode(encoding)
    return raw[:limit] if limit is not None else raw


def read_text(data: bytes, encoding: str = TEXT_ENCODING) -> str:
    """Decode a text field that runs to the end of the frame or to the first NUL."""
    return data.split(b"\0", 1)[0].decode(encoding, errors="replace")


# -- TLV (FFD) ------------------------------------------------------------------------------
def tlv(tag: int, value: bytes) -> bytes:
    """One TLV block: tag(2 LE), length(2 LE), value."""
    return uint(tag, 2) + uint(len(value), 2) + value


def tlv_str(tag: int, value: str) -> bytes:
    """A string requisite (CP866); UnicodeEncodeError for a character CP866 lacks."""
    return tlv(tag, value.encode(TLV_ENCODING))


def tlv_uint(tag: int, value: int, size: int | None = None) -> bytes:
    """An integer requisite; *size* None gives the shortest VLN encoding (at least one byte)."""
    n = size if size is not None else max(1, (int(value).bit_length() + 7) // 8)
    return tlv(tag, uint(value, n))


def parse_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """Split concatenated TLV blocks into ``(tag, value)`` pairs; FrameError when cut short."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        if i + 4 > len(data):
            raise FrameError("TLV header cut short")
        tag = read_uint(data, i, 2)
        n = read_uint(data, i + 2, 2)
        if i + 4 + n > len(data):
            raise FrameError(f"TLV {tag} value cut short")
        out.append((tag, data[i + 4:i + 4 + n]))
        i += 4 + n
    return out
