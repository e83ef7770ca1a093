"""A small fault-injecting TCP proxy on loopback (Toxiproxy is not packaged here).

    with FaultProxy("127.0.0.1", 3306) as proxy:     # listens on 127.0.0.1:proxy.port
        proxy.outage()        # reset every connection and refuse new ones ("server restarted")
        proxy.restore()       # accept and forward again
        proxy.stall()         # keep connections open but forward nothing (a black-holed network)

Known and kept: ``outage()`` does not always end the server's side. When the reset of the client socket
wakes its pipe thread first, that thread closes the upstream socket with a plain close() while the
other pipe thread is blocked in recv() on it; Linux then keeps that socket open, so the server's session
lives on (5 of 30 resets on a loaded machine: connect, BEGIN, outage, then look the backend up in
pg_stat_activity). That is a real fault too — a link drop the server has not seen — and the worker must
survive it: such a session left inside a transaction holds its row locks until the server's
idle-in-transaction timeout (docs/cluster.md, "Frozen workers and stalled links").
"""
from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType


class FaultProxy:
    """Forwards 127.0.0.1:<port> to *target*; faults are switched on and off by the test."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._down = threading.Event()
        self._stalled = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    # -- faults ------------------------------------------------------------------------------
    def outage(self) -> None:
        """Reset every connection (RST) and refuse new ones until :meth:`restore`."""
        self._down.set()
        self._kill_all()

    def stall(self) -> None:
        """Forward nothing in either direction until :meth:`restore` (connections stay open)."""
        self._stalled.set()

    def restore(self) -> None:
        """Back to normal forwarding."""
        self._down.clear()
        self._stalled.clear()

    def close(self) -> None:
        """Stop the proxy."""
        self._closed.set()
        self.listener.close()
        self._kill_all()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------
    def _kill_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                # SO_LINGER 0: close with RST, like a crashed server. shutdown() first: a plain close()
                # does not wake the pipe thread blocked in recv(), and the socket would stay open
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._down.is_set():
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            if self._down.is_set():   # an outage began while this connection was being set up
                self._kill_all()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self._stalled.is_set() and not self._down.is_set():
                    self._closed.wait(0.05)   # hold the bytes: the peer sees silence
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass
