"""Google's wire shapes: a reply, the APIs' and OAuth's error bodies, ids, base64url and times.

Every handler answers with a `Reply`, or raises `StandinError` with one; the error bodies are
those Gmail, Calendar and Google's OAuth endpoints send, so the real client libraries raise
their own errors from them.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

# An e-mail address as Gmail and Calendar take it in a header or an attendee.
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

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


def b64url(data: bytes, *, pad: bool = True) -> str:
    encoded = base64.urlsafe_b64encode(data).decode()
    return encoded if pad else encoded.rstrip("=")


def rfc3339(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
