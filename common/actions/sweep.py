"""The sweep (DESIGN §6): nothing approved is forgotten, nothing pending outlives its expiry, and no
execution stays stranded by a worker that died.

Cloud Scheduler calls the worker's `POST /sweep` every 5 minutes. Each call makes three rounds,
across all users, each over at most `CSCX_SWEEP_LIMIT` actions, oldest first, so one call is
bounded whatever piled up and the next goes on from there:

- `expired`: pending past `expires_at` (its expiry task may never have been scheduled) → expired;
- `enqueued`: approved with no task known to have gone out (`enqueued_at` null) and decided more
  than `REENQUEUE_AFTER` ago, so the approving request is over → its task, `execute-<id>`;
- `redriven`: executing with a lapsed lease (its delivery's worker died, and Cloud Tasks gave up
  or has not come back) → a task `redrive-<id>-<lease holder>`, one per lapsed lease; the
  delivery takes the lease over and looks for an effect already made before making it.

Its log line ("sweep") says what each round did and how long the oldest approval not carried out
yet (approved or executing) has waited since its decision (`oldest_undone_seconds`, 0 when none):
monitoring alerts when that passes 10 minutes, or when the line stops coming.

The one read across tenants (`store.across_tenants`) names each action, owner and id; the action
is then read and changed as its owner's, through the tenant repository, by the compare-and-sets
the request paths use, and every task it enqueues is named: a sweep racing a decision, a delivery
or another sweep does nothing twice (Cloud Tasks refuses a second task of a name; the emulator
does not, and the worker's own idempotency covers it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common import cloud_tasks
from common.actions import decisions
from common.actions.records import ActionRecord
from common.collections import ACTIONS
from common.errors import ApiError, Code
from common.log import get_logger
from common.models import ActionStatus
from common.settings import get_settings
from common.store import Filter, Repository, across_tenants

logger = get_logger(__name__)


def redrive_task_id(action_id: str, holder: str) -> str:
    return f"redrive-{action_id}-{holder}"


def _expire(repo: Repository, action_id: str, now: datetime) -> bool:
    return decisions.expire_if_due(repo, action_id)[1] == ActionStatus.EXPIRED


def _enqueue(repo: Repository, action_id: str, now: datetime) -> bool:
    return decisions.enqueue_if_unsent(repo, action_id)[1]


def _redrive(repo: Repository, action_id: str, now: datetime) -> bool:
    action = ActionRecord.of(repo.get(ACTIONS, action_id))
    if action.status is not ActionStatus.EXECUTING or action.lease is None or action.lease.until > now:
        return False  # finished, or taken over, since it was found
    task_id = redrive_task_id(action_id, action.lease.holder)
    cloud_tasks.enqueue_for_worker("/execute", task_id, decisions.worker_body(repo, action_id))
    return True


@dataclass(frozen=True)
class Query:
    """Actions across tenants, oldest `order_by` first: which ones at `now` (`tests/test_indexes.py`
    holds its index to firestore.indexes.json)."""

    name: str
    filters: Callable[[datetime], list[Filter]]
    order_by: str


@dataclass(frozen=True)
class Round(Query):
    """One kind of work: the actions its query finds, and what it does to each, as its owner's
    (True: done)."""

    handle: Callable[[Repository, str, datetime], bool]


ROUNDS = (
    Round(
        "expired",
        lambda now: [Filter("status", "==", ActionStatus.PENDING.value), Filter("expires_at", "<=", now)],
        "expires_at",
        _expire,
    ),
    Round(
        "enqueued",
        lambda now: [
            Filter("status", "==", ActionStatus.APPROVED.value),
            Filter("enqueued_at", "==", None),
            Filter("decided_at", "<=", now - decisions.REENQUEUE_AFTER),
        ],
        "decided_at",
        _enqueue,
    ),
    Round(
        "redriven",
        lambda now: [Filter("status", "==", ActionStatus.EXECUTING.value), Filter("lease.until", "<=", now)],
        "lease.until",
        _redrive,
    ),
)


# Approvals not carried out yet: approved (its task to come) or executing (its delivery at work).
UNDONE = Query(
    "undone",
    lambda now: [Filter("status", "in", [ActionStatus.APPROVED.value, ActionStatus.EXECUTING.value])],
    "decided_at",
)
QUERIES = (*ROUNDS, UNDONE)


def oldest_undone_seconds(now: datetime) -> int:
    """How long the oldest approval not carried out yet has waited since it was decided; 0 when none."""
    found = across_tenants(ACTIONS, UNDONE.filters(now), order_by=UNDONE.order_by, limit=1)
    stored = Repository(found[0].owner_id).find(ACTIONS, found[0].doc_id) if found else None
    decided_at = ActionRecord.of(stored).decided_at if stored is not None else None
    return max(0, int((now - decided_at).total_seconds())) if decided_at is not None else 0


@dataclass
class SweepReport:
    """What one call did: how many actions each round changed, and whether a round found a full
    page (`more`: the next call has work left)."""

    done: dict[str, int]
    more: bool = False

    def body(self) -> dict[str, Any]:
        return {**self.done, "more": self.more}


def sweep() -> SweepReport:
    """One call's rounds. A round that finds the queue or the database unavailable stops there and
    the others still run; the call then answers 503, the report logged, and the next call retries."""
    now = datetime.now(UTC)
    limit = get_settings().sweep_limit
    report = SweepReport({r.name: 0 for r in ROUNDS})
    unavailable: ApiError | None = None
    for sweep_round in ROUNDS:
        try:
            found = across_tenants(ACTIONS, sweep_round.filters(now), order_by=sweep_round.order_by, limit=limit)
        except ApiError as error:
            unavailable = unavailable or error
            continue
        report.more = report.more or len(found) == limit
        for owned in found:
            try:
                done = sweep_round.handle(Repository(owned.owner_id), owned.doc_id, now)
            except ApiError as error:
                fields = {"round": sweep_round.name, "action_id": owned.doc_id, "code": error.code.value}
                logger.warning("sweep: action left for the next call", extra={"fields": fields})
                if error.code is Code.UNAVAILABLE:  # the rest of the round would wait on it too
                    unavailable = unavailable or error
                    break
                continue
            report.done[sweep_round.name] += done
    try:
        oldest: int | None = oldest_undone_seconds(datetime.now(UTC))
    except ApiError as error:
        oldest, unavailable = None, unavailable or error
    logger.info("sweep", extra={"fields": {**report.body(), "oldest_undone_seconds": oldest}})
    if unavailable is not None:
        raise ApiError(Code.UNAVAILABLE, f"{unavailable.message} The sweep did what it could; the next call retries.")
    return report
