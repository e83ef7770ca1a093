"""Exit statuses of every ``kkt-worker`` command, and the one-line message for each failure.

Sysexits-style (``man sysexits``), with click's 2 for a wrong command line:

| code | name        | meaning                                                                         |
|------|-------------|---------------------------------------------------------------------------------|
| 0    | OK          | done; ``status --check``/``check``: nothing needs a person                        |
| 1    | PROBLEMS    | ``check`` or ``status --check`` found something that needs a person               |
| 2    | USAGE       | the command line is wrong (unknown option, missing argument)                     |
| 3    | TIMEOUT     | ``run --burst --burst-timeout``: gave up with work left                            |
| 65   | DATAERR     | the data named does not allow it (no such payment, a correction refused)         |
| 69   | UNAVAILABLE | the shop database, the ledger or a register cannot be reached now: retry later   |
| 70   | SOFTWARE    | a bug: an unexpected error (the traceback is logged at DEBUG)                     |
| 75   | TEMPFAIL    | another worker holds the ledger or the register: retry when it is stopped        |
| 77   | NOPERM      | the shop database or the ledger refuses our user or its grants                   |
| 78   | CONFIG      | settings, an unmigrated ledger, an unknown register scheme, a missing extra      |
| 130  | INTERRUPTED | a second SIGTERM/SIGINT: stopped at once (recovery reconciles on the next start) |
"""
from __future__ import annotations

OK = 0
PROBLEMS = 1
USAGE = 2
TIMEOUT = 3
DATAERR = 65
UNAVAILABLE = 69
SOFTWARE = 70
TEMPFAIL = 75
NOPERM = 77
CONFIG = 78
INTERRUPTED = 130

#: MySQL / PostgreSQL codes that mean "not allowed" rather than "not reachable"
_DENIED_MARKS = ("1044", "1045", "1142", "1143", "access denied", "password authentication failed",
                 "permission denied")


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) for an exception that ended a command."""
    from kkt_drivers.errors import DriverConfigError, KktError
    from worker.errors import ConfigError, LockHeld, SourceConfigError, SourceUnavailable

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, LockHeld):
        return TEMPFAIL, text
    if isinstance(exc, SourceConfigError):
        low = text.lower()
        return (NOPERM if any(m in low for m in _DENIED_MARKS) else CONFIG), text
    if isinstance(exc, (ConfigError, DriverConfigError)):
        return CONFIG, text
    if isinstance(exc, SourceUnavailable):
        return UNAVAILABLE, text
    if isinstance(exc, KktError):
        return UNAVAILABLE, f"register: {text}"
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.startswith("psycopg"):
        return CONFIG, ("the PostgreSQL ledger needs the postgres extra: pip install 'kkt-worker[postgres]'")
    try:
        from sqlalchemy.exc import DBAPIError, NoSuchTableError, OperationalError, ProgrammingError
    except ImportError:  # pragma: no cover
        return SOFTWARE, text
    if isinstance(exc, (NoSuchTableError, ProgrammingError)) or "no such table" in text:
        return CONFIG, "the ledger has no tables yet (or an old schema): run `kkt-worker migrate`"
    if isinstance(exc, (OperationalError, DBAPIError)):
        from worker.log import describe_cause

        cause = describe_cause(exc)
        low = cause.lower()
        return (NOPERM if any(m in low for m in _DENIED_MARKS) else UNAVAILABLE), f"database: {cause}"
    return SOFTWARE, f"unexpected {type(exc).__name__}: {text} (run with --log-level DEBUG for the traceback)"
