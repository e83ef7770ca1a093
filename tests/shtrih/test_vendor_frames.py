"""The emulator driven by byte sequences the vendor's own drivers send, written by hand.

Nothing here uses our driver or our encoders: each request is hex from the reference addendum
(2026-11-30) and the protocol spec's layouts, framed by the few lines below; each answer is
checked byte by byte. If our driver and our emulator ever agree on a wrong byte, these fail.

Vendor facts replayed (reference addendum): FF46 tax byte 0xCB = 22 % (desktop), 0x90 = 22 % on
Shtrih-Nano, 0x81 = 5 %; no vendor sends 0x40|row; 8D 0x80|type opens an FFD 1.2 correction;
FF41 → FF0C(1021) → E0 opens a shift with the cashier; FF4D(2108) goes before FF46; zero total →
0x8E; cash overpayment → change in FF45's answer; cashless overpayment → 0x4D.
"""
from __future__ import annotations

import socket
from typing import Any

import pytest

H = bytes.fromhex
PW30 = H("1E000000")
STX, ENQ, ACK, NAK = 0x02, 0x05, 0x06, 0x15


class RawClient:
    """The host side of the link written from the spec's Appendix 3, for these tests only."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=3)

    def close(self) -> None:
        self.sock.close()

    def _byte(self) -> int:
        b = self.sock.recv(1)
        assert b, "register closed the connection"
        return b[0]

    def send(self, payload_hex: str, *, ack: bool = True) -> bytes:
        """ENQ → NAK, frame → ACK, answer; returns the answer payload (echo, error, data)."""
        payload = H(payload_hex)
        self.sock.sendall(bytes([ENQ]))
        assert self._byte() == NAK
        body = bytes([len(payload)]) + payload
        x = 0
        for b in body:
            x ^= b
        self.sock.sendall(bytes([STX]) + body + bytes([x]))
        assert self._byte() == ACK
        assert self._byte() == STX
        n = self._byte()
        rest = b""
        while len(rest) < n + 1:
            rest += self.sock.recv(n + 1 - len(rest))
        x = n
        for b in rest[:-1]:
            x ^= b
        assert x == rest[-1], "bad LRC from the register"
        if ack:
            self.sock.sendall(bytes([ACK]))
        return rest[:-1]


def ff46(tax_byte: int, *, qty_micro: int = 1_000_000, price_kop: int = 10000, name: str = "Товар") -> str:
    """An FF46 request as javapos FSPrintRecItem lays it out (spec v1.16 p.52)."""
    return ("FF46" + "1E000000" + "01" + qty_micro.to_bytes(6, "little").hex() + price_kop.to_bytes(5, "little").hex()
            + "FF" * 5 + "FF" * 5 + f"{tax_byte:02X}" + "01" + "04" + "01" + name.encode("cp1251").hex())


def ff45(cash: int = 0, cashless: int = 0) -> str:
    """An FF45 request: 16 payment sums, rounding, 6 tax sums, tax system (ОСН), empty text."""
    sums = [cash, cashless] + [0] * 14
    return ("FF45" + "1E000000" + "".join(s.to_bytes(5, "little").hex() for s in sums) + "00"
            + "00" * 30 + "01")


@pytest.fixture
def raw(make_server):
    clients: list[RawClient] = []

    def make(**kwargs: Any) -> tuple[Any, RawClient]:
        srv = make_server(**kwargs)
        c = RawClient(srv.address)
        clients.append(c)
        return srv, c

    yield make
    for c in clients:
        c.close()


def _open_shift(c: RawClient) -> None:
    assert c.send("E0" + "1E000000") == H("E0001E")


def test_fc_answers_desktop_and_nano(raw) -> None:
    _, desk = raw()
    assert desk.send("FC")[:8] == H("FC00000001 0E FA 00".replace(" ", ""))   # model 250
    assert desk.send("FC")[8:].decode("cp1251") == "ШТРИХ-М-01Ф"
    _, nano = raw(nano=True)
    assert nano.send("FC")[6] == 152                      # PRINTER_MODEL_SHTRIH_NANO_F in javapos


def test_shift_opened_with_cashier_the_vendor_way(raw) -> None:
    srv, c = raw()
    assert c.send("FF41" + "1E000000") == H("FF4100")
    name = "Иванов И.И.".encode("cp866")
    tlv = (1021).to_bytes(2, "little") + len(name).to_bytes(2, "little") + name
    assert c.send("FF0C" + "1E000000" + tlv.hex()) == H("FF0C00")
    _open_shift(c)
    doc = srv.model.document(1)
    assert doc["kind"] == "open_shift" and doc["cashier"] == "Иванов И.И."
    assert c.send("FF42" + "1E000000") == H("FF4200")
    assert c.send("FF0C" + "1E000000" + tlv.hex()) == H("FF0C00")
    assert c.send("41" + "1E000000") == H("41001E")
    assert srv.model.document(2)["cashier"] == "Иванов И.И."


def test_sale_with_vendor_22_percent_byte_and_kilograms(raw) -> None:
    srv, c = raw()
    _open_shift(c)
    assert c.send("8D" + "1E000000" + "00") == H("8D001E")
    assert c.send("FF4D" + "1E000000" + "3C08" + "0100" + "0B") == H("FF4D00")  # 2108 = 11 kilogram
    assert c.send(ff46(0xCB, qty_micro=1_500_000, price_kop=20000, name="Сыр")) == H("FF4600")
    assert c.send(ff46(0x81, name="Книга")) == H("FF4600")                       # row 7 = 5 %
    answer = c.send(ff45(cashless=40000))
    assert answer[:3] == H("FF4500") and answer[3:8] == bytes(5)                  # no change
    fd = int.from_bytes(answer[8:12], "little")
    doc = srv.model.document(fd)
    assert [(i["vat"], i["unit"], i["quantity"]) for i in doc["items"]] == [(11, 11, "1.500"), (7, 0, "1.000")]
    assert doc["total"] == "400.00"


@pytest.mark.parametrize("byte", [0x4B, 0x4C, 0x47])
def test_our_old_0x40_row_bytes_are_refused(raw, byte: int) -> None:
    srv, c = raw()
    _open_shift(c)
    assert c.send(ff46(byte)) == H("FF4633")
    assert not srv.model.status().receipt_open and not srv.model.documents()[1:]


def test_nano_takes_0x90_for_22_percent_and_refuses_the_desktop_byte(raw) -> None:
    srv, c = raw(nano=True)
    _open_shift(c)
    assert c.send(ff46(0xCB)) == H("FF4633")
    assert c.send(ff46(0x90)) == H("FF4600")
    assert c.send(ff46(0xA0)) == H("FF4600")
    assert c.send(ff45(cash=20000))[:3] == H("FF4500")
    assert [i["vat"] for i in srv.model.documents()[-1]["items"]] == [11, 12]


def test_ffd12_correction_opens_with_8d_0x80(raw) -> None:
    srv, c = raw()
    _open_shift(c)
    assert c.send("8D" + "1E000000" + "80") == H("8D001E")   # correction of a sale
    order = "123".encode("cp866")
    inner = (H("9A04" "0400") + (1735689600).to_bytes(4, "little")   # 1178 = 2025-01-01
             + (1179).to_bytes(2, "little") + len(order).to_bytes(2, "little") + order)
    tlvs = H("9504" "0100" "01") + (1174).to_bytes(2, "little") + len(inner).to_bytes(2, "little") + inner
    assert c.send("FF0C" + "1E000000" + tlvs.hex()) == H("FF0C00")
    assert c.send(ff46(0x01)) == H("FF4600")
    assert c.send(ff45(cashless=10000))[:3] == H("FF4500")
    doc = srv.model.documents()[-1]
    assert doc["kind"] == "correction" and doc["operation"] == 1
    assert doc["correction"] == {"1173": 1, "1178": "2025-01-01", "1179": "123"}


def test_zero_total_is_0x8e(raw) -> None:
    _, c = raw()
    _open_shift(c)
    assert c.send(ff46(0x08, price_kop=0)) == H("FF4600")
    assert c.send(ff45(cash=0)) == H("FF458E")


def test_cash_overpayment_returns_change_and_cashless_overpayment_is_0x4d(raw) -> None:
    srv, c = raw()
    _open_shift(c)
    assert c.send(ff46(0x08)) == H("FF4600")                   # 100.00 without VAT
    assert c.send(ff45(cashless=10001)) == H("FF454D")
    assert c.send(ff45(cash=5000)) == H("FF4545")               # not enough
    answer = c.send(ff45(cash=15000))
    assert answer[:3] == H("FF4500") and int.from_bytes(answer[3:8], "little") == 5000  # 50.00 change
    doc = srv.model.documents()[-1]
    assert doc["change"] == "50.00" and doc["payments"] == [{"type": "cash", "amount": "100.00"}]


def test_tables_read_and_written_with_1f_1e(raw) -> None:
    srv, c = raw()
    assert c.send("1F" + "1E000000" + "11" + "0100" + "47") == H("1F0002")     # 17/1/71 = 2
    assert c.send("1F" + "1E000000" + "01" + "0100" + "0E") == H("1F0000")     # 1/1/14 = 0
    assert c.send("1F" + "1E000000" + "06" + "0B00" + "01") == H("1F00 9808".replace(" ", ""))  # 2200
    assert c.send("1E" + "1E000000" + "11" + "0100" + "47" + "01") == H("1E00")
    assert c.send("1F" + "1E000000" + "11" + "0100" + "47") == H("1F0001")
    assert c.send("1F" + "01000000" + "11" + "0100" + "47") == H("1F4F")       # cashier password: refused


def test_unlicensed_rate_is_refused_and_reads_zero(raw) -> None:
    _, c = raw(unlicensed_rows={7})
    _open_shift(c)
    assert c.send("1F" + "1E000000" + "06" + "0700" + "01") == H("1F00 0000".replace(" ", ""))
    assert c.send(ff46(0x81)) == H("FF4636")


def test_each_connection_has_its_own_pending_answer(raw) -> None:
    srv, a = raw()
    b = RawClient(srv.address)
    try:
        a.send("10" + "1E000000", ack=False)                   # A leaves its answer un-ACKed
        b.sock.sendall(bytes([ENQ]))
        assert b._byte() == NAK                                 # B does not get A's answer
        a.sock.sendall(bytes([ENQ]))
        assert a._byte() == ACK and a._byte() == STX            # A still does
    finally:
        b.close()


def test_connection_limit_and_idle_timeout(make_server) -> None:
    srv = make_server(max_clients=1, idle_timeout_s=0.3)
    first = socket.create_connection(srv.address, timeout=3)
    try:
        first.sendall(bytes([ENQ]))
        assert first.recv(1) == bytes([NAK])
        second = socket.create_connection(srv.address, timeout=3)
        assert second.recv(1) == b""                            # over the limit: closed at once
        second.close()
        assert first.recv(1) == b""                             # silent for 0.3 s: closed
    finally:
        first.close()
    third = socket.create_connection(srv.address, timeout=3)    # the slot is free again
    third.sendall(bytes([ENQ]))
    assert third.recv(1) == bytes([NAK])
    third.close()


def test_our_encoders_produce_the_vendor_frames_byte_for_byte() -> None:
    """The driver's FF46/FF45 payloads equal the hand-written vendor layouts above."""
    from decimal import Decimal

    from kkt_drivers.receipt import Vat
    from kkt_drivers.shtrih import codes, messages as m, protocol as p
    line = m.encode_operation_v2(m.OperationV2(
        operation=1, quantity=Decimal("1.5"), price=Decimal("200.00"), amount=None,
        tax=codes.tax_byte(Vat.VAT22), department=1, payment_method=4, payment_subject=1, name="Сыр"))
    assert p.command_bytes(p.FN_OPERATION) + p.u32(30) + line == H(ff46(0xCB, qty_micro=1_500_000,
                                                                         price_kop=20000, name="Сыр"))
    close = m.encode_close_receipt(m.CloseReceipt(payments=(0, 40000) + (0,) * 14, tax_system=1))
    assert p.command_bytes(p.FN_CLOSE_RECEIPT) + p.u32(30) + close == H(ff45(cashless=40000))


