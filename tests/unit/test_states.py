"""The receipt state machine: the transitions the ledger's compare-and-set allows, and no others."""
from __future__ import annotations

import pytest

from worker.ledger.states import REPLANNABLE, TRANSITIONS, State, check_transition


def test_done_is_final() -> None:
    """A fiscalized receipt never changes state again."""
    for new in State:
        with pytest.raises(ValueError):
            check_transition(State.DONE, new)


@pytest.mark.parametrize("old", REPLANNABLE)
def test_a_replan_may_requeue_reject_or_supersede(old: State) -> None:
    """Every state a replan rebuilds can go to queued or rejected; all but superseded can be superseded."""
    check_transition(old, State.QUEUED)
    check_transition(old, State.REJECTED)
    if old is not State.SUPERSEDED:
        check_transition(old, State.SUPERSEDED)


@pytest.mark.parametrize("old, new", [
    (State.FAILED, State.REJECTED), (State.NEEDS_REVIEW, State.REJECTED), (State.REJECTED, State.REJECTED),
])
def test_transitions_replan_used_to_write_unguarded_are_now_explicit(old: State, new: State) -> None:
    """failed → rejected, needs_review → rejected and a rebuild that stays rejected are in the table."""
    assert new in TRANSITIONS[old]


@pytest.mark.parametrize("old, new", [
    (State.DONE, State.QUEUED), (State.QUEUED, State.SUPERSEDED), (State.SENDING, State.SUPERSEDED),
    (State.FAILED, State.SENDING), (State.SUPERSEDED, State.SENDING),
])
def test_forbidden_transitions_are_refused(old: State, new: State) -> None:
    """A done receipt is never sent again, only a queued one is sent, and what is in flight is never
    dropped."""
    with pytest.raises(ValueError, match=f"from {old.value} to {new.value}"):
        check_transition(old, new)


@pytest.mark.parametrize("old", [State.QUEUED, State.FAILED, State.REJECTED, State.NEEDS_REVIEW,
                                 State.SUPERSEDED])
def test_adoption_makes_any_unfinished_receipt_done(old: State) -> None:
    """The register is the truth: a document with the receipt's tag makes it done, whatever the ledger said."""
    check_transition(old, State.DONE)


def test_every_state_has_a_row() -> None:
    """No state is forgotten in the table."""
    assert set(TRANSITIONS) == set(State)
