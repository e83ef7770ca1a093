"""ShtrihDriver against the Shtrih emulator over real TCP: flows, faults, error classes."""
from __future__ import annotations

import socket

import pytest

from kkt_drivers.errors import (
    DeviceStateError,
    DriverConfigError,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from kkt_drivers.receipt import DocumentKind, Operation
from kkt_drivers.registry import open_driver
from kkt_drivers.shtrih.driver import ShtrihDriver, parse_shtrih_url
from kkt_drivers.shtrih.server import parse_faults

from .conftest import FAST, sale


def _receipts(server) -> list[dict]:
    return [d for d in server.model.documents() if d["kind"] == "receipt"]


def test_given_fresh_register_when_status_then_shift_closed_and_no_documents(make_server,
                                                                             make_driver) -> None:
    st = make_driver(make_server(serial="0000000000001234")).status()
    assert (st.shift_open, st.receipt_open, st.last_fd_number, st.paper_ok) == (False, False, 0, True)
    assert st.register_serial == "1234" and len(st.fn_serial) == 16 and st.model == "shtrih-m"


def test_sale_and_refund_are_fiscalized_and_read_back_with_tag(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    opened = drv.open_shift()
    assert (opened.kind, opened.fd_number, opened.shift_number) == (DocumentKind.OPEN_SHIFT, 1, 1)
    doc = drv.fiscalize(sale("pay-1"))
    refund = drv.fiscalize(sale("pay-1-r", Operation.SALE_REFUND))
    assert drv.status().shift_opened_at == opened.issued_at  # found from FF40 + FF0A
    assert (doc.fd_number, refund.fd_number) == (2, 3)
    back = drv.document(3)
    assert back is not None and back.tag == "pay-1-r" and back.operation is Operation.SALE_REFUND
    assert back.total == sale().total and back.fiscal_sign == refund.fiscal_sign and back.receipt_number == 2
    stored = srv.model.document(2)
    assert stored["requisites"]["1008"] == "buyer@example.ru" and stored["requisites"]["1125"] == 1
    assert [i["vat"] for i in stored["items"]] == [11, 1]  # 22 % and 20 % survive the wire
    assert drv.document(99) is None
    closed = drv.close_shift()
    assert closed.kind is DocumentKind.CLOSE_SHIFT and drv.status().shift_open is False


def test_second_open_shift_is_device_state_shift_open(make_server, make_driver) -> None:
    drv = make_driver(make_server())
    drv.open_shift()
    with pytest.raises(DeviceStateError) as e:
        drv.open_shift()
    assert e.value.condition == DeviceStateError.COND_SHIFT_OPEN and e.value.vendor_code.startswith("0x3C")


def test_receipt_in_closed_shift_is_device_state_shift_closed(make_server, make_driver) -> None:
    srv = make_server()
    with pytest.raises(DeviceStateError) as e:
        make_driver(srv).fiscalize(sale())
    assert e.value.condition == DeviceStateError.COND_SHIFT_CLOSED and not _receipts(srv)


def test_expired_shift_refuses_receipts_but_allows_z_report(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    drv.open_shift()
    srv.model.advance_clock(25 * 3600)
    assert drv.status().shift_expired
    with pytest.raises(DeviceStateError) as e:
        drv.fiscalize(sale())
    assert e.value.condition == DeviceStateError.COND_SHIFT_EXPIRED and e.value.vendor_code.startswith("0x4E")
    assert drv.close_shift().kind is DocumentKind.CLOSE_SHIFT


def test_paper_out_mid_receipt_then_receipt_is_cancellable(make_server, make_driver) -> None:
    srv = make_server(faults_options={"paper_out_mid_receipt": "first:1"})
    drv = make_driver(srv)
    drv.open_shift()
    with pytest.raises(DeviceStateError) as e:
        drv.fiscalize(sale())
    assert e.value.condition == DeviceStateError.COND_PAPER_OUT and e.value.vendor_code.startswith("0x6B")
    st = drv.status()
    assert st.receipt_open and not st.paper_ok
    drv.cancel_receipt()
    assert not drv.status().receipt_open
    srv.model.load_paper()
    drv.continue_print()
    assert drv.fiscalize(sale("pay-2")).tag == "pay-2"
    assert [d["tag"] for d in _receipts(srv)] == ["pay-2"]


def test_fail_before_send_is_transient_and_nothing_is_fiscalized(make_server, make_driver) -> None:
    srv = make_server(faults_options={"fail_before_send": "first:1"})
    drv = make_driver(srv)
    drv.open_shift()
    with pytest.raises(TransientError) as e:
        drv.fiscalize(sale())
    assert not isinstance(e.value, OutcomeUnknownError) and not _receipts(srv)
    assert drv.fiscalize(sale()).tag == "pay-1"  # the driver reconnects by itself


def test_lost_reply_after_close_is_outcome_unknown_and_document_exists(make_server, make_driver) -> None:
    srv = make_server(faults_options={"lose_reply_after_close": "first:1"})
    drv = make_driver(srv)
    drv.open_shift()
    with pytest.raises(OutcomeUnknownError):
        drv.fiscalize(sale("pay-7"))
    st = drv.status()
    found = drv.document(st.last_fd_number)
    assert found is not None and found.tag == "pay-7" and not st.receipt_open


def test_lost_close_is_outcome_unknown_and_no_document_exists(make_server, make_driver) -> None:
    srv = make_server(faults_options={"lose_reply_before_close": "first:1"})
    drv = make_driver(srv)
    drv.open_shift()
    with pytest.raises(OutcomeUnknownError):
        drv.fiscalize(sale("pay-8"))
    assert drv.document(2) is None and drv.status().receipt_open
    drv.cancel_receipt()
    assert not _receipts(srv)


def test_fn_refusing_the_close_is_device_state_not_outcome_unknown(make_server, make_driver) -> None:
    srv = make_server(faults_options={"fn_error": "first:1"})
    drv = make_driver(srv)
    drv.open_shift()
    with pytest.raises(DeviceStateError) as e:
        drv.fiscalize(sale())
    assert e.value.condition == DeviceStateError.COND_FN_ERROR and not _receipts(srv)


def test_dropped_answer_is_fetched_with_enq_not_executed_twice(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    drv.open_shift()
    srv.faults.rules.update(parse_faults({"drop_answer": "first:1"}).rules)  # armed after the shift opened
    doc = drv.fiscalize(sale("pay-9"))  # the 8D answer is dropped, recovered via ENQ → ACK
    assert doc.tag == "pay-9" and len(_receipts(srv)) == 1


def test_corrupted_lrc_answers_are_nakked_and_repeated(make_server, make_driver) -> None:
    srv = make_server(faults_options={"corrupt_lrc": "0.15"}, seed=5)
    drv = make_driver(srv)
    drv.open_shift()
    for n in range(5):
        drv.fiscalize(sale(f"pay-{n}"))
    assert [d["tag"] for d in _receipts(srv)] == [f"pay-{n}" for n in range(5)]
    assert srv.faults.fired.get("corrupt_lrc", 0) > 0


def test_ff_filler_after_ack_is_skipped(make_server, make_driver) -> None:
    srv = make_server(ff_after_ack=True)
    drv = make_driver(srv)
    drv.open_shift()
    assert drv.fiscalize(sale()).fd_number == 2


def test_answer_slower_than_timeout_is_transient_and_link_recovers(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    srv.answer_delay_s = 1.0
    with pytest.raises(TransientError):
        drv.status()
    srv.answer_delay_s = 0.0
    assert drv.status().shift_open is False


def test_slow_z_report_uses_the_long_timeout(make_server, make_driver) -> None:
    srv = make_server(z_report_delay_s=1.5)
    drv = make_driver(srv)  # timeout=1 s, long_timeout=3 s
    drv.open_shift()
    assert drv.close_shift().kind is DocumentKind.CLOSE_SHIFT


def test_inconsistent_receipt_is_rejected_before_anything_is_sent(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv)
    drv.open_shift()
    bad = sale()
    bad = type(bad)(**{**bad.__dict__, "payments": bad.payments[:0]})
    with pytest.raises(RejectedError) as e:
        drv.fiscalize(bad)
    assert e.value.field == "payments" and not drv.status().receipt_open


def test_wrong_password_pauses_the_lane(make_server, make_driver) -> None:
    srv = make_server()
    drv = make_driver(srv, FAST + "&password=99")  # admin commands still work, cashier ones do not
    with pytest.raises(DeviceStateError) as e:
        drv.status()
    assert e.value.vendor_code.startswith("0x4F")


def test_unreachable_register_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    drv = ShtrihDriver.from_url(f"shtrih+socket://127.0.0.1:{port}?{FAST}")
    with pytest.raises(TransientError):
        drv.connect()


@pytest.mark.parametrize("url,expected", [
    ("shtrih+socket://10.0.0.5:7778?password=1", "socket://10.0.0.5:7778"),
    ("shtrih://10.0.0.5:7778", "socket://10.0.0.5:7778"),
    ("shtrih+serial:///dev/ttyUSB0?baudrate=115200", "/dev/ttyUSB0"),
    ("shtrih+rfc2217://h:2217", "rfc2217://h:2217"),
    ("shtrih+spy:///dev/ttyS0?spy_file=/tmp/x.log", "spy:///dev/ttyS0?file=/tmp/x.log"),
])
def test_url_forms(url: str, expected: str) -> None:
    assert parse_shtrih_url(url)[0] == expected
    assert isinstance(open_driver(url), ShtrihDriver)


@pytest.mark.parametrize("url", ["shtrih+socket://h:7778?pasword=30", "shtrih+socket://h", "shtrih+serial://",
                                 "shtrih+socket://h:7778?timeout=soon",
                                 "shtrih+socket://h:7778?spy_file=x"])
def test_bad_urls_are_refused_by_name(url: str) -> None:
    with pytest.raises(DriverConfigError):
        ShtrihDriver.from_url(url)


def test_server_survives_garbage_and_keeps_serving(make_server, make_driver) -> None:
    srv = make_server()
    host, port = srv.address
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(bytes.fromhex("02 01 FF FE") + b"\x02\x03\x10\x00")  # a lone FF, then a bad LRC
        s.settimeout(1)
        assert s.recv(16).count(0x15) >= 1  # NAKed, not crashed
        s.sendall(bytes([0x05]))
        assert s.recv(1) in (b"\x15",)
    assert make_driver(srv).status().shift_open is False


def test_given_unknown_command_when_sent_then_register_answers_0x37(make_server) -> None:
    from kkt_drivers.shtrih import protocol as p
    srv = make_server()
    answer = srv.emulation.handle(p.command_bytes(0x80) + p.u32(30) + bytes(60))
    assert p.parse_answer(answer).error == 0x37


def test_answer_arriving_just_after_the_timeout_is_taken_not_reexecuted(make_server, make_driver) -> None:
    srv = make_server()
    # items' and the close's answers come 0.1 s after the 0.4 s timeout, while the driver's ENQ
    # waits for a reply
    drv = make_driver(srv, "timeout=0.4&status_timeout=0.4&long_timeout=3&byte_timeout=0.3")
    drv.open_shift()
    srv.answer_delay_s, srv.delayed_commands = 0.5, {0xFF46, 0xFF45}
    doc = drv.fiscalize(sale("late-1"))
    srv.answer_delay_s = 0.0
    assert doc.tag == "late-1" and [d["tag"] for d in _receipts(srv)] == ["late-1"]
    assert len(_receipts(srv)[0]["items"]) == 2  # no item was executed twice
    assert drv.status().last_fd_number == 2


def test_transport_errors_are_transient() -> None:
    from kkt_drivers.transport import open_stream
    with pytest.raises(TransientError):
        open_stream("nosuchscheme://x")
    with pytest.raises(TransientError):
        open_stream("/dev/nonexistent-tty-for-test")


def test_serve_cli_runs_a_register_until_interrupted(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "kkt_drivers.shtrih.server", str(tmp_path / "cli"),
                             "--port", str(port), "--serial", "0000000000000077",
                             "--fault", "lose_reply_after_close=first:1"], env=env,
                            # a run started from a background shell inherits SIGINT ignored, and Python then
                            # installs no KeyboardInterrupt handler: give the child the default disposition
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        drv = ShtrihDriver.from_url(f"shtrih+socket://127.0.0.1:{port}?{FAST}")
        for _ in range(50):
            try:
                drv.connect()
                break
            except TransientError:
                time.sleep(0.1)
        assert drv.status().register_serial == "77"
        drv.open_shift()
        with pytest.raises(OutcomeUnknownError):
            drv.fiscalize(sale())
        drv.disconnect()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0


def test_shift_counters_from_the_registers_then_from_the_z_report_in_the_fn(make_server, make_driver) -> None:
    """Open shift: cash/operational registers (1A/1B). After the Z report clears them: the FN's
    close-shift report (1194 read with FF3A/FF3B), found by FF0A from the last document back."""
    from decimal import Decimal

    srv = make_server()
    drv = make_driver(srv)
    drv.open_shift()
    drv.fiscalize(sale("cnt-1"))
    drv.fiscalize(sale("cnt-2", Operation.SALE_REFUND))
    running = drv.shift_totals(1)
    assert running is not None and not running.final and "1Ah" in running.source
    assert running.operations["sale"].count == 1 and running.amount("sale") == Decimal("1699.80")
    assert running.operations["sale_refund"].by_payment == {"electronic": Decimal("1699.80")}
    srv.model.tamper_counter("sale", "1.00", "cash")      # the register's counter drifts before the Z report
    z = drv.close_shift()
    final = drv.shift_totals(1)
    assert final is not None and final.final and final.source == f"Z report FD {z.fd_number} (FN tag 1194)"
    assert final.amount("sale") == Decimal("1700.80") and final.operations["sale"].by_payment["cash"] == Decimal("1.00")
    assert final.operations["sale_refund"].count == 1 and final.amount("expense") == Decimal("0.00")
    assert drv.shift_totals(2) is None and drv.shift_totals() is not None
