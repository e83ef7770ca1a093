"""Alembic environment: the connection comes from the worker (``worker.ledger.migrate``), never a file."""
from __future__ import annotations

from alembic import context

from worker.ledger.db import create_ledger_engine
from worker.ledger.schema import metadata

config = context.config


def run_migrations_online() -> None:
    """Run with the connection handed over by worker.ledger.migrate (or a URL for the alembic CLI)."""
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_ledger_engine(config.get_main_option("sqlalchemy.url"))
        with engine.connect() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
