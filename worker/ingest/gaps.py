"""The cursor + gaps arithmetic of one poll, as pure logic (no database, no shop).

An id missing below the cursor is a gap: a transaction that has not committed yet (it will appear
later, out of id order) or one that rolled back (it never will). A gap is given up only after its
own grace period, measured from when *that* gap was first seen (reliability-patterns.md §1.5).
Both pollers (payments and deliveries) use :func:`advance`; they differ only in what a row becomes.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from worker.ledger.store import Gap


@dataclass(frozen=True)
class Advance:
    """What one poll does to the cursor and the gaps (recorded with the rows in one transaction)."""

    cursor: int
    expected_cursor: int
    new_gaps: list[int] = field(default_factory=list)
    untracked: list[tuple[int, int]] = field(default_factory=list)   # id jumps too wide to track
    filled: list[int] = field(default_factory=list)
    expired: list[Gap] = field(default_factory=list)
    open_gaps: int = 0

    def position(self, now: dt.datetime) -> dict[str, Any]:
        """The keyword arguments of ``Ledger.apply_ingest`` that record this advance."""
        return dict(cursor=self.cursor, new_gaps=self.new_gaps, filled=self.filled, expired=self.expired,
                    now=now, expected_cursor=self.expected_cursor, untracked=self.untracked)


def advance(*, cursor: int, start: int, row_ids: Iterable[int], gaps: Sequence[Gap], found: Iterable[int],
            now: dt.datetime, gap_timeout: dt.timedelta, max_gap_span: int) -> Advance:
    """The new cursor and gaps after reading *row_ids* past *start* and finding *found* among *gaps*.

    *cursor* is the stored cursor (the compare-and-set guard), *start* where reading began (the cursor,
    or ``start_after_id`` if higher). A jump wider than *max_gap_span* is not tracked id by id.
    """
    new_gaps: list[int] = []
    untracked: list[tuple[int, int]] = []
    prev = start
    for row_id in sorted(row_ids):
        if row_id > prev + 1:
            if row_id - prev - 1 <= max_gap_span:
                new_gaps.extend(range(prev + 1, row_id))
            else:
                untracked.append((prev + 1, row_id - 1))
        prev = row_id
    found_ids = set(found)
    expired = [g for g in gaps if g.id not in found_ids and now - g.first_seen_at > gap_timeout]
    filled = sorted(found_ids & {g.id for g in gaps})
    return Advance(cursor=max(prev, cursor), expected_cursor=cursor, new_gaps=new_gaps, untracked=untracked,
                   filled=filled, expired=expired,
                   open_gaps=len(gaps) - len(filled) - len(expired) + len(new_gaps))
