"""common.google against the Google stand-in and the Firestore emulator, through the real libraries.

google-auth-oauthlib makes the consent URL and exchanges the code, google-auth refreshes,
googleapiclient calls Gmail and Calendar; only their endpoints point at the stand-in (the
stack's settings). What the tests read back comes from the stand-in's control API and from
Firestore directly, never from the code under test.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from common import google
from common.collections import GOOGLE_GRANTS, INTEGRATIONS
from common.errors import ApiError, Code
from common.google import calendar, gmail, integration, oauth, tokens
from common.log import CloudLoggingFormatter
from common.settings import get_settings
from common.store import Repository
from scripts.stack import Stack
from standins.google import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from standins.google_client import GoogleStandinClient
from tests.conftest import Caller, Instance, raw_firestore

WEB_APP = "http://localhost:3000/settings/integrations"
EMAIL = "csm@customer-success.test"
AUTH = "https://www.googleapis.com/auth/"


@pytest.fixture
def google_standin(stack: Stack, fresh_instance: Instance) -> Iterator[GoogleStandinClient]:
    """The stack's Google stand-in, emptied, with the OAuth settings the connection needs (in this
    process, for this test)."""
    fresh_instance(  # the OAuth client as the stand-in reads it
        GOOGLE_OAUTH_CLIENT_ID=os.environ.get("GOOGLE_OAUTH_CLIENT_ID") or DEFAULT_CLIENT_ID,
        GOOGLE_OAUTH_CLIENT_SECRET=os.environ.get("GOOGLE_OAUTH_CLIENT_SECRET") or DEFAULT_CLIENT_SECRET,
        CSCX_OAUTH_REDIRECT_URL=f"{stack.url('crud')}/integrations/google/callback",
        CSCX_WEB_APP_URL=WEB_APP,
    )
    client = GoogleStandinClient(f"http://127.0.0.1:{stack.ports.google}")
    client.reset()
    client.set_account(EMAIL)
    try:
        yield client
    finally:
        client.reset()


class LogCapture(logging.Handler):
    """Every log record of the test, as the JSON lines Cloud Logging would receive."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(CloudLoggingFormatter())
        self.stream = io.StringIO()

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """All logging, DEBUG and up (the libraries' too), captured for the test."""
    root = logging.getLogger()
    capture = LogCapture()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


# -- helpers ---------------------------------------------------------------------------------


