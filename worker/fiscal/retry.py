"""The one place that decides how the worker reacts to an error, and the retry schedule."""
from __future__ import annotations

import datetime as dt
import enum
import random

from kkt_drivers.errors import (
    DeviceStateError,
    DriverConfigError,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from worker.defaults import RETRY_BASE_SECONDS, RETRY_CAP_SECONDS


class Reaction(str, enum.Enum):
    """How the worker must react (see STYLE.md, "Errors by how the caller must react")."""

    TRANSIENT = "transient"      # nothing reached the register: retry with backoff
    DEVICE = "device"            # the register can't work now: pause the lane, keep the attempt
    REJECTED = "rejected"        # the data is wrong: reject, wait for an admin
    UNKNOWN = "unknown"          # the document may exist: reconcile before anything else
    CONFIG = "config"            # the register's settings are wrong: stop the lane, alert
    BUG = "bug"                  # anything else: record with traceback; treated as UNKNOWN after an intent


def classify(exc: BaseException) -> Reaction:
    """Map any exception from a register call to the worker's reaction."""
    if isinstance(exc, OutcomeUnknownError):
        return Reaction.UNKNOWN
    if isinstance(exc, TransientError):
        return Reaction.TRANSIENT
    if isinstance(exc, DeviceStateError):
        return Reaction.DEVICE
    if isinstance(exc, RejectedError):
        return Reaction.REJECTED
    if isinstance(exc, DriverConfigError):
        return Reaction.CONFIG
    return Reaction.BUG


def describe(exc: BaseException) -> str:
    """A one-line message for the ledger, with the vendor's code where the driver kept it."""
    vendor = getattr(exc, "vendor_code", None)
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} [{vendor}]" if vendor else text


def next_attempt_at(now: dt.datetime, attempts: int, *, base_s: float = RETRY_BASE_SECONDS,
                    cap_s: float = RETRY_CAP_SECONDS, rng: random.Random | None = None) -> dt.datetime:
    """Capped exponential backoff with equal jitter: delay = min(cap, base·2^n) · U(0.5, 1)."""
    rng = rng or random
    delay = min(cap_s, base_s * (2 ** max(0, attempts - 1))) * rng.uniform(0.5, 1.0)
    return now + dt.timedelta(seconds=delay)
