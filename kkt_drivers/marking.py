"""Marking codes («Честный ЗНАК», КМ) as the shop stores them: parse, check the structure, encode.

Pure: no I/O. Sources are in ``/work/shared/reference/marking.md`` §1.3 (what the shop stores) and
§1.1 (tags 2000, 2100, 2115, 1163).

* A code is kept **raw, GS (0x1D) included**, exactly as scanned: that byte string is what goes to
  the FN check and into tag 2000. The shop may store it as raw bytes or as base64 of those bytes
  (:func:`from_storage`). Base64 of a code that starts with AI "01" always starts with "MDE", and a
  raw code always starts with a digit, so ``encoding="auto"`` is unambiguous.
* GS1 DataMatrix: ``01`` GTIN(14) ``21`` serial, GS, then ``91`` key(4) GS ``92`` crypto(44|88),
  or ``93`` check code(4); optional AIs (17, 3103, 7003, 8005, …) follow GS1's rules: an AI whose
  length is predefined by its 2-digit prefix needs no GS, every other one ends at a GS or at the end.
* Tobacco pack short form: 29 characters, no AIs, no GS (GTIN 14 + serial 7 + MRP 4 + check 4;
  UNVERIFIED: the split after the GTIN, marking.md §1.3 ⚠).
* The human form "(01)…(21)…" and GS written as text ("\\u001d", "<GS>", "[GS]") are refused: the
  FN cannot check such a code (marking.md §1.3: 2106 = 5, Shtrih error 211). Normalising them
  would be a heuristic, so the shop must store the code as scanned.
"""
from __future__ import annotations

import base64
import binascii
import enum
import re
import zlib
from dataclasses import dataclass

from kkt_drivers.errors import RejectedError

GS = b"\x1d"
#: FF61/FF67 carry the code's length in one byte (marking.md §1.1, tag 2000 ≤ 256 by FFD)
MAX_CODE_BYTES = 255
#: GTIN in AI 01
GTIN_LEN = 14
#: GS1 AI 21 is variable up to 20 characters
SERIAL_MAX_LEN = 20
#: the 29-character tobacco pack code
TOBACCO_SHORT_LEN = 29
#: the FN keeps at most 128 checked codes per receipt (Shtrih error A3h, marking.md §1.3)
MAX_CODES_PER_RECEIPT = 128
#: ЧЗ crypto code in AI 92 is 44 or 88 characters; key id in AI 91 and check code in AI 93 are 4
CRYPTO_LENGTHS = (44, 88)
KEY_LEN = 4
CHECK_CODE_LEN = 4

#: GS1 General Specifications, "predefined length" AIs: the first two digits fix the AI's total
#: data length, so no GS follows them. Values: (AI length, data length).
_PREDEFINED: dict[str, tuple[int, int]] = {
    "00": (2, 18), "01": (2, 14), "02": (2, 14), "03": (2, 14), "04": (2, 16),
    "11": (2, 6), "12": (2, 6), "13": (2, 6), "14": (2, 6), "15": (2, 6), "16": (2, 6),
    "17": (2, 6), "18": (2, 6), "19": (2, 6), "20": (2, 2),
    "31": (4, 6), "32": (4, 6), "33": (4, 6), "34": (4, 6), "35": (4, 6), "36": (4, 6), "41": (3, 13),
}
#: variable-length AIs a Честный ЗНАК code carries (AI → maximum data length)
_VARIABLE: dict[str, int] = {"21": 20, "91": 90, "92": 90, "93": 90, "240": 30, "7003": 10, "8005": 6}
#: GS1 "character set 82" plus what ЧЗ crypto tails use; everything printable in ASCII but space
_PRINTABLE = re.compile(rb"[\x21-\x7e]+")
_GS_AS_TEXT = ("\\u001d", "\\x1d", "<GS>", "[GS]", "{GS}", "\\u1d")


