"""A local stand-in for Google's OAuth 2.0, Gmail v1 and Calendar v3 REST APIs.

It answers in Google's own wire shapes, so google-auth, google-auth-oauthlib and
google-api-python-client run against it unchanged with only their base URLs changed; a
control API under ``/_standin/`` lets tests read what was sent, inject failures and play the
user on Google's consent screen. Stdlib only; one server is both ``CSCX_GOOGLE_OAUTH_BASE``
and ``CSCX_GOOGLE_API_BASE``:

    GET  /o/oauth2/v2/auth                       consent (automatic), 302 to redirect_uri
    POST /token     POST /revoke     GET /v1/userinfo (and /oauth2/v3/userinfo)
    POST /gmail/v1/users/{userId}/drafts         GET .../drafts, .../drafts/{id}
    POST /gmail/v1/users/{userId}/messages/send  GET .../messages?q=rfc822msgid:..., .../messages/{id}
    POST /calendar/v3/calendars/{calendarId}/events   GET|DELETE .../events/{eventId}
    POST /calendar/v3/freeBusy
    GET  /healthz   and the control API: GET /_standin/state, /_standin/requests;
    POST /_standin/fail, accounts, expire, revoke, reset, clients, events, quirks; DELETE /_standin/fail

Run it with ``python -m standins.google --host 127.0.0.1 --port 8091``.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import email.utils
import hashlib
import html
import json
import logging
import os
import re
import secrets
import signal
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from email.message import EmailMessage, Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, NoReturn, cast
from urllib.parse import parse_qs, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

logger = logging.getLogger("standins.google")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8091
DEFAULT_CLIENT_ID = "cscx-local.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "cscx-local-secret"
DEFAULT_ACCOUNT_EMAIL = "csm@example.com"
ACCESS_TOKEN_LIFETIME_S = 3599  # what Google answers in expires_in
AUTHORIZATION_CODE_LIFETIME_S = 600

_AUTH = "https://www.googleapis.com/auth/"
_MAIL = "https://mail.google.com/"
USERINFO_EMAIL = _AUTH + "userinfo.email"
USERINFO_PROFILE = _AUTH + "userinfo.profile"
# Google answers with the full URIs of the sign-in shorthands, which oauthlib then sees as a scope change.
SCOPE_SHORTHANDS = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}
# Sign-in scopes have no checkbox on Google's consent screen: a user cannot withhold them.
SIGN_IN_SCOPES = frozenset({"openid", USERINFO_EMAIL, USERINFO_PROFILE})
GMAIL_METADATA = _AUTH + "gmail.metadata"
GMAIL_METADATA_ONLY = frozenset({GMAIL_METADATA, _AUTH + "gmail.addons.current.message.metadata"})
CALENDAR_APP_CREATED = _AUTH + "calendar.app.created"


def _scopes(*names: str) -> frozenset[str]:
    return frozenset(name if name.startswith("https://") else _AUTH + name for name in names)


# Which scopes allow each method, as google-api-python-client's discovery documents list them
# (tests/test_standin_google.py checks this copy against the documents in the venv).
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "gmail.drafts.create": _scopes(_MAIL, "gmail.addons.current.action.compose", "gmail.compose", "gmail.modify"),
    "gmail.drafts.get": _scopes(_MAIL, "gmail.compose", "gmail.modify", "gmail.readonly"),
    "gmail.drafts.list": _scopes(_MAIL, "gmail.compose", "gmail.modify", "gmail.readonly"),
    "gmail.messages.send": _scopes(
        _MAIL, "gmail.addons.current.action.compose", "gmail.compose", "gmail.modify", "gmail.send"
    ),
    "gmail.messages.list": _scopes(_MAIL, "gmail.metadata", "gmail.modify", "gmail.readonly"),
    "gmail.messages.get": _scopes(
        _MAIL,
        "gmail.addons.current.message.action",
        "gmail.addons.current.message.metadata",
        "gmail.addons.current.message.readonly",
        "gmail.metadata",
        "gmail.modify",
        "gmail.readonly",
    ),
    "calendar.events.insert": _scopes("calendar", "calendar.app.created", "calendar.events", "calendar.events.owned"),
    "calendar.events.get": _scopes(
        "calendar",
        "calendar.app.created",
        "calendar.events",
        "calendar.events.freebusy",
        "calendar.events.owned",
        "calendar.events.owned.readonly",
        "calendar.events.public.readonly",
        "calendar.events.readonly",
        "calendar.readonly",
    ),
    "calendar.events.delete": _scopes("calendar", "calendar.app.created", "calendar.events", "calendar.events.owned"),
    "calendar.freebusy.query": _scopes(
        "calendar", "calendar.events.freebusy", "calendar.freebusy", "calendar.readonly"
    ),
}
# Scopes that may read a message's body: the metadata ones may not (format FULL or RAW).
GMAIL_FULL_READ = METHOD_SCOPES["gmail.messages.get"] - GMAIL_METADATA_ONLY

OAUTH_APIS = ("oauth.authorize", "oauth.token", "oauth.revoke", "oauth.userinfo")
APIS = frozenset((*OAUTH_APIS, *METHOD_SCOPES))

EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
GMAIL_ID = re.compile(r"[0-9a-f]{1,32}")
PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
BASE32HEX = "0123456789abcdefghijklmnopqrstuv"
# Query parameters whose values are secrets: the request log keeps their names only.
SECRET_PARAMS = frozenset({"token", "code", "code_verifier", "client_secret", "access_token", "refresh_token"})

_GOOGLE_STATUS = {
    400: ("badRequest", "INVALID_ARGUMENT"),
    401: ("authError", "UNAUTHENTICATED"),
    403: ("forbidden", "PERMISSION_DENIED"),
    404: ("notFound", "NOT_FOUND"),
    409: ("conflict", "ALREADY_EXISTS"),
    410: ("deleted", "NOT_FOUND"),
    429: ("rateLimitExceeded", "RESOURCE_EXHAUSTED"),
    500: ("backendError", "INTERNAL"),
    503: ("backendError", "UNAVAILABLE"),
}
_CREDENTIALS_HINT = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


# ---------------------------------------------------------------------------------------
# Replies and the one error type


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


class StandinError(Exception):
    """Stops a request and answers it with ``reply``."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def json_reply(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload, indent=2).encode(), headers=dict(headers or {}))


def api_error(
    status: int,
    message: str,
    reason: str | None = None,
    *,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: str,
) -> StandinError:
    """Gmail's and Calendar's error body: ``{"error": {"code", "message", "errors", "status"}}``.

    ``detail`` is the message inside ``errors[0]`` when Google words it differently.
    """
    default_reason, status_name = _GOOGLE_STATUS.get(status, ("backendError", "UNKNOWN"))
    item = {"message": detail or message, "domain": "global", "reason": reason or default_reason, **extra}
    payload = {"error": {"code": status, "message": message, "errors": [item], "status": status_name}}
    return StandinError(json_reply(status, payload, headers))


def oauth_error(status: int, error: str, description: str) -> StandinError:
    """The token, revoke and userinfo endpoints' error body: ``{"error", "error_description"}``."""
    return StandinError(json_reply(status, {"error": error, "error_description": description}))


