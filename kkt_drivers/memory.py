"""An in-memory register for unit tests: records every call, fails on a script, keeps no files.

Like escpos' ``printer/dummy.py`` or procrastinate's ``InMemoryConnector``: the fake ships in the
package so that code driving a register (the worker's lanes, recovery) is tested without files,
sockets or timing. It is *not* an emulator of any vendor: the wire-protocol emulators
(:mod:`kkt_drivers.emulators`) are the ones that prove a driver; this one proves its callers.

URL grammar::

    memory://NAME?serial=MEM0001&lookup_by_key=1

Instances built from the same NAME share one register (so a test can open it twice, like a
device), until :func:`forget` drops them. Unknown options are refused with their name.

Scripting faults: ``driver.fail("fiscalize", TransientError("link down"), times=2)`` makes the next
two ``fiscalize`` calls raise; ``after=True`` raises *after* the document was made (the reply was
lost: use it with :class:`~kkt_drivers.errors.OutcomeUnknownError`).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from kkt_drivers.base import Driver
from kkt_drivers.counters import ShiftTotals, TotalsBuilder, skewed
from kkt_drivers.errors import DriverConfigError, OutcomeUnknownError
from kkt_drivers.receipt import DeviceStatus, DocumentKind, FiscalDocument, Receipt

OPTIONS = ("serial", "lookup_by_key")
#: the FN serial of every memory register (16 digits, like a real one)
FN_SERIAL = "9999000000000001"
#: a made-up but stable fiscal sign base, so documents differ by number
FISCAL_SIGN_BASE = 1_000_000_000


@dataclass
class MemoryRegister:
    """The register's state: its documents, shift, open receipt, paper."""

    serial: str = "MEM0000000000001"
    documents: list[FiscalDocument] = field(default_factory=list)
    shift_open: bool = False
    shift_number: int = 0
    shift_opened_at: dt.datetime | None = None
    shift_expired: bool = False
    receipt_open: bool = False
    paper_ok: bool = True
    receipts_in_shift: int = 0
    #: what the register's clock says now (None: it does not tell)
    register_time: dt.datetime | None = None
    #: FD number → the receipt's payments ((type, amount) pairs), for the shift counters
    payments: dict[int, tuple[tuple[str, Decimal], ...]] = field(default_factory=dict)
    #: a test's drift of the register's own counters: ``{operation: {"amount": "1.00"}}``
    counter_skew: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class _Fault:
    error: BaseException
    times: int
    after: bool


_REGISTERS: dict[str, MemoryRegister] = {}


def forget(name: str | None = None) -> None:
    """Drop the shared register *name* (all of them for None)."""
    if name is None:
        _REGISTERS.clear()
    else:
        _REGISTERS.pop(name, None)


