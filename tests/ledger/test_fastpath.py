"""worker.ledger.fastpath runs the lanes' hot statements on the driver's cursor: it must give what
SQLAlchemy's own execution gives (same rows, same types — datetimes, money as Decimal, booleans), on
SQLite and on PostgreSQL, and fail the way SQLAlchemy fails (DBAPIError)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError

from tests.ledger.test_ledger import entry, ingest
from worker.ledger import fastpath
from worker.ledger.lane_writes import _ATTEMPT_DONE, _CLAIM_HEAD, _CLAIM_SET
from worker.ledger.records import utcnow
from worker.ledger.schema import attempts, receipts
from worker.ledger.store import Ledger


def test_the_claim_head_comes_back_as_sqlalchemy_reads_it(ledger: Ledger) -> None:
    """Same keys, same values and types as Connection.execute for the claim's SELECT: a datetime, a
    Decimal total and amount, a bool for the "already on a register" column."""
    ingest(ledger, [entry(1, "150.50"), entry(2, "99.99")], cursor=2)
    params = {"b_group": "default", "b_now": utcnow() + dt.timedelta(seconds=1)}
    with ledger.write() as conn:
        ours = fastpath.run(conn, _CLAIM_HEAD, params).mapping()
        theirs = dict(conn.execute(_CLAIM_HEAD, params).first()._mapping)
    assert ours == theirs
    assert isinstance(ours["next_attempt_at"], dt.datetime) and ours["total"] == Decimal("150.50")
    assert isinstance(ours["total"], Decimal) and ours["head_unclaimed"] is False


def test_an_update_and_a_returning_insert_write_what_sqlalchemy_writes(ledger: Ledger) -> None:
    """The claim's UPDATE (rowcount, guard) and the attempt INSERT … RETURNING id, read back through
    SQLAlchemy: the datetime written as text on SQLite compares and reads back exactly."""
    ingest(ledger, [entry(1)], cursor=1)
    rec = ledger.list_receipts()[0]
    now = dt.datetime(2026, 11, 30, 12, 0, 0)    # no microseconds: SQLite's text form must still match
    values = {"b_id": rec.id, "b_now": now, "b_register": "kkt1", "b_fn": "9999", "b_fd_before": 7}
    with ledger.write() as conn:
        assert fastpath.run(conn, _CLAIM_SET, values).rowcount == 1
        assert fastpath.run(conn, _CLAIM_SET, values).rowcount == 0          # the state guard holds
        from worker.ledger.lane_writes import _ATTEMPT_OPEN
        attempt_id = fastpath.run(conn, _ATTEMPT_OPEN, values).rows[0][0]
        fastpath.run(conn, _ATTEMPT_DONE, {"b_attempt": attempt_id, "b_now": now, "b_fd": 8})
    with ledger.read() as conn:
        row = conn.execute(select(receipts.c.state, receipts.c.intent_at, receipts.c.fd_before)
                           .where(receipts.c.id == rec.id)).one()
        assert tuple(row) == ("sending", now, 7)
        assert conn.execute(select(attempts.c.outcome, attempts.c.started_at, attempts.c.fd_number)
                            .where(attempts.c.id == attempt_id, attempts.c.started_at == now)).one() == \
            ("done", now, 8)


def test_a_missing_parameter_is_refused_before_the_database_sees_it(ledger: Ledger) -> None:
    with ledger.write() as conn:
        with pytest.raises(KeyError, match="b_group"):
            fastpath.run(conn, _CLAIM_HEAD, {"b_now": utcnow()})


def test_driver_errors_are_sqlalchemy_dbapi_errors(ledger: Ledger) -> None:
    """The lanes catch DBAPIError ("the ledger is away"): a driver error must arrive as one."""
    bad = select(receipts.c.id).where(receipts.c.id == bindparam("b_id")).order_by(text("no_such_column"))
    with pytest.raises(DBAPIError):
        with ledger.write() as conn:
            fastpath.run(conn, bad, {"b_id": 1})


def test_a_closed_link_is_a_dbapi_error_and_the_connection_is_invalidated(ledger: Ledger) -> None:
    """A link that died under the transaction: DBAPIError flagged as a disconnect, and the pooled
    connection is invalidated (never handed out again), as Connection.execute would do."""
    seen = []
    with pytest.raises(DBAPIError) as caught:
        with ledger.write() as conn:
            conn.connection.dbapi_connection.close()
            try:
                fastpath.run(conn, _CLAIM_HEAD, {"b_group": "default", "b_now": utcnow()})
            finally:
                seen.append(conn.invalidated)
    assert caught.value.connection_invalidated and seen == [True]
    assert ledger.counts() == {}      # the pool gives a fresh connection afterwards


def test_a_lane_row_keeps_what_the_register_showed_and_when_it_paused(ledger: Ledger) -> None:
    """The prebuilt lane upsert: the first report inserts; a report without a register reading keeps the
    last one; paused_since is set at the first 'paused' and kept while paused, cleared on 'running'."""
    from worker.ledger.schema import lanes

    def row() -> dict:
        with ledger.read() as conn:
            return dict(conn.execute(select(lanes).where(lanes.c.name == "kkt1")).one()._mapping)

    ledger.lane_heartbeats([{"name": "kkt1", "state": "running", "fn_serial": "FN1", "last_fd": 7,
                             "shift_open": True}])
    assert (row()["fn_serial"], row()["last_fd"], row()["shift_open"], row()["paused_since"]) == ("FN1", 7, 1, None)
    ledger.lane_heartbeats([{"name": "kkt1", "state": "paused", "reason": "paper out"}])
    first = row()
    assert (first["fn_serial"], first["last_fd"], first["reason"]) == ("FN1", 7, "paper out")
    assert first["paused_since"] is not None
    ledger.lane_heartbeats([{"name": "kkt1", "state": "paused", "reason": "paper out", "last_fd": 8}])
    assert row()["paused_since"] == first["paused_since"] and row()["last_fd"] == 8
    ledger.lane_heartbeats([{"name": "kkt1", "state": "running"}])
    assert row()["paused_since"] is None and row()["state"] == "running" and row()["reason"] is None
