"""The host side of the Shtrih-M link layer: ENQ/ACK/NAK around every command.

One :meth:`Link.exchange` = ENQ (drain any stale answer) → frame → ACK → answer → our ACK.
Frame-level repeats happen only where the register certainly did not accept the frame (it said
NAK); silence after a frame is resolved with ENQ (ACK = the answer is pending, so it is read, never
re-executed). :class:`LinkError` tells the caller whether the command may have reached the register.

Every wait is bounded twice: by its own timeout, and by one overall deadline per exchange (the
answer timeout plus a small slack), so a line carrying continuous noise ends in LinkError instead
of hanging the lane. A stop signal (:attr:`Link.cancel_event`) ends any wait once the exchange
has lasted :data:`CANCEL_GRACE_S`: a healthy register's answers (milliseconds) still complete
during a warm shutdown, a stuck one is abandoned within a second. Abandoning is LinkError with ``sent`` telling
whether the command may have reached the register — after FF45 the driver turns that into
OutcomeUnknownError, never into silence.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from kkt_drivers.errors import TransientError
from kkt_drivers.shtrih import protocol as p
from kkt_drivers.transport import LinkClosedError, Stream

log = logging.getLogger(__name__)

#: ENQ rounds before the link counts as down (javapos uses 10)
MAX_ENQ = 5
#: frame re-sends after a NAK, and answer re-reads after a bad LRC (javapos: 3 each)
MAX_REPEATS = 3
#: slack of the overall exchange deadline beyond the answer timeout: n × byte timeout + seconds
DEADLINE_BYTE_TIMEOUTS = 4
DEADLINE_SLACK_S = 1.0
#: reads are cut into slices this long so that a stop signal is seen (seconds). Every slice is a
#: wakeup of an otherwise idle lane: at 0.1 s a farm of 200 lanes waiting on slow (CPU-starved)
#: registers spent most of its CPU waking up (bench.shtrih_cpu --lanes 200 --hosts 4). 0.25 s keeps
#: a stop within CANCEL_GRACE_S + POLL_S = 0.75 s, inside the second promised above.
POLL_S = 0.25
#: a wait is abandoned on a stop signal once it has lasted this long (seconds)
CANCEL_GRACE_S = 0.5
#: at most this long is spent skipping the rest of a garbled frame (seconds)
DRAIN_MAX_S = 0.5


class _Abandoned(Exception):
    """A wait ended early: the exchange deadline passed or a stop was requested."""


class LinkError(TransientError):
    """The exchange failed; ``sent`` says whether the command may have reached the register."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Link:
    """One open byte stream to a register, with the handshake state machine on top."""

    def __init__(self, open_stream: Callable[[], Stream], *, byte_timeout: float,
                 cancel_event: threading.Event | None = None) -> None:
        self._open_stream = open_stream
        self.byte_timeout = byte_timeout
        #: set by the owner to stop waiting (see the module header)
        self.cancel_event = cancel_event
        self._deadline = float("inf")
        self._started = 0.0
        self._stream: Stream | None = None
        #: the last answer that was pending when a new exchange began (lost earlier), for logs
        self.stale_answer: bytes | None = None

    @property
    def is_open(self) -> bool:
        """Whether a stream is open."""
        return self._stream is not None

    def open(self) -> None:
        """Open the stream (idempotent); TransientError when unreachable."""
        if self._stream is None:
            self._stream = self._open_stream()

    def close(self) -> None:
        """Close the stream; never raises."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    # -- the exchange ----------------------------------------------------------------------
    def exchange(self, payload: bytes, timeout: float, *, resend_on_silence: bool = True,
                 on_accepted: Callable[[], None] | None = None) -> p.Answer:
        """Send *payload* (command + password + data), return the register's answer.

        *resend_on_silence* False (the closing command) never writes the frame twice unless the
        register said NAK to it; silence then raises ``LinkError(sent=True)``. *on_accepted* is called
        once the register has ACKed the frame (it will execute it), before its answer is read.
        """
        self.open()
        assert self._stream is not None
        sent = False
        self._started = time.monotonic()
        self._deadline = self._started + timeout + DEADLINE_BYTE_TIMEOUTS * self.byte_timeout + DEADLINE_SLACK_S
        try:
            try:
                self.sync()
            except LinkClosedError:
                # the register (or a NAT box) closed an idle connection: nothing was sent yet,
                # so one fresh connection is as safe as the first
                self.close()
                self.open()
                self.sync()
            frame = p.encode_frame(payload)
            for _ in range(MAX_REPEATS):
                sent = True
                self._stream.write(frame)
                c = self._control(self.byte_timeout + 0.5)
                if c == p.ACK:
                    if on_accepted:
                        on_accepted()
                    return self._answer(timeout)
                if c == p.NAK:
                    # usually the register refused the frame (bad LRC on the way): but a late NAK
                    # to an earlier ENQ looks the same. Ask before sending it again: an answer
                    # pending (ACK) means it took the frame, and a repeat would run it twice.
                    state = self._enq()
                    if state in (p.ACK, p.STX):
                        if on_accepted:
                            on_accepted()
                        return self._answer(timeout, stx_seen=state == p.STX)
                    if state is None:
                        raise LinkError("no reply to ENQ after a NAKed frame", sent=True)
                    continue  # idle and nothing pending: the frame was not taken, send it again
                # silence: did it get the frame? ENQ tells (ACK = it has an answer pending)
                state = self._enq()
                if state in (p.ACK, p.STX):  # accepted: its answer is pending or on its way
                    if on_accepted:
                        on_accepted()
                    return self._answer(timeout, stx_seen=state == p.STX)
                if state is None or not resend_on_silence:
                    raise LinkError("no ACK to the command frame", sent=True)
            # written, though refused: count it as sent so that nobody assumes more than we know
            raise LinkError(f"register refused the frame {MAX_REPEATS} times (NAK)", sent=True)
        except LinkError:
            self.close()  # the next exchange starts on a fresh connection
            raise
        except _Abandoned as exc:
            self.close()
            raise LinkError(f"{exc} (command {'sent' if sent else 'not sent'})", sent=sent) from exc
        except TransientError as exc:
            self.close()
            raise LinkError(f"link failed: {exc}", sent=sent) from exc

    def sync(self) -> None:
        """ENQ until the register says NAK (idle); read and drop a stale pending answer."""
        assert self._stream is not None
        # leftovers (a repeated answer, a NAK to an ENQ we stopped waiting for) would be misread
        # as the reply to our next control byte
        self._stream.discard_input()
        for _ in range(MAX_ENQ):
            state = self._enq()
            if state == p.NAK:
                return
            if state in (p.ACK, p.STX):
                try:
                    stale = self._answer(self.byte_timeout + 1.0, stx_seen=state == p.STX)
                except LinkError:
                    continue
                self.stale_answer = bytes([stale.error]) + stale.data
                # the register may repeat that answer once more (to an ENQ of ours it saw late):
                # let the line go quiet so that no old reply is read as the answer to the next ENQ
                self._drain()
                log.warning("dropped a stale answer to command 0x%X (error 0x%02X)", stale.cmd, stale.error)
        raise LinkError("register does not answer ENQ", sent=False)

    # -- pieces ----------------------------------------------------------------------------
    def _enq(self) -> int | None:
        assert self._stream is not None
        self._stream.write(bytes([p.ENQ]))
        return self._control(self.byte_timeout)

    def _control(self, timeout: float) -> int | None:
        """The next ACK, NAK or STX (an answer already on its way); None on silence.

        Skips 0xFF fillers (TCP/RNDIS quirk) and other noise.
        """
        assert self._stream is not None
        # one deadline for the whole wait: noise must not restart the clock byte by byte
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            b = self._read_byte(left)
            if b is None or b in (p.ACK, p.NAK, p.STX):
                return b
            # 0xFF after an ACK, or the tail of an old answer: ignore and keep listening

    def _answer(self, timeout: float, *, stx_seen: bool = False) -> p.Answer:
        """Read one answer frame, ACK it; a bad LRC is NAKed and fetched again with ENQ.

        *stx_seen*: the frame's STX was already read (it arrived in place of a control byte).
        """
        assert self._stream is not None
        # a register still executing answers ENQ with ACK too: keep waiting until the deadline
        deadline = time.monotonic() + timeout
        wait = timeout
        for _ in range(MAX_REPEATS):
            if not stx_seen and not self._wait_stx(wait):
                # nothing came: maybe the answer was lost on the way; ask once if one is pending
                state = self._enq()
                if state not in (p.ACK, p.STX):
                    raise LinkError("no answer from the register", sent=True)
                stx_seen = state == p.STX
                wait = max(deadline - time.monotonic(), self.byte_timeout + 1.0)
                continue
            stx_seen = False
            head = self._read(1, self.byte_timeout)
            body = self._read(head[0] + 1, self.byte_timeout) if head else b""
            if head and head[0] and len(body) == head[0] + 1 and p.lrc(head + body[:-1]) == body[-1]:
                self._stream.write(bytes([p.ACK]))
                try:
                    return p.parse_answer(body[:-1])
                except p.FrameError as exc:
                    raise LinkError(f"malformed answer: {exc}", sent=True) from exc
            self._drain()
            self._stream.write(bytes([p.NAK]))
            state = self._enq()
            if state not in (p.ACK, p.STX):
                raise LinkError("answer corrupted and not repeated", sent=True)
            stx_seen = state == p.STX
            wait = max(deadline - time.monotonic(), self.byte_timeout + 1.0)
        raise LinkError("answer corrupted too many times", sent=True)

    def _wait_stx(self, timeout: float) -> bool:
        assert self._stream is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            b = self._read_byte(left)
            if b == p.STX:
                return True
            if b is None:
                return False

    # -- bounded reads -----------------------------------------------------------------------
    def _read_byte(self, timeout: float) -> int | None:
        data = self._read(1, timeout)
        return data[0] if data else None

    def _read(self, n: int, timeout: float) -> bytes:
        """Up to *n* bytes within *timeout*, cut short by the exchange deadline or a stop signal.

        Raises :class:`_Abandoned` when the overall deadline has passed or a stop was requested
        and the exchange has lasted :data:`CANCEL_GRACE_S`.
        """
        assert self._stream is not None
        until = time.monotonic() + timeout
        out = bytearray()
        while len(out) < n:
            now = time.monotonic()
            if now >= self._deadline:
                raise _Abandoned("exchange deadline passed (line noisy or register stuck)")
            if self.cancel_event is not None and self.cancel_event.is_set() \
                    and now - self._started >= CANCEL_GRACE_S:
                raise _Abandoned("stop requested while waiting for the register")
            left = min(until, self._deadline) - now
            if left <= 0:
                break
            out += self._stream.read(n - len(out), min(left, POLL_S))
        return bytes(out)

    def _drain(self) -> None:
        """Skip what follows a garbled frame until the line is quiet, for at most DRAIN_MAX_S."""
        stop = time.monotonic() + DRAIN_MAX_S
        while time.monotonic() < stop and self._read(256, 0.05):
            pass
