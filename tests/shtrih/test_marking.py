"""Shtrih-M marking commands (FF61, FF69, FF67, FF70) against the emulator, in bytes written by hand.

The golden FF61 request/answer come from a real exchange quoted in fr_drv_ng#145 (marking.md §3,
LRC recomputed there): our emulator must answer the same bytes, and our codecs must read them.
The two item orders are the ones the vendor's firmware families use (SPEC117 p.63 classic;
«Кассовое ядро» per fr_drv_ng_examples#42).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from kkt_drivers.errors import DeviceStateError, RejectedError
from kkt_drivers.receipt import Item, Operation, Payment, PaymentSubject, PaymentType, Receipt, TaxSystem, Vat
from kkt_drivers.shtrih import marking as mk
from tests.shtrih.conftest import FAST
from tests.shtrih.test_vendor_frames import RawClient, ff45

H = bytes.fromhex
GOLDEN_CODE = b"04606203103348a3=EfODAB=UpGbL"
GOLDEN_REQUEST = H("0227FF611E00000001001D00") + GOLDEN_CODE + H("86")
GOLDEN_ANSWER = H("021BFF6100" "000101140005" "4208040080071561" "3908010000" "D507010005" "CF")
MILK = b"0104650194496163215'oQ5YJ\x1d93dGVz"


def lrc(body: bytes) -> int:
    x = 0
    for b in body:
        x ^= b
    return x


def test_golden_frames_are_well_formed() -> None:
    assert lrc(GOLDEN_REQUEST[1:-1]) == GOLDEN_REQUEST[-1] and GOLDEN_REQUEST[1] == len(GOLDEN_REQUEST) - 3
    assert lrc(GOLDEN_ANSWER[1:-1]) == GOLDEN_ANSWER[-1] and GOLDEN_ANSWER[1] == len(GOLDEN_ANSWER) - 3


def test_our_codecs_read_and_write_the_golden_bytes() -> None:
    req = mk.decode_check(GOLDEN_REQUEST[8:-1])
    assert (req.status, req.mode, req.code, req.tlv) == (1, 0, GOLDEN_CODE, b"")
    assert mk.encode_check(req) == GOLDEN_REQUEST[8:-1]
    a = mk.decode_check_answer(GOLDEN_ANSWER[5:-1])
    assert (a.local, a.reason, a.code_type, a.fn_answer, a.result) == (0, 1, 1, 0, 5)
    assert a.when == dt.datetime(2021, 8, 12, 11, 35, 28, tzinfo=dt.timezone.utc)
    assert a.tlvs[2105] == b"\x00" and a.tlvs[2005] == b"\x05"
    assert mk.encode_check_answer(a) == GOLDEN_ANSWER[5:-1]


def _raw_exchange(client: RawClient, frame: bytes) -> bytes:
    """Send an already framed request; return the answer frame with its LRC."""
    s = client.sock
    s.sendall(b"\x05")
    assert s.recv(1) == b"\x15"
    s.sendall(frame)
    assert s.recv(1) == b"\x06"
    head = s.recv(2)
    rest = b""
    while len(rest) < head[1] + 1:
        rest += s.recv(head[1] + 1 - len(rest))
    s.sendall(b"\x06")
    return head + rest


@pytest.fixture
def register(make_server):
    clients: list[RawClient] = []

    def make(**kwargs):
        srv = make_server(**kwargs)
        c = RawClient(srv.address)
        clients.append(c)
        assert c.send("E0" + "1E000000") == H("E0001E")
        return srv, c

    yield make
    for c in clients:
        c.close()


def test_emulator_replays_the_golden_ff61_answer(register) -> None:
    """A short (tobacco) code ОИСМ answered with 2005 = 5: 2106 = 5, at 2021-08-12 11:35:28 UTC."""
    srv, c = register()
    srv.model._clock = lambda: dt.datetime(2021, 8, 12, 11, 35, 28)  # GUESS: the ОИСМ time = register clock
    srv.model.set_marking_verdict(GOLDEN_CODE, "invalid")
    assert _raw_exchange(c, GOLDEN_REQUEST) == GOLDEN_ANSWER
    assert c.send("FF69" + "1E000000" + "00") == H("FF690005")  # rejected; 2106 comes back


def ff46_marked(name: str = "Молоко", price_kop: int = 9990) -> str:
    """FF46: sale, 1 pc, 10 % (0x02), full payment (4), payment subject 33 (0x21)."""
    return ("FF46" + "1E000000" + "01" + (1_000_000).to_bytes(6, "little").hex() + price_kop.to_bytes(5, "little").hex()
            + "FF" * 10 + "02" + "01" + "04" + "21" + name.encode("cp1251").hex())


def _check_and_accept(c: RawClient, code: bytes) -> None:
    answer = c.send("FF61" + "1E000000" + "0100" + f"{len(code):02X}" + "00" + code.hex())
    assert answer[:3] == H("FF6100")
    a = mk.decode_check_answer(answer[3:])
    assert (a.fn_answer, a.result) == (0, 0x0F)
    assert c.send("FF69" + "1E000000" + "01") == H("FF69000F")


@pytest.mark.parametrize("order", ["classic", "core"])
def test_both_item_orders_bind_the_code_to_the_line(register, order) -> None:
    srv, c = register()
    _check_and_accept(c, MILK)
    assert c.send("8D" + "1E000000" + "00") == H("8D001E")
    assert c.send("FF4D" + "1E000000" + "3C08" + "0100" + "00") == H("FF4D00")   # 2108 = 0 pieces
    ff67 = "FF67" + "1E000000" + f"{len(MILK):02X}" + MILK.hex()
    steps = [ff46_marked(), ff67] if order == "classic" else [ff67, ff46_marked()]
    for step in steps:
        answer = c.send(step)
        assert answer[2] == 0, answer.hex()
        if step.startswith("FF67"):
            assert len(answer) == 6  # head(2) + DataMatrix type(1): the code was checked by FF61 first
    answer = c.send(ff45(cashless=9990))
    assert answer[:3] == H("FF4500")
    doc = srv.model.document(int.from_bytes(answer[8:12], "little"))
    line = doc["items"][0]
    assert line["subject"] == 33 and line["marking"]["2106"] == 0x0F and line["marking"]["2003"] == 1
    assert line["marking"]["1163"] == {"1305": "010465019449616321" + "5'oQ5YJ"}


def test_marked_line_without_ff67_is_refused_a4(register) -> None:
    _, c = register()
    assert c.send("8D" + "1E000000" + "00") == H("8D001E")
    assert c.send(ff46_marked()) == H("FF4600")
    assert c.send(ff45(cashless=9990)) == H("FF45A4")


def test_ff67_of_an_unchecked_code_runs_the_check_itself(register) -> None:
    srv, c = register()
    assert c.send("8D" + "1E000000" + "00") == H("8D001E")
    answer = c.send("FF67" + "1E000000" + f"{len(MILK):02X}" + MILK.hex())
    assert answer[:3] == H("FF6700") and len(answer) > 6
    assert mk.decode_bind_answer(answer[3:]).check.result == 0x0F


def test_ff69_without_a_check_is_wrong_order_a1(register) -> None:
    _, c = register()
    assert c.send("FF69" + "1E000000" + "01") == H("FF69A1")


def test_ff70_reports_queue_and_block(register) -> None:
    srv, c = register()
    st = mk.decode_status(c.send("FF70" + "1E000000")[3:])
    assert (st.blocked, st.notifications_queued) == (False, 0)
    srv.model.set_unsent_notifications(10_000)
    st = mk.decode_status(c.send("FF70" + "1E000000")[3:])
    assert st.blocked and st.notifications_queued == 10_000
    assert c.send("FF61" + "1E000000" + "0100" + f"{len(MILK):02X}" + "00" + MILK.hex()) == H("FF61A2")


def _marked_sale(tag: str = "m-1") -> Receipt:
    items = (Item("Молоко", Decimal("99.90"), Decimal(1), Decimal("99.90"), Vat.VAT10,
                  payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=MILK),)
    return Receipt(Operation.SALE, TaxSystem.OSN, items, (Payment(PaymentType.ELECTRONIC, Decimal("99.90")),), tag=tag)


@pytest.mark.parametrize("order", ["item_first", "tags_first"])
def test_driver_sells_in_either_order(make_server, make_driver, order) -> None:
    srv = make_server()
    drv = make_driver(srv, FAST + f"&marking_order={order}")
    drv.open_shift()
    doc = drv.fiscalize(_marked_sale())
    assert srv.model.document(doc.fd_number)["items"][0]["marking"]["2106"] == 0x0F


def test_driver_sells_unanswered_only_when_told(make_server, make_driver) -> None:
    srv = make_server()
    srv.model.ofd_link(False)  # no OFD: every online check times out (FN answer 0xFF)
    drv = make_driver(srv)
    drv.open_shift()
    with pytest.raises(DeviceStateError) as e:
        drv.fiscalize(_marked_sale())
    assert e.value.condition == "marking_check_timeout"
    sells = make_driver(srv, FAST + "&marking_unanswered=sell")
    doc = sells.fiscalize(_marked_sale("m-2"))
    stored = srv.model.document(doc.fd_number)
    assert stored["items"][0]["marking"]["2106"] == 0x00 and stored["2107"] == 1


def test_driver_rejects_a_declined_code(make_server, make_driver) -> None:
    srv = make_server()
    srv.model.set_marking_verdict(MILK, "invalid")
    drv = make_driver(srv)
    drv.open_shift()
    with pytest.raises(RejectedError, match=r"items\[0\]\.marking_code: code 04650194496163/5'oQ5YJ declined"):
        drv.fiscalize(_marked_sale())
    assert srv.model.marking_counters()["checked"] == 0 and not drv.status().receipt_open


def test_driver_status_reports_marking_blocked(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    assert not drv.status().marking_blocked
    srv.model.set_unsent_notifications(10_000)
    st = drv.status()
    assert st.marking_blocked and st.marking_unsent_notifications == 10_000


def test_ff61_tlv_for_a_measured_sale_matches_the_vendor_log() -> None:
    """1023 and 2108 as the real «Кассовое ядро» log of fr_drv_ng#249 writes them, plus 1291 {1293, 1294}."""
    from kkt_drivers.receipt import MeasureUnit, PlannedStatus
    from kkt_drivers.shtrih.marking_steps import check_tlv, fvln
    assert fvln(Decimal("1.000")) == H("0640420F")
    kg = Item("Сыр", Decimal("100"), Decimal("1"), Decimal("100"), Vat.VAT10, measure_unit=MeasureUnit.GRAM,
              payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=MILK)
    assert check_tlv(kg, PlannedStatus.MEASURED_SOLD) == H("3C0801000A") + H("FF0304000640420F")
    part = Item("Сигареты", Decimal("10"), Decimal("0.091"), Decimal("0.91"), Vat.VAT22, fraction=(2, 22),
                payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=MILK)
    tlv = check_tlv(part, PlannedStatus.MEASURED_SOLD)
    assert tlv.endswith(H("0B05" "0A00" "0D05" "0100" "02" "0E05" "0100" "16"))  # 1291 {1293 = 2, 1294 = 22}
    assert check_tlv(part, PlannedStatus.PIECE_SOLD) == b""
