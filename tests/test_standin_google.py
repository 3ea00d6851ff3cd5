"""The Google stand-in, driven through the real google-auth, google-auth-oauthlib and googleapiclient.

Each test connects a Google account the way the backend will (consent URL, redirect, code
exchange) and then calls Gmail or Calendar with only the base URLs pointed at the stand-in.
oauthlib refuses http:// authorization and token URIs unless OAUTHLIB_INSECURE_TRANSPORT is
set, so the tests set it for themselves (loopback only); nothing else is bent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_auth_httplib2
import httplib2
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError
from oauthlib.oauth2.rfc6749.errors import InsecureTransportError, InvalidGrantError

from standins.google import METHOD_SCOPES, GoogleStandin, OAuthClient
from standins.google_client import GoogleStandinClient

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "cscx-test.apps.googleusercontent.com"
CLIENT_SECRET = "cscx-test-secret"
REDIRECT_URI = "http://127.0.0.1:8081/integrations/google/callback"
EMAIL = "csm@cscx.test"

AUTH = "https://www.googleapis.com/auth/"
GMAIL_COMPOSE = AUTH + "gmail.compose"  # drafts (create, list, get, send) and messages.send
GMAIL_READONLY = AUTH + "gmail.readonly"  # messages.list with q= (gmail.metadata may not search)
CALENDAR_EVENTS_OWNED = AUTH + "calendar.events.owned"  # events.insert on the user's own calendars
CALENDAR_FREEBUSY = AUTH + "calendar.freebusy"
SCOPES = ["openid", AUTH + "userinfo.email", GMAIL_COMPOSE, GMAIL_READONLY, CALENDAR_EVENTS_OWNED, CALENDAR_FREEBUSY]

MESSAGE_ID = "<action-4f2a9c@cscx.test>"


@pytest.fixture(scope="module")
def standin() -> Iterator[GoogleStandin]:
    with GoogleStandin("127.0.0.1", 0, clients=[OAuthClient(CLIENT_ID, CLIENT_SECRET, (REDIRECT_URI,))]) as server:
        yield server


@pytest.fixture
def google(standin: GoogleStandin) -> GoogleStandinClient:
    client = GoogleStandinClient(standin.url)
    client.reset()
    return client


@pytest.fixture
def insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def make_flow(url: str, scopes: Sequence[str] = SCOPES) -> Flow:
    config = {
        "web": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "auth_uri": f"{url}/o/oauth2/v2/auth",
            "token_uri": f"{url}/token",
            "redirect_uris": [REDIRECT_URI],
        }
    }
    return Flow.from_client_config(config, scopes=list(scopes), redirect_uri=REDIRECT_URI)


def follow(auth_url: str) -> dict[str, list[str]]:
    """The browser's trip to the consent screen: the stand-in consents at once and redirects."""
    response = requests.get(auth_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return parse_qs(urlsplit(location).query)


def connect(url: str, scopes: Sequence[str] = SCOPES, email: str = EMAIL) -> Credentials:
    flow = make_flow(url, scopes)
    auth_url, _ = flow.authorization_url(prompt="consent", login_hint=email)
    flow.fetch_token(code=follow(auth_url)["code"][0])
    credentials: Credentials = flow.credentials
    return credentials


def refresh(credentials: Credentials) -> None:
    # google-auth leaves refresh() unannotated.
    credentials.refresh(Request())  # type: ignore[no-untyped-call]


def gmail(url: str, credentials: Credentials) -> Any:
    return build("gmail", "v1", credentials=credentials, static_discovery=True, client_options={"api_endpoint": url})


def calendar(url: str, credentials: Credentials) -> Any:
    # api_endpoint replaces rootUrl *and* servicePath, so Calendar's "calendar/v3/" must be in it.
    endpoint = f"{url}/calendar/v3/"
    return build(
        "calendar", "v3", credentials=credentials, static_discovery=True, client_options={"api_endpoint": endpoint}
    )


def raw_mime(message_id: str = MESSAGE_ID, to: str = "Anna <anna@customer.test>", cc: str = "bo@customer.test") -> str:
    message = EmailMessage()
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = "Renewal next steps"
    message["Message-ID"] = message_id
    message.set_content("Hi Anna,\n\nhere are the next steps.\n")
    return base64.urlsafe_b64encode(message.as_bytes()).decode()


def event_id_for(action_id: str) -> str:
    """A Calendar event id from an action id: base32hex is exactly Calendar's alphabet, lowercased."""
    return base64.b32hexencode(action_id.encode()).decode().lower().rstrip("=")


def meeting(
    event_id: str | None, start: str = "2030-05-01T10:00:00+02:00", end: str = "2030-05-01T11:00:00+02:00"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": "QBR with Acme",
        "start": {"dateTime": start, "timeZone": "Europe/Berlin"},
        "end": {"dateTime": end, "timeZone": "Europe/Berlin"},
        "attendees": [{"email": "anna@customer.test"}],
        "conferenceData": {
            "createRequest": {"requestId": f"meet-{event_id}", "conferenceSolutionKey": {"type": "hangoutsMeet"}}
        },
    }
    if event_id is not None:
        body["id"] = event_id
    return body


# --- OAuth ------------------------------------------------------------------------------


@pytest.mark.usefixtures("insecure_transport")
def test_consent_redirects_with_code_and_state_and_the_code_buys_tokens(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    flow = make_flow(standin.url)
    auth_url, state = flow.authorization_url(prompt="consent", login_hint=EMAIL)
    asked = parse_qs(urlsplit(auth_url).query)
    assert asked["access_type"] == ["offline"]  # google-auth-oauthlib's default
    assert asked["code_challenge_method"] == ["S256"]  # and PKCE, on by default since 1.x

    redirect = follow(auth_url)
    assert redirect["state"] == [state]
    token = flow.fetch_token(code=redirect["code"][0])

    assert token["token_type"] == "Bearer"
    assert token["refresh_token"].startswith("1//")
    assert set(token["scope"]) == set(SCOPES)
    assert token["id_token"]
    credentials = flow.credentials
    assert credentials.valid
    userinfo = requests.get(
        f"{standin.url}/v1/userinfo", headers={"Authorization": f"Bearer {credentials.token}"}, timeout=10
    ).json()
    assert userinfo["email"] == EMAIL
    assert userinfo["email_verified"] is True
    account = google.account(EMAIL)
    assert [c["used"] for c in account["authorization_codes"]] == [True]
    assert account["authorization_codes"][0]["pkce"] is True
    assert len(account["refresh_tokens"]) == 1


def test_oauthlib_refuses_http_endpoints_without_insecure_transport(
    standin: GoogleStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    with pytest.raises(InsecureTransportError):
        make_flow(standin.url).authorization_url()


@pytest.mark.usefixtures("insecure_transport")
def test_authorization_code_is_single_use(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    flow = make_flow(standin.url)
    auth_url, _ = flow.authorization_url(prompt="consent")
    code = follow(auth_url)["code"][0]
    flow.fetch_token(code=code)
    with pytest.raises(InvalidGrantError):
        flow.fetch_token(code=code)


def test_token_endpoint_checks_redirect_uri_and_pkce_verifier_and_takes_basic_auth(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "state": "s1",
        "access_type": "offline",
        "prompt": "consent",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = requests.get(f"{standin.url}/o/oauth2/v2/auth", params=params, allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]

    def exchange(**fields: str) -> requests.Response:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI} | fields
        return requests.post(f"{standin.url}/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)

    assert exchange(code_verifier="w" * 64).json() == {
        "error": "invalid_grant",
        "error_description": "Invalid code verifier.",
    }
    assert exchange(redirect_uri="http://127.0.0.1:9/elsewhere", code_verifier=verifier).json()["error"] == (
        "redirect_uri_mismatch"
    )
    wrong_secret = requests.post(
        f"{standin.url}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(CLIENT_ID, "not-the-secret"),
        timeout=10,
    )
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
    granted = exchange(code_verifier=verifier)
    assert granted.status_code == 200
    assert granted.json()["expires_in"] == 3599


def test_consent_page_refuses_unknown_client_and_unregistered_redirect_without_redirecting(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    base = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid",
        "state": "s",
    }
    for changed, status, error in [
        ({"client_id": "stranger"}, 401, "invalid_client"),
        ({"redirect_uri": "https://evil.test/cb"}, 400, "redirect_uri_mismatch"),
        ({"scope": "https://www.googleapis.com/auth/gmail.send nonsense"}, 400, "invalid_scope"),
        ({"state": ""}, 400, "invalid_request"),
    ]:
        response = requests.get(
            f"{standin.url}/o/oauth2/v2/auth", params=base | changed, allow_redirects=False, timeout=10
        )
        assert response.status_code == status
        assert "Location" not in response.headers
        assert f"Error {status}: {error}" in response.text


@pytest.mark.usefixtures("insecure_transport")
def test_user_who_declines_is_sent_back_with_access_denied(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    google.set_account(EMAIL, deny=True)
    auth_url, state = make_flow(standin.url).authorization_url(prompt="consent")
    assert follow(auth_url) == {"error": ["access_denied"], "state": [state]}


@pytest.mark.usefixtures("insecure_transport")
def test_user_granting_fewer_scopes_makes_oauthlib_raise_unless_relaxed_and_apis_answer_403(
    standin: GoogleStandin, google: GoogleStandinClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    google.set_account(EMAIL, scopes=[GMAIL_COMPOSE])  # the user unticks everything else
    flow = make_flow(standin.url)
    auth_url, _ = flow.authorization_url(prompt="consent")
    with pytest.raises(Warning, match="Scope has changed"):
        flow.fetch_token(code=follow(auth_url)["code"][0])

    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    flow = make_flow(standin.url)
    auth_url, _ = flow.authorization_url(prompt="consent")
    token = flow.fetch_token(code=follow(auth_url)["code"][0])
    # Sign-in scopes cannot be withheld on Google's consent screen; the rest can.
    assert set(token["scope"]) == {"openid", AUTH + "userinfo.email", GMAIL_COMPOSE}
    with pytest.raises(HttpError) as refused:
        calendar(standin.url, flow.credentials).events().insert(calendarId="primary", body=meeting(None)).execute()
    assert refused.value.status_code == 403
    assert refused.value.error_details[0]["reason"] == "insufficientPermissions"


@pytest.mark.usefixtures("insecure_transport")
def test_sign_in_shorthand_scopes_come_back_as_full_uris_which_oauthlib_calls_a_change(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    flow = make_flow(standin.url, ["openid", "email", GMAIL_COMPOSE])
    auth_url, _ = flow.authorization_url(prompt="consent")
    with pytest.raises(Warning, match="Scope has changed") as changed:
        flow.fetch_token(code=follow(auth_url)["code"][0])
    assert AUTH + "userinfo.email" in changed.value.token["scope"]  # type: ignore[attr-defined]


@pytest.mark.usefixtures("insecure_transport")
def test_refresh_token_only_for_offline_access_and_first_or_forced_consent(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    def tokens(**params: str) -> dict[str, Any]:
        flow = make_flow(standin.url)
        auth_url, _ = flow.authorization_url(**params)
        token: dict[str, Any] = flow.fetch_token(code=follow(auth_url)["code"][0])
        return token

    assert "refresh_token" not in tokens(access_type="online")
    assert "refresh_token" in tokens()  # first offline consent
    assert "refresh_token" not in tokens()  # the user had consented already
    assert "refresh_token" in tokens(prompt="consent")


@pytest.mark.usefixtures("insecure_transport")
def test_credentials_refresh_against_the_token_uri(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    connected = connect(standin.url)
    credentials = Credentials(  # type: ignore[no-untyped-call]
        None,
        refresh_token=connected.refresh_token,
        token_uri=f"{standin.url}/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    refresh(credentials)
    assert credentials.token not in {None, connected.token}
    assert credentials.valid
    assert len(google.account(EMAIL)["access_tokens"]) == 2


@pytest.mark.usefixtures("insecure_transport")
def test_refresh_after_the_user_removes_access_raises_refresh_error_invalid_grant(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    credentials = connect(standin.url)
    assert google.revoke(EMAIL) == 1
    with pytest.raises(RefreshError, match=r"invalid_grant: Token has been expired or revoked\.") as refused:
        refresh(credentials)
    assert refused.value.args[1] == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }


@pytest.mark.usefixtures("insecure_transport")
def test_revoke_endpoint_ends_the_refresh_token_and_its_access_tokens(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    credentials = connect(standin.url)
    assert requests.post(f"{standin.url}/revoke", data={"token": credentials.refresh_token}, timeout=10).ok
    drafts = requests.get(
        f"{standin.url}/gmail/v1/users/me/drafts", headers={"Authorization": f"Bearer {credentials.token}"}, timeout=10
    )
    assert drafts.status_code == 401
    with pytest.raises(RefreshError):
        refresh(credentials)
    again = requests.post(f"{standin.url}/revoke", params={"token": credentials.refresh_token}, timeout=10)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_token")
    assert google.requests("oauth.revoke")[1]["query"] == {"token": ["[redacted]"]}


@pytest.mark.usefixtures("insecure_transport")
def test_injected_token_endpoint_error_reaches_google_auth_as_refresh_error(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    credentials = connect(standin.url)
    google.fail("oauth.token", 400, reason="invalid_grant", message="Token has been expired or revoked.")
    with pytest.raises(RefreshError, match="invalid_grant"):
        refresh(credentials)
    refresh(credentials)  # one failure only


# --- Gmail ------------------------------------------------------------------------------


@pytest.mark.usefixtures("insecure_transport")
def test_draft_keeps_recipients_subject_body_and_message_id(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    service = gmail(standin.url, connect(standin.url))
    draft = service.users().drafts().create(userId="me", body={"message": {"raw": raw_mime()}}).execute()

    assert draft["id"].startswith("r-")
    assert draft["message"]["labelIds"] == ["DRAFT"]
    stored = google.account(EMAIL)["drafts"][0]
    assert stored["id"] == draft["id"]
    message = stored["message"]
    assert message["message_id"] == MESSAGE_ID
    assert (message["to"], message["cc"]) == (["anna@customer.test"], ["bo@customer.test"])
    assert message["from"] == EMAIL  # Gmail sends as the signed-in user
    assert message["subject"] == "Renewal next steps"
    assert message["body"] == "Hi Anna,\n\nhere are the next steps.\n"
    fetched = service.users().drafts().get(userId="me", id=draft["id"]).execute()
    headers = {h["name"]: h["value"] for h in fetched["message"]["payload"]["headers"]}
    assert headers["Message-ID"] == MESSAGE_ID
    assert google.requests("gmail.drafts.create")[0]["path"] == "/gmail/v1/users/me/drafts"


@pytest.mark.usefixtures("insecure_transport")
def test_sent_message_is_found_by_rfc822msgid_in_sent(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    service = gmail(standin.url, connect(standin.url))
    service.users().drafts().create(userId="me", body={"message": {"raw": raw_mime()}}).execute()
    sent = service.users().messages().send(userId="me", body={"raw": raw_mime()}).execute()

    assert sent["labelIds"] == ["SENT"]
    messages = service.users().messages()
    found = messages.list(userId="me", q=f"rfc822msgid:{MESSAGE_ID} in:sent").execute()
    assert found == {"messages": [{"id": sent["id"], "threadId": sent["threadId"]}], "resultSizeEstimate": 1}
    # Without in:sent Gmail also finds the draft that carries the same Message-ID.
    assert messages.list(userId="me", q=f"rfc822msgid:{MESSAGE_ID.strip('<>')}").execute()["resultSizeEstimate"] == 2
    # An empty result has no "messages" key at all.
    assert messages.list(userId="me", q="rfc822msgid:<nobody@cscx.test>").execute() == {"resultSizeEstimate": 0}
    metadata = messages.get(userId="me", id=sent["id"], format="metadata", metadataHeaders=["Message-ID"]).execute()
    assert metadata["payload"]["headers"] == [{"name": "Message-ID", "value": MESSAGE_ID}]
    assert google.requests("gmail.messages.send")[0]["path"] == "/gmail/v1/users/me/messages/send"
    assert google.account(EMAIL)["sent"][0]["message_id"] == MESSAGE_ID


@pytest.mark.usefixtures("insecure_transport")
def test_send_without_recipients_is_400(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    service = gmail(standin.url, connect(standin.url))
    with pytest.raises(HttpError) as refused:
        service.users().messages().send(userId="me", body={"raw": raw_mime(to="", cc="")}).execute()
    assert (refused.value.status_code, refused.value.reason) == (400, "Recipient address required")
    assert google.account(EMAIL)["sent"] == []


@pytest.mark.usefixtures("insecure_transport")
def test_a_sent_draft_becomes_a_new_message_in_its_thread_and_is_gone(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    drafts = gmail(standin.url, connect(standin.url, ["openid", GMAIL_COMPOSE])).users().drafts()
    draft = drafts.create(userId="me", body={"message": {"raw": raw_mime()}}).execute()
    drafts.create(userId="me", body={"message": {"raw": raw_mime("<other@cscx.test>")}}).execute()
    found = drafts.list(userId="me", q=f"rfc822msgid:{MESSAGE_ID.strip('<>')}").execute()
    message = {"id": draft["message"]["id"], "threadId": draft["message"]["threadId"]}
    assert found == {"drafts": [{"id": draft["id"], "message": message}], "resultSizeEstimate": 1}

    sent = drafts.send(userId="me", body={"id": draft["id"]}).execute()

    assert sent["labelIds"] == ["SENT"]
    assert sent["id"] != draft["message"]["id"]  # a new message, as Gmail's guide says
    assert sent["threadId"] == draft["message"]["threadId"]
    [at_google] = google.account(EMAIL)["sent"]
    assert (at_google["id"], at_google["message_id"]) == (sent["id"], MESSAGE_ID)
    assert [d["message"]["message_id"] for d in google.account(EMAIL)["drafts"]] == ["<other@cscx.test>"]
    assert drafts.list(userId="me", q=f"rfc822msgid:{MESSAGE_ID}").execute() == {"resultSizeEstimate": 0}
    for gone in (drafts.get(userId="me", id=draft["id"]), drafts.send(userId="me", body={"id": draft["id"]})):
        with pytest.raises(HttpError) as missing:
            gone.execute()
        assert (missing.value.status_code, missing.value.reason) == (404, "Requested entity was not found.")
    assert len(google.account(EMAIL)["sent"]) == 1


@pytest.mark.usefixtures("insecure_transport")
def test_a_draft_without_recipients_is_not_sent_and_stays(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    drafts = gmail(standin.url, connect(standin.url)).users().drafts()
    draft = drafts.create(userId="me", body={"message": {"raw": raw_mime(to="", cc="")}}).execute()
    with pytest.raises(HttpError) as refused:
        drafts.send(userId="me", body={"id": draft["id"]}).execute()
    assert (refused.value.status_code, refused.value.reason) == (400, "Recipient address required")
    assert google.account(EMAIL)["sent"] == []
    assert [d["id"] for d in google.account(EMAIL)["drafts"]] == [draft["id"]]


# Each Gmail scope a connection might hold, tried on every Gmail method the stand-in serves.
TRIED_GMAIL_SCOPES = ["gmail.compose", "gmail.send", "gmail.readonly", "gmail.metadata", "gmail.modify"]


@pytest.mark.parametrize("scope", TRIED_GMAIL_SCOPES)
@pytest.mark.usefixtures("insecure_transport")
def test_each_gmail_method_serves_exactly_the_scopes_the_discovery_document_lists(
    standin: GoogleStandin, google: GoogleStandinClient, scope: str
) -> None:
    full = gmail(standin.url, connect(standin.url, ["openid", AUTH + "gmail.modify"])).users()
    users = gmail(standin.url, connect(standin.url, ["openid", AUTH + scope])).users()
    sent_id = full.messages().send(userId="me", body={"raw": raw_mime("<sent@cscx.test>")}).execute()["id"]

    def draft_id() -> str:
        return str(full.drafts().create(userId="me", body={"message": {"raw": raw_mime()}}).execute()["id"])

    calls: dict[str, Callable[[], Any]] = {
        "gmail.drafts.create": lambda: users.drafts().create(userId="me", body={"message": {"raw": raw_mime()}}),
        "gmail.drafts.list": lambda: users.drafts().list(userId="me", q=f"rfc822msgid:{MESSAGE_ID}"),
        "gmail.drafts.get": lambda: users.drafts().get(userId="me", id=draft_id(), format="minimal"),
        "gmail.drafts.send": lambda: users.drafts().send(userId="me", body={"id": draft_id()}),
        "gmail.messages.send": lambda: users.messages().send(userId="me", body={"raw": raw_mime()}),
        "gmail.messages.list": lambda: users.messages().list(userId="me", labelIds=["SENT"]),
        "gmail.messages.get": lambda: users.messages().get(userId="me", id=sent_id, format="metadata"),
    }
    assert set(calls) == {api for api in METHOD_SCOPES if api.startswith("gmail.")}
    for api, call in calls.items():
        if AUTH + scope in METHOD_SCOPES[api]:
            call().execute()
        else:
            with pytest.raises(HttpError) as refused:
                call().execute()
            assert (refused.value.status_code, refused.value.error_details[0]["reason"]) == (
                403,
                "insufficientPermissions",
            ), api


@pytest.mark.usefixtures("insecure_transport")
def test_metadata_scope_cannot_search_with_q(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    service = gmail(standin.url, connect(standin.url, ["openid", AUTH + "gmail.metadata"]))
    with pytest.raises(HttpError) as refused:
        service.users().messages().list(userId="me", q=f"rfc822msgid:{MESSAGE_ID}").execute()
    assert (refused.value.status_code, refused.value.reason) == (403, "Metadata scope does not support 'q' parameter")


@pytest.mark.usefixtures("insecure_transport")
def test_message_id_rewrite_quirk_defeats_rfc822msgid_lookup(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    google.set_quirks(gmail_send_rewrites_message_id=True)
    service = gmail(standin.url, connect(standin.url))
    service.users().messages().send(userId="me", body={"raw": raw_mime()}).execute()
    assert google.account(EMAIL)["sent"][0]["message_id"].endswith("@mail.gmail.com>")
    found = service.users().messages().list(userId="me", q=f"rfc822msgid:{MESSAGE_ID} in:sent").execute()
    assert found == {"resultSizeEstimate": 0}


# --- Calendar ---------------------------------------------------------------------------


@pytest.mark.usefixtures("insecure_transport")
def test_event_with_client_id_and_create_request_gets_a_meet_link(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    service = calendar(standin.url, connect(standin.url))
    event_id = event_id_for("Xa91kQ2sLmP0")
    event = (
        service.events()
        .insert(calendarId="primary", body=meeting(event_id), conferenceDataVersion=1, sendUpdates="all")
        .execute()
    )

    assert event["id"] == event_id
    assert re.fullmatch(r"https://meet\.google\.com/[a-z]{3}-[a-z]{4}-[a-z]{3}", event["hangoutLink"])
    conference = event["conferenceData"]
    assert conference["createRequest"]["status"] == {"statusCode": "success"}
    video = [e for e in conference["entryPoints"] if e["entryPointType"] == "video"]
    assert [e["uri"] for e in video] == [event["hangoutLink"]]
    assert event["attendees"] == [{"email": "anna@customer.test", "responseStatus": "needsAction"}]
    assert event["htmlLink"].startswith("https://www.google.com/calendar/event?eid=")
    stored = google.account(EMAIL)["events"][0]
    assert (stored["send_updates"], stored["conference_data_version"]) == ("all", 1)
    assert service.events().get(calendarId="primary", eventId=event_id).execute() == event
    assert google.requests("calendar.events.insert")[0]["path"] == "/calendar/v3/calendars/primary/events"


@pytest.mark.usefixtures("insecure_transport")
def test_duplicate_event_id_is_409_duplicate(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    service = calendar(standin.url, connect(standin.url))
    event_id = event_id_for("action-1")
    service.events().insert(calendarId="primary", body=meeting(event_id), conferenceDataVersion=1).execute()
    with pytest.raises(HttpError) as refused:
        service.events().insert(calendarId="primary", body=meeting(event_id), conferenceDataVersion=1).execute()
    assert refused.value.status_code == 409
    assert refused.value.error_details[0]["reason"] == "duplicate"


@pytest.mark.usefixtures("insecure_transport")
def test_event_id_outside_base32hex_is_400(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    service = calendar(standin.url, connect(standin.url))
    for bad in ["Action1234", "actionwxyz", "abc"]:  # uppercase, letters past v, too short
        with pytest.raises(HttpError) as refused:
            service.events().insert(calendarId="primary", body=meeting(bad)).execute()
        assert (refused.value.status_code, refused.value.reason) == (400, "Invalid resource id value.")


@pytest.mark.usefixtures("insecure_transport")
def test_conference_data_is_ignored_without_conference_data_version_1(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    service = calendar(standin.url, connect(standin.url))
    event = service.events().insert(calendarId="primary", body=meeting(event_id_for("no-meet"))).execute()
    assert "hangoutLink" not in event
    assert "conferenceData" not in event


@pytest.mark.usefixtures("insecure_transport")
def test_freebusy_merges_busy_time_of_inserted_and_seeded_events(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    service = calendar(standin.url, connect(standin.url))
    google.seed_event(EMAIL, "2030-05-01T09:00:00Z", "2030-05-01T10:00:00Z")
    google.seed_event(EMAIL, "2030-05-01T12:00:00Z", "2030-05-01T13:00:00Z", transparent=True)
    body = meeting(None, start="2030-05-01T11:30:00+02:00", end="2030-05-01T12:30:00+02:00")
    service.events().insert(calendarId="primary", body=body).execute()

    answer = (
        service.freebusy()
        .query(
            body={
                "timeMin": "2030-05-01T08:00:00Z",
                "timeMax": "2030-05-01T18:00:00Z",
                "items": [{"id": "primary"}, {"id": "stranger@elsewhere.test"}],
            }
        )
        .execute()
    )

    assert answer["kind"] == "calendar#freeBusy"
    assert answer["calendars"]["primary"] == {
        "busy": [{"start": "2030-05-01T09:00:00Z", "end": "2030-05-01T10:30:00Z"}]
    }
    assert answer["calendars"]["stranger@elsewhere.test"]["errors"] == [{"domain": "global", "reason": "notFound"}]
    assert google.requests("calendar.freebusy.query")[0]["path"] == "/calendar/v3/freeBusy"


@pytest.mark.usefixtures("insecure_transport")
def test_calendar_endpoint_without_service_path_is_told_so(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    credentials = connect(standin.url)
    service = build(
        "calendar", "v3", credentials=credentials, static_discovery=True, client_options={"api_endpoint": standin.url}
    )
    with pytest.raises(HttpError) as missed:
        service.events().insert(calendarId="primary", body=meeting(None)).execute()
    assert missed.value.status_code == 404
    assert "/calendar/v3/" in missed.value.reason


# --- Failures, expiry, revocation -------------------------------------------------------


@pytest.mark.usefixtures("insecure_transport")
def test_injected_503_is_an_http_error_and_googleapiclient_retries_only_when_asked(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    service = gmail(standin.url, connect(standin.url))
    google.fail("gmail.messages.send", 503)
    with pytest.raises(HttpError) as failed:
        service.users().messages().send(userId="me", body={"raw": raw_mime()}).execute()
    assert failed.value.status_code == 503
    assert google.account(EMAIL)["sent"] == []

    google.fail("gmail.messages.send", 503)
    request = service.users().messages().send(userId="me", body={"raw": raw_mime()})
    request._sleep = lambda _seconds: None  # googleapiclient's own hook for its back-off sleep
    request.execute(num_retries=1)
    assert [r["status"] for r in google.requests("gmail.messages.send")] == [503, 503, 200]
    assert len(google.account(EMAIL)["sent"]) == 1


@pytest.mark.usefixtures("insecure_transport")
def test_failure_after_the_effect_leaves_the_mail_sent_and_findable(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    service = gmail(standin.url, connect(standin.url))
    google.fail("gmail.messages.send", 500, after_effect=True)
    with pytest.raises(HttpError) as failed:
        service.users().messages().send(userId="me", body={"raw": raw_mime()}).execute()
    assert failed.value.status_code == 500
    assert [m["message_id"] for m in google.account(EMAIL)["sent"]] == [MESSAGE_ID]
    found = service.users().messages().list(userId="me", q=f"rfc822msgid:{MESSAGE_ID} in:sent").execute()
    assert found["resultSizeEstimate"] == 1
    assert google.requests("gmail.messages.send")[0]["injected"] is True


@pytest.mark.usefixtures("insecure_transport")
def test_event_inserted_before_a_lost_response_answers_409_on_retry(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    service = calendar(standin.url, connect(standin.url))
    event_id = event_id_for("action-lost")
    google.fail("calendar.events.insert", 503, after_effect=True)
    with pytest.raises(HttpError):
        service.events().insert(calendarId="primary", body=meeting(event_id), conferenceDataVersion=1).execute()
    with pytest.raises(HttpError) as retried:
        service.events().insert(calendarId="primary", body=meeting(event_id), conferenceDataVersion=1).execute()
    assert retried.value.status_code == 409
    assert service.events().get(calendarId="primary", eventId=event_id).execute()["hangoutLink"]


@pytest.mark.usefixtures("insecure_transport")
def test_expired_access_token_is_refreshed_by_the_client_and_the_call_retried(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    service = gmail(standin.url, connect(standin.url))
    assert google.expire_tokens(EMAIL) == 1
    assert service.users().drafts().list(userId="me").execute() == {"resultSizeEstimate": 0}
    assert [r["status"] for r in google.requests("gmail.drafts.list")] == [401, 200]
    assert [r["status"] for r in google.requests("oauth.token")] == [200, 200]  # the code, then the refresh


@pytest.mark.usefixtures("insecure_transport")
def test_expired_access_token_without_refreshing_is_401(standin: GoogleStandin, google: GoogleStandinClient) -> None:
    credentials = connect(standin.url)
    google.expire_tokens(EMAIL)
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=10), refresh_status_codes=())
    service = build("gmail", "v1", http=http, static_discovery=True, client_options={"api_endpoint": standin.url})
    with pytest.raises(HttpError) as refused:
        service.users().drafts().list(userId="me").execute()
    assert refused.value.status_code == 401

    raw = requests.get(
        f"{standin.url}/gmail/v1/users/me/drafts", headers={"Authorization": f"Bearer {credentials.token}"}, timeout=10
    )
    assert raw.json()["error"]["status"] == "UNAUTHENTICATED"
    assert raw.json()["error"]["errors"][0]["reason"] == "authError"
    assert 'error="invalid_token"' in raw.headers["WWW-Authenticate"]


@pytest.mark.usefixtures("insecure_transport")
def test_api_call_after_the_user_removed_access_raises_refresh_error(
    standin: GoogleStandin, google: GoogleStandinClient
) -> None:
    service = calendar(standin.url, connect(standin.url))
    google.revoke(EMAIL)
    with pytest.raises(RefreshError, match="invalid_grant"):
        service.events().insert(calendarId="primary", body=meeting(None)).execute()


# --- The stand-in itself ----------------------------------------------------------------


def test_method_scopes_match_googleapiclient_discovery_documents() -> None:
    documents = {
        "gmail": json.loads(get_static_doc("gmail", "v1")),
        "calendar": json.loads(get_static_doc("calendar", "v3")),
    }
    for api, scopes in METHOD_SCOPES.items():
        service, *path = api.split(".")
        node = documents[service]
        for resource in (["users", *path] if service == "gmail" else path)[:-1]:
            node = node["resources"][resource]
        assert set(node["methods"][path[-1]]["scopes"]) == scopes, api


def test_command_line_serves_until_terminated() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "standins.google", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        client = GoogleStandinClient(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 10
        while not client.healthy():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the stand-in did not come up"
            time.sleep(0.05)
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


@pytest.fixture(autouse=True)
def _oauthlib_as_it_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib as installed: common.google.oauth relaxes its scope check for the whole process."""
    monkeypatch.delenv("OAUTHLIB_RELAX_TOKEN_SCOPE", raising=False)
