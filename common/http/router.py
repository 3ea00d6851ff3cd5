"""Routing: a request matched to its route, its caller authenticated and rate-limited, and every
refusal answered in the contract's shape, here and only here.

A function builds one `Router` (`function_router`), registers its routes, and hands
`router.dispatch` the Flask request that functions-framework gives it. Errors of the API
(`ApiError`), of validation (`InvalidInputError`) and of werkzeug's body limits become answers in
`_answered`; anything else is logged and answered 500 INTERNAL, nothing more.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from common import limits, log
from common.auth import Anyone, Authenticator, FirebaseUser, User
from common.errors import ApiError, Code, NotFoundError
from common.http import access
from common.http.context import Context, then_discard
from common.http.replies import AnyReply, Reply, Sent, StreamReply, to_response
from common.settings import get_settings
from common.store import Companion
from common.validation import ID_PATTERN, InvalidInputError

if TYPE_CHECKING:
    import flask

logger = log.get_logger(__name__)

_SEGMENT = re.compile(r"\{(\w+)\}")

RouteHandler = Callable[..., AnyReply]
ANY_QUERY = None  # a route that accepts any query parameter (health checks)
FIREBASE = FirebaseUser()
PUBLIC = Anyone()


class Guard(Protocol):
    """What a route's `idempotent=` takes (`common.idempotency.Replay`): it runs the route's
    handler, giving it the write its effect is to be stored with (`along`), at most once per
    Idempotency-Key, and answers a repeat itself."""

    def __call__(self, ctx: Context, run: Callable[[Companion | None], AnyReply]) -> AnyReply: ...


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: RouteHandler
    auth: Authenticator
    query: frozenset[str] | None  # None: any parameter
    regex: re.Pattern[str]
    idempotent: Guard | None = None  # takes Idempotency-Key; its handler takes `along`

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
        idempotent: Guard | None = None,
    ) -> Callable[[RouteHandler], RouteHandler]:
        """Register a handler for `method pattern`; `query` names the parameters it accepts;
        `idempotent` makes it take an Idempotency-Key: its handler is then called with `along`,
        the write (or None, without a key) that its effect's own write must carry."""
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
        raise NotFoundError(f"No route for {path}.")

    def _reply(self, ctx: Context) -> AnyReply:
        """The route's reply; unexpected exceptions propagate."""
        request = ctx.request
        if request.method == "OPTIONS":
            return Reply(None, 204, access.preflight_headers(request, ctx.settings))
        route, params = self.match(request.method, request.path)
        ctx.user = route.auth.authenticate(request)
        if ctx.user is not None:
            limits.take(ctx.user.uid)
            if self.on_authenticated is not None:
                self.on_authenticated(ctx.user)
        ctx.allowed_query = route.query
        ctx.query()  # an undeclared parameter is a 400 on every route that declares its own
        if route.idempotent is not None:
            # The guard sees the handler's refusals as the answers they are (kept, or not).
            reply = route.idempotent(ctx, lambda along: _answered(lambda: route.handler(ctx, along=along, **params)))
        else:
            reply = route.handler(ctx, **params)
        if isinstance(reply, StreamReply):
            reply = _started(reply)
        return reply

    def dispatch(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        settings = get_settings()
        request_id = access.request_id()
        trace = access.trace(request, settings.project_id)
        log.request_id_var.set(request_id)
        log.trace_var.set(trace)
        ctx = Context(request=request, settings=settings, request_id=request_id)
        headers = {"X-Request-Id": request_id, **access.cors_headers(request, settings)}
        sent = Sent()
        try:
            response = to_response(_answered(lambda: self._reply(ctx)), headers, sent)
        except Exception:
            logger.exception("unhandled error")
            response = to_response(Reply.error(ApiError(Code.INTERNAL, "Internal error.")), headers, sent)
        if response.status_code == Code.PAYLOAD_TOO_LARGE.http_status:
            response.response = then_discard(cast(Iterable[bytes], response.response), request)
        entry = access.RequestLog(request, started, ctx.user, request_id, trace, response.status_code, sent)
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
    return to_response(Reply.error(NotFoundError("No such route.")), {}, Sent())


class MethodNotAllowedError(ApiError):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(Code.METHOD_NOT_ALLOWED, "Method not allowed on this route.")
        self.allowed = allowed


def _answered(call: Callable[[], AnyReply]) -> AnyReply:
    """What `call` answers, or the contract's answer to what it refused: the one place where the
    API's errors, validation's and werkzeug's become replies. Anything else propagates."""
    from werkzeug.exceptions import HTTPException

    try:
        return call()
    except MethodNotAllowedError as error:
        reply = Reply.error(error)
        reply.headers["Allow"] = ", ".join(sorted(set(error.allowed)))
        return reply
    except ApiError as error:
        return Reply.error(error)
    except InvalidInputError as error:
        return Reply.error(ApiError(Code.INVALID_ARGUMENT, error.message, error.details))
    except HTTPException as error:  # werkzeug's own (body limits, malformed forms): ours, once
        return Reply.error(_from_werkzeug(error))


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
