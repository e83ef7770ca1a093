"""The composition root: every runtime part is built here from the settings, and only here.

The worker process (:func:`build_worker`) is the ingest stage — one shop source, one planner, the
payments poller (and the deliveries poller in the prepayment flow), by default in a child process of
its own — and one lane per enabled register, all sharing one ledger. The CLI's admin commands take the
same parts from here (:func:`open_ledger`, :func:`open_register`, :func:`open_shop_source`,
:func:`receipt_config`), so a setting is read in one place and a register URL is opened in one place.
Bad keys are named by their settings path.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo

from kkt_drivers import open_driver
from worker import __version__
from kkt_drivers import receipt as model
from kkt_drivers.base import Driver
from worker.defaults import CLUSTER_IDLE_TX_MAX_SECONDS, CLUSTER_IDLE_TX_MIN_SECONDS, LEDGER_LOCK_TIMEOUT_SECONDS
from worker.errors import ConfigError
from worker.fiscal.lane import Lane
from worker.fiscal.pool import Pool
from worker.ingest.planner import DeliveryPlanner, Planner
from worker.ingest.poller import DeliveryIngestor, Ingestor
from worker.ingest.routing import Router
from worker.ledger.db import create_ledger_engine
from worker.ingest.lease import IngestLease
from worker.ingest.process import ProcessIngest
from worker.ingest.stage import IngestStage, LocalIngest
from worker.ledger.cluster_writes import Member
from worker.ledger.leases import Fence, holder_id, set_node, this_node
from worker.ledger.store import Ledger
from worker.ops.health import Thresholds
from worker.ops.http import OpsServer
from worker.ops.runner import OpsRunner
from worker.receipts import rules
from worker.receipts.config import FLOW_PREPAYMENT, ReceiptConfig
from worker.settings import RegisterSettings, Settings
from worker.shop import open_source
from worker.shop.rows import ShopPayment
from worker.shop.source import ShopSource, SourceMapping

#: what the embedded default (the demo shop) uses when settings.yaml says nothing
DEMO_RECEIPTS = {"tax_system": "osn", "default_vat": "vat22", "settlement_place": "https://shop.example.ru"}

_ALIAS_DEFAULTS = {
    "vat_aliases": "DEFAULT_VAT_ALIASES", "method_aliases": "DEFAULT_METHOD_ALIASES",
    "subject_aliases": "DEFAULT_SUBJECT_ALIASES", "measure_aliases": "DEFAULT_MEASURE_ALIASES",
}


def _enum(cls: type[enum.Enum], value: Any, key: str) -> enum.Enum:
    """An enum member from its value, or its name in any case ("osn", "FULL_PAYMENT", 4)."""
    for candidate in (value,):
        try:
            return cls(candidate)
        except ValueError:
            pass
    if isinstance(value, str):
        member = cls.__members__.get(value.strip().upper())
        if member is not None:
            return member
    names = ", ".join(m.name.lower() for m in cls)
    raise ConfigError(f"receipts.{key}: {value!r} is not one of {names}")


def receipt_config(settings: Settings) -> ReceiptConfig:
    """ReceiptConfig from ``settings.receipts``; alias maps given there extend the defaults."""
    raw = dict(DEMO_RECEIPTS if not settings.receipts else settings.receipts)
    fields = {f.name: f for f in dataclasses.fields(ReceiptConfig)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"receipts.{key}: unknown setting (known here: {', '.join(fields)})")
    enums = {"tax_system": model.TaxSystem, "default_vat": model.Vat,
             "default_payment_method": model.PaymentMethod, "default_payment_subject": model.PaymentSubject}
    for key, cls in enums.items():
        if key in raw:
            raw[key] = _enum(cls, raw[key], key)
    for key, default_name in _ALIAS_DEFAULTS.items():
        if key in raw:
            if not isinstance(raw[key], dict):
                raise ConfigError(f"receipts.{key}: expected a mapping of shop code → our code")
            raw[key] = {**getattr(rules, default_name), **raw[key]}
    try:
        return ReceiptConfig(**raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"receipts: {exc}") from exc


def source_mapping(settings: Settings) -> SourceMapping:
    """SourceMapping from ``settings.source.mapping``."""
    names = {f.name for f in dataclasses.fields(SourceMapping)}
    for key in settings.source.mapping:
        if key not in names:
            raise ConfigError(f"source.mapping.{key}: unknown column mapping (known: {', '.join(sorted(names))})")
    columns = dict(settings.source.mapping)
    if settings.routing.column is not None:
        columns["payment_route"] = settings.routing.column   # routing reads one more column of payments
    try:
        return SourceMapping(**columns)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"source.mapping: {exc}") from exc


def open_shop_source(settings: Settings) -> ShopSource:
    """The shop source named by the settings (MySQL for shops, SQLite for the demo)."""
    url = settings.source_url
    mapping = source_mapping(settings)
    if url.startswith("mysql"):
        from worker.shop.mysql import tls_context

        s = settings.source
        tls = tls_context(ca=s.tls.ca, cert=s.tls.cert, key=s.tls.key, verify_identity=s.tls.verify_identity) \
            if s.tls.required or s.tls.ca else None
        return open_source(url, mapping, connect_timeout=s.connect_timeout_s, read_timeout=s.read_timeout_s,
                           write_timeout=s.write_timeout_s, tls=tls, timezone=s.timezone)
    return open_source(url, mapping, timezone=settings.source.timezone)


def current_shop_rows(settings: Settings, ledger: Ledger, source_ids: Sequence[int], *,
                      refetch: bool = True) -> dict[int, ShopPayment | None]:
    """Each shop row as the shop has it now (an admin may have fixed it), else the ledger's snapshot."""
    found: dict[int, ShopPayment] = {}
    if refetch and source_ids:
        src = open_shop_source(settings)
        try:
            found = {p.id: p for p in src.fetch_by_ids(list(source_ids))}
        finally:
            src.close()
    return {sid: found.get(sid) or ledger.payment_snapshot(sid) for sid in source_ids}


