"""The HTTP edge shared by every function: routing, auth, bodies, replies, CORS, errors, request logs.

A function builds one `Router`, registers its routes, and hands `router.dispatch` the Flask
request that functions-framework gives it. Everything a route needs arrives in a `Context`;
what it returns is a `Reply` (JSON), a `StreamReply` (a generator of bytes) or a
`RedirectReply`. The request's log line is written when the response closes.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from pydantic import BaseModel, ValidationError

from common import idempotency, limits, log
from common.auth import Anyone, Authenticator, FirebaseUser, User
from common.errors import ApiError, Code
from common.settings import Settings, get_settings
from common.store import Repository

if TYPE_CHECKING:
    import flask
    from werkzeug.datastructures import FileStorage

logger = log.get_logger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
# Ids the server hands out (Firestore auto ids, Firebase uids); Firestore reserves __x__ ids.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
_SEGMENT = re.compile(r"\{(\w+)\}")
# Every JSON answer: never cached, never sniffed as something else.
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

M = TypeVar("M", bound=BaseModel)


# -- replies ---------------------------------------------------------------------------------


class PageOf(Protocol):
    """A page of stored objects (store.Page of public models)."""

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


# -- what a route gets -----------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A multipart/form-data body: its text fields and its files."""

    fields: Mapping[str, str]
    files: Mapping[str, FileStorage]


@dataclass
class Context:
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
        """The caller's repository, one per request (an idempotency key's record rides on it)."""
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
        data, decoded = self._json_body(optional=optional)
        return _validated(model, data, decoded)

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

    def body_digest(self) -> bytes:
        """The body as a request's identity (its idempotency fingerprint): the raw bytes, or for a
        form its fields and files, which arrive in a different framing on each retry."""
        if self.request.mimetype != "multipart/form-data":
            return self.body_bytes()
        upload = self.upload()
        digest = hashlib.sha256()
        for name in sorted(upload.fields):
            digest.update(f"field\0{name}\0{upload.fields[name]}\0".encode())
        for name in sorted(upload.files):
            file = upload.files[name]
            digest.update(f"file\0{name}\0{file.filename}\0".encode())
            digest.update(hashlib.sha256(file.read()).digest())
            file.seek(0)
        return digest.digest()

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

    def _json_body(self, *, optional: bool) -> tuple[bytes, dict[str, Any]]:
        """The body, and its JSON object decoded."""
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
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            raise ApiError(Code.INVALID_ARGUMENT, "The body is not valid JSON.") from None
        if not isinstance(parsed, dict):
            raise ApiError(Code.INVALID_ARGUMENT, "The body must be a JSON object.")
        return data, parsed


R = TypeVar("R")


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


# What a multipart form adds around a file of the largest size.
UPLOAD_OVERHEAD = 64 * 1024


def _too_large(limit: int) -> ApiError:
    return ApiError(Code.PAYLOAD_TOO_LARGE, f"The request body is larger than {limit} bytes.")


# -- validation errors -----------------------------------------------------------------------


MAX_DETAILS = 20  # an error answer lists at most this many bad fields, and says how many more
# Values (object members and list items, nested ones too) one JSON body may hold: the largest
# valid body, a customer with every list full, holds about 700.
MAX_VALUES = 5_000


def parse_json(model: type[M], body: bytes) -> M:
    """Validate a JSON body against `model`, or raise one 400 naming the bad fields.

    What a body can make the validation do is bounded first, cheaply: a body holding more
    values than any object takes is refused after the JSON parse, and so is one with more
    unknown top-level fields than an answer lists, so thousands of bad keys cost a parse, not a
    validation error each.
    """
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        decoded = None  # the validation below says what is wrong with it
    return _validated(model, body, decoded)


def _validated(model: type[M], body: bytes, decoded: Any) -> M:
    """`parse_json` with the body decoded already (None: it does not decode)."""
    if _holds_more_than(decoded, MAX_VALUES):
        raise ApiError(
            Code.INVALID_ARGUMENT, f"The request holds more than {MAX_VALUES} values; no object takes that many."
        )
    if isinstance(decoded, dict) and model.model_config.get("extra") == "forbid":
        known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
        unknown = [name for name in decoded if name not in known]
        if len(unknown) > MAX_DETAILS:  # fewer are named by the validation, with every other bad field
            details = [
                _detail(model, {"loc": (name,), "msg": "", "type": "extra_forbidden"})
                for name in unknown[: MAX_DETAILS + 1]
            ]
            raise _invalid(details, len(unknown))
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise _invalid(
            [_detail(model, e) for e in error.errors(include_url=False)[: MAX_DETAILS + 1]], error.error_count()
        ) from None


