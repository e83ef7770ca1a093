"""ShtrihDriver speaking the vendor's order and bytes: settings checks, cashier, 2108, corrections,
text, FN validity, error classes, and waits that always end (noise, stop signal)."""
from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from decimal import Decimal

import pytest

from kkt_drivers.errors import (
    DeviceStateError, DriverConfigError, OutcomeUnknownError, RejectedError, TransientError,
)
from kkt_drivers.receipt import (
    Correction, DocumentKind, Item, MeasureUnit, Operation, Payment, PaymentType, Receipt, TaxSystem, Vat,
)
from kkt_drivers.shtrih import codes
from kkt_drivers.shtrih.driver import ShtrihDriver

from .conftest import FAST, sale


def one_item(name: str = "Товар", vat: Vat = Vat.VAT22, unit: MeasureUnit = MeasureUnit.PIECE,
             qty: str = "1", tag: str = "t-1", **kw: object) -> Receipt:
    price = Decimal("100.00")
    amount = price * Decimal(qty)
    return Receipt(operation=Operation.SALE, tax_system=TaxSystem.OSN,
                   items=(Item(name, price, Decimal(qty), amount, vat, measure_unit=unit),),
                   payments=(Payment(PaymentType.ELECTRONIC, amount),), tag=tag, **kw)  # type: ignore[arg-type]


# -- settings refused at connect ---------------------------------------------------------------
@pytest.mark.parametrize("tables,needle", [
    ({(17, 1, 71): 1}, "table 17 row 1 field 71"),
    ({(1, 1, 14): 1}, "table 1 row 1 field 14"),
])
def test_register_contradicting_the_worker_is_refused_at_connect(make_server, tables, needle) -> None:
    srv = make_server(tables=tables)
    host, port = srv.address
    drv = ShtrihDriver.from_url(f"shtrih+socket://{host}:{port}?{FAST}")
    with pytest.raises(DriverConfigError) as e:
        drv.connect()
    assert needle in str(e.value) and "must be" in str(e.value)
    assert not drv._connected


def test_20_percent_refund_would_print_22_so_mode_1_is_refused_with_the_reason(make_server) -> None:
    srv = make_server(tables={(17, 1, 71): 1})
    host, port = srv.address
    with pytest.raises(DriverConfigError) as e:
        ShtrihDriver.from_url(f"shtrih+socket://{host}:{port}?{FAST}").connect()
    assert "20 %" in str(e.value) and "2025" in str(e.value)


def test_register_without_22_percent_row_is_refused(make_server) -> None:
    srv = make_server(unlicensed_rows={11})
    host, port = srv.address
    with pytest.raises(DriverConfigError) as e:
        ShtrihDriver.from_url(f"shtrih+socket://{host}:{port}?{FAST}").connect()
    assert "table 6 row 11" in str(e.value)


def test_settings_check_can_be_switched_off(make_server, make_driver) -> None:
    drv = make_driver(make_server(tables={(17, 1, 71): 1}), FAST + "&check_settings=0")
    assert drv.status().shift_open is False


def test_unlicensed_5_percent_refuses_only_receipts_using_it_before_sending(make_server, make_driver) -> None:
    srv = make_server(unlicensed_rows={7})
    drv = make_driver(srv)
    drv.open_shift()
    with pytest.raises(DriverConfigError) as e:
        drv.fiscalize(one_item(vat=Vat.VAT5))
    assert "table 6 row 7" in str(e.value) and not drv.status().receipt_open
    assert drv.fiscalize(one_item(vat=Vat.VAT22, tag="t-2")).tag == "t-2"


