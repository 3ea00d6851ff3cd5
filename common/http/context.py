"""What a route gets: its request, its caller, and the query, body or upload read within limits.

Bodies are read once and bounded as they are read (413 beyond the limit, 400 for one that
cannot be read); a JSON body is validated against the route's model (`common.validation`).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from common.auth import User
from common.errors import ApiError, Code
from common.settings import Settings
from common.store import Repository
from common.validation import check_value_count, parse_decoded

if TYPE_CHECKING:
    import flask
    from werkzeug.datastructures import FileStorage

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

# What a multipart form adds around a file of the largest size.
UPLOAD_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class Upload:
    """A multipart/form-data body: its text fields and its files."""

    fields: Mapping[str, str]
    files: Mapping[str, FileStorage]


@dataclass
class Context:
    """One request as its route sees it: the caller (once authenticated), and the body read once."""

    request: flask.Request
    settings: Settings
    request_id: str
    user: User | None = None
    allowed_query: frozenset[str] | None = frozenset()  # None: any parameter
    _query: dict[str, str] | None = None
    _body: bytes | None = None
    _upload: Upload | None = None
    _repo: Repository | None = None

    @property
    def repo(self) -> Repository:
        """The caller's repository, one per request."""
        if self._repo is None:
            self._repo = Repository(self.uid)
        return self._repo

    @property
    def uid(self) -> str:
        if self.user is None:  # only routes without a user lack one, and they never ask
            raise ApiError(Code.UNAUTHENTICATED, "A valid Firebase ID token is required.")
        return self.user.uid

    def query(self) -> dict[str, str]:
        """The query parameters, refusing any the route does not declare (judged once)."""
        if self._query is not None:
            return self._query
        args = self.request.args
        if self.allowed_query is not None:
            unknown = sorted(set(args) - self.allowed_query)
            if unknown:
                raise ApiError(
                    Code.INVALID_ARGUMENT,
                    f"Unknown query parameter: {', '.join(unknown)}.",
                    [{"field": name, "message": "unknown query parameter"} for name in unknown],
                )
            repeated = sorted(name for name in args if len(args.getlist(name)) > 1)
            if repeated:
                raise ApiError(
                    Code.INVALID_ARGUMENT,
                    f"Query parameter given more than once: {', '.join(repeated)}.",
                    [{"field": name, "message": "given more than once"} for name in repeated],
                )
        self._query = {key: args.get(key, "") for key in args}
        return self._query

    def parse(self, model: type[M], *, optional: bool = False) -> M:
        """The JSON body validated against `model`; `optional` lets an empty body stand for `{}`."""
        data, decoded = self._json_body(model, optional=optional)
        return parse_decoded(model, data, decoded)

    def body_bytes(self, limit: int | None = None) -> bytes:
        """The raw body, refusing more than `limit` bytes without reading them all."""
        if self._body is not None:
            return self._body
        limit = self.settings.max_body_bytes if limit is None else limit
        length = self.request.content_length
        if length is not None and length > limit:
            raise _too_large(limit)
        data = _read_body(lambda: self.request.stream.read(limit + 1))
        if len(data) > limit:
            raise _too_large(limit)
        self._body = data
        return data

    def upload(self, limit: int | None = None) -> Upload:
        """A multipart/form-data body, its size limited while it is read (413 beyond `limit`)."""
        if self._upload is not None:
            return self._upload
        limit = self.settings.max_upload_bytes + UPLOAD_OVERHEAD if limit is None else limit
        if self.request.mimetype != "multipart/form-data":
            raise ApiError(
                Code.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type must be multipart/form-data, got {self.request.mimetype or 'none'}.",
            )
        length = self.request.content_length
        if length is not None and length > limit:
            raise _too_large(limit)
        # Werkzeug's parser reads through a stream that raises RequestEntityTooLarge past the
        # limit (chunked bodies included); the router turns that into our 413.
        self.request.max_content_length = limit
        fields = _read_body(lambda: self.request.form)
        files = _read_body(lambda: self.request.files)
        self._upload = Upload({key: fields[key] for key in fields}, {key: files[key] for key in files})
        return self._upload

    def client_gone(self) -> Callable[[], bool]:
        """A check, cheap enough to call often, of whether the client has closed its connection.

        A WSGI server only notices a closed connection when a write fails; a stream that is
        silent for a while asks the socket itself (a peek that reads nothing means it was
        closed). Without access to the socket, the check never says gone.
        """
        sock = self.request.environ.get("gunicorn.socket") or self.request.environ.get("werkzeug.socket")
        if not isinstance(sock, socket.socket):
            return lambda: False

        def gone() -> bool:
            try:
                return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        return gone

    def if_match(self) -> int | None:
        """The version in an If-Match header, if any (`"3"`, `3` or `W/"3"`; `*` matches any)."""
        raw = self.request.headers.get("If-Match")
        if raw is None:
            return None
        value = raw.strip()
        if value == "*":  # any current version: the object only has to exist
            return None
        if value.startswith("W/"):
            value = value[2:]
        value = value.strip('"')
        if not re.fullmatch(r"[0-9]{1,18}", value):
            raise ApiError(Code.INVALID_ARGUMENT, "If-Match must be an ETag from a previous response.")
        return int(value)

    def _json_body(self, model: type[BaseModel], *, optional: bool) -> tuple[bytes, dict[str, Any]]:
        """The body, and its JSON object decoded once it holds no more values than `model` takes."""
        data = self.body_bytes()
        if not data.strip():
            if optional:
                return b"{}", {}
            raise ApiError(Code.INVALID_ARGUMENT, "A JSON object body is required.")
        mimetype = self.request.mimetype
        if mimetype != "application/json":
            raise ApiError(
                Code.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type must be application/json, got {mimetype or 'none'}.",
            )
        check_value_count(model, data)
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            raise ApiError(Code.INVALID_ARGUMENT, "The body is not valid JSON.") from None
        if not isinstance(parsed, dict):
            raise ApiError(Code.INVALID_ARGUMENT, "The body must be a JSON object.")
        return data, parsed


