"""kkt_drivers.transport over TCP: our own buffered socket for ``socket://host:port`` keeps the
contract the Shtrih link relies on (exact reads, timeouts, discarding leftovers, EOF as
LinkClosedError), and every other URL still goes through pyserial."""
from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from kkt_drivers.transport import LinkClosedError, Stream, _TcpPort, _tcp_address


@pytest.fixture
def peer() -> Iterator[tuple[Stream, socket.socket]]:
    """A Stream connected to a socket this test controls."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        stream = Stream(f"socket://127.0.0.1:{port}", timeout=0.3)
        conn, _ = srv.accept()
    try:
        yield stream, conn
    finally:
        stream.close()
        conn.close()


def test_plain_socket_urls_get_the_buffered_port_and_others_pyserial() -> None:
    assert _tcp_address("socket://127.0.0.1:7778") == ("127.0.0.1", 7778)
    # options, paths and other schemes are pyserial's business
    for url in ("socket://127.0.0.1:7778?logging=debug", "rfc2217://h:1", "/dev/ttyUSB0",
                "spy://socket://h:1", "socket://h", "socket://h:notaport"):
        assert _tcp_address(url) is None


def test_reads_are_exact_and_leave_the_rest_buffered(peer) -> None:
    stream, conn = peer
    assert isinstance(stream._port, _TcpPort)
    conn.sendall(b"\x06\x02\x03abc")       # ACK and a whole answer frame in one segment
    time.sleep(0.05)
    assert stream.read(1, 0.3) == b"\x06"
    assert stream.read_byte(0.3) == 0x02
    assert stream.read(1, 0.3) == b"\x03"
    assert stream.read(3, 0.3) == b"abc"
    t0 = time.monotonic()
    assert stream.read(1, 0.2) == b""      # silence: the timeout, not an error
    assert 0.15 <= time.monotonic() - t0 < 1.0


def test_a_read_gathers_bytes_arriving_in_pieces_and_returns_what_came_by_the_timeout(peer) -> None:
    stream, conn = peer
    conn.sendall(b"ab")
    assert stream.read(4, 0.2) == b"ab"    # fewer than asked: the deadline passed
    conn.sendall(b"c")
    time.sleep(0.02)
    conn.sendall(b"d")
    assert stream.read(2, 0.5) == b"cd"


def test_zero_timeout_still_takes_what_has_arrived(peer) -> None:
    stream, conn = peer
    conn.sendall(b"x")
    time.sleep(0.05)
    assert stream.read(1, 0) == b"x"


def test_discard_drops_buffered_and_pending_bytes(peer) -> None:
    stream, conn = peer
    conn.sendall(b"\x15\x15")
    time.sleep(0.05)
    assert stream.read(1, 0.3) == b"\x15"  # one NAK read, the other one buffered
    conn.sendall(b"\x06stale")
    time.sleep(0.05)
    stream.discard_input()
    assert stream.read(1, 0.1) == b""
    conn.sendall(b"\x15")
    assert stream.read(1, 0.3) == b"\x15"


def test_write_sends_every_byte(peer) -> None:
    stream, conn = peer
    data = bytes(range(256)) * 2000        # larger than a socket buffer: partial sends are resumed
    got = bytearray()
    conn.settimeout(5)

    def receive() -> None:
        while len(got) < len(data):
            chunk = conn.recv(65536)
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=receive)
    reader.start()
    stream.write(data)
    reader.join(10)
    assert bytes(got) == data


def test_peer_closing_is_link_closed(peer) -> None:
    stream, conn = peer
    conn.sendall(b"\x15")
    conn.close()
    time.sleep(0.05)
    stream.discard_input()                 # EOF here is left for the read, as pyserial does
    with pytest.raises(LinkClosedError):
        stream.read(1, 0.3)


def test_unreachable_port_is_transient_on_open() -> None:
    from kkt_drivers.errors import TransientError
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # bound, not listening: refused
    with pytest.raises(TransientError, match="cannot open"):
        Stream(f"socket://127.0.0.1:{port}")
