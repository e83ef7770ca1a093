"""A tiny SMTP server for tests (no aiosmtpd in the test deps): EHLO/HELO, MAIL, RCPT, DATA, RSET, QUIT.

It speaks just enough of RFC 5321 for :mod:`smtplib` (no STARTTLS, no AUTH) and keeps every message
it accepted. :meth:`SmtpReceiver.start` / :meth:`stop` make the server really come and go on one
port, so a client sees "connection refused" while it is down.
"""
from __future__ import annotations

import socket
import socketserver
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True     # start() again on the same port right after stop()
    daemon_threads = True


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 that stores accepted messages in :attr:`messages`."""

    def __init__(self) -> None:
        with socket.socket() as s:          # reserve a free port; the server binds it on start()
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self.messages: list[EmailMessage] = []
        self._server: _Server | None = None

    def start(self) -> None:
        """Listen (and answer) on :attr:`port` from now on."""
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply("220 localhost test SMTP")
                while line := self.rfile.readline():
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        self.reply("250-localhost")
                        self.reply("250 8BITMIME")
                    elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                        self.reply("250 OK")
                    elif verb == b"DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        body = bytearray()
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            body += chunk[1:] if chunk.startswith(b"..") else chunk
                        receiver.messages.append(message_from_bytes(bytes(body), policy=policy.default))  # type: ignore[arg-type]
                        self.reply("250 queued")
                    elif verb == b"QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening: clients get "connection refused"."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
