"""Free space on the ledger's disk: ingest pauses below ``ledger.min_free_mb`` so that recording
outcomes and recovery always find room first.

SQLite: the filesystem holding the ledger file. PostgreSQL: the server's disk is not visible from
here (None, "unknown"); its own ENOSPC errors are handled like any ledger outage.

``KKT_TEST_FREE_MB_FILE`` (tests only, like ``KKT_CRASHPOINT``) names a file whose number replaces
the reading, so a test can make the disk "full" and "free" again while the worker runs.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

ENV = "KKT_TEST_FREE_MB_FILE"
_MB = 1024 * 1024


def free_mb(ledger_url: str) -> float | None:
    """Free megabytes where the ledger lives; None when it cannot be known (a database server)."""
    fake = os.environ.get(ENV)
    if fake:
        try:
            return float(Path(fake).read_text().strip())
        except (OSError, ValueError):
            pass
    u = make_url(ledger_url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    try:
        return shutil.disk_usage(Path(u.database).resolve().parent).free / _MB
    except OSError:
        return None