def consent(auth_url: str) -> dict[str, str]:
    """The browser at Google's consent screen: the stand-in answers at once with a redirect."""
    response = requests.get(auth_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(get_settings().oauth_redirect_url + "?")
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def callback(user: Caller) -> str:
    """The user asks to connect and consents at Google; where the callback sends the browser."""
    redirect = consent(oauth.authorization_url(Repository(user.uid)))
    return oauth.complete_authorization(redirect.get("code"), redirect.get("state"), redirect.get("error"))


def grant_of(redirect: str) -> str:
    """The one-time handle of the grant a callback parked, from the redirect to the web app."""
    assert redirect.startswith(WEB_APP + "?"), redirect
    query = parse_qs(urlsplit(redirect).query)
    assert query["google"] == ["pending"], redirect
    [handle] = query["grant"]
    return handle


def connect(user: Caller) -> dict[str, Any]:
    """Connect the user's Google account end to end (consent, callback, completion); the connection."""
    return oauth.complete_connection(Repository(user.uid), grant_of(callback(user)))


def no_such_grant(user: Caller, handle: str) -> None:
    with pytest.raises(ApiError) as refused:
        oauth.complete_connection(Repository(user.uid), handle)
    assert (refused.value.code, refused.value.message) == (Code.NOT_FOUND, "No such Google grant.")


def _grants_of(uid: str) -> list[Any]:
    from google.cloud.firestore import FieldFilter

    return list(raw_firestore().collection("google_grants").where(filter=FieldFilter("owner_id", "==", uid)).stream())


def grant_documents(uid: str) -> list[dict[str, Any]]:
    """The user's parked grants and grants owed a revoke, as stored."""
    return [snapshot.to_dict() or {} for snapshot in _grants_of(uid)]


def make_due(user: Caller, field: str) -> None:
    """Move the user's one grant document's `field` (expires_at, revoke_after) to the past."""
    [snapshot] = _grants_of(user.uid)
    past = datetime.now(UTC) - timedelta(seconds=1)
    Repository(user.uid).update(GOOGLE_GRANTS, str(snapshot.id), lambda _current: {field: past})


def refresh_tokens_revoked(google_standin: GoogleStandinClient, email: str = EMAIL) -> list[bool]:
    return [t["revoked"] for t in google_standin.account(email)["refresh_tokens"]]


def stored(collection: str, doc_id: str) -> dict[str, Any] | None:
    snapshot = raw_firestore().collection(collection).document(doc_id).get()
    return snapshot.to_dict() if snapshot.exists else None


def state_documents(uid: str) -> list[dict[str, Any]]:
    from google.cloud.firestore import FieldFilter

    query = raw_firestore().collection("oauth_states").where(filter=FieldFilter("owner_id", "==", uid))
    return [snapshot.to_dict() or {} for snapshot in query.stream()]


def error_reason(redirect: str) -> str | None:
    assert redirect.startswith(WEB_APP + "?"), redirect
    query = parse_qs(urlsplit(redirect).query)
    assert query["google"] == ["error"], redirect
    return query["reason"][0]


def secrets_at_google(google_standin: GoogleStandinClient, email: str = EMAIL) -> list[str]:
    """Every access token, refresh token and authorization code the stand-in ever issued the account."""
    account = google_standin.account(email)
    return [
        *(t["token"] for t in account["access_tokens"]),
        *(t["token"] for t in account["refresh_tokens"]),
        *(c["code"] for c in account["authorization_codes"]),
    ]


def token_requests(google_standin: GoogleStandinClient) -> int:
    return len(google_standin.requests("oauth.token"))


def set_expiry(user: Caller, expires_at: datetime) -> None:
    Repository(user.uid).update(INTEGRATIONS, user.uid, lambda _current: {"expires_at": expires_at})


def current_access_token(google_standin: GoogleStandinClient) -> str:
    """The newest usable access token the stand-in issued."""
    usable = [t for t in google_standin.account(EMAIL)["access_tokens"] if not t["revoked"] and not t["expired"]]
    return str(usable[-1]["token"])


def message(
    action_id: str,
    *,
    to: list[str] | None = None,
    cc: list[str] | None = None,
    subject: str = "Renewal next steps",
) -> Any:
    return gmail.build_message(
        sender=EMAIL,
        to=to if to is not None else ["Anna Schmidt <anna@customer.test>"],
        cc=cc if cc is not None else ["bo@customer.test"],
        subject=subject,
        body="Hi Anna,\n\nhere are the next steps for the renewal — grüße.\n",
        message_id=gmail.message_id_for(action_id),
        action_id=action_id,
    )


# -- connecting ------------------------------------------------------------------------------


def test_connecting_stores_only_ciphertext_with_the_google_email_and_granted_scopes(
    google_standin: GoogleStandinClient, alice: Caller, logs: LogCapture
) -> None:
    repo = Repository(alice.uid)
    auth_url = oauth.authorization_url(repo)

    asked = {name: values[0] for name, values in parse_qs(urlsplit(auth_url).query).items()}
    assert auth_url.startswith(f"{get_settings().google_oauth_base}/o/oauth2/v2/auth?")
    assert asked["access_type"] == "offline"
    assert asked["prompt"] == "consent"
    assert "include_granted_scopes" not in asked  # nothing an earlier consent granted rides along
    assert asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"] == get_settings().oauth_redirect_url
    assert asked["client_id"] == get_settings().google_oauth_client_id
    assert asked["scope"].split() == list(oauth.SCOPES)
    assert re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){2}", asked["state"])  # payload.time.signature, URL-safe
    [pending] = state_documents(alice.uid)
    assert set(pending) >= {"code_verifier_enc", "expires_at"}
    assert timedelta(minutes=9) < pending["expires_at"] - datetime.now(UTC) <= timedelta(minutes=10)

    redirect = consent(auth_url)
    assert redirect["state"] == asked["state"]
    handle = grant_of(oauth.complete_authorization(redirect["code"], redirect["state"], None))

    # Parked, sealed, until alice herself completes it: nothing is connected yet.
    assert stored("integrations", alice.uid) is None
    [parked] = grant_documents(alice.uid)
    assert parked["state"] == "parked"
    assert timedelta(minutes=9) < parked["expires_at"] - datetime.now(UTC) <= timedelta(minutes=10)
    issued = secrets_at_google(google_standin)
    assert not [secret for secret in issued if secret in json.dumps(parked, default=str) + handle]

    assert oauth.complete_connection(repo, handle) == {
        "status": "connected",
        "google_email": EMAIL,
        "scopes": sorted(oauth.SCOPES),
    }
    assert grant_documents(alice.uid) == []  # the grant is the connection now
    document = stored("integrations", alice.uid)
    assert document is not None
    assert document["owner_id"] == alice.uid
    assert document["google_email"] == EMAIL
    assert document["google_sub"]  # the account's stable id, from userinfo
    assert set(document["scopes"]) == set(oauth.SCOPES)
    assert document["status"] == "connected"
    assert timedelta(minutes=55) < document["expires_at"] - datetime.now(UTC) <= timedelta(hours=1)
    issued = secrets_at_google(google_standin)
    assert len(issued) == 3  # the code, its access token and its refresh token
    as_text = json.dumps(document, default=str)
    assert not [secret for secret in issued if secret in as_text]
    assert document["access_token_enc"].startswith("v1.")
    assert tokens.decrypt(alice.uid, "refresh_token", document["refresh_token_enc"]) in issued
    assert state_documents(alice.uid) == []  # the state is spent
    [code] = google_standin.account(EMAIL)["authorization_codes"]
    assert code["pkce"] is True
    assert code["used"] is True

    public = integration.connection(repo)
    assert public is not None
    assert (public["status"], public["google_email"]) == ("connected", EMAIL)
    assert set(public) == {"status", "google_email", "scopes"}
    assert oauth.connection_status(repo) == {
        "status": "connected",
        "google_email": EMAIL,
        "scopes": sorted(oauth.SCOPES),
    }
    assert not [secret for secret in issued if secret in logs.text]


