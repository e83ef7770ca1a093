"""Bytes-level tests of the Shtrih-M protocol: real device traces, frames, fields, error codes."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kkt_drivers.errors import DeviceStateError, RejectedError, TransientError
from kkt_drivers.receipt import Vat
from kkt_drivers.shtrih import codes
from kkt_drivers.shtrih import messages as m
from kkt_drivers.shtrih import protocol as p

H = bytes.fromhex

# Real traces from re-star-ru/shtrih-m-driver docs/out.txt (reference §2.2)
TRACE_STATUS_REQ = H("02 05 10 1E 00 00 00 0B")
TRACE_STATUS_ANS = H("02 10 10 00 1E 92 02 08 00 01 9F E5 18 01 00 8B 02 00 6D")
TRACE_CANCEL_REQ = H("02 05 88 1E 00 00 00 93")
TRACE_CANCEL_ANS = H("02 03 88 00 1E 95")
TRACE_FN_REQ = H("02 06 FF 01 1E 00 00 00 E6")
TRACE_FN_ANS = H("02 21 FF 01 00 03 00 00 01 00 15 07 1D 0B 1D"
                 " 39 32 38 37 34 34 30 33 30 31 31 32 30 39 39 31"
                 " A9 01 00 00 68")


class TestRealTraces:
    def test_given_password_30_when_encoding_short_status_then_bytes_match_device_trace(self) -> None:
        assert p.encode_request(p.SHORT_STATUS, password=30) == TRACE_STATUS_REQ

    def test_given_device_status_answer_then_it_decodes_to_open_sale_receipt(self) -> None:
        ans = p.parse_answer(p.decode_frame(TRACE_STATUS_ANS))
        assert (ans.cmd, ans.error) == (0x10, 0)
        s = m.decode_short_status(ans.data)
        assert (s.operator, s.flags, s.mode, s.submode, s.operations) == (30, 0x0292, 0x08, 0, 1)

    def test_cancel_request_and_answer_match_trace(self) -> None:
        assert p.encode_request(p.CANCEL_RECEIPT, password=30) == TRACE_CANCEL_REQ
        assert p.encode_answer(p.CANCEL_RECEIPT, 0, bytes([30])) == TRACE_CANCEL_ANS

    def test_two_byte_fn_status_request_matches_trace(self) -> None:
        assert p.encode_request(p.FN_STATUS, password=30) == TRACE_FN_REQ

    def test_fn_status_answer_decodes_and_reencodes_byte_for_byte(self) -> None:
        ans = p.parse_answer(p.decode_frame(TRACE_FN_ANS))
        assert (ans.cmd, ans.error) == (0xFF01, 0)
        s = m.decode_fn_status(ans.data)
        assert s.phase == 3 and s.current_document == 0 and s.shift_open
        assert s.now == dt.datetime(2021, 7, 29, 11, 29)
        assert (s.fn_serial, s.last_fd) == ("9287440301120991", 425)
        assert p.encode_answer(p.FN_STATUS, 0, m.encode_fn_status(s)) == TRACE_FN_ANS


class TestFrames:
    @given(st.binary(min_size=1, max_size=255))
    def test_any_payload_round_trips(self, payload: bytes) -> None:
        assert p.decode_frame(p.encode_frame(payload)) == payload

    @given(st.binary(min_size=1, max_size=64), st.data())
    def test_any_single_byte_corruption_is_detected(self, payload: bytes, data: st.DataObject) -> None:
        frame = bytearray(p.encode_frame(payload))
        i = data.draw(st.integers(min_value=2, max_value=len(frame) - 1))
        frame[i] ^= data.draw(st.integers(min_value=1, max_value=255))
        with pytest.raises(p.FrameError):
            p.decode_frame(bytes(frame))

    def test_oversized_payload_is_refused(self) -> None:
        with pytest.raises(p.FrameError):
            p.encode_frame(b"x" * 256)

    def test_error_answer_carries_no_data(self) -> None:
        assert p.encode_answer(0xFF45, 0x45, b"ignored") == p.encode_frame(H("FF 45 45"))

    def test_short_ff_error_answer_is_tolerated(self) -> None:
        assert p.parse_answer(H("FF 37")).error == 0x37


class TestFields:
    def test_ff46_layout(self) -> None:
        op = m.OperationV2(operation=1, quantity=Decimal("1.5"), price=Decimal("10.00"),
                           amount=Decimal("15.00"),
                           tax=codes.tax_byte(Vat.VAT20), department=1, payment_method=4, payment_subject=1,
                           name="Хлеб")
        raw = m.encode_operation_v2(op)
        assert raw == (H("01") + (1_500_000).to_bytes(6, "little") + (1000).to_bytes(5, "little")
                       + (1500).to_bytes(5, "little") + b"\xff" * 5 + H("01 01 04 01")
                       + "Хлеб".encode("cp1251"))
        assert m.decode_operation_v2(raw) == op

    def test_ff45_layout_is_182_bytes_with_command_password_and_text(self) -> None:
        slots = [0] * 16
        slots[1] = 169980
        c = m.CloseReceipt(payments=tuple(slots), tax_system=1, text="x" * 64)
        raw = m.encode_close_receipt(c)
        assert 2 + 4 + len(raw) == 182
        assert raw[5:10] == (169980).to_bytes(5, "little") and raw[111] == 1
        assert m.decode_close_receipt(raw) == c

    def test_full_status_round_trip(self) -> None:
        s = m.FullStatus(operator=30, flags=2, mode=2, submode=0, now=dt.datetime(2026, 1, 5, 10, 20, 30),
                         serial=123456789012, last_closed_shift=7)
        assert m.decode_full_status(m.encode_full_status(s)) == s

    def test_found_receipt_round_trip(self) -> None:
        d = m.FoundDocument(doc_type=3, ofd_ack=True, when=dt.datetime(2026, 1, 5, 10, 20), fd_number=12,
                            fiscal_sign=0xDEADBEEF, operation=2, total=Decimal("1699.80"))
        assert m.decode_found_document(m.encode_found_document(d)) == d

    def test_tlv_round_trip_in_cp866(self) -> None:
        raw = p.tlv_str(1008, "Покупатель") + p.tlv_uint(1125, 1, 1)
        assert raw[:4] == H("F0 03 0A 00")
        assert p.parse_tlv(raw) == [(1008, "Покупатель".encode("cp866")), (1125, b"\x01")]

    def test_money_refuses_fractions_of_a_kopeck(self) -> None:
        with pytest.raises(ValueError):
            p.money5(Decimal("0.001"))


class TestCodes:
    @pytest.mark.parametrize("code,cls,condition", [
        (0x4E, DeviceStateError, DeviceStateError.COND_SHIFT_EXPIRED),
        (0x16, DeviceStateError, DeviceStateError.COND_SHIFT_EXPIRED),
        (0x6B, DeviceStateError, DeviceStateError.COND_PAPER_OUT),
        (0x3C, DeviceStateError, DeviceStateError.COND_SHIFT_OPEN),
        (0x3D, DeviceStateError, DeviceStateError.COND_SHIFT_CLOSED),
        (0x4A, DeviceStateError, DeviceStateError.COND_RECEIPT_OPEN),
        (0x37, DeviceStateError, DeviceStateError.COND_OTHER),
        (0x45, RejectedError, None),
        (0x33, RejectedError, None),
        (0x50, TransientError, None),
    ])
    def test_code_maps_to_reaction_and_keeps_vendor_message(self, code: int, cls: type,
                                                            condition: str | None) -> None:
        exc = codes.error_for(code, 0xFF45)
        assert type(exc) is cls
        assert exc.vendor_code is not None and exc.vendor_code.startswith(f"0x{code:02X} ")
        if condition:
            assert exc.condition == condition  # type: ignore[attr-defined]

    def test_every_vat_has_a_distinct_tax_byte_and_rows_1_to_6_are_single_bits(self) -> None:
        bytes_ = {v: codes.tax_byte(v) for v in Vat}
        assert len(set(bytes_.values())) == len(Vat)
        assert [bytes_[v] for v in (Vat.VAT20, Vat.VAT10, Vat.VAT0, Vat.NONE, Vat.VAT120, Vat.VAT110)] == \
            [1, 2, 4, 8, 16, 32]
        assert codes.TAX_ROW_BY_VAT[Vat.VAT22] == 11 and codes.TAX_ROW_BY_VAT[Vat.VAT122] == 12
        assert all(codes.vat_for_tax_byte(b) is v for v, b in bytes_.items())
