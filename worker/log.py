"""Logging with context (payment id, register, attempt); customers' contacts never in full.

Contacts are masked **by field**: code that must mention one logs
``worker.receipts.rules.mask_contact`` of it, and no log call passes a raw e-mail or phone. As a last line of defence the handler masks anything
shaped like an e-mail address in messages *and tracebacks*; it does not guess at phone numbers in
free text (that garbled FN serials and INNs). Engines are built with ``hide_parameters`` so SQL
errors never carry a row's values.

Formats: ``text`` (``2026-11-30T14:05:01.123+03:00 INFO logger: message [payment_id=… register=…]``)
and ``json`` (one object per line, ISO 8601 times with their zone offset).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import time

CONTEXT_KEYS = ("payment_id", "receipt_tag", "register", "attempt", "source", "source_id")

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z0-9-]{2,})")


def redact(text: str) -> str:
    """Mask e-mail-shaped strings in *text* (the safety net for messages and tracebacks)."""
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def iso_time(created: float) -> str:
    """A record's time as ISO 8601 with milliseconds and the local zone's offset."""
    return dt.datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class RedactingFilter(logging.Filter):
    """Apply :func:`redact` to the message and to the formatted traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class TextFormatter(logging.Formatter):
    """``time level logger: message [payment_id=… register=…]``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return iso_time(record.created)

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        ctx = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_KEYS if hasattr(record, k))
        return f"{base} [{ctx}]" if ctx else base


class JsonFormatter(logging.Formatter):
    """One JSON object per line for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": iso_time(record.created), "level": record.levelname, "logger": record.name,
               "message": record.getMessage()}
        out.update({k: getattr(record, k) for k in CONTEXT_KEYS if hasattr(record, k)})
        if record.exc_text or record.exc_info:
            out["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # bound SQL parameters may contain contacts: keep SQLAlchemy's engine log quiet
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def describe_cause(exc: BaseException) -> str:
    """The root cause of a database/network error in one line, without SQLAlchemy's boilerplate."""
    cause: BaseException = getattr(exc, "orig", None) or exc
    seen = {id(cause)}
    while cause.__cause__ is not None and id(cause.__cause__) not in seen:  # the deepest explicit cause
        cause = cause.__cause__
        seen.add(id(cause))
    text = " ".join(str(cause).split()) or type(cause).__name__
    return redact(f"{type(cause).__name__}: {text}")[:500]


class OutageLog:
    """One WARNING with the cause when something becomes unavailable, one INFO when it is back.

    Repeats of the same cause are logged at DEBUG only, so an outage of an hour is two lines, and
    the "recovered after N s" line tells how long it lasted.
    """

    def __init__(self, what: str, logger: logging.Logger, clock=time.monotonic) -> None:
        self.what = what
        self.logger = logger
        self.clock = clock
        self.since: float | None = None
        self.cause: str | None = None

    def failed(self, exc: BaseException, **extra: object) -> None:
        cause = describe_cause(exc)
        if self.since is None:
            self.since = self.clock()
            self.logger.warning("%s unavailable: %s", self.what, cause, extra=extra)
        elif cause != self.cause:
            self.logger.warning("%s still unavailable, now: %s", self.what, cause, extra=extra)
        else:
            self.logger.debug("%s still unavailable: %s", self.what, cause, extra=extra)
        self.cause = cause

    def ok(self, **extra: object) -> None:
        if self.since is not None:
            self.logger.info("%s recovered after %.1f s", self.what, self.clock() - self.since, extra=extra)
        self.since = None
        self.cause = None