def test_forged_state_is_refused_and_stores_nothing(
    google_standin: GoogleStandinClient, alice: Caller, bob: Caller
) -> None:
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))
    payload, timestamp, signature = redirect["state"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["u"] == alice.uid
    as_bob = base64.urlsafe_b64encode(json.dumps({**claims, "u": bob.uid}).encode()).decode().rstrip("=")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    later = base64.urlsafe_b64encode(int(time.time() + 3600).to_bytes(4, "big")).decode().rstrip("=")

    forgeries = [
        f"{as_bob}.{timestamp}.{signature}",  # someone else's uid under alice's signature
        f"{payload}.{later}.{signature}",  # a later time of signing, to outlive the 10 minutes
        f"{payload}.{timestamp}.{flipped}",
        f"{payload}.{timestamp}",
        payload,
        "",
        "a.b.c",
        None,
        "é.ü",
    ]
    for forged in forgeries:
        assert error_reason(oauth.complete_authorization(redirect["code"], forged, None)) == "invalid_state"

    assert stored("integrations", alice.uid) is None
    assert stored("integrations", bob.uid) is None
    assert token_requests(google_standin) == 0  # no code was exchanged
    assert len(state_documents(alice.uid)) == 1  # and the genuine state is still unspent


def test_expired_state_is_refused_and_stores_nothing(
    google_standin: GoogleStandinClient, alice: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oauth, "STATE_LIFETIME", timedelta(seconds=-1))
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))

    assert error_reason(oauth.complete_authorization(redirect["code"], redirect["state"], None)) == "expired_state"
    assert stored("integrations", alice.uid) is None
    assert token_requests(google_standin) == 0
    assert state_documents(alice.uid) == []


def test_replayed_state_is_refused(google_standin: GoogleStandinClient, alice: Caller) -> None:
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))
    grant_of(oauth.complete_authorization(redirect["code"], redirect["state"], None))
    first = grant_documents(alice.uid)

    assert error_reason(oauth.complete_authorization(redirect["code"], redirect["state"], None)) == "invalid_state"
    # Nor with a fresh code from another consent: the state, not the code, is what is spent.
    other = consent(oauth.authorization_url(Repository(alice.uid)))
    assert error_reason(oauth.complete_authorization(other["code"], redirect["state"], None)) == "invalid_state"
    assert token_requests(google_standin) == 1
    assert grant_documents(alice.uid) == first


def test_state_submitted_five_times_at_once_connects_once(google_standin: GoogleStandinClient, alice: Caller) -> None:
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))
    start = threading.Barrier(5)
    answers: list[str] = []

    def submit() -> None:
        start.wait()
        answers.append(oauth.complete_authorization(redirect["code"], redirect["state"], None))

    threads = [threading.Thread(target=submit) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    refused = [answer for answer in answers if "google=error" in answer]
    assert refused == [f"{WEB_APP}?google=error&reason=invalid_state"] * 4
    [parked] = [answer for answer in answers if answer not in refused]
    assert oauth.complete_connection(Repository(alice.uid), grant_of(parked))["status"] == "connected"
    assert token_requests(google_standin) == 1  # the code was exchanged once
    assert len(grant_documents(alice.uid)) == 0


def test_state_signed_for_another_user_does_not_reach_the_first_users_nonce(
    google_standin: GoogleStandinClient, alice: Caller, bob: Caller
) -> None:
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))
    alices = oauth._verify(redirect["state"])
    # Even a correctly signed state naming bob cannot spend alice's nonce: bob's repository
    # does not see it.
    as_bob = oauth._sign(oauth._State(bob.uid, alices.nonce))

    assert error_reason(oauth.complete_authorization(redirect["code"], as_bob, None)) == "invalid_state"
    assert grant_documents(bob.uid) == []
    assert grant_documents(alice.uid) == []
    assert len(state_documents(alice.uid)) == 1
    grant_of(oauth.complete_authorization(redirect["code"], redirect["state"], None))
    assert len(grant_documents(alice.uid)) == 1
    assert grant_documents(bob.uid) == []


def test_user_declining_at_google_is_sent_back_with_access_denied(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    google_standin.set_account(EMAIL, deny=True)
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))
    assert redirect["error"] == "access_denied"
    assert "code" not in redirect

    assert error_reason(oauth.complete_authorization(None, redirect["state"], redirect["error"])) == "access_denied"
    assert error_reason(oauth.complete_authorization(None, redirect["state"], "no such error")) == "invalid_state"
    assert stored("integrations", alice.uid) is None
    assert state_documents(alice.uid) == []


def test_unexpected_error_from_google_is_passed_on_as_google_error(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))
    reason = error_reason(oauth.complete_authorization(None, redirect["state"], "<script>alert(1)</script>"))
    assert reason == "google_error"


def test_consent_without_every_scope_is_refused_as_missing_scopes(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    google_standin.set_account(EMAIL, scopes=[AUTH + "gmail.compose"])  # the user unticks the rest

    assert error_reason(callback(alice)) == "missing_scopes"
    assert grant_documents(alice.uid) == []
    assert stored("integrations", alice.uid) is None


def test_code_google_refuses_is_exchange_failed_and_google_down_is_google_unavailable(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))
    assert error_reason(oauth.complete_authorization("4/0not-a-code", redirect["state"], None)) == "exchange_failed"

    google_standin.fail("oauth.token", 503, times=None)
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))
    assert error_reason(oauth.complete_authorization(redirect["code"], redirect["state"], None)) == (
        "google_unavailable"
    )
    assert grant_documents(alice.uid) == []


