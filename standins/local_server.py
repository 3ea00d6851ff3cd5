"""The one small base of the standard library HTTP servers here: the stand-ins and the tests' own.

`LocalServer` serves an `http.server` server from a daemon thread (or in the foreground, for a
command line) on the port it was given, 0 taking a free one, and stops it without leaving a
thread behind. `JsonHandler` speaks HTTP/1.1 with every answer's length given, reads a body
whole (unread bytes would become the next request on a kept-alive connection), answers JSON as
the real APIs send it, and logs each request at DEBUG.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

JSON = "application/json"
# How long serve_forever waits between looks at a stop request: stop() returns within it.
POLL_INTERVAL = 0.05


def dump(obj: object) -> bytes:
    """Compact UTF-8 JSON, as the model APIs send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Server(ThreadingHTTPServer):
    # A thread per connection, none of which keeps the process alive at exit.
    daemon_threads = True
    # socketserver's listen backlog is 5: a burst of connections (a worker's 32 deliveries at
    # once, 50 streams) beyond it has its SYNs dropped, and each waits a second or three to retry.
    request_queue_size = 128


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    logger = logging.getLogger("standins")

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(
        self, status: int, body: bytes = b"", *, content_type: str = JSON, headers: Mapping[str, str] | None = None
    ) -> None:
        """A whole answer: status, headers with its length, then the body (none to a HEAD)."""
        self.send_response(status)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, payload: object, *, headers: Mapping[str, str] | None = None) -> None:
        self.send(status, dump(payload), headers=headers)

    def log_message(self, format: str, *args: Any) -> None:
        self.logger.debug("%s %s", self.address_string(), format % args)


class LocalServer:
    """`server` served from a thread: `.start()`, `.url`, `.stop()`, or a `with` block."""

    def __init__(self, server: ThreadingHTTPServer, *, name: str) -> None:
        self.server = server
        self.name = name
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://host:port`, the port the one bound (a free one when 0 was asked for)."""
        host, port = self.server.server_address[:2]
        host = str(host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until `stop()` from another (or an exception, such as Ctrl-C)."""
        self.server.serve_forever(poll_interval=POLL_INTERVAL)

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