class MarkingCodeError(RejectedError):
    """The code cannot be sold as given; ``field`` names where (set by the caller's context)."""

    def __init__(self, message: str, *, field: str = "marking_code") -> None:
        super().__init__(message, field=field)


class CodeKind(enum.Enum):
    """How the code is built."""

    GS1 = "gs1"                  # DataMatrix with AIs
    TOBACCO_SHORT = "tobacco29"  # 29 characters, no AIs


class CodeType(enum.IntEnum):
    """Requisite 2100 «тип кода маркировки» (marking.md §1.1, NGEX / KSL ✅)."""

    UNRECOGNIZED = 0
    SHORT = 1
    CHECK_88_FN = 2
    CHECK_44 = 3
    CHECK_44_FN = 4
    CHECK_4 = 5


@dataclass(frozen=True)
class MarkingCode:
    """One parsed marking code; :attr:`raw` is the only thing sent to a register."""

    raw: bytes
    kind: CodeKind
    gtin: str
    serial: str
    #: AI 91 (key id), AI 92 (crypto code), AI 93 (check code); None when absent
    key_id: str | None = None
    crypto: str | None = None
    check_code: str | None = None
    #: other AIs in order, e.g. (("3103", "000500"),)
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def has_crypto_tail(self) -> bool:
        """True when the FN can check the crypto part offline (AI 91 + AI 92; SPEC117 FF61 note)."""
        return self.key_id is not None and self.crypto is not None

    @property
    def code_type(self) -> CodeType:
        """What the FN would report as 2100 for this code (GUESS for the 93 case: 2100 = 5)."""
        if self.kind is CodeKind.TOBACCO_SHORT:
            return CodeType.SHORT
        if self.crypto is not None and len(self.crypto) == 88:
            return CodeType.CHECK_88_FN
        if self.crypto is not None:
            return CodeType.CHECK_44_FN
        if self.check_code is not None:
            return CodeType.CHECK_4
        return CodeType.UNRECOGNIZED

    @property
    def tag_2000(self) -> bytes:
        """Requisite 2000: the code exactly as scanned (GS included)."""
        return self.raw

    @property
    def base64(self) -> str:
        """Base64 of the raw code (ATOL ``imcParams.imc``, our JSON and ledger form)."""
        return base64.b64encode(self.raw).decode("ascii")

    @property
    def control_code_2115(self) -> str:
        """Requisite 2115: the last 4 decimal digits of CRC-32 of the 2000 bytes (JPOS Tag2115 ✅)."""
        return f"{zlib.crc32(self.raw):04d}"[-4:]

    @property
    def product_code_1163(self) -> tuple[int, str]:
        """(sub-tag, value) a register puts into 1163 for this code.

        The register builds 1163 itself from the raw code; this is what our emulators record.
        GUESS (marking.md §1.1 ⚠): 1305 holds GTIN + serial without the crypto tail; the
        29-character tobacco code goes to 1306 whole.
        """
        if self.kind is CodeKind.TOBACCO_SHORT:
            return 1306, self.raw.decode("ascii")
        return 1305, f"01{self.gtin}21{self.serial}"

    @property
    def human(self) -> str:
        """"(01)…(21)…" for logs and the accountant only; never stored or sent."""
        if self.kind is CodeKind.TOBACCO_SHORT:
            return self.raw.decode("ascii")
        parts = [f"(01){self.gtin}", f"(21){self.serial}"]
        for ai, value in (("91", self.key_id), ("92", self.crypto), ("93", self.check_code)):
            if value is not None:
                parts.append(f"({ai}){value}")
        parts.extend(f"({ai}){v}" for ai, v in self.extra)
        return "".join(parts)

    @property
    def short(self) -> str:
        """GTIN + serial: enough to name a code in a message without its crypto tail."""
        return f"{self.gtin}/{self.serial}"


