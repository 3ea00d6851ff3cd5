"""The launch checklist (issue 7), end to end through the running functions, the Cloud Tasks
emulator and the Google stand-in: connecting Google through crud (and only for the person who
asked), an approved e-mail sent once, a draft in Gmail's drafts, a meeting with a Meet link, and
exactly once under redelivery, a worker killed between Google's effect and its record, Google
failing, quotas and revoked access.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from scripts.stack import Stack, free_port
from standins.google_client import GoogleStandinClient
from tests.conftest import CSM_GOOGLE_EMAIL, WEB_ORIGIN, Api, Caller, assert_error, raw_firestore, seed_action
from tests.task_queue import wait_for_queue_to_drain
from tests.test_approvals import stored_action, wait_for, wait_for_status

EMAIL = CSM_GOOGLE_EMAIL
WEB_APP = f"{WEB_ORIGIN}/settings/integrations"


def follow_consent(auth_url: str) -> str:
    """A browser at Google's consent screen, and back through crud's callback: where it lands."""
    at_google = requests.get(auth_url, allow_redirects=False, timeout=10)
    assert at_google.status_code == 302, at_google.text
    back = requests.get(at_google.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    assert back.headers["Referrer-Policy"] == "no-referrer"
    return str(back.headers["Location"])


def connect(crud: Api, user: Caller) -> str:
    """The browser's round trip: crud's authorization URL, Google's consent, crud's callback."""
    started = crud.post("/integrations/google/connect", user)
    assert started.status_code == 200, started.text
    return follow_consent(started.json()["auth_url"])


def grant_of(landed: str) -> str:
    assert landed.startswith(f"{WEB_APP}?google=pending&grant="), landed
    [handle] = parse_qs(urlsplit(landed).query)["grant"]
    return handle


def complete(crud: Api, user: Caller, handle: str) -> requests.Response:
    """What the web app does when the browser lands with ?google=pending&grant=..."""
    return crud.post("/integrations/google/complete", user, json={"grant": handle})


def connect_and_complete(crud: Api, user: Caller) -> None:
    """The whole connection, as the console makes it: the round trip, then the complete step."""
    done = complete(crud, user, grant_of(connect(crud, user)))
    assert done.status_code == 200, done.text


@pytest.fixture
def connected(crud: Api, alice: Caller, google: GoogleStandinClient) -> Caller:
    connect_and_complete(crud, alice)
    return alice


def integration_of(user: Caller) -> dict[str, Any] | None:
    snapshot = raw_firestore().collection("integrations").document(user.uid).get()
    return snapshot.to_dict() if snapshot.exists else None


def grants_of(user: Caller) -> list[dict[str, Any]]:
    from google.cloud.firestore import FieldFilter

    query = raw_firestore().collection("google_grants").where(filter=FieldFilter("owner_id", "==", user.uid))
    return [snapshot.to_dict() or {} for snapshot in query.stream()]


def email_action(user: Caller, action_type: str = "email.send", **payload: Any) -> dict[str, Any]:
    body = {"to": ["cfo@acme.com"], "cc": [], "subject": "Renewal", "body": "Shall we meet?", "customer_id": None}
    return seed_action(user.uid, type=action_type, payload={**body, **payload}, risk="high", summary="E-mail")


def meeting_action(user: Caller) -> dict[str, Any]:
    payload = {
        "title": "Renewal call",
        "start": "2027-03-01T10:00:00+01:00",
        "end": "2027-03-01T10:30:00+01:00",
        "attendees": ["cfo@acme.com"],
        "description": "Renewal",
        "timezone": "Europe/Paris",
        "customer_id": None,
    }
    return seed_action(user.uid, type="meeting.book", payload=payload, risk="high", summary="Meeting")


def sent(google: GoogleStandinClient) -> list[dict[str, Any]]:
    return list(google.account(EMAIL)["sent"])


# -- connecting ------------------------------------------------------------------------------


def test_connecting_through_crud_stores_ciphertext_and_answers_the_status(
    crud: Api, connected: Caller, google: GoogleStandinClient, stack: Stack
) -> None:
    status = crud.get("/integrations/google", connected).json()
    assert status["status"] == "connected"
    assert status["google_email"] == EMAIL
    assert "https://www.googleapis.com/auth/gmail.compose" in status["scopes"]
    stored = raw_firestore().collection("integrations").document(connected.uid).get().to_dict() or {}
    account = google.account(EMAIL)
    secrets = [t["token"] for t in account["access_tokens"]] + [t["token"] for t in account["refresh_tokens"]]
    assert secrets
    text = json.dumps(stored, default=str)
    assert not [s for s in secrets if s in text], "a token is stored in clear"
    assert stored["access_token_enc"].startswith("v1.")
    logs = "".join((stack.log_dir / f"{name}.log").read_text() for name in ("crud", "approve_action", "execute_action"))
    assert not [s for s in secrets if s in logs], "a token reached the logs"
    assert "access_token" not in json.dumps(status)


def test_a_forged_or_replayed_state_is_refused_by_the_callback(
    crud: Api, alice: Caller, google: GoogleStandinClient
) -> None:
    started = crud.post("/integrations/google/connect", alice).json()["auth_url"]
    callback = requests.get(started, allow_redirects=False, timeout=10).headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    forged = requests.get(
        f"{crud.base_url}/integrations/google/callback",
        params={"code": query["code"], "state": query["state"][:-4] + "AAAA"},
        allow_redirects=False,
        timeout=10,
    )
    assert forged.status_code == 302
    assert forged.headers["Location"] == f"{WEB_APP}?google=error&reason=invalid_state"
    first = requests.get(callback, allow_redirects=False, timeout=10)
    grant_of(first.headers["Location"])
    replayed = requests.get(callback, allow_redirects=False, timeout=10)
    assert replayed.headers["Location"] == f"{WEB_APP}?google=error&reason=invalid_state"
    junk = requests.get(f"{crud.base_url}/integrations/google/callback?surprise=1", allow_redirects=False, timeout=10)
    assert junk.status_code == 302, "a browser redirect never gets an error page"
    assert "google=error" in junk.headers["Location"]


def test_connecting_is_completed_by_the_user_who_asked(crud: Api, alice: Caller, google: GoogleStandinClient) -> None:
    handle = grant_of(connect(crud, alice))
    assert crud.get("/integrations/google", alice).json()["status"] == "disconnected"  # parked, not connected

    done = complete(crud, alice, handle)

    assert done.status_code == 200, done.text
    assert done.json() == crud.get("/integrations/google", alice).json()
    assert done.json()["status"] == "connected"
    assert done.json()["google_email"] == EMAIL
    assert "https://www.googleapis.com/auth/gmail.readonly" not in done.json()["scopes"]
    assert_error(complete(crud, alice, handle), 404, "NOT_FOUND")  # once
    assert grants_of(alice) == []


def test_a_consent_link_made_by_one_user_and_followed_by_another_connects_no_one(
    crud: Api, alice: Caller, bob: Caller, google: GoogleStandinClient
) -> None:
    # Alice (the attacker) asks to connect and hands the fresh consent URL to Bob, who follows
    # it and consents at Google with his own account.
    auth_url = crud.post("/integrations/google/connect", alice).json()["auth_url"]
    victim = "victim@bobs-company.test"
    google.set_account(victim)
    landed = follow_consent(auth_url)  # Bob's browser lands on the web app, signed in as Bob
    handle = grant_of(landed)

    refused = complete(crud, bob, handle)
    missing = complete(crud, bob, handle[::-1])

    assert_error(refused, 404, "NOT_FOUND")
    assert refused.json() == missing.json()  # no different from a grant that never was
    assert_error(complete(crud, alice, handle), 404, "NOT_FOUND")  # nor can Alice after Bob tried
    for user in (alice, bob):
        assert integration_of(user) is None
        assert grants_of(user) == []
        assert crud.get("/integrations/google", user).json()["status"] == "disconnected"
    assert [t["revoked"] for t in google.account(victim)["refresh_tokens"]] == [True]
    # The state Alice holds from her consent URL is no handle either.
    state = parse_qs(urlsplit(auth_url).query)["state"][0]
    assert_error(complete(crud, alice, state), 404, "NOT_FOUND")


def test_complete_takes_only_a_grant(crud: Api, alice: Caller, google: GoogleStandinClient) -> None:
    for body in ({}, {"grant": ""}, {"grant": 7}, {"grant": "x", "uid": alice.uid}, {"grant": "x" * 1025}):
        assert_error(crud.post("/integrations/google/complete", alice, json=body), 400, "INVALID_ARGUMENT")


def test_disconnect_revokes_and_forgets(crud: Api, connected: Caller, google: GoogleStandinClient) -> None:
    assert crud.delete("/integrations/google", connected).status_code == 204
    assert crud.get("/integrations/google", connected).json() == {
        "status": "disconnected",
        "google_email": None,
        "scopes": [],
    }
    assert all(t["revoked"] for t in google.account(EMAIL)["refresh_tokens"])
    assert integration_of(connected) is None
    assert grants_of(connected) == []


def test_a_disconnect_google_cannot_revoke_now_keeps_nothing_usable_and_is_revoked_later(
    crud: Api, approvals: Api, connected: Caller, google: GoogleStandinClient
) -> None:
    google.fail("oauth.revoke", 503)

    assert crud.delete("/integrations/google", connected).status_code == 204

    assert crud.get("/integrations/google", connected).json()["status"] == "disconnected"
    assert integration_of(connected) is None
    action = email_action(connected)
    approvals.post(f"/actions/{action['id']}/approve", connected)
    assert wait_for_status(action["id"], "failed")["error"]["code"] == "GOOGLE_NOT_CONNECTED"
    assert [t["revoked"] for t in google.account(EMAIL)["refresh_tokens"]] == [False]
    [owed] = grants_of(connected)
    assert owed["state"] == "to_revoke"
    raw_firestore().collection("google_grants").document(owed_id(connected)).update({"revoke_after": datetime.now(UTC)})

    assert crud.delete("/integrations/google", connected).status_code == 204  # disconnecting again retries

    assert [t["revoked"] for t in google.account(EMAIL)["refresh_tokens"]] == [True]
    assert grants_of(connected) == []


def owed_id(user: Caller) -> str:
    from google.cloud.firestore import FieldFilter

    query = raw_firestore().collection("google_grants").where(filter=FieldFilter("owner_id", "==", user.uid))
    [snapshot] = list(query.stream())
    return str(snapshot.id)


def test_reconnecting_another_account_revokes_the_grant_it_replaces(
    crud: Api, connected: Caller, google: GoogleStandinClient
) -> None:
    other = "second@acme-success.com"
    google.set_account(other)

    done = complete(crud, connected, grant_of(connect(crud, connected)))

    assert done.json()["google_email"] == other
    assert [t["revoked"] for t in google.account(EMAIL)["refresh_tokens"]] == [True]
    assert [t["revoked"] for t in google.account(other)["refresh_tokens"]] == [False]


# -- the checklist ---------------------------------------------------------------------------


def test_an_approved_email_is_sent_once_with_its_message_id(
    approvals: Api, connected: Caller, google: GoogleStandinClient
) -> None:
    action = email_action(connected, to=["cfo@acme.com", "ceo@acme.com"], cc=["am@acme.com"])
    assert approvals.post(f"/actions/{action['id']}/approve", connected).status_code == 202
    done = wait_for_status(action["id"], "executed")
    [message] = sent(google)
    assert message["to"] == ["cfo@acme.com", "ceo@acme.com"]
    assert message["cc"] == ["am@acme.com"]
    assert message["subject"] == "Renewal"
    assert message["body"].strip() == "Shall we meet?"
    assert message["message_id"] == f"<action-{action['id']}@cscx.app>"
    assert message["from"].endswith(EMAIL) or EMAIL in message["from"]
    assert done["result"] == {"message_id": message["id"], "thread_id": message["threadId"]}
    assert done["error"] is None
    assert google.account(EMAIL)["drafts"] == []  # sent as a draft, which sending deleted
    assert google.requests("gmail.messages.list") == google.requests("gmail.messages.get") == []


def test_an_approved_draft_appears_in_gmail_drafts(
    approvals: Api, connected: Caller, google: GoogleStandinClient
) -> None:
    action = email_action(connected, "email.draft", subject="Draft for review")
    approvals.post(f"/actions/{action['id']}/approve", connected)
    done = wait_for_status(action["id"], "executed")
    [draft] = google.account(EMAIL)["drafts"]
    assert draft["message"]["subject"] == "Draft for review"
    assert sent(google) == []
    assert done["result"]["draft_id"] == draft["id"]
    assert done["result"]["message_id"]


def test_a_booked_meeting_has_a_meet_link_in_its_result(
    approvals: Api, connected: Caller, google: GoogleStandinClient
) -> None:
    action = meeting_action(connected)
    approvals.post(f"/actions/{action['id']}/approve", connected)
    done = wait_for_status(action["id"], "executed")
    [stored] = google.account(EMAIL)["events"]
    event = stored["event"]
    assert event["summary"] == "Renewal call"
    assert stored["send_updates"] == "all"
    assert done["result"]["event_id"] == event["id"]
    assert done["result"]["meet_link"].startswith("https://meet.google.com/")
    assert done["result"]["html_link"]


# -- exactly once ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["email.send", "meeting.book"])
def test_a_task_delivered_twenty_times_has_one_effect(
    stack: Stack, connected: Caller, google: GoogleStandinClient, kind: str
) -> None:
    action = email_action(connected) if kind == "email.send" else meeting_action(connected)
    raw_firestore().collection("actions").document(action["id"]).update({"status": "approved"})
    body = {"action_id": action["id"], "owner_id": connected.uid}

    def deliver(_: int) -> int:
        return requests.post(f"{stack.url('execute_action')}/execute", json=body, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(deliver, range(20)))
    assert set(statuses) <= {200, 503}
    wait_for_status(action["id"], "executed")
    assert [deliver(0) for _ in range(3)] == [200, 200, 200]
    account = google.account(EMAIL)
    assert len(account["sent"] if kind == "email.send" else account["events"]) == 1
    assert account["drafts"] == []


def test_ten_concurrent_approvals_send_one_email(
    approvals: Api, connected: Caller, google: GoogleStandinClient
) -> None:
    action = email_action(connected)
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(
            pool.map(
                lambda _: Api(approvals.base_url).post(f"/actions/{action['id']}/approve", connected).status_code,
                range(10),
            )
        )
    assert set(statuses) == {202}
    wait_for_status(action["id"], "executed")
    wait_for_queue_to_drain()
    assert len(sent(google)) == 1


def test_a_worker_killed_after_sending_does_not_send_again(
    stack: Stack, connected: Caller, google: GoogleStandinClient
) -> None:
    port = free_port()
    worker_settings = {"CSCX_EXECUTION_LEASE_SECONDS": "2"}
    stack.start_variant("execute_action", "dies", worker_settings, port=port)
    deciding = Api(
        stack.start_variant("approve_action", "to-dying-worker", {"CSCX_WORKER_URL": f"http://127.0.0.1:{port}"})
    )
    # Gmail sends the draft, then its answer is held back: the worker dies before it can record the send.
    google.fail("gmail.drafts.send", None, times=1, delay_ms=5000, after_effect=True)
    action = email_action(connected)
    assert deciding.post(f"/actions/{action['id']}/approve", connected).status_code == 202
    wait_for(lambda: len(sent(google)) == 1, what="the first send")
    stack.kill("execute_action-dies")
    assert stored_action(action["id"])["status"] == "executing"

    stack.start_variant("execute_action", "back", worker_settings, port=port)
    done = wait_for_status(action["id"], "executed", timeout=30)

    [message] = sent(google)
    # The second attempt found the draft it had recorded gone, so sent: the message's own id
    # would take reading the mailbox, which the connection cannot do; its thread is the draft's.
    assert done["result"] == {"message_id": None, "thread_id": message["threadId"]}
    assert done["attempts"] >= 2
    assert google.account(EMAIL)["drafts"] == []
    # The first send is logged once its held-back answer goes out; the second attempt sent nothing.
    wait_for(lambda: len(google.requests("gmail.drafts.send")) == 1, what="the first send's log entry")
    assert sorted(r["api"] for r in google.requests() if r["api"].startswith("gmail.")) == [
        "gmail.drafts.create",
        "gmail.drafts.get",  # the second attempt's look: gone, so sent
        "gmail.drafts.send",
    ]


def test_a_worker_killed_after_making_the_draft_sends_that_draft_once(
    stack: Stack, connected: Caller, google: GoogleStandinClient
) -> None:
    port = free_port()
    worker_settings = {"CSCX_EXECUTION_LEASE_SECONDS": "2"}
    stack.start_variant("execute_action", "dies-drafting", worker_settings, port=port)
    deciding = Api(
        stack.start_variant("approve_action", "to-drafting-worker", {"CSCX_WORKER_URL": f"http://127.0.0.1:{port}"})
    )
    # Gmail saves the draft, then its answer is held back: the worker dies before recording it.
    google.fail("gmail.drafts.create", None, times=1, delay_ms=5000, after_effect=True)
    action = email_action(connected)
    assert deciding.post(f"/actions/{action['id']}/approve", connected).status_code == 202
    wait_for(lambda: len(google.account(EMAIL)["drafts"]) == 1, what="the first draft")
    stack.kill("execute_action-dies-drafting")

    stack.start_variant("execute_action", "back-drafting", worker_settings, port=port)
    done = wait_for_status(action["id"], "executed", timeout=30)

    [message] = sent(google)
    assert message["message_id"] == f"<action-{action['id']}@cscx.app>"
    assert done["result"] == {"message_id": message["id"], "thread_id": message["threadId"]}
    assert google.account(EMAIL)["drafts"] == []  # the first attempt's draft was the one sent
    wait_for(lambda: len(google.requests("gmail.drafts.create")) == 1, what="the first draft's log entry")
    assert sorted(r["api"] for r in google.requests() if r["api"].startswith("gmail.")) == [
        "gmail.drafts.create",
        "gmail.drafts.list",  # the second attempt's search, by the action's Message-ID
        "gmail.drafts.send",
    ]


# -- Google failing, quotas, revoked access --------------------------------------------------


def test_a_google_503_is_retried_and_sends_once(approvals: Api, connected: Caller, google: GoogleStandinClient) -> None:
    google.fail("gmail.drafts.send", 503, times=2)
    action = email_action(connected)
    approvals.post(f"/actions/{action['id']}/approve", connected)
    done = wait_for_status(action["id"], "executed", timeout=20)
    assert done["attempts"] == 3
    assert len(sent(google)) == 1
    assert len(google.requests("gmail.drafts.create")) == 1  # one draft, sent by the third attempt


def test_a_google_400_fails_the_action_without_retry(
    approvals: Api, connected: Caller, google: GoogleStandinClient
) -> None:
    google.fail("gmail.drafts.send", 400, times=5, reason="invalidArgument", message="Invalid To header")
    action = email_action(connected)
    approvals.post(f"/actions/{action['id']}/approve", connected)
    failed = wait_for_status(action["id"], "failed")
    assert failed["error"]["code"] == "INVALID_MESSAGE"  # Gmail refused the message itself
    assert failed["attempts"] == 1
    wait_for_queue_to_drain()
    assert sent(google) == []
    assert len(google.requests("gmail.drafts.send")) == 1


def test_transient_failures_on_every_attempt_fail_after_the_last(
    stack: Stack, connected: Caller, google: GoogleStandinClient
) -> None:
    port = free_port()
    stack.start_variant("execute_action", "three-attempts", {"CSCX_TASKS_MAX_ATTEMPTS": "3"}, port=port)
    deciding = Api(stack.start_variant("approve_action", "to-three", {"CSCX_WORKER_URL": f"http://127.0.0.1:{port}"}))
    google.fail("gmail.drafts.send", 503, times=None)
    action = email_action(connected)
    deciding.post(f"/actions/{action['id']}/approve", connected)
    failed = wait_for_status(action["id"], "failed", timeout=20)
    assert failed["error"]["code"] == "GOOGLE_UNAVAILABLE"
    assert failed["attempts"] == 3
    google.clear_failures()
    wait_for_queue_to_drain()
    assert sent(google) == []


def test_over_the_daily_quota_nothing_is_sent(approvals: Api, connected: Caller, google: GoogleStandinClient) -> None:
    today = datetime.now(UTC)
    raw_firestore().collection("quotas").document(f"{connected.uid}-{today:%Y%m%d}").set(
        {"owner_id": connected.uid, "day": f"{today:%Y-%m-%d}", "emails_sent": 100, "version": 1}
    )
    action = email_action(connected)
    approvals.post(f"/actions/{action['id']}/approve", connected)
    failed = wait_for_status(action["id"], "failed")
    assert failed["error"]["code"] == "QUOTA_EXCEEDED"
    wait_for_queue_to_drain()
    assert sent(google) == []


def test_a_revoked_refresh_token_fails_the_action_and_asks_to_reconnect(
    approvals: Api, crud: Api, connected: Caller, google: GoogleStandinClient
) -> None:
    google.revoke(EMAIL)
    google.expire_tokens(EMAIL)
    raw_firestore().collection("integrations").document(connected.uid).update({"expires_at": datetime.now(UTC)})
    action = email_action(connected)
    approvals.post(f"/actions/{action['id']}/approve", connected)
    failed = wait_for_status(action["id"], "failed")
    assert failed["error"]["code"] == "GOOGLE_REAUTH_REQUIRED"
    assert crud.get("/integrations/google", connected).json()["status"] == "needs_reauth"
    assert sent(google) == []


def test_without_a_connection_the_action_fails_clearly(
    approvals: Api, alice: Caller, google: GoogleStandinClient
) -> None:
    action = email_action(alice)
    approvals.post(f"/actions/{action['id']}/approve", alice)
    failed = wait_for_status(action["id"], "failed")
    assert failed["error"]["code"] == "GOOGLE_NOT_CONNECTED"


def test_another_user_cannot_approve_and_nothing_is_sent(
    approvals: Api, connected: Caller, bob: Caller, google: GoogleStandinClient
) -> None:
    action = email_action(connected)
    assert_error(approvals.post(f"/actions/{action['id']}/approve", bob), 404, "NOT_FOUND")
    wait_for_queue_to_drain()
    assert stored_action(action["id"])["status"] == "pending"
    assert sent(google) == []
