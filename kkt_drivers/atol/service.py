"""The emulated ATOL Web Requests service's core: requests, one queue per device, blocks, persistence.

HTTP lives in :mod:`kkt_drivers.atol.server`; task execution on the register model in
:mod:`kkt_drivers.atol.emulation`. Behaviour as described in :mod:`kkt_drivers.atol.server`.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from kkt_drivers.atol import codes as c
from kkt_drivers.atol import tasks as t
from kkt_drivers.atol.emulation import AtolEmulation, LinkLost, TaskFailed
from kkt_drivers.emulator.faults import FAULT_NAMES, Faults
from kkt_drivers.emulator.model import RegisterModel

log = logging.getLogger(__name__)

DEFAULT_DEVICE = "default"
#: how long finished requests are kept (WR-agent's deleteRequestsAfter default: 43200 min)
DEFAULT_RETENTION_S = 30 * 24 * 3600
#: WR-agent re-reads the FD counter every 3 s while blocked
DEFAULT_BLOCK_S = 3.0
SERVER_FAULTS = ("lose_http_reply_after_ready",)
STORE_FILE = "atol-requests.json"


def parse_faults(options: dict[str, str], seed: int | None = None) -> Faults:
    """Model, link and server faults in one :class:`Faults`; ValueError names an unknown one."""
    faults = Faults.parse({k: v for k, v in options.items() if k in FAULT_NAMES}, seed=seed)
    for name, raw in options.items():
        if name in FAULT_NAMES:
            continue
        if name not in SERVER_FAULTS:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES + SERVER_FAULTS)})")
        faults.rules[name] = Faults.parse({"fn_error": raw}).rules["fn_error"]
    return faults


class _Device:
    """One register's queue, worked by one thread (a driver handle is never used in parallel)."""

    def __init__(self, service: "AtolWebRequests", device_id: str, emulation: AtolEmulation) -> None:
        self.service = service
        self.id = device_id
        self.emulation = emulation
        self.queue: collections.deque[str] = collections.deque()
        #: {"uuid", "index", "fd_before", "until"} while the queue is stopped
        self.block: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._run, name=f"atol-queue-{device_id}", daemon=True)

    def _run(self) -> None:
        svc = self.service
        while True:
            with svc.cond:
                while not svc.stopped and not self.queue and self.block is None:
                    svc.cond.wait(0.5)
                if svc.stopped:
                    return
                if self.block is not None:
                    wait = self.block["until"] - time.time()
                    if wait > 0:
                        svc.cond.wait(min(wait, 0.5))
                        continue
                uuid = self.queue[0]
            try:
                if self.block is not None:
                    self._resolve_block()
                else:
                    self._work(uuid)
            except Exception:  # an emulator bug must not kill the queue silently
                log.exception("atol emulator: request %s crashed", uuid)
                with svc.cond:
                    self._finish(svc.requests[uuid], 0, c.ERROR, 15, "internal emulator error")

    def _work(self, uuid: str) -> None:
        svc = self.service
        rec = svc.requests[uuid]
        for i, res in enumerate(rec["results"]):
            if res["status"] != c.WAIT:
                continue
            with svc.cond:
                res["status"] = c.IN_PROGRESS
                # what the real service reads before every fiscal subtask (LIBFPTR_FNDT_LAST_DOCUMENT)
                rec["fd_before"] = self.emulation.model.status().last_fd_number
                svc.save()
            if svc.task_delay_s:
                time.sleep(svc.task_delay_s)
            try:
                result = self.emulation.execute(rec["tasks"][i])
            except TaskFailed as exc:
                with svc.cond:
                    self._finish(rec, i, c.ERROR, exc.code, exc.description)
                return
            except LinkLost as exc:
                with svc.cond:
                    res.update(status=c.BLOCKED, error={"code": c.CONNECTION_LOST, "description": "Соединение разорвано"})
                    self.block = {"uuid": uuid, "index": i, "fd_before": exc.fd_before,
                                  "until": time.time() + svc.block_s}
                    svc.save()
                return
            with svc.cond:
                res.update(status=c.READY, result=result)
                svc.save()
        with svc.cond:
            self._done(rec)

    def _resolve_block(self) -> None:
        """Re-read the FD counter: the blocked subtask is ready (document made) or error."""
        svc = self.service
        blk = self.block
        assert blk is not None
        rec = svc.requests[blk["uuid"]]
        model = self.emulation.model
        if model.status().last_fd_number > blk["fd_before"]:
            result = self.emulation.execute({"type": "getLastFiscalParams", "forReceipt": True})
            with svc.cond:
                rec["results"][blk["index"]].update(status=c.READY, result=result,
                                                    error={"code": 0, "description": ""})
                self.block = None
                svc.save()
            return  # the queue goes on with this request's next subtask
        model.cancel_receipt()  # GUESS: the reopened connection leaves no receipt open
        with svc.cond:
            self.block = None
            self._finish(rec, blk["index"], c.ERROR, c.NO_CONNECTION, "Нет связи")

    def _finish(self, rec: dict[str, Any], index: int, status: str, code: int, description: str) -> None:
        rec["results"][index].update(status=status, error={"code": code, "description": description})
        for later in rec["results"][index + 1:]:
            later.update(status=c.INTERRUPTED, error={"code": c.INTERRUPTED_CODE, "description": "Задание прервано"})
        self._done(rec)

    def _done(self, rec: dict[str, Any]) -> None:
        if self.queue and self.queue[0] == rec["uuid"]:
            self.queue.popleft()
        rec["done"] = _now_ms()
        self.service.save()
        self.service.cond.notify_all()