def test_factory_register_changed_by_1e_is_refused_by_status_after_reconnect(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    srv.emulation.set_table(17, 1, 71, 1)
    drv.disconnect()
    with pytest.raises(DriverConfigError):
        drv.connect()


# -- bytes on the register ---------------------------------------------------------------------
def test_vendor_tax_bytes_by_model() -> None:
    assert [codes.tax_byte(v) for v in (Vat.VAT20, Vat.NONE, Vat.VAT5, Vat.VAT107, Vat.VAT22, Vat.VAT122)] == \
        [0x01, 0x08, 0x81, 0x88, 0xCB, 0xCC]
    assert [codes.tax_byte(v, nano=True) for v in (Vat.VAT22, Vat.VAT122, Vat.VAT5)] == [0x90, 0xA0, 0x81]
    assert all(codes.tax_byte(v) & 0xF0 != 0x40 for v in Vat)


def test_nano_gets_nano_bytes_and_records_22_percent(make_server, make_driver) -> None:
    srv = make_server(nano=True)
    drv = make_driver(srv)
    assert drv.nano
    drv.open_shift()
    drv.fiscalize(sale("n-1"))
    assert [i["vat"] for i in srv.model.document(2)["items"]] == [11, 1]


def test_kilograms_reach_the_register_as_2108(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    drv.open_shift()
    drv.fiscalize(one_item("Сыр", unit=MeasureUnit.KILOGRAM, qty="1.5"))
    item = srv.model.document(2)["items"][0]
    assert (item["unit"], item["quantity"]) == (11, "1.500")


def test_cashier_is_sent_with_ff41_and_ff42(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    opened = drv.open_shift("Петрова А.А.")
    closed = drv.close_shift("Петрова А.А.")
    assert (opened.kind, closed.kind) == (DocumentKind.OPEN_SHIFT, DocumentKind.CLOSE_SHIFT)
    assert [d["cashier"] for d in srv.model.documents()] == ["Петрова А.А.", "Петрова А.А."]


def test_ffd12_correction_goes_through_8d_0x80(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    drv.open_shift()
    r = one_item(tag="c-1", correction=Correction(False, dt.date(2025, 12, 30), "ФНС-17"))
    doc = drv.fiscalize(r)
    assert doc.kind is DocumentKind.CORRECTION
    stored = srv.model.document(doc.fd_number)
    assert stored["correction"] == {"1173": 1, "1178": "2025-12-30", "1179": "ФНС-17"}


# -- text ---------------------------------------------------------------------------------------
def test_known_symbols_are_transliterated_not_questioned(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    drv.open_shift()
    drv.fiscalize(one_item("Коробка 50×90 «Люкс» — №5", customer_contact="«a»@example.ru"))
    doc = srv.model.document(2)
    # the FF46 name is CP1251, which has «», — and №; only × needs the agreed replacement
    assert doc["items"][0]["name"] == "Коробка 50x90 «Люкс» — №5"
    assert doc["requisites"]["1008"] == '"a"@example.ru'  # TLVs are CP866, which lacks «»


def test_unprintable_characters_are_rejected_naming_the_field(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    drv.open_shift()
    with pytest.raises(RejectedError) as e:
        drv.fiscalize(one_item("Торт 🎂"))
    assert e.value.field == "items[0].name" and "U+1F382" in str(e.value)
    with pytest.raises(RejectedError) as e:
        drv.fiscalize(one_item(customer_contact="клиент✓@example.ru"))
    assert e.value.field == "customer_contact"
    assert not drv.status().receipt_open and len(srv.model.documents()) == 1


# -- status and error classes ------------------------------------------------------------------
def test_status_reports_fn_validity_from_ff03(make_server, make_driver) -> None:
    st = make_driver(make_server()).status()
    assert dt.date.fromisoformat(st.extra["fn_valid_until"]) > dt.date.today() and st.fn_ok


@pytest.mark.parametrize("code,cls,condition", [
    (0x4B, RejectedError, None), (0x4D, RejectedError, None), (0x5F, RejectedError, None),
    (0x61, RejectedError, None), (0x62, RejectedError, None), (0x90, RejectedError, None),
    (0x8E, RejectedError, None),
    (0x59, DeviceStateError, DeviceStateError.COND_RECEIPT_OPEN), (0x71, DeviceStateError, "other"),
    (0x77, DeviceStateError, "other"), (0xC2, DeviceStateError, "other"),
])
def test_missing_error_codes_are_classified(code: int, cls: type, condition: str | None) -> None:
    err = codes.error_for(code, 0xFF45)
    assert type(err) is cls and "неизвестная" not in (err.vendor_code or "")
    if condition:
        assert err.condition == condition


# -- waits that end ----------------------------------------------------------------------------
class NoisyLine:
    """A TCP peer that answers everything with continuous noise (no ACK/NAK/STX ever)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._noise, args=(conn,), daemon=True).start()

    def _noise(self, conn: socket.socket) -> None:
        with conn:
            while not self.stop.is_set():
                try:
                    conn.sendall(b"\x30\xAA\x55" * 64)
                except OSError:
                    return
                time.sleep(0.005)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _run_bounded(fn, limit_s: float) -> BaseException | None:
    """Run *fn* in a thread; fail the test (instead of hanging it) if it outlives *limit_s*."""
    out: list[BaseException | None] = [None]

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out[0] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), f"still waiting after {limit_s} s: the wait has no deadline"
    return out[0]


def test_continuous_noise_ends_in_transient_error_within_the_deadline() -> None:
    line = NoisyLine()
    try:
        drv = ShtrihDriver.from_url(f"shtrih+socket://127.0.0.1:{line.port}?{FAST}")
        # FAST: status timeout 0.4 s, byte timeout 0.3 s → the exchange deadline is 2.6 s
        err = _run_bounded(drv.connect, 15)
        assert isinstance(err, TransientError) and not isinstance(err, OutcomeUnknownError)
    finally:
        line.close()


def test_stop_signal_ends_a_wait_on_a_noisy_line() -> None:
    line = NoisyLine()
    try:
        drv = ShtrihDriver.from_url(f"shtrih+socket://127.0.0.1:{line.port}?timeout=60&status_timeout=60"
                                    "&byte_timeout=30&long_timeout=60")
        drv.cancel_event = stop = threading.Event()
        threading.Timer(0.2, stop.set).start()
        err = _run_bounded(drv.connect, 10)   # without the stop this would wait minutes
        assert isinstance(err, TransientError) and "stop requested" in str(err)
    finally:
        line.close()


def test_stop_while_waiting_for_ff45_is_outcome_unknown_never_silence(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv, "timeout=30&status_timeout=2&long_timeout=30&byte_timeout=0.3")
    drv.open_shift()
    srv.answer_delay_s, srv.delayed_commands = 2.0, {0xFF45}
    drv.cancel_event = stop = threading.Event()
    threading.Timer(0.8, stop.set).start()
    with pytest.raises(OutcomeUnknownError):
        drv.fiscalize(sale("stop-1"))
    time.sleep(1.5)  # the register finishes what it received
    assert [d["tag"] for d in srv.model.documents() if d["kind"] == "receipt"] == ["stop-1"]


def test_connection_closed_by_the_register_while_idle_is_reopened_transparently(make_server, make_driver) -> None:
    srv = make_server(idle_timeout_s=0.3)
    drv = make_driver(srv)
    drv.open_shift()
    time.sleep(0.8)  # the register's TCP server drops the silent connection
    assert drv.fiscalize(sale("idle-1")).tag == "idle-1"


class LateNakRegister:
    """A peer that takes a command frame but answers it with NAK (as a late NAK to an earlier ENQ
    looks on the wire), keeping the answer pending: a host that simply re-sends runs it twice."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.executed = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        pending = None
        answer = bytes([0x02, 0x03, 0x10, 0x00, 0x1E, 0x03 ^ 0x10 ^ 0x00 ^ 0x1E])
        with conn:
            while True:
                b = conn.recv(1)
                if not b:
                    return
                if b[0] == 0x05:
                    conn.sendall(b"\x15" if pending is None else b"\x06" + pending)
                elif b[0] == 0x02:
                    n = conn.recv(1)[0]
                    conn.recv(n + 1)
                    self.executed += 1
                    pending = answer
                    conn.sendall(b"\x15")
                elif b[0] == 0x06:
                    pending = None


def test_a_nak_to_a_frame_is_checked_with_enq_before_repeating() -> None:
    from kkt_drivers.shtrih.link import Link
    from kkt_drivers.transport import Stream
    peer = LateNakRegister()
    link = Link(lambda: Stream(f"socket://127.0.0.1:{peer.port}", timeout=0.3), byte_timeout=0.3)
    try:
        answer = link.exchange(bytes([0x10]) + (30).to_bytes(4, "little"), 1.0)
    finally:
        link.close()
        peer.sock.close()
    assert (answer.cmd, answer.error, peer.executed) == (0x10, 0, 1)
