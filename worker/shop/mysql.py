"""The shop source on MySQL / MariaDB through SQLAlchemy + PyMySQL (read-only account).

Why the engine is configured as it is:

* ``isolation_level="READ COMMITTED"`` and one short transaction per call: every poll sees what was
  committed before it; a REPEATABLE READ snapshot kept open would hide rows committed later
  (reliability §1.2, verified by tests/integration/test_source_mariadb.py).
* ``SET SESSION TRANSACTION READ ONLY`` on connect: defence in depth, the server refuses writes even
  if the account had more grants than it should.
* Timeouts everywhere: PyMySQL waits forever on a silent server by default.
* ``pool_pre_ping`` + ``pool_recycle`` below any plausible ``wait_timeout``: a connection the server
  or a NAT dropped while the worker was idle is replaced instead of failing the next poll.
* The MySQL handshake is bounded by ``connect_timeout`` too: PyMySQL would wait ``read_timeout``
  for a server that accepts TCP but never greets (overloaded, stuck, wrong service on the port).
* A pool of 1 (+1 overflow): the poller is single-threaded and the account is capped at
  ``MAX_USER_CONNECTIONS 3`` (sql/grants.sql).
"""
from __future__ import annotations

import ssl
from typing import Any

import pymysql.connections
import pymysql.err as perr
import sqlalchemy as sa

from worker.shop.rows import ShopPayment
from worker.shop.source import (
    SourceConfigError,
    SourceError,
    SourceMapping,
    SourceUnavailable,
    SqlShopSource,
    _Statements,
)

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30
WRITE_TIMEOUT_S = 30
POOL_RECYCLE_S = 280  # below 300 s, the lowest wait_timeout / proxy idle limit we have met in hosting
POOL_TIMEOUT_S = 10  # waiting for a free pooled connection; only contended if the caller shares us

# MySQL / MariaDB error numbers. Classified by number, not by exception class: PyMySQL raises
# OperationalError both for "server gone" (retry) and "access denied" (operator must act).
UNAVAILABLE_CODES = frozenset({
    1040,  # too many connections
    1053,  # server shutdown in progress
    1203,  # user already has more than max_user_connections
    1205,  # lock wait timeout
    1213,  # deadlock
    1226,  # user resource limit exceeded (e.g. max_queries_per_hour)
    1317,  # query interrupted
    1927,  # MariaDB: connection was killed
    1969,  # MariaDB: max_statement_time exceeded
    2002,  # can't connect through socket
    2003,  # can't connect to server (refused / timeout)
    2005,  # unknown host (DNS may come back)
    2006,  # server has gone away
    2013,  # lost connection during query (also PyMySQL read timeout)
    2014,  # commands out of sync
    2055,  # lost connection at '%s', system error
    3024,  # MySQL: max_execution_time exceeded
    4031,  # MySQL 8: disconnected by the server because of inactivity
})
CONFIG_CODES = frozenset({
    2026,  # TLS required (source.tls.required) but the server does not offer it, or the handshake failed
    1044,  # access denied to database
    1045,  # access denied (user / password)
    1049,  # unknown database
    1054,  # unknown column (mapping wrong)
    1064,  # SQL syntax (mapping produced invalid SQL; should not happen with validated names)
    1142,  # command denied (e.g. SELECT on a table without grant)
    1143,  # column denied (column-level grant missing)
    1146,  # table doesn't exist
    1227,  # needs a privilege we do not have
    1251,  # client does not support the server's authentication protocol
    1698,  # access denied (unix_socket / auth plugin)
    2059,  # authentication plugin cannot be loaded
})


def mysql_error_code(exc: BaseException) -> int | None:
    """The MySQL error number of ``exc`` (an SQLAlchemy DBAPIError or a PyMySQL error), if any."""
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def classify_mysql_error(exc: BaseException, where: str) -> SourceError:
    """Map a MySQL error to SourceUnavailable / SourceConfigError with a password-free message."""
    code = mysql_error_code(exc)
    orig = getattr(exc, "orig", None) or exc
    detail = f"{where}: MySQL error {code}: {_message(orig)}" if code else f"{where}: {type(orig).__name__}: {_message(orig)}"
    if code in UNAVAILABLE_CODES:
        return SourceUnavailable(detail)
    if code in CONFIG_CODES:
        return SourceConfigError(detail)
    # Unknown numbers: fall back on the class. A read-only SELECT failing "operationally" is almost
    # always the server or the network; a programming error is ours or the mapping's.
    if isinstance(exc, (sa.exc.DisconnectionError, sa.exc.TimeoutError)) or getattr(exc, "connection_invalidated", False):
        return SourceUnavailable(detail)
    if isinstance(orig, (perr.OperationalError, perr.InterfaceError, perr.InternalError, OSError, TimeoutError)):
        return SourceUnavailable(detail)
    if isinstance(orig, (perr.ProgrammingError, perr.NotSupportedError)):
        return SourceConfigError(detail)
    return SourceError(detail)


