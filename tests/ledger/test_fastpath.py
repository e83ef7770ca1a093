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


def test_insert_many_writes_and_returns_what_a_sqlalchemy_insert_does(ledger: Ledger) -> None:
    """Ingest's batch INSERT (psycopg executemany on PostgreSQL, a loop on SQLite): every row returned
    once with its new id, the values read back with their types (Decimal money, datetimes, NULLs); the
    same rows written through Connection.execute read back identically."""
    from worker.ledger.schema import payments

    when = dt.datetime(2026, 11, 30, 12, 0, 0, 123456)
    rows = [dict(source_id=100 + i, kind="sale", amount=Decimal("150.50") + i, paid_at=when,
                 refund_of=None if i % 2 else 99, snapshot=f'{{"n": {i}}}', ingested_at=when)
            for i in range(5)]
    with ledger.write() as conn:
        ours = fastpath.insert_many(conn, payments, (payments.c.source_id, payments.c.id), rows)
        theirs = conn.execute(payments.insert().returning(payments.c.source_id, payments.c.id),
                              [dict(r, source_id=r["source_id"] + 1000) for r in rows]).all()
    assert sorted(s for s, _ in ours) == [100, 101, 102, 103, 104]
    assert len({i for _, i in ours}) == 5 and all(isinstance(i, int) for _, i in ours)
    with ledger.read() as conn:
        read = {r.source_id: r._mapping for r in conn.execute(select(payments))}
    for source_id, new_id in ours:
        mine, reference = dict(read[source_id]), dict(read[source_id + 1000])
        assert mine.pop("id") == new_id and mine.pop("source_id") + 1000 == reference.pop("source_id")
        reference.pop("id")
        assert mine == reference
    assert isinstance(read[100]["amount"], Decimal) and read[100]["paid_at"] == when
    assert read[101]["refund_of"] is None
    assert len(theirs) == 5


def test_insert_many_refuses_rows_that_differ_and_wraps_driver_errors(ledger: Ledger) -> None:
    """Rows with different columns would be written with the first row's columns only: refused. A unique
    violation arrives as SQLAlchemy's DBAPIError (IntegrityError), as Connection.execute raises it."""
    from worker.ledger.schema import payments

    now = utcnow()
    row = dict(source_id=1, kind="sale", amount=Decimal("1.00"), paid_at=now, refund_of=None, snapshot="{}",
               ingested_at=now)
    ret = (payments.c.source_id, payments.c.id)
    with pytest.raises(ValueError, match="differ"):
        with ledger.write() as conn:
            other = {k: v for k, v in row.items() if k != "refund_of"}
            fastpath.insert_many(conn, payments, ret, [row, other])
    with pytest.raises(DBAPIError):
        with ledger.write() as conn:
            fastpath.insert_many(conn, payments, ret, [row, dict(row)])   # the same source_id twice
    assert ledger.counts() == {}


@pytest.mark.parametrize("value", [
    dt.datetime(2026, 11, 30, 12, 0, 0, 123456), dt.datetime(2026, 11, 30, 12, 0, 0),
    dt.datetime(999, 1, 2, 3, 4, 5, 6), dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc), dt.date(2026, 11, 30), None])
def test_sqlite_datetimes_are_written_as_sqlalchemy_writes_them(value: object) -> None:
    """fastpath's quicker SQLite DATETIME processor writes exactly SQLAlchemy's text (SQLite compares
    datetimes as text: one differing character would reorder the due queue)."""
    from sqlalchemy import DateTime
    from sqlalchemy.dialects.sqlite import pysqlite

    dialect = pysqlite.dialect()
    ours = fastpath._bind_processor(DateTime(), dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None and theirs is not None and ours is not theirs
    assert ours(value) == theirs(value)