def _holds_more_than(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value holds more than `limit` values (keys and items), nested ones included."""
    pending, seen = [value], 0
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            current = current.values()
        elif not isinstance(current, list):
            continue
        for item in current:
            seen += 1
            if seen > limit:
                return True
            if isinstance(item, (dict, list)):
                pending.append(item)
    return False


def _invalid(details: list[dict[str, str]], count: int | None = None) -> ApiError:
    count = len(details) if count is None else count
    message = "The request has invalid fields."
    if count > MAX_DETAILS:
        message = f"The request has {count} invalid fields; the first {MAX_DETAILS} are listed."
    return ApiError(Code.INVALID_ARGUMENT, message, details[:MAX_DETAILS])


def parse_value(model: type[M], value: Any) -> M:
    """Validate an already-decoded value (an agent tool's input, say) like a JSON body."""
    return parse_json(model, json.dumps(value).encode())


def _detail(model: type[BaseModel], error: Any) -> dict[str, str]:
    location = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        top = str(error["loc"][0]) if error["loc"] else ""
        server_owned: Callable[[], frozenset[str]] | None = getattr(model, "server_owned", None)
        message = (
            "is set by the server and cannot be written"
            if server_owned is not None and top in server_owned()
            else "is not a field of this object"
        )
    if ": " in message and not location.count("."):
        # A model-level rule that names its field: "name: may not be null"
        named, _, rest = message.partition(": ")
        if re.fullmatch(r"\w+", named):
            location, message = ".".join(p for p in (location, named) if p), rest
    return {"field": location or "body", "message": message}


# -- routing ---------------------------------------------------------------------------------

RouteHandler = Callable[..., AnyReply]
ANY_QUERY = None  # a route that accepts any query parameter (health checks)
FIREBASE = FirebaseUser()
PUBLIC = Anyone()


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: RouteHandler
    auth: Authenticator
    query: frozenset[str] | None  # None: any parameter
    regex: re.Pattern[str]
    idempotent: idempotency.Replay | None = None  # takes Idempotency-Key; answers a committed effect so

    @property
    def check_revoked(self) -> bool:
        return self.auth.check_revoked


class Router:
    """Matches a request to a route; the one place requests are authenticated and errors shaped."""

    def __init__(self, name: str, on_authenticated: Callable[[User], None] | None = None) -> None:
        self.name = name
        self.routes: list[Route] = []
        self.on_authenticated = on_authenticated
        self.route("GET", "/healthz", auth=PUBLIC, query=ANY_QUERY)(lambda ctx: Reply({"status": "ok"}))

    def route(
        self,
        method: str,
        pattern: str,
        *,
        query: Iterable[str] | None = (),
        auth: Authenticator = FIREBASE,
        idempotent: idempotency.Replay | None = None,
    ) -> Callable[[RouteHandler], RouteHandler]:
        """Register a handler for `method pattern`; `query` names the parameters it accepts;
        `idempotent` makes it take an Idempotency-Key, and answers a retry that finds the first
        request's effect stored but not its answer (it gets the written document's path)."""
        regex = re.compile("^" + _SEGMENT.sub(lambda m: f"(?P<{m.group(1)}>{ID_PATTERN})", pattern) + r"/?\Z")
        accepted = None if query is None else frozenset(query)

        def register(handler: RouteHandler) -> RouteHandler:
            self.routes.append(Route(method, pattern, handler, auth, accepted, regex, idempotent))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self.routes:
            found = route.regex.match(path)
            if not found:
                continue
            if route.method == method:
                return route, found.groupdict()
            allowed.append(route.method)
        if allowed:
            raise MethodNotAllowedError(allowed)
        raise ApiError(Code.NOT_FOUND, f"No route for {path}.")

    def _reply(self, ctx: Context) -> AnyReply:
        """The route's reply, or the error's; unexpected exceptions propagate."""
        from werkzeug.exceptions import HTTPException

        request = ctx.request
        try:
            if request.method == "OPTIONS":
                return Reply(None, 204, _preflight_headers(request, ctx.settings))
            route, params = self.match(request.method, request.path)
            ctx.user = route.auth.authenticate(request)
            if ctx.user is not None:
                limits.take(ctx.user.uid)
                if self.on_authenticated is not None:
                    self.on_authenticated(ctx.user)
            ctx.allowed_query = route.query
            ctx.query()  # an undeclared parameter is a 400 on every route that declares its own
            key = request.headers.get(idempotency.HEADER)
            if route.idempotent is not None and key is not None:
                return _once(ctx, route, params, idempotency.validate(key))
            reply = route.handler(ctx, **params)
            if isinstance(reply, StreamReply):
                reply = _started(reply)
            return reply
        except MethodNotAllowedError as error:
            reply = _error_reply(error)
            reply.headers["Allow"] = ", ".join(sorted(set(error.allowed)))
            return reply
        except ApiError as error:
            return _error_reply(error)
        except HTTPException as error:  # werkzeug's own (body limits, malformed forms): ours, once
            return _error_reply(_from_werkzeug(error))

    def dispatch(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        settings = get_settings()
        request_id = _request_id()
        trace = _trace(request, settings.project_id)
        log.request_id_var.set(request_id)
        log.trace_var.set(trace)
        ctx = Context(request=request, settings=settings, request_id=request_id)
        headers = {"X-Request-Id": request_id, **_cors_headers(request, settings)}
        sent = _Sent()
        try:
            response = _to_response(self._reply(ctx), headers, sent)
        except Exception:
            logger.exception("unhandled error")
            response = _to_response(_error_reply(ApiError(Code.INTERNAL, "Internal error.")), headers, sent)
        if response.status_code == Code.PAYLOAD_TOO_LARGE.http_status:
            response.response = _then_discard(cast(Iterable[bytes], response.response), request)
        entry = _RequestLog(request, started, ctx.user, request_id, trace, response.status_code, sent)
        response.call_on_close(entry.write)
        return response


def function_router(name: str, on_authenticated: Callable[[User], None] | None = None) -> Router:
    """The router of one function entry point; configures the instance once."""
    import functions_framework
    from werkzeug.exceptions import NotFound

    log.configure_logging(get_settings().log_level)
    # A path the framework's own catch-all route cannot match (a line break in it) never
    # reaches a router: answer it in the contract's shape too.
    functions_framework.errorhandler(NotFound)(_unroutable)
    return Router(name, on_authenticated)


def _unroutable(_: Exception) -> flask.Response:
    return _to_response(_error_reply(ApiError(Code.NOT_FOUND, "No such route.")), {}, _Sent())


class MethodNotAllowedError(ApiError):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(Code.METHOD_NOT_ALLOWED, "Method not allowed on this route.")
        self.allowed = allowed


_WERKZEUG_CODES = {
    400: (Code.INVALID_ARGUMENT, "The request could not be read."),
    404: (Code.NOT_FOUND, "No such route."),
    405: (Code.METHOD_NOT_ALLOWED, "Method not allowed on this route."),
    413: (Code.PAYLOAD_TOO_LARGE, "The request body is too large."),
    415: (Code.UNSUPPORTED_MEDIA_TYPE, "This Content-Type is not accepted here."),
}


def _from_werkzeug(error: Any) -> ApiError:
    code, message = _WERKZEUG_CODES.get(error.code or 400, _WERKZEUG_CODES[400])
    return ApiError(code, message)


def stored_object(get: Callable[[Repository, str], BaseModel], status: int) -> idempotency.Replay:
    """What a retry answers when its first attempt stored an object but not the answer: the
    object, read back by `get` (the route's own loader) with the route's status."""

    def answer(repo: Repository, path: str) -> tuple[int, dict[str, str], Any]:
        reply = Reply.resource(get(repo, path.rsplit("/", 1)[-1]), status)
        return reply.status, reply.headers, reply.body

    return answer


def _once(ctx: Context, route: Route, params: dict[str, str], key: str) -> AnyReply:
    """A route run under an Idempotency-Key: once, whatever the retries (`common.idempotency`)."""
    assert route.idempotent is not None
    request = ctx.request
    fingerprint = idempotency.fingerprint(request.method, request.path, ctx.body_digest())
    claimed = idempotency.begin(ctx.repo, key, fingerprint, route.idempotent)
    if isinstance(claimed, idempotency.Stored):
        return Reply(claimed.body, claimed.status, {**claimed.headers, idempotency.REPLAYED: "true"})
    try:
        reply = route.handler(ctx, **params)
    except ApiError as error:
        reply = _error_reply(error)
    except BaseException:
        idempotency.abandon(claimed)
        raise
    if not isinstance(reply, Reply):
        idempotency.abandon(claimed)
        return reply
    idempotency.finish(claimed, reply.status, reply.headers, reply.body)
    return reply


def _started(reply: StreamReply) -> StreamReply:
    """The stream with its first chunk produced: what fails before it is still a JSON error."""
    try:
        first = next(reply.chunks)
    except StopIteration:
        first = b""
    rest = reply.chunks

    def chunks() -> Iterator[bytes]:
        try:
            yield first
            yield from rest
        finally:
            close = getattr(rest, "close", None)
            if close is not None:
                close()

    return StreamReply(chunks(), reply.content_type, reply.status, reply.headers)


def _error_reply(error: ApiError) -> Reply:
    return Reply(error.to_body(), error.code.http_status, dict(error.headers))


# -- responses -------------------------------------------------------------------------------


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass
class _Sent:
    """Bytes of body sent so far, counted as the server takes them."""

    bytes: int = 0


def _to_response(reply: AnyReply, headers: dict[str, str], sent: _Sent) -> flask.Response:
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


# A refused body is read on only this far, and for this long: enough for a client that sends
# its whole body before it reads the answer to see the 413 when the body is a little too
# large; bounded so that neither a huge body nor a stalled client holds the thread.
DISCARD_LIMIT = 2 * 1024 * 1024
DISCARD_SECONDS = 2.0


def _then_discard(body: Iterable[bytes], request: flask.Request) -> Iterator[bytes]:
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


def _counted(chunks: Iterator[bytes], sent: _Sent) -> Iterator[bytes]:
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


def _request_id() -> str:
    """Our own id for each request: a caller's X-Request-Id is logged beside it, never taken for
    it, so no caller can make its log lines pass for another request's."""
    return uuid.uuid4().hex


def _caller_ids(request: flask.Request) -> dict[str, str]:
    """The ids the caller sent (request id, trace headers), as they came, cut to a sane length."""
    sent = {
        "callerRequestId": request.headers.get("X-Request-Id"),
        "callerTraceparent": request.headers.get("traceparent"),
        "callerCloudTraceContext": request.headers.get("X-Cloud-Trace-Context"),
    }
    return {name: value[:200] for name, value in sent.items() if value}


def _trace(request: flask.Request, project_id: str) -> str | None:
    # traceparent (W3C) first, then Google's own header: TRACE_ID/SPAN_ID;o=1
    parent = request.headers.get("traceparent", "")
    match = re.fullmatch(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}", parent)
    trace_id = match.group(1) if match else None
    if trace_id is None:
        context = request.headers.get("X-Cloud-Trace-Context", "")
        match = re.match(r"([0-9a-fA-F]{32})", context)
        trace_id = match.group(1) if match else None
    return f"projects/{project_id}/traces/{trace_id}" if trace_id else None


def _cors_headers(request: flask.Request, settings: Settings) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if not origin or origin not in settings.cors_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": "ETag, X-Request-Id, Idempotent-Replayed",
        "Vary": "Origin",
    }


def _preflight_headers(request: flask.Request, settings: Settings) -> dict[str, str]:
    if not _cors_headers(request, settings):
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, X-Request-Id, Idempotency-Key",
        "Access-Control-Max-Age": "3600",
    }


@dataclass
class _RequestLog:
    """The request's log line, written when the response closes: the real status, the bytes
    sent and the whole duration, a stream's included."""

    request: flask.Request
    started: float
    user: User | None
    request_id: str
    trace: str | None
    status: int
    sent: _Sent

    def write(self) -> None:
        # Written from the server's close of the response: the request's context is set again.
        log.request_id_var.set(self.request_id)
        log.trace_var.set(self.trace)
        latency = time.perf_counter() - self.started
        fields: dict[str, Any] = {
            **_caller_ids(self.request),
            "httpRequest": {
                "requestMethod": self.request.method,
                "requestUrl": self.request.path,
                "status": self.status,
                "responseSize": str(self.sent.bytes),
                "userAgent": self.request.headers.get("User-Agent", ""),
                "latency": f"{latency:.6f}s",
            },
        }
        if self.user is not None:
            fields["uid"] = self.user.uid
        level = 40 if self.status >= 500 else 20
        logger.log(level, f"{self.request.method} {self.request.path} {self.status}", extra={"fields": fields})
