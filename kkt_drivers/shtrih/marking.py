"""Shtrih-M marking commands (FFD 1.2): FF61, FF67, FF69, FF70 — pure encoders and decoders.

From the vendor's protocol v1.17 (2021) pp.58–66 as summarised in marking.md §3 (SPEC117 ✅),
checked against the golden FF61 request/answer of fr_drv_ng#145 (tests/shtrih/test_marking.py).
Passwords precede every field below and are not part of these payloads.

* FF61 «Проверка маркированного товара»: 2003(1) 2102(1) X(1) Y(1) КМ(X) TLV(Y) →
  2004(1) reason(1) 2100(1) N(1) [FN answer code(1) 2106(1) TLV(N-2)].
* FF69 «Принять или отвергнуть»: decision(1) (0 reject, 1 accept) → 2106(1).
* FF67 «Привязка маркированного товара к позиции»: X(1) КМ(X) → product code head(2), DataMatrix
  type(1), [the FF61 check block when the code was not checked before].
* FF70 «Запрос статуса по работе с КМ»: → 8 bytes (see :class:`MarkingStatus`).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from kkt_drivers.shtrih.protocol import FrameError, parse_tlv, read_uint, tlv, uint

FN_MARKING_CHECK = 0xFF61
FN_MARKING_BIND = 0xFF67
FN_MARKING_DECIDE = 0xFF69
FN_MARKING_STATUS = 0xFF70
#: FF69 decisions; 2 = «clear buffer» is JPOS's (mcClearBuffer), not in SPEC117 (UNVERIFIED)
REJECT, ACCEPT, CLEAR = 0, 1, 2
#: FF67 DataMatrix type byte (SPEC117): 0 КМ88, 1 symmetric, 2 tobacco, 3 КМ44
DM_88, DM_SYMMETRIC, DM_TOBACCO, DM_44 = 0, 1, 2, 3
#: marking errors of the register (SPEC117 pp.68–70)
NOT_ALLOWED, WRONG_ORDER, BLOCKED, TABLE_FULL, TLV_MISSING, UNCHECKED = 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5


@dataclass(frozen=True)
class CheckRequest:
    """FF61 data after the password."""

    code: bytes
    status: int
    mode: int = 0
    tlv: bytes = b""


def encode_check(r: CheckRequest) -> bytes:
    """FF61 data; ValueError when the code or the TLV does not fit a length byte."""
    if not 0 < len(r.code) <= 255 or len(r.tlv) > 255:
        raise ValueError("FF61: code and TLV must each be at most 255 bytes")
    return bytes([r.status, r.mode, len(r.code), len(r.tlv)]) + r.code + r.tlv


def decode_check(data: bytes) -> CheckRequest:
    """Inverse of :func:`encode_check` (FrameError when the lengths do not match)."""
    if len(data) < 4 or len(data) != 4 + data[2] + data[3]:
        raise FrameError("FF61 data length does not match its length bytes")
    x = data[2]
    return CheckRequest(code=data[4:4 + x], status=data[0], mode=data[1], tlv=data[4 + x:])


@dataclass(frozen=True)
class CheckAnswer:
    """The FF61 answer (also the tail of FF67's when the register checked the code itself)."""

    local: int          # 2004
    reason: int         # why the FN did not check the crypto part (0 checked)
    code_type: int      # 2100
    fn_answer: int | None = None   # 0 valid answer, 0x20 + reason invalid, 0xFF timeout; None: N = 0
    result: int | None = None      # 2106
    tlvs: dict[int, bytes] = field(default_factory=dict)  # 2114, 2105, 2005, 2109…

    @property
    def when(self) -> dt.datetime | None:
        """2114 as an aware UTC datetime, when present."""
        raw = self.tlvs.get(2114)
        return dt.datetime.fromtimestamp(int.from_bytes(raw, "little"), dt.timezone.utc) if raw else None


def encode_check_answer(a: CheckAnswer, tlv_order: tuple[int, ...] = (2114, 2105, 2005, 2109)) -> bytes:
    """FF61 answer data after the error byte."""
    head = bytes([a.local, a.reason, a.code_type])
    if a.fn_answer is None:
        return head + b"\x00"
    body = bytes([a.fn_answer, a.result or 0]) + b"".join(
        tlv(t, a.tlvs[t]) for t in tlv_order if t in a.tlvs)
    return head + bytes([len(body)]) + body


def decode_check_answer(data: bytes) -> CheckAnswer:
    """Inverse of :func:`encode_check_answer`."""
    if len(data) < 4 or len(data) < 4 + data[3]:
        raise FrameError("FF61 answer shorter than its length byte")
    n = data[3]
    if n == 0:
        return CheckAnswer(local=data[0], reason=data[1], code_type=data[2])
    if n < 2:
        raise FrameError("FF61 answer: N must be 0 or at least 2")
    tlvs = dict(parse_tlv(data[6:4 + n]))
    return CheckAnswer(local=data[0], reason=data[1], code_type=data[2], fn_answer=data[4],
                       result=data[5], tlvs=tlvs)


def encode_bind(code: bytes) -> bytes:
    """FF67 data after the password (without JPOS's optional ОСУ byte)."""
    if not 0 < len(code) <= 255:
        raise ValueError("FF67: the code must be 1..255 bytes")
    return bytes([len(code)]) + code


def decode_bind(data: bytes) -> bytes:
    """The code of an FF67 request (a trailing ОСУ flag byte is tolerated)."""
    if not data or len(data) < 1 + data[0]:
        raise FrameError("FF67 data shorter than its length byte")
    return data[1:1 + data[0]]


@dataclass(frozen=True)
class BindAnswer:
    """FF67 answer: product code head, DataMatrix type, and a check when the register made one."""

    head: bytes
    dm_type: int
    check: CheckAnswer | None = None


def encode_bind_answer(a: BindAnswer) -> bytes:
    """FF67 answer data after the error byte."""
    return a.head[:2].ljust(2, b"\x00") + bytes([a.dm_type]) + (
        encode_check_answer(a.check) if a.check is not None else b"")


def decode_bind_answer(data: bytes) -> BindAnswer:
    """Inverse of :func:`encode_bind_answer`."""
    if len(data) < 3:
        raise FrameError("FF67 answer too short")
    return BindAnswer(head=data[:2], dm_type=data[2],
                      check=decode_check_answer(data[3:]) if len(data) > 3 else None)


@dataclass(frozen=True)
class MarkingStatus:
    """FF70 answer: the FN's marking state."""

    check_state: int        # 0 table full, 1 none, 2 code passed, 3 request formed, 4 answer passed
    notification_state: int  # 0 / 1 / 2 blocked
    allowed: int            # flags of the allowed B-commands
    saved_results: int
    codes_in_notification: int
    storage_warning: int    # 0 <50 %, 1 50–80 %, 2 80–90 %, 3 >90 %, 4 full
    notifications_queued: int

    @property
    def blocked(self) -> bool:
        """Marking is blocked: notification storage full, or the notification state says so."""
        return self.notification_state == 2 or self.storage_warning == 4


def encode_status(s: MarkingStatus) -> bytes:
    """FF70 answer data after the error byte."""
    return bytes([s.check_state, s.notification_state, s.allowed, s.saved_results,
                  s.codes_in_notification, s.storage_warning]) + uint(s.notifications_queued, 2)


def decode_status(data: bytes) -> MarkingStatus:
    """Inverse of :func:`encode_status`."""
    if len(data) < 8:
        raise FrameError("FF70 answer too short")
    return MarkingStatus(*data[:6], notifications_queued=read_uint(data, 6, 2))