def consent_page_error(status: int, error: str, detail: str) -> StandinError:
    """Google shows an error page, never a redirect, when the request itself cannot be trusted."""
    page = (
        f"<!doctype html><title>Error {status}: {html.escape(error)}</title>"
        f"<h1>Access blocked: authorization error</h1><p>{html.escape(detail)}</p>"
        f"<p>Error {status}: {html.escape(error)}</p>"
    )
    return StandinError(Reply(status, page.encode(), "text/html; charset=utf-8"))


# ---------------------------------------------------------------------------------------
# What the stand-in holds


@dataclass(frozen=True)
class OAuthClient:
    """A registered OAuth client; ``redirect_uris=None`` accepts any loopback URI."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] | None = None

    def allows(self, redirect_uri: str) -> bool:
        if self.redirect_uris is not None:
            return redirect_uri in self.redirect_uris
        parts = urlsplit(redirect_uri)
        return parts.scheme in {"http", "https"} and parts.hostname in {"127.0.0.1", "localhost", "::1"}


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    email: str
    scopes: tuple[str, ...]
    issue_refresh_token: bool
    code_challenge: str | None
    code_challenge_method: str
    issued_at: float
    used_at: float | None = None


@dataclass
class Grant:
    """A refresh token: what one consent of one user to one client allows."""

    refresh_token: str
    client_id: str
    email: str
    scopes: tuple[str, ...]
    issued_at: float
    revoked_at: float | None = None


@dataclass
class AccessToken:
    token: str
    client_id: str
    email: str
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    refresh_token: str | None
    revoked_at: float | None = None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    label_ids: list[str]
    raw: bytes
    internal_date_ms: int
    history_id: str
    draft_id: str | None = None

    @property
    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    @property
    def message_id(self) -> str:
        return str(self.parsed.get("Message-ID", ""))

    def summary(self) -> dict[str, Any]:
        """The parsed view tests read from the control API."""
        mime = self.parsed
        plain = mime.get_body(preferencelist=("plain",))
        rich = mime.get_body(preferencelist=("html",))
        return {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": list(self.label_ids),
            "message_id": str(mime.get("Message-ID", "")),
            "from": str(mime.get("From", "")),
            "to": _addresses(mime, "To"),
            "cc": _addresses(mime, "Cc"),
            "bcc": _addresses(mime, "Bcc"),
            "subject": str(mime.get("Subject", "")),
            "body": _text_of(plain),
            "html": _text_of(rich) if rich is not None else None,
            "headers": {name: str(value) for name, value in mime.items()},
            "internalDate": str(self.internal_date_ms),
        }


@dataclass
class StoredEvent:
    resource: dict[str, Any]
    start: datetime
    end: datetime
    send_updates: str | None
    conference_data_version: int
    seeded: bool = False

    @property
    def busy(self) -> bool:
        return self.resource.get("status") != "cancelled" and self.resource.get("transparency") != "transparent"


@dataclass
class Account:
    email: str
    sub: str
    messages: list[StoredMessage] = field(default_factory=list)
    events: dict[str, StoredEvent] = field(default_factory=dict)
    history_id: int = 1000

    def next_history_id(self) -> str:
        self.history_id += 1
        return str(self.history_id)


@dataclass
class Consent:
    """How the next user at the consent screen answers: who signs in, what they grant."""

    email: str | None = None
    scopes: tuple[str, ...] | None = None  # None: everything asked for
    deny: bool = False


@dataclass
class FailureRule:
    api: str
    status: int | None  # None: only delay, then answer normally
    times: int | None  # None: every matching request until cleared
    reason: str | None = None
    message: str | None = None
    delay_ms: int = 0
    after_effect: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "status": self.status,
            "times": self.times,
            "reason": self.reason,
            "message": self.message,
            "delay_ms": self.delay_ms,
            "after_effect": self.after_effect,
        }


class GoogleState:
    """Everything the stand-in holds; every read and change happens under ``lock``."""

    def __init__(self, clients: Sequence[OAuthClient], access_token_lifetime_s: int) -> None:
        self.lock = threading.RLock()
        self._initial_clients = tuple(clients)
        self.access_token_lifetime_s = access_token_lifetime_s
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.clients: dict[str, OAuthClient] = {c.client_id: c for c in self._initial_clients}
            self.accounts: dict[str, Account] = {}
            self.codes: dict[str, AuthorizationCode] = {}
            self.grants: dict[str, Grant] = {}
            self.access_tokens: dict[str, AccessToken] = {}
            self.consent = Consent()
            self.failures: list[FailureRule] = []
            self.requests: list[dict[str, Any]] = []
            self.quirks: dict[str, bool] = {"gmail_send_rewrites_message_id": False}

    def account(self, address: str) -> Account:
        key = address.lower()
        if key not in self.accounts:
            self.accounts[key] = Account(key, _subject_id(key))
        return self.accounts[key]

    def take_failure(self, api: str, *, after_effect: bool) -> FailureRule | None:
        with self.lock:
            for rule in self.failures:
                if rule.api == api and rule.after_effect == after_effect:
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self.failures.remove(rule)
                    return rule
        return None

    def issue_access_token(
        self, client_id: str, address: str, scopes: tuple[str, ...], refresh_token: str | None
    ) -> AccessToken:
        now = time.time()
        token = AccessToken(
            token="ya29." + secrets.token_urlsafe(48),
            client_id=client_id,
            email=address,
            scopes=scopes,
            issued_at=now,
            expires_at=now + self.access_token_lifetime_s,
            refresh_token=refresh_token,
        )
        self.access_tokens[token.token] = token
        return token

    def active_grants(self, address: str, client_id: str) -> list[Grant]:
        return [
            g for g in self.grants.values() if g.email == address and g.client_id == client_id and g.revoked_at is None
        ]

    def revoke_access(self, address: str, client_id: str | None = None) -> tuple[int, int]:
        """Removes a client's (or every client's) access to an account, as Google's revoke does."""
        now = time.time()
        refresh = access = 0
        for grant in self.grants.values():
            if grant.email == address and client_id in (None, grant.client_id) and grant.revoked_at is None:
                grant.revoked_at = now
                refresh += 1
        for token in self.access_tokens.values():
            if token.email == address and client_id in (None, token.client_id) and token.revoked_at is None:
                token.revoked_at = now
                access += 1
        return refresh, access

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            accounts: dict[str, Any] = {}
            for address, acc in self.accounts.items():
                accounts[address] = {
                    "email": acc.email,
                    "sub": acc.sub,
                    "sent": [m.summary() for m in acc.messages if m.draft_id is None],
                    "drafts": [{"id": m.draft_id, "message": m.summary()} for m in acc.messages if m.draft_id],
                    "events": [
                        {
                            "event": e.resource,
                            "send_updates": e.send_updates,
                            "conference_data_version": e.conference_data_version,
                            "seeded": e.seeded,
                        }
                        for e in acc.events.values()
                    ],
                    "access_tokens": [_token_view(t) for t in self.access_tokens.values() if t.email == address],
                    "refresh_tokens": [_grant_view(g) for g in self.grants.values() if g.email == address],
                    "authorization_codes": [_code_view(c) for c in self.codes.values() if c.email == address],
                }
            return {
                "accounts": accounts,
                "consent": {"email": self.consent.email, "scopes": self.consent.scopes, "deny": self.consent.deny},
                "clients": [
                    {"client_id": c.client_id, "redirect_uris": c.redirect_uris} for c in self.clients.values()
                ],
                "failures": [rule.as_dict() for rule in self.failures],
                "quirks": dict(self.quirks),
            }


