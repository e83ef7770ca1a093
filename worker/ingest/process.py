"""Ingest in a process of its own: the shop pollers on another core, the lanes' GIL left to the lanes.

Why: a poll of a 500-row backlog is ~0.25 ms of pure-Python CPU per row (PyMySQL parsing, planning,
INSERTs). In the lanes' process that CPU took the GIL from the lanes at each of their ~25 short
releases per receipt (a SQLite call, a register socket or file call), each costing them up to the 5 ms
switch interval: a lane did 14–17 receipts/s while a 20 000-row backlog was ingested, ~1 000/s after it
(issue 10, docs/pool.md). In a child process the two run side by side.

How: the poll loop calls :class:`ProcessIngest` exactly as it would call the pollers (:class:`IngestStage`):
each call is one request over a pipe — ``(operation, fence, args)`` — answered with the result or the error,
so the poll loop's backoff, burst and exit-code logic is unchanged and sees the same exceptions. The child
runs the same :class:`~worker.ingest.stage.LocalIngest` on its own ledger engine; SQLite writers of both
processes queue on the ledger's writer lock (worker.ledger.db.SqliteWriterLock). The ingest lease's fence
(cluster mode) travels with every request: the parent keeps the lease.

Lifecycle: started at the first poll (a fresh interpreter, nothing of the parent's threads or connections
inherited). It ignores SIGINT, SIGTERM and SIGHUP (the parent stops it, after its poll is
done), dumps its stack on SIGUSR1 like the worker, and is killed by the kernel when the parent dies
(``PR_SET_PDEATHSIG``: a kill -9 of the worker leaves no ingest behind; its open transaction, if any,
rolls back). If it dies, the call in progress raises
:class:`IngestProcessLost`, which the poll loop treats as an outage: it backs off and the next poll starts
a new one.
"""
from __future__ import annotations

import ctypes
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

from sqlalchemy.exc import DBAPIError

from worker import log as wlog
from worker.errors import IngestProcessLost, SourceUnavailable
from worker.ingest.stage import LocalIngest, Polled
from worker.ledger.leases import Fence
from worker.signals import on_dump

log = logging.getLogger(__name__)

#: how long a stopping worker waits for its ingest process to finish a poll and exit before killing it
STOP_WAIT_SECONDS = 15.0
#: the requests the child answers (methods of LocalIngest)
OPERATIONS = ("poll", "sweep")
_PR_SET_PDEATHSIG = 1

#: builds the child's pollers from a callable that returns the fence of the request being served
Build = Callable[[Callable[[], "Fence | None"]], LocalIngest]


class ProcessIngest:
    """:class:`~worker.ingest.stage.IngestStage` whose pollers run in a child process.

    Called from one thread (the poll loop's); the child is started from it, and must be: the kernel's
    parent-death signal follows the thread that started the child.
    """

    def __init__(self, build: Build, *, name: str, batch_size: int,
                 fence: Callable[[], Fence | None] = lambda: None, log_level: str = "INFO",
                 log_format: str = "text") -> None:
        self.name = name
        self.batch_size = batch_size
        self._build = build        # picklable: it is sent to the child, which calls it
        self._fence = fence
        self._log = (log_level, log_format)
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        #: how many times a child was started (more than once: one died and was replaced)
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The running child's process id, if one runs."""
        return self._proc.pid if self._proc is not None else None

    def poll(self) -> Polled:
        """See :class:`~worker.ingest.stage.IngestStage`."""
        return self._call("poll")

    def sweep(self, window: int) -> int:
        """See :class:`~worker.ingest.stage.IngestStage`."""
        return self._call("sweep", window)

    def close(self) -> None:
        """Ask the child to stop after what it is doing; kill it if it has not in ``STOP_WAIT_SECONDS``."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None or conn is None:
            return
        try:
            conn.send(("stop", None, ()))
        except OSError:   # already gone
            pass
        try:
            proc.wait(STOP_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("ingest process %s did not stop in %.0f s; killed", proc.pid, STOP_WAIT_SECONDS)
            proc.kill()
            proc.wait()
        conn.close()

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        # a plain interpreter, not multiprocessing's spawn: that one re-imports the caller's __main__ and
        # starts a resource-tracker process; the child finds our modules on our sys.path
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen([sys.executable, "-c", CHILD, PROCESS_TAG, str(theirs.fileno())],
                                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        theirs.close()   # ours alone now: the child's exit shows as EOF here
        conn = Connection(ours.detach())
        conn.send((os.getpid(), *self._log, pickle.dumps(self._build)))
        self._proc, self._conn = proc, conn
        self.starts += 1
        log.info("ingest process %s started", proc.pid)

    def _call(self, op: str, *args: Any) -> Any:
        if self._proc is None or self._conn is None:
            self._start()
        proc, conn = self._proc, self._conn
        try:
            conn.send((op, self._fence(), args))
            status, value = conn.recv()
        except (EOFError, OSError):
            raise IngestProcessLost(f"the ingest process {proc.pid} exited (code {self._reap()}) "
                                    f"during {op}; a new one is started at the next poll") from None
        if status == "error":
            raise value
        return value

    def _reap(self) -> int | None:
        """Collect a child whose pipe broke; the next call starts a new one. Its exit code."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        try:
            return proc.wait(1.0)
        except subprocess.TimeoutExpired:   # a broken pipe, a living child: it must not write behind another
            proc.kill()
            return proc.wait()


