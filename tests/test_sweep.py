"""Nothing approved is forgotten (DESIGN §6; issue 15 point 6): an approval whose task did not go
out is enqueued by its retry or by the worker's sweep; the sweep also expires overdue proposals
and re-drives executions whose worker died, a bounded page at a time, across every user, as often
as it is called without doing anything twice.

Faults are made at the boundary: a function whose Cloud Tasks emulator address answers nothing
(the queue unreachable), documents left as a dead worker or a lost request leaves them. Tasks go
through the Cloud Tasks emulator to the running worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scripts.stack import Stack, free_port
from standins.client import StandinClient
from standins.google_client import GoogleStandinClient
from tests import tokens
from tests.chat_support import Chat
from tests.conftest import Api, Caller, assert_error, raw_firestore, seed_action
from tests.routes import served_routes
from tests.test_approvals import agent_tasks, stored_action, wait_for, wait_for_status
from tests.test_chat import queued_tasks
from tests.test_google_actions import EMAIL, connect_and_complete, email_action
from tests.test_recipients import actions_of

KEY = {"Idempotency-Key": "approve-renewal-task"}


def unreachable_queue() -> dict[str, str]:
    """Settings that point a function at a Cloud Tasks emulator that is not there."""
    return {"CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}


@pytest.fixture(scope="module")
def approvals_without_queue(stack: Stack) -> Api:
    return Api(stack.start_variant("approve_action", "no-queue", unreachable_queue()))


def backdate(action_id: str, **ago: timedelta) -> None:
    """Move the action's times into the past, as if its request had ended that long ago."""
    now = datetime.now(UTC)
    raw_firestore().collection("actions").document(action_id).update({name: now - d for name, d in ago.items()})


# -- the retry of an approval whose enqueue failed -------------------------------------------


def test_an_approval_whose_enqueue_failed_is_enqueued_when_retried_with_its_key(
    stack: Stack, approvals: Api, approvals_without_queue: Api, alice: Caller
) -> None:
    action = seed_action(alice.uid)

    first = approvals_without_queue.post(f"/actions/{action['id']}/approve", alice, headers=KEY)

    assert_error(first, 503, "UNAVAILABLE")
    stored = stored_action(action["id"])
    assert (stored["status"], stored["enqueued_at"]) == ("approved", None), "decided, but no task went"
    assert queued_tasks(stack) == []

    retry = approvals.post(f"/actions/{action['id']}/approve", alice, headers=KEY)

    assert retry.status_code == 202, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["status"] == "approved"
    done = wait_for_status(action["id"], "executed")
    assert done["enqueued_at"] is not None
    again = approvals.post(f"/actions/{action['id']}/approve", alice, headers=KEY)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (202, "true")
    assert len(agent_tasks(alice.uid)) == 1
    assert stored_action(action["id"])["attempts"] == 1


# -- the sweep ---------------------------------------------------------------------------------


def sweep(worker: Api, body: Any = None) -> dict[str, Any]:
    """Call the worker's /sweep as Cloud Scheduler does (`{}`), and what it did."""
    reply = worker.post("/sweep", json={} if body is None else body)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


NOTHING = {"expired": 0, "enqueued": 0, "redriven": 0, "more": False}


def test_the_sweep_enqueues_an_approval_whose_enqueue_failed(
    approvals_without_queue: Api, worker: Api, alice: Caller
) -> None:
    action = seed_action(alice.uid)
    assert_error(approvals_without_queue.post(f"/actions/{action['id']}/approve", alice), 503, "UNAVAILABLE")
    assert sweep(worker) == NOTHING, "decided just now: its request may still be enqueueing"

    backdate(action["id"], decided_at=timedelta(seconds=31))

    assert sweep(worker) == {**NOTHING, "enqueued": 1}
    done = wait_for_status(action["id"], "executed")
    assert done["enqueued_at"] is not None
    assert sweep(worker) == NOTHING
    assert len(agent_tasks(alice.uid)) == 1


def test_an_auto_approved_proposal_whose_enqueue_failed_is_swept_up(
    stack: Stack, crud: Api, worker: Api, models: StandinClient, alice: Caller
) -> None:
    chat = Chat(Api(stack.start_variant("chat_stream", "no-queue", unreachable_queue())))
    assert crud.patch("/profile", alice, json={"preferences": {"auto_approve": ["task.create"]}}).status_code == 200
    e_mail = {"to": ["cfo@acme.com"], "subject": "Renewal", "body": "Shall we talk?"}
    models.script(
        {"steps": [{"tool_call": {"name": "create_task", "input": {"title": "Send the QBR deck"}}}]},
        {"steps": [{"tool_call": {"name": "send_email", "input": e_mail}}]},
        {"steps": [{"text": "Done."}]},
    )

    reply = chat.send(alice, message="Remind me to send the deck, and e-mail the CFO")

    assert [p["output"]["status"] for p in reply.of_type("tool-output-available")] == ["approved"]
    by_type = {a["type"]: a for a in actions_of(alice)}
    task, e_mail_action = by_type["task.create"], by_type["email.send"]
    assert (task["status"], task["enqueued_at"]) == ("approved", None), "approved, but its task never went"
    assert e_mail_action["status"] == "pending"  # and its expiry task was never scheduled
    assert queued_tasks(stack) == []
    backdate(task["id"], decided_at=timedelta(minutes=1))
    backdate(e_mail_action["id"], expires_at=timedelta(seconds=1))

    assert sweep(worker) == {**NOTHING, "enqueued": 1, "expired": 1}

    wait_for_status(task["id"], "executed")
    [created] = agent_tasks(alice.uid)
    assert created["title"] == "Send the QBR deck"
    assert stored_action(e_mail_action["id"])["status"] == "expired"


