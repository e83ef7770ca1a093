"""Transport 2 (libfptr10 ``processJson`` via ctypes) against a fake shared object compiled here.

The real libfptr10 is not installed on this machine: ``fake_libfptr10.c`` exports the same C entry
points our transport calls and answers from environment variables, so these tests prove the ctypes
plumbing (wide strings, buffer sizing, handle lifecycle, settings) and the error classification —
not ATOL's own behaviour.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kkt_drivers.atol.driver import AtolDriver
from kkt_drivers.errors import DeviceStateError, DriverConfigError, OutcomeUnknownError, RejectedError
from kkt_drivers.receipt import DocumentKind
from kkt_drivers.registry import open_driver
from tests.atol.conftest import sample_receipt

HERE = Path(__file__).parent
FISCAL_PARAMS = {"fiscalParams": {"fiscalDocumentNumber": 77, "fiscalDocumentSign": "1234567890",
                                  "fiscalDocumentDateTime": "2026-11-30T12:00:00", "shiftNumber": 3,
                                  "fnNumber": "9999078900012345", "total": 1200.00, "fiscalReceiptNumber": 9}}


@pytest.fixture(scope="module")
def libfptr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the fake libfptr10")
    out = tmp_path_factory.mktemp("fptr") / "libfptr10.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(HERE / "fake_libfptr10.c")], check=True)
    return out


@pytest.fixture
def fptr_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "fptr.log"
    monkeypatch.setenv("FAKE_FPTR_LOG", str(log))
    return log


def answer(monkeypatch: pytest.MonkeyPatch, task: str, body: dict) -> None:
    monkeypatch.setenv(f"FAKE_FPTR_ANSWER_{task}", json.dumps(body))


@pytest.fixture(autouse=True)
def fn_status(monkeypatch: pytest.MonkeyPatch) -> None:
    answer(monkeypatch, "getFnStatus", {"fnStatus": {"fiscalDocumentNumber": 76}})


def test_sell_goes_through_process_json(libfptr: Path, fptr_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings applied, the task written as JSON with exact amounts, the answer parsed to a document."""
    answer(monkeypatch, "sell", FISCAL_PARAMS)
    drv = open_driver(f"atol+libfptr://{libfptr}?setting.Model=500&setting.Port=2&setting.IPAddress=10.0.0.5")
    assert isinstance(drv, AtolDriver) and not drv.lookup_by_key
    drv.connect()
    doc = drv.fiscalize(sample_receipt("order-lib"))
    drv.disconnect()
    assert (doc.fd_number, doc.fiscal_sign, doc.tag, str(doc.total)) == (77, 1234567890, "order-lib", "1200.00")
    log = fptr_log.read_text(encoding="utf-8")
    assert "setting Model=500" in log and "setting IPAddress=10.0.0.5" in log and "open" in log
    sent = [line[5:] for line in log.splitlines() if line.startswith("json ")]
    assert sent[0] == '{"type":"getFnStatus"}'    # the FD counter before the receipt
    assert len(sent) == 2 and '"type":"sell"' in sent[1] and '"price":450.00' in sent[1] and "Книга" in sent[1]
    assert log.rstrip().endswith("destroy")


def test_long_answers_grow_the_buffer(libfptr: Path, fptr_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tlv = {"documentTLV": {"fiscalDocumentType": "openShift", "1040": 1, "1077": 5, "1041": "9999078900012345",
                           "1012": "2026-11-30T09:00:00", "1038": 1, "padding": "x" * 9000}}
    answer(monkeypatch, "getFnDocument", tlv)
    doc = open_driver(f"atol+libfptr://{libfptr}").document(1)
    assert doc is not None and doc.kind is DocumentKind.OPEN_SHIFT


@pytest.mark.parametrize("code,error", [(2, OutcomeUnknownError), (177, OutcomeUnknownError),
                                        (115, OutcomeUnknownError), (44, DeviceStateError),
                                        (68, DeviceStateError), (227, RejectedError)])
def test_fiscal_errors_are_classified(libfptr: Path, fptr_log: Path, monkeypatch: pytest.MonkeyPatch,
                                      code: int, error: type) -> None:
    """No service re-reads the FD counter for us: a link or FN fault during a receipt is unknown."""
    monkeypatch.setenv("FAKE_FPTR_ERROR_sell", str(code))
    with pytest.raises(error) as e:
        open_driver(f"atol+libfptr://{libfptr}").fiscalize(sample_receipt())
    assert e.value.vendor_code.startswith(f"ATOL {code} fake error")


def test_refusal_after_which_the_fd_counter_moved_is_unknown(libfptr: Path, fptr_log: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Paper ran out, but the FN took the document (FD 76 → 77): not "refused" — outcome unknown."""
    monkeypatch.setenv("FAKE_FPTR_ERROR_sell", "44")
    answer(monkeypatch, "getFnStatus_AFTER_ERROR", {"fnStatus": {"fiscalDocumentNumber": 77}})
    with pytest.raises(OutcomeUnknownError, match="76 to 77"):
        open_driver(f"atol+libfptr://{libfptr}").fiscalize(sample_receipt())


def test_status_and_missing_document(libfptr: Path, fptr_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answer(monkeypatch, "getShiftStatus", {"shiftStatus": {"state": "opened", "number": 3,
                                                           "expiredTime": "2026-12-01T09:00:00"}})
    answer(monkeypatch, "getFnStatus", {"fnStatus": {"fiscalDocumentNumber": 77}})
    answer(monkeypatch, "getFnInfo", {"fnInfo": {"serial": "9999078900012345"}})
    answer(monkeypatch, "getDeviceStatus", {"deviceStatus": {"paperPresent": True, "serialNumber": "00106700000001"}})
    answer(monkeypatch, "ofdExchangeStatus", {"status": {"notSentCount": 4}})
    drv = open_driver(f"atol+libfptr://{libfptr}")
    st = drv.status()
    assert (st.fn_serial, st.last_fd_number, st.shift_open, st.unsent_documents, st.register_serial) == \
        ("9999078900012345", 77, True, 4, "00106700000001")
    monkeypatch.setenv("FAKE_FPTR_ERROR_getFnDocument", "123")
    assert drv.document(78) is None
    with pytest.raises(NotImplementedError):
        drv.find_by_key(sample_receipt())


def test_not_a_libfptr(tmp_path: Path) -> None:
    with pytest.raises(DriverConfigError):
        open_driver(f"atol+libfptr://{tmp_path}/missing.so").status()
    with pytest.raises(DriverConfigError, match="libfptr_create"):
        open_driver("atol+libfptr:///lib/x86_64-linux-gnu/libc.so.6").status()


def test_status_without_ofd_exchange_status(libfptr: Path, fptr_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A firmware that refuses ofdExchangeStatus still reports shift, FN and FD; the OFD part is unknown."""
    answer(monkeypatch, "getShiftStatus", {"shiftStatus": {"state": "closed", "number": 3}})
    answer(monkeypatch, "getFnInfo", {"fnInfo": {"serial": "9999078900012345"}})
    answer(monkeypatch, "getDeviceStatus", {"deviceStatus": {"paperPresent": False}})
    monkeypatch.setenv("FAKE_FPTR_ERROR_ofdExchangeStatus", "11")
    st = open_driver(f"atol+libfptr://{libfptr}").status()
    assert (st.last_fd_number, st.shift_open, st.paper_ok, st.extra) == (76, False, False, {"ofd_exchange": "unknown"})
