"""Framing and codecs of the length-prefixed JSON bridge, on bytes."""
from __future__ import annotations

import io
import json
import struct
from decimal import Decimal

import pytest

from kkt_drivers.jsontcp import protocol as p
from kkt_drivers.receipt import Item, MeasureUnit, PaymentMethod, Vat


def reader(data: bytes):
    buf = io.BytesIO(data)
    return buf.read


def test_frame_is_big_endian_length_plus_utf8_json() -> None:
    frame = p.encode({"id": 1, "cmd": "status", "session": "ab"})
    assert frame[:4] == b"\x00\x00\x00\x26" and frame[4:] == b'{"id":1,"cmd":"status","session":"ab"}'
    cyr = p.encode({"name": "Чай"})
    assert struct.unpack(">I", cyr[:4])[0] == len('{"name":"Чай"}'.encode()) == 17
    assert p.read_frame(reader(frame + cyr)) == {"id": 1, "cmd": "status", "session": "ab"}


def test_two_frames_in_a_row_and_split_reads() -> None:
    data = p.encode({"a": 1}) + p.encode({"b": "2.50"})
    buf = io.BytesIO(data)

    def recv(n: int) -> bytes:   # never more than 3 bytes per call, like a slow link
        return buf.read(min(n, 3))
    assert p.read_frame(recv) == {"a": 1}
    assert p.read_frame(recv) == {"b": "2.50"}


#: frames no reader may accept, and what its FrameError says (tests/jsontcp/test_frame_reader.py too)
BAD_FRAMES = [
    (struct.pack(">I", 0), "outside"),
    (struct.pack(">I", p.MAX_FRAME_BYTES + 1) + b"{}", "outside"),
    (struct.pack(">I", 2) + b"\xff\xfe", "not UTF-8"),
    (struct.pack(">I", 5) + b"{123:", "not JSON"),
    (struct.pack(">I", 2) + b"[]", "not a JSON object"),
]


@pytest.mark.parametrize("data, match", BAD_FRAMES)
def test_bad_frames_are_frame_errors(data: bytes, match: str) -> None:
    with pytest.raises(p.FrameError, match=match):
        p.read_frame(reader(data))


def test_peer_closing_between_and_inside_frames() -> None:
    with pytest.raises(p.PeerClosed) as clean:
        p.read_frame(reader(b""))
    assert not clean.value.mid_frame
    with pytest.raises(p.PeerClosed) as mid:
        p.read_frame(reader(struct.pack(">I", 10) + b'{"a"'))
    assert mid.value.mid_frame


def test_stall_inside_a_body_is_a_frame_timeout() -> None:
    parts = [struct.pack(">I", 10), b'{"a"']

    def recv(n: int) -> bytes:
        if parts:
            return parts.pop(0)
        raise TimeoutError("timed out")
    with pytest.raises(p.FrameTimeout):
        p.read_frame(recv)


def test_items_and_documents_round_trip_exactly() -> None:
    item = Item("Весовой", Decimal("99.90"), Decimal("1.235"), Decimal("123.38"), Vat.VAT122,
                payment_method=PaymentMethod.FULL_PREPAYMENT, measure_unit=MeasureUnit.KILOGRAM)
    wire = p.item_to_wire(item)
    assert wire["price"] == "99.90" and wire["quantity"] == "1.235" and wire["amount"] == "123.38"
    assert json.loads(p.encode({"item": wire})[4:])["item"]["amount"] == "123.38"
    assert p.item_from_wire(wire) == item
    rec = {"fd": 7, "fp": 123, "fn": "9999078900000001", "kind": "receipt", "dt": "2026-11-20T12:00:01",
           "shift": 2, "receipt_no": 3, "operation": 2, "total": "599.97", "tag": "R3"}
    doc = p.document_from_wire(p.document_to_wire(rec))
    assert (doc.fd_number, doc.fiscal_sign, doc.tag, doc.total, int(doc.operation)) == (7, 123, "R3",
                                                                                      Decimal("599.97"), 2)
