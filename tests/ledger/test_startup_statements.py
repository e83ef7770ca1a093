"""A lane's start-up statements (lease, watermark, examined documents, lane rows, "sending" receipts) run
prebuilt through worker.ledger.fastpath, and its reads through fastpath.reading instead of
Connection.begin: same rows, same types and the same errors as SQLAlchemy's own execution, on SQLite and
on the real PostgreSQL (issue 10: 200 lanes starting at once)."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError

from kkt_drivers.receipt import DocumentKind, FiscalDocument
from tests.ledger.test_ledger import doc, entry, ingest
from worker.errors import LeaseHeld, LeaseLost
from worker.ledger import fastpath
from worker.ledger.documents import _OWN_LAST_FD, _WATERMARK
from worker.ledger.lane_writes import _LANE_HEALTH, _LANE_INSERT, _NEXT_DUE, _SENDING_ON
from worker.ledger.leases import _LEASE_INSERT_PG, _LEASE_INSERT_SQLITE, _LEASE_ROW, db_now
from worker.ledger.records import record_from_row, utcnow
from worker.ledger.schema import lanes, receipts, register_documents, register_leases, register_watermarks
from worker.ledger.states import State
from worker.ledger.store import Ledger

FN = "9999078900000001"


def _sending_one(ledger: Ledger) -> None:
    """Two receipts ingested, the first claimed by kkt1 (now "sending"), a watermark and a done FD."""
    ingest(ledger, [entry(1, "150.50"), entry(2, "99.99")], cursor=2)
    fence = ledger.acquire_lease("kkt1", "test@host:1:1", 60)
    ledger.set_watermark("kkt1", FN, 4, fence=fence)
    assert ledger.claim("kkt1", "default", fn_serial=FN, fd_before=4, fence=fence) is not None


def test_the_start_up_reads_return_what_sqlalchemy_reads(ledger: Ledger) -> None:
    """Each prebuilt read, in a fastpath read transaction, against the same statement through
    Connection.execute: same rows, same Python types (datetimes, Decimal money)."""
    _sending_one(ledger)
    cases = [(_SENDING_ON, {"b_register": "kkt1"}), (_WATERMARK, {"b_register": "kkt1", "b_fn": FN}),
             (_OWN_LAST_FD, {"b_fn": FN}), (_NEXT_DUE, {"b_group": "default"}),
             (_LEASE_ROW, {"b_register": "kkt1"}), (_WATERMARK, {"b_register": "none", "b_fn": FN})]
    for stmt, params in cases:
        with ledger.reading() as tx:
            ours = fastpath.run(tx, stmt, params)
        with ledger.read() as conn:
            theirs = conn.execute(stmt, params).all()
        assert ours.rows == [tuple(r) for r in theirs], stmt
        assert [tuple(type(v) for v in r) for r in ours.rows] == [tuple(type(v) for v in r) for r in theirs]
    # and through the Ledger methods, against the Core query they replaced
    with ledger.read() as conn:
        old = [record_from_row(r) for r in conn.execute(ledger._select_records().where(
            receipts.c.state == State.SENDING.value, receipts.c.register == "kkt1").order_by(receipts.c.id))]
    assert ledger.sending("kkt1") == old and len(old) == 1 and old[0].total == Decimal("150.50")
    assert ledger.sending("kkt2") == [] and ledger.sending() == old
    assert ledger.watermark("kkt1", FN) == 4 and ledger.watermark("kkt1", "other") is None
    assert ledger.own_last_fd(FN) == 0
    assert isinstance(ledger.next_due_at("default"), dt.datetime) and ledger.next_due_at("none") is None


def test_db_now_is_the_servers_naive_utc_time(ledger: Ledger) -> None:
    """The prebuilt clock read gives what the text() query gave: a naive datetime, the server's UTC now."""
    with ledger.read() as conn:
        old = conn.execute(text("SELECT clock_timestamp() AT TIME ZONE 'UTC'")).scalar_one() \
            if conn.dialect.name == "postgresql" else \
            dt.datetime.fromisoformat(conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one())
        in_tx = db_now(conn)
    with ledger.reading() as tx:
        fast = db_now(tx)
    assert all(isinstance(t, dt.datetime) and t.tzinfo is None for t in (old, in_tx, fast))
    assert old <= in_tx <= fast and fast - old < dt.timedelta(seconds=5)
    assert abs(fast - utcnow()) < dt.timedelta(seconds=5)


