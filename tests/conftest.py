"""Fixtures shared by the whole suite: scratch databases on the real MariaDB and PostgreSQL.

Every test that asks for ``mariadb_url`` / ``postgres_url`` gets its own freshly created database
(``kkt_t_<random hex>``) which is dropped afterwards, so tests never see each other's rows and can
run in any order.

Servers (override with environment variables):

* MariaDB   ``root@127.0.0.1:3306``  — ``KKT_TEST_MARIADB_HOST`` / ``KKT_TEST_MARIADB_PORT``
* PostgreSQL ``postgres@127.0.0.1:5432`` — ``KKT_TEST_PG_HOST`` / ``KKT_TEST_PG_PORT``

If a server is unreachable the test is *skipped* on a developer machine, but *fails* when
``CI=true``: in CI a missing server is a broken pipeline, not a reason to go green.

Tests using these fixtures are automatically marked ``mariadb`` / ``postgres`` (see setup.cfg), so
``pytest -m "not mariadb and not postgres"`` runs the pure tier only.
"""
from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

REPO_ROOT = Path(__file__).resolve().parent.parent
SHOP_SCHEMA_SQL = REPO_ROOT / "sql" / "schema.sql"

MARIADB_HOST = os.environ.get("KKT_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("KKT_TEST_MARIADB_PORT", "3306"))
PG_HOST = os.environ.get("KKT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("KKT_TEST_PG_PORT", "5432"))

CONNECT_TIMEOUT_S = 3  # a dead server must cost seconds, not the default minutes

_MARIADB_FIXTURES = {"mariadb_admin_url", "mariadb_url", "shop_schema"}
_POSTGRES_FIXTURES = {"postgres_admin_url", "postgres_url"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the servers they need, so ``-m`` can select or exclude the tiers."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _MARIADB_FIXTURES:
            item.add_marker(pytest.mark.mariadb)
        if names & _POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)


def _server_missing(what: str, host: str, port: int, how_to_start: str, exc: BaseException) -> None:
    """Skip locally, fail in CI — with a message that says which server and how to get it."""
    cause = getattr(exc, "orig", None) or exc  # the driver's error, without SQLAlchemy's boilerplate
    msg = (
        f"{what} is not reachable at {host}:{port} ({type(cause).__name__}: {cause}). "
        f"Start it ({how_to_start}) or point the tests elsewhere with "
        f"KKT_TEST_{'MARIADB' if what == 'MariaDB' else 'PG'}_HOST / _PORT."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def _require_server(url: URL, what: str, host: str, port: int, how_to_start: str) -> URL:
    """*url* if the server answers ``SELECT 1``; otherwise skip (locally) or fail (CI)."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001 — any failure means "no usable server"
        _server_missing(what, host, port, f"`./start.sh test` starts an installed one, or {how_to_start}", exc)
    finally:
        engine.dispose()
    return url


def _scratch_name() -> str:
    return f"kkt_t_{secrets.token_hex(6)}"


# --------------------------------------------------------------------------------------- MariaDB

@pytest.fixture(scope="session")
def mariadb_admin_url() -> URL:
    """Root URL of the MariaDB server (no database selected); skips/fails if unreachable."""
    url = URL.create("mysql+pymysql", username="root", host=MARIADB_HOST, port=MARIADB_PORT)
    return _require_server(url, "MariaDB", MARIADB_HOST, MARIADB_PORT, "systemctl start mariadb")


@pytest.fixture
def mariadb_url(mariadb_admin_url: URL) -> Iterator[URL]:
    """A fresh, empty MariaDB database for this test; dropped afterwards."""
    name = _scratch_name()
    admin = sa.create_engine(
        mariadb_admin_url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        poolclass=sa.NullPool, isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield mariadb_admin_url.set(database=name)
    finally:
        with admin.connect() as conn:
            # A connection left inside a transaction by the test (or by code under test) holds a
            # metadata lock and would make DROP DATABASE wait forever: kill those sessions first.
            own = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            ids = conn.exec_driver_sql(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> %s", (name, own)
            ).scalars().all()
            for pid in ids:
                try:
                    conn.exec_driver_sql(f"KILL {int(pid)}")
                except sa.exc.DBAPIError:
                    pass  # already gone
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


def split_sql_script(text: str) -> list[str]:
    """Split a plain SQL script into statements (``--`` comments dropped, ``;`` at end of line).

    Deliberately simple: our scripts keep ``;`` out of string literals and comments.
    """
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    statements = re.split(r";\s*(?:\n|$)", "\n".join(lines))
    return [s.strip() for s in statements if s.strip()]


@pytest.fixture
def run_sql() -> Callable[..., None]:
    """Return ``run(url, script_text, **placeholders)`` executing a SQL script statement by statement.

    ``{name}`` placeholders in the script are replaced by the keyword arguments first
    (used for ``sql/grants.sql``'s ``{ro_user}``, ``{ro_host}``, ``{ro_password}``, ``{shop_db}``).
    """
    def run(url: URL, script: str, **placeholders: str) -> None:
        for key, value in placeholders.items():
            script = script.replace("{" + key + "}", value)
        engine = sa.create_engine(url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                # The raw DB-API cursor without parameters, so a literal "%" (e.g. host '%') is not
                # taken for a parameter marker.
                cursor = conn.connection.dbapi_connection.cursor()
                for stmt in split_sql_script(script):
                    cursor.execute(stmt)
                cursor.close()
        finally:
            engine.dispose()

    return run


@pytest.fixture
def shop_schema(mariadb_url: URL, run_sql: Callable[..., None]) -> URL:
    """The scratch MariaDB database with the reference shop tables (``sql/schema.sql``)."""
    run_sql(mariadb_url, SHOP_SCHEMA_SQL.read_text(encoding="utf-8"))
    return mariadb_url


# ------------------------------------------------------------------------------------ PostgreSQL

@pytest.fixture(scope="session")
def postgres_admin_url() -> URL:
    """URL of the ``postgres`` maintenance database as user postgres; skips/fails if unreachable."""
    url = URL.create("postgresql+psycopg", username="postgres", host=PG_HOST, port=PG_PORT, database="postgres")
    return _require_server(url, "PostgreSQL", PG_HOST, PG_PORT, "systemctl start postgresql")


@pytest.fixture
def postgres_url(postgres_admin_url: URL) -> Iterator[URL]:
    """A fresh, empty PostgreSQL database for this test; dropped afterwards."""
    name = _scratch_name()
    admin = sa.create_engine(
        postgres_admin_url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        poolclass=sa.NullPool, isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_admin_url.set(database=name)
    finally:
        with admin.connect() as conn:
            # Pooled connections left open by the test would block DROP DATABASE.
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %(n)s AND pid <> pg_backend_pid()", {"n": name},
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
