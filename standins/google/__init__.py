"""A local stand-in for Google's OAuth 2.0, Gmail v1 and Calendar v3 REST APIs.

It answers in Google's own wire shapes, so google-auth, google-auth-oauthlib and
google-api-python-client run against it unchanged with only their base URLs changed; a
control API under ``/_standin/`` lets tests read what was sent, inject failures and play the
user on Google's consent screen. Stdlib only; one server is both ``CSCX_GOOGLE_OAUTH_BASE``
and ``CSCX_GOOGLE_API_BASE``:

    GET  /o/oauth2/v2/auth                       consent (automatic), 302 to redirect_uri
    POST /token     POST /revoke     GET /v1/userinfo (and /oauth2/v3/userinfo)
    POST /gmail/v1/users/{userId}/drafts         GET .../drafts?q=..., .../drafts/{id}; POST .../drafts/send
    POST /gmail/v1/users/{userId}/messages/send  GET .../messages?q=rfc822msgid:..., .../messages/{id}
    POST /calendar/v3/calendars/{calendarId}/events   GET|DELETE .../events/{eventId}
    POST /calendar/v3/freeBusy
    GET  /healthz   and the control API: GET /_standin/state, /_standin/requests;
    POST /_standin/fail, accounts, expire, revoke, reset, clients, events, quirks; DELETE /_standin/fail

One module per API: `oauth`, `gmail`, `calendar` and `control` each hold their handlers and their
`ROUTES`; `scopes` says which scopes allow each method, `routing` checks them (and injects
failures) around every handler, `state` is what is held, `wire` Google's reply and error shapes,
`server` the table of routes and the server. A new method is a handler and a route in its API's
module and its scopes in `scopes.METHOD_SCOPES`.

Run it with ``python -m standins.google --host 127.0.0.1 --port 8091``.
"""

from standins.google.scopes import METHOD_SCOPES
from standins.google.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, GoogleStandin, main
from standins.google.state import OAuthClient

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "METHOD_SCOPES", "GoogleStandin", "OAuthClient", "main"]