def test_the_lease_guards_raise_where_they_did(ledger: Ledger) -> None:
    """First take (INSERT), refused while held (LeaseHeld from the look and from the locked read), renew,
    takeover after release (UPDATE, epoch + 1), the old holder's renewal LeaseLost, its release a no-op."""
    first = ledger.acquire_lease("kkt1", "a@elsewhere:1:1", 60)
    assert first.epoch == 1 and first.expires_at > utcnow() - dt.timedelta(seconds=5)
    with pytest.raises(LeaseHeld):
        ledger.acquire_lease("kkt1", "b@elsewhere:2:2", 60)
    renewed = ledger.renew_lease(first, 120)
    assert renewed.epoch == 1 and renewed.expires_at > first.expires_at
    ledger.release_lease(renewed)
    with ledger.read() as conn:
        row = conn.execute(select(register_leases).where(register_leases.c.register == "kkt1")).one()
        assert row.expires_at <= db_now(conn) and isinstance(row.acquired_at, dt.datetime)
    second = ledger.acquire_lease("kkt1", "b@elsewhere:2:2", 60)
    assert second.epoch == 2
    with pytest.raises(LeaseLost):
        ledger.renew_lease(first, 60)
    ledger.release_lease(first)          # not ours any more: changes nothing
    with ledger.read() as conn:
        row = conn.execute(select(register_leases).where(register_leases.c.register == "kkt1")).one()
    assert (row.holder, row.epoch, row.expires_at) == ("b@elsewhere:2:2", 2, second.expires_at)
    with pytest.raises(LeaseLost):
        ledger.set_watermark("kkt1", FN, 3, fence=first)


def test_a_first_take_that_lost_the_race_inserts_nothing(ledger: Ledger) -> None:
    """The prebuilt INSERT … ON CONFLICT DO NOTHING RETURNING: a row the first time, none the second
    (acquire_lease then raises LeaseHeld instead of failing the shared transaction)."""
    ins = _LEASE_INSERT_PG if ledger.engine.dialect.name == "postgresql" else _LEASE_INSERT_SQLITE
    now = dt.datetime(2026, 12, 1, 0, 0, 0, 123000)
    values = {"b_register": "kkt9", "b_holder": "h", "b_epoch": 1, "b_expires": now, "b_now": now}
    with ledger.write() as conn:
        assert fastpath.run(conn, ins, values).rows == [("kkt9",)]
        assert fastpath.run(conn, ins, {**values, "b_holder": "other"}).first() is None
    with ledger.read() as conn:
        assert tuple(conn.execute(select(register_leases)).one()) == ("kkt9", "h", 1, now, now)