def _message(orig: BaseException) -> str:
    # PyMySQL's args are (code, message); the message names user and host, never the password.
    args = getattr(orig, "args", ())
    if len(args) >= 2 and isinstance(args[1], str):
        return args[1]
    return str(orig)


class _BoundedHandshakeConnection(pymysql.connections.Connection):
    """PyMySQL connection whose handshake and login obey ``connect_timeout``, not ``read_timeout``."""

    def connect(self, sock: Any = None) -> None:
        read_timeout = self._read_timeout
        if self.connect_timeout and (read_timeout is None or self.connect_timeout < read_timeout):
            self._read_timeout = self.connect_timeout
        try:
            super().connect(sock)
        finally:
            # PyMySQL re-applies _read_timeout to the socket before the next packet it reads.
            self._read_timeout = read_timeout


def tls_context(*, ca: str | None = None, cert: str | None = None, key: str | None = None,
                verify_identity: bool = True) -> ssl.SSLContext:
    """A client TLS context for the shop's server: its CA (or the system's), an optional client cert."""
    try:
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SourceConfigError(f"source.tls: cannot load {exc.filename or 'the certificates'}: {exc}") from exc
    ctx.check_hostname = verify_identity
    return ctx


class MySQLSource(SqlShopSource):
    """Shop source over MySQL/MariaDB (``mysql+pymysql://user:pass@host:port/db``)."""

    quote_char = "`"

    def __init__(self, url: str | sa.URL, mapping: SourceMapping | None = None, *,
                 connect_timeout: float = CONNECT_TIMEOUT_S, read_timeout: float = READ_TIMEOUT_S,
                 write_timeout: float = WRITE_TIMEOUT_S, pool_recycle: int = POOL_RECYCLE_S,
                 tls: ssl.SSLContext | None = None, timezone: str | None = None) -> None:
        """Build the engine (no connection is made until the first call; use :meth:`ping`)."""
        parsed = sa.make_url(url)
        if parsed.drivername != "mysql+pymysql":
            raise SourceConfigError(f"MySQLSource needs a mysql+pymysql:// URL, got {parsed.drivername!r}")
        self._where = parsed.render_as_string(hide_password=True)
        engine = sa.create_engine(
            parsed,
            hide_parameters=True,  # bound values are customers' data: never in an error text
            isolation_level="READ COMMITTED",
            pool_pre_ping=True,
            pool_recycle=pool_recycle,
            pool_size=1,
            max_overflow=1,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args={
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "write_timeout": write_timeout,
                "charset": "utf8mb4",  # the server converts any column charset to UTF-8 for us
                "init_command": "SET SESSION TRANSACTION READ ONLY",
                # with a context the handshake fails unless the server speaks TLS (error 2026)
                **({"ssl": tls} if tls is not None else {}),
            },
        )

        @sa.event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: tuple, cparams: dict) -> Any:
            return _BoundedHandshakeConnection(*cargs, **cparams)

        super().__init__(engine, mapping or SourceMapping(), timezone)
        self._sql_raw: _Statements | None = None

    def _translate(self, exc: Exception) -> SourceError:
        return classify_mysql_error(exc, self._where)

    def _select_text(self, column_sql: str, raw_text: bool) -> str:
        return f"CAST({column_sql} AS BINARY)" if raw_text else column_sql

    def _read(self, which: str, params: dict[str, Any], sql: _Statements | None = None) -> list[ShopPayment]:
        try:
            return super()._read(which, params, sql)
        except UnicodeDecodeError:
            # Text the driver cannot decode (a column holding invalid UTF-8) must not stop the poller
            # forever on one row: read the text columns as raw bytes instead; assemble() turns valid
            # UTF-8 back into str and leaves the bad values as bytes for validation to reject.
            if self._sql_raw is None:
                self._sql_raw = self._statements(raw_text=True)
            return super()._read(which, params, self._sql_raw)
