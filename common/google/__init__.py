"""Google for one user: the OAuth connection, its stored tokens, Gmail and Calendar calls, one error type."""

from __future__ import annotations

import functools
import socket
from datetime import UTC, datetime
from typing import Any, Literal

from common.log import get_logger

logger = get_logger(__name__)

# How long one Gmail or Calendar call may take before it counts as a (transient) failure.
API_TIMEOUT_SECONDS = 30.0
# Reasons Google gives with a 403 that mean "slow down", not "forbidden".
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})


def utc(moment: datetime) -> datetime:
    """A moment in UTC; a naive one (as google-auth hands them out) is taken as UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class GoogleError(Exception):
    """A Google call failed; `transient` says whether trying again later can succeed."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status = status
        self.reason = reason


class ReauthRequired(GoogleError):  # noqa: N818 - the worker's word for it: GOOGLE_REAUTH_REQUIRED
    """Google no longer honours the user's grant (invalid_grant, revoked): they must connect again."""

    def __init__(self, message: str = "Google access was revoked or has expired; connect Google again.") -> None:
        super().__init__(message, transient=False, status=401, reason="invalid_grant")


class NotConnected(GoogleError):  # noqa: N818 - a state, as GET /integrations/google names it
    """The user has no Google connection."""

    def __init__(self, message: str = "Google is not connected.") -> None:
        super().__init__(message, transient=False, status=None, reason="not_connected")


class InvalidMessage(GoogleError):  # noqa: N818 - the worker's word for it: INVALID_MESSAGE
    """An e-mail that cannot be written (the MIME library refuses a header or an address) or that
    Gmail refuses as it is (400): no later attempt can send it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False, status=400, reason="invalid_message")


# Google's OAuth endpoints; with CSCX_GOOGLE_OAUTH_BASE set (the stand-in) they are paths under it.
_GOOGLE_OAUTH_URLS = {
    "authorize": "https://accounts.google.com/o/oauth2/v2/auth",
    "token": "https://oauth2.googleapis.com/token",
    "revoke": "https://oauth2.googleapis.com/revoke",
    "userinfo": "https://openidconnect.googleapis.com/v1/userinfo",
}
_OAUTH_PATHS = {"authorize": "/o/oauth2/v2/auth", "token": "/token", "revoke": "/revoke", "userinfo": "/v1/userinfo"}


def oauth_url(endpoint: Literal["authorize", "token", "revoke", "userinfo"]) -> str:
    """Where Google's OAuth `endpoint` is for this instance: the settings' OAuth base, else Google's."""
    from common.settings import get_settings

    base = get_settings().google_oauth_base
    return f"{base}{_OAUTH_PATHS[endpoint]}" if base else _GOOGLE_OAUTH_URLS[endpoint]


def resource(api: str, version: str, token: str, path: str) -> Any:
    """The googleapiclient resource `path` of `api` ("users.drafts" of Gmail), its requests made
    with the access token `token`.

    The token is used as it is: a 401 is not answered by a refresh here (tokens.access_token
    refreshes, serialised per user), so it surfaces as ReauthRequired. The endpoint is the
    settings' API base (the stand-in locally), Google's own when that is empty.

    Building a service parses the API's discovery document, and each resource of it makes its
    methods: together more than half of a delivery's CPU in the worker (issue 19). So the instance
    builds each once, and every request gets a transport of its own, with this call's token and a
    new connection (httplib2's are not to be shared between threads): googleapiclient's way to
    use one service from many threads.
    """
    import google_auth_httplib2
    import httplib2
    from google.oauth2.credentials import Credentials

    from common.settings import get_settings

    http = google_auth_httplib2.AuthorizedHttp(
        Credentials(token),  # type: ignore[no-untyped-call]
        http=httplib2.Http(timeout=API_TIMEOUT_SECONDS),
        refresh_status_codes=(),
    )
    return _Authorized(_resource(api, version, get_settings().google_api_base, path), http)


@functools.cache
def _resource(api: str, version: str, base: str, path: str) -> Any:
    found = _service(api, version, base)
    for name in path.split("."):
        found = getattr(found, name)()
    return found


@functools.cache
def _service(api: str, version: str, base: str) -> Any:
    import httplib2
    from googleapiclient.discovery import build

    options: dict[str, str] = {}
    if base:
        # api_endpoint replaces rootUrl *and* servicePath: Calendar's "calendar/v3/" must be in it.
        options["api_endpoint"] = f"{base}/calendar/v3/" if api == "calendar" else f"{base}/"
    # Its own transport is never used: each request is given its caller's (`_Authorized`).
    return build(
        api, version, http=httplib2.Http(), static_discovery=True, cache_discovery=False, client_options=options or None
    )


class _Authorized:
    """A shared resource whose requests go through one caller's transport (its token)."""

    def __init__(self, shared: Any, http: Any) -> None:
        self._shared = shared
        self._http = http

    def __getattr__(self, method: str) -> Any:
        make = getattr(self._shared, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            made = make(*args, **kwargs)
            if not hasattr(made, "execute"):  # a resource within this one
                return _Authorized(made, self._http)
            made.http = self._http  # the request's transport (HttpRequest.http)
            return made

        return call


def execute(request: Any, *, retries: int = 0) -> dict[str, Any]:
    """Run a googleapiclient request, its failures translated into GoogleError at this one place.

    `retries` > 0 lets googleapiclient retry 5xx, 429 and connection errors itself, with
    back-off; only for requests that are safe to repeat (reads, an insert with our own id).
    """
    try:
        result = request.execute(num_retries=retries)
    except Exception as error:
        raise translate(error) from None
    return result if isinstance(result, dict) else {}


def translate(error: BaseException) -> GoogleError:
    """The GoogleError for a failure of googleapiclient, httplib2, google-auth or the socket below."""
    from google.auth import exceptions as auth_exceptions
    from googleapiclient.errors import HttpError

    if isinstance(error, GoogleError):
        return error
    if isinstance(error, HttpError):
        return _from_http_error(error)
    if isinstance(error, auth_exceptions.RefreshError):
        return ReauthRequired()
    if isinstance(error, (TimeoutError, socket.timeout)):
        return GoogleError("Google did not answer in time.", transient=True, reason="timeout")
    if isinstance(error, (ConnectionError, OSError, auth_exceptions.TransportError)) or _is_httplib2_error(error):
        return GoogleError("Google could not be reached.", transient=True, reason="connection")
    # Only the type: the message of an unknown error might quote what was sent.
    logger.warning("unexpected failure calling Google", extra={"fields": {"error": type(error).__name__}})
    return GoogleError("The call to Google failed.", transient=False, reason=type(error).__name__)


def _is_httplib2_error(error: BaseException) -> bool:
    import httplib2

    return isinstance(error, httplib2.HttpLib2Error)


def _from_http_error(error: Any) -> GoogleError:
    status = int(error.status_code)
    details = error.error_details if isinstance(error.error_details, list) else []
    reason = next((str(d.get("reason")) for d in details if isinstance(d, dict) and d.get("reason")), "")
    message = f"Google answered {status}: {error.reason}" if error.reason else f"Google answered {status}."
    if status == 401:
        return ReauthRequired()
    transient = status in {408, 429} or status >= 500 or (status == 403 and reason in _RATE_LIMIT_REASONS)
    return GoogleError(message, transient=transient, status=status, reason=reason)