def parse(raw: bytes | str, *, field: str = "marking_code") -> MarkingCode:
    """Parse a code given raw (bytes, or str holding the same ASCII with GS as \\x1d).

    Raises :class:`MarkingCodeError` naming *field* and what is wrong; nothing else.
    """
    if isinstance(raw, str):
        try:
            data = raw.encode("ascii")
        except UnicodeEncodeError:
            raise MarkingCodeError("not ASCII: a marking code is ASCII with GS (0x1D) separators",
                                   field=field) from None
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
    else:
        raise MarkingCodeError(f"expected bytes or str, got {type(raw).__name__}", field=field)
    if not data:
        raise MarkingCodeError("empty", field=field)
    if len(data) > MAX_CODE_BYTES:
        raise MarkingCodeError(f"{len(data)} bytes, at most {MAX_CODE_BYTES}", field=field)
    text = data.decode("latin-1")
    if text.startswith("("):
        raise MarkingCodeError("human-readable \"(01)…(21)…\" form: store the code as scanned, "
                               "with GS (0x1D) separators and no brackets", field=field)
    for token in _GS_AS_TEXT:
        if token.lower() in text.lower():
            raise MarkingCodeError(f"GS separator written as the text {token!r}: store the byte 0x1D",
                                   field=field)
    for chunk in data.split(GS):
        if chunk and not _PRINTABLE.fullmatch(chunk):
            raise MarkingCodeError("contains bytes other than printable ASCII and GS (0x1D)",
                                   field=field)
    if GS not in data and len(data) == TOBACCO_SHORT_LEN and not _looks_like_gs1(data):
        return _parse_tobacco(data, field)
    return _parse_gs1(data, field)


def _looks_like_gs1(data: bytes) -> bool:
    # a 29-character string starting "01" + 14 digits + "21" is a GS1 code with a 11-char serial
    return data.startswith(b"01") and data[2:16].isdigit() and data[16:18] == b"21"


def _parse_tobacco(data: bytes, field: str) -> MarkingCode:
    text = data.decode("ascii")
    if not text[:GTIN_LEN].isdigit():
        raise MarkingCodeError("29-character tobacco code must start with a 14-digit GTIN", field=field)
    # UNVERIFIED split: GTIN 14 + serial 7 + MRP 4 + check 4 (marking.md §1.3 ⚠)
    return MarkingCode(raw=data, kind=CodeKind.TOBACCO_SHORT, gtin=text[:14], serial=text[14:21],
                       extra=(("mrp", text[21:25]),), check_code=text[25:29])


def _parse_gs1(data: bytes, field: str) -> MarkingCode:
    text = data.decode("ascii")
    if text.startswith("\x1d"):
        raise MarkingCodeError("starts with GS: store the code as the scanner gives it, from AI 01",
                               field=field)
    if not text.startswith("01"):
        raise MarkingCodeError("must start with AI 01 (GTIN) or be a 29-character tobacco code",
                               field=field)
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "\x1d":
            pos += 1
            if pos == len(text):
                break  # a trailing GS is harmless
            if text[pos] == "\x1d":
                raise MarkingCodeError(f"two GS in a row at byte {pos}", field=field)
        ai, value, pos = _next_ai(text, pos, field)
        pairs.append((ai, value))
    if len(pairs) < 2 or pairs[0][0] != "01" or pairs[1][0] != "21":
        raise MarkingCodeError("AI 01 (GTIN) must be followed by AI 21 (serial)", field=field)
    seen: dict[str, str] = {}
    for ai, value in pairs:
        if ai in seen:
            raise MarkingCodeError(f"AI {ai} appears twice", field=field)
        seen[ai] = value
    gtin, serial = seen["01"], seen["21"]
    if not gtin.isdigit():
        raise MarkingCodeError(f"GTIN (AI 01) must be 14 digits, got {gtin!r}", field=field)
    if not serial:
        raise MarkingCodeError("serial (AI 21) is empty", field=field)
    key, crypto, check = seen.get("91"), seen.get("92"), seen.get("93")
    if (key is None) != (crypto is None):
        raise MarkingCodeError("AI 91 (key) and AI 92 (crypto code) come together", field=field)
    if key is not None and len(key) != KEY_LEN:
        raise MarkingCodeError(f"AI 91 must be {KEY_LEN} characters, got {len(key)}", field=field)
    if crypto is not None and len(crypto) not in CRYPTO_LENGTHS:
        raise MarkingCodeError(f"AI 92 must be 44 or 88 characters, got {len(crypto)}", field=field)
    if check is not None and len(check) != CHECK_CODE_LEN:
        raise MarkingCodeError(f"AI 93 must be {CHECK_CODE_LEN} characters, got {len(check)}",
                               field=field)
    if check is not None and crypto is not None:
        raise MarkingCodeError("AI 93 and AI 92 exclude each other", field=field)
    extra = tuple((ai, v) for ai, v in pairs if ai not in ("01", "21", "91", "92", "93"))
    return MarkingCode(raw=data, kind=CodeKind.GS1, gtin=gtin, serial=serial, key_id=key,
                       crypto=crypto, check_code=check, extra=extra)