def open_ledger(settings: Settings, *, read_only: bool = False) -> Ledger:
    """The ledger at the configured URL (password from the environment); read-only for read commands.

    Names this process's node (``cluster.node``) for its lease holder ids. On PostgreSQL the server ends a
    writer's session left idle inside a transaction after half a lease (at most 5 s): a frozen worker
    (SIGSTOP, a stalled or cut link whose backend lives on) must not keep the next worker — in a cluster
    or a restarted single worker, or this worker's own new sessions — from taking a register's lease row;
    and a writer waits at most ``LEDGER_LOCK_TIMEOUT_SECONDS`` for a row lock (docs/cluster.md)."""
    set_node(settings.cluster.node)
    if read_only:
        return Ledger(settings.ledger_url, read_only=True)
    idle_ms = int(1000 * min(CLUSTER_IDLE_TX_MAX_SECONDS, max(CLUSTER_IDLE_TX_MIN_SECONDS, settings.lease.ttl_s / 2)))
    engine = create_ledger_engine(settings.ledger_url, idle_in_transaction_ms=idle_ms,
                                  lock_timeout_ms=int(1000 * LEDGER_LOCK_TIMEOUT_SECONDS))
    return Ledger(settings.ledger_url, engine)


def open_register(register: RegisterSettings) -> Driver:
    """The driver (built, not connected) for one configured register."""
    return open_driver(register.url)


def registers_named(settings: Settings, name: str | None) -> list[RegisterSettings]:
    """The enabled registers called *name* (every enabled one for None)."""
    return [r for r in settings.enabled_registers() if name in (None, r.name)]


def build_router(settings: Settings, ledger: Ledger) -> Router:
    """The payment → register group router from ``settings.routing`` and the enabled registers."""
    r = settings.routing
    return Router(r.column, {str(k): v for k, v in r.groups.items()}, r.default,
                  frozenset(reg.group for reg in settings.enabled_registers()), ledger.group_of_payment)


def build_planner(settings: Settings, ledger: Ledger, source: ShopSource | None = None,
                  config: ReceiptConfig | None = None) -> Planner:
    """The planner with routing; a refund of a sale from before go-live reads that sale from the shop."""
    fetch = None if source is None else (lambda sid: next(iter(source.fetch_by_ids([sid])), None))
    return Planner(ledger, config or receipt_config(settings), router=build_router(settings, ledger),
                   start_after_id=settings.source.start_after_id, fetch_sale=fetch)


def build_ingestor(settings: Settings, ledger: Ledger, source: ShopSource, planner: Planner | None = None,
                   fence: Callable[[], Fence | None] = lambda: None) -> Ingestor:
    """The payments poller with the configured batch, gap and start settings (every write carrying *fence*:
    the ingest lease in cluster mode)."""
    s = settings.source
    return Ingestor(source, ledger, planner or build_planner(settings, ledger, source), batch_size=s.batch_size,
                    gap_timeout_s=s.gap_timeout_s, max_gap_span=s.max_gap_span, start_after_id=s.start_after_id,
                    fence=fence)


