"""Разрешительный режим: ask the state system (ГИС МТ «Честный ЗНАК») before a sale, put its answer in 1260.

Optional. Enabled by the register URL options ``permit_url`` (the True API base, or a local ЧЗ
module) and ``permit_key_env`` (the environment variable holding the X-API-KEY; never the key
itself). Sources (marking.md §2.4): ПП РФ № 1944 of 21.11.2023; the request is
``POST {permit_url}/api/v4/true-api/codes/check`` with ``{"codes": [...], "fiscalDriveNumber": …}``
and the header ``X-API-KEY`` (several independent integrations ☑); the answer's per-code fields
``found, valid, verified, realizable, utilised, isBlocked, sold, expireDate, errorCode`` and
``reqId``/``reqTimestamp`` are as a third-party integration reads them (UNVERIFIED against ЦРПТ's
own documentation). The permit goes into every marked line as 1260 = {1262 "030", 1263
"21.11.2023", 1264 "1944", 1265 "UUID=<reqId>&Time=<reqTimestamp>"}.

The 1.5 s rule (regional notice ☑, «ППРФ 1944 п.17» per one integration ⚠): the register waits at
most 1.5 s for the state system and does not block the sale after that. So a late or failed answer
sells without 1260 (logged), while an answer that refuses a code rejects the receipt naming the line.
Refunds are not checked (GUESS: the permit concerns sales). The 2026 amendments (ПП № 161 of
19.02.2026) were not read: see docs/marking.md.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from typing import Any

import httpx

from kkt_drivers.errors import DeviceStateError, DriverConfigError, RejectedError
from kkt_drivers.marking import MarkingCodeError, parse
from kkt_drivers.receipt import (
    PERMIT_DOC_DATE, PERMIT_DOC_NUMBER, PERMIT_FOIV, IndustryRequisite, Operation, Receipt,
)

log = logging.getLogger(__name__)

#: the register waits at most this long for the state system, then sells (marking.md §2.4)
PERMIT_WAIT_S = 1.5
CHECK_PATH = "/api/v4/true-api/codes/check"
OPTIONS = ("permit_url", "permit_key_env")
#: per-code flags that must all be true, and those that must all be false, for a code to be sold
_MUST = ("found", "valid", "verified", "realizable", "utilised")
_MUST_NOT = ("isBlocked", "sold")


@dataclasses.dataclass
class PermitChecker:
    """Checks a receipt's codes with the state system and returns the receipt with 1260 filled."""

    url: str
    api_key: str
    wait_s: float = PERMIT_WAIT_S

    @classmethod
    def from_options(cls, opts: dict[str, str]) -> "PermitChecker | None":
        """From a driver's URL options; None when ``permit_url`` is not given."""
        url = opts.get("permit_url")
        if not url:
            return None
        env = opts.get("permit_key_env")
        if not env:
            raise DriverConfigError("register URL option 'permit_url' needs 'permit_key_env' (the key's variable)")
        if env not in os.environ:
            raise DriverConfigError(f"environment variable {env!r} (permit_key_env) is not set")
        if not url.startswith(("http://", "https://")):
            raise DriverConfigError(f"permit_url must be http(s)://, got {url!r}")
        return cls(url.rstrip("/"), os.environ[env])

    def apply(self, receipt: Receipt, fn_serial: str) -> Receipt:
        """*receipt* with the permit in every marked line; RejectedError for a refused code."""
        marked = [(n, it) for n, it in enumerate(receipt.items) if it.marking_code is not None]
        if not marked or receipt.operation is not Operation.SALE:
            return receipt
        texts = [it.marking_code.decode("ascii") for _, it in marked]  # type: ignore[union-attr]
        try:
            resp = httpx.post(self.url + CHECK_PATH, json={"codes": texts, "fiscalDriveNumber": fn_serial},
                              headers={"X-API-KEY": self.api_key}, timeout=httpx.Timeout(self.wait_s))
        except httpx.HTTPError as exc:
            log.warning("state system did not answer the permit check within %.1f s (%s): selling without 1260",
                        self.wait_s, type(exc).__name__)
            return receipt
        if resp.status_code in (401, 403):
            raise DeviceStateError(f"the state system refused our API key (HTTP {resp.status_code}); "
                                   "check permit_key_env", condition="permit_auth", vendor_code=f"HTTP {resp.status_code}")
        try:
            body = resp.json()
            if resp.status_code != 200 or body.get("code", 0) != 0:
                raise ValueError(f"HTTP {resp.status_code}, code {body.get('code')}: {body.get('description')}")
            by_cis = {str(c["cis"]): c for c in body["codes"]}
            permit = f"UUID={body['reqId']}&Time={body['reqTimestamp']}"
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # GUESS: an unusable answer counts like no answer (the sale is not blocked by it)
            log.warning("state system's permit answer unusable (%s): selling without 1260", exc)
            return receipt
        items = list(receipt.items)
        for (n, it), text in zip(marked, texts):
            answer = by_cis.get(text)
            if answer is None:
                log.warning("state system gave no result for items[%d]: selling it without 1260", n)
                continue
            problem = _refusal(answer)
            if problem:
                try:
                    name = parse(text).short
                except MarkingCodeError:
                    name = "?"
                raise RejectedError(f"items[{n}].marking_code: code {name} refused by the state system: {problem}",
                                    field=f"items[{n}].marking_code", vendor_code=f"errorCode={answer.get('errorCode')}")
            items[n] = dataclasses.replace(it, industry=it.industry + (
                IndustryRequisite(PERMIT_FOIV, PERMIT_DOC_DATE, PERMIT_DOC_NUMBER, permit),))
        return dataclasses.replace(receipt, items=tuple(items))


def _refusal(c: dict[str, Any]) -> str:
    """Why the state system says a code may not be sold; empty when it may."""
    why = [f"{k} is false" for k in _MUST if c.get(k) is not True]
    why += [f"{k} is true" for k in _MUST_NOT if c.get(k) is True]
    if c.get("errorCode", 0) not in (0, None):
        why.append(f"errorCode {c.get('errorCode')}")
    expire = c.get("expireDate")
    if isinstance(expire, str):
        try:
            when = dt.datetime.fromisoformat(expire.replace("Z", "+00:00"))
            now = dt.datetime.now(when.tzinfo) if when.tzinfo else dt.datetime.now()
            if when < now:
                why.append(f"expired {expire}")
        except ValueError:
            pass
    return ", ".join(why)
