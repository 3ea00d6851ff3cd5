"""OAuth scopes: what Google's sign-in asks for, and which scopes allow each API method.

A route of the stand-in names its method as the discovery documents do (`gmail.drafts.create`);
`METHOD_SCOPES` says which granted scopes let a token call it, and `routing.authenticate` holds
every bearer call to that.
"""

from __future__ import annotations

AUTH = "https://www.googleapis.com/auth/"
MAIL = "https://mail.google.com/"
USERINFO_EMAIL = AUTH + "userinfo.email"
USERINFO_PROFILE = AUTH + "userinfo.profile"
# Google answers with the full URIs of the sign-in shorthands, which oauthlib then sees as a scope change.
SCOPE_SHORTHANDS = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}
# Sign-in scopes have no checkbox on Google's consent screen: a user cannot withhold them.
SIGN_IN_SCOPES = frozenset({"openid", USERINFO_EMAIL, USERINFO_PROFILE})
GMAIL_METADATA = AUTH + "gmail.metadata"
GMAIL_METADATA_ONLY = frozenset({GMAIL_METADATA, AUTH + "gmail.addons.current.message.metadata"})
CALENDAR_APP_CREATED = AUTH + "calendar.app.created"


def _scopes(*names: str) -> frozenset[str]:
    return frozenset(name if name.startswith("https://") else AUTH + name for name in names)


# Which scopes allow each method, as google-api-python-client's discovery documents list them
# (tests/test_standin_google.py checks this copy against the documents in the venv).
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "gmail.drafts.create": _scopes(MAIL, "gmail.addons.current.action.compose", "gmail.compose", "gmail.modify"),
    "gmail.drafts.get": _scopes(MAIL, "gmail.compose", "gmail.modify", "gmail.readonly"),
    "gmail.drafts.list": _scopes(MAIL, "gmail.compose", "gmail.modify", "gmail.readonly"),
    "gmail.drafts.send": _scopes(MAIL, "gmail.addons.current.action.compose", "gmail.compose", "gmail.modify"),
    "gmail.messages.send": _scopes(
        MAIL, "gmail.addons.current.action.compose", "gmail.compose", "gmail.modify", "gmail.send"
    ),
    "gmail.messages.list": _scopes(MAIL, "gmail.metadata", "gmail.modify", "gmail.readonly"),
    "gmail.messages.get": _scopes(
        MAIL,
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


def known_scope(scope: str) -> bool:
    """Whether Google would know the scope at its consent screen (any of its API scopes)."""
    return scope in {"openid", "email", "profile", MAIL} or scope.startswith(AUTH)
