"""The ATOL driver against the Web Requests emulator: keys, recovery by key, faults, URL options."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from kkt_drivers.atol import tasks as t
from kkt_drivers.atol.driver import AtolDriver
from kkt_drivers.errors import DeviceStateError, DriverConfigError, OutcomeUnknownError, TransientError
from kkt_drivers.registry import open_driver
from tests.atol.conftest import driver_url, sample_receipt


def receipts(srv) -> list[dict]:
    return [d for d in srv.model.documents() if d["kind"] == "receipt"]


def connected(url: str) -> AtolDriver:
    drv = open_driver(url)
    assert isinstance(drv, AtolDriver) and drv.lookup_by_key
    drv.connect()
    return drv


def test_status_reports_fn_serial_and_last_fd(atol_server) -> None:
    srv = atol_server()
    drv = connected(driver_url(srv))
    drv.open_shift("Иванов")
    doc = drv.fiscalize(sample_receipt())
    st = drv.status()
    assert (st.fn_serial, st.last_fd_number, st.shift_open, st.receipt_open) == \
        (srv.model.status().fn_serial, doc.fd_number, True, False)
    assert st.unsent_documents == 0 and st.model == "atol" and st.shift_opened_at is not None


def test_find_by_key_before_during_and_after(atol_server) -> None:
    """Never sent → None; running → OutcomeUnknown; done → the same document fiscalize returned."""
    srv = atol_server(task_delay_s=0.4)
    drv = connected(driver_url(srv))
    drv.open_shift()
    r = sample_receipt("order-k")
    assert drv.find_by_key(r) is None
    drv.transport.post(t.request_uuid(r), [t.receipt_task(r)], fiscal=True)   # as a crashed worker left it
    with pytest.raises(OutcomeUnknownError):
        drv.find_by_key(r)
    time.sleep(0.6)
    found = drv.find_by_key(r)
    assert found is not None and found.tag == "order-k" and found.total == Decimal("1200.00")
    assert drv.fiscalize(r) == found           # a resend reads the same request: 409, no new document
    assert len(receipts(srv)) == 1


def test_lost_200_after_ready_then_resend_prints_once(atol_server) -> None:
    srv = atol_server(faults={"lose_http_reply_after_ready": "first:1"})
    drv = connected(driver_url(srv))
    drv.open_shift()
    with pytest.raises(OutcomeUnknownError):
        drv.fiscalize(sample_receipt("order-l"))
    again = drv.fiscalize(sample_receipt("order-l"))
    assert again.tag == "order-l" and [d["fd"] for d in receipts(srv)] == [again.fd_number]


def test_certain_failure_moves_to_the_next_uuid(atol_server) -> None:
    """Paper out mid-receipt: error 44 (certainly not fiscalized); the next try uses generation 1 and
    find_by_key walks past the failed uuid to the document."""
    srv = atol_server(faults={"paper_out_mid_receipt": "first:1"})
    drv = connected(driver_url(srv))
    drv.open_shift()
    r = sample_receipt("order-p")
    with pytest.raises(DeviceStateError) as e:
        drv.fiscalize(r)
    assert e.value.condition == DeviceStateError.COND_PAPER_OUT and e.value.vendor_code.startswith("ATOL 44")
    assert drv.find_by_key(r) is None            # gen 0 failed, gen 1 never sent
    drv.cancel_receipt()
    srv.model.load_paper()
    doc = drv.fiscalize(r)
    assert drv.transport.get(t.request_uuid(r, 1))[0]["status"] == "ready"
    assert drv.find_by_key(r) == doc and len(receipts(srv)) == 1


def test_blocked_is_outcome_unknown_and_resolves(atol_server) -> None:
    srv = atol_server(faults={"lose_reply_after_close": "first:1"}, block_s=0.3)
    drv = connected(driver_url(srv))
    drv.open_shift()
    r = sample_receipt("order-b")
    with pytest.raises(OutcomeUnknownError, match="blocked"):
        drv.fiscalize(r)
    with pytest.raises(OutcomeUnknownError):
        drv.find_by_key(r)
    time.sleep(0.5)
    found = drv.find_by_key(r)
    assert found is not None and found.fd_number == receipts(srv)[0]["fd"]


def test_slow_register_is_outcome_unknown_never_a_second_print(atol_server) -> None:
    """The result does not come within fiscal_timeout: unknown; a retry reads the same uuid."""
    srv = atol_server(task_delay_s=0.6)
    drv = connected(driver_url(srv, "&fiscal_timeout=0.3").replace("fiscal_timeout=5&", ""))
    srv.model.open_shift()
    with pytest.raises(OutcomeUnknownError):
        drv.fiscalize(sample_receipt("order-s"))
    time.sleep(0.8)
    assert drv.fiscalize(sample_receipt("order-s")).tag == "order-s" and len(receipts(srv)) == 1


def test_queued_too_long_is_cancelled_and_transient(atol_server) -> None:
    """Still ``wait`` at the deadline: the driver cancels it (DELETE) — certainly not fiscalized."""
    srv = atol_server(task_delay_s=0.5)
    drv = connected(driver_url(srv, "&fiscal_timeout=0.2").replace("fiscal_timeout=5&", ""))
    drv.transport.post("busy", [{"type": "getFnStatus"}, {"type": "getFnStatus"}], fiscal=False)
    with pytest.raises(TransientError) as e:
        drv.fiscalize(sample_receipt("order-q"))
    assert not isinstance(e.value, OutcomeUnknownError)
    assert drv.transport.get(t.request_uuid(sample_receipt("order-q")))[0]["status"] == "canceled"


def test_fail_before_send_is_transient(atol_server) -> None:
    srv = atol_server(faults={"fail_before_send": "first:1"})
    drv = connected(driver_url(srv))
    drv.open_shift()
    with pytest.raises(TransientError) as e:
        drv.fiscalize(sample_receipt("order-f"))
    assert not isinstance(e.value, OutcomeUnknownError) and not receipts(srv)


def test_fn_error_is_device_state(atol_server) -> None:
    srv = atol_server(faults={"fn_error": "first:1"})
    drv = connected(driver_url(srv))
    drv.open_shift()
    with pytest.raises(DeviceStateError) as e:
        drv.fiscalize(sample_receipt("order-n"))
    assert e.value.condition == DeviceStateError.COND_FN_ERROR and not receipts(srv)


def test_basic_auth_from_environment(atol_server, monkeypatch) -> None:
    srv = atol_server(users={"kkt": "pw"})
    monkeypatch.setenv("TEST_ATOL_PW", "pw")
    assert connected(driver_url(srv, "&user=kkt&password_env=TEST_ATOL_PW")).status().last_fd_number == 0
    monkeypatch.setenv("TEST_ATOL_PW", "wrong")
    with pytest.raises(DriverConfigError):
        connected(driver_url(srv, "&user=kkt&password_env=TEST_ATOL_PW")).status()


def test_device_id_selects_the_register(atol_server) -> None:
    srv = atol_server(device_id="kassa-2")
    assert connected(driver_url(srv, "&device_id=kassa-2")).status().last_fd_number == 0
    with pytest.raises(DriverConfigError):
        connected(driver_url(srv, "&device_id=other")).status()


@pytest.mark.parametrize("url,what", [
    ("atol+http://kkt:secret@127.0.0.1:16732", "password_env"),
    ("atol+http://127.0.0.1:16732?colour=red", "colour"),
    ("atol+http://127.0.0.1:16732?user=kkt&password_env=NO_SUCH_VARIABLE_X", "NO_SUCH_VARIABLE_X"),
    ("atol+http://127.0.0.1:16732?timeout=-1", "timeout"),
    ("atol+libfptr://", "library path"),
    ("atol+libfptr:///x.so?baud=1", "baud"),
])
def test_bad_urls_are_refused_by_name(url: str, what: str) -> None:
    with pytest.raises(DriverConfigError, match=what) as e:
        open_driver(url)
    assert "secret" not in str(e.value)


def test_unreachable_service_is_transient() -> None:
    drv = open_driver("atol+http://127.0.0.1:9?timeout=1")
    with pytest.raises(TransientError) as e:
        drv.fiscalize(sample_receipt())
    assert not isinstance(e.value, OutcomeUnknownError)


def test_url_builds_the_service_address() -> None:
    drv = open_driver("atol+https://kassa.local:8443/api/v2/?verify=0&device_id=k2")
    tr = drv.transport
    assert (tr.base_url, tr.verify, tr.device_id, tr.auth) == ("https://kassa.local:8443/api/v2", False, "k2", None)
    assert open_driver("atol+http://10.0.0.20").transport.base_url == "http://10.0.0.20:16732/api/v2"


def test_same_tag_other_total_is_not_taken_as_ours(atol_server) -> None:
    """A receipt whose uuid already holds a document with another total: unknown (recovery reviews it)."""
    from dataclasses import replace as dc_replace

    from kkt_drivers.receipt import Item, Payment, PaymentType, Vat

    srv = atol_server()
    drv = connected(driver_url(srv))
    drv.open_shift()
    drv.fiscalize(sample_receipt("order-t"))
    changed = dc_replace(sample_receipt("order-t"),
                         items=(Item("Книга", Decimal("450.00"), Decimal("1"), Decimal("450.00"), Vat.NONE),),
                         payments=(Payment(PaymentType.ELECTRONIC, Decimal("450.00")),))
    with pytest.raises(OutcomeUnknownError, match="total"):
        drv.fiscalize(changed)
    assert len(receipts(srv)) == 1
