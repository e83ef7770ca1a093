"""The ATOL Online driver against its emulator: tokens, polling deadlines, failures, TLS."""
from __future__ import annotations

import socket
from typing import Callable

import pytest

from kkt_drivers.atol_online.driver import AtolOnlineDriver, ServiceManagedError
from kkt_drivers.atol_online.server import parse_faults
from kkt_drivers.emulators import RunningEmulator
from kkt_drivers.errors import DeviceStateError, DriverConfigError, OutcomeUnknownError, TransientError
from kkt_drivers.registry import open_driver
from tests.atol_online.test_protocol import sale


def receipts(emu: RunningEmulator) -> list[dict]:
    return [d for d in emu.model.documents() if d["kind"] == "receipt"]


def driver(emu: RunningEmulator) -> AtolOnlineDriver:
    drv = open_driver(emu.test_url)
    assert isinstance(drv, AtolOnlineDriver)
    drv.connect()
    return drv


def test_expired_token_is_renewed_transparently(make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service()
    drv = driver(emu)
    first = drv.fiscalize(sale("T1"))
    emu.server.service.expire_tokens()
    second = drv.fiscalize(sale("T2"))
    assert second.fd_number == first.fd_number + 1
    assert [d["tag"] for d in receipts(emu)] == ["T1", "T2"]


def test_slow_service_is_unknown_then_found_by_key(make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service(done_delay_s=1.5)
    drv = driver(emu)
    drv.report_deadline_s = 0.3
    with pytest.raises(OutcomeUnknownError, match="still 'wait'"):
        drv.fiscalize(sale("SLOW"))
    drv.report_deadline_s = 5
    doc = drv.find_by_key(sale("SLOW"))
    assert doc is not None and doc.tag == "SLOW" and [d["fd"] for d in receipts(emu)] == [doc.fd_number]
    assert len(emu.server.service.requests()) == 1


def test_failed_registration_is_device_state_then_a_new_generation(
        make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service(faults={"fn_error": "first:1"})
    drv = driver(emu)
    with pytest.raises(DeviceStateError) as e:
        drv.fiscalize(sale("FN1"))
    assert e.value.condition == DeviceStateError.COND_FN_ERROR and e.value.vendor_code == "driver:-3910"
    assert drv.find_by_key(sale("FN1")) is not None   # the key walk registers generation 2 once
    doc = drv.fiscalize(sale("FN1"))                   # …and a later call follows it, no third request
    assert [d["fd"] for d in receipts(emu)] == [doc.fd_number]
    assert sorted(r["external_id"] for r in emu.server.service.requests()) == ["FN1.sell", "FN1.sell.2"]


def test_rate_limit_on_registration_is_transient_and_while_polling_tolerated(
        make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service(faults={"fail_before_send": "first:1"})
    drv = driver(emu)
    with pytest.raises(TransientError) as e:
        drv.fiscalize(sale("R1"))
    assert not isinstance(e.value, OutcomeUnknownError) and not emu.server.service.requests()
    uuid = drv._register(sale("R1"))   # accepted; now the service starts refusing for a while
    emu.server.service.faults.rules.update(parse_faults({"rate_limit": "first:2"}).rules)
    assert drv._poll(uuid).status == "done"
    assert emu.server.service.faults.fired["rate_limit"] == 2


def test_unreachable_service_is_transient(make_service: Callable[..., RunningEmulator]) -> None:
    emu = make_service()
    url = emu.test_url
    emu.stop()
    with socket.socket() as s:   # nothing listens on the old port any more (best effort)
        s.settimeout(0.2)
        assert s.connect_ex(emu.server.address) != 0
    drv = open_driver(url)
    with pytest.raises(TransientError) as e:
        drv.fiscalize(sale("U1"))
    assert not isinstance(e.value, OutcomeUnknownError)


def test_status_and_service_managed_operations(make_service: Callable[..., RunningEmulator]) -> None:
    drv = driver(make_service())
    st = drv.status()
    assert st.shift_open and not st.shift_expired and not st.receipt_open and st.paper_ok
    assert st.fn_serial == "" and st.last_fd_number == 0 and st.register_serial == "emulator-group"
    for call in (drv.open_shift, drv.close_shift, drv.x_report, lambda: drv.document(1)):
        with pytest.raises(ServiceManagedError):
            call()
    drv.cancel_receipt()   # nothing is ever open on our side


def test_https_verified_against_the_test_certificate(make_service: Callable[..., RunningEmulator],
                                                     self_signed: tuple[str, str]) -> None:
    cert, key = self_signed
    emu = make_service(certfile=cert, keyfile=key)
    drv = open_driver(emu.test_url)
    assert drv.fiscalize(sale("TLS1")).tag == "TLS1"
    unverified = open_driver(emu.test_url.replace(f"verify={cert.replace('/', '%2F')}", "verify=1"))
    with pytest.raises(TransientError):
        unverified.fiscalize(sale("TLS2"))
    assert [d["tag"] for d in receipts(emu)] == ["TLS1"]


def test_company_mismatch_fails_as_a_config_error(make_service: Callable[..., RunningEmulator]) -> None:
    """A group registered with another payment address: agent error 2 → config (stop the lane), nothing made."""
    emu = make_service()
    drv = open_driver(emu.test_url.replace("payment_address=https%3A%2F%2Fshop.example.ru",
                                           "payment_address=https%3A%2F%2Fother.example.ru"))
    with pytest.raises(DriverConfigError) as e:
        drv.fiscalize(sale("CFG1"))
    assert e.value.vendor_code == "agent:2" and receipts(emu) == []
