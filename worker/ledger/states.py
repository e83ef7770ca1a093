"""Receipt states and the transitions the ledger allows (checked in SQL as compare-and-set).

    queued ──intent──▶ sending ──outcome──▶ done
      ▲                  │ ├──▶ queued        (nothing was fiscalized: retry later)
      │                  │ ├──▶ rejected      (the data is wrong)
      │                  │ ├──▶ failed        (transient errors exhausted the attempts)
      │                  │ └──▶ needs_review  (reconciliation could not be sure)
      └──── resend ──────┴── rejected / failed / needs_review (an admin's decision)
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

    def __str__(self) -> str:
        return self.value


TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.SENDING, State.REJECTED}),
    State.SENDING: frozenset({State.DONE, State.QUEUED, State.REJECTED, State.FAILED, State.NEEDS_REVIEW}),
    State.REJECTED: frozenset({State.QUEUED}),
    State.FAILED: frozenset({State.QUEUED}),
    State.NEEDS_REVIEW: frozenset({State.QUEUED, State.DONE}),
    State.DONE: frozenset(),
}

#: states an admin may put back in the queue with ``resend``
RESENDABLE = (State.REJECTED, State.FAILED)


def check_transition(old: State, new: State) -> None:
    """Raise ValueError for a transition the state machine does not have."""
    if new not in TRANSITIONS[old]:
        raise ValueError(f"receipt state cannot go from {old.value} to {new.value}")
