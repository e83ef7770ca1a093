"""The in-process emulator's print time: ``receipt_latency_ms`` alone is the same for every receipt;
``receipt_jitter_ms`` varies it uniformly around that mean, reproducibly by ``seed``."""
from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from kkt_drivers.emulator import driver as emulator_driver
from kkt_drivers.emulator.driver import EmulatorDriver
from kkt_drivers.errors import DriverConfigError
from tests.ledger.test_ledger import receipt


def _slept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, receipts: int = 200) -> list[float]:
    """The print times of *receipts* receipts on a register built from *query* (time.sleep recorded)."""
    waits: list[float] = []
    monkeypatch.setattr(emulator_driver.time, "sleep", waits.append)
    drv = EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}?fsync=0&{query}")
    drv.connect()
    drv.open_shift()
    for n in range(receipts):
        drv.fiscalize(receipt(f"J{n}"))
    return waits


def test_without_jitter_every_receipt_takes_the_same_time(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(_slept(tmp_path, monkeypatch, "receipt_latency_ms=1000", 20)) == {1.0}


def test_jitter_varies_the_time_within_its_bounds_around_the_same_mean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _slept(tmp_path, monkeypatch, "receipt_latency_ms=1000&receipt_jitter_ms=50&seed=3")
    assert all(0.95 <= w <= 1.05 for w in waits) and len(set(waits)) == len(waits)
    assert abs(statistics.mean(waits) - 1.0) < 0.01   # uniform ±50 ms: the mean of 200 is within ~4 ms
    assert min(waits) < 0.96 and max(waits) > 1.04    # the whole range is used


def test_the_same_seed_gives_the_same_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _slept(tmp_path / "a", monkeypatch, "receipt_latency_ms=1000&receipt_jitter_ms=50&seed=3", 10)
    b = _slept(tmp_path / "b", monkeypatch, "receipt_latency_ms=1000&receipt_jitter_ms=50&seed=3", 10)
    assert a == b


@pytest.mark.parametrize("query", ["receipt_latency_ms=100&receipt_jitter_ms=200", "receipt_jitter_ms=-1",
                                   "receipt_latency_ms=100&receipt_jitter_ms=x"])
def test_a_jitter_beyond_the_latency_or_not_a_number_is_refused(tmp_path: Path, query: str) -> None:
    with pytest.raises(DriverConfigError, match="receipt_jitter_ms"):
        EmulatorDriver.from_url(f"emulator://{tmp_path / 'reg'}?{query}")
