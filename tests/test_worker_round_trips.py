"""The worker's cost per delivery (issue 19): its round trips to Firestore counted on the wire, so
that they cannot silently grow, and the claim's one commit with the quota's count holding its
promises when the deliveries of one user come at once, as Cloud Tasks sends them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from scripts.stack import Stack
from standins.google_client import GoogleStandinClient
from tests.conftest import Caller, Instance, raw_firestore, seed_action
from tests.firestore_faults import FirestoreProxy
from tests.test_google_actions import EMAIL, connected, email_action
from tests.test_idempotency import database, in_process

__all__ = ["connected", "database"]  # fixtures of their modules, used here


@pytest.fixture
def worker_in_process(database: FirestoreProxy, fresh_instance: Instance) -> Iterator[FlaskClient]:
    raw_firestore()  # made first, on the emulator itself: the proxy lasts only this test
    yield from in_process("execute_action", database, fresh_instance)


def approved(action: dict[str, Any]) -> str:
    raw_firestore().collection("actions").document(action["id"]).update({"status": "approved"})
    return str(action["id"])


def deliver(worker: FlaskClient, database: FirestoreProxy, action_id: str, owner: Caller) -> Counter[str]:
    """One delivery of the action's task; the Firestore calls it made, by method."""
    database.calls.clear()
    body = json.dumps({"action_id": action_id, "owner_id": owner.uid})
    reply = worker.post("/execute", data=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.get_json() == {"status": "executed"}
    return Counter(database.calls)


def test_an_email_send_costs_one_read_and_three_commits(
    worker_in_process: FlaskClient, database: FirestoreProxy, connected: Caller, google: GoogleStandinClient
) -> None:
    """The action, the connection and today's quota read at once; the claim committed with the
    quota's count; the draft noted on the action before it is sent; the result recorded as the
    lease is let go. The first e-mail of the day (its quota created in the claim's commit) and
    the next cost the same."""
    first = deliver(worker_in_process, database, approved(email_action(connected)), connected)
    second = deliver(worker_in_process, database, approved(email_action(connected)), connected)
    assert first == second == Counter({"BatchGetDocuments": 1, "Commit": 3})
    assert len(google.account(EMAIL)["sent"]) == 2


def test_a_draft_costs_one_read_and_two_commits(
    worker_in_process: FlaskClient, database: FirestoreProxy, connected: Caller, google: GoogleStandinClient
) -> None:
    calls = deliver(worker_in_process, database, approved(email_action(connected, "email.draft")), connected)
    assert calls == Counter({"BatchGetDocuments": 1, "Commit": 2})
    assert len(google.account(EMAIL)["drafts"]) == 1


def test_a_redelivery_of_an_executed_action_costs_one_read_and_no_write(
    worker_in_process: FlaskClient, database: FirestoreProxy, connected: Caller, google: GoogleStandinClient
) -> None:
    action_id = approved(email_action(connected))
    deliver(worker_in_process, database, action_id, connected)
    assert deliver(worker_in_process, database, action_id, connected) == Counter({"BatchGetDocuments": 1})
    assert len(google.account(EMAIL)["sent"]) == 1


def test_concurrent_deliveries_send_up_to_the_quota_and_count_each_once(
    stack: Stack, connected: Caller, google: GoogleStandinClient
) -> None:
    """Twelve e-mails of one user delivered at once, each task twice, against a quota of five (its
    day's document not there yet): five sent, each once; the others fail over quota, nothing sent;
    the day's count is five."""
    url = stack.start_variant("execute_action", "quota-5", {"CSCX_DAILY_EMAIL_QUOTA": "5"})
    action_ids = [approved(email_action(connected, subject=f"Renewal {n}")) for n in range(12)]

    def deliver_over_http(action_id: str) -> int:
        body = {"action_id": action_id, "owner_id": connected.uid}
        return requests.post(f"{url}/execute", json=body, timeout=30).status_code

    with ThreadPoolExecutor(24) as deliveries:
        statuses = list(deliveries.map(deliver_over_http, action_ids + action_ids))
    for action_id in action_ids:  # a delivery told to come back (the other held it) comes back
        deliver_over_http(action_id)

    outcomes = Counter(raw_firestore().collection("actions").document(a).get().get("status") for a in action_ids)
    assert outcomes == Counter({"executed": 5, "failed": 7}), statuses
    sent = [message["message_id"] for message in google.account(EMAIL)["sent"]]
    assert len(sent) == len(set(sent)) == 5
    today = datetime.now(UTC)
    quota = raw_firestore().collection("quotas").document(f"{connected.uid}-{today:%Y%m%d}").get().to_dict() or {}
    assert quota["emails_sent"] == 5
    assert quota["owner_id"] == connected.uid


def test_a_task_create_costs_the_claim_and_one_transaction(
    worker_in_process: FlaskClient, database: FirestoreProxy, alice: Caller
) -> None:
    """The claim (a read, a commit), then the task created and the action recorded in one
    transaction, the action's owner asked first (`TenantTransaction.get`)."""
    action = seed_action(alice.uid, status="approved")
    calls = deliver(worker_in_process, database, str(action["id"]), alice)
    assert calls == Counter({"BatchGetDocuments": 3, "BeginTransaction": 1, "Commit": 2})
