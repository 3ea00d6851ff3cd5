"""The HTTP edge shared by every function: routing, auth, bodies, CORS, errors, request logs.

A function builds one `Router`, registers its routes, and hands `router.dispatch` the Flask
request that functions-framework gives it. Everything a route needs arrives in a `Context`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from common import log
from common.auth import User, authenticate
from common.errors import ApiError, Code
from common.models import ID_PATTERN
from common.settings import Settings, get_settings

if TYPE_CHECKING:
    import flask

logger = log.get_logger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
_SEGMENT = re.compile(r"\{(\w+)\}")


@dataclass
class Reply:
    """What a route returns: a status, a JSON body (or none) and extra headers."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resource(cls, document: Mapping[str, Any], status: int = 200) -> Reply:
        """A single object, with its version as the ETag."""
        return cls(dict(document), status, {"ETag": f'"{document["version"]}"'})

    @classmethod
    def no_content(cls) -> Reply:
        return cls(None, 204)


@dataclass
class Context:
    request: flask.Request
    settings: Settings
    request_id: str
    user: User | None = None
    allowed_query: frozenset[str] = frozenset()
    _query: dict[str, str] | None = None

    @property
    def uid(self) -> str:
        if self.user is None:  # only public routes lack a user, and they never ask
            raise ApiError(Code.UNAUTHENTICATED, "A valid Firebase ID token is required.")
        return self.user.uid

    def query(self) -> dict[str, str]:
        """The query parameters, refusing any the route does not declare (judged once)."""
        if self._query is not None:
            return self._query
        args = self.request.args
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

    def body_bytes(self, limit: int | None = None) -> bytes:
        """The raw body, refusing more than `limit` bytes before reading it."""
        limit = self.settings.max_body_bytes if limit is None else limit
        length = self.request.content_length
        if length is not None and length > limit:
            raise _too_large(limit)
        data = self.request.stream.read(limit + 1)
        if len(data) > limit:
            raise _too_large(limit)
        return data

    def json_body(self, *, optional: bool = False) -> bytes:
        """The body as JSON text (validated by the route's model), checked for type and shape."""
        data = self.body_bytes()
        if not data.strip():
            if optional:
                return b"{}"
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
        return data

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


def _too_large(limit: int) -> ApiError:
    return ApiError(Code.PAYLOAD_TOO_LARGE, f"The request body is larger than {limit} bytes.")


RouteHandler = Callable[..., Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: RouteHandler
    public: bool
    check_revoked: bool
    query: frozenset[str]
    regex: re.Pattern[str]


class Router:
    """Matches a request to a route; the one place requests are authenticated and errors shaped."""

    def __init__(self, name: str, on_authenticated: Callable[[User], None] | None = None) -> None:
        self.name = name
        self.routes: list[Route] = []
        self.on_authenticated = on_authenticated
        self.route("GET", "/healthz", public=True)(lambda ctx: Reply({"status": "ok"}))

    def route(
        self,
        method: str,
        pattern: str,
        *,
        query: Iterable[str] = (),
        public: bool = False,
        check_revoked: bool = False,
    ) -> Callable[[RouteHandler], RouteHandler]:
        """Register a handler for `method pattern`; `query` names the parameters it accepts."""
        regex = re.compile("^" + _SEGMENT.sub(lambda m: f"(?P<{m.group(1)}>{ID_PATTERN})", pattern) + r"/?\Z")

        def register(handler: RouteHandler) -> RouteHandler:
            self.routes.append(Route(method, pattern, handler, public, check_revoked, frozenset(query), regex))
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

    def _reply(self, ctx: Context) -> Reply:
        """The route's reply, or the error's; unexpected exceptions propagate."""
        request = ctx.request
        try:
            if request.method == "OPTIONS":
                return Reply(None, 204, _preflight_headers(request, ctx.settings))
            route, params = self.match(request.method, request.path)
            if not route.public:
                ctx.user = authenticate(request.headers.get("Authorization"), check_revoked=route.check_revoked)
                if self.on_authenticated is not None:
                    self.on_authenticated(ctx.user)
                ctx.allowed_query = route.query
                ctx.query()  # an unknown parameter is a 400 on every authenticated route
            return route.handler(ctx, **params)
        except MethodNotAllowedError as error:
            reply = _error_reply(error)
            reply.headers["Allow"] = ", ".join(sorted(set(error.allowed)))
            return reply
        except ApiError as error:
            return _error_reply(error)

    def dispatch(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        settings = get_settings()
        request_id = _request_id(request)
        log.request_id_var.set(request_id)
        log.trace_var.set(_trace(request, settings.project_id))
        ctx = Context(request=request, settings=settings, request_id=request_id)
        headers = {"X-Request-Id": request_id, **_cors_headers(request, settings)}
        try:
            response = _to_response(self._reply(ctx), headers)
        except Exception:
            logger.exception("unhandled error")
            response = _to_response(_error_reply(ApiError(Code.INTERNAL, "Internal error.")), headers)
        _log_request(request, response.status_code, started, ctx.user)
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
    return _to_response(_error_reply(ApiError(Code.NOT_FOUND, "No such route.")), {})


class MethodNotAllowedError(ApiError):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(Code.METHOD_NOT_ALLOWED, "Method not allowed on this route.")
        self.allowed = allowed


def _error_reply(error: ApiError) -> Reply:
    return Reply(error.to_body(), error.code.http_status)


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _to_response(reply: Reply, headers: dict[str, str]) -> flask.Response:
    import flask

    all_headers = {**headers, **reply.headers}
    if reply.body is None:
        return flask.Response(status=reply.status, headers=all_headers)
    text = json.dumps(reply.body, default=json_default, ensure_ascii=False)
    return flask.Response(text, status=reply.status, headers=all_headers, content_type=JSON_TYPE)


def _request_id(request: flask.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    if re.fullmatch(r"[A-Za-z0-9._-]{8,128}", given):
        return given
    return uuid.uuid4().hex


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
        "Access-Control-Expose-Headers": "ETag, X-Request-Id",
        "Vary": "Origin",
    }


def _preflight_headers(request: flask.Request, settings: Settings) -> dict[str, str]:
    if not _cors_headers(request, settings):
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, X-Request-Id",
        "Access-Control-Max-Age": "3600",
    }


def _log_request(request: flask.Request, status: int, started: float, user: User | None) -> None:
    latency = time.perf_counter() - started
    fields: dict[str, Any] = {
        "httpRequest": {
            "requestMethod": request.method,
            "requestUrl": request.path,
            "status": status,
            "userAgent": request.headers.get("User-Agent", ""),
            "latency": f"{latency:.6f}s",
        }
    }
    if user is not None:
        fields["uid"] = user.uid
    level = 40 if status >= 500 else 20
    logger.log(level, f"{request.method} {request.path} {status}", extra={"fields": fields})
