"""In-process driver for the emulated register.

URL grammar::

    emulator:///abs/state/dir?serial=EMU0001&latency_ms=20&seed=1&fsync=1&<fault>=<p|first:N>
    emulator:///abs/state/dir?receipt_latency_ms=1000&inn=7701234567
    emulator:relative/state/dir

``serial`` names the register (16 characters at most); ``latency_ms`` makes every command slow;
``receipt_latency_ms`` makes only the receipt slow (a register printing: the pool benchmark's
"1 s per receipt"); ``receipt_jitter_ms`` varies that time uniformly by up to ± this much per receipt
(drawn from ``seed``; the mean stays ``receipt_latency_ms``: a printer does not take the same time for
every receipt — how much real ones vary is our guess, not a vendor figure); ``inn`` is the INN the
register reports in ``status().extra["inn"]`` (GUESS: where a real driver reads it — ATOL/Shtrih
registration parameters — is driver work, not modelled here);
``marking_unanswered=pause|sell`` says what to do when ОИСМ does not answer a marking code check
in time (:mod:`kkt_drivers.marking_flow`; default ``pause``); ``permit_url`` and ``permit_key_env``
enable the разрешительный режим check (:mod:`kkt_drivers.permit`);
``fsync=0`` trades durability for speed in benchmarks; faults are listed in
:mod:`kkt_drivers.emulator.faults`. Unknown options are refused with their name.
"""
from __future__ import annotations

import dataclasses
import random
import time
from urllib.parse import parse_qsl, unquote, urlsplit

from kkt_drivers import marking_flow, permit
from kkt_drivers.base import Driver
from kkt_drivers.counters import ShiftTotals
from kkt_drivers.emulator.faults import FAULT_NAMES, Faults
from kkt_drivers.emulator.model import RegisterModel, to_fiscal_document
from kkt_drivers.emulators import RunningEmulator
from kkt_drivers.errors import DriverConfigError, OutcomeUnknownError, TransientError
from kkt_drivers.receipt import DeviceStatus, FiscalDocument, Receipt

OPTIONS = ("serial", "latency_ms", "seed", "fsync", marking_flow.OPTION) + permit.OPTIONS + (
    "receipt_latency_ms", "receipt_jitter_ms", "inn")


