"""Nothing approved is forgotten (DESIGN §6; issue 15 point 6): an approval whose task did not go
out is enqueued by its retry or by the worker's sweep; the sweep also expires overdue proposals
and re-drives executions whose worker died, a bounded page at a time, across every user, as often
as it is called without doing anything twice.

Faults are made at the boundary: a function whose Cloud Tasks emulator address answers nothing
(the queue unreachable), documents left as a dead worker or a lost request leaves them. Tasks go
through the Cloud Tasks emulator to the running worker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scripts.stack import Stack, free_port
from tests.conftest import Api, Caller, assert_error, raw_firestore, seed_action
from tests.test_approvals import agent_tasks, stored_action, wait_for_status
from tests.test_chat import queued_tasks

KEY = {"Idempotency-Key": "approve-renewal-task"}


def unreachable_queue() -> dict[str, str]:
    """Settings that point a function at a Cloud Tasks emulator that is not there."""
    return {"CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}


@pytest.fixture
def approvals(stack: Stack) -> Api:
    return Api(stack.url("approve_action"))


@pytest.fixture
def worker(stack: Stack) -> Api:
    return Api(stack.url("execute_action"))


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
