"""Receipt states and the transitions the ledger allows (checked in SQL as compare-and-set).

    queued ──intent──▶ sending ──outcome──▶ done
      ▲                  │ ├──▶ queued        (nothing was fiscalized: retry later)
      │                  │ ├──▶ rejected      (the data is wrong)
      │                  │ ├──▶ failed        (transient errors exhausted the attempts)
      │                  │ └──▶ needs_review  (reconciliation could not be sure)
      └──── replan ──────┴── rejected / failed / needs_review / superseded

A *replan* (an admin's ``resend``, or a refund whose sale arrived late) rebuilds a receipt that
was never fiscalized from the (fixed) shop row: it is queued again, or stays/becomes rejected with
the new reason; a part the new plan no longer has becomes *superseded* (kept, never deleted: its
attempt history stays readable). Every state change, a replan's included, goes through
:func:`check_transition`.

Adoption (the register is the truth): queued / failed / rejected / needs_review / superseded ──▶ done
when the register's fiscal storage holds a document with the receipt's tag, operation and total (a
ledger restored from a backup, a lost ledger, another worker that printed it); queued ──▶ needs_review
when the register holds our tag with another total or operation.
"""
from __future__ import annotations

import enum


class State(str, enum.Enum):
    """Where a receipt is in its life."""

    QUEUED = "queued"
    SENDING = "sending"
    DONE = "done"
    REJECTED = "rejected"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"
    SUPERSEDED = "superseded"     # dropped by a replan; never fiscalized, kept for its history

    def __str__(self) -> str:
        return self.value


TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.SENDING, State.REJECTED, State.DONE, State.NEEDS_REVIEW}),
    State.SENDING: frozenset({State.DONE, State.QUEUED, State.REJECTED, State.FAILED, State.NEEDS_REVIEW}),
    # replan: requeued, rebuilt but still rejected (with the new reason), or no longer in the plan;
    # adoption: done, when the register shows the document
    State.REJECTED: frozenset({State.QUEUED, State.REJECTED, State.SUPERSEDED, State.DONE}),
    State.FAILED: frozenset({State.QUEUED, State.REJECTED, State.SUPERSEDED, State.DONE}),
    State.NEEDS_REVIEW: frozenset({State.QUEUED, State.DONE, State.REJECTED, State.SUPERSEDED}),
    State.SUPERSEDED: frozenset({State.QUEUED, State.REJECTED, State.DONE}),
    State.DONE: frozenset(),
}

#: states an admin may put back in the queue with ``resend``
RESENDABLE = (State.REJECTED, State.FAILED)

#: states of a receipt that mean "no document was issued" (a correction may replace it)
NOT_ISSUED = (State.REJECTED, State.FAILED, State.SUPERSEDED)

#: states a replan may rebuild (never fiscalized, or checked by an admin on the register)
REPLANNABLE = (State.REJECTED, State.FAILED, State.NEEDS_REVIEW, State.SUPERSEDED)

#: states a receipt is adopted from when the register shows its document (any state but done)
ADOPTABLE = (State.QUEUED, State.SENDING, State.FAILED, State.REJECTED, State.NEEDS_REVIEW, State.SUPERSEDED)


def check_transition(old: State, new: State) -> None:
    """Raise ValueError for a transition the state machine does not have."""
    if new not in TRANSITIONS[old]:
        raise ValueError(f"receipt state cannot go from {old.value} to {new.value}")
