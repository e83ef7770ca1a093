"""settings.yaml → typed, frozen settings. Unknown or invalid keys fail at start, named by path.

Secrets never have to be in the file: ``source.password_env`` / ``ledger.password_env`` name
environment variables whose value is put into the URL (``KKT_SOURCE_PASSWORD`` by default), and
``KKT_SOURCE_URL`` / ``KKT_LEDGER_URL`` replace the URLs entirely.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

from worker import defaults as d
from worker.errors import ConfigError


@dataclass(frozen=True)
class TlsSettings:
    """TLS to the shop's MySQL/MariaDB (``source.tls``). Without ``required`` the link may be plain text."""

    required: bool = False
    ca: str | None = None                 # CA file that signed the server's certificate (else system CAs)
    cert: str | None = None               # client certificate, if the server asks for one
    key: str | None = None
    verify_identity: bool = True          # the certificate must name the host in source.url


@dataclass(frozen=True)
class SourceSettings:
    """Where the shop's paid orders are read from."""

    url: str = d.SOURCE_URL
    password_env: str = d.SOURCE_PASSWORD_ENV
    batch_size: int = d.POLL_BATCH_SIZE
    poll_interval_s: float = d.POLL_INTERVAL_SECONDS
    gap_timeout_s: float = d.GAP_TIMEOUT_SECONDS
    max_gap_span: int = d.GAP_MAX_SPAN
    sweep_interval_s: float = d.SWEEP_INTERVAL_SECONDS
    sweep_window: int = d.SWEEP_WINDOW_IDS
    start_after_id: int = 0
    connect_timeout_s: int = d.SOURCE_CONNECT_TIMEOUT_SECONDS
    read_timeout_s: int = d.SOURCE_READ_TIMEOUT_SECONDS
    write_timeout_s: int = d.SOURCE_WRITE_TIMEOUT_SECONDS
    mapping: dict[str, str] = field(default_factory=dict)
    tls: TlsSettings = field(default_factory=TlsSettings)
    #: IANA zone of the shop's naive DATETIME values ("UTC" for a shop that stores UTC)
    timezone: str = "Europe/Moscow"
    #: ``run`` ingests in a child process (its CPU beside the lanes', not against them: docs/pool.md)
    ingest_process: bool = True


@dataclass(frozen=True)
class LedgerSettings:
    """Where receipts and their state are kept."""

    url: str = d.LEDGER_URL
    password_env: str = d.LEDGER_PASSWORD_ENV
    #: below this much free space on the ledger's disk ingest pauses (outcomes and recovery go on)
    min_free_mb: int = d.LEDGER_MIN_FREE_MB


@dataclass(frozen=True)
class RegisterSettings:
    """One cash register = one lane."""

    name: str
    url: str
    enabled: bool = True
    #: the register group it serves (a legal entity / tax system); payments are routed to groups
    group: str = d.DEFAULT_REGISTER_GROUP
    #: the INN the register must be registered to (checked at start where the driver reports it)
    inn: str | None = None


@dataclass(frozen=True)
class RoutingSettings:
    """Which register group prints a payment: the shop's ``column`` value → group (docs/pool.md)."""

    column: str | None = None          # a column of the shop's payments table; None: one group for all
    groups: dict[str, str] = field(default_factory=dict)   # column value → register group
    default: str | None = d.DEFAULT_REGISTER_GROUP         # group for values not listed; None: reject them


@dataclass(frozen=True)
class RetrySettings:
    """The retry policy, the only copy of it: the persistent schedule and lane pauses.

    :func:`worker.fiscal.retry.decide` reads it; the keys are ``retry.*`` in settings.yaml.
    """

    max_attempts: int = d.MAX_ATTEMPTS
    base_delay_s: float = d.RETRY_BASE_SECONDS
    max_delay_s: float = d.RETRY_CAP_SECONDS
    device_pause_s: float = d.DEVICE_PAUSE_SECONDS
    source_backoff_max_s: float = d.SOURCE_BACKOFF_CAP_SECONDS


@dataclass(frozen=True)
class ShiftSettings:
    """Shift handling before receipts."""

    auto_open: bool = d.SHIFT_AUTO_OPEN
    close_expired: bool = d.SHIFT_CLOSE_EXPIRED
    daily_close_at: str | None = None   # "HH:MM" local time, or None
    cashier: str | None = None


@dataclass(frozen=True)
class LeaseSettings:
    """Register leases (fencing): how long one lives without renewal, by the ledger server's clock."""

    ttl_s: float = d.LEASE_TTL_SECONDS


