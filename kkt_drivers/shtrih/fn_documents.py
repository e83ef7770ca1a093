"""The emulated FN's documents in the FN's own terms: a journal document as the TLV blocks FF3B hands out,
and the correction requisites (1173, 1174) as the emulated register records them from FF0C.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from kkt_drivers.counters import from_json
from kkt_drivers.shtrih import counters as sc, protocol as p


def document_tlvs(doc: dict[str, Any]) -> list[bytes]:
    """A journal document as the TLV blocks FF3B hands out one by one."""
    when = dt.datetime.fromisoformat(doc["dt"])
    unix = int(when.replace(tzinfo=dt.timezone.utc).timestamp())  # FFD stores local time as UnixTime
    out = [p.tlv_uint(1012, unix, 4), p.tlv_uint(1040, doc["fd"], 4), p.tlv_str(1041, doc["fn"]),
           p.tlv_uint(1077, doc["fp"], 6), p.tlv_uint(1038, doc["shift"], 4)]
    if doc["kind"] in ("receipt", "correction"):
        out += [p.tlv_uint(1042, doc.get("receipt_no") or 0, 4), p.tlv_uint(1054, doc["operation"], 1),
                p.tlv_uint(1055, doc["tax_system"], 1),
                p.tlv_uint(1020, int(Decimal(doc["total"]) * 100))]
        for item in doc["items"]:
            # GUESS: how a register stores a CP1251-only character (« » —) of an FF46 name in the
            # FN's CP866 tag 1030 is not in our sources; we store "?" for it
            body = (p.tlv(1030, item["name"].encode(p.TLV_ENCODING, errors="replace"))
                    + p.tlv_uint(1079, int(Decimal(item["price"]) * 100))
                    + _fvln(1023, Decimal(item["quantity"]))
                    + p.tlv_uint(1043, int(Decimal(item["amount"]) * 100))
                    + p.tlv_uint(1199, item["vat"], 1) + p.tlv_uint(1214, item["method"], 1)
                    + p.tlv_uint(1212, item["subject"], 1) + p.tlv_uint(2108, item.get("unit", 0), 1))
            out.append(p.tlv(1059, body))
        for tag, value in sorted(doc.get("requisites", {}).items()):
            out.append(p.tlv_uint(int(tag), value, 1) if isinstance(value, int)
                       else p.tlv_str(int(tag), str(value)))
    if doc["kind"] == "close_shift" and doc.get("totals"):
        out.append(sc.encode_shift_stats(from_json(doc["totals"])))   # 1194: the Z report's counters
    return out


def correction_requisites(raw: bytes) -> dict[str, Any]:
    """1173 and 1174 (an STLV of 1178 UnixTime and 1179 text) as the model records them."""
    out: dict[str, Any] = {}
    for tag, value in p.parse_tlv(raw):
        if tag == 1173:
            out["1173"] = int.from_bytes(value, "little")
        elif tag == 1174:
            for sub, sval in p.parse_tlv(value):
                if sub == 1178:
                    when = dt.datetime.fromtimestamp(int.from_bytes(sval, "little"), dt.timezone.utc)
                    out["1178"] = when.date().isoformat()
                elif sub == 1179:
                    out["1179"] = sval.decode(p.TLV_ENCODING)
    return out


def _fvln(tag: int, value: Decimal) -> bytes:
    """FFD FVLN: one byte of decimal places, then the scaled integer."""
    scaled = int(value * 1000)
    return p.tlv(tag, bytes([3]) + p.uint(scaled, max(1, (scaled.bit_length() + 7) // 8)))
