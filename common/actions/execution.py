"""The worker: carries out an approved action exactly once in effect (DESIGN §6).

Cloud Tasks delivers at least once, so a delivery first claims the action by compare-and-set
(`approved → executing`, holding its lease, `common.lease`): a second delivery meanwhile finds it
held and is told to come back; one after it finds it done and is a no-op. The effect is made
idempotent where Google allows it (an event id derived from the action; a task document named
after it, created in the transaction that records it; an e-mail sent as a draft recorded on the
action, which Gmail sends once) and found again where it does not: a draft carries a Message-ID
derived from the action, so an attempt after the first finds the draft an earlier one made,
since a worker may have died, or lost Google's answer, after the effect. A transient failure
hands the action back for Cloud Tasks to retry (503) until the last attempt, which fails it; a
permanent one fails it at once (200).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common import google, models, resources
from common.actions import TaskPayload
from common.actions.records import ActionFields, ActionRecord
from common.collections import ACTIONS, INTEGRATIONS, QUOTAS, TASKS
from common.errors import ApiError, Code
from common.google.integration import Integration
from common.lease import Lease
from common.log import get_logger
from common.models import ActionStatus, ActionType
from common.settings import get_settings
from common.store import Repository, TenantTransaction, commits
from common.store.database import busy
from common.validation import parse_value

logger = get_logger(__name__)

# Per user and UTC day, in QUOTAS: how many e-mails were sent and meetings booked (DESIGN §6).
QUOTA_FIELDS = {ActionType.EMAIL_SEND: "emails_sent", ActionType.MEETING_BOOK: "meetings_booked"}


@dataclass(frozen=True)
class Delivery:
    """One delivery of a task: which action, whose, and which attempt of how many."""

    action_id: str
    owner_id: str
    retry_count: int  # Cloud Tasks' X-CloudTasks-TaskRetryCount: 0 on the first attempt

    @property
    def last_attempt(self) -> bool:
        return self.retry_count + 1 >= get_settings().tasks_max_attempts


@dataclass(frozen=True)
class DeliveryOutcome:
    """What the worker answers Cloud Tasks: `retry` is a 503 (try again later), else a 200."""

    status: str
    retry: bool = False


@dataclass(frozen=True)
class _HeldAction:
    action: dict[str, Any]  # the document as claimed
    record: ActionRecord  # the same, typed
    lease: Lease  # this delivery's hold on it
    resumed: bool  # an earlier attempt may have made the effect already
    integration: Integration | None  # the Google connection, as read with the action


def execute(delivery: Delivery) -> DeliveryOutcome:
    repo = Repository(delivery.owner_id)
    claimed = _claim(repo, delivery)
    if isinstance(claimed, DeliveryOutcome):
        return claimed
    if claimed.record.type is ActionType.TASK_CREATE:
        return _create_task(repo, claimed)
    try:
        with claimed.lease.kept():  # a slow call to Google keeps the action held: nobody re-drives it meanwhile
            result = _perform(repo, claimed)
    except google.GoogleError as error:
        return _after_failure(repo, claimed, error, delivery)
    except _ClaimLostError:
        return DeliveryOutcome("lost-claim")
    return _record(repo, claimed, result)


def _after_failure(
    repo: Repository, claimed: _HeldAction, error: google.GoogleError, delivery: Delivery
) -> DeliveryOutcome:
    """A permanent failure fails the action; a transient one is retried, until the last attempt."""
    if isinstance(error, google.ReauthRequired):
        from common.google import tokens

        tokens.mark_needs_reauth(repo, "Google refused the stored access")
        return _fail(repo, claimed, "GOOGLE_REAUTH_REQUIRED", "Google access was revoked or expired; connect again.")
    if isinstance(error, google.NotConnected):
        return _fail(repo, claimed, "GOOGLE_NOT_CONNECTED", "Google is not connected; connect it and try again.")
    if isinstance(error, google.InvalidMessage):
        return _fail(repo, claimed, "INVALID_MESSAGE", error.message)
    if not error.transient:
        return _fail(repo, claimed, "GOOGLE_ERROR", error.message or "Google refused the action.")
    if delivery.last_attempt:
        return _fail(repo, claimed, "GOOGLE_UNAVAILABLE", "Google was unavailable on every attempt.")
    _release(repo, claimed)
    return DeliveryOutcome("retry", retry=True)


def _claim(repo: Repository, delivery: Delivery) -> _HeldAction | DeliveryOutcome:
    """Hold the action for this delivery, or say why there is nothing to do (or not yet).

    The lease is taken by compare-and-set on the action: concurrent deliveries do not wait on
    each other's locks, and the one that wins holds it; the others find it held. A lease that
    ran out (its delivery died) is taken over, and the effect looked for before it is made again.

    One read and one commit (issue 19): the action, the Google connection and today's quota are
    read together, and the claim is written with the quota's count in one commit that holds only
    if the action is still as read, so neither goes without the other.
    """
    now = datetime.now(UTC)
    lease = Lease(repo, ACTIONS, delivery.action_id, seconds=get_settings().execution_lease_seconds)
    day_id = f"{repo.uid}-{now:%Y%m%d}"
    wanted = [
        commits.Wanted(ACTIONS, delivery.action_id),
        commits.Wanted(INTEGRATIONS, repo.uid),
        commits.Wanted(QUOTAS, day_id),
    ]

    def claim(current: dict[str, Any]) -> ActionFields:
        record = ActionRecord.of(current)
        return {
            "status": ActionStatus.EXECUTING.value,
            "attempts": record.attempts + 1,
            "first_attempt_at": record.first_attempt_at or now,
        }

    for _ in range(5):
        found, connection, day = commits.read_all(repo, wanted)
        if found is None:
            return DeliveryOutcome("gone")
        record = ActionRecord.of(found.document)
        if record.status not in {ActionStatus.APPROVED, ActionStatus.EXECUTING}:
            return DeliveryOutcome(record.status.value)  # done, refused, or never approved: nothing to do
        fields = lease.taking(found.document, claim)
        if fields is None:  # another delivery holds it: come back later
            return DeliveryOutcome("busy", retry=True)
        resumed = record.attempts > 0  # an earlier attempt may have made the effect, and was counted
        quota = None if resumed else QUOTA_FIELDS.get(record.type)
        commit = commits.Commit(repo)
        place = commit.update(ACTIONS, found, fields)
        counted = None
        if quota is not None and day is not None:
            counted = commit.add(QUOTAS, day_id, {quota: 1})
        elif quota is not None:
            commit.create(QUOTAS, {"day": f"{now:%Y-%m-%d}", quota: 1}, doc_id=day_id)
        try:
            commit.commit()
        except commits.StaleError:
            continue  # another delivery got in first: judged again on what it wrote
        except ApiError as error:
            if error.code is not Code.ALREADY_EXISTS:
                raise
            continue  # today's quota was created meanwhile: counted on it
        lease.holds(commit.written(place))
        written = commit.written(place).document
        integration = Integration.model_validate(connection.document) if connection is not None else None
        claimed = _HeldAction(written, ActionRecord.of(written), lease, resumed, integration)
        if quota is None:
            return claimed
        total = commit.totals(counted)[quota] if counted is not None else 1
        return _within_quota(repo, claimed, quota, total, day_id) or claimed
    raise busy()


def _within_quota(
    repo: Repository, claimed: _HeldAction, field: str, total: int, day_id: str
) -> DeliveryOutcome | None:
    """None when the count the claim added (`total`, today's after it) is within the daily quota;
    else it is taken back and the action fails.

    An increment, not a read-write transaction: deliveries of one user at once (Cloud Tasks sends
    up to max_concurrent_dispatches) would all lock the day's document and abort one another. Each
    increment's total is its own, so the ones that took the count up to the limit are within it;
    one that took it past the limit is not, and takes its count back.
    """
    settings = get_settings()
    limit = settings.daily_email_quota if field == "emails_sent" else settings.daily_meeting_quota
    if total <= limit:
        return None
    repo.add(QUOTAS, day_id, {field: -1})
    message = f"The daily limit of {field.replace('_', ' ')} is reached; nothing was sent."
    return _fail(repo, claimed, "QUOTA_EXCEEDED", message)


def _perform(repo: Repository, claimed: _HeldAction) -> dict[str, Any]:
    """The action's effect at Google, made at most once; its result."""
    from common.google import calendar, gmail, tokens

    action = claimed.action
    payload = action["payload"]
    access = tokens.access(repo, claimed.integration)
    token = access.token
    if action["type"] == ActionType.MEETING_BOOK:
        return calendar.insert_event(
            token,
            event_id=calendar.event_id_for(action["id"]),
            title=payload["title"],
            start=payload["start"],
            end=payload["end"],
            timezone=payload.get("timezone") or "UTC",
            attendees=payload.get("attendees") or [],
            description=payload.get("description") or "",
            request_id=f"cscx-{action['id']}",
        )
    message_id = gmail.message_id_for(action["id"])
    message = gmail.build_message(
        sender=access.google_email,
        to=payload["to"],
        cc=payload.get("cc") or [],
        subject=payload["subject"],
        body=payload["body"],
        message_id=message_id,
        action_id=action["id"],
    )
    # Only a draft CSCX recorded on the action is ever sent, and Gmail sends a draft once: a
    # draft made by an attempt that died before recording it is found again here, never sent
    # beside a second one (README, "Exactly once without reading the mailbox").
    recorded: gmail.Draft | None = action.get("draft")
    draft = recorded
    if draft is None:
        draft = gmail.find_draft(token, message_id=message_id) if claimed.resumed else None
        if draft is None:
            draft = gmail.create_draft(token, message)
        if action["type"] == ActionType.EMAIL_DRAFT:
            return {"draft_id": draft["draft_id"], "message_id": draft["message_id"]}
        if not _note(claimed, {"draft": {key: str(value) for key, value in draft.items()}}):
            raise _ClaimLostError()
    return gmail.send_draft(token, draft, maybe_sent=recorded is not None)


class _ClaimLostError(Exception):
    """Another delivery took the action over (this one's lease ran out): it carries on."""


def _note(claimed: _HeldAction, changes: ActionFields) -> bool:
    """Write `changes` on the action while this delivery still holds it (its lease renewed with
    them, not let go); whether it did."""

    def still_executing(current: dict[str, Any]) -> ActionFields | None:
        return changes if current.get("status") == ActionStatus.EXECUTING else None

    return claimed.lease.take(still_executing) is not None


def _create_task(repo: Repository, claimed: _HeldAction) -> DeliveryOutcome:
    """The task and the action's record in one transaction: created once, whatever happens."""
    payload = parse_value(TaskPayload, claimed.record.payload)
    task = models.TaskCreate(
        title=payload.title, due_date=payload.due_date, priority=payload.priority, customer_id=payload.customer_id
    )
    action_id = claimed.record.id
    task_id = f"action-{action_id}"

    def create(t: TenantTransaction) -> DeliveryOutcome:
        current = t.get(ACTIONS, action_id)
        if not claimed.lease.ours(current) or ActionRecord.of(current).status is not ActionStatus.EXECUTING:
            return DeliveryOutcome("lost-claim")
        if task.customer_id:
            try:
                resources.require_customer(t, task.customer_id)
            except ApiError:
                gone: ActionFields = {
                    "status": ActionStatus.FAILED.value,
                    "error": {"code": "CUSTOMER_GONE", "message": "The task's customer was deleted."},
                    "lease": None,
                }
                t.update(ACTIONS, current, gone)
                return DeliveryOutcome(ActionStatus.FAILED.value)
        t.create(TASKS, resources.task_document(task, models.TaskSource.AGENT), doc_id=task_id)
        t.update(ACTIONS, current, {**_executed({"task_id": task_id}), "lease": None})
        return DeliveryOutcome(ActionStatus.EXECUTED.value)

    result: DeliveryOutcome = repo.run_transaction(create)
    return result


def _executed(result: dict[str, Any]) -> ActionFields:
    return {"status": ActionStatus.EXECUTED.value, "result": result, "error": None}


def _record(repo: Repository, claimed: _HeldAction, result: dict[str, Any]) -> DeliveryOutcome:
    return _finish(repo, claimed, _executed(result), ActionStatus.EXECUTED.value)


def _fail(repo: Repository, claimed: _HeldAction, code: str, message: str) -> DeliveryOutcome:
    logger.info("action failed", extra={"fields": {"action_id": claimed.record.id, "code": code}})
    changes: ActionFields = {"status": ActionStatus.FAILED.value, "error": {"code": code, "message": message}}
    return _finish(repo, claimed, changes, ActionStatus.FAILED.value)


def _release(repo: Repository, claimed: _HeldAction, changes: ActionFields | None = None) -> None:
    """Hand the action back for the next delivery (which will check for an effect already made)."""
    _finish(repo, claimed, {**(changes or {}), "status": ActionStatus.APPROVED.value}, "released")


def _finish(repo: Repository, claimed: _HeldAction, changes: ActionFields, status: str) -> DeliveryOutcome:
    """Let go of the action with `changes`, if it is still ours: not if our lease ran out and another
    delivery took over, which records the outcome."""
    released = claimed.lease.release(changes)
    return DeliveryOutcome(status if released is not None else "lost-claim")