def build_ingest(settings: Settings, ledger: Ledger, fence: Callable[[], Fence | None] = lambda: None,
                 closers: Sequence[Callable[[], None]] = ()) -> LocalIngest:
    """The shop's pollers on *ledger*: payments and, in the prepayment flow, deliveries (own cursor, gaps)."""
    source = open_shop_source(settings)
    config = receipt_config(settings)
    planner = build_planner(settings, ledger, source, config)
    s = settings.source
    deliveries = None
    if config.flow == FLOW_PREPAYMENT:
        deliveries = DeliveryIngestor(
            source, ledger, DeliveryPlanner(ledger, config, source, planner, start_after_id=s.start_after_id),
            batch_size=s.batch_size, gap_timeout_s=s.gap_timeout_s, max_gap_span=s.max_gap_span, fence=fence)
    return LocalIngest(build_ingestor(settings, ledger, source, planner, fence), deliveries,
                       closers=[source.close, *closers])


def build_ingest_in_child(settings: Settings, fence: Callable[[], Fence | None]) -> LocalIngest:
    """The ingest process's pollers (worker.ingest.process): on a ledger engine of its own, since a
    connection pool never crosses a process boundary."""
    ledger = open_ledger(settings)
    return build_ingest(settings, ledger, fence, closers=[ledger.dispose])


def build_ingest_stage(settings: Settings, ledger: Ledger, fence: Callable[[], Fence | None]) -> IngestStage:
    """Ingest for ``run``: in a child process (``source.ingest_process``, the default) or in the poll loop's
    thread. In a child, the pollers' CPU does not compete with the lanes' for this process's one GIL: a
    backlog's ingest had starved the lanes (docs/pool.md)."""
    if not settings.source.ingest_process:
        return build_ingest(settings, ledger, fence)
    root = logging.getLogger()
    return ProcessIngest(functools.partial(build_ingest_in_child, settings), name="payments",
                         batch_size=settings.source.batch_size, fence=fence,
                         log_level=logging.getLevelName(root.level), log_format=settings.log.format)


@dataclass
class WorkerGraph:
    """The parts of a running worker; :meth:`close` stops ingest and releases the shop connection."""

    ingest: IngestStage
    lanes: list[Lane]
    #: cluster mode: the ingest lease (only its holder polls the shop); None: this worker always ingests
    ingest_lease: IngestLease | None = None
    #: cluster mode: this worker's row in ``workers``
    member: Member | None = None

    def close(self) -> None:
        """Release what the graph opened (the lanes close their drivers themselves)."""
        self.ingest.close()


def build_pool() -> Pool:
    """The worker's register pool: doorbells, health, and lane states flushed in one transaction."""
    return Pool(batched=True)


def build_worker(settings: Settings, ledger: Ledger, stop: threading.Event, pool: Pool | None = None) -> WorkerGraph:
    """Everything the worker runs: ingest (started at its first poll) and the lanes. Nothing starts here."""
    config = receipt_config(settings)
    holder = holder_id("worker")   # one lease holder per process: its lanes fence every register write
    # cluster mode: one ingester at a time across the cluster, fenced by the ingest lease (docs/cluster.md)
    lease = IngestLease(ledger, holder, settings.lease.ttl_s) if settings.cluster.enabled else None
    ingest = build_ingest_stage(settings, ledger, lease.current if lease is not None else lambda: None)
    zone = ZoneInfo(config.timezone)

    def shop_now() -> dt.datetime:
        """The shop's local wall clock (shifts.daily_close_at is in the shop's zone)."""
        return dt.datetime.now(zone).replace(tzinfo=None)

    lanes = [Lane(r.name, open_register(r), ledger, settings.retry, settings.shifts, stop, local_now=shop_now,
                  group=r.group, inn=r.inn, pool=pool, holder=holder, lease_ttl_s=settings.lease.ttl_s,
                  max_scan_documents=settings.adoption.max_scan_documents)
             for r in settings.enabled_registers()]
    member = None
    if settings.cluster.enabled:
        member = Member(node=this_node(), holder=holder, host=socket.gethostname(), pid=os.getpid(),
                        version=__version__, registers=tuple(r.name for r in settings.enabled_registers()))
    return WorkerGraph(ingest, lanes, ingest_lease=lease, member=member)


def build_ops(settings: Settings, ledger: Ledger, loops_alive: Callable[[], bool],
              stop: threading.Event) -> OpsRunner:
    """Operations beside the lanes: /metrics, /healthz, /readyz and the accountant's pages on one
    server, alerts, shop callbacks, the systemd watchdog. Not started."""
    from worker.web.pages import install_web_routes

    def mount(server: OpsServer, thresholds: Thresholds) -> None:
        install_web_routes(server, ledger, settings.source.timezone, thresholds)

    return OpsRunner(settings, ledger, loops_alive, stop, mount=mount)
