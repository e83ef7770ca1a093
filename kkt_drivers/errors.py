"""Driver errors, classified by how the caller must react (one exception root).

| class                | meaning                                         | caller's reaction            |
|----------------------|-------------------------------------------------|------------------------------|
| TransientError       | nothing reached the register (link down, busy) | retry later                  |
| DeviceStateError     | the register cannot work now (paper, shift, FN) | pause the lane, keep payment |
| RejectedError        | the register refuses the data                   | reject the payment           |
| OutcomeUnknownError  | a closing command may have fiscalized the doc   | reconcile, never resend      |
| DriverConfigError    | the URL or the driver's options are wrong       | fail at start                |

Drivers translate every low-level failure into one of these at their boundary
(``raise ... from exc``); anything else escaping a driver is a bug.
"""
from __future__ import annotations


class KktError(Exception):
    """Root of every error a driver raises on purpose."""

    #: the vendor's own code and message, kept for the ledger (e.g. "0x6B paper out")
    vendor_code: str | None = None

    def __init__(self, message: str, *, vendor_code: str | None = None) -> None:
        super().__init__(message)
        self.vendor_code = vendor_code


class TransientError(KktError):
    """Nothing reached the register (or the register did not act on it): safe to repeat."""


class DeviceStateError(KktError):
    """The register is in a state where it cannot fiscalize; not the payment's fault.

    ``condition`` is one of the ``COND_*`` constants so that the worker can decide whether the
    shift logic can fix it (shift closed / expired) or an operator must (paper, cover, FN).
    """

    COND_PAPER_OUT = "paper_out"
    COND_COVER_OPEN = "cover_open"
    COND_SHIFT_EXPIRED = "shift_expired"
    COND_SHIFT_CLOSED = "shift_closed"
    COND_SHIFT_OPEN = "shift_open"
    COND_RECEIPT_OPEN = "receipt_open"
    COND_FN_ERROR = "fn_error"
    COND_OTHER = "other"

    def __init__(self, message: str, *, condition: str = COND_OTHER, vendor_code: str | None = None) -> None:
        super().__init__(message, vendor_code=vendor_code)
        self.condition = condition


class RejectedError(KktError):
    """The register refused the receipt's data; repeating the same data cannot help."""

    def __init__(self, message: str, *, field: str | None = None, vendor_code: str | None = None) -> None:
        super().__init__(message, vendor_code=vendor_code)
        self.field = field


class OutcomeUnknownError(KktError):
    """The closing command may have reached the register: the document may exist.

    The caller must read the register's documents back (by tag) before sending anything else.
    """


class DriverConfigError(KktError):
    """The register URL or a driver option is invalid (names the offending part)."""