def _token_view(token: AccessToken) -> dict[str, Any]:
    return {
        "token": token.token,
        "client_id": token.client_id,
        "scopes": list(token.scopes),
        "issued_at": _rfc3339(token.issued_at),
        "expires_at": _rfc3339(token.expires_at),
        "refresh_token": token.refresh_token,
        "revoked": token.revoked_at is not None,
        "expired": time.time() >= token.expires_at,
    }


def _grant_view(grant: Grant) -> dict[str, Any]:
    return {
        "token": grant.refresh_token,
        "client_id": grant.client_id,
        "scopes": list(grant.scopes),
        "issued_at": _rfc3339(grant.issued_at),
        "revoked": grant.revoked_at is not None,
    }


def _code_view(code: AuthorizationCode) -> dict[str, Any]:
    return {
        "code": code.code,
        "client_id": code.client_id,
        "redirect_uri": code.redirect_uri,
        "scopes": list(code.scopes),
        "pkce": code.code_challenge is not None,
        "used": code.used_at is not None,
    }


# ---------------------------------------------------------------------------------------
# One request


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


def _authenticate(call: Call, api: str) -> None:
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


def _run(route: Route, call: Call) -> tuple[Reply, bool]:
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
        _authenticate(call, api)
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


# ---------------------------------------------------------------------------------------
# OAuth 2.0


