"""Several writes of one tenant's documents stored in one commit without a transaction (issue 19):
each write holds by its own precondition — a create, that its document is not there yet; an
update, that its document is still as it was read (its update time) — so the commit stores all
of them or none, and nothing precedes it: no BeginTransaction, no read held by the database.

What a transaction would have judged on its reads is judged by the caller on reads made before
(`read`, beside the request's other reads), and a commit whose reads went stale fails
(`StaleError`): the caller reads again and judges again. A counted kind's counter changes in the
same commit, uncapped: the caller judged room first (`resources.ensure_room`), as in a transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.collections import Kind
from common.errors import ApiError, Code
from common.store import counts, database
from common.store.database import Read
from common.store.writes import increments, new_document, next_version, totals

__all__ = ["Commit", "Read", "StaleError", "Wanted", "read", "read_all"]

if TYPE_CHECKING:
    from common.store import Repository


class StaleError(Exception):
    """A document the commit was judged on changed, or went, since it was read: nothing was stored."""


@database.translated
def read(repo: Repository, kind: Kind, doc_id: str) -> Read:
    """The tenant's `kind` document `doc_id` with its update time, else 404."""
    document, update_time = repo._load(kind, doc_id)
    return Read(document, update_time)


@dataclass(frozen=True)
class Wanted:
    """A document one request needs: its kind, id, and parent (a subcollection's document)."""

    kind: Kind
    doc_id: str
    parent_id: str | None = None


@database.translated
def read_all(repo: Repository, wanted: Sequence[Wanted]) -> list[Read | None]:
    """The tenant's documents `wanted`, in one call to Firestore (BatchGetDocuments), in the
    order asked: each one's `Read`, or None where it is missing or someone else's (nothing of
    it is returned). Reads that judge one request cost one round trip instead of one each."""
    references = [_reference(repo, item) for item in wanted]
    asked = [reference for reference in references if reference is not None]
    found: dict[str, Read] = {}
    for snapshot in repo._db.get_all(asked, **repo._calls) if asked else ():
        repo.documents_read += 1
        data = snapshot.to_dict() if snapshot.exists else None
        if data is not None and data.get("owner_id") == repo.uid:
            found[snapshot.reference.path] = Read({"id": snapshot.id, **data}, snapshot.update_time)
    return [None if reference is None else found.get(reference.path) for reference in references]


def _reference(repo: Repository, item: Wanted) -> Any:
    """The document `item` names, or None for an id that can name none (one Firestore keeps
    for itself, `__x__`, or a path)."""
    if _RESERVED.fullmatch(item.doc_id) or not item.doc_id or "/" in item.doc_id:
        return None
    return repo._collection(item.kind, item.parent_id).document(item.doc_id)


_RESERVED = re.compile(r"__.*__")


class Commit:
    """The writes of one commit, gathered, then stored together (`commit`) or not at all."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._batch = repo._db.batch()
        self._writes = 0
        self._counters: list[tuple[Kind, int]] = []  # a counted kind's counter, and its write's place
        self._updated: dict[int, dict[str, Any]] = {}  # an update's place: the document it makes
        self._added: dict[int, list[str]] = {}  # an addition's place: the counters it adds to
        self._results: list[Any] = []

    def create(
        self, kind: Kind, data: Mapping[str, Any], *, doc_id: str | None = None, parent_id: str | None = None
    ) -> str:
        """Create a document, if none is there under `doc_id` (else the commit is a 409); its id."""
        collection = self._repo._collection(kind, parent_id)
        reference = collection.document(doc_id) if doc_id else collection.document()
        self._batch.create(reference, new_document(self._repo.uid, data))
        self._counted(kind, 1)
        return str(reference.id)

    def update(self, kind: Kind, read: Read, fields: Mapping[str, Any]) -> int:
        """Change a document the caller read, if it is still as read (else the commit is stale);
        the write's place (`written` tells what it stored)."""
        reference = self._repo._collection(kind).document(read.document["id"])
        option = self._repo._db.write_option(last_update_time=read.update_time)
        write = next_version(read.document, fields)
        self._batch.update(reference, write, option=option)
        self._updated[self._writes] = {**read.document, **write}
        self._writes += 1
        return self._writes - 1

    def add(self, kind: Kind, doc_id: str, additions: Mapping[str, int]) -> int:
        """Add to the counters of a document keyed by the tenant that the caller knows is there (else
        the commit is stale), as `Repository.add` does; the write's place (`totals` tells the totals)."""
        reference = self._repo._collection(kind).document(doc_id)
        self._batch.update(reference, increments(additions))
        self._added[self._writes] = list(additions)
        self._writes += 1
        return self._writes - 1

    def delete(self, kind: Kind, doc_id: str, *, parent_id: str | None = None, as_read: Read | None = None) -> None:
        """Delete a document the caller knows is there, whatever it holds now; or, given `as_read`,
        only if it is still as read (else the commit is stale: another request changed or took it)."""
        option = self._repo._db.write_option(last_update_time=as_read.update_time) if as_read is not None else None
        self._batch.delete(self._repo._collection(kind, parent_id).document(doc_id), option=option)
        self._counted(kind, -1)

    def _counted(self, kind: Kind, documents: int) -> None:
        self._writes += 1
        if kind.counted:
            counts.change(self._repo, self._batch, kind, documents)
            self._counters.append((kind, self._writes))
            self._writes += 1

    @database.translated
    def commit(self) -> list[Any]:
        """Store every write, or none: a create whose document is there already is a 409, a
        document changed since it was read a `StaleError`. The writes' results, in order."""
        from google.api_core import exceptions as gexc

        try:
            results = list(self._batch.commit(**self._repo._calls))
        except gexc.AlreadyExists:
            raise ApiError(Code.ALREADY_EXISTS, "Something this request creates exists already.") from None
        except (gexc.FailedPrecondition, gexc.NotFound):
            raise StaleError from None
        for kind, place in self._counters:
            counts.committed(self._repo.uid, kind, results[place])
        self._results = results
        return results

    def written(self, place: int) -> Read:
        """The update at `place`, as the commit stored it: the document and its update time."""
        result = self._results[place]
        return Read({**self._updated[place], "updated_at": database.server_time(result)}, result.update_time)

    def totals(self, place: int) -> dict[str, int]:
        """The counters the addition at `place` added to, as the commit left them."""
        names = self._added[place]
        return totals(names, self._results[place])
