"""The CSM decides (DESIGN §6): approve (the payload perhaps edited), reject, or let expire.

Every transition is a compare-and-set on the action (a write on the precondition that the
action is still as it was read), so concurrent decisions on one action agree: approving twice
gives the same action and one task, and a decision after `expires_at` is refused and expires
the action. An approval enqueues one Cloud Task, named after the action, for the worker; a
proposal schedules another for its expiry time, so an action expires when it should even when
nobody looks at it. An approval whose task did not go out (the queue unavailable) is enqueued
again by a retry with its Idempotency-Key, by an approval 30 s later, or by the sweep."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from common import cloud_tasks, models, resources
from common.actions import risk_of, summary_of, validate_payload
from common.actions.recipients import recipients_of
from common.actions.records import ActionFields, ActionRecord
from common.auth import User
from common.collections import ACTIONS
from common.errors import ApiError, Code, NotFoundError
from common.log import get_logger
from common.models import ActionStatus, ActionType, Risk
from common.settings import get_settings
from common.store import Companion, Filter, ListPage, Repository

logger = get_logger(__name__)

# Decided in favour: approving again gives the action as it is.
APPROVED_STATES = frozenset({ActionStatus.APPROVED, ActionStatus.EXECUTING, ActionStatus.EXECUTED, ActionStatus.FAILED})
# An approval whose task is not known to have gone out is sent again after this long.
REENQUEUE_AFTER = timedelta(seconds=30)


def execute_task_id(action_id: str) -> str:
    return f"execute-{action_id}"


def expire_task_id(action_id: str) -> str:
    return f"expire-{action_id}"


def worker_body(repo: Repository, action_id: str) -> dict[str, str]:
    """What a task tells the worker: the action, and whose it is (the worker reads it as its owner)."""
    return {"action_id": action_id, "owner_id": repo.uid}


def propose(
    repo: Repository,
    action_type: ActionType,
    payload: Any,
    *,
    session_id: str | None,
    tool_call_id: str | None,
    auto_approve: list[str],
) -> models.ActionPublic:
    """Store the agent's proposal: `pending`, or `approved` at once for a low-risk type the CSM
    listed in `preferences.auto_approve` and whose every recipient is known (a high-risk type
    never is, whatever the list says: DESIGN §6)."""
    stored_payload = validate_payload(repo, action_type, payload)
    reached = recipients_of(repo, action_type, stored_payload)
    risk = risk_of(action_type)
    now = datetime.now(UTC)
    automatic = risk is Risk.LOW and action_type.value in auto_approve and all(r.known for r in reached)
    document: ActionFields = {
        "type": action_type.value,
        "payload": stored_payload,
        "summary": summary_of(action_type, stored_payload, reached),
        "recipients": [r.model_dump(mode="json") for r in reached],
        "session_id": session_id,
        "tool_call_id": tool_call_id,
        "customer_id": stored_payload.get("customer_id"),
        "risk": risk.value,
        "status": (ActionStatus.APPROVED if automatic else ActionStatus.PENDING).value,
        "expires_at": now + timedelta(seconds=get_settings().action_expiry_seconds),
        "decided_at": now if automatic else None,
        "decided_by": "auto_approve" if automatic else None,
        "reject_reason": None,
        "attempts": 0,
        "result": None,
        "error": None,
        "enqueued_at": None,  # stored null, so the sweep's query finds an approval whose task never went
    }
    created = repo.create(ACTIONS, document)
    action = models.ActionPublic.of(created)
    try:
        if automatic:
            action = enqueue(repo, created)
        else:
            schedule_expiry(repo, action)
    except ApiError as error:
        # Stored all the same, and not forgotten: the sweep enqueues an approval whose task did
        # not go out, and expires a proposal past its expiry (a decision after it is refused).
        logger.warning("action task not enqueued", extra={"fields": {"action_id": action.id, "error": error.message}})
    return action


def list_actions(repo: Repository, query: Mapping[str, str]) -> ListPage[models.ActionPublic]:
    status = resources.enum_arg(query, "status", ActionStatus)
    filters = [Filter("status", "==", status)] if status else []
    return resources.list_page(repo, ACTIONS, resources.list_args(query, ACTIONS), filters).map(models.ActionPublic.of)


def get_action(repo: Repository, action_id: str) -> models.ActionPublic:
    return models.ActionPublic.of(repo.get(ACTIONS, action_id))


def _expired(action: ActionRecord) -> ApiError:
    expired_at = action.expires_at.isoformat()
    return ApiError(Code.ABORTED, f"The action expired at {expired_at}; it can no longer be decided.")


def _decided(action: ActionRecord) -> ApiError:
    return ApiError(Code.ABORTED, f"The action is already {action.status.value}.")


def approve(
    repo: Repository, user: User, action_id: str, edit: dict[str, Any] | None, *, along: Companion | None = None
) -> models.ActionPublic:
    """Approve a pending action (with the CSM's edit of its payload, validated first) and enqueue it;
    `along` (an idempotency key's record) is stored with the decision."""
    payload = None
    if edit is not None:  # validated against the action's type, a 400 before anything
        action_type = ActionRecord.of(repo.get(ACTIONS, action_id)).type
        payload = validate_payload(repo, action_type, edit)
    now = datetime.now(UTC)
    changes: ActionFields = {
        "status": ActionStatus.APPROVED.value,
        "decided_at": now,
        "decided_by": user.uid,
        "enqueued_at": None,  # not yet: the sweep finds it if the enqueue below fails
    }
    if payload is not None:  # who it reaches, judged again
        reached = recipients_of(repo, action_type, payload)
        changes |= {
            "payload": payload,
            "summary": summary_of(action_type, payload, reached),
            "recipients": [r.model_dump(mode="json") for r in reached],
            "customer_id": payload.get("customer_id"),
        }
    action, decided = _decide(repo, action_id, changes, now, along)
    if decided:
        return enqueue(repo, action)
    record = ActionRecord.of(action)
    if record.status not in APPROVED_STATES:
        raise _decided(record)
    if payload is not None and payload != record.payload:
        raise ApiError(Code.ABORTED, "The action was already approved as it was; it cannot be edited now.")
    waited = now - (record.decided_at or now)
    if record.status is ActionStatus.APPROVED and record.enqueued_at is None and waited > REENQUEUE_AFTER:
        return enqueue(repo, action)  # the approving request died before enqueueing
    return models.ActionPublic.of(action)


def approval_read_back(repo: Repository, action_id: str) -> models.ActionPublic:
    """What a retried approval answers when the first request stored its decision but not its
    answer (its enqueue failed, say): the action, its task enqueued if none is known to have
    gone out — Cloud Tasks refuses a second task of the name, so one that did go out unrecorded
    is not doubled."""
    return enqueue_if_unsent(repo, action_id)[0]


def enqueue_if_unsent(repo: Repository, action_id: str) -> tuple[models.ActionPublic, bool]:
    """The action, and whether its task was enqueued now: an approved one whose task is not known
    to have gone out (`enqueued_at` null) is enqueued."""
    action = repo.get(ACTIONS, action_id)
    record = ActionRecord.of(action)
    if record.status is ActionStatus.APPROVED and record.enqueued_at is None:
        return enqueue(repo, action), True
    return models.ActionPublic.of(action), False


def enqueue(repo: Repository, action: dict[str, Any]) -> models.ActionPublic:
    """Send an approved action to the worker: one task, named after the action."""
    cloud_tasks.enqueue_for_worker("/execute", execute_task_id(action["id"]), worker_body(repo, action["id"]))

    def stamp(_: dict[str, Any]) -> ActionFields:
        return {"enqueued_at": datetime.now(UTC)}

    return models.ActionPublic.of(repo.update(ACTIONS, action["id"], stamp))


def reject(
    repo: Repository, user: User, action_id: str, reason: str | None, *, along: Companion | None = None
) -> models.ActionPublic:
    """Reject a pending action; `along` (an idempotency key's record) is stored with the decision."""
    now = datetime.now(UTC)
    changes: ActionFields = {
        "status": ActionStatus.REJECTED.value,
        "decided_at": now,
        "decided_by": user.uid,
        "reject_reason": reason,
    }
    action, decided = _decide(repo, action_id, changes, now, along)
    if not decided and ActionRecord.of(action).status is not ActionStatus.REJECTED:
        raise _decided(ActionRecord.of(action))
    return models.ActionPublic.of(action)


def _decide(
    repo: Repository, action_id: str, changes: ActionFields, now: datetime, along: Companion | None
) -> tuple[dict[str, Any], bool]:
    """Apply a decision's `changes` to a pending action: the action, and whether this request
    decided it (False: it was no longer pending). One found past its expiry is expired, a 409.
    `along` is stored with whichever of the two this request writes.

    A compare-and-set, recomputed when another decision got there first: optimistic, so ten
    simultaneous decisions settle in a retry or two instead of waiting on locks.
    """
    outcome = ""

    def decide(current: dict[str, Any]) -> ActionFields:
        nonlocal outcome
        action = ActionRecord.of(current)
        if action.status is not ActionStatus.PENDING:
            outcome = "unchanged"
            return {}
        if action.expires_at <= now:
            outcome = "expired"
            return {"status": ActionStatus.EXPIRED.value}
        outcome = "decided"
        return changes

    action = repo.update(ACTIONS, action_id, decide, along=along)
    if outcome == "expired":
        raise _expired(ActionRecord.of(action))
    return action, outcome == "decided"


def schedule_expiry(repo: Repository, action: models.ActionPublic) -> None:
    """A task at the action's expiry time that expires it if it is still pending then."""
    cloud_tasks.enqueue_for_worker(
        "/expire", expire_task_id(action.id), worker_body(repo, action.id), schedule_time=action.expires_at
    )


def expire_if_due(repo: Repository, action_id: str) -> tuple[bool, str]:
    """At the expiry task: (done, status). Not done when the task came early (it is tried again)."""
    now = datetime.now(UTC)
    due = True

    def expire(current: dict[str, Any]) -> ActionFields:
        nonlocal due
        action = ActionRecord.of(current)
        due = action.expires_at <= now
        if action.status is not ActionStatus.PENDING or not due:
            return {}
        return {"status": ActionStatus.EXPIRED.value}

    try:
        status = ActionRecord.of(repo.update(ACTIONS, action_id, expire)).status
    except NotFoundError:
        return True, "deleted"
    return (status is not ActionStatus.PENDING or due), status.value