class MemoryDriver(Driver):
    """A register in memory. ``calls`` lists every method called, in order, with its main argument."""

    model = "memory"
    reads_counters = True

    def __init__(self, register: MemoryRegister | None = None, *, lookup_by_key: bool = False) -> None:
        self.register = register or MemoryRegister()
        self.lookup_by_key = lookup_by_key
        self.calls: list[tuple[str, object]] = []
        self.connected = False
        self._faults: dict[str, list[_Fault]] = {}

    @classmethod
    def from_url(cls, url: str) -> "MemoryDriver":
        """Build from a ``memory://NAME`` URL (see the module header)."""
        parts = urlsplit(url)
        name = parts.netloc or parts.path.lstrip("/") or "default"
        opts = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise DriverConfigError(f"memory URL option {unknown[0]!r} is unknown (options: {', '.join(OPTIONS)})")
        reg = _REGISTERS.setdefault(name, MemoryRegister(serial=opts.get("serial", "MEM0000000000001")))
        return cls(reg, lookup_by_key=opts.get("lookup_by_key", "0") in ("1", "true", "yes"))

    # -- scripting ------------------------------------------------------------------------------
    def fail(self, method: str, error: BaseException, *, times: int = 1, after: bool = False) -> None:
        """Make the next *times* calls of *method* raise *error* (after doing their work if *after*)."""
        self._faults.setdefault(method, []).append(_Fault(error, times, after))

    def _fault(self, method: str, *, after: bool) -> None:
        queue = self._faults.get(method) or []
        if queue and queue[0].after is after:
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            raise fault.error

    def _call(self, method: str, arg: object = None) -> None:
        self.calls.append((method, arg))
        self._fault(method, after=False)

    def called(self, method: str) -> int:
        """How many times *method* was called."""
        return sum(1 for name, _ in self.calls if name == method)

    # -- the Driver interface -------------------------------------------------------------------
    def connect(self) -> None:
        self._call("connect")
        self.connected = True

    def disconnect(self) -> None:
        self.calls.append(("disconnect", None))   # never raises, by contract
        self.connected = False

    def status(self) -> DeviceStatus:
        self._call("status")
        r = self.register
        return DeviceStatus(register_serial=r.serial, fn_serial=FN_SERIAL, last_fd_number=len(r.documents),
                            shift_open=r.shift_open, shift_number=r.shift_number, shift_opened_at=r.shift_opened_at,
                            shift_expired=r.shift_expired, receipt_open=r.receipt_open, paper_ok=r.paper_ok,
                            model=self.model, register_time=r.register_time)

    def _document(self, kind: DocumentKind, receipt: Receipt | None = None) -> FiscalDocument:
        r = self.register
        number = len(r.documents) + 1
        doc = FiscalDocument(number, FISCAL_SIGN_BASE + number, FN_SERIAL, kind, dt.datetime(2026, 11, 30, 12),
                             r.shift_number, r.receipts_in_shift if receipt else None,
                             receipt.operation if receipt else None, receipt.total if receipt else None,
                             receipt.tag if receipt else None)
        r.documents.append(doc)
        return doc

    def open_shift(self, cashier: str | None = None) -> FiscalDocument:
        self._call("open_shift", cashier)
        r = self.register
        r.shift_open, r.shift_number, r.shift_expired = True, r.shift_number + 1, False
        r.shift_opened_at, r.receipts_in_shift = dt.datetime(2026, 11, 30, 9), 0
        doc = self._document(DocumentKind.OPEN_SHIFT)
        self._fault("open_shift", after=True)
        return doc

    def close_shift(self, cashier: str | None = None) -> FiscalDocument:
        self._call("close_shift", cashier)
        doc = self._document(DocumentKind.CLOSE_SHIFT)
        self.register.shift_open = self.register.shift_expired = False
        self._fault("close_shift", after=True)
        return doc

    def x_report(self) -> None:
        self._call("x_report")

    def fiscalize(self, receipt: Receipt) -> FiscalDocument:
        self._call("fiscalize", receipt.tag)
        r = self.register
        r.receipt_open = True
        self._step("receipt_opened")
        r.receipts_in_shift += 1
        kind = DocumentKind.CORRECTION if receipt.correction else DocumentKind.RECEIPT
        doc = self._document(kind, receipt)
        r.payments[doc.fd_number] = tuple((p.type.value, p.amount) for p in receipt.payments)
        r.receipt_open = False
        self._fault("fiscalize", after=True)   # e.g. OutcomeUnknownError: the document exists, the reply is lost
        return doc

    def cancel_receipt(self) -> None:
        self._call("cancel_receipt")
        self.register.receipt_open = False

    def document(self, fd_number: int) -> FiscalDocument | None:
        self._call("document", fd_number)
        docs = self.register.documents
        return docs[fd_number - 1] if 1 <= fd_number <= len(docs) else None

    def shift_totals(self, shift: int | None = None) -> ShiftTotals | None:
        """Counters added up from the register's documents (every shift: memory forgets nothing)."""
        self._call("shift_totals", shift)
        r = self.register
        number = r.shift_number if shift is None else shift
        if not 1 <= number <= r.shift_number:
            return None
        b = TotalsBuilder()
        closed = False
        for d in r.documents:
            if d.shift_number != number:
                continue
            closed = closed or d.kind is DocumentKind.CLOSE_SHIFT
            if d.operation is not None and d.total is not None:
                b.add(d.operation.name.lower(), d.total, r.payments.get(d.fd_number, ()))
        totals = b.build(number, "memory register documents", final=closed)
        return skewed(totals, r.counter_skew) if r.counter_skew else totals

    def find_by_key(self, receipt: Receipt) -> FiscalDocument | None:
        self._call("find_by_key", receipt.tag)
        if not self.lookup_by_key:
            return super().find_by_key(receipt)
        found = [d for d in self.register.documents if d.tag == receipt.tag]
        if len(found) > 1:   # an API keyed by our tag never makes two documents for one key
            raise OutcomeUnknownError(f"{len(found)} documents carry key {receipt.tag}")
        return found[0] if found else None
