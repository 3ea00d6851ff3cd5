"""Who asked, as logs and browsers see it: the request's id and trace, its log line (written when
the response closes), and CORS.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common import log
from common.auth import User
from common.http.replies import Sent
from common.settings import Settings

if TYPE_CHECKING:
    import flask

logger = log.get_logger(__name__)


def request_id() -> str:
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


def trace(request: flask.Request, project_id: str) -> str | None:
    # traceparent (W3C) first, then Google's own header: TRACE_ID/SPAN_ID;o=1
    parent = request.headers.get("traceparent", "")
    match = re.fullmatch(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}", parent)
    trace_id = match.group(1) if match else None
    if trace_id is None:
        context = request.headers.get("X-Cloud-Trace-Context", "")
        match = re.match(r"([0-9a-fA-F]{32})", context)
        trace_id = match.group(1) if match else None
    return f"projects/{project_id}/traces/{trace_id}" if trace_id else None


def cors_headers(request: flask.Request, settings: Settings) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if not origin or origin not in settings.cors_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": "ETag, X-Request-Id, Idempotent-Replayed, Retry-After",
        "Vary": "Origin",
    }


def preflight_headers(request: flask.Request, settings: Settings) -> dict[str, str]:
    if not cors_headers(request, settings):
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, X-Request-Id, Idempotency-Key",
        "Access-Control-Max-Age": "3600",
    }


@dataclass
class RequestLog:
    """The request's log line, written when the response closes: the real status, the bytes
    sent and the whole duration, a stream's included."""

    request: flask.Request
    started: float
    user: User | None
    request_id: str
    trace: str | None
    status: int
    sent: Sent

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