def test_examined_documents_and_watermarks_are_written_as_sqlalchemy_writes_them(ledger: Ledger) -> None:
    """The prebuilt INSERT of an examined document (Decimal total, datetimes, NULLs) reads back exactly
    like one written by Core; record_examined skips documents already examined; the watermark only goes up."""
    fence = ledger.acquire_lease("kkt1", "test@host:1:1", 60)
    shift = FiscalDocument(5, 42, FN, DocumentKind.OPEN_SHIFT, dt.datetime(2026, 11, 21, 9), 3, None, None, None, None)
    out = ledger.record_examined("kkt1", FN, [shift, doc(6, "X1", "10.05")], 6, fence=fence)
    assert [(e.fd_number, e.disposition) for e in out] == [(5, "service"), (6, "unclaimed")]
    assert ledger.record_examined("kkt1", FN, [doc(6, "X1", "10.05"), doc(7, "X2")], 7, fence=fence)[0].fd_number == 7
    ledger.record_examined("kkt1", FN, [], 3, fence=fence)     # never down through record_examined
    assert ledger.watermark("kkt1", FN) == 7
    ledger.set_watermark("kkt1", FN, 2, fence=fence)           # an admin's set_watermark may go down
    assert ledger.watermark("kkt1", FN) == 2
    now = dt.datetime(2026, 11, 30, 12, 0, 0)
    with ledger.write() as conn:   # the same values through Core and through the prebuilt INSERT
        core = dict(fn_serial="CORE", fd_number=6, register="kkt1", kind="receipt", tag="X1", operation=1,
                    total=Decimal("10.05"), fiscal_sign=123456789, shift_number=3, receipt_number=7,
                    issued_at=dt.datetime(2026, 11, 21, 10), disposition="unclaimed", receipt_id=None,
                    examined_at=now)
        conn.execute(insert(register_documents).values(**core))
    rows = {}
    with ledger.read() as conn:
        for fn in ("CORE", FN):
            rows[fn] = dict(conn.execute(select(register_documents).where(
                register_documents.c.fn_serial == fn, register_documents.c.fd_number == 6)).one()._mapping)
        marks = conn.execute(select(register_watermarks)).all()
    ours, theirs = rows[FN], rows["CORE"]
    assert isinstance(ours.pop("examined_at"), dt.datetime)
    theirs.pop("examined_at")
    assert {**ours, "fn_serial": "CORE"} == theirs
    assert isinstance(ours["total"], Decimal) and isinstance(ours["issued_at"], dt.datetime)
    assert len(marks) == 1 and isinstance(marks[0].updated_at, dt.datetime)
    with ledger.read() as conn:
        assert list(conn.execute(select(register_documents.c.fd_number).where(
            register_documents.c.fn_serial == FN).order_by(register_documents.c.fd_number)).scalars()) == [5, 6, 7]


def test_lane_rows_and_health_are_written_as_sqlalchemy_writes_them(ledger: Ledger) -> None:
    """The first heartbeat's INSERT and lane_health's UPDATE (a date, a float, a datetime) against Core."""
    ledger.lane_heartbeats([{"name": "kkt1", "state": "paused", "reason": "paper out", "fn_serial": FN,
                             "last_fd": 7, "shift_open": True}])
    ledger.lane_health("kkt1", fn_expires_on=dt.date(2027, 3, 1), ofd_unsent=4,
                       ofd_oldest_at=dt.datetime(2026, 11, 30, 1, 2, 3, 456000), clock_skew_s=-1.5)
    with ledger.write() as conn:
        fast = {"b_name": "kkt2", "b_state": "running", "b_reason": None, "b_now": utcnow(), "b_fn": None,
                "b_last_fd": None, "b_shift_open": None, "b_paused_since": None}
        fastpath.run(conn, _LANE_INSERT, fast)
        conn.execute(insert(lanes).values(name="kkt3", state="running", heartbeat_at=fast["b_now"]))
        health = {"b_fn_expires_on": dt.date(2027, 3, 1), "b_ofd_unsent": None, "b_ofd_oldest_at": None,
                  "b_clock_skew_s": 0.25}
        assert fastpath.run(conn, _LANE_HEALTH, {**health, "b_name": "kkt2"}).rowcount == 1
        conn.execute(update(lanes).where(lanes.c.name == "kkt3").values(
            fn_expires_on=dt.date(2027, 3, 1), ofd_unsent=None, ofd_oldest_at=None, clock_skew_s=0.25))
        assert fastpath.run(conn, _LANE_HEALTH, {**health, "b_name": "nobody"}).rowcount == 0
    with ledger.read() as conn:
        got = {r.name: dict(r._mapping) for r in conn.execute(select(lanes))}
    one = got["kkt1"]
    assert (one["state"], one["reason"], one["fn_serial"], one["last_fd"], one["shift_open"]) == \
        ("paused", "paper out", FN, 7, 1)
    assert one["paused_since"] == one["heartbeat_at"] and one["fn_expires_on"] == dt.date(2027, 3, 1)
    assert (one["ofd_unsent"], one["ofd_oldest_at"], one["clock_skew_s"]) == \
        (4, dt.datetime(2026, 11, 30, 1, 2, 3, 456000), -1.5)
    assert {**got["kkt2"], "name": "kkt3"} == got["kkt3"]