def authorize(call: Call) -> Reply:
    """Google's consent screen, answered at once by the user the control API describes."""
    state = call.state
    args = {name: values[0] for name, values in call.query.items()}
    client = state.clients.get(args.get("client_id", ""))
    if client is None:
        raise consent_page_error(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = args.get("redirect_uri", "")
    if not redirect_uri or not client.allows(redirect_uri):
        raise consent_page_error(
            400, "redirect_uri_mismatch", f"The redirect URI in the request, {redirect_uri}, is not registered."
        )
    if args.get("response_type") != "code":
        raise consent_page_error(400, "unsupported_response_type", "Only response_type=code is served here.")
    raw_scopes = args.get("scope", "").split()
    if not raw_scopes:
        raise consent_page_error(400, "invalid_request", "Missing required parameter: scope")
    unknown = [s for s in raw_scopes if not _known_scope(s)]
    if unknown:
        raise consent_page_error(400, "invalid_scope", f"Some requested scopes were invalid. {{invalid={unknown}}}")
    # Google does not insist on state; CSCX's callback is authenticated by it, so the stand-in does.
    if not args.get("state"):
        raise consent_page_error(400, "invalid_request", "Missing state (required by the CSCX stand-in).")
    access_type = args.get("access_type", "online")
    if access_type not in {"online", "offline"}:
        raise consent_page_error(400, "invalid_request", f"Invalid access_type: {access_type}")
    prompt = set(args.get("prompt", "").split())
    if not prompt <= {"none", "consent", "select_account"} or ("none" in prompt and len(prompt) > 1):
        raise consent_page_error(400, "invalid_request", f"Invalid prompt: {args.get('prompt')}")
    challenge = args.get("code_challenge")
    method = args.get("code_challenge_method", "plain")
    if challenge is not None and (method not in {"S256", "plain"} or not PKCE_CHALLENGE.fullmatch(challenge)):
        raise consent_page_error(400, "invalid_request", "Invalid code_challenge or code_challenge_method.")

    def back(**fields: str) -> Reply:
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return Reply(302, headers={"Location": redirect_uri + separator + urlencode(fields)})

    with state.lock:
        consent = state.consent
        if consent.deny:
            return back(error="access_denied", state=args["state"])
        hint = args.get("login_hint", "")
        address = (consent.email or (hint if "@" in hint else DEFAULT_ACCOUNT_EMAIL)).lower()
        state.account(address)
        previous = state.active_grants(address, client.client_id)
        if "none" in prompt and not previous:
            return back(error="consent_required", state=args["state"])
        asked = {SCOPE_SHORTHANDS.get(s, s) for s in raw_scopes}
        granted = asked if consent.scopes is None else asked & ({*consent.scopes} | SIGN_IN_SCOPES)
        if args.get("include_granted_scopes") == "true":
            granted |= {s for g in previous for s in g.scopes}
        code = AuthorizationCode(
            code="4/0" + secrets.token_urlsafe(48),
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            email=address,
            scopes=tuple(sorted(granted)),
            # Google sends a refresh token for offline access on a first consent, or when prompt=consent asks again.
            issue_refresh_token=access_type == "offline" and ("consent" in prompt or not previous),
            code_challenge=challenge,
            code_challenge_method=method,
            issued_at=time.time(),
        )
        state.codes[code.code] = code
    return back(
        state=args["state"],
        code=code.code,
        scope=" ".join(code.scopes),
        authuser="0",
        prompt="none" if "none" in prompt else "consent",
    )


def _known_scope(scope: str) -> bool:
    return scope in {"openid", "email", "profile", _MAIL} or scope.startswith(_AUTH)


def token(call: Call) -> Reply:
    state = call.state
    fields = call.form()
    client = _token_client(call, fields)
    grant_type = fields.get("grant_type", "")
    with state.lock:
        if grant_type == "authorization_code":
            payload = _exchange_code(state, client, fields)
        elif grant_type == "refresh_token":
            payload = _refresh(state, client, fields)
        else:
            raise oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    return json_reply(200, payload, {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"})


def _token_client(call: Call, fields: dict[str, str]) -> OAuthClient:
    """client_secret_basic when an Authorization header is sent, client_secret_post otherwise."""
    client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
    scheme, _, value = call.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError as exc:
            raise oauth_error(401, "invalid_client", "Unauthorized") from exc
        client_id, secret = unquote(user), unquote(password)
    client = call.state.clients.get(client_id)
    if client is None:
        raise oauth_error(401, "invalid_client", "The OAuth client was not found.")
    if not secrets.compare_digest(secret, client.client_secret):
        raise oauth_error(401, "invalid_client", "Unauthorized")
    return client


def _exchange_code(state: GoogleState, client: OAuthClient, fields: dict[str, str]) -> dict[str, Any]:
    value = fields.get("code")
    if not value:
        raise oauth_error(400, "invalid_request", "Missing required parameter: code")
    code = state.codes.get(value)
    now = time.time()
    expired = code is not None and now > code.issued_at + AUTHORIZATION_CODE_LIFETIME_S
    if code is None or code.used_at is not None or expired or code.client_id != client.client_id:
        raise oauth_error(400, "invalid_grant", "Bad Request")
    if not fields.get("redirect_uri"):
        raise oauth_error(400, "invalid_request", "Missing parameter: redirect_uri")
    if fields["redirect_uri"] != code.redirect_uri:
        raise oauth_error(400, "redirect_uri_mismatch", "Bad Request")
    if code.code_challenge is not None:
        verifier = fields.get("code_verifier")
        if not verifier:
            raise oauth_error(400, "invalid_grant", "Missing code verifier.")
        if _pkce_challenge(verifier, code.code_challenge_method) != code.code_challenge:
            raise oauth_error(400, "invalid_grant", "Invalid code verifier.")
    code.used_at = now
    refresh_token = None
    if code.issue_refresh_token:
        grant = Grant("1//0" + secrets.token_urlsafe(64), client.client_id, code.email, code.scopes, now)
        state.grants[grant.refresh_token] = grant
        refresh_token = grant.refresh_token
    access = state.issue_access_token(client.client_id, code.email, code.scopes, refresh_token)
    payload = _token_payload(state, access)
    if refresh_token is not None:
        payload["refresh_token"] = refresh_token
    return payload


def _refresh(state: GoogleState, client: OAuthClient, fields: dict[str, str]) -> dict[str, Any]:
    value = fields.get("refresh_token")
    if not value:
        raise oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
    grant = state.grants.get(value)
    if grant is None or grant.revoked_at is not None or grant.client_id != client.client_id:
        raise oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
    scopes = grant.scopes
    if fields.get("scope"):
        # A narrower token may be asked for; scopes never granted are left out rather than refused,
        # which is why google-auth only logs "Not all requested scopes were granted".
        asked = {SCOPE_SHORTHANDS.get(s, s) for s in fields["scope"].split()}
        scopes = tuple(s for s in grant.scopes if s in asked)
        if not scopes:
            raise oauth_error(400, "invalid_scope", "Bad Request")
    access = state.issue_access_token(client.client_id, grant.email, scopes, grant.refresh_token)
    return _token_payload(state, access)


def _token_payload(state: GoogleState, access: AccessToken) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "access_token": access.token,
        "expires_in": state.access_token_lifetime_s,
        "scope": " ".join(access.scopes),
        "token_type": "Bearer",
    }
    if "openid" in access.scopes:
        payload["id_token"] = _id_token(state.account(access.email), access)
    return payload


def _id_token(account: Account, access: AccessToken) -> str:
    """An OpenID Connect ID token with Google's claims; its signature is a placeholder, not RS256."""
    claims: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "azp": access.client_id,
        "aud": access.client_id,
        "sub": account.sub,
        "iat": int(access.issued_at),
        "exp": int(access.issued_at) + 3600,
    }
    if USERINFO_EMAIL in access.scopes:
        claims.update(email=account.email, email_verified=True)
    header = {"alg": "RS256", "kid": "cscx-standin-unsigned", "typ": "JWT"}
    parts = [json.dumps(header).encode(), json.dumps(claims).encode(), b"cscx-standin-unsigned"]
    return ".".join(_b64url(part, pad=False) for part in parts)


def _pkce_challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    return _b64url(hashlib.sha256(verifier.encode()).digest(), pad=False)


def revoke(call: Call) -> Reply:
    state = call.state
    value = call.form().get("token") or call.arg("token")
    if not value:
        raise oauth_error(400, "invalid_request", "Bad Request")
    with state.lock:
        now = time.time()
        grant = state.grants.get(value)
        access = state.access_tokens.get(value)
        if grant is not None and grant.revoked_at is None:
            state.revoke_access(grant.email, grant.client_id)
        elif access is not None and access.usable(now):
            if access.refresh_token is None:
                access.revoked_at = now
            else:
                state.revoke_access(access.email, access.client_id)
        else:
            raise oauth_error(400, "invalid_token", "Token expired or revoked")
    return json_reply(200, {})


def userinfo(call: Call) -> Reply:
    """OpenID Connect userinfo; its errors are OAuth-shaped, not the APIs' JSON."""
    scheme, _, value = call.headers.get("Authorization", "").partition(" ")
    state = call.state
    with state.lock:
        access = state.access_tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if access is None or not access.usable(time.time()):
            raise oauth_error(401, "invalid_request", "Invalid Credentials")
        call.token = access
        account = state.account(access.email)
    info: dict[str, Any] = {"sub": account.sub}
    if USERINFO_EMAIL in access.scopes:
        info.update(email=account.email, email_verified=True)
    if USERINFO_PROFILE in access.scopes:
        info.update(name=account.email.split("@")[0], picture="https://lh3.googleusercontent.com/a/default-user")
    return json_reply(200, info)


# ---------------------------------------------------------------------------------------
# Gmail v1


def _gmail_user(call: Call) -> Account:
    """userId is "me" or the signed-in address; anyone else's mailbox is delegation."""
    account = call.account
    user = unquote(call.params["user"])
    if user != "me" and user.lower() != account.email:
        raise api_error(403, f"Delegation denied for {account.email}", "forbidden")
    return account


def create_draft(call: Call) -> Reply:
    account = _gmail_user(call)
    message = call.json().get("message")
    if not isinstance(message, dict):
        message = {}
    with call.state.lock:
        stored = _store_message(call.state, account, message, ["DRAFT"], sending=False)
        stored.draft_id = f"r-{secrets.randbelow(9 * 10**18) + 10**18}"
    return json_reply(
        200,
        {"id": stored.draft_id, "message": {"id": stored.id, "threadId": stored.thread_id, "labelIds": ["DRAFT"]}},
    )


def send_message(call: Call) -> Reply:
    account = _gmail_user(call)
    with call.state.lock:
        stored = _store_message(call.state, account, call.json(), ["SENT"], sending=True)
    return json_reply(200, {"id": stored.id, "threadId": stored.thread_id, "labelIds": ["SENT"]})


def _store_message(
    state: GoogleState, account: Account, message: dict[str, Any], labels: list[str], *, sending: bool
) -> StoredMessage:
    encoded = message.get("raw")
    if not isinstance(encoded, str) or not encoded:
        raise api_error(
            400,
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
            "invalidArgument",
        )
    try:
        # The raw field is proto bytes: Google takes either base64 alphabet, padded or not.
        raw = base64.urlsafe_b64decode(encoded.replace("+", "-").replace("/", "_") + "=" * (-len(encoded) % 4))
    except ValueError as exc:
        raise api_error(400, "Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed", "invalid") from exc
    mime = email.message_from_bytes(raw, policy=email.policy.default)
    recipients = [*_addresses(mime, "To"), *_addresses(mime, "Cc"), *_addresses(mime, "Bcc")]
    if sending and not recipients:
        raise api_error(400, "Recipient address required", "invalidArgument")
    for header in ("To", "Cc", "Bcc"):
        if any(not ADDRESS.fullmatch(a) for a in _addresses(mime, header)):
            raise api_error(400, f"Invalid {header} header", "invalidArgument")
    # Gmail sends as the signed-in user, stamps a Date and invents a Message-ID when there is none.
    if _addresses(mime, "From") != [account.email]:
        del mime["From"]
        mime["From"] = account.email
    if "Date" not in mime:
        mime["Date"] = email.utils.format_datetime(datetime.now(UTC))
    if "Message-ID" not in mime or (sending and state.quirks.get("gmail_send_rewrites_message_id")):
        del mime["Message-ID"]
        mime["Message-ID"] = f"<CA+{secrets.token_urlsafe(33)}@mail.gmail.com>"
    message_id = _new_gmail_id()
    thread_id = _thread_for(account, mime, message.get("threadId")) or message_id
    stored = StoredMessage(
        id=message_id,
        thread_id=thread_id,
        label_ids=labels,
        raw=mime.as_bytes(),
        internal_date_ms=int(time.time() * 1000),
        history_id=account.next_history_id(),
    )
    account.messages.append(stored)
    return stored


def _thread_for(account: Account, mime: EmailMessage, thread_id: object) -> str | None:
    """Gmail joins a thread when asked for a known threadId, or when the message replies into one."""
    threads = {m.thread_id for m in account.messages}
    if isinstance(thread_id, str) and thread_id in threads:
        return thread_id
    referenced = f"{mime.get('In-Reply-To', '')} {mime.get('References', '')}".split()
    for earlier in account.messages:
        if earlier.message_id and earlier.message_id in referenced:
            return earlier.thread_id
    return None


def get_draft(call: Call) -> Reply:
    account = _gmail_user(call)
    fmt = _message_format(call)
    with call.state.lock:
        stored = next((m for m in account.messages if m.draft_id == call.params["id"]), None)
        if stored is None:
            raise api_error(404, "Requested entity was not found.", "notFound")
        return json_reply(200, {"id": stored.draft_id, "message": _message_resource(stored, fmt, [])})


def list_drafts(call: Call) -> Reply:
    account = _gmail_user(call)
    with call.state.lock:
        drafts = [m for m in reversed(account.messages) if m.draft_id]
        items = [{"id": m.draft_id, "message": {"id": m.id, "threadId": m.thread_id}} for m in drafts]
    return json_reply(200, _page(call, "drafts", items))


def list_messages(call: Call) -> Reply:
    """Searches by Message-ID (``rfc822msgid:``), optionally narrowed by ``in:sent``/``in:drafts`` and labelIds."""
    account = _gmail_user(call)
    assert call.token is not None
    query = call.arg("q") or ""
    if query and not set(call.token.scopes) & (METHOD_SCOPES["gmail.messages.list"] - {GMAIL_METADATA}):
        raise api_error(403, "Metadata scope does not support 'q' parameter", "forbidden")
    wanted_ids: list[str] = []
    labels = {label.upper() for label in call.query.get("labelIds", [])}
    for term in query.split():
        name, _, value = term.partition(":")
        if name.lower() == "rfc822msgid" and value:
            wanted_ids.append(value.strip("<>").lower())
        elif name.lower() in {"in", "label", "is"} and value.lower() in {"sent", "draft", "drafts"}:
            labels.add("SENT" if value.lower() == "sent" else "DRAFT")
        else:
            raise api_error(400, f"The Google stand-in does not support the search term {term!r}", "invalidArgument")
    with call.state.lock:
        found = [
            m
            for m in reversed(account.messages)
            if labels <= set(m.label_ids) and all(m.message_id.strip("<>").lower() == wanted for wanted in wanted_ids)
        ]
        items = [{"id": m.id, "threadId": m.thread_id} for m in found]
    return json_reply(200, _page(call, "messages", items))


def _page(call: Call, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """One page of a Gmail list; an empty list has no ``messages``/``drafts`` key at all, as in Gmail."""
    try:
        size = min(int(call.arg("maxResults") or 100), 500)
        start = int(call.arg("pageToken") or 0)
    except ValueError as exc:
        raise api_error(400, "Invalid maxResults or pageToken", "invalidArgument") from exc
    page: dict[str, Any] = {"resultSizeEstimate": len(items)}
    if items[start : start + size]:
        page[key] = items[start : start + size]
    if start + size < len(items):
        page["nextPageToken"] = str(start + size)
    return page


def get_message(call: Call) -> Reply:
    account = _gmail_user(call)
    fmt = _message_format(call)
    assert call.token is not None
    if fmt in {"full", "raw"} and not set(call.token.scopes) & GMAIL_FULL_READ:
        raise api_error(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
    if not GMAIL_ID.fullmatch(call.params["id"]):
        raise api_error(400, "Invalid id value", "invalidArgument")
    with call.state.lock:
        stored = next((m for m in account.messages if m.id == call.params["id"]), None)
        if stored is None:
            raise api_error(404, "Requested entity was not found.", "notFound")
        return json_reply(200, _message_resource(stored, fmt, call.query.get("metadataHeaders", [])))


def _message_format(call: Call) -> str:
    fmt = (call.arg("format") or "full").lower()
    if fmt not in {"full", "metadata", "minimal", "raw"}:
        raise api_error(400, f"Invalid value for format: {fmt}", "invalidArgument")
    return fmt


def _message_resource(stored: StoredMessage, fmt: str, metadata_headers: Sequence[str]) -> dict[str, Any]:
    mime = stored.parsed
    text = " ".join(_text_of(mime.get_body(preferencelist=("plain", "html"))).split())
    resource: dict[str, Any] = {
        "id": stored.id,
        "threadId": stored.thread_id,
        "labelIds": list(stored.label_ids),
        "snippet": html.escape(text[:200]).replace("&#x27;", "&#39;"),
        "sizeEstimate": len(stored.raw),
        "historyId": stored.history_id,
        "internalDate": str(stored.internal_date_ms),
    }
    if fmt == "raw":
        resource["raw"] = _b64url(stored.raw)
    elif fmt == "full":
        resource["payload"] = _part_resource(mime, "")
    elif fmt == "metadata":
        wanted = {h.lower() for h in metadata_headers}
        headers = [
            {"name": name, "value": str(value)} for name, value in mime.items() if not wanted or name.lower() in wanted
        ]
        resource["payload"] = {"mimeType": mime.get_content_type(), "headers": headers}
    return resource


def _part_resource(part: Message, part_id: str) -> dict[str, Any]:
    """Gmail's MessagePart: the top part's id is "", its children "0", "1", theirs "0.0", ..."""
    resource: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": [{"name": name, "value": str(value)} for name, value in part.items()],
    }
    if part.is_multipart():
        children = cast(list[Message], part.get_payload())
        resource["body"] = {"size": 0}
        resource["parts"] = [
            _part_resource(child, f"{part_id}.{i}" if part_id else str(i)) for i, child in enumerate(children)
        ]
    else:
        data = cast(bytes, part.get_payload(decode=True) or b"")
        resource["body"] = {"size": len(data), "data": _b64url(data)} if data else {"size": 0}
    return resource


# ---------------------------------------------------------------------------------------
# Calendar v3


def _calendar_owner(call: Call, api: str) -> Account:
    """calendarId is "primary" or the signed-in address; other calendars are not served."""
    account = call.account
    assert call.token is not None
    calendar_id = unquote(call.params["calendar"])
    if calendar_id not in {"primary", account.email}:
        raise api_error(404, "Not Found", "notFound")
    # calendar.app.created reaches only calendars the app made, never the user's primary one.
    if not (METHOD_SCOPES[api] - {CALENDAR_APP_CREATED}) & set(call.token.scopes):
        raise insufficient_scopes(METHOD_SCOPES[api])
    return account


def insert_event(call: Call) -> Reply:
    account = _calendar_owner(call, "calendar.events.insert")
    version = call.arg("conferenceDataVersion") or "0"
    if version not in {"0", "1"}:
        raise api_error(400, f"Invalid value for: conferenceDataVersion = {version}", "invalid")
    send_updates = call.arg("sendUpdates")
    if send_updates not in {None, "all", "externalOnly", "none"}:
        raise api_error(400, f"Invalid value for: sendUpdates = {send_updates}", "invalid")
    body = call.json()
    event_id = body.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id)):
        raise api_error(400, "Invalid resource id value.", "invalid")
    start, start_view = _event_time(body.get("start"), "start")
    end, end_view = _event_time(body.get("end"), "end")
    if end < start:
        raise api_error(400, "The specified time range is empty.", "timeRangeEmpty")
    attendees = body.get("attendees") or []
    if not isinstance(attendees, list) or any(
        not isinstance(a, dict) or not ADDRESS.fullmatch(str(a.get("email", ""))) for a in attendees
    ):
        raise api_error(400, "Invalid attendee email.", "invalid")
    conference = _conference(body.get("conferenceData")) if version == "1" else None
    with call.state.lock:
        event_id = event_id or "".join(secrets.choice(BASE32HEX) for _ in range(26))
        # Ids stay taken after the event is deleted, as at Google.
        if event_id in account.events:
            raise api_error(409, "The requested identifier already exists.", "duplicate")
        stored = StoredEvent(
            resource=_event_resource(
                account,
                event_id,
                body=body,
                start=start_view,
                end=end_view,
                attendees=attendees,
                conference=conference,
            ),
            start=start,
            end=end,
            send_updates=send_updates,
            conference_data_version=int(version),
        )
        account.events[event_id] = stored
        return json_reply(200, stored.resource)