@dataclass(frozen=True)
class ClusterSettings:
    """Several ``run`` processes (one per host) on one PostgreSQL ledger (docs/cluster.md)."""

    enabled: bool = False
    #: this worker's name in the cluster (the host part of its lease holder id); None: the host name
    node: str | None = None


@dataclass(frozen=True)
class AdoptionSettings:
    """Examining a register's documents the ledger has not accounted for."""

    #: a longer unexamined history waits for `kkt-worker adopt` (a real register reads ~1 document/s)
    max_scan_documents: int = d.ADOPTION_MAX_SCAN_DOCUMENTS


@dataclass(frozen=True)
class LogSettings:
    """Logging."""

    level: str = d.LOG_LEVEL
    format: str = d.LOG_FORMAT   # text | json


@dataclass(frozen=True)
class HttpSettings:
    """The worker's HTTP endpoints (/metrics, /healthz, /readyz)."""

    enabled: bool = True
    bind: str = d.HTTP_BIND               # loopback by default; anything else needs token_env
    token_env: str = d.HTTP_TOKEN_ENV     # the bearer token's environment variable (or ..._FILE)


@dataclass(frozen=True)
class HealthSettings:
    """When a condition needs a person (``status --check``, /readyz, alerts)."""

    heartbeat_stale_s: float = d.HEARTBEAT_STALE_SECONDS
    lane_paused_s: float = d.LANE_PAUSED_ALERT_SECONDS
    fn_expiry_days: int = d.FN_EXPIRY_WARN_DAYS
    ofd_backlog_days: float = d.OFD_BACKLOG_ALERT_DAYS
    clock_skew_s: float = d.CLOCK_SKEW_ALERT_SECONDS
    min_free_mb: int = d.MIN_FREE_DISK_MB
    gap_window_days: float = d.GAP_ALERT_WINDOW_DAYS


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go: a webhook and/or e-mail. Nothing configured: conditions are only shown."""

    webhook_url: str | None = None
    webhook_secret_env: str = d.ALERT_WEBHOOK_SECRET_ENV
    smtp_host: str | None = None
    smtp_port: int = d.SMTP_PORT
    smtp_from: str | None = None
    smtp_to: tuple[str, ...] = ()
    smtp_user: str | None = None
    smtp_password_env: str = d.ALERT_SMTP_PASSWORD_ENV
    interval_s: float = d.ALERT_INTERVAL_SECONDS


@dataclass(frozen=True)
class CallbackSettings:
    """Optional: POST each receipt's outcome to the shop (signed with HMAC-SHA256)."""

    url: str | None = None
    secret_env: str = d.CALLBACK_SECRET_ENV   # the shared secret's environment variable (or ..._FILE)
    interval_s: float = d.CALLBACK_INTERVAL_SECONDS


