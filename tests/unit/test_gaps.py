"""The cursor + gaps arithmetic both pollers share (worker.ingest.gaps), on plain ids."""
from __future__ import annotations

import datetime as dt

from worker.ingest.gaps import advance
from worker.ledger.store import Gap

NOW = dt.datetime(2026, 11, 30, 12)
HOUR = dt.timedelta(hours=1)


def test_missing_ids_below_the_new_cursor_become_gaps() -> None:
    """Given cursor 10 and rows 11, 14, then 12 and 13 are new gaps and the cursor moves to 14."""
    a = advance(cursor=10, start=10, row_ids=[14, 11], gaps=[], found=[], now=NOW, gap_timeout=HOUR, max_gap_span=100)
    assert (a.cursor, a.new_gaps, a.open_gaps, a.expected_cursor) == (14, [12, 13], 2, 10)


def test_a_wide_jump_is_not_tracked_id_by_id() -> None:
    """A jump wider than max_gap_span is reported as an untracked range instead of thousands of gaps."""
    a = advance(cursor=0, start=0, row_ids=[1, 5000], gaps=[], found=[], now=NOW, gap_timeout=HOUR, max_gap_span=100)
    assert a.new_gaps == [] and a.untracked == [(2, 4999)] and a.cursor == 5000


def test_gaps_are_filled_or_expire_on_their_own_clock() -> None:
    """A gap that appears is filled; one older than the timeout expires; a young one stays open."""
    gaps = [Gap(3, NOW - 2 * HOUR), Gap(4, NOW - 2 * HOUR), Gap(5, NOW - dt.timedelta(minutes=1))]
    a = advance(cursor=9, start=9, row_ids=[], gaps=gaps, found=[3], now=NOW, gap_timeout=HOUR, max_gap_span=100)
    assert a.filled == [3] and [g.id for g in a.expired] == [4] and a.open_gaps == 1 and a.cursor == 9


def test_start_after_id_skips_the_history_before_it() -> None:
    """Reading starts past start_after_id: nothing below it is a gap."""
    a = advance(cursor=0, start=100, row_ids=[101, 102], gaps=[], found=[], now=NOW, gap_timeout=HOUR,
                max_gap_span=100)
    assert a.new_gaps == [] and a.cursor == 102 and a.expected_cursor == 0