def parse_emulator_url(url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Split an emulator URL into (state dir, options, fault options); refuse unknown options."""
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path) if parts.netloc else unquote(parts.path)
    if not path:
        raise DriverConfigError(f"emulator URL {url!r} needs a state directory path")
    options: dict[str, str] = {}
    faults: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in OPTIONS:
            options[key] = value
        elif key in FAULT_NAMES:
            faults[key] = value
        else:
            raise DriverConfigError(
                f"emulator URL option {key!r} is unknown (options: {', '.join(OPTIONS + FAULT_NAMES)})")
    return path, options, faults


class EmulatorDriver(Driver):
    """Drives a :class:`RegisterModel` directly, with link-level faults injected in between."""

    model = "emulator"
    supports_marking = True
    reads_counters = True

    def __init__(self, register: RegisterModel, *, latency_s: float = 0.0,
                 sell_unanswered_codes: bool = False, receipt_latency_s: float = 0.0,
                 receipt_jitter_s: float = 0.0, seed: int | None = None, inn: str | None = None) -> None:
        if not 0.0 <= receipt_jitter_s <= receipt_latency_s:
            raise DriverConfigError("emulator: receipt_jitter_ms must be between 0 and receipt_latency_ms")
        self.register = register
        self.faults = register.faults
        self.latency_s = latency_s
        self.receipt_latency_s = receipt_latency_s
        self.receipt_jitter_s = receipt_jitter_s
        self._jitter = random.Random(seed)
        self.inn = inn
        self.sell_unanswered_codes = sell_unanswered_codes
        #: the разрешительный режим check before the FN check (None: not used)
        self.permit: permit.PermitChecker | None = None
        self._connected = False

    @classmethod
    def from_url(cls, url: str) -> "EmulatorDriver":
        """Build from ``emulator:`` URL (see the module header)."""
        path, opts, fault_opts = parse_emulator_url(url)
        try:
            seed = int(opts["seed"]) if "seed" in opts else None
            faults = Faults.parse(fault_opts, seed=seed)
            latency = int(opts.get("latency_ms", "0")) / 1000
            receipt_latency = int(opts.get("receipt_latency_ms", "0")) / 1000
            receipt_jitter = int(opts.get("receipt_jitter_ms", "0")) / 1000
            fsync = opts.get("fsync", "1") not in ("0", "false", "no")
        except ValueError as exc:
            raise DriverConfigError(f"emulator URL {url!r}: {exc}") from exc
        serial = opts.get("serial", "EMU0000000000001")
        if not 1 <= len(serial) <= 16:
            raise DriverConfigError("emulator URL option 'serial' must be 1..16 characters")
        sell = marking_flow.sell_unanswered(opts.get(marking_flow.OPTION))
        drv = cls(RegisterModel(path, serial=serial, faults=faults, fsync=fsync), latency_s=latency,
                  sell_unanswered_codes=sell, receipt_latency_s=receipt_latency,
                  receipt_jitter_s=receipt_jitter, seed=seed, inn=opts.get("inn"))
        drv.permit = permit.PermitChecker.from_options(opts)
        return drv

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def _command(self) -> None:
        if self.latency_s:
            time.sleep(self.latency_s)

    def status(self) -> DeviceStatus:
        self._command()
        st = self.register.status()
        return dataclasses.replace(st, extra={**st.extra, "inn": self.inn}) if self.inn else st

    def open_shift(self, cashier: str | None = None) -> FiscalDocument:
        self._command()
        return to_fiscal_document(self.register.open_shift(cashier))

    def close_shift(self, cashier: str | None = None) -> FiscalDocument:
        self._command()
        return to_fiscal_document(self.register.close_shift(cashier))

    def x_report(self) -> None:
        self._command()
        self.register.x_report()

    def cancel_receipt(self) -> None:
        self._command()
        self.register.cancel_receipt()

    def document(self, fd_number: int) -> FiscalDocument | None:
        self._command()
        return self.register.fiscal_document(fd_number)

    def shift_totals(self, shift: int | None = None) -> ShiftTotals | None:
        """The model's counters: running for the open shift, the Z report's for a closed one."""
        self._command()
        return self.register.shift_totals(shift)

    def fiscalize(self, receipt: Receipt) -> FiscalDocument:
        """Open, fill and close; link faults are injected where a real link would fail."""
        self._command()
        if self.receipt_latency_s:
            jitter = self.receipt_jitter_s
            time.sleep(self.receipt_latency_s + (self._jitter.uniform(-jitter, jitter) if jitter else 0.0))
        if self.faults.fire("fail_before_send"):
            raise TransientError("link to the register is down (injected fault)")
        with self.register.session():   # one lock and one state load/save for the whole receipt
            return self._fiscalize(receipt)

    def _step(self, name: str) -> None:
        if self.step_hook is not None:
            self.register.flush_session()   # a step hook may kill the process (crash tests)
        super()._step(name)

    def _fiscalize(self, receipt: Receipt) -> FiscalDocument:
        reg = self.register
        if receipt.marking_codes and self.permit is not None:
            receipt = self.permit.apply(receipt, reg.status().fn_serial)
        results: dict[int, int] = {}
        if receipt.marking_codes:
            # the FN check of every code runs before the receipt is opened (marking_flow)
            results = marking_flow.check_receipt(
                receipt,
                lambda n, item, status: _outcome(reg.check_marking(item.marking_code or b"", int(status),
                                                                   item.marking_mode)),
                reg.decide_marking, sell_unanswered_codes=self.sell_unanswered_codes)
        reg.open_receipt(receipt.operation, correction=_correction(receipt))
        self._step("receipt_opened")
        for item in receipt.items:
            reg.add_item(item)
        for tag, value in _requisites(receipt):
            reg.add_requisite(tag, value)
        if self.faults.fire("lose_reply_before_close"):
            raise OutcomeUnknownError("no answer to the close command (injected: close lost)")
        self._step("close_sent")
        doc = reg.close_receipt(list(receipt.payments), receipt.tax_system)
        if self.faults.fire("lose_reply_after_close"):
            raise OutcomeUnknownError("no answer to the close command (injected: reply lost)")
        self._step("register_answered")
        fdoc = to_fiscal_document(doc)
        marks = marking_flow.as_results(receipt, results)
        return dataclasses.replace(fdoc, marking_results=marks) if marks else fdoc


def _outcome(answer: dict[str, object]) -> marking_flow.CheckOutcome:
    return marking_flow.CheckOutcome(result=int(answer["result"]),  # type: ignore[arg-type]
                                     fn_answer=int(answer["fn_answer"]),  # type: ignore[arg-type]
                                     local=int(answer["local"]))  # type: ignore[arg-type]


def _requisites(receipt: Receipt) -> list[tuple[int, object]]:
    pairs: list[tuple[int, object]] = [(1192, receipt.tag)]
    if receipt.customer_contact:
        pairs.append((1008, receipt.customer_contact))
    if receipt.internet:
        pairs.append((1125, 1))
    if receipt.settlement_place:
        pairs.append((1187, receipt.settlement_place))
    if receipt.company_email:
        pairs.append((1117, receipt.company_email))
    if receipt.cashier:
        pairs.append((1021, receipt.cashier))
    if receipt.cashier_inn:
        pairs.append((1203, receipt.cashier_inn))
    return pairs


def _correction(receipt: Receipt) -> dict[str, object] | None:
    c = receipt.correction
    if c is None:
        return None
    return {"1173": 0 if c.self_made else 1, "1178": c.corrected_date.isoformat(), "1179": c.order_number}


def start_emulator(state_dir: str, *, host: str = "127.0.0.1", port: int = 0,
                   faults: dict[str, str] | None = None, seed: int | None = None, fsync: bool = True,
                   **options: str) -> RunningEmulator:
    """The in-process emulator as a :class:`~kkt_drivers.emulators.RunningEmulator` (no server:
    the driver opens the state directory itself; ``host``/``port`` are ignored)."""
    from urllib.parse import urlencode


    query = {"fsync": "1" if fsync else "0", **(faults or {}), **options}
    if seed is not None:
        query["seed"] = str(seed)
    url = f"emulator://{state_dir}?{urlencode(query)}"
    model = RegisterModel(state_dir, fsync=fsync)
    return RunningEmulator(url=url, model=model, stop=lambda: None)