def _next_ai(text: str, pos: int, field: str) -> tuple[str, str, int]:
    """Read one AI and its value at *pos*; return (ai, value, position after it)."""
    head = text[pos:pos + 2]
    if head in _PREDEFINED:
        ai_len, data_len = _PREDEFINED[head]
        ai = text[pos:pos + ai_len]
        if len(ai) != ai_len or not ai.isdigit():
            raise MarkingCodeError(f"bad AI at byte {pos}", field=field)
        value = text[pos + ai_len:pos + ai_len + data_len]
        if len(value) != data_len or "\x1d" in value:
            raise MarkingCodeError(f"AI {ai} needs {data_len} characters", field=field)
        return ai, value, pos + ai_len + data_len
    for ai, max_len in _VARIABLE.items():
        if text.startswith(ai, pos):
            end = text.find("\x1d", pos)
            end = len(text) if end < 0 else end
            value = text[pos + len(ai):end]
            if len(value) > max_len:
                hint = " (the GS separator after it is probably missing)" if ai == "21" else ""
                raise MarkingCodeError(f"AI {ai} longer than {max_len} characters{hint}", field=field)
            return ai, value, end
    raise MarkingCodeError(f"unknown AI at byte {pos} ({text[pos:pos + 4]!r}…)", field=field)


def from_storage(value: bytes | str, *, encoding: str = "auto", field: str = "marking_code") -> MarkingCode:
    """Parse a code as the shop's database gives it.

    *encoding*: ``raw`` (bytes or text with GS), ``base64`` (of the raw bytes), or ``auto``:
    raw when it starts with a digit, base64 otherwise (base64 of "01…" starts with "MDE").
    """
    if encoding not in ("auto", "raw", "base64"):
        raise ValueError(f"marking code encoding must be auto, raw or base64, got {encoding!r}")
    data = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
    if encoding == "auto":
        encoding = "raw" if data[:1].isdigit() or data[:1] in (b"(", GS) else "base64"
    if encoding == "base64":
        try:
            data = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise MarkingCodeError("neither a raw code nor valid base64", field=field) from None
        return parse(data, field=field)
    return parse(value, field=field)


def build_gs1(gtin: str, serial: str, *, key_id: str | None = None, crypto: str | None = None,
              check_code: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    """Compose a raw GS1 code (tests and the demo shop): GS after every variable-length AI."""
    out = f"01{gtin}21{serial}"
    tail: list[str] = []
    if key_id is not None:
        tail += [f"91{key_id}"]
    if crypto is not None:
        tail += [f"92{crypto}"]
    if check_code is not None:
        tail += [f"93{check_code}"]
    tail += [f"{ai}{v}" for ai, v in extra]
    for part in tail:
        out += "\x1d" + part
    return out.encode("ascii")
