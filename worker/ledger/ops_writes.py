"""The alerts table: which conditions were alerted, resolved, and whether the message went out."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select, update

from worker.ledger.base import LedgerBase
from worker.ledger.schema import alerts

FIRING = "firing"
RESOLVED = "resolved"


class OpsWrites(LedgerBase):
    """State of every alert, so one condition gives one message when it starts and one when it ends."""

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert row, firing first."""
        with self.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(alerts).order_by(alerts.c.key))]
        return sorted(rows, key=lambda r: r["state"] != FIRING)

    def alert_sync(self, current: dict[str, tuple[str, str]], now: dt.datetime) -> None:
        """Make the table match *current* (key → (severity, message)): new keys fire, gone keys resolve.

        A condition that comes back after it was resolved fires again (a new message). Only state
        changes reset ``delivered``; a firing alert whose message text changes is not re-sent.
        """
        with self.write() as conn:
            rows = {r.key: r for r in conn.execute(select(alerts.c.key, alerts.c.state))}
            for key, (severity, message) in current.items():
                row = rows.get(key)
                if row is None:
                    conn.execute(insert(alerts).values(key=key, severity=severity, message=message, state=FIRING,
                                                       started_at=now, delivered=0, attempts=0, next_try_at=now))
                elif row.state == RESOLVED:
                    conn.execute(update(alerts).where(alerts.c.key == key).values(
                        severity=severity, message=message, state=FIRING, started_at=now, resolved_at=None,
                        delivered=0, attempts=0, next_try_at=now, last_error=None))
                else:
                    conn.execute(update(alerts).where(alerts.c.key == key).values(message=message))
            for key, row in rows.items():
                if row.state == FIRING and key not in current:
                    conn.execute(update(alerts).where(alerts.c.key == key, alerts.c.state == FIRING).values(
                        state=RESOLVED, resolved_at=now, delivered=0, attempts=0, next_try_at=now,
                        last_error=None))

    def alerts_to_deliver(self, now: dt.datetime) -> list[dict[str, Any]]:
        """Alerts whose current state's message has not gone out and whose next try is due."""
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(alerts).where(alerts.c.delivered == 0, alerts.c.next_try_at <= now).order_by(alerts.c.key))]

    def alert_delivered(self, key: str, state: str) -> None:
        """The message for *state* went out (guarded: a state change meanwhile keeps it undelivered)."""
        with self.write() as conn:
            conn.execute(update(alerts).where(alerts.c.key == key, alerts.c.state == state)
                         .values(delivered=1, last_error=None))

    def alert_failed(self, key: str, state: str, error: str, next_try_at: dt.datetime) -> None:
        """Sending failed; try again at *next_try_at*."""
        with self.write() as conn:
            conn.execute(update(alerts).where(alerts.c.key == key, alerts.c.state == state).values(
                attempts=alerts.c.attempts + 1, next_try_at=next_try_at, last_error=error[:2000]))
