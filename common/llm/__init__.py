"""The model providers behind one small interface: a request in, a stream of events out.

A `ModelRequest` holds the system prompt, the conversation as provider-neutral turns and the
tools offered; `Provider.stream` answers it with `ModelEvent`s (text deltas, tool calls, token
usage, the finish) from Claude (`anthropic.py`) or Gemini on Vertex AI (`gemini.py`), both streaming,
chosen by name in `providers.py`. Each stream has its own HTTP connection (`Upstream`) that
another thread can cut at once, so Stop closes the upstream call even while the model is
silent. The SDKs are imported where used.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol

from common.log import get_logger

if TYPE_CHECKING:
    import httpx2

logger = get_logger(__name__)

FinishReason = Literal["stop", "length", "tool-calls", "other"]


# -- what the model is given -------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: its name, what it is for, and its input's JSON schema."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    name: str
    output: Any  # JSON
    is_error: bool = False


@dataclass(frozen=True)
class UserTurn:
    text: str


@dataclass(frozen=True)
class AssistantTurn:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolResultsTurn:
    """The results of an assistant turn's tool calls, in the same order."""

    results: tuple[ToolResult, ...]


Turn = UserTurn | AssistantTurn | ToolResultsTurn


@dataclass(frozen=True)
class ModelRequest:
    model: str
    system: str
    turns: tuple[Turn, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_output_tokens: int = 4096
    force_tool: str | None = None  # the model must answer by calling this tool (structured output)


# -- what the model answers --------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    id: str
    name: str


@dataclass(frozen=True)
class ToolCallDelta:
    id: str
    json_text: str  # a piece of the input's JSON text


@dataclass(frozen=True)
class ToolCallDone:
    call: ToolCall


@dataclass(frozen=True)
class Usage:
    """Tokens a model call used, as its provider reports them; also an event of the stream: the
    figures so far (each replaces the last), sent as soon as the provider reports them, so that a
    call cut off before its end still counts what it was told."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True)
class Finished:
    reason: FinishReason
    usage: Usage = field(default_factory=Usage)


ModelEvent = TextDelta | ToolCallStarted | ToolCallDelta | ToolCallDone | Usage | Finished


# The key of a tool call's input when the model's arguments were not a JSON object: the tool
# answers the model with an error instead of running.
UNPARSABLE = "__unparsable__"


class ProviderError(Exception):
    """The model call failed; `retryable` when trying again may help (429, 5xx, overloaded)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class Provider(Protocol):
    name: str

    def stream(self, request: ModelRequest, upstream: Upstream) -> Iterator[ModelEvent]:
        """The model's answer as it arrives; ends with `Finished`, or raises ProviderError."""
        ...


# -- the connection of one stream --------------------------------------------------------------


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The instance's one TLS context: loading the CA bundle takes ~30 ms, too long for each stream."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def transport_failed(error: Exception, upstream: Upstream) -> NoReturn:
    """A model call whose transport failed: stopped by us when we cut it, else a connection
    failure worth retrying."""
    if upstream.was_cut:
        raise ProviderError("The model call was stopped.", retryable=False) from None
    raise ProviderError(f"The connection to the model failed ({type(error).__name__}).", retryable=True) from error


class Upstream:
    """The HTTP client of one model stream, whose connection `cut()` closes from any thread.

    Closing a socket another thread is reading from does not wake that thread (nor tell the
    server) on Linux; shutting it down does both. The transport remembers the sockets of the
    responses it opens so that Stop and a client's hang-up reach the model API at once.
    """

    def __init__(self, timeout: float = 120.0) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._cut = False
        self.timeout = timeout
        self._client: httpx2.Client | None = None

    @property
    def client(self) -> httpx2.Client:
        """An httpx2 client for the SDKs (both use httpx2), created on first use."""
        if self._client is None:
            import httpx2

            upstream = self

            class Transport(httpx2.HTTPTransport):
                def handle_request(self, request: httpx2.Request) -> httpx2.Response:
                    # The socket is known once connected, before the answer's headers: a stop
                    # while the API has not answered at all must reach it too.
                    request.extensions = {**request.extensions, "trace": upstream._trace}
                    return super().handle_request(request)

            timeout = httpx2.Timeout(self.timeout, connect=10.0)
            self._client = httpx2.Client(transport=Transport(verify=tls_context()), timeout=timeout)
        return self._client

    @property
    def was_cut(self) -> bool:
        return self._cut

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                self._opened(sock)

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            cut = self._cut
        if cut:
            _shut(sock)

    def cut(self) -> None:
        """Close every connection of this stream now; a read in progress fails at once."""
        with self._lock:
            self._cut = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)
