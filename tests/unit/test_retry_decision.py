"""decide(error, attempts, policy) is the one place that says what happens after an error."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from kkt_drivers.errors import (
    DeviceStateError,
    DriverConfigError,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from worker.fiscal.retry import Reaction, backoff, decide
from worker.ledger.states import State
from worker.settings import RetrySettings

NOW = dt.datetime(2026, 11, 30, 12)
POLICY = RetrySettings(max_attempts=3, base_delay_s=30.0, max_delay_s=100.0)


@pytest.mark.parametrize("error, state, burn, pause, stop", [
    (TransientError("link"), State.QUEUED, True, False, False),
    (DeviceStateError("paper"), State.QUEUED, False, True, False),
    (RejectedError("bad vat"), State.REJECTED, False, False, False),
    (OutcomeUnknownError("no answer"), State.SENDING, False, False, False),
    (DriverConfigError("wrong password"), State.QUEUED, False, False, True),
    (ZeroDivisionError("bug"), State.SENDING, False, False, False),
])
def test_each_reaction_has_one_decision(error, state, burn, pause, stop) -> None:
    """Given an error on a receipt's first attempt, the decision names state, burn, pause and stop."""
    d = decide(error, 0, POLICY, now=NOW)
    assert (d.state, d.burn_attempt, d.pause_lane, d.stop_lane) == (state, burn, pause, stop)
    assert d.attempts == (1 if burn else 0)
    assert d.reconcile is (state is State.SENDING)


def test_transient_backs_off_with_a_floor_and_a_cap() -> None:
    """Retries wait base·2^(n-1) with equal jitter (at least half), never more than the cap."""
    rng = random.Random(1)
    first = decide(TransientError("x"), 0, POLICY, now=NOW, rng=rng).when - NOW
    assert dt.timedelta(seconds=15) <= first <= dt.timedelta(seconds=30)
    assert backoff(10, POLICY, rng) <= dt.timedelta(seconds=100)
    assert backoff(10, POLICY, random.Random(2)) >= dt.timedelta(seconds=50)


def test_the_last_attempt_fails_the_receipt() -> None:
    """The attempt that reaches max_attempts makes the receipt failed; a device error never does."""
    assert decide(TransientError("x"), 1, POLICY, now=NOW).state is State.QUEUED
    last = decide(TransientError("x"), 2, POLICY, now=NOW)
    assert last.state is State.FAILED and last.attempts == 3
    assert decide(DeviceStateError("paper"), 2, POLICY, now=NOW).state is State.QUEUED


def test_reconciled_not_fiscalized_is_sent_again_at_once_burning_an_attempt() -> None:
    """Recovery proved nothing was printed: queued now (no backoff), one attempt used."""
    d = decide(Reaction.NOT_FISCALIZED, 0, POLICY, now=NOW)
    assert (d.state, d.when, d.attempts) == (State.QUEUED, NOW, 1)
    assert decide(Reaction.NOT_FISCALIZED, 2, POLICY, now=NOW).state is State.FAILED


@pytest.mark.parametrize("error, pause, stop", [
    (TransientError("link"), True, False), (DeviceStateError("paper"), True, False),
    (OutcomeUnknownError("?"), True, False), (DriverConfigError("password"), False, True),
])
def test_outside_a_receipt_the_lane_pauses_or_stops(error, pause, stop) -> None:
    """An error from connect/status/shift touches no receipt: the lane pauses, or stops on a config error."""
    d = decide(error, 4, POLICY, now=NOW, in_receipt=False)
    assert (d.pause_lane, d.stop_lane, d.burn_attempt, d.attempts) == (pause, stop, False, 4)
