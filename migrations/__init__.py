"""Alembic migrations of the ledger (``kkt-worker migrate``)."""
