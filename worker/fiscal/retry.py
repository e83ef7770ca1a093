"""The one place that decides what happens after an error: :func:`decide` → :class:`Decision`.

``classify`` maps an exception to a :class:`Reaction`; ``decide`` turns the reaction, the attempts
already used and the retry policy (:class:`~worker.settings.RetrySettings`, the only copy of it) into
everything the callers need: the receipt's next state, when it is due again, whether the attempt
counts, whether the lane pauses or stops. The processor, the reconciler and the lane only execute
a decision; the ledger only records it (procrastinate's ``get_retry_decision`` is the model).
"""
from __future__ import annotations

import datetime as dt
import enum
import random
from dataclasses import dataclass

from kkt_drivers.errors import (
    DeviceStateError,
    DriverConfigError,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from worker.ledger.states import State
from worker.settings import RetrySettings

#: the jitter range of the persistent backoff ("equal jitter": keeps a floor, avoids synchronised retries)
JITTER_MIN = 0.5
JITTER_MAX = 1.0


class Reaction(str, enum.Enum):
    """How the worker must react (see STYLE.md, "Errors by how the caller must react")."""

    TRANSIENT = "transient"      # nothing reached the register: retry with backoff
    DEVICE = "device"            # the register can't work now: pause the lane, keep the attempt
    REJECTED = "rejected"        # the data is wrong: reject, wait for an admin
    UNKNOWN = "unknown"          # the document may exist: reconcile before anything else
    CONFIG = "config"            # the register's settings are wrong: stop the lane, alert
    BUG = "bug"                  # anything else: record with traceback; treated as UNKNOWN after an intent
    NOT_FISCALIZED = "not_fiscalized"  # reconciliation proved nothing was printed: send again now


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


@dataclass(frozen=True)
class Decision:
    """Everything a caller executes after an error; nobody decides again.

    ``state`` is the receipt's next state: SENDING means "leave it for reconciliation" (the document
    may exist), QUEUED a retry at ``when``, FAILED / REJECTED final until an admin resends.
    """

    reaction: Reaction
    state: State
    when: dt.datetime
    burn_attempt: bool
    attempts: int          # attempts used after this one is counted (or not)
    pause_lane: bool = False
    stop_lane: bool = False

    @property
    def reconcile(self) -> bool:
        """The document may exist: the lane reconciles before it sends anything else."""
        return self.state is State.SENDING


def backoff(attempts: int, policy: RetrySettings, rng: random.Random | None = None) -> dt.timedelta:
    """Capped exponential backoff with equal jitter: min(cap, base·2^(n-1)) · U(0.5, 1)."""
    rng = rng or random
    raw = min(policy.max_delay_s, policy.base_delay_s * (2 ** max(0, attempts - 1)))
    return dt.timedelta(seconds=raw * rng.uniform(JITTER_MIN, JITTER_MAX))


def decide(error: BaseException | Reaction, attempts: int, policy: RetrySettings, *, now: dt.datetime,
           in_receipt: bool = True, rng: random.Random | None = None) -> Decision:
    """The decision after *error* on a receipt that had used *attempts* attempts before this one.

    *error* is the exception (classified here) or an already known reaction (reconciliation's
    ``NOT_FISCALIZED``). With ``in_receipt=False`` the error came from the register outside any
    receipt (connect, status, shift): no receipt changes, the lane pauses, or stops on a
    configuration error.
    """
    reaction = error if isinstance(error, Reaction) else classify(error)
    if not in_receipt:
        stop = reaction is Reaction.CONFIG
        return Decision(reaction, State.QUEUED, now + dt.timedelta(seconds=policy.device_pause_s),
                        burn_attempt=False, attempts=attempts, pause_lane=not stop, stop_lane=stop)
    if reaction in (Reaction.UNKNOWN, Reaction.BUG):
        # the close may have reached the register: never retry blindly
        return Decision(reaction, State.SENDING, now, burn_attempt=False, attempts=attempts)
    if reaction is Reaction.REJECTED:
        return Decision(reaction, State.REJECTED, now, burn_attempt=False, attempts=attempts)
    if reaction in (Reaction.DEVICE, Reaction.CONFIG):
        # not the payment's fault: its attempts are kept, it is due as soon as the lane works again
        return Decision(reaction, State.QUEUED, now, burn_attempt=False, attempts=attempts,
                        pause_lane=reaction is Reaction.DEVICE, stop_lane=reaction is Reaction.CONFIG)
    used = attempts + 1
    if used >= policy.max_attempts:
        return Decision(reaction, State.FAILED, now, burn_attempt=True, attempts=used)
    # reconciliation proved nothing was printed: the register works, send again at once
    when = now if reaction is Reaction.NOT_FISCALIZED else now + backoff(used, policy, rng)
    return Decision(reaction, State.QUEUED, when, burn_attempt=True, attempts=used)


def describe(exc: BaseException) -> str:
    """A one-line message for the ledger, with the vendor's code where the driver kept it."""
    vendor = getattr(exc, "vendor_code", None)
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} [{vendor}]" if vendor else text
