"""The shop side: read-only polling of the shop's payments (MySQL/MariaDB, or the SQLite demo shop).

| module       | job                                                                  |
|--------------|----------------------------------------------------------------------|
| ``rows``     | ShopPayment / ShopItem: a shop row as the rest of the worker sees it |
| ``source``   | the ShopSource interface, SqlShopSource, the column mapping          |
| ``mysql``    | the MySQL/MariaDB backend (timeouts, errors by MySQL code)           |
| ``sqlite``   | the SQLite demo shop                                                 |

:func:`open_source` picks the backend by URL; backends import ``source``, never this package's
``__init__``, so there is no import cycle.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from worker.errors import SourceConfigError
from worker.shop.source import ShopSource, SourceMapping


def open_source(url: str | sa.URL, mapping: SourceMapping | None = None, **options: Any) -> ShopSource:
    """Open the shop source named by ``url`` (see the module docstring for the grammar).

    ``options`` go to the backend's constructor (e.g. ``read_timeout`` for MySQL); an option the
    backend does not know raises ``TypeError`` naming it.
    """
    mapping = mapping or SourceMapping()
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise SourceConfigError("source URL cannot be parsed (expected mysql+pymysql://… or sqlite:///…)") from exc
    if parsed.drivername == "mysql+pymysql":
        from worker.shop.mysql import MySQLSource  # lazy: the SQLite demo needs no MySQL driver

        return MySQLSource(parsed, mapping, **options)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        from worker.shop.sqlite import SQLiteSource

        if not parsed.database or parsed.database == ":memory:":
            raise SourceConfigError("sqlite source URL needs a file path: sqlite:///path/to/shop.db")
        return SQLiteSource(parsed.database, mapping, **options)
    raise SourceConfigError(
        f"unsupported source URL scheme {parsed.drivername!r} in "
        f"{parsed.render_as_string(hide_password=True)}; use mysql+pymysql:// or sqlite:///"
    )
