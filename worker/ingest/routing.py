"""Routing: which register group prints a payment (a shop selling for several legal entities).

A shop column (``routing.column``) names the legal entity or tax system of each payment; settings map
its values to register groups (``routing.groups``, else ``routing.default``), and every register
declares its group. A payment whose group has no enabled register is *rejected* at ingest with a
message saying why — never left queued where no lane will ever claim it. A refund whose row has no
routing value goes where its sale went. Receipts added later to a payment (settlements,
corrections) inherit the payment's group in the ledger (:mod:`worker.ledger.ingest_writes`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

from worker.defaults import DEFAULT_REGISTER_GROUP
from worker.ledger.records import PlannedRow
from worker.shop.rows import ShopPayment


class NoRegister(Exception):
    """The payment maps to no group, or to a group without an enabled register."""


@dataclass(frozen=True)
class Router:
    """Maps a shop row to a register group; knows which groups have registers."""

    column: str | None
    groups: dict[str, str]
    default: str | None
    available: frozenset[str]
    #: the group a refunded sale was routed to (source id → group), for refunds without a value
    group_of_sale: Callable[[int], str | None] = lambda _sid: None

    @classmethod
    def single(cls, groups: Iterable[str] = (DEFAULT_REGISTER_GROUP,)) -> "Router":
        """Everything to the default group (no routing configured)."""
        return cls(None, {}, DEFAULT_REGISTER_GROUP, frozenset(groups))

    def group_for(self, payment: ShopPayment) -> str:
        """The register group of *payment*; NoRegister with the reason otherwise."""
        if self.column is None:
            group = self.default or DEFAULT_REGISTER_GROUP
        else:
            value = payment.route
            if value is None and isinstance(payment.refund_of, int):
                inherited = self.group_of_sale(payment.refund_of)
                if inherited is not None:
                    return self._check(inherited, f"the refunded sale {payment.refund_of}'s group")
            key = "" if value is None else str(value).strip()
            group = self.groups.get(key) or self.default
            if group is None:
                raise NoRegister(f"routing: {self.column}={key!r} is not in routing.groups and routing.default "
                                 f"is not set; no register may print it")
            return self._check(group, f"{self.column}={key!r}")
        return self._check(group, "routing.default")

    def _check(self, group: str, why: str) -> str:
        if group not in self.available:
            have = ", ".join(sorted(self.available)) or "none"
            raise NoRegister(f"routing: {why} goes to register group {group!r}, which has no enabled register "
                             f"(groups with registers: {have})")
        return group

    def route(self, payment: ShopPayment, rows: Sequence[PlannedRow]) -> tuple[PlannedRow, ...]:
        """*rows* with their group set; every buildable row rejected when no register may print it."""
        try:
            group = self.group_for(payment)
        except NoRegister as exc:
            return tuple(replace(r, receipt=None, error=str(exc)) if r.receipt is not None else r for r in rows)
        return tuple(r if r.group == group else replace(r, group=group) for r in rows)
