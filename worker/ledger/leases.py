"""Register leases with a fencing epoch: who may talk to a register, checked inside every write.

A lease row ``(register, holder, epoch, expires_at)`` is taken at start and renewed; every new
holder bumps the epoch. Every intent, outcome, adoption and watermark write for a register runs
:meth:`LeaseWrites.check_fence` in the *same* transaction (the lease row is locked ``FOR UPDATE`` on
PostgreSQL, the whole write is ``BEGIN IMMEDIATE`` on SQLite), so a process whose epoch is stale
cannot write anything for that register (Kleppmann, "How to do distributed locking").

Expiry is decided by the **database server's** clock (``clock_timestamp()`` on PostgreSQL,
``strftime('now')`` on SQLite), never the worker's. A PostgreSQL session advisory lock dies with its
connection (link drop, ``idle_session_timeout``); the lease row does not.

A holder on the same host whose process is gone (pid and process start time no longer match) is
taken over at once — after ``kill -9`` the next run must not wait for the lease to expire.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, bindparam, column, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from worker.errors import LeaseHeld, LeaseLost
from worker.ledger import fastpath
from worker.ledger.base import LedgerBase
from worker.ledger.schema import register_leases


@dataclass(frozen=True)
class Fence:
    """A lease as its holder knows it: the epoch every write is checked against."""

    register: str
    holder: str
    epoch: int
    expires_at: dt.datetime


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, after the parenthesised command name


#: this process's node name (``cluster.node``); None: the host name
_node: str | None = None


def set_node(name: str | None) -> None:
    """Name this process's node (``cluster.node``): the host part of its holder ids. Two processes that
    share a node name must run on one host — a dead holder is recognised by its pid on *this* node."""
    global _node
    _node = name


def this_node() -> str:
    """The node this process runs as: ``cluster.node``, else the host name."""
    return _node or socket.gethostname()


def holder_id(role: str) -> str:
    """``role@node:pid:start``: unique per process, and checkable for liveness on the same node."""
    pid = os.getpid()
    return f"{role}@{this_node()}:{pid}:{_process_start(pid) or 0}"[:128]


def holder_is_dead(holder: str) -> bool:
    """True only when *holder* ran on this node (host) and its process is certainly gone."""
    try:
        _, where = holder.split("@", 1)
        host, pid, start = where.rsplit(":", 2)
    except ValueError:
        return False
    if host != this_node():
        return False   # another node (host): only the lease's expiry can tell
    return _process_start(int(pid)) != start


def db_now(conn: Connection | fastpath.Tx) -> dt.datetime:
    """The database server's time, naive UTC."""
    if conn.dialect.name == "postgresql":
        return fastpath.run(conn, _DB_NOW_PG, {}).rows[0][0]
    return dt.datetime.fromisoformat(fastpath.run(conn, _DB_NOW_SQLITE, {}).rows[0][0])


class LeaseWrites(LedgerBase):
    """Taking, renewing, releasing and checking register leases."""

    def acquire_lease(self, register: str, holder: str, ttl_s: float) -> Fence:
        """Take *register*'s lease with a new epoch. LeaseHeld while another live holder has it."""
        ttl = dt.timedelta(seconds=ttl_s)
        with self.reading() as tx:
            # a look without a row lock first: a standby asking every poll writes nothing (a locked row is
            # a WAL record on PostgreSQL) while the lease is plainly someone else's
            now = db_now(tx)
            row = fastpath.run(tx, _LEASE_ROW, {"b_register": register}).mapping()
        if row is not None and row["expires_at"] > now and row["holder"] != holder and not holder_is_dead(row["holder"]):
            raise LeaseHeld(register, row["holder"], row["epoch"], row["expires_at"])

        def take(conn: Connection) -> Fence:
            # guards (LeaseHeld) before any write: batched with the lanes' writes in the worker, where 200
            # lanes starting at once share commits
            now = db_now(conn)
            row = fastpath.run(conn, _LEASE_ROW_LOCKED, {"b_register": register}).mapping()
            values = {"b_register": register, "b_holder": holder, "b_expires": now + ttl, "b_now": now}
            if row is None:
                epoch = 1
                # ON CONFLICT DO NOTHING: a first-time holder that raced us (another process) wins, and
                # this transaction — maybe shared with other lanes' writes — does not fail
                ins = _LEASE_INSERT_PG if conn.dialect.name == "postgresql" else _LEASE_INSERT_SQLITE
                if fastpath.run(conn, ins, {**values, "b_epoch": epoch}).first() is None:
                    raise LeaseHeld(register, "another process", 1, "now")
            else:
                if row["expires_at"] > now and row["holder"] != holder and not holder_is_dead(row["holder"]):
                    raise LeaseHeld(register, row["holder"], row["epoch"], row["expires_at"])
                epoch = row["epoch"] + 1
                if fastpath.run(conn, _LEASE_TAKE, {**values, "b_epoch": epoch,
                                                    "b_old_epoch": row["epoch"]}).rowcount != 1:
                    raise LeaseHeld(register, "another process", row["epoch"] + 1, "now")
            return Fence(register, holder, epoch, now + ttl)

        return self.batched(take)

    def renew_lease(self, fence: Fence, ttl_s: float) -> Fence:
        """Extend the lease; LeaseLost if the epoch moved on (someone took it over). Batched with the
        lanes' writes in the worker (LeaseLost comes before any write)."""
        return self.batched(lambda conn: self._renew_in(conn, fence, ttl_s))

    @staticmethod
    def _renew_in(conn: Connection, fence: Fence, ttl_s: float) -> Fence:
        now = db_now(conn)
        expires = now + dt.timedelta(seconds=ttl_s)
        if fastpath.run(conn, _LEASE_EXPIRES, _fenced(fence, expires)).rowcount != 1:
            raise LeaseLost(f"register {fence.register}: lease epoch {fence.epoch} was taken over")
        return Fence(fence.register, fence.holder, fence.epoch, expires)

    def release_lease(self, fence: Fence) -> None:
        """Let the lease expire now (a clean stop), if it is still ours. Batched with the lanes' writes in
        the worker: 200 lanes stopping at once share commits."""
        self.batched(lambda conn: fastpath.run(conn, _LEASE_EXPIRES, _fenced(fence, db_now(conn))))

    def leases(self) -> list[dict]:
        """Every lease with the server's now (for ``status``)."""
        with self.read() as conn:
            now = db_now(conn)
            return [{**dict(r._mapping), "live": r.expires_at > now}
                    for r in conn.execute(select(register_leases).order_by(register_leases.c.register))]

    @staticmethod
    def check_fence(conn: Connection, fence: Fence | None) -> None:
        """Inside a write transaction: LeaseLost unless *fence* is still the register's epoch."""
        if fence is None:
            return
        row = fastpath.run(conn, _FENCE_ROW, {"b_register": fence.register}).first()
        raise_if_stale(fence, row)


