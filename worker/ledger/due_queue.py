"""The due queue's SQL, shared by both ledgers' claim paths: which receipts are due (their prerequisites
done) and the head a lane claims next, locked ``FOR UPDATE SKIP LOCKED OF receipts`` on PostgreSQL
(rendered as nothing on SQLite, whose ``BEGIN IMMEDIATE`` is the lock). The per-statement path
(:mod:`worker.ledger.lane_writes`) runs the head as it is; PostgreSQL's chained statement
(:mod:`worker.ledger.chained`) embeds it with extra gates.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select

from worker.ledger.records import RECORD_COLS
from worker.ledger.schema import payments, receipts, register_documents
from worker.ledger.states import State

#: the head's column saying a register already holds its tag (adopt, do not send)
HEAD_UNCLAIMED = "head_unclaimed"

QUEUE = receipts.join(payments, receipts.c.payment_id == payments.c.id)


def prerequisites_done(just_done: ColumnElement[Any] | None = None) -> ColumnElement[bool]:
    """SQL: the receipt waits for nothing, or every receipt it waits for exists and is done.

    See :mod:`worker.receipts.stages`: the prerequisite is every receipt of shop row
    ``waits_for_source`` (of ``waits_for_stage`` if set), never the receipt itself nor the later parts
    of its own row and stage. None of them in the ledger yet means: wait. *just_done*: the id of a
    receipt this same statement records done (its snapshot still shows it "sending"; see the module).
    """
    first = receipts.alias("first")
    first_payment = payments.alias("first_payment")
    prerequisites = (
        select(first.c.id).select_from(first.join(first_payment, first.c.payment_id == first_payment.c.id))
        .where(first_payment.c.source_id == receipts.c.waits_for_source,
               or_(receipts.c.waits_for_stage.is_(None), first.c.stage == receipts.c.waits_for_stage),
               ~and_(first.c.payment_id == receipts.c.payment_id, first.c.stage == receipts.c.stage,
                     first.c.part >= receipts.c.part)))
    not_done = first.c.state != State.DONE.value
    if just_done is not None:
        not_done = and_(not_done, first.c.id != just_done)
    return or_(receipts.c.waits_for_source.is_(None),
               and_(prerequisites.exists(), ~prerequisites.where(not_done).exists()))


def head_select(*gates: ColumnElement[bool], just_done: ColumnElement[Any] | None = None) -> Select:
    """The head of a group's due queue, locked ``FOR UPDATE SKIP LOCKED OF receipts`` (nothing on SQLite),
    with whether a register already holds its tag (:data:`HEAD_UNCLAIMED`); *gates*: extra conditions."""
    unclaimed = select(register_documents.c.fd_number).where(
        register_documents.c.tag == receipts.c.tag, register_documents.c.disposition == "unclaimed").exists()
    return (select(*RECORD_COLS, unclaimed.label(HEAD_UNCLAIMED)).select_from(QUEUE)
            .where(receipts.c.state == State.QUEUED.value, receipts.c.register_group == bindparam("b_group"),
                   receipts.c.next_attempt_at <= bindparam("b_now"), prerequisites_done(just_done), *gates)
            .order_by(receipts.c.next_attempt_at, receipts.c.id).limit(1)
            .with_for_update(skip_locked=True, of=receipts))
