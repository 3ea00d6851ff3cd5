"""How many documents of a counted kind each user has (the cap CSCX_MAX_DOCUMENTS), kept beside
the documents instead of counted at every create: one counter per user and kind, changed in the
same commit as each create and delete of the kind.

The counter `{uid}-{collection}` holds `added` (+1 per create, -1 per delete: Firestore
increments) and `before`, the documents there were before the counter was first needed, counted
once, in a transaction with the counter's own read (the first total asked of a counter that is
missing, or was only ever changed by deletes). A create that must stay under the cap names the
counter's update time as its precondition: the total it judged is the one its commit adds to, or
the commit fails and the total is judged again. The instance remembers each counter as its last
commit left it, so a user creating on this instance pays for no read; a remembered counter is
only ever a guess that the precondition checks, and a refusal is judged on the stored one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.collections import DOCUMENT_COUNTS, Kind
from common.errors import ApiError, Code
from common.instance import on_reset
from common.store import database

if TYPE_CHECKING:
    from common.store import Repository

_REMEMBERED = 10_000  # counters an instance remembers; the least recently used are forgotten


@dataclass(frozen=True)
class Counter:
    """A counter as read or written: its parts, and the update time that proves them current."""

    before: int
    added: int
    update_time: Any

    @property
    def total(self) -> int:
        return self.before + self.added


_remembered: OrderedDict[tuple[str, str], Counter] = OrderedDict()
_lock = threading.Lock()
on_reset(_remembered.clear)


_turns: dict[tuple[str, str], threading.Lock] = {}
on_reset(_turns.clear)


def turn(uid: str, kind: Kind) -> AbstractContextManager[Any]:
    """Held while a create of a counted kind judges and writes its counter: a user's creates on
    this instance wait for one another instead of failing one another's precondition."""
    if not kind.counted:
        return nullcontext()
    with _lock:
        if len(_turns) > _REMEMBERED:
            _turns.clear()  # a lock held meanwhile still works: its holder's precondition decides
        return _turns.setdefault((uid, kind.collection), threading.Lock())


def full(kind: Kind, cap: int) -> ApiError:
    return ApiError(
        Code.RESOURCE_EXHAUSTED, f"You have reached the limit of {cap} {kind.collection}; delete some to make room."
    )


def counter_id(uid: str, kind: Kind) -> str:
    """The id of the user's counter of `kind` (a DOCUMENT_COUNTS document)."""
    return f"{uid}-{kind.collection}"


def _reference(repo: Repository, kind: Kind) -> Any:
    return repo._collection(DOCUMENT_COUNTS).document(counter_id(repo.uid, kind))


def _changes(documents: int) -> dict[str, Any]:
    from google.cloud.firestore import SERVER_TIMESTAMP, Increment

    return {"added": Increment(documents), "version": Increment(1), "updated_at": SERVER_TIMESTAMP}


def read(repo: Repository, kind: Kind, as_read: tuple[dict[str, Any] | None, Any] | None = None) -> Counter:
    """The counter as stored now, counted first if it never was; `as_read`, its document (None:
    missing) and update time read beside a request's other reads, saves reading it again."""
    reference = _reference(repo, kind)
    for attempt in range(8):
        if attempt == 0 and as_read is not None:
            data, update_time = as_read
        else:
            snapshot = reference.get(**repo._calls)
            data, update_time = (snapshot.to_dict() if snapshot.exists else None), snapshot.update_time
        if data is not None and data.get("before") is not None:
            counter = Counter(int(data["before"]), int(data.get("added") or 0), update_time)
            _remember(repo.uid, kind, counter)
            return counter
        _count_once(repo, kind, reference, data, update_time)
    raise database.busy()


def _count_once(repo: Repository, kind: Kind, reference: Any, data: dict[str, Any] | None, read_at: Any) -> None:
    """Store `before`: the documents there are less those the counter has seen come and go (a
    delete made before it was counted is in both). Every create and delete of the kind writes
    the counter, so if it is still as read when `before` is written, the count taken in between
    is the count of that moment; if not, the next round counts again."""
    from google.api_core import exceptions as gexc
    from google.cloud.firestore import SERVER_TIMESTAMP

    result = repo._query(kind, []).count().get(**repo._calls)
    documents = int(result[0][0].value)
    try:
        if data is None:
            fields = {"owner_id": repo.uid, "before": documents, "added": 0, "version": 1,
                      "created_at": SERVER_TIMESTAMP, "updated_at": SERVER_TIMESTAMP}  # fmt: skip
            reference.create(fields, **repo._calls)
        else:
            before = documents - int(data.get("added") or 0)
            changes = {"before": before, "version": int(data.get("version") or 0) + 1, "updated_at": SERVER_TIMESTAMP}
            reference.update(changes, option=repo._db.write_option(last_update_time=read_at), **repo._calls)
    except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.NotFound):
        database.back_off(0)  # changed meanwhile: read it again


def guard(repo: Repository, write: Any, kind: Kind, cap: int) -> Counter:
    """Add to `write` (a batch creating one document of `kind`) the counter's +1, holding only if
    the counter is still as judged: under `cap`, or a 429. The counter it was judged on."""
    with _lock:
        counter = _remembered.get((repo.uid, kind.collection))
    if counter is None or counter.total >= cap:
        counter = read(repo, kind)
        if counter.total >= cap:
            raise full(kind, cap)
    option = repo._db.write_option(last_update_time=counter.update_time)
    write.update(_reference(repo, kind), _changes(1), option=option)
    return counter


def change(repo: Repository, write: Any, kind: Kind, documents: int) -> None:
    """Add to `write` (a batch or a transaction) the counter's change by `documents` created (or,
    below zero, deleted), as it is; a counter not there yet is made (and counted when asked)."""
    write.set(_reference(repo, kind), {"owner_id": repo.uid, **_changes(documents)}, merge=True)


def committed(uid: str, kind: Kind, result: Any, judged: Counter | None = None) -> None:
    """Remember the counter as the commit that changed it left it (`result`, its write result):
    from `judged`, or from what this instance remembered of it (nothing, if nothing)."""
    with _lock:
        known = judged or _remembered.get((uid, kind.collection))
    if known is None:
        return
    # The transforms' results come ordered by field path: added, updated_at, version.
    added = int(result.transform_results[0].integer_value)
    _remember(uid, kind, Counter(known.before, added, result.update_time))


def forget(uid: str, kind: Kind) -> None:
    """The counter was changed where its new state is not known here (a transaction)."""
    with _lock:
        _remembered.pop((uid, kind.collection), None)


def _remember(uid: str, kind: Kind, counter: Counter) -> None:
    with _lock:
        _remembered.pop((uid, kind.collection), None)
        _remembered[(uid, kind.collection)] = counter
        if len(_remembered) > _REMEMBERED:
            _remembered.popitem(last=False)