def raise_if_stale(fence: Fence, row: tuple[int, str] | tuple[None, None] | None) -> None:
    """LeaseLost unless the lease row read under ``FOR UPDATE`` — (epoch, holder); None or (None, None):
    no row — is still *fence*'s. One message for the per-statement check and the chained PostgreSQL
    statements (:mod:`worker.ledger.chained`), which read the same row in their ``fence`` CTE."""
    if row is None or row[0] is None:
        row = None
    if row is None or row[0] != fence.epoch or row[1] != fence.holder:
        raise LeaseLost(f"register {fence.register}: lease epoch {fence.epoch} is stale "
                        f"(now {row[0] if row else 'none'} held by {row[1] if row else 'nobody'})")


def _fenced(fence: Fence, expires: dt.datetime) -> dict:
    return {"b_register": fence.register, "b_epoch": fence.epoch, "b_holder": fence.holder, "b_expires": expires}


# checked in every intent and outcome: built once and run through worker.ledger.fastpath
_FENCE_ROW = (select(register_leases.c.epoch, register_leases.c.holder)
              .where(register_leases.c.register == bindparam("b_register")).with_for_update())
# a lane's start and stop (and every renewal): built once too — 200 lanes start at once (issue 10)
_DB_NOW_PG = text("SELECT clock_timestamp() AT TIME ZONE 'UTC'").columns(column("now"))
_DB_NOW_SQLITE = text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").columns(column("now"))
_LEASE_ROW = select(register_leases).where(register_leases.c.register == bindparam("b_register"))
_LEASE_ROW_LOCKED = _LEASE_ROW.with_for_update()   # rendered as nothing on SQLite (BEGIN IMMEDIATE)
_LEASE_VALUES = {"register": bindparam("b_register"), "holder": bindparam("b_holder"), "epoch": bindparam("b_epoch"),
                 "expires_at": bindparam("b_expires"), "acquired_at": bindparam("b_now")}
# the dialect's INSERT (it has ON CONFLICT DO NOTHING on both SQLite and PostgreSQL)
_LEASE_INSERT_PG = (pg_insert(register_leases).values(**_LEASE_VALUES)
                    .on_conflict_do_nothing(index_elements=["register"]).returning(register_leases.c.register))
_LEASE_INSERT_SQLITE = (sqlite_insert(register_leases).values(**_LEASE_VALUES)
                        .on_conflict_do_nothing(index_elements=["register"]).returning(register_leases.c.register))
_LEASE_TAKE = (update(register_leases).where(register_leases.c.register == bindparam("b_register"),
                                             register_leases.c.epoch == bindparam("b_old_epoch"))
               .values(holder=bindparam("b_holder"), epoch=bindparam("b_epoch"), expires_at=bindparam("b_expires"),
                       acquired_at=bindparam("b_now")))
# renewal and release: only while the epoch and the holder are still ours
_LEASE_EXPIRES = (update(register_leases).where(register_leases.c.register == bindparam("b_register"),
                                                register_leases.c.epoch == bindparam("b_epoch"),
                                                register_leases.c.holder == bindparam("b_holder"))
                  .values(expires_at=bindparam("b_expires")))
