"""The driver interface: the narrow set of operations the worker needs from any register.

A new register model is one subclass of :class:`Driver` (plus its emulator). Calls to one driver
instance are strictly serial; the worker owns one instance per lane.

Contract every implementation keeps (the shared contract suite in ``tests/contract`` checks it):

* :meth:`fiscalize` either returns the closed document, or raises
  - :class:`~kkt_drivers.errors.TransientError` / :class:`~kkt_drivers.errors.DeviceStateError` /
    :class:`~kkt_drivers.errors.RejectedError` **only when the document was certainly not
    fiscalized** (an open receipt may be left behind; the caller cancels it), or
  - :class:`~kkt_drivers.errors.OutcomeUnknownError` once the closing command may have reached the
    register.
* :meth:`document` reads a document back from the fiscal storage, with the tag (1192) it carries.
* Where the register's API keeps our idempotency key (an HTTP service's request uuid, a cloud
  service's ``external_id``), :attr:`Driver.lookup_by_key` is True and :meth:`find_by_key` answers
  "what became of the receipt with this tag?" without reading documents by number. Recovery uses
  whichever the driver supports (see ``worker/fiscal/recovery.py``).
* Where the register keeps its own shift counters (Z report, FN shift totals, cash registers),
  :attr:`Driver.reads_counters` is True and :meth:`shift_totals` returns them, so the accountant's
  report compares the ledger with the register's own totals (``report shift``); a driver without
  them is listed as "counters not available", never silently passed.
* No method retries a fiscal command by itself; status-like reads may retry internally.
"""
from __future__ import annotations

import abc
import functools
from types import TracebackType
from typing import Callable

from kkt_drivers.counters import ShiftTotals
from kkt_drivers.errors import RejectedError
from kkt_drivers.receipt import DeviceStatus, FiscalDocument, Receipt


#: the class flags that say what a driver can do (see each one's comment in :class:`Driver`)
CAPABILITY_FLAGS = ("reads_documents", "lookup_by_key", "reads_counters", "supports_marking")


class Driver(abc.ABC):
    """One cash register. Open with :meth:`connect` or as a context manager."""

    #: short model name for logs and ``status`` ("emulator", "shtrih-m", …)
    model: str = "abstract"

    #: called with a step name ("receipt_opened", "close_sent", "register_answered") inside
    #: :meth:`fiscalize`; the worker uses it for crash-point tests. None in production.
    step_hook: Callable[[str], None] | None = None

    #: True when :meth:`find_by_key` works (the API itself stores our idempotency key)
    lookup_by_key: bool = False

    #: True when :meth:`fiscalize` checks marking codes through the FN (FFD 1.2, «Честный ЗНАК»)
    #: before it opens the receipt, following :mod:`kkt_drivers.marking_flow`; a driver without it
    #: refuses a receipt with marked lines (RejectedError) rather than selling them unchecked
    supports_marking: bool = False

    #: True when the register has a fiscal storage readable by FD number (:meth:`document`);
    #: False for a cloud service that only answers by our key
    reads_documents: bool = True

    #: True when :meth:`shift_totals` reads the register's own shift counters
    reads_counters: bool = False

    @classmethod
    def capabilities(cls, scheme: str) -> dict[str, bool]:
        """What a driver of this class opened with a *scheme* URL can do (``kkt-worker drivers``); a class
        whose abilities depend on the URL overrides it."""
        return {flag: bool(getattr(cls, flag)) for flag in CAPABILITY_FLAGS}

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Guard every driver's :meth:`fiscalize`: marked lines never reach a driver that cannot
        check their codes (``supports_marking`` False) — refused, never sold unchecked."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("fiscalize")
        if own is None or getattr(own, "_marking_guard", False) or getattr(own, "__isabstractmethod__", False):
            return

        @functools.wraps(own)
        def fiscalize(self: "Driver", receipt: Receipt) -> FiscalDocument:
            if not type(self).supports_marking and receipt.marking_codes:
                raise RejectedError(
                    f"items: {type(self).__name__} ({self.model}) cannot check marking codes; a receipt with "
                    "marked goods needs a register with marking support (docs/marking.md)", field="items")
            return own(self, receipt)

        fiscalize._marking_guard = True  # type: ignore[attr-defined]
        cls.fiscalize = fiscalize  # type: ignore[method-assign]

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str) -> "Driver":
        """Build (not connect) a driver from its register URL; DriverConfigError names a bad option."""

    def _step(self, name: str) -> None:
        if self.step_hook is not None:
            self.step_hook(name)

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the link to the register (idempotent). Raises TransientError when unreachable."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Close the link; never raises."""

    @abc.abstractmethod
    def status(self) -> DeviceStatus:
        """Register serial, FN serial, last FD number, shift and receipt state, paper."""

    @abc.abstractmethod
    def open_shift(self, cashier: str | None = None) -> FiscalDocument:
        """Open a shift (a fiscal document of its own)."""

    @abc.abstractmethod
    def close_shift(self, cashier: str | None = None) -> FiscalDocument:
        """Close the shift: the Z report."""

    @abc.abstractmethod
    def x_report(self) -> None:
        """Print an X report (no fiscal document)."""

    @abc.abstractmethod
    def fiscalize(self, receipt: Receipt) -> FiscalDocument:
        """Open, fill and close *receipt*; return the document the register made."""

    @abc.abstractmethod
    def cancel_receipt(self) -> None:
        """Cancel an open (not yet closed, so not fiscal) receipt; no-op when none is open."""

    @abc.abstractmethod
    def document(self, fd_number: int) -> FiscalDocument | None:
        """Read document *fd_number* back from the fiscal storage; None if it does not exist."""

    def find_by_key(self, receipt: Receipt) -> FiscalDocument | None:
        """The document the register made for *receipt* (looked up by its tag), or None if none.

        Only where :attr:`lookup_by_key` is True. Raises OutcomeUnknownError while the service
        still processes the request, TransientError when it cannot be asked now.
        """
        raise NotImplementedError(f"{self.model} has no lookup by idempotency key")

    def shift_totals(self, shift: int | None = None) -> ShiftTotals | None:
        """The register's own counters of shift *shift* (None: the current or last one).

        Only where :attr:`reads_counters` is True. Returns None when the register cannot say for
        that shift (most keep running counters of the open shift only; a closed shift's totals are
        in its Z report, which not every driver can read back).
        """
        raise NotImplementedError(f"{self.model} cannot read the register's shift counters")

    def continue_print(self) -> None:
        """Finish printing a document interrupted by a paper fault (no-op where not needed)."""

    def __enter__(self) -> "Driver":
        self.connect()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.disconnect()
