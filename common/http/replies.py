"""What a route answers, and how an answer becomes the response that is sent.

A route returns a `Reply` (JSON), a `StreamReply` (bytes produced while the response is being
sent) or a `RedirectReply`. Every JSON answer is never cached and never sniffed as something
else; an error is the contract's `{"error": {...}}` (`common.errors`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from common.errors import ApiError, Code
from common.log import get_logger
from common.validation import json_default

if TYPE_CHECKING:
    import flask

logger = get_logger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
# Every JSON answer: never cached, never sniffed as something else.
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class PageOf(Protocol):
    """A page of stored objects (store.ListPage of public models)."""

    @property
    def items(self) -> Sequence[BaseModel]: ...

    @property
    def next_cursor(self) -> str | None: ...


@dataclass
class Reply:
    """A JSON reply: a status, a body (or none) and extra headers."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resource(cls, stored: BaseModel, status: int = 200) -> Reply:
        """A single stored object (the fields it has), with its version as the ETag."""
        body = stored.model_dump(mode="json", exclude_unset=True)
        return cls(body, status, {"ETag": f'"{body["version"]}"'})

    @classmethod
    def page(cls, page: PageOf) -> Reply:
        """One page of a list: its items and the cursor of the next page, if any."""
        items = [item.model_dump(mode="json", exclude_unset=True) for item in page.items]
        return cls({"items": items, "next_cursor": page.next_cursor})

    @classmethod
    def no_content(cls) -> Reply:
        return cls(None, 204)

    @classmethod
    def error(cls, error: ApiError) -> Reply:
        """The contract's answer to an error: its code's status, its body, its headers."""
        return cls(error.to_body(), error.code.http_status, dict(error.headers))


@dataclass
class StreamReply:
    """A streamed reply: `chunks` is produced while the response is being sent.

    Only errors raised before the first chunk can still become a JSON error; once it
    streams, the producer reports its own errors in its own format.
    """

    chunks: Iterator[bytes]
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RedirectReply:
    """A redirect of the browser (the OAuth callback back to the web app)."""

    location: str
    status: int = 302
    headers: dict[str, str] = field(default_factory=dict)


AnyReply = Reply | StreamReply | RedirectReply


@dataclass
class Sent:
    """Bytes of body sent so far, counted as the server takes them (for the request's log line)."""

    bytes: int = 0


def to_response(reply: AnyReply, headers: dict[str, str], sent: Sent) -> flask.Response:
    """The Flask response of `reply`, with the request's own `headers` (id, CORS) added."""
    import flask

    if isinstance(reply, StreamReply):
        stream = flask.stream_with_context(_counted(reply.chunks, sent))
        return flask.Response(
            stream, status=reply.status, headers={**headers, **reply.headers}, content_type=reply.content_type
        )
    if isinstance(reply, RedirectReply):
        all_headers = {**headers, "Location": reply.location, **JSON_HEADERS, **reply.headers}
        return flask.Response(status=reply.status, headers=all_headers)
    all_headers = {**headers, **reply.headers}
    if reply.body is None:
        return flask.Response(status=reply.status, headers=all_headers)
    data = json.dumps(reply.body, default=json_default, ensure_ascii=False).encode()
    sent.bytes = len(data)
    all_headers.update(JSON_HEADERS)
    if reply.status == Code.PAYLOAD_TOO_LARGE.http_status:
        # Not read to its end: functions-framework drains a request's whole body before any
        # non-streamed response, so this one is streamed (the server drains a little of what is
        # left, within its own bounds, before it reuses the connection, else it closes it).
        return flask.Response(iter([data]), status=reply.status, headers=all_headers, content_type=JSON_TYPE)
    return flask.Response(data, status=reply.status, headers=all_headers, content_type=JSON_TYPE)


def _counted(chunks: Iterator[bytes], sent: Sent) -> Iterator[bytes]:
    """The stream's chunks, counted; a producer that fails mid-stream is logged and ends it."""
    try:
        for chunk in chunks:
            sent.bytes += len(chunk)
            yield chunk
    except GeneratorExit:
        raise  # the server closed the response (the client went away): the producer is closed below
    except Exception:
        logger.exception("stream failed after it started")
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