def _event_time(value: object, which: str) -> tuple[datetime, dict[str, Any]]:
    if not isinstance(value, dict) or not ({"dateTime", "date"} & value.keys()):
        raise api_error(400, f"Missing {which} time.", "required")
    zone_name = value.get("timeZone")
    zone = _zone(zone_name, f"Invalid time zone definition for {which} time.") if zone_name else None
    view = {k: value[k] for k in ("date", "dateTime", "timeZone") if k in value}
    try:
        if "dateTime" in value:
            moment = datetime.fromisoformat(str(value["dateTime"]))
            if moment.tzinfo is None:
                if zone is None:
                    raise api_error(400, f"Missing time zone definition for {which} time.", "required")
                moment = moment.replace(tzinfo=zone)
            return moment.astimezone(UTC), view
        # All-day events are busy from midnight in their zone, UTC when none is named.
        day = date.fromisoformat(str(value["date"]))
        return datetime(day.year, day.month, day.day, tzinfo=zone or UTC).astimezone(UTC), view
    except ValueError as exc:
        raise api_error(400, f"Invalid {which} time.", "invalid") from exc


def _zone(name: object, message: str) -> tzinfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise api_error(400, message, "invalid") from exc


def _conference(data: object) -> dict[str, Any] | None:
    """Creates a Meet conference for ``conferenceData.createRequest``; no request, no conference."""
    if not isinstance(data, dict) or not isinstance(data.get("createRequest"), dict):
        return None
    request = data["createRequest"]
    kind = (request.get("conferenceSolutionKey") or {}).get("type")
    if not request.get("requestId"):
        raise api_error(400, "Invalid conference create request.", "invalid")
    if kind != "hangoutsMeet":
        raise api_error(400, "Invalid conference type value.", "invalid")
    letters = string.ascii_lowercase
    meet = "-".join("".join(secrets.choice(letters) for _ in range(n)) for n in (3, 4, 3))
    pin = "".join(secrets.choice(string.digits) for _ in range(9))
    return {
        "createRequest": {
            "requestId": request["requestId"],
            "conferenceSolutionKey": {"type": "hangoutsMeet"},
            "status": {"statusCode": "success"},
        },
        # Clients should pick the entry point by type: Google lists phone entries beside the video one.
        "entryPoints": [
            {"entryPointType": "video", "uri": f"https://meet.google.com/{meet}", "label": f"meet.google.com/{meet}"},
            {"entryPointType": "more", "uri": f"https://tel.meet/{meet}?pin={pin}", "pin": pin},
            {
                "entryPointType": "phone",
                "uri": "tel:+1-555-010-0199",
                "label": "+1 555-010-0199",
                "pin": pin,
                "regionCode": "US",
            },
        ],
        "conferenceSolution": {
            "key": {"type": "hangoutsMeet"},
            "name": "Google Meet",
            "iconUri": "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png",
        },
        "conferenceId": meet,
    }


