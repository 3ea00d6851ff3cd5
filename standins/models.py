"""A local stand-in for both model APIs CSCX calls: their real wire protocols on one port, scripted over HTTP.

Model endpoints (what the real SDKs call, pointed here by their base URL):
    POST /v1/messages                                             Anthropic Messages, JSON or `"stream": true` SSE
    POST /{version}/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent
    POST /{version}/projects/{p}/locations/{l}/publishers/google/models/{model}:streamGenerateContent?alt=sse
                                                                  Vertex Gemini (google-genai, vertexai=True)
Control endpoints (for tests):
    POST /_standin/scripts    queue turns (see `standins._turns` for the format)  → {"queued": n, "pending": total}
    GET  /_standin/scripts    the turns still queued                              → {"pending": [turn, ...]}
    GET  /_standin/requests   every model request so far, in order                → {"requests": [record, ...]}
    POST /_standin/reset      forget queued turns and recorded requests           → {"reset": true}
    GET  /healthz                                                                  → {"status": "ok"}

A request with no queued turn for it gets an answer that says it comes from the stand-in, not a model.

    python -m standins.models --host 127.0.0.1 --port 8090
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standins import _anthropic, _gemini
from standins._requests import Outcome, RequestLog, RequestRecord
from standins._turns import Provider, Turn, TurnQueue, default_turn, parse_turns
from standins._wire import Channel, ClientGoneError, StoppingError
from standins.local_server import JsonHandler, LocalServer, Server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090

log = logging.getLogger("standins.models")

# A provider's error answer, in its own shape: (channel, status, error type, message, Retry-After).
SendError = Callable[[Channel, int, str, str | None, int | None], None]


class _Server(Server):
    request_queue_size = 256  # many tests' streams connect at once; the default backlog of 5 drops some

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.turns = TurnQueue()
        self.requests = RequestLog()
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def shutdown(self) -> None:
        # Answers under way end at their next write or wait (StoppingError) rather than run on.
        self.stopping.set()
        super().shutdown()

    def server_close(self) -> None:
        # Wake every handler thread, idle keep-alive ones included, so a stop leaves none behind.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        super().server_close()


class _Handler(JsonHandler):
    server: _Server
    # HTTP/1.1 (JsonHandler): keep-alive and chunked streams, as both real APIs serve them.
    logger = log
    timeout = 120  # an idle keep-alive connection is let go after this long
    # Each event is a small write that must leave at once; Nagle's algorithm would hold it back for an ACK.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "cscx-model-standin"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self.send_json(200, {"status": "ok"})
        elif path == "/_standin/scripts":
            self.send_json(200, {"pending": self.server.turns.pending()})
        elif path == "/_standin/requests":
            self.send_json(200, {"requests": self.server.requests.snapshot()})
        else:
            self._not_found()

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_standin/scripts":
            self._add_scripts()
        elif url.path == "/_standin/reset":
            self._reset()
        elif url.path == _anthropic.PATH:
            self._anthropic()
        elif found := _gemini.PATH.match(url.path):
            vertex = found.group("project") is not None
            self._gemini(found.group("model"), found.group("method"), parse_qs(url.query), vertex=vertex)
        else:
            self._not_found()

    # ------------------------------------------------------------ control

    def _add_scripts(self) -> None:
        try:
            turns = parse_turns(json.loads(self.read_body() or b"null"))
        except ValueError as error:  # ScriptError and bad JSON alike
            self.send_json(400, {"error": str(error)})
            return
        self.send_json(200, {"queued": len(turns), "pending": self.server.turns.add(turns)})

    def _reset(self) -> None:
        self.read_body()
        self.server.turns.clear()
        self.server.requests.clear()
        self.send_json(200, {"reset": True})

    def _not_found(self) -> None:
        self.read_body()
        self.send_json(
            404, {"type": "error", "error": {"type": "not_found_error", "message": f"No route for {self.path}"}}
        )

    # ------------------------------------------------------------ model calls

    def _anthropic(self) -> None:
        raw, body = self._read_json()
        model = body.get("model") if isinstance(body, dict) else None
        stream = isinstance(body, dict) and body.get("stream") is True
        record, channel = self._open("anthropic", model if isinstance(model, str) else None, stream, body)
        refused = _anthropic.refusal(body, self._header_dict())
        if refused is not None:
            self._play(record, lambda: self._refuse(_anthropic.send_error, channel, refused))
            return
        assert isinstance(body, dict)
        assert isinstance(model, str)
        said = _anthropic.said(body)
        turn = self.server.turns.take("anthropic", raw) or default_turn(said)
        record.mark_turn(turn.source)

        def answer() -> Outcome:
            return _anthropic.answer(channel, turn, model=model, raw=raw, stream=stream)

        self._play(record, lambda: _scripted(channel, turn, _anthropic.send_error, answer))

    def _gemini(self, model: str, method: str, query: dict[str, list[str]], *, vertex: bool) -> None:
        raw, body = self._read_json()
        stream = method == "streamGenerateContent"
        record, channel = self._open("gemini", model, stream, body)
        refused = _gemini.refusal(body, self._header_dict(), vertex=vertex)
        if refused is None and stream and query.get("alt") != ["sse"]:
            # Without alt=sse Google streams one JSON array; google-genai always asks for SSE.
            refused = 400, "invalid_request_error", "The stand-in streams only with alt=sse."
        if refused is not None:
            self._play(record, lambda: self._refuse(_gemini.send_error, channel, refused))
            return
        assert isinstance(body, dict)
        turn = self.server.turns.take("gemini", raw) or default_turn(_gemini.said(body))
        record.mark_turn(turn.source)

        def answer() -> Outcome:
            return _gemini.answer(channel, turn, model=model, raw=raw, stream=stream)

        self._play(record, lambda: _scripted(channel, turn, _gemini.send_error, answer))

    def _read_json(self) -> tuple[str, Any]:
        raw = self.read_body().decode("utf-8", errors="replace")
        try:
            return raw, json.loads(raw)
        except ValueError:
            return raw, raw

    def _header_dict(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _open(self, provider: Provider, model: str | None, stream: bool, body: Any) -> tuple[RequestRecord, Channel]:
        record = self.server.requests.open(
            provider=provider,
            method=self.command,
            path=self.path,
            model=model,
            stream=stream,
            headers=self._header_dict(),
            body=body,
        )
        return record, Channel(self, record, self.server.stopping)

    @staticmethod
    def _refuse(
        send: Callable[[Channel, int, str, str], None], channel: Channel, refused: tuple[int, str, str]
    ) -> Outcome:
        status, kind, message = refused
        send(channel, status, kind, message)
        return "rejected"

    def _play(self, record: RequestRecord, answer: Callable[[], Outcome]) -> None:
        """Run one answer to its end, recording how it ended; a cut-short answer closes the connection."""
        try:
            outcome: Outcome = answer()
        except ClientGoneError:
            outcome = "client_closed"
        except StoppingError:
            outcome = "stopped"
        except Exception:
            log.exception("the model stand-in failed to answer %s", self.path)
            outcome = "failed"
        if outcome in ("client_closed", "stopped", "disconnected", "failed"):
            self.close_connection = True
        record.mark_finished(outcome)


def _scripted(channel: Channel, turn: Turn, send_error: SendError, answer: Callable[[], Outcome]) -> Outcome:
    """The turn's answer, after its silence before anything (a hang-up meanwhile is seen): the HTTP
    error it is scripted to fail with, in the provider's shape (`send_error`), else `answer()`."""
    if turn.headers_delay > 0:
        channel.wait(turn.headers_delay)
    if turn.http_error is not None:
        failure = turn.http_error
        channel.wait(turn.first_token_delay)
        send_error(channel, failure.status, failure.kind, failure.message, failure.retry_after)
        return "http_error"
    return answer()


class ModelStandin(LocalServer):
    """The stand-in in a background thread: `ModelStandin(port=0).start()` for tests, `.url` to point SDKs at."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        super().__init__(_Server((host, port)), name="model-standin")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local stand-in for the Anthropic and Vertex Gemini APIs.")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )

    standin = ModelStandin(args.host, args.port).start()
    log.info("model stand-in listening on %s", standin.url)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    done.wait()
    standin.stop()


if __name__ == "__main__":
    main()
