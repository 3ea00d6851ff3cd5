"""A small typed client for the Google stand-in's control API (``/_standin/...``), for tests.

Stdlib only, like the stand-in, so anything that can start the stand-in can drive it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, TypedDict, cast


class RecordedRequest(TypedDict):
    """One API request as the stand-in logged it; secret query values read ``[redacted]``."""

    at: str
    method: str
    path: str
    query: dict[str, list[str]]
    api: str
    status: int
    account: str | None
    injected: bool


class GoogleStandinError(Exception):
    """The control API refused a request."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Google stand-in control API answered {status}: {body}")
        self.status = status
        self.body = body


class GoogleStandinClient:
    """Drives a running stand-in: ``GoogleStandinClient("http://127.0.0.1:8091")``."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/healthz") == {"status": "ok"}
        except (OSError, GoogleStandinError):
            return False

    def state(self) -> dict[str, Any]:
        """Everything held, per Google account: sent, drafts, events, tokens, codes; plus consent and failures."""
        return self._call("GET", "/_standin/state")

    def account(self, email: str) -> dict[str, Any]:
        """One account's part of :meth:`state` (empty lists when the stand-in has not seen it)."""
        empty = ("sent", "drafts", "events", "access_tokens", "refresh_tokens", "authorization_codes")
        known: dict[str, Any] = self.state()["accounts"].get(email.lower(), {})
        return {key: [] for key in empty} | known

    def requests(self, api: str | None = None) -> list[RecordedRequest]:
        """The API requests served so far, oldest first; ``api`` keeps one kind, e.g. "gmail.messages.send"."""
        logged = cast(list[RecordedRequest], self._call("GET", "/_standin/requests")["requests"])
        return [r for r in logged if api is None or r["api"] == api]

    def fail(
        self,
        api: str,
        status: int | None = 503,
        *,
        times: int | None = 1,
        reason: str | None = None,
        message: str | None = None,
        delay_ms: int = 0,
        after_effect: bool = False,
    ) -> None:
        """Makes the next ``times`` calls of ``api`` fail with ``status`` (None: only ``delay_ms``).

        With ``after_effect`` the effect happens first (the mail is sent, the event stored) and
        the error is answered after it, as when a response is lost on the way back.
        """
        self._call(
            "POST",
            "/_standin/fail",
            {
                "api": api,
                "status": status,
                "times": times,
                "reason": reason,
                "message": message,
                "delay_ms": delay_ms,
                "after_effect": after_effect,
            },
        )

    def clear_failures(self) -> None:
        self._call("DELETE", "/_standin/fail")

    def reset(self) -> None:
        """Forgets everything but the OAuth clients the stand-in was started with."""
        self._call("POST", "/_standin/reset")

    def set_account(self, email: str | None, *, scopes: Sequence[str] | None = None, deny: bool = False) -> None:
        """Who signs in at the next consents (until changed), what they grant (None: all asked), or a refusal."""
        self._call(
            "POST",
            "/_standin/accounts",
            {"email": email, "scopes": list(scopes) if scopes is not None else None, "deny": deny},
        )

    def expire_tokens(self, email: str) -> int:
        """Expires every access token of the account now; returns how many."""
        return int(self._call("POST", "/_standin/expire", {"email": email})["expired"])

    def revoke(
        self, email: str | None = None, *, client_id: str | None = None, refresh_token: str | None = None
    ) -> int:
        """Revokes access as the user would at Google; returns how many refresh tokens died."""
        body = {"email": email, "client_id": client_id, "refresh_token": refresh_token}
        return int(self._call("POST", "/_standin/revoke", body)["revoked_refresh_tokens"])

    def register_client(self, client_id: str, client_secret: str, redirect_uris: Sequence[str] | None) -> None:
        """Adds an OAuth client; ``redirect_uris=None`` accepts any loopback URI."""
        uris = list(redirect_uris) if redirect_uris is not None else None
        self._call(
            "POST",
            "/_standin/clients",
            {"client_id": client_id, "client_secret": client_secret, "redirect_uris": uris},
        )

    def seed_event(
        self, email: str, start: str, end: str, *, summary: str = "Busy", transparent: bool = False
    ) -> dict[str, Any]:
        """Puts an event (RFC 3339 start and end) on the account's primary calendar; returns it."""
        body: dict[str, Any] = {"email": email, "start": {"dateTime": start}, "end": {"dateTime": end}}
        body["summary"] = summary
        if transparent:
            body["transparency"] = "transparent"
        return self._call("POST", "/_standin/events", body)

    def set_quirks(self, *, gmail_send_rewrites_message_id: bool) -> None:
        """Reported Gmail behaviour on demand: messages.send replacing the client's Message-ID."""
        self._call("POST", "/_standin/quirks", {"gmail_send_rewrites_message_id": gmail_send_rewrites_message_id})

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (the URL is the stand-in's, http by design)
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return cast(dict[str, Any], json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            raise GoogleStandinError(exc.code, exc.read().decode("utf-8", "replace")) from exc