def test_shift_cash_and_operational_registers_the_vendor_way(raw) -> None:
    """1Ah/1Bh as javapos ReadCashRegister/ReadOperationRegister lay them out: after a 400.00 cashless
    sale, a 150.00 cash sale and a 100.00 cashless refund, register 193 (sale, cash) holds 150.00,
    197 (sale, payment type 2) 400.00, 199 (sale refund, type 2) 100.00; operational 144 (sale
    receipts) 2 and 146 (refund receipts) 1; the Z report clears them."""
    srv, c = raw()
    _open_shift(c)
    for rtype, op, price, pay in (("00", "01", 40000, ff45(cashless=40000)), ("00", "01", 15000, ff45(cash=15000)),
                                  ("02", "02", 10000, ff45(cashless=10000))):
        assert c.send("8D" + "1E000000" + rtype) == H("8D001E")
        item = ff46(0xCB, price_kop=price)
        assert c.send(item[:12] + op + item[14:]) == H("FF4600")      # FF46 operation 1 приход, 2 возврат
        assert c.send(pay)[:3] == H("FF4500")
    assert c.send("1A" + "1E000000" + "C1") == H("1A00" + "1E" + "983A00000000")   # 193: 150.00 = 0x3A98
    assert c.send("1A" + "1E000000" + "C5") == H("1A00" + "1E" + "409C00000000")   # 197: 400.00 = 0x9C40
    assert c.send("1A" + "1E000000" + "C7") == H("1A00" + "1E" + "102700000000")   # 199: 100.00 = 0x2710
    assert c.send("1A" + "1E000000" + "C3") == H("1A00" + "1E" + "000000000000")   # 195: no cash refund
    assert c.send("1A" + "1E000000" + "3010") == H("1A00" + "1E" + "000000000000")  # 4144: 2-byte number
    assert c.send("1B" + "1E000000" + "90") == H("1B00" + "1E" + "0200")           # 144: 2 sale receipts
    assert c.send("1B" + "1E000000" + "92") == H("1B00" + "1E" + "0100")           # 146: 1 refund receipt
    srv.model.tamper_counter("sale", "0.01", "cash")                             # the register miscounts
    assert c.send("1A" + "1E000000" + "C1") == H("1A00" + "1E" + "993A00000000")
    assert c.send("41" + "1E000000") == H("41001E")                              # Z report: cleared
    assert c.send("1A" + "1E000000" + "C5") == H("1A00" + "1E" + "000000000000")
    assert c.send("1B" + "1E000000" + "90") == H("1B00" + "1E" + "0000")