class AtolWebRequests:
    """The emulated service: requests, queues, persistence. HTTP lives in :class:`_Handler`."""

    def __init__(self, state_dir: str, *, serial: str = "0000000000000001", faults: Faults | None = None,
                 fsync: bool = True, device_id: str = DEFAULT_DEVICE, users: dict[str, str] | None = None,
                 block_s: float = DEFAULT_BLOCK_S, task_delay_s: float = 0.0,
                 retention_s: float = DEFAULT_RETENTION_S) -> None:
        self.faults = faults or Faults()
        self.model = RegisterModel(state_dir, serial=serial, faults=self.faults, fsync=fsync)
        self.fsync = fsync
        self.users = users or {}
        self.block_s = block_s
        self.task_delay_s = task_delay_s
        self.retention_s = retention_s
        self.cond = threading.Condition()
        self.stopped = False
        self.requests: dict[str, dict[str, Any]] = {}
        self._store = Path(state_dir) / STORE_FILE
        self._counter = 0
        self.devices = {device_id: _Device(self, device_id, AtolEmulation(self.model, self.faults))}
        self._load()
        for dev in self.devices.values():
            dev.thread.start()

    # -- persistence -----------------------------------------------------------------------
    def _load(self) -> None:
        try:
            data = t.loads(self._store.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        self.requests = {r["uuid"]: r for r in data["requests"]}
        self._counter = data.get("counter", len(self.requests))
        for dev in self.devices.values():
            pending = sorted((r for r in self.requests.values() if r["device"] == dev.id and r.get("done") is None),
                             key=lambda r: r["number"])
            dev.queue.extend(r["uuid"] for r in pending)
            blk = data.get("blocks", {}).get(dev.id)
            for r in pending:  # a subtask cut by a restart is as uncertain as a lost link
                for i, res in enumerate(r["results"]):
                    if res["status"] in (c.IN_PROGRESS, c.BLOCKED) and blk is None:
                        res["status"] = c.BLOCKED
                        blk = {"uuid": r["uuid"], "index": i, "fd_before": r.get("fd_before", 0)}
            if blk is not None:
                dev.block = dict(blk, until=time.time())

    def save(self) -> None:
        """Persist every request and block (caller holds :attr:`cond`)."""
        blocks = {d.id: {k: v for k, v in d.block.items() if k != "until"} for d in self.devices.values() if d.block}
        text = t.dumps({"counter": self._counter, "requests": list(self.requests.values()), "blocks": blocks})
        tmp = self._store.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self._store)

    def _purge(self) -> None:
        cutoff = _now_ms() - int(self.retention_s * 1000)
        for uuid in [u for u, r in self.requests.items() if r.get("done") and r["done"] < cutoff]:
            del self.requests[uuid]

    # -- API -------------------------------------------------------------------------------
    def submit(self, device_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /requests``: (HTTP status, answer)."""
        dev = self.devices.get(device_id)
        if dev is None:
            return 404, error_body(404, f"device {device_id!r} not found")
        if not isinstance(body, dict) or not isinstance(body.get("uuid"), str) or not body["uuid"]:
            return 400, error_body(400, "uuid is required")
        request = body.get("request")
        if isinstance(request, dict):
            request = [request]
        if not isinstance(request, list) or not request or not all(isinstance(x, dict) for x in request):
            return 400, error_body(400, "request must be a non-empty list of tasks")
        with self.cond:
            self._purge()
            if body["uuid"] in self.requests:
                return 409, error_body(409, f"request {body['uuid']} already exists")
            self._counter += 1
            self.requests[body["uuid"]] = {
                "uuid": body["uuid"], "device": device_id, "number": self._counter, "tasks": request,
                "results": [{"status": c.WAIT, "error": {"code": 0, "description": ""}, "result": None}
                            for _ in request],
                "created": _now_ms(), "done": None,
            }
            dev.queue.append(body["uuid"])
            self.save()
            self.cond.notify_all()
            blocked = dev.block["uuid"] if dev.block else None
            return 201, {"uuid": body["uuid"], "number": self._counter, "isBlocked": blocked is not None,
                         "blockedUUID": blocked or ""}

    def result(self, device_id: str, uuid: str) -> tuple[int, dict[str, Any]]:
        """``GET /requests/{uuid}``."""
        with self.cond:
            self._purge()
            rec = self.requests.get(uuid)
            if device_id not in self.devices or rec is None or rec["device"] != device_id:
                return 404, error_body(404, f"request {uuid} not found")
            return 200, {"results": [dict(r) for r in rec["results"]]}

    def cancel(self, device_id: str, uuid: str) -> tuple[int, dict[str, Any]]:
        """``DELETE /requests/{uuid}``: only a request whose subtasks all still wait."""
        with self.cond:
            rec = self.requests.get(uuid)
            dev = self.devices.get(device_id)
            if dev is None or rec is None or rec["device"] != device_id:
                return 404, error_body(404, f"request {uuid} not found")
            if any(r["status"] != c.WAIT for r in rec["results"]):
                return 409, error_body(409, "only a waiting request can be cancelled")
            for r in rec["results"]:
                r["status"] = c.CANCELED
            dev.queue.remove(uuid)
            rec["done"] = _now_ms()
            self.save()
            return 200, {}

    def queue_status(self, device_id: str) -> tuple[int, dict[str, Any]]:
        """``GET /getRequestsQueueStatus`` (UNVERIFIED field names)."""
        dev = self.devices.get(device_id)
        if dev is None:
            return 404, error_body(404, f"device {device_id!r} not found")
        with self.cond:
            return 200, {"queueSize": len(dev.queue), "isBlocked": dev.block is not None,
                         "blockedUUID": dev.block["uuid"] if dev.block else ""}

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        for dev in self.devices.values():
            dev.thread.join(timeout=5)


def _now_ms() -> int:
    """Wall-clock milliseconds (integers keep the store free of floats)."""
    return int(time.time() * 1000)


def error_body(code: int, description: str) -> dict[str, Any]:
    """The body of an HTTP error answer (GUESS: shape not seen in a source)."""
    return {"error": {"code": code, "description": description}}

