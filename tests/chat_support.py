"""Calling `chat_stream` as a web app does, and reading its UI message stream part by part."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from scripts.stack import Stack
from tests.conftest import Api, Caller

_VARIANTS: dict[tuple[int, str], str] = {}


def chat_variant(stack: Stack, label: str, **settings: str) -> str:
    """The URL of another `chat_stream` instance of the stack with these settings, started on the
    first call for `label` and shared by the tests after (it stops with the stack)."""
    key = (id(stack), label)
    if key not in _VARIANTS:
        _VARIANTS[key] = stack.start_variant("chat_stream", label, settings)
    return _VARIANTS[key]


@dataclass
class ChatReply:
    """A streamed answer: the raw bytes, each part with when it arrived, and the comments."""

    status: int
    headers: dict[str, str]
    raw: bytes = b""
    parts: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # seconds since the request was sent
    comments: list[str] = field(default_factory=list)
    done: bool = False

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [part for part in self.parts if part["type"] == kind]

    @property
    def types(self) -> list[str]:
        return [part["type"] for part in self.parts]

    @property
    def text(self) -> str:
        return "".join(part["delta"] for part in self.of_type("text-delta"))

    @property
    def session_id(self) -> str:
        return str(self.parts[0]["messageMetadata"]["sessionId"])

    @property
    def message_id(self) -> str:
        return str(self.parts[0]["messageId"])

    def error(self) -> dict[str, Any]:
        return dict(json.loads(self.raw)["error"])


class StreamReader:
    """Reads a chat stream as it arrives, in as many goes as the test wants."""

    def __init__(self, response: requests.Response, started: float | None = None) -> None:
        self.started = time.monotonic() if started is None else started
        self.reply = ChatReply(response.status_code, dict(response.headers))
        self._chunks = response.iter_content(chunk_size=None)
        self._buffer = b""
        if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
            self.reply.raw = response.content
            self._chunks = iter(())

    def until(self, stop_after: Any = None) -> ChatReply:
        """Read until `stop_after(reply)` is true after a part, or the stream ends."""
        reply = self.reply
        while True:
            while b"\n\n" in self._buffer:
                event, self._buffer = self._buffer.split(b"\n\n", 1)
                line = event.decode()
                if line.startswith(":"):
                    reply.comments.append(line)
                elif line == "data: [DONE]":
                    reply.done = True
                else:
                    reply.parts.append(json.loads(line.removeprefix("data: ")))
                    reply.arrived.append(time.monotonic() - self.started)
                    if stop_after is not None and stop_after(reply):
                        return reply
            chunk = next(self._chunks, None)
            if chunk is None:
                return reply
            reply.raw += chunk
            self._buffer += chunk


def read_stream(response: requests.Response, started: float, stop_after: Any = None) -> ChatReply:
    """The whole stream (or up to the part `stop_after(reply)` says), as it arrives."""
    return StreamReader(response, started).until(stop_after)


def has_text(reply: ChatReply) -> bool:
    return "text-delta" in reply.types


class RawChat:
    """POST /chat over a bare socket, for a client that goes away mid-stream as a closed tab does."""

    def __init__(self, url: str, user: Caller, body: dict[str, Any]) -> None:
        host, port = url.removeprefix("http://").split(":")
        data = json.dumps(body).encode()
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        head = (
            f"POST /chat HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {user.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + data)
        self.received = b""

    def read_until(self, marker: bytes, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.received:
            assert time.monotonic() < deadline, self.received
            chunk = self.sock.recv(65536)
            assert chunk, self.received
            self.received += chunk

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Chat:
    """POST /chat as one user; `open` keeps the connection for tests that stop or leave mid-stream."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def send(self, user: Caller, **body: Any) -> ChatReply:
        started = time.monotonic()
        with self.open(user, **body) as response:
            return read_stream(response, started)

    def open(self, user: Caller, **body: Any) -> requests.Response:
        return requests.post(f"{self.api.base_url}/chat", json=body, headers=user.headers, stream=True, timeout=(5, 60))

    def stop(self, user: Caller, session_id: str) -> requests.Response:
        return self.api.post(f"/sessions/{session_id}/stop", user)
