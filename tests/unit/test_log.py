"""Logs: contacts masked in messages and tracebacks, FN serials and INNs untouched, ISO times, outages."""
from __future__ import annotations

import io
import json
import logging

import pytest

from worker import log as wlog


@pytest.fixture
def captured() -> io.StringIO:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(wlog.RedactingFilter())
    handler.setFormatter(wlog.JsonFormatter())
    logger = logging.getLogger("kkt.test.log")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield buf
    logger.handlers[:] = []


def lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(ln) for ln in buf.getvalue().splitlines()]


def test_fn_serials_and_inns_are_not_garbled_but_emails_are_masked(captured: io.StringIO) -> None:
    logging.getLogger("kkt.test.log").info("FN 9999078900001234, INN 7701234567, to ivan.petrov@mail.ru")
    (rec,) = lines(captured)
    assert rec["message"] == "FN 9999078900001234, INN 7701234567, to i***@mail.ru"
    assert rec["time"][10] == "T" and rec["time"][-6] in "+-"   # ISO 8601 with the zone offset


def test_a_traceback_carrying_an_email_is_masked(captured: io.StringIO) -> None:
    try:
        raise ValueError("duplicate key for anna@example.com")
    except ValueError:
        logging.getLogger("kkt.test.log").exception("insert failed")
    (rec,) = lines(captured)
    assert "anna@example.com" not in rec["exc"] and "a***@example.com" in rec["exc"]


def test_an_outage_is_two_lines_with_the_cause_and_the_duration(captured: io.StringIO) -> None:
    t = {"now": 100.0}
    outage = wlog.OutageLog("shop database", logging.getLogger("kkt.test.log"), clock=lambda: t["now"])
    err = ConnectionRefusedError(111, "Connection refused")
    for _ in range(5):
        outage.failed(err)
    t["now"] = 142.5
    outage.ok()
    outage.ok()
    recs = [r for r in lines(captured) if r["level"] != "DEBUG"]
    assert [r["level"] for r in recs] == ["WARNING", "INFO"]
    assert recs[0]["message"] == "shop database unavailable: ConnectionRefusedError: [Errno 111] Connection refused"
    assert recs[1]["message"] == "shop database recovered after 42.5 s"


def test_describe_cause_digs_out_the_driver_error() -> None:
    class Wrapped(Exception):
        def __init__(self, orig: BaseException) -> None:
            super().__init__("(pymysql.err.OperationalError) ... [SQL: SELECT ...]")
            self.orig = orig
    cause = wlog.describe_cause(Wrapped(OSError(28, "No space left on device")))
    assert cause == "OSError: [Errno 28] No space left on device"