def test_disconnect_revokes_at_google_and_deletes_the_tokens(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    repo = Repository(alice.uid)

    oauth.disconnect(repo)

    assert stored("integrations", alice.uid) is None
    assert grant_documents(alice.uid) == []  # revoked: nothing owed
    assert oauth.connection_status(repo)["status"] == "disconnected"
    assert refresh_tokens_revoked(google_standin) == [True]
    with pytest.raises(google.NotConnected):
        tokens.access_token(repo)
    oauth.disconnect(repo)  # nothing left: nothing to do


def test_disconnect_google_cannot_answer_keeps_nothing_usable_and_the_next_connect_revokes(
    google_standin: GoogleStandinClient, alice: Caller, logs: LogCapture
) -> None:
    connect(alice)
    repo = Repository(alice.uid)
    google_standin.fail("oauth.revoke", 503)

    oauth.disconnect(repo)

    assert stored("integrations", alice.uid) is None
    with pytest.raises(google.NotConnected):
        tokens.access_token(repo)
    assert refresh_tokens_revoked(google_standin) == [False]
    [owed] = grant_documents(alice.uid)
    assert (owed["state"], owed["revoke_attempts"]) == ("to_revoke", 1)
    assert timedelta(seconds=50) < owed["revoke_after"] - datetime.now(UTC) <= timedelta(minutes=1)
    refresh_token = google_standin.account(EMAIL)["refresh_tokens"][0]["token"]
    assert refresh_token not in json.dumps(owed, default=str)
    with pytest.raises(tokens.InvalidCiphertextError):  # sealed to be revoked, not to be used
        tokens.decrypt(alice.uid, "refresh_token", owed["refresh_token_enc"])
    assert [e["status"] for e in logs.entries() if e["message"] == "Google revoke refused"] == [503]

    oauth.authorization_url(repo)  # not due yet: Google is not asked
    assert len(google_standin.requests("oauth.revoke")) == 1
    make_due(alice, "revoke_after")
    oauth.authorization_url(repo)  # the next connect, once due: revoked, and forgotten

    assert refresh_tokens_revoked(google_standin) == [True]
    assert grant_documents(alice.uid) == []
    assert [r["status"] for r in google_standin.requests("oauth.revoke")] == [503, 200]


def test_disconnect_of_a_grant_google_ended_already_owes_nothing(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    google_standin.revoke(EMAIL)  # the user removed the app at Google

    oauth.disconnect(Repository(alice.uid))

    assert stored("integrations", alice.uid) is None
    assert grant_documents(alice.uid) == []
    assert [r["status"] for r in google_standin.requests("oauth.revoke")] == [400]


# -- completing: only who asked, once, in time -------------------------------------------------


def test_a_grant_completed_by_another_user_connects_no_one_and_is_revoked(
    google_standin: GoogleStandinClient, alice: Caller, bob: Caller
) -> None:
    victim = "victim@customer-success.test"
    google_standin.set_account(victim)  # alice's consent link, followed by bob at Google
    handle = grant_of(callback(alice))

    no_such_grant(bob, handle)  # bob's browser comes back to the web app, signed in as bob

    assert stored("integrations", alice.uid) is None
    assert stored("integrations", bob.uid) is None
    assert grant_documents(alice.uid) == []
    assert grant_documents(bob.uid) == []
    assert refresh_tokens_revoked(google_standin, victim) == [True]  # bob never meant it for alice
    no_such_grant(alice, handle)  # and alice cannot complete it after bob tried
    assert stored("integrations", alice.uid) is None


def test_a_grant_presented_by_a_user_connected_to_the_same_account_is_dropped_not_revoked(
    google_standin: GoogleStandinClient, alice: Caller, bob: Caller
) -> None:
    connect(bob)  # bob's own connection to csm@...
    handle = grant_of(callback(alice))  # alice's link, followed by bob with the same account

    no_such_grant(bob, handle)

    assert grant_documents(alice.uid) == []
    assert stored("integrations", alice.uid) is None
    # Revoking the dropped grant would have ended bob's own connection: Google revokes per account.
    assert refresh_tokens_revoked(google_standin) == [False, False]
    assert tokens.access_token(Repository(bob.uid))


def test_a_grant_completes_once(google_standin: GoogleStandinClient, alice: Caller) -> None:
    handle = grant_of(callback(alice))
    assert oauth.complete_connection(Repository(alice.uid), handle)["status"] == "connected"
    first = stored("integrations", alice.uid)

    no_such_grant(alice, handle)

    assert stored("integrations", alice.uid) == first


def test_a_grant_completed_after_10_minutes_is_refused_and_revoked(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    handle = grant_of(callback(alice))
    make_due(alice, "expires_at")

    no_such_grant(alice, handle)

    assert stored("integrations", alice.uid) is None
    assert grant_documents(alice.uid) == []
    assert refresh_tokens_revoked(google_standin) == [True]


def test_a_grant_never_completed_is_revoked_at_the_next_connect(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    grant_of(callback(alice))  # the browser never came back to the web app
    make_due(alice, "expires_at")

    oauth.authorization_url(Repository(alice.uid))

    assert grant_documents(alice.uid) == []
    assert refresh_tokens_revoked(google_standin) == [True]


def test_handles_that_are_not_grants_are_404(google_standin: GoogleStandinClient, alice: Caller, bob: Caller) -> None:
    redirect = consent(oauth.authorization_url(Repository(alice.uid)))
    handle = grant_of(oauth.complete_authorization(redirect["code"], redirect["state"], None))
    flipped = handle[:10] + ("A" if handle[10] != "A" else "B") + handle[11:]
    for wrong in [flipped, handle[:-3], redirect["state"], redirect["code"], "", "x" * 2000, "é"]:
        no_such_grant(alice, wrong)
    # Sealed around another uid and id by someone without the key, it cannot be made either.
    assert len(grant_documents(alice.uid)) == 1
    assert oauth.complete_connection(Repository(alice.uid), handle)["status"] == "connected"


def test_reconnecting_another_account_revokes_the_replaced_grant(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    other = "other@customer-success.test"
    google_standin.set_account(other)

    assert connect(alice)["google_email"] == other

    assert refresh_tokens_revoked(google_standin, EMAIL) == [True]
    assert refresh_tokens_revoked(google_standin, other) == [False]
    assert grant_documents(alice.uid) == []
    assert tokens.access_token(Repository(alice.uid))


def test_reconnecting_the_same_account_keeps_its_renewed_consent(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    first = stored("integrations", alice.uid)

    assert connect(alice)["status"] == "connected"

    # Google's revoke ends every token of the account's consent: revoking the replaced refresh
    # token would end the new one too. Nothing is revoked, nothing owed.
    assert refresh_tokens_revoked(google_standin) == [False, False]
    assert grant_documents(alice.uid) == []
    second = stored("integrations", alice.uid)
    assert first is not None
    assert second is not None
    assert second["refresh_token_enc"] != first["refresh_token_enc"]
    assert tokens.access_token(Repository(alice.uid))


# -- the access token ------------------------------------------------------------------------


def test_access_token_is_refreshed_when_it_expires_within_5_minutes_and_not_before(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    repo = Repository(alice.uid)
    first = current_access_token(google_standin)

    set_expiry(alice, datetime.now(UTC) + timedelta(minutes=6))
    assert tokens.access_token(repo) == first
    assert token_requests(google_standin) == 1  # the code exchange only

    set_expiry(alice, datetime.now(UTC) + timedelta(minutes=4))
    refreshed = tokens.access_token(repo)

    assert refreshed != first
    assert token_requests(google_standin) == 2
    assert refreshed == current_access_token(google_standin)
    document = stored("integrations", alice.uid)
    assert document is not None
    assert tokens.decrypt(alice.uid, "access_token", document["access_token_enc"]) == refreshed
    assert document["expires_at"] - datetime.now(UTC) > timedelta(minutes=55)
    assert document["refresh_lease"] is None
    assert tokens.access_token(repo) == refreshed  # and now fresh: no third request
    assert token_requests(google_standin) == 2


def test_ten_concurrent_callers_with_an_expiring_token_make_one_refresh(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    set_expiry(alice, datetime.now(UTC) + timedelta(seconds=90))
    start = threading.Barrier(10)
    results: list[str] = []
    failures: list[BaseException] = []

    def call() -> None:
        start.wait()
        try:
            results.append(tokens.access_token(Repository(alice.uid)))
        except BaseException as failure:
            failures.append(failure)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert len(results) == 10
    assert [r["status"] for r in google_standin.requests("oauth.token")] == [200, 200]  # the code, one refresh
    assert set(results) == {current_access_token(google_standin)}


def test_revoked_refresh_token_raises_reauth_required_and_marks_needs_reauth(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    repo = Repository(alice.uid)
    google_standin.revoke(EMAIL)  # the user removes the app at myaccount.google.com
    set_expiry(alice, datetime.now(UTC) + timedelta(minutes=1))

    with pytest.raises(google.ReauthRequired) as refused:
        tokens.access_token(repo)

    assert refused.value.transient is False
    document = stored("integrations", alice.uid)
    assert document is not None
    assert document["status"] == "needs_reauth"
    assert "invalid_grant" in document["last_error"]
    assert document["refresh_lease"] is None
    assert oauth.connection_status(repo) == {
        "status": "needs_reauth",
        "google_email": EMAIL,
        "scopes": sorted(oauth.SCOPES),
    }
    asked = token_requests(google_standin)
    with pytest.raises(google.ReauthRequired):
        tokens.access_token(repo)
    assert token_requests(google_standin) == asked  # marked: refused without asking Google
    assert connect(alice)["status"] == "connected"  # connecting again heals it
    healed = stored("integrations", alice.uid)
    assert healed is not None
    assert (healed["status"], healed["last_error"]) == ("connected", None)


def test_refresh_google_cannot_serve_now_is_transient_and_releases_the_lease(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    repo = Repository(alice.uid)
    set_expiry(alice, datetime.now(UTC) + timedelta(minutes=1))
    google_standin.fail("oauth.token", 503, times=None)

    with pytest.raises(google.GoogleError) as failed:
        tokens.access_token(repo)

    assert failed.value.transient is True
    assert not isinstance(failed.value, google.ReauthRequired)
    document = stored("integrations", alice.uid)
    assert document is not None
    assert (document["status"], document["refresh_lease"]) == ("connected", None)
    google_standin.clear_failures()
    assert tokens.access_token(repo) == current_access_token(google_standin)


def test_user_without_a_connection_is_not_connected(google_standin: GoogleStandinClient, bob: Caller) -> None:
    repo = Repository(bob.uid)
    assert integration.connection(repo) is None
    assert oauth.connection_status(repo) == {"status": "disconnected", "google_email": None, "scopes": []}
    with pytest.raises(google.NotConnected):
        tokens.access_token(repo)


# -- sealing ---------------------------------------------------------------------------------


def test_sealed_token_opens_only_for_its_user_and_field_and_untampered(stack: Stack) -> None:
    secret = "ya29.a0-secret-access-token"
    sealed = tokens.encrypt("uid-a", "access_token", secret)

    assert tokens.decrypt("uid-a", "access_token", sealed) == secret
    assert secret not in sealed
    assert tokens.encrypt("uid-a", "access_token", secret) != sealed  # a fresh nonce each time
    version, nonce, body = sealed.split(".")
    assert version == "v1"
    assert len(base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))) == 12
    tampered_body = body[:5] + ("A" if body[5] != "A" else "B") + body[6:]
    for wrong_uid, wrong_field, wrong_value in [
        ("uid-b", "access_token", sealed),  # moved to another user
        ("uid-a", "refresh_token", sealed),  # moved to another field
        ("uid-a", "access_token", f"{version}.{nonce}.{tampered_body}"),
        ("uid-a", "access_token", f"v2.{nonce}.{body}"),
        ("uid-a", "access_token", "not sealed at all"),
    ]:
        with pytest.raises(tokens.InvalidCiphertextError) as refused:
            tokens.decrypt(wrong_uid, wrong_field, wrong_value)
        assert secret not in str(refused.value)


def test_sealed_token_does_not_open_under_another_key(stack: Stack, fresh_instance: Instance) -> None:
    sealed = tokens.encrypt("uid-a", "refresh_token", "1//0-refresh")
    fresh_instance(CSCX_TOKEN_ENCRYPTION_KEY=base64.b64encode(bytes(range(32))).decode())
    with pytest.raises(tokens.InvalidCiphertextError):
        tokens.decrypt("uid-a", "refresh_token", sealed)


def test_stored_token_that_no_longer_opens_asks_the_user_to_connect_again(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    other = tokens.encrypt("someone-else", "access_token", "ya29.x")
    Repository(alice.uid).update(INTEGRATIONS, alice.uid, lambda _current: {"access_token_enc": other})

    with pytest.raises(google.ReauthRequired):
        tokens.access_token(Repository(alice.uid))
    document = stored("integrations", alice.uid)
    assert document is not None
    assert document["status"] == "needs_reauth"


# -- Gmail -----------------------------------------------------------------------------------


def test_message_carries_the_action_message_id_and_header_as_plain_utf8_text() -> None:
    built = message("Xa91kQ2sLmP0", subject="Renewal\r\nBcc: everyone@evil.test")

    assert gmail.message_id_for("Xa91kQ2sLmP0") == "<action-Xa91kQ2sLmP0@cscx.app>"
    assert built["Message-ID"] == "<action-Xa91kQ2sLmP0@cscx.app>"
    assert built["X-CSCX-Action-Id"] == "Xa91kQ2sLmP0"
    assert built["Subject"] == "Renewal Bcc: everyone@evil.test"  # one line: no header smuggled in
    assert "Bcc" not in built
    assert built["Date"]
    assert built.get_content_type() == "text/plain"
    assert built.get_content_charset() == "utf-8"
    assert "grüße" in built.get_content()
    assert gmail.message_id_for("a b") == gmail.message_id_for("a b")  # stable when hashed too
    assert re.fullmatch(r"<action-[0-9a-f]{40}@cscx\.app>", gmail.message_id_for("a b"))


def test_a_draft_is_found_by_its_message_id_and_sent_as_a_new_message(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    token = tokens.access_token(Repository(alice.uid))
    message_id = gmail.message_id_for("act-1")
    assert gmail.find_draft(token, message_id=message_id) is None

    draft = gmail.create_draft(token, message("act-1"))
    gmail.create_draft(token, message("another-action", subject="Something else"))

    [at_google, _] = google_standin.account(EMAIL)["drafts"]
    assert draft == {
        "draft_id": at_google["id"],
        "message_id": at_google["message"]["id"],
        "thread_id": at_google["message"]["threadId"],
    }
    assert gmail.find_draft(token, message_id=message_id) == draft
    assert [r["query"]["q"] for r in google_standin.requests("gmail.drafts.list")] == [
        ["rfc822msgid:action-act-1@cscx.app"]
    ] * 2

    sent = gmail.send_draft(token, draft, maybe_sent=False)

    [at_google] = google_standin.account(EMAIL)["sent"]
    assert sent == {"message_id": at_google["id"], "thread_id": draft["thread_id"]}
    assert at_google["id"] != draft["message_id"]  # Gmail sends a draft as a new message
    assert at_google["message_id"] == "<action-act-1@cscx.app>"
    assert (at_google["to"], at_google["cc"]) == (["anna@customer.test"], ["bo@customer.test"])
    assert at_google["subject"] == "Renewal next steps"
    assert at_google["body"] == "Hi Anna,\n\nhere are the next steps for the renewal — grüße.\n"
    assert at_google["headers"]["X-CSCX-Action-Id"] == "act-1"
    assert gmail.find_draft(token, message_id=message_id) is None  # sending deleted the draft
    assert len(google_standin.account(EMAIL)["drafts"]) == 1  # the other action's


@pytest.mark.parametrize("rewrites_message_id", [False, True])
def test_a_draft_sent_before_its_answer_was_lost_is_not_sent_again(
    google_standin: GoogleStandinClient, alice: Caller, rewrites_message_id: bool
) -> None:
    connect(alice)
    token = tokens.access_token(Repository(alice.uid))
    google_standin.set_quirks(gmail_send_rewrites_message_id=rewrites_message_id)
    draft = gmail.create_draft(token, message("act-lost"))
    google_standin.fail("gmail.drafts.send", 503, after_effect=True)  # sent; the answer never arrives

    with pytest.raises(google.GoogleError) as lost:
        gmail.send_draft(token, draft, maybe_sent=False)
    assert lost.value.transient is True

    # The next attempt: the draft is gone, so it was sent. Gmail's id of the sent message would
    # take reading the mailbox; its thread is the draft's.
    assert gmail.send_draft(token, draft, maybe_sent=True) == {"message_id": None, "thread_id": draft["thread_id"]}
    # And an attempt beside it that did not look first is told the draft is not found.
    assert gmail.send_draft(token, draft, maybe_sent=False) == {"message_id": None, "thread_id": draft["thread_id"]}
    assert len(google_standin.account(EMAIL)["sent"]) == 1
    assert [r["status"] for r in google_standin.requests("gmail.drafts.send")] == [503, 404]
    assert google_standin.requests("gmail.messages.list") == []  # the mailbox was never read


def test_a_draft_whose_send_failed_before_the_effect_is_sent_by_the_next_attempt(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    token = tokens.access_token(Repository(alice.uid))
    draft = gmail.create_draft(token, message("act-retry"))
    google_standin.fail("gmail.drafts.send", 503)

    with pytest.raises(google.GoogleError):
        gmail.send_draft(token, draft, maybe_sent=False)
    sent = gmail.send_draft(token, draft, maybe_sent=True)

    [at_google] = google_standin.account(EMAIL)["sent"]
    assert sent == {"message_id": at_google["id"], "thread_id": at_google["threadId"]}
    assert google_standin.account(EMAIL)["drafts"] == []


def test_the_connection_can_do_all_it_needs_in_gmail_and_cannot_read_the_mailbox(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    [issued] = google_standin.account(EMAIL)["access_tokens"]
    assert set(issued["scopes"]) == set(oauth.SCOPES)
    assert [scope for scope in issued["scopes"] if "gmail" in scope] == [AUTH + "gmail.compose"]
    users = google.resource("gmail", "v1", issued["token"], "users")

    draft = gmail.create_draft(issued["token"], message("act-scopes"))
    assert gmail.find_draft(issued["token"], message_id=gmail.message_id_for("act-scopes")) == draft
    gmail.send_draft(issued["token"], draft, maybe_sent=True)
    for reading in (
        users.messages().list(userId="me", q="in:sent"),
        users.messages().get(userId="me", id=google_standin.account(EMAIL)["sent"][0]["id"]),
    ):
        with pytest.raises(google.GoogleError) as refused:
            google.execute(reading)
        assert (refused.value.status, refused.value.reason) == (403, "insufficientPermissions")


def test_gmail_503_is_transient_400_permanent_and_401_reauth(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    token = tokens.access_token(Repository(alice.uid))

    google_standin.fail("gmail.drafts.create", 503)
    with pytest.raises(google.GoogleError) as unavailable:
        gmail.create_draft(token, message("a-503"))
    assert (unavailable.value.transient, unavailable.value.status) == (True, 503)
    assert google_standin.account(EMAIL)["drafts"] == []  # and not retried behind the caller's back

    without_recipients = gmail.create_draft(token, message("a-400", to=[], cc=[]))
    with pytest.raises(google.GoogleError) as refused:
        gmail.send_draft(token, without_recipients, maybe_sent=False)
    assert (refused.value.transient, refused.value.status) == (False, 400)
    assert "Recipient address required" in refused.value.message

    google_standin.fail("gmail.drafts.send", 429)
    with pytest.raises(google.GoogleError) as throttled:
        gmail.send_draft(token, gmail.create_draft(token, message("a-429")), maybe_sent=False)
    assert throttled.value.transient is True

    google_standin.expire_tokens(EMAIL)
    with pytest.raises(google.ReauthRequired):
        gmail.create_draft(token, message("a-401"))
    assert google_standin.account(EMAIL)["sent"] == []


def test_google_unreachable_is_transient(google_standin: GoogleStandinClient, fresh_instance: Instance) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    fresh_instance(CSCX_GOOGLE_API_BASE=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(google.GoogleError) as unreachable:
        gmail.create_draft("ya29.any", message("unreachable"))
    assert (unreachable.value.transient, unreachable.value.reason) == (True, "connection")


# -- Calendar --------------------------------------------------------------------------------


def test_event_ids_are_base32hex_and_stable() -> None:
    event_id = calendar.event_id_for("Xa91kQ2sLmP0aZ9bC8dE")
    assert re.fullmatch(r"[a-v0-9]{5,1024}", event_id)
    assert event_id == calendar.event_id_for("Xa91kQ2sLmP0aZ9bC8dE")
    assert event_id != calendar.event_id_for("Xa91kQ2sLmP0aZ9bC8dF")
    assert base64.b32hexdecode(event_id.upper() + "=" * (-len(event_id) % 8)) == b"Xa91kQ2sLmP0aZ9bC8dE"
    with pytest.raises(ValueError, match="event id"):
        calendar.event_id_for("")


def book(token: str, action_id: str) -> dict[str, Any]:
    return calendar.insert_event(
        token,
        event_id=calendar.event_id_for(action_id),
        title="QBR with Acme",
        start="2030-05-01T10:00:00+02:00",
        end="2030-05-01T11:00:00+02:00",
        timezone="Europe/Berlin",
        attendees=["anna@customer.test", "bo@customer.test"],
        description="Quarterly business review",
        request_id=f"cscx-{action_id}",
    )


def test_event_is_booked_with_a_meet_link_and_booking_it_again_returns_the_same_event(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    token = tokens.access_token(Repository(alice.uid))

    booked = book(token, "meet-1")

    [at_google] = google_standin.account(EMAIL)["events"]
    event = at_google["event"]
    assert booked["event_id"] == event["id"] == calendar.event_id_for("meet-1")
    assert booked["html_link"] == event["htmlLink"]
    assert booked["meet_link"] == event["hangoutLink"]
    assert re.fullmatch(r"https://meet\.google\.com/[a-z]{3}-[a-z]{4}-[a-z]{3}", booked["meet_link"])
    assert (at_google["send_updates"], at_google["conference_data_version"]) == ("all", 1)
    assert event["conferenceData"]["createRequest"]["requestId"] == "cscx-meet-1"
    assert [a["email"] for a in event["attendees"]] == ["anna@customer.test", "bo@customer.test"]
    assert event["start"] == {"dateTime": "2030-05-01T10:00:00+02:00", "timeZone": "Europe/Berlin"}
    assert (event["summary"], event["description"]) == ("QBR with Acme", "Quarterly business review")

    assert book(token, "meet-1") == booked
    assert len(google_standin.account(EMAIL)["events"]) == 1
    assert [r["status"] for r in google_standin.requests("calendar.events.insert")] == [200, 409]


def test_event_inserted_before_a_lost_answer_is_booked_once(google_standin: GoogleStandinClient, alice: Caller) -> None:
    connect(alice)
    token = tokens.access_token(Repository(alice.uid))
    google_standin.fail("calendar.events.insert", 503, after_effect=True)

    booked = book(token, "meet-lost")

    assert booked["meet_link"]
    assert len(google_standin.account(EMAIL)["events"]) == 1
    assert [r["status"] for r in google_standin.requests("calendar.events.insert")] == [503, 409]


def test_calendar_400_is_permanent(google_standin: GoogleStandinClient, alice: Caller) -> None:
    connect(alice)
    token = tokens.access_token(Repository(alice.uid))
    with pytest.raises(google.GoogleError) as refused:
        calendar.insert_event(
            token,
            event_id=calendar.event_id_for("bad-zone"),
            title="T",
            start="2030-05-01T10:00:00+02:00",
            end="2030-05-01T11:00:00+02:00",
            timezone="Mars/Olympus_Mons",
            attendees=[],
            description="",
            request_id="cscx-bad-zone",
        )
    assert (refused.value.transient, refused.value.status) == (False, 400)
    assert google_standin.account(EMAIL)["events"] == []


def test_free_busy_lists_the_busy_ranges_of_the_primary_calendar(
    google_standin: GoogleStandinClient, alice: Caller
) -> None:
    connect(alice)
    token = tokens.access_token(Repository(alice.uid))
    google_standin.seed_event(EMAIL, "2030-05-01T09:00:00Z", "2030-05-01T10:00:00Z")
    google_standin.seed_event(EMAIL, "2030-05-01T12:00:00Z", "2030-05-01T13:00:00Z", transparent=True)
    book(token, "meet-fb")  # 08:00-09:00 UTC

    busy = calendar.free_busy(token, start="2030-05-01T06:00:00Z", end="2030-05-01T18:00:00Z", timezone="Europe/Berlin")

    assert busy == [{"start": "2030-05-01T10:00:00+02:00", "end": "2030-05-01T12:00:00+02:00"}]
    google_standin.fail("calendar.freebusy.query", 503)  # a read is retried
    again = calendar.free_busy(
        token, start="2030-05-01T06:00:00Z", end="2030-05-01T18:00:00Z", timezone="Europe/Berlin"
    )
    assert again == busy
    assert [r["status"] for r in google_standin.requests("calendar.freebusy.query")] == [200, 503, 200]


# -- logs ------------------------------------------------------------------------------------


def test_no_token_or_code_reaches_the_logs(
    google_standin: GoogleStandinClient, alice: Caller, logs: LogCapture
) -> None:
    repo = Repository(alice.uid)
    redirect = consent(oauth.authorization_url(repo))
    [pending] = state_documents(alice.uid)
    verifier = tokens.decrypt(alice.uid, "code_verifier", pending["code_verifier_enc"])
    handle = grant_of(oauth.complete_authorization(redirect["code"], redirect["state"], None))
    oauth.complete_connection(repo, handle)
    set_expiry(alice, datetime.now(UTC) + timedelta(minutes=1))
    token = tokens.access_token(repo)  # a refresh
    gmail.send_draft(token, gmail.create_draft(token, message("log-1")), maybe_sent=False)
    google_standin.fail("gmail.drafts.send", 400)
    with pytest.raises(google.GoogleError):
        gmail.send_draft(token, gmail.create_draft(token, message("log-2")), maybe_sent=True)
    google_standin.revoke(EMAIL)
    set_expiry(alice, datetime.now(UTC) + timedelta(minutes=1))
    with pytest.raises(google.ReauthRequired):
        tokens.access_token(repo)
    oauth.disconnect(repo)

    entries = logs.entries()  # every line is one JSON object
    assert {"Google connected", "Google access token refreshed"} <= {e["message"] for e in entries}
    issued = [*secrets_at_google(google_standin), verifier, handle]
    assert len(issued) >= 6  # the code, two access tokens, the refresh token, the PKCE verifier, the grant
    leaked = [secret for secret in issued if secret in logs.text]
    assert leaked == []