def test_a_fast_read_transaction_sees_what_a_core_read_transaction_sees(ledger: Ledger) -> None:
    """Isolation is unchanged: a write committed by another connection between two statements of one
    read transaction is seen (PostgreSQL, READ COMMITTED) or not (SQLite's snapshot) the same way by
    Ledger.read and Ledger.reading; and a SQLite read transaction never takes the write lock."""
    fence = ledger.acquire_lease("kkt1", "test@host:1:1", 60)
    ledger.set_watermark("kkt1", FN, 1, fence=fence)
    params = {"b_register": "kkt1", "b_fn": FN}
    seen = {}
    for how in ("core", "fast"):
        cm = ledger.read() if how == "core" else ledger.reading()
        with cm as conn:
            before = fastpath.run(conn, _WATERMARK, params).rows[0][0]
            # another connection writes meanwhile (on SQLite it must not wait for our read transaction)
            t = threading.Thread(target=ledger.set_watermark, args=("kkt1", FN, before + 1), kwargs={"fence": fence})
            t.start()
            t.join(10)
            assert not t.is_alive()
            seen[how] = (before, fastpath.run(conn, _WATERMARK, params).rows[0][0])
    assert seen["core"][1] - seen["core"][0] == seen["fast"][1] - seen["fast"][0]
    assert ledger.watermark("kkt1", FN) == 3
    assert ledger.engine.pool.checkedout() == 0


def test_a_fast_read_fails_as_sqlalchemy_fails(ledger: Ledger) -> None:
    """A driver error inside the read transaction is a DBAPIError and leaves a usable pool; a link that
    died is flagged as a disconnect and its connection never handed out again."""
    bad = text("SELECT no_such_column FROM receipts").columns()
    with pytest.raises(DBAPIError):
        with ledger.reading() as tx:
            fastpath.run(tx, bad, {})
    assert ledger.watermark("kkt1", FN) is None and ledger.engine.pool.checkedout() == 0
    with pytest.raises(DBAPIError) as caught:
        with ledger.reading() as tx:
            tx.connection.dbapi_connection.close()
            fastpath.run(tx, _WATERMARK, {"b_register": "kkt1", "b_fn": FN})
    assert caught.value.connection_invalidated
    assert ledger.sending("kkt1") == [] and ledger.engine.pool.checkedout() == 0
    with pytest.raises(ZeroDivisionError):   # any other error: rolled back, connection returned
        with ledger.reading() as tx:
            fastpath.run(tx, _WATERMARK, {"b_register": "kkt1", "b_fn": FN})
            1 / 0
    assert ledger.engine.pool.checkedout() == 0 and ledger.own_last_fd(FN) == 0


def test_an_unreachable_database_is_a_dbapi_error(tmp_path) -> None:
    """Checking out a connection that cannot be made: DBAPIError, as Engine.connect raises it."""
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    (tmp_path / "ledger.db").unlink()
    (tmp_path / "ledger.db").mkdir()          # a directory where the file should be: the driver refuses
    try:
        with pytest.raises(DBAPIError):
            led.watermark("kkt1", FN)
    finally:
        led.dispose()