def test_the_sweep_expires_overdue_proposals_of_every_user(worker: Api, alice: Caller, bob: Caller) -> None:
    overdue = [seed_action(alice.uid, expires_in=-60), seed_action(bob.uid, expires_in=-1)]
    waiting = seed_action(alice.uid, expires_in=3600)
    decided = seed_action(bob.uid, status="rejected", expires_in=-60)

    assert sweep(worker) == {**NOTHING, "expired": 2}

    assert [stored_action(a["id"])["status"] for a in overdue] == ["expired", "expired"]
    assert stored_action(waiting["id"])["status"] == "pending"
    assert stored_action(decided["id"])["status"] == "rejected"
    assert [stored_action(a["id"])["version"] for a in overdue] == [2, 2]
    assert sweep(worker) == NOTHING


def test_the_sweep_redrives_an_execution_whose_worker_died(worker: Api, alice: Caller) -> None:
    now = datetime.now(UTC)
    lapsed = {"holder": "a-worker-that-died", "until": now - timedelta(seconds=5)}
    stranded = seed_action(
        alice.uid, status="executing", lease=lapsed, attempts=1, first_attempt_at=now - timedelta(minutes=2)
    )
    held = {"holder": "a-worker-still-at-it", "until": now + timedelta(minutes=5)}
    running = seed_action(alice.uid, status="executing", lease=held, attempts=1, first_attempt_at=now)

    assert sweep(worker) == {**NOTHING, "redriven": 1}

    done = wait_for_status(stranded["id"], "executed")
    assert done["attempts"] == 2  # taken over: the effect looked for before it was made
    assert done["lease"] is None
    [task] = agent_tasks(alice.uid)
    assert done["result"] == {"task_id": task["id"]}
    still = stored_action(running["id"])
    assert (still["status"], still["lease"]["holder"], still["attempts"]) == ("executing", held["holder"], 1)
    assert sweep(worker) == NOTHING


def test_a_sweep_does_a_bounded_page_oldest_first_and_the_next_call_goes_on(
    stack: Stack, alice: Caller, bob: Caller
) -> None:
    worker = Api(stack.start_variant("execute_action", "sweeps-two", {"CSCX_SWEEP_LIMIT": "2"}))
    oldest, older, newest = (
        seed_action(alice.uid, expires_in=-300),
        seed_action(bob.uid, expires_in=-200),
        seed_action(alice.uid, expires_in=-100),
    )

    assert sweep(worker) == {**NOTHING, "expired": 2, "more": True}
    assert [stored_action(a["id"])["status"] for a in (oldest, older, newest)] == ["expired", "expired", "pending"]
    assert sweep(worker) == {**NOTHING, "expired": 1}
    assert stored_action(newest["id"])["status"] == "expired"


def test_concurrent_sweeps_do_each_thing_once(worker: Api, alice: Caller, bob: Caller) -> None:
    stalled = [seed_action(user.uid, status="approved", enqueued_at=None) for user in (alice, bob, alice)]
    for action in stalled:
        backdate(action["id"], decided_at=timedelta(minutes=10))

    with ThreadPoolExecutor(max_workers=3) as pool:
        reports = list(pool.map(lambda _: sweep(Api(worker.base_url)), range(3)))

    assert sum(r["enqueued"] for r in reports) >= 3
    for action in stalled:
        assert wait_for_status(action["id"], "executed")["attempts"] == 1
    assert len(agent_tasks(alice.uid)) == 2
    assert len(agent_tasks(bob.uid)) == 1
    assert sweep(worker) == NOTHING


def test_with_the_queue_unreachable_the_sweep_does_what_it_can_and_answers_503(
    stack: Stack, worker: Api, alice: Caller
) -> None:
    cut_off = Api(stack.start_variant("execute_action", "no-queue", unreachable_queue()))
    overdue = seed_action(alice.uid, expires_in=-60)
    stalled = seed_action(alice.uid, status="approved", enqueued_at=None)
    backdate(stalled["id"], decided_at=timedelta(minutes=10))

    assert_error(cut_off.post("/sweep", json={}), 503, "UNAVAILABLE")

    assert stored_action(overdue["id"])["status"] == "expired", "expiring needs no queue"
    left = stored_action(stalled["id"])
    assert (left["status"], left["enqueued_at"]) == ("approved", None)
    assert sweep(worker) == {**NOTHING, "enqueued": 1}
    wait_for_status(stalled["id"], "executed")


