"""Human approval and execution (DESIGN §6), end to end through the emulators: the CSM decides
through `approve_action`, the Cloud Tasks emulator delivers to `execute_action`, and the effect
happens once whatever the deliveries (and, for Google's effects, at the Google stand-in)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from scripts.stack import Stack
from tests.conftest import Api, Caller, Instance, assert_error, raw_firestore, seed_action
from tests.task_queue import wait_for_queue_to_drain


def stored_action(action_id: str) -> dict[str, Any]:
    return raw_firestore().collection("actions").document(action_id).get().to_dict() or {}


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def wait_for_status(action_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
    wait_for(lambda: stored_action(action_id).get("status") == status, timeout, f"status {status}")
    return stored_action(action_id)


def agent_tasks(uid: str) -> list[dict[str, Any]]:
    from google.cloud.firestore import FieldFilter

    query = raw_firestore().collection("tasks").where(filter=FieldFilter("owner_id", "==", uid))
    return [{"id": s.id, **(s.to_dict() or {})} for s in query.stream() if (s.to_dict() or {}).get("source") == "agent"]


# -- deciding ------------------------------------------------------------------------------


def test_approved_task_is_created_once_by_the_worker_through_cloud_tasks(
    approvals: Api, crud: Api, alice: Caller
) -> None:
    customer = crud.post("/customers", alice, json={"name": "Acme"}).json()
    action = seed_action(alice.uid, customer_id=customer["id"])

    response = approvals.post(f"/actions/{action['id']}/approve", alice)

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "approved"
    assert response.json()["decided_by"] == alice.uid
    assert response.headers["ETag"] == f'"{response.json()["version"]}"'
    done = wait_for_status(action["id"], "executed")
    [task] = agent_tasks(alice.uid)
    assert done["result"] == {"task_id": task["id"]}
    assert task["title"] == "Follow up"
    assert task["customer_id"] == customer["id"]
    assert crud.get(f"/tasks/{task['id']}", alice).json()["source"] == "agent"
    assert done["attempts"] == 1
    fetched = approvals.get(f"/actions/{action['id']}", alice).json()
    assert fetched["status"] == "executed"
    assert done["lease"] is None  # let go with the outcome
    assert not {"lease", "enqueued_at", "first_attempt_at"} & set(fetched), "the worker's bookkeeping is never answered"


def test_approving_twice_gives_the_same_action_and_one_effect(approvals: Api, alice: Caller) -> None:
    action = seed_action(alice.uid)
    first = approvals.post(f"/actions/{action['id']}/approve", alice)
    second = approvals.post(f"/actions/{action['id']}/approve", alice)
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["decided_at"] == first.json()["decided_at"]
    wait_for_status(action["id"], "executed")
    wait_for_queue_to_drain()
    assert len(agent_tasks(alice.uid)) == 1


def test_ten_concurrent_approvals_make_one_effect(approvals: Api, alice: Caller) -> None:
    action = seed_action(alice.uid)

    def approve(_: int) -> int:
        return Api(approvals.base_url).post(f"/actions/{action['id']}/approve", alice).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(approve, range(10)))
    assert set(statuses) == {202}, statuses
    wait_for_status(action["id"], "executed")
    wait_for_queue_to_drain()
    assert len(agent_tasks(alice.uid)) == 1
    assert stored_action(action["id"])["attempts"] == 1


def test_the_same_task_delivered_twenty_times_makes_one_effect(approvals: Api, worker: Api, alice: Caller) -> None:
    action = seed_action(alice.uid, status="approved", decided_by=alice.uid)
    body = {"action_id": action["id"], "owner_id": alice.uid}

    def deliver(n: int) -> int:
        headers = {"X-CloudTasks-TaskRetryCount": str(n % 3)}
        return requests.post(f"{worker.base_url}/execute", json=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(deliver, range(20)))
    assert set(statuses) <= {200, 503}, statuses  # 503: another delivery held it; Cloud Tasks comes back
    assert statuses.count(200) >= 1
    done = wait_for_status(action["id"], "executed")
    again = [deliver(0) for _ in range(3)]  # redeliveries of an executed action are no-ops
    assert again == [200, 200, 200]
    assert len(agent_tasks(alice.uid)) == 1
    assert stored_action(action["id"])["result"] == done["result"]


def test_reject_with_a_reason_and_nothing_happens(approvals: Api, alice: Caller) -> None:
    action = seed_action(alice.uid)
    response = approvals.post(f"/actions/{action['id']}/reject", alice, json={"reason": "Not this quarter"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    assert response.json()["reject_reason"] == "Not this quarter"
    assert approvals.post(f"/actions/{action['id']}/reject", alice).json()["status"] == "rejected"
    assert_error(approvals.post(f"/actions/{action['id']}/approve", alice), 409, "ABORTED")
    wait_for_queue_to_drain()
    assert agent_tasks(alice.uid) == []
    assert stored_action(action["id"])["status"] == "rejected"


def test_an_approved_action_cannot_be_rejected(approvals: Api, alice: Caller) -> None:
    action = seed_action(alice.uid)
    approvals.post(f"/actions/{action['id']}/approve", alice)
    assert_error(approvals.post(f"/actions/{action['id']}/reject", alice), 409, "ABORTED")


def test_a_decision_after_the_expiry_is_refused_and_expires_the_action(approvals: Api, alice: Caller) -> None:
    action = seed_action(alice.uid, expires_in=-1)
    error = assert_error(approvals.post(f"/actions/{action['id']}/approve", alice), 409, "ABORTED")
    assert "expired" in error["message"]
    assert stored_action(action["id"])["status"] == "expired"
    other = seed_action(alice.uid, expires_in=-1)
    assert_error(approvals.post(f"/actions/{other['id']}/reject", alice), 409, "ABORTED")
    assert stored_action(other["id"])["status"] == "expired"
    wait_for_queue_to_drain()
    assert agent_tasks(alice.uid) == []


@pytest.fixture
def short_expiry(fresh_instance: Instance, stack: Stack) -> None:
    """Proposals made by this test process expire after 2 s."""
    fresh_instance(CSCX_ACTION_EXPIRY_SECONDS="2")


@pytest.mark.usefixtures("short_expiry")
def test_an_action_expires_on_time_with_nobody_looking(alice: Caller) -> None:
    from common.actions import decisions
    from common.models import ActionType
    from common.store import Repository

    action = decisions.propose(
        Repository(alice.uid),
        ActionType.EMAIL_SEND,
        {"to": ["cfo@acme.com"], "subject": "Renewal", "body": "Hello"},
        session_id=None,
        tool_call_id=None,
        auto_approve=[],
    )
    assert action.status.value == "pending"
    assert action.expires_at - datetime.now(UTC) < timedelta(seconds=3)
    # Nobody lists or reads it: the expiry task the proposal scheduled does it.
    wait_for_status(action.id, "expired", timeout=15)


def test_an_edited_payload_is_validated_then_approved(approvals: Api, crud: Api, alice: Caller) -> None:
    action = seed_action(alice.uid)
    bad = approvals.post(f"/actions/{action['id']}/approve", alice, json={"payload": {"title": ""}})
    error = assert_error(bad, 400, "INVALID_ARGUMENT")
    assert [d["field"] for d in error["details"]] == ["title"]
    assert stored_action(action["id"])["status"] == "pending"
    foreign = approvals.post(
        f"/actions/{action['id']}/approve", alice, json={"payload": {"title": "X", "customer_id": "notMine0000"}}
    )
    assert_error(foreign, 400, "INVALID_ARGUMENT")
    assert stored_action(action["id"])["version"] == action["version"]

    edited = {"title": "Call the CFO", "due_date": "2027-01-15", "priority": "high"}
    response = approvals.post(f"/actions/{action['id']}/approve", alice, json={"payload": edited})
    assert response.status_code == 202, response.text
    assert response.json()["payload"]["title"] == "Call the CFO"
    assert "Call the CFO" in response.json()["summary"]
    wait_for_status(action["id"], "executed")
    [task] = agent_tasks(alice.uid)
    assert (task["title"], task["due_date"], task["priority"]) == ("Call the CFO", "2027-01-15", "high")


def test_a_task_whose_customer_is_gone_fails_without_retry(approvals: Api, crud: Api, alice: Caller) -> None:
    customer = crud.post("/customers", alice, json={"name": "Gone soon"}).json()
    action = seed_action(alice.uid, status="approved", customer_id=customer["id"])
    raw_firestore().collection("customers").document(customer["id"]).delete()
    from common.actions import decisions
    from common.store import Repository

    decisions.enqueue(Repository(alice.uid), {**stored_action(action["id"]), "id": action["id"]})
    failed = wait_for_status(action["id"], "failed")
    assert failed["error"]["code"] == "CUSTOMER_GONE"
    assert agent_tasks(alice.uid) == []


# -- reading -------------------------------------------------------------------------------


def test_actions_are_listed_newest_first_by_status_and_paged(approvals: Api, alice: Caller, bob: Caller) -> None:
    ids = [seed_action(alice.uid)["id"] for _ in range(3)]
    approved = seed_action(alice.uid, status="approved")["id"]
    seed_action(bob.uid)
    everything = approvals.get("/actions", alice).json()
    assert [a["id"] for a in everything["items"]] == [approved, *reversed(ids)]
    pending = approvals.get("/actions", alice, params={"status": "pending", "limit": "2"}).json()
    assert [a["id"] for a in pending["items"]] == list(reversed(ids))[:2]
    rest = approvals.get(
        "/actions", alice, params={"status": "pending", "limit": "2", "cursor": pending["next_cursor"]}
    )
    assert [a["id"] for a in rest.json()["items"]] == [ids[0]]
    assert_error(approvals.get("/actions", alice, params={"status": "done"}), 400, "INVALID_ARGUMENT")


def test_another_users_action_is_404_to_every_route(approvals: Api, alice: Caller, bob: Caller) -> None:
    action = seed_action(alice.uid)
    for response in (
        approvals.get(f"/actions/{action['id']}", bob),
        approvals.post(f"/actions/{action['id']}/approve", bob),
        approvals.post(f"/actions/{action['id']}/reject", bob),
    ):
        assert_error(response, 404, "NOT_FOUND")
    assert stored_action(action["id"])["status"] == "pending"


def test_the_worker_refuses_a_malformed_task(worker: Api) -> None:
    for body in (
        {},
        {"action_id": "a"},
        {"action_id": "a/b", "owner_id": "u"},
        {"action_id": "a", "owner_id": "u", "x": 1},
    ):
        assert_error(worker.post("/execute", json=body), 400, "INVALID_ARGUMENT")
    assert worker.post("/execute", json={"action_id": "missing0000", "owner_id": "nobody00"}).json() == {
        "status": "gone"
    }
