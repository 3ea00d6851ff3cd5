"""One HTTP response on one connection: a whole JSON body or a chunked event stream, cut short when the client hangs up.

Hang-ups are noticed two ways: a write that fails, and, between writes and during scripted silences, a look at
the socket every 50 ms (readable with nothing to read means the client has closed its end).
"""

from __future__ import annotations

import contextlib
import secrets
import select
import socket
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler

from standins._requests import RequestRecord
from standins.local_server import dump

POLL_INTERVAL = 0.05


class ClientGoneError(Exception):
    """The client hung up before the response ended."""


class StoppingError(Exception):
    """The stand-in is shutting down."""


class Channel:
    def __init__(self, handler: BaseHTTPRequestHandler, record: RequestRecord, stopping: threading.Event) -> None:
        self._handler = handler
        self._sock: socket.socket = handler.connection
        self._record = record
        self._stopping = stopping
        self._streaming = False

    def send_json(
        self, status: int, body: object, headers: Mapping[str, str] | None = None, *, token: bool = False
    ) -> None:
        """A complete response with a Content-Length; `token` marks a model answer for the log."""
        data = dump(body)
        self._check()
        try:
            self._handler.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self._handler.send_header(name, value)
            self._handler.send_header("Content-Length", str(len(data)))
            self._handler.end_headers()
            self._record.mark_first_byte(status)
            self._handler.wfile.write(data)
        except OSError as error:
            raise ClientGoneError from error
        if token:
            self._record.mark_first_token()

    def open_stream(self, headers: Mapping[str, str]) -> None:
        """Status 200 and the headers of a chunked response; the events follow with `send_event`."""
        self._check()
        try:
            self._handler.send_response(200)
            for name, value in headers.items():
                self._handler.send_header(name, value)
            self._handler.send_header("Transfer-Encoding", "chunked")
            self._handler.end_headers()
        except OSError as error:
            raise ClientGoneError from error
        self._streaming = True
        self._record.mark_first_byte(200)

    def send_event(self, data: bytes, *, token: bool = False) -> None:
        """One event as one chunk, so the client sees it at once; `token` marks model output for the log."""
        self._check()
        try:
            self._handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError as error:
            raise ClientGoneError from error
        if token:
            self._record.mark_first_token()

    def end_stream(self) -> None:
        try:
            self._handler.wfile.write(b"0\r\n\r\n")
        except OSError as error:
            raise ClientGoneError from error

    def drop(self) -> None:
        """Close the connection without ending the response, as a failing upstream would."""
        self._handler.close_connection = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def wait(self, seconds: float) -> None:
        """Stay silent for `seconds`, watching the connection so a hang-up ends the wait at once."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self._check(min(remaining, POLL_INTERVAL))
        self._check()

    def _check(self, wait: float = 0.0) -> None:
        if self._stopping.is_set():
            raise StoppingError
        if _peer_closed(self._sock, wait):
            raise ClientGoneError


def _peer_closed(sock: socket.socket, wait: float) -> bool:
    """Whether the client has closed its end; waits up to `wait` seconds for it to happen."""
    started = time.monotonic()
    # poll rather than select: select fails on descriptors above 1024, which a busy test run can reach.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    try:
        events = poller.poll(int(wait * 1000))
    except (OSError, ValueError):
        return True
    if not events:
        return False
    try:
        peeked = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    if peeked:
        # The client sent more (a pipelined request): alive. Sleep out the wait, or the caller would spin.
        time.sleep(max(0.0, wait - (time.monotonic() - started)))
        return False
    return True


_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str, length: int = 24) -> str:
    """An id shaped like the real APIs' (`msg_01…`, `toolu_01…`, `req_01…`)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
