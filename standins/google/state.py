"""What the Google stand-in holds: OAuth clients, codes, grants and tokens, and each account's
mail and calendar; every read and change under `GoogleState.lock`."""

from __future__ import annotations

import email
import email.policy
import email.utils
import functools
import hashlib
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage, Message
from typing import Any, cast
from urllib.parse import urlsplit

from standins.google.wire import rfc3339

ACCESS_TOKEN_LIFETIME_S = 3599  # what Google answers in expires_in


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

    @functools.cached_property
    def message_id(self) -> str:
        # Parsed once: every message stored and every search looks at each earlier one's (raw is never changed).
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
            "to": addresses(mime, "To"),
            "cc": addresses(mime, "Cc"),
            "bcc": addresses(mime, "Bcc"),
            "subject": str(mime.get("Subject", "")),
            "body": text_of(plain),
            "html": text_of(rich) if rich is not None else None,
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
        "issued_at": rfc3339(token.issued_at),
        "expires_at": rfc3339(token.expires_at),
        "refresh_token": token.refresh_token,
        "revoked": token.revoked_at is not None,
        "expired": time.time() >= token.expires_at,
    }


def _grant_view(grant: Grant) -> dict[str, Any]:
    return {
        "token": grant.refresh_token,
        "client_id": grant.client_id,
        "scopes": list(grant.scopes),
        "issued_at": rfc3339(grant.issued_at),
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


def addresses(mime: Message, header: str) -> list[str]:
    values = [str(v) for v in mime.get_all(header, [])]
    return [address.lower() for _, address in email.utils.getaddresses(values) if address]


def text_of(part: Message | None) -> str:
    if part is None:
        return ""
    content = cast(EmailMessage, part).get_content()
    return content if isinstance(content, str) else ""


def _subject_id(address: str) -> str:
    """A stable, Google-looking numeric ``sub`` for an address."""
    return "1" + str(int(hashlib.sha256(address.encode()).hexdigest(), 16))[:20]