#: what the child runs (``python -c``); argv: the tag that names it in ``ps``, the socket's descriptor
CHILD = "import sys; from worker.ingest.process import serve; serve(int(sys.argv[2]))"
PROCESS_TAG = "kkt-worker-ingest"


def serve(fd: int) -> None:
    """The child: answer ``(operation, fence, args)`` requests on the socket *fd* until "stop" or the parent's
    end. The first message is (parent pid, log level, log format, the pickled build)."""
    conn = Connection(fd)
    parent_pid, log_level, log_format, build = conn.recv()
    _die_with_parent(parent_pid)
    # the parent decides when ingest stops (after the poll in progress): a terminal's Ctrl-C or hang-up, or
    # systemd's SIGTERM to the whole group, must not cut a poll short
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    wlog.setup(log_level, log_format)
    with on_dump():   # SIGUSR1: where a stuck poll waits, as in the worker
        _serve(conn, pickle.loads(build))


def _serve(conn: Connection, build: Build) -> None:
    """The request loop; the pollers are built at the first request and closed at the end."""
    fence: list[Fence | None] = [None]
    stage: LocalIngest | None = None
    try:
        while True:
            try:
                op, fence[0], args = conn.recv()
            except EOFError:   # the worker is gone
                return
            if op == "stop":
                return
            try:
                if op not in OPERATIONS:
                    raise ValueError(f"unknown ingest request {op!r}")
                if stage is None:   # built at the first request: a failure to open travels back as its error
                    stage = build(lambda: fence[0])
                reply: tuple[str, Any] = ("ok", getattr(stage, op)(*args))
            except Exception as exc:  # the poll loop decides what an error means, as it would in-process
                reply = ("error", portable(exc))
            conn.send(reply)
    finally:
        if stage is not None:
            stage.close()


def portable(exc: Exception) -> Exception:
    """*exc* as it can cross the pipe, its traceback in the child kept as a note.

    An exception that does not survive pickling becomes SourceUnavailable (a database error: the poll
    loop backs off and tries again, as it would for the original) or a RuntimeError naming its type."""
    exc.add_note("raised in the ingest process:\n" + "".join(traceback.format_exception(exc)).rstrip())
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - whatever pickling raises, the message is what matters
        cls = SourceUnavailable if isinstance(exc, DBAPIError) else RuntimeError
        return cls(f"{type(exc).__name__}: {exc}")


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel SIGKILL this process when the worker dies. Elsewhere: the pipe's EOF."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):   # not Linux: the next recv's EOF ends the child
        pass
    if os.getppid() != parent_pid:   # the worker died before the signal was asked for
        os._exit(0)