def _broken_body_errors() -> tuple[type[Exception], ...]:
    """What reading a body broken off or badly chunked raises, under any server."""
    try:  # gunicorn (the Functions Framework's server) parses chunks itself
        from gunicorn.http.errors import ParseException
    except ImportError:
        return (OSError, ValueError)
    return (OSError, ValueError, ParseException)


def _read_body(read: Callable[[], R]) -> R:
    """Reading the body: a client that breaks it off, or sends broken chunks, is a 400."""
    from werkzeug.exceptions import HTTPException

    try:
        return read()
    except HTTPException:
        raise  # RequestEntityTooLarge and the like: translated by the router
    except _broken_body_errors():
        raise ApiError(Code.INVALID_ARGUMENT, "The request body could not be read.") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(Code.PAYLOAD_TOO_LARGE, f"The request body is larger than {limit} bytes.")


# A refused body is read on only this far, and for this long: enough for a client that sends
# its whole body before it reads the answer to see the 413 when the body is a little too
# large; bounded so that neither a huge body nor a stalled client holds the thread.
DISCARD_LIMIT = 2 * 1024 * 1024
DISCARD_SECONDS = 2.0


def then_discard(body: Iterable[bytes], request: flask.Request) -> Iterator[bytes]:
    """The 413's body, sent before what is left of the refused body is (partly) read and dropped."""
    yield from body
    _discard_some_body(request)


def _discard_some_body(request: flask.Request) -> None:
    stream = request.environ.get("wsgi.input")
    sock = request.environ.get("gunicorn.socket")
    if stream is None or not isinstance(sock, socket.socket):
        return  # only under the real server: elsewhere the input may not end where the body does
    previous = sock.gettimeout()
    deadline = time.monotonic() + DISCARD_SECONDS
    left = DISCARD_LIMIT
    try:
        while left > 0:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = stream.read(min(65536, left))
            if not chunk or time.monotonic() > deadline:
                return
            left -= len(chunk)
    except _broken_body_errors():
        return
    finally:
        sock.settimeout(previous)
