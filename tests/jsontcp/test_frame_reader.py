"""The driver's buffered frame reader on hand-written byte sequences (no socket, no emulator).

A fake ``recv_into`` hands out scripted chunks, so every way TCP may cut the stream is reproduced
exactly: a frame split at any byte, two frames in one read, a frame longer than the buffer, EOF or a
stall anywhere.
"""
from __future__ import annotations

import itertools
import struct
from decimal import Decimal
from typing import Any

import pytest

from kkt_drivers.jsontcp import protocol as p
from tests.jsontcp.test_framing import BAD_FRAMES

A = {"id": 7, "ok": True, "result": {"name": "Чай", "total": "599.97"}}   # multi-byte UTF-8 to split inside
B = {"id": 8, "ok": False, "error": {"class": "device", "code": 10}}
STREAM = p.encode(A) + p.encode(B)


class Feed:
    """``recv_into`` over scripted chunks: a chunk longer than the caller's view is handed out over
    several calls; when the chunks run out, EOF (0) or, with *stall*, TimeoutError."""

    def __init__(self, chunks: list[bytes], *, stall: bool = False) -> None:
        self.chunks = [c for c in chunks if c]
        self.stall = stall
        self.calls = 0
        self.asked: list[int] = []   # len(view) of each call: how much the reader was willing to take

    def __call__(self, view: memoryview) -> int:
        self.calls += 1
        self.asked.append(len(view))
        assert len(view) > 0, "the reader asked for 0 bytes (it would read EOF where there is none)"
        if not self.chunks:
            if self.stall:
                raise TimeoutError("timed out")
            return 0
        chunk = self.chunks[0]
        n = min(len(view), len(chunk))
        view[:n] = chunk[:n]
        if n < len(chunk):
            self.chunks[0] = chunk[n:]
        else:
            self.chunks.pop(0)
        return n


def cut(data: bytes, points: tuple[int, ...]) -> list[bytes]:
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def read_all(reader: p.FrameReader, n: int) -> list[dict[str, Any]]:
    return [reader.read_frame() for _ in range(n)]


def test_a_split_at_every_byte_boundary_gives_the_same_two_frames() -> None:
    for i in range(1, len(STREAM)):
        reader = p.FrameReader(Feed(cut(STREAM, (i,))))
        assert read_all(reader, 2) == [A, B], f"split at byte {i}"
        assert reader.buffered == 0


def test_every_two_splits_and_one_byte_per_read() -> None:
    for i, j in itertools.combinations(range(1, len(STREAM)), 2):
        assert read_all(p.FrameReader(Feed(cut(STREAM, (i, j)))), 2) == [A, B], f"splits at {i}, {j}"
    one_by_one = Feed([bytes([b]) for b in STREAM])
    assert read_all(p.FrameReader(one_by_one), 2) == [A, B]
    assert one_by_one.calls == len(STREAM)


def test_two_frames_in_one_chunk_cost_one_read_and_the_rest_waits_in_the_buffer() -> None:
    feed = Feed([STREAM])
    reader = p.FrameReader(feed)
    assert reader.read_frame() == A
    assert feed.calls == 1 and reader.buffered == len(p.encode(B))
    assert reader.read_frame() == B
    assert feed.calls == 1 and reader.buffered == 0
    with pytest.raises(p.PeerClosed) as eof:   # then the peer closes cleanly between frames
        reader.read_frame()
    assert not eof.value.mid_frame


def test_a_whole_answer_is_one_read() -> None:
    feed = Feed([p.encode(A)] * 3)
    reader = p.FrameReader(feed)
    assert read_all(reader, 3) == [A, A, A] and feed.calls == 3


@pytest.mark.parametrize("buffer_bytes", range(p.HEADER.size, 80))
def test_any_buffer_size_with_frames_that_straddle_its_end(buffer_bytes: int) -> None:
    """Small buffers force every path: header across the end (compaction), body across the end,
    bodies longer than the buffer; the chunks also cut frames at awkward places."""
    frames = [A, B, {"x": "y" * 40}, {"n": 1}, A]
    data = b"".join(p.encode(f) for f in frames)
    for step in (1, 3, 7, 13, 50, len(data)):
        feed = Feed([data[k:k + step] for k in range(0, len(data), step)])
        reader = p.FrameReader(feed, buffer_bytes=buffer_bytes)
        assert read_all(reader, len(frames)) == frames, f"chunks of {step}"
        assert reader.buffered == 0
        assert max(feed.asked) <= max(buffer_bytes, *(len(p.encode(f)) for f in frames))