def test_the_sweep_takes_no_body_but_an_empty_one(worker: Api) -> None:
    assert worker.post("/sweep").status_code == 200
    assert_error(worker.post("/sweep", json={"limit": 1000}), 400, "INVALID_ARGUMENT")
    assert_error(worker.post("/sweep", json=[]), 400, "INVALID_ARGUMENT")


# -- who may call it ---------------------------------------------------------------------------

TASKS_ACCOUNT = "cscx-tasks@demo-cscx.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def signing_worker(stack: Stack) -> Iterator[tuple[Api, tokens.SigningKey]]:
    """The worker as deployed: it admits only the tasks service account's Google-signed token for
    its URL (Google's certificates served by the test)."""
    key = tokens.make_signing_key(f"oidc-{uuid.uuid4().hex[:8]}")
    certificates = tokens.CertificateServer(key).start()
    try:
        changes = {"CSCX_TASKS_SERVICE_ACCOUNT": TASKS_ACCOUNT, "CSCX_OIDC_CERTS_URL": certificates.certs_url}
        yield Api(stack.start_variant("execute_action", "oidc", changes)), key
    finally:
        certificates.stop()


def oidc_token(stack: Stack, key: tokens.SigningKey, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": stack.settings()["CSCX_WORKER_URL"],
        "sub": "1234567890",
        "email": TASKS_ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        **overrides,
    }
    return tokens.sign_rs256(claims, key)


def test_the_sweep_admits_exactly_the_callers_execute_admits(
    stack: Stack, signing_worker: tuple[Api, tokens.SigningKey], alice: Caller
) -> None:
    worker, key = signing_worker
    overdue = seed_action(alice.uid, expires_in=-60)
    impostor = tokens.make_signing_key(key.kid)
    refused = {
        "no token": None,
        "a Firebase user's": alice.token,
        "another audience": oidc_token(stack, key, aud=f"{worker.base_url}/sweep"),
        "another account": oidc_token(stack, key, email="someone@demo-cscx.iam.gserviceaccount.com"),
        "unverified e-mail": oidc_token(stack, key, email_verified=False),
        "expired": oidc_token(stack, key, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        "signed by another key": tokens.sign_rs256(tokens.claims_of(oidc_token(stack, key)), impostor),
        "unsigned": tokens.unsigned(tokens.claims_of(oidc_token(stack, key)), kid=key.kid),
    }
    routes = [r.pattern for r in served_routes() if r.function == "execute_action" and r.auth == "CloudTasks"]
    assert sorted(routes) == ["/execute", "/expire", "/sweep"]
    for route in routes:
        body = {} if route == "/sweep" else {"action_id": overdue["id"], "owner_id": alice.uid}
        for why, token in refused.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            reply = worker.post(route, json=body, headers=headers)
            assert reply.status_code == 401, (route, why, reply.text)
    assert stored_action(overdue["id"])["status"] == "pending", "no refused call changed anything"

    admitted = worker.post("/sweep", json={}, headers={"Authorization": f"Bearer {oidc_token(stack, key)}"})

    assert admitted.status_code == 200, admitted.text
    assert admitted.json() == {**NOTHING, "expired": 1}


# -- a live execution is left alone -----------------------------------------------------------


def test_a_slow_google_call_keeps_its_lease_and_is_not_redriven(stack: Stack, crud: Api, alice: Caller) -> None:
    google = GoogleStandinClient(f"http://127.0.0.1:{stack.ports.google}")
    google.reset()
    google.set_account(EMAIL)
    connect_and_complete(crud, alice)
    port = free_port()
    short_lease = {"CSCX_EXECUTION_LEASE_SECONDS": "2"}
    worker = Api(stack.start_variant("execute_action", "short-lease", short_lease, port=port))
    deciding = Api(stack.start_variant("approve_action", "to-short-lease", {"CSCX_WORKER_URL": worker.base_url}))
    google.fail("gmail.drafts.send", None, times=1, delay_ms=6000)  # Gmail takes 6 s to answer
    action = email_action(alice)

    assert deciding.post(f"/actions/{action['id']}/approve", alice).status_code == 202
    started = wait_for_status(action["id"], "executing")["first_attempt_at"]
    wait_for(lambda: datetime.now(UTC) > started + timedelta(seconds=3), what="the first lease to have run out")

    held = stored_action(action["id"])
    assert held["status"] == "executing", "Gmail is still at it"
    assert held["lease"]["until"] > datetime.now(UTC), "renewed meanwhile"
    assert sweep(worker) == NOTHING, "nothing to re-drive"
    done = wait_for_status(action["id"], "executed", timeout=20)
    assert done["attempts"] == 1
    assert len(google.account(EMAIL)["sent"]) == 1
    google.reset()