@dataclass(frozen=True)
class Settings:
    """The whole configuration."""

    source: SourceSettings = field(default_factory=SourceSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    registers: tuple[RegisterSettings, ...] = (RegisterSettings(d.REGISTER_NAME, d.REGISTER_URL),)
    receipts: dict[str, Any] = field(default_factory=dict)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    shifts: ShiftSettings = field(default_factory=ShiftSettings)
    log: LogSettings = field(default_factory=LogSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    adoption: AdoptionSettings = field(default_factory=AdoptionSettings)

    @property
    def source_url(self) -> str:
        """The source URL with the password from the environment, if any."""
        return _with_password(os.environ.get("KKT_SOURCE_URL", self.source.url), self.source.password_env)

    @property
    def ledger_url(self) -> str:
        """The ledger URL with the password from the environment, if any."""
        return _with_password(os.environ.get("KKT_LEDGER_URL", self.ledger.url), self.ledger.password_env)

    def enabled_registers(self) -> tuple[RegisterSettings, ...]:
        """Registers that get a lane."""
        return tuple(r for r in self.registers if r.enabled)


def secret_from_env(env: str | None) -> str | None:
    """The secret in ``$ENV``, or in the file named by ``$ENV_FILE`` (a systemd credential)."""
    if not env:
        return None
    secret = os.environ.get(env)
    if not secret and os.environ.get(f"{env}_FILE"):
        try:
            secret = Path(os.environ[f"{env}_FILE"]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{env}_FILE: cannot read {os.environ[f'{env}_FILE']}: {exc}") from exc
    return secret or None


def _with_password(url: str, env: str) -> str:
    """Put the secret from ``$ENV`` — or from the file named by ``$ENV_FILE`` (a systemd credential,
    not inherited by child processes) — into *url*."""
    secret = secret_from_env(env)
    if not secret or url.startswith("sqlite"):
        return url
    return make_url(url).set(password=secret).render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    """A URL safe to print (password hidden)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def load_settings(path: str | os.PathLike[str] | None) -> Settings:
    """Read and validate settings; a missing *path* gives the embedded defaults."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"settings file {p} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"settings file {p} is not valid YAML: {exc}") from exc
    settings = build(Settings, raw, "")
    _validate(settings)
    return settings


def build(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass *cls* from *raw*, refusing unknown keys and wrong types by their path."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'settings'}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(path, unknown[0])}: unknown setting (known here: {', '.join(fields)})")
    values = {}
    for name, value in raw.items():
        values[name] = _convert(hints[name], value, _join(path, name))
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{path or 'settings'}: {exc}") from exc


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list")
        inner = typing.get_args(tp)[0]
        return tuple(_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected a whole number, got {value!r}")
        return value
    if tp is float:   # durations in seconds, never money
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number of seconds, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError as exc:
            raise ConfigError(f"{path}: {value!r} is not one of {[e.value for e in tp]}") from exc
    return value


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _validate(s: Settings) -> None:
    if s.health.heartbeat_stale_s < 2 * d.LANE_HEARTBEAT_SECONDS:
        # lanes write their heartbeat every LANE_HEARTBEAT_SECONDS: a shorter limit would call a live worker dead
        raise ConfigError(f"health.heartbeat_stale_s: at least {2 * d.LANE_HEARTBEAT_SECONDS:g} s "
                          f"(lanes write a heartbeat every {d.LANE_HEARTBEAT_SECONDS:g} s), got {s.health.heartbeat_stale_s:g}")
    positive = {"source.batch_size": s.source.batch_size, "source.poll_interval_s": s.source.poll_interval_s,
                "source.gap_timeout_s": s.source.gap_timeout_s, "retry.max_attempts": s.retry.max_attempts,
                "retry.base_delay_s": s.retry.base_delay_s, "retry.max_delay_s": s.retry.max_delay_s,
                "lease.ttl_s": s.lease.ttl_s, "adoption.max_scan_documents": s.adoption.max_scan_documents}
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key}: must be positive, got {value}")
    if not s.registers:
        raise ConfigError("registers: at least one register is needed")
    names = [r.name for r in s.registers]
    for i, r in enumerate(s.registers):
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", r.name):
            raise ConfigError(f"registers[{i}].name: use 1..64 letters, digits, '_', '.', '-'")
        if names.count(r.name) > 1:
            raise ConfigError(f"registers[{i}].name: {r.name!r} is used twice")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", r.group):
            raise ConfigError(f"registers[{i}].group: use 1..32 letters, digits, '_', '.', '-'")
        if r.inn is not None and not re.fullmatch(r"\d{10}|\d{12}", r.inn):
            raise ConfigError(f"registers[{i}].inn: an INN has 10 or 12 digits, got {r.inn!r}")
    for value, group in s.routing.groups.items():
        if not isinstance(group, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", group):
            raise ConfigError(f"routing.groups.{value}: {group!r} is not a register group name")
    if s.routing.groups and s.routing.column is None:
        raise ConfigError("routing.groups: set routing.column (the shop's column the values come from)")
    if s.shifts.daily_close_at is not None:
        try:
            dt.time.fromisoformat(s.shifts.daily_close_at)
        except ValueError as exc:
            raise ConfigError(f"shifts.daily_close_at: expected HH:MM, got {s.shifts.daily_close_at!r}") from exc
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(s.source.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"source.timezone: {s.source.timezone!r} is not an IANA time zone "
                          "(e.g. Europe/Moscow, UTC)") from exc
    _validate_cluster(s)
    if s.log.format not in ("text", "json"):
        raise ConfigError(f"log.format: expected text or json, got {s.log.format!r}")
    for key, url in (("source.url", s.source.url), ("ledger.url", s.ledger.url)):
        try:
            make_url(url)
        except Exception as exc:
            raise ConfigError(f"{key}: not a database URL: {mask_url(url)}") from exc


def _validate_cluster(s: Settings) -> None:
    """Cluster mode needs a PostgreSQL ledger (SQLite has one writer on one host: one process only)."""
    c = s.cluster
    if c.node is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,48}", c.node):
        raise ConfigError(f"cluster.node: use 1..48 letters, digits, '_', '.', '-', got {c.node!r}")
    if not c.enabled:
        return
    try:
        backend = make_url(os.environ.get("KKT_LEDGER_URL", s.ledger.url)).get_backend_name()
    except Exception:
        return   # the URL check below names the bad URL
    if backend != "postgresql":
        raise ConfigError(f"cluster.enabled: several workers need a PostgreSQL ledger; ledger.url is {backend} "
                          "(a SQLite ledger is served by exactly one `kkt-worker run`): set cluster.enabled: false")