def test_a_frame_larger_than_the_buffer_is_read_to_its_end_and_not_past_it() -> None:
    big = {"items": [{"name": "Товар", "amount": "150.50"}] * 200}   # ~9 KiB
    tail = p.encode(B)
    data = p.encode(big) + tail
    feed = Feed([data])
    reader = p.FrameReader(feed, buffer_bytes=64)
    assert reader.read_frame() == big
    assert reader.read_frame() == B
    # the big body was read in one call of exactly the missing length: the next frame stayed in the feed
    assert feed.asked[1] == len(p.encode(big)) - 64
    for i in range(1, len(data), 997):   # and split anywhere
        assert read_all(p.FrameReader(Feed(cut(data, (i,))), buffer_bytes=64), 2) == [big, B], f"split at {i}"


@pytest.mark.parametrize("buffer_bytes", [p.RECV_BUFFER_BYTES, 16])
def test_eof_mid_frame_is_peer_closed_mid_frame(buffer_bytes: int) -> None:
    frame = p.encode({"id": 1, "result": "x" * 30})
    for i in range(1, len(frame)):   # EOF after any strict prefix: header, inside the body
        with pytest.raises(p.PeerClosed) as exc:
            p.FrameReader(Feed([frame[:i]]), buffer_bytes=buffer_bytes).read_frame()
        assert exc.value.mid_frame, f"EOF after {i} bytes"
    with pytest.raises(p.PeerClosed) as clean:
        p.FrameReader(Feed([]), buffer_bytes=buffer_bytes).read_frame()
    assert not clean.value.mid_frame


def test_eof_after_a_whole_frame_and_part_of_the_next() -> None:
    reader = p.FrameReader(Feed([p.encode(A) + p.encode(B)[:3]]))
    assert reader.read_frame() == A
    with pytest.raises(p.PeerClosed) as exc:
        reader.read_frame()
    assert exc.value.mid_frame


@pytest.mark.parametrize("buffer_bytes", [p.RECV_BUFFER_BYTES, 16])
def test_a_stall_after_the_header_is_a_frame_timeout_before_it_a_plain_timeout(buffer_bytes: int) -> None:
    frame = p.encode({"id": 1, "result": "x" * 30})
    for i in range(p.HEADER.size, len(frame)):
        with pytest.raises(p.FrameTimeout):
            p.FrameReader(Feed([frame[:i]], stall=True), buffer_bytes=buffer_bytes).read_frame()
    for i in range(p.HEADER.size):   # the caller decides what silence before a frame means
        with pytest.raises(TimeoutError) as exc:
            p.FrameReader(Feed([frame[:i]], stall=True), buffer_bytes=buffer_bytes).read_frame()
        assert not isinstance(exc.value, p.FrameError)


@pytest.mark.parametrize("data, match", BAD_FRAMES + [(struct.pack(">I", 4) + b"{}{}", "not JSON")])
def test_bad_frames_are_frame_errors(data: bytes, match: str) -> None:
    with pytest.raises(p.FrameError, match=match):
        p.FrameReader(Feed([data])).read_frame()


def test_the_length_limit_is_checked_before_any_body_is_read() -> None:
    feed = Feed([struct.pack(">I", 101), b"{" * 101])
    with pytest.raises(p.FrameError, match="outside 1..100"):
        p.FrameReader(feed, max_bytes=100).read_frame()
    assert feed.calls == 1


def test_numbers_with_a_point_are_decimals_never_floats() -> None:
    body = b'{"amount":150.10,"n":3}'
    msg = p.FrameReader(Feed([struct.pack(">I", len(body)) + body])).read_frame()
    assert msg == {"amount": Decimal("150.10"), "n": 3} and isinstance(msg["amount"], Decimal)