def _event_resource(
    account: Account,
    event_id: str,
    *,
    body: dict[str, Any],
    start: dict[str, Any],
    end: dict[str, Any],
    attendees: Sequence[dict[str, Any]] = (),
    conference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = _rfc3339(time.time())
    eid = _b64url(f"{event_id} {account.email}".encode(), pad=False)
    resource: dict[str, Any] = {
        "kind": "calendar#event",
        "etag": f'"{time.time_ns() // 1000}"',
        "id": event_id,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
        "created": now,
        "updated": now,
    }
    for key in ("summary", "description", "location", "transparency", "visibility", "colorId"):
        if key in body:
            resource[key] = body[key]
    resource.update(
        creator={"email": account.email, "self": True},
        organizer={"email": account.email, "self": True},
        start=start,
        end=end,
        iCalUID=f"{event_id}@google.com",
        sequence=0,
    )
    if attendees:
        resource["attendees"] = [
            {
                "email": str(a["email"]).lower(),
                **({"displayName": a["displayName"]} if "displayName" in a else {}),
                **({"optional": True} if a.get("optional") else {}),
                "responseStatus": a.get("responseStatus", "needsAction"),
            }
            for a in attendees
        ]
    if conference is not None:
        resource["hangoutLink"] = conference["entryPoints"][0]["uri"]
        resource["conferenceData"] = conference
    resource["reminders"] = body.get("reminders") or {"useDefault": True}
    resource["eventType"] = "default"
    return resource


def get_event(call: Call) -> Reply:
    account = _calendar_owner(call, "calendar.events.get")
    with call.state.lock:
        stored = account.events.get(unquote(call.params["event"]))
        if stored is None:
            raise api_error(404, "Not Found", "notFound")
        return json_reply(200, stored.resource)


def delete_event(call: Call) -> Reply:
    account = _calendar_owner(call, "calendar.events.delete")
    with call.state.lock:
        stored = account.events.get(unquote(call.params["event"]))
        if stored is None:
            raise api_error(404, "Not Found", "notFound")
        if stored.resource["status"] == "cancelled":
            raise api_error(410, "Resource has been deleted", "deleted")
        stored.resource.update(status="cancelled", updated=_rfc3339(time.time()))
    return Reply(204)


def query_freebusy(call: Call) -> Reply:
    """Busy ranges of the signed-in user's (and other known accounts') opaque events, merged and clipped."""
    account = call.account
    body = call.json()
    time_min, time_max = _instant(body, "timeMin"), _instant(body, "timeMax")
    if time_max < time_min:
        raise api_error(400, "The specified time range is empty.", "timeRangeEmpty")
    zone = _zone(body["timeZone"], "Invalid time zone definition.") if body.get("timeZone") else UTC
    calendars: dict[str, Any] = {}
    with call.state.lock:
        for item in body.get("items") or []:
            calendar_id = str(item.get("id", "")) if isinstance(item, dict) else ""
            owner = account if calendar_id in {"primary", account.email} else None
            owner = owner or call.state.accounts.get(calendar_id.lower())
            if owner is None:
                calendars[calendar_id] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            ranges = sorted(
                (max(e.start, time_min), min(e.end, time_max))
                for e in owner.events.values()
                if e.busy and e.start < time_max and e.end > time_min
            )
            merged: list[tuple[datetime, datetime]] = []
            for start, end in ranges:
                if merged and start <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            calendars[calendar_id] = {
                "busy": [{"start": _busy_time(s, zone), "end": _busy_time(e, zone)} for s, e in merged]
            }
    return json_reply(
        200,
        {
            "kind": "calendar#freeBusy",
            "timeMin": _rfc3339(time_min.timestamp()),
            "timeMax": _rfc3339(time_max.timestamp()),
            "calendars": calendars,
        },
    )


def _instant(body: dict[str, Any], name: str) -> datetime:
    """A freeBusy bound: RFC 3339 with an offset, as the API requires."""
    if not body.get(name):
        raise api_error(400, f"Missing {name}.", "required")
    try:
        moment = datetime.fromisoformat(str(body[name]))
    except ValueError as exc:
        raise api_error(400, f"Invalid value for: {name}", "invalid") from exc
    if moment.tzinfo is None:
        raise api_error(400, f"Invalid value for: {name} (no offset)", "invalid")
    return moment.astimezone(UTC)


def _busy_time(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%SZ") if zone is UTC else local.isoformat(timespec="seconds")


def missing_service_path(call: Call) -> Reply:
    """A Calendar call without /calendar/v3/: api_endpoint replaces rootUrl *and* servicePath."""
    raise api_error(
        404,
        "Not Found: a Calendar client's api_endpoint must end with /calendar/v3/ "
        "(googleapiclient uses api_endpoint in place of rootUrl + servicePath)",
        "notFound",
    )


# ---------------------------------------------------------------------------------------
# Control API


def healthz(call: Call) -> Reply:
    return json_reply(200, {"status": "ok"})


def control_state(call: Call) -> Reply:
    return json_reply(200, call.state.snapshot())


def control_requests(call: Call) -> Reply:
    with call.state.lock:
        return json_reply(200, {"requests": list(call.state.requests)})


def control_fail(call: Call) -> Reply:
    body = call.json()
    api = body.get("api")
    if api not in APIS:
        raise api_error(400, f"api must be one of {sorted(APIS)}", "invalid")
    status, times = body.get("status", 503), body.get("times", 1)
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise api_error(400, "status must be an HTTP error status or null (delay only)", "invalid")
    if times is not None and (not isinstance(times, int) or times < 1):
        raise api_error(400, "times must be a positive integer or null (until cleared)", "invalid")
    rule = FailureRule(
        api=api,
        status=status,
        times=times,
        reason=body.get("reason"),
        message=body.get("message"),
        delay_ms=int(body.get("delay_ms") or 0),
        after_effect=bool(body.get("after_effect", False)),
    )
    with call.state.lock:
        call.state.failures.append(rule)
    return json_reply(200, {"failure": rule.as_dict()})


def control_clear_failures(call: Call) -> Reply:
    with call.state.lock:
        call.state.failures.clear()
    return json_reply(200, {"failures": []})


def control_accounts(call: Call) -> Reply:
    body = call.json()
    address = body.get("email")
    if address is not None and (not isinstance(address, str) or not ADDRESS.fullmatch(address)):
        raise api_error(400, "email must be an e-mail address or null", "invalid")
    scopes = body.get("scopes")
    if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
        raise api_error(400, "scopes must be a list of scopes or null (grant all asked)", "invalid")
    with call.state.lock:
        call.state.consent = Consent(
            email=address.lower() if address else None,
            scopes=tuple(SCOPE_SHORTHANDS.get(str(s), str(s)) for s in scopes) if scopes is not None else None,
            deny=bool(body.get("deny", False)),
        )
        if address:
            call.state.account(address)
        consent = call.state.consent
    return json_reply(200, {"consent": {"email": consent.email, "scopes": consent.scopes, "deny": consent.deny}})


def control_expire(call: Call) -> Reply:
    address = str(call.json().get("email", "")).lower()
    now = time.time()
    with call.state.lock:
        tokens = [t for t in call.state.access_tokens.values() if t.email == address and t.usable(now)]
        for access in tokens:
            access.expires_at = now
    return json_reply(200, {"expired": len(tokens)})


def control_revoke(call: Call) -> Reply:
    """The user removes the app at myaccount.google.com: by account (and client), or by refresh token."""
    body = call.json()
    with call.state.lock:
        grant = call.state.grants.get(str(body.get("refresh_token", "")))
        if grant is not None:
            refresh, access = call.state.revoke_access(grant.email, grant.client_id)
        elif body.get("email"):
            refresh, access = call.state.revoke_access(str(body["email"]).lower(), body.get("client_id"))
        else:
            raise api_error(400, "give email (and client_id) or refresh_token", "invalid")
    return json_reply(200, {"revoked_refresh_tokens": refresh, "revoked_access_tokens": access})


def control_reset(call: Call) -> Reply:
    call.state.reset()
    return json_reply(200, {"status": "reset"})


def control_clients(call: Call) -> Reply:
    body = call.json()
    uris = body.get("redirect_uris")
    if not body.get("client_id") or not body.get("client_secret"):
        raise api_error(400, "client_id and client_secret are required", "invalid")
    client = OAuthClient(
        str(body["client_id"]), str(body["client_secret"]), tuple(map(str, uris)) if uris is not None else None
    )
    with call.state.lock:
        call.state.clients[client.client_id] = client
    return json_reply(200, {"client_id": client.client_id, "redirect_uris": client.redirect_uris})


def control_seed_event(call: Call) -> Reply:
    """Puts an event on an account's primary calendar, e.g. to make a slot busy for freebusy."""
    body = call.json()
    address = str(body.get("email") or "").lower()
    if not ADDRESS.fullmatch(address):
        raise api_error(400, "email is required", "invalid")
    start, start_view = _event_time(body.get("start"), "start")
    end, end_view = _event_time(body.get("end"), "end")
    with call.state.lock:
        account = call.state.account(address)
        event_id = str(body.get("id") or "".join(secrets.choice(BASE32HEX) for _ in range(26)))
        fields: dict[str, Any] = {k: body[k] for k in ("summary", "transparency") if k in body}
        resource = _event_resource(account, event_id, body=fields, start=start_view, end=end_view)
        account.events[event_id] = StoredEvent(resource, start, end, None, 0, seeded=True)
    return json_reply(200, resource)


def control_quirks(call: Call) -> Reply:
    body = call.json()
    with call.state.lock:
        for name, value in body.items():
            if name not in call.state.quirks:
                raise api_error(400, f"unknown quirk {name}; known: {sorted(call.state.quirks)}", "invalid")
            call.state.quirks[name] = bool(value)
        return json_reply(200, {"quirks": dict(call.state.quirks)})


# ---------------------------------------------------------------------------------------
# Routing and the server

_GMAIL = r"/gmail/v1/users/(?P<user>[^/]+)"
_EVENTS = r"/calendar/v3/calendars/(?P<calendar>[^/]+)/events"


def _route(method: str, pattern: str, handle: Handler, api: str | None = None, *, bearer: bool = False) -> Route:
    return Route(method, re.compile(pattern), api, handle, bearer)


ROUTES: tuple[Route, ...] = (
    _route("GET", r"/o/oauth2/(?:v2/)?auth", authorize, "oauth.authorize"),
    _route("POST", r"/token", token, "oauth.token"),
    _route("POST", r"/revoke", revoke, "oauth.revoke"),
    _route("GET", r"/(?:v1|oauth2/v3)/userinfo", userinfo, "oauth.userinfo"),
    _route("POST", _GMAIL + r"/drafts", create_draft, "gmail.drafts.create", bearer=True),
    _route("GET", _GMAIL + r"/drafts", list_drafts, "gmail.drafts.list", bearer=True),
    _route("GET", _GMAIL + r"/drafts/(?P<id>[^/]+)", get_draft, "gmail.drafts.get", bearer=True),
    _route("POST", _GMAIL + r"/messages/send", send_message, "gmail.messages.send", bearer=True),
    _route("GET", _GMAIL + r"/messages", list_messages, "gmail.messages.list", bearer=True),
    _route("GET", _GMAIL + r"/messages/(?P<id>[^/]+)", get_message, "gmail.messages.get", bearer=True),
    _route("POST", _EVENTS, insert_event, "calendar.events.insert", bearer=True),
    _route("GET", _EVENTS + r"/(?P<event>[^/]+)", get_event, "calendar.events.get", bearer=True),
    _route("DELETE", _EVENTS + r"/(?P<event>[^/]+)", delete_event, "calendar.events.delete", bearer=True),
    _route("POST", r"/calendar/v3/freeBusy", query_freebusy, "calendar.freebusy.query", bearer=True),
    _route("POST", r"/(?:calendars/.*|freeBusy)", missing_service_path),
    _route("GET", r"/calendars/.*", missing_service_path),
    _route("GET", r"/healthz", healthz),
    _route("GET", r"/_standin/state", control_state),
    _route("GET", r"/_standin/requests", control_requests),
    _route("POST", r"/_standin/fail", control_fail),
    _route("DELETE", r"/_standin/fail", control_clear_failures),
    _route("POST", r"/_standin/accounts", control_accounts),
    _route("POST", r"/_standin/expire", control_expire),
    _route("POST", r"/_standin/revoke", control_revoke),
    _route("POST", r"/_standin/reset", control_reset),
    _route("POST", r"/_standin/clients", control_clients),
    _route("POST", r"/_standin/events", control_seed_event),
    _route("POST", r"/_standin/quirks", control_quirks),
)


def find_route(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match and route.method == method:
            return route, match.groupdict()
    return None, {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: GoogleState) -> None:
        super().__init__(address, _RequestHandler)
        self.state = state


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        state = cast(_Server, self.server).state
        # Read the whole body first: on a kept-alive connection, unread bytes would become the next request.
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        call = Call(self.command, parts.path, query, self.headers, body, state)
        route, call.params = find_route(self.command, parts.path)
        injected = False
        try:
            if route is None:
                raise api_error(404, f"Not Found: {self.command} {parts.path}", "notFound")
            reply, injected = _run(route, call)
        except StandinError as exc:
            reply = exc.reply
        except Exception:
            logger.exception("Google stand-in failed on %s %s", self.command, parts.path)
            reply = api_error(500, "Internal error in the Google stand-in", "backendError").reply
        self._send(reply)
        if route is not None and route.api is not None:
            self._record(state, route.api, call, reply, injected)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.body:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def _record(self, state: GoogleState, api: str, call: Call, reply: Reply, injected: bool) -> None:
        query = {k: (["[redacted]"] * len(v) if k in SECRET_PARAMS else v) for k, v in call.query.items()}
        entry = {
            "at": _rfc3339(time.time()),
            "method": call.method,
            "path": call.path,
            "query": query,
            "api": api,
            "status": reply.status,
            "account": call.token.email if call.token is not None else None,
            "injected": injected,
        }
        with state.lock:
            state.requests.append(entry)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The default line carries the query string, where /revoke takes its token: log the path only.
        logger.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s", format % args)


class GoogleStandin:
    """The stand-in as a server object: ``GoogleStandin(host, port).start()``, ``.url``, ``.stop()``.

    Port 0 takes a free port. ``clients`` are the OAuth clients known from the start (and after
    every reset); by default one client, ``DEFAULT_CLIENT_ID``, accepting any loopback redirect URI.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        clients: Sequence[OAuthClient] | None = None,
        access_token_lifetime_s: int = ACCESS_TOKEN_LIFETIME_S,
    ) -> None:
        known = clients if clients is not None else [OAuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)]
        self.state = GoogleState(known, access_token_lifetime_s)
        self._server = _Server((host, port), self.state)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = str(host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> GoogleStandin:
        self._thread = threading.Thread(target=self._server.serve_forever, name="google-standin", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> GoogleStandin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------
# Small helpers


def _addresses(mime: Message, header: str) -> list[str]:
    values = [str(v) for v in mime.get_all(header, [])]
    return [address.lower() for _, address in email.utils.getaddresses(values) if address]


def _text_of(part: Message | None) -> str:
    if part is None:
        return ""
    content = cast(EmailMessage, part).get_content()
    return content if isinstance(content, str) else ""


def _b64url(data: bytes, *, pad: bool = True) -> str:
    encoded = base64.urlsafe_b64encode(data).decode()
    return encoded if pad else encoded.rstrip("=")


def _rfc3339(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _new_gmail_id() -> str:
    # Gmail ids are 16 hex digits that grow with time.
    return f"{int(time.time() * 1000):011x}{secrets.randbits(20):05x}"[-16:]


def _subject_id(address: str) -> str:
    """A stable, Google-looking numeric ``sub`` for an address."""
    return "1" + str(int(hashlib.sha256(address.encode()).hexdigest(), 16))[:20]


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: flags win over GOOGLE_OAUTH_CLIENT_ID / GOOGLE_OAUTH_CLIENT_SECRET, which win over defaults."""
    parser = argparse.ArgumentParser(prog="python -m standins.google", description="A local stand-in for Google.")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--client-id", default=os.environ.get("GOOGLE_OAUTH_CLIENT_ID") or DEFAULT_CLIENT_ID)
    parser.add_argument(
        "--client-secret", default=os.environ.get("GOOGLE_OAUTH_CLIENT_SECRET") or DEFAULT_CLIENT_SECRET
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        help="a registered redirect URI (repeatable); without any, every loopback URI is accepted",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uris = tuple(args.redirect_uri or ()) or None
    standin = GoogleStandin(args.host, args.port, clients=[OAuthClient(args.client_id, args.client_secret, uris)])
    signal.signal(signal.SIGTERM, _interrupt)
    logger.info("Google stand-in listening on %s (client %s)", standin.url, args.client_id)
    try:
        standin.serve_forever()
    except KeyboardInterrupt:
        logger.info("Google stand-in stopping")
    finally:
        standin.stop()


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    main()
