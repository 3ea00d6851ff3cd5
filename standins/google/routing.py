"""One request to the Google stand-in: its `Call`, the `Route` that serves it, and what happens
around every handler: the bearer token and the method's scopes checked as Google's front end
checks them, and the failures the control API asked for injected before or after the effect.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

from standins.google.scopes import METHOD_SCOPES
from standins.google.state import AccessToken, Account, FailureRule, GoogleState
from standins.google.wire import Reply, StandinError, api_error, consent_page_error, oauth_error

_CREDENTIALS_HINT = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message  # case-insensitive get(), as http.server parses them
    body: bytes
    state: GoogleState
    params: dict[str, str] = field(default_factory=dict)
    token: AccessToken | None = None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> dict[str, Any]:
        try:
            payload = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise api_error(400, f"Invalid JSON payload received. {exc}", "parseError") from exc
        if not isinstance(payload, dict):
            raise api_error(400, "Invalid JSON payload received. Expected an object.", "parseError")
        return payload

    def form(self) -> dict[str, str]:
        """The token endpoint's fields: form-encoded as RFC 6749 says, or JSON as Google also takes."""
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            try:
                payload = json.loads(self.body or b"{}")
            except ValueError:
                return {}
            return {k: str(v) for k, v in payload.items()} if isinstance(payload, dict) else {}
        fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in fields.items()}

    @property
    def account(self) -> Account:
        assert self.token is not None, "route without a bearer token"
        return self.state.account(self.token.email)


Handler = Callable[[Call], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    api: str | None  # None: control routes, neither logged nor failure-injectable
    handle: Handler
    bearer: bool = False


def route(method: str, pattern: str, handle: Handler, api: str | None = None, *, bearer: bool = False) -> Route:
    """`handle` serves `method` on paths matching `pattern`; `api` names the method as Google's
    discovery documents do (None: the control API), `bearer` that it takes an access token."""
    return Route(method, re.compile(pattern), api, handle, bearer)


def authenticate(call: Call, api: str) -> None:
    """Checks the bearer token and the method's scopes exactly as Google's front end answers."""
    header = call.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    realm = 'Bearer realm="https://accounts.google.com/"'
    if not header:
        raise api_error(
            401,
            "Request is missing required authentication credential. " + _CREDENTIALS_HINT,
            "required",
            detail="Login Required.",
            headers={"WWW-Authenticate": realm},
            location="Authorization",
            locationType="header",
        )
    with call.state.lock:
        token = call.state.access_tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or not token.usable(time.time()):
            raise api_error(
                401,
                "Request had invalid authentication credentials. " + _CREDENTIALS_HINT,
                "authError",
                detail="Invalid Credentials",
                headers={"WWW-Authenticate": realm + ', error="invalid_token"'},
                location="Authorization",
                locationType="header",
            )
        call.token = token
    needed = METHOD_SCOPES.get(api)
    if needed is not None and not needed & set(token.scopes):
        raise insufficient_scopes(needed)


def insufficient_scopes(needed: frozenset[str]) -> StandinError:
    return api_error(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        detail="Insufficient Permission",
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope", '
            f'scope="{" ".join(sorted(needed))}"'
        },
    )


def run(route: Route, call: Call) -> tuple[Reply, bool]:
    """Serves one routed request with failure injection around it; says whether a failure was injected."""
    api = route.api
    if api is None:
        return route.handle(call), False
    state = call.state
    before = state.take_failure(api, after_effect=False)
    if before is not None:
        time.sleep(before.delay_ms / 1000)
        if before.status is not None:
            return _injected(api, before), True
    if route.bearer:
        authenticate(call, api)
    reply = route.handle(call)
    if reply.status >= 300:
        return reply, False
    after = state.take_failure(api, after_effect=True)
    if after is None:
        return reply, False
    # The effect is stored; the client is told it failed (or, delay only, hears late), as when a response is lost.
    time.sleep(after.delay_ms / 1000)
    return (reply, True) if after.status is None else (_injected(api, after), True)


def _injected(api: str, rule: FailureRule) -> Reply:
    status = rule.status or 503
    if api == "oauth.authorize":
        return consent_page_error(status, rule.reason or "server_error", rule.message or "Injected failure").reply
    if api.startswith("oauth."):
        error = rule.reason or ("internal_failure" if status >= 500 else "invalid_request")
        return oauth_error(status, error, rule.message or ("Backend Error" if status >= 500 else "Bad Request")).reply
    default_message = {429: "Rate Limit Exceeded", 500: "Backend Error", 503: "The service is currently unavailable."}
    message = rule.message or default_message.get(status, "Injected failure")
    return api_error(status, message, rule.reason).reply
