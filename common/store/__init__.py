"""Tenant-scoped Firestore access: the only way any function reads or writes a document.

A `Repository` is built with the caller's uid and every query it issues carries
`owner_id == uid`; a document read by its id is the caller's only if its `owner_id` says so, and
one owned by someone else is reported exactly like a missing one.
Writes keep the common fields (`owner_id`, `created_at`, `updated_at`, `version`) and use
Firestore preconditions so that concurrent updates are compare-and-set.

One read is no tenant's: `across_tenants` (`database.py`, with the instance's client and the
boundary where Firestore's failures become the API's), for the server's own rounds over every
user's documents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from common import cursors
from common.collections import Kind, Order
from common.errors import ApiError, Code, NotFoundError
from common.log import get_logger
from common.settings import get_settings
from common.store import counts, database
from common.store.companions import Companion
from common.store.database import Filter, Owned, Read, across_tenants, not_found
from common.store.writes import SERVER_FIELDS, increments, new_document, next_version, totals

if TYPE_CHECKING:
    from google.cloud import firestore

__all__ = ["Companion", "Filter", "ListPage", "Owned", "Repository", "TenantTransaction", "across_tenants", "not_found"]

logger = get_logger(__name__)

BATCH_SIZE = 400  # below Firestore's 500 writes per batch


R = TypeVar("R")
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class ListPage(Generic[T]):
    """One page of a list: its items, and the cursor of the next page (None after the last)."""

    items: list[T]
    next_cursor: str | None

    def map(self, convert: Callable[[T], U]) -> ListPage[U]:
        return ListPage([convert(item) for item in self.items], self.next_cursor)


class Repository:
    """Every read and write of one tenant's documents."""

    def __init__(self, uid: str, client: firestore.Client | None = None) -> None:
        if not uid:
            raise ValueError("a Repository needs the caller's uid")
        self.uid = uid
        self._client = client
        self.documents_read = 0  # documents Firestore returned, for the benchmarks

    def _add_companion(self, write: Any, effect: Any, along: Companion, fields: Mapping[str, Any]) -> None:
        """Add `along` to the batch or transaction `write` that writes `fields` to `effect`."""
        if along.written:
            raise ValueError("a companion is stored with one effect only")
        reference = self._collection(along.kind).document(along.doc_id)
        if along.created:
            write.create(reference, new_document(self.uid, along.fields(effect.path, fields)))
        else:
            write.update(reference, dict(along.fields(effect.path, fields)))

    def _commit(self, batch: Any, effect: Any, fields: Mapping[str, Any], along: Companion | None) -> list[Any]:
        """Commit a batch of the writes to `effect` (`fields`, and its counter), with its companion
        if it has one (a single write is a one-write batch in the client too); the writes' results."""
        if along is not None:
            self._add_companion(batch, effect, along, fields)
        results = list(batch.commit(**self._calls))
        if along is not None:
            along.written = True
        return results

    @property
    def _calls(self) -> dict[str, Any]:
        return database.call_options(get_settings().firestore_timeout_seconds)

    @property
    def _db(self) -> firestore.Client:
        if self._client is None:
            self._client = database.client()
        return self._client

    def new_id(self, kind: Kind) -> str:
        """A new document id of `kind`, as Firestore makes them (no call: made here, at random)."""
        return str(self._collection(kind).document().id)

    def _collection(self, kind: Kind, parent_id: str | None = None) -> Any:
        return self._db.collection(kind.path(parent_id))

    def _owned(self, snapshot: Any, kind: Kind) -> dict[str, Any]:
        """The document of `snapshot` if this tenant owns it; anyone else's is a missing one."""
        data = snapshot.to_dict() if snapshot.exists else None
        if data is None or data.get("owner_id") != self.uid:
            raise not_found(kind.name)
        return {"id": snapshot.id, **data}

    # -- reads -------------------------------------------------------------------------

    @database.translated
    def get(self, kind: Kind, doc_id: str, *, parent_id: str | None = None) -> dict[str, Any]:
        """The tenant's `kind` document `doc_id`, else 404."""
        return self._load(kind, doc_id, parent_id)[0]

    def _load(self, kind: Kind, doc_id: str, parent_id: str | None = None) -> tuple[dict[str, Any], Any]:
        snapshot = self._by_id(kind, doc_id, parent_id)
        self.documents_read += 1
        return self._owned(snapshot, kind), snapshot.update_time

    def _by_id(self, kind: Kind, doc_id: str, parent_id: str | None = None, fields: list[str] | None = None) -> Any:
        """The snapshot of document `doc_id`, whoever owns it (`fields`: only those of it)."""
        from google.api_core import exceptions as gexc

        try:
            return self._collection(kind, parent_id).document(doc_id).get(field_paths=fields, **self._calls)
        except (gexc.InvalidArgument, ValueError):  # an id Firestore reserves (__x__) can name nothing
            raise not_found(kind.name) from None

    def find(self, kind: Kind, doc_id: str) -> dict[str, Any] | None:
        """The tenant's `kind` document `doc_id`, or None."""
        return _or_none(lambda: self.get(kind, doc_id))

    def find_keyed(self, kind: Kind, doc_id: str) -> dict[str, Any] | None:
        """The tenant's document `doc_id` of a kind keyed by its owner (the id starts with their
        uid, as `add`'s counters are), or None."""
        _require_keyed(self.uid, doc_id)
        return self.find(kind, doc_id)

    @database.translated
    def require(self, kind: Kind, doc_id: str) -> None:
        """404 unless the tenant has `kind` document `doc_id`, asked for its owner alone: nothing
        else of another user's document leaves Firestore, and a large document is as quick to
        find missing as no document."""
        self._owned(self._by_id(kind, doc_id, fields=["owner_id"]), kind)

    @database.translated
    def list(
        self,
        kind: Kind,
        *,
        filters: Sequence[Filter] = (),
        order: Order,
        limit: int,
        cursor: str | None,
        parent_id: str | None = None,
    ) -> ListPage[dict[str, Any]]:
        """One page of the tenant's documents, stable under concurrent inserts.

        The cursor holds the last item's sort values and id, so the next page starts right
        after it whatever was inserted meanwhile; it is bound to the query it came from.
        """
        path = kind.path(parent_id)
        query_id = _query_id(self.uid, path, filters, order)
        query = self._ordered(kind, filters, order, parent_id)
        if cursor:
            values, doc_id = cursors.decode(cursor, query_id, len(order.fields))
            query = query.start_after([*values, self._collection(kind, parent_id).document(doc_id)])
        snapshots = list(query.limit(limit + 1).stream(**self._calls))
        self.documents_read += max(1, len(snapshots))
        items = [database.document(s) for s in snapshots[:limit]]
        next_cursor = None
        if len(snapshots) > limit:
            last = snapshots[limit - 1]
            data = last.to_dict() or {}
            next_cursor = cursors.encode(query_id, [data.get(name) for name, _ in order.fields], last.id)
        return ListPage(items, next_cursor)

    @database.translated
    def count(self, kind: Kind, *, parent_id: str | None = None) -> int:
        """How many documents of `kind` the tenant has: a counted kind's counter (one read), else
        an aggregation (no document is read, but its cost grows with the documents)."""
        if kind.counted:
            return counts.read(self, kind).total
        result = self._query(kind, [], parent_id).count().get(**self._calls)
        return int(result[0][0].value)

    @database.translated
    def first(self, kind: Kind, filters: Sequence[Filter], *, parent_id: str | None = None) -> dict[str, Any] | None:
        """Any one of the tenant's documents matching `filters`, or None."""
        snapshots = list(self._query(kind, filters, parent_id).limit(1).stream(**self._calls))
        self.documents_read += 1
        if not snapshots:
            return None
        return database.document(snapshots[0])

    def _ordered(self, kind: Kind, filters: Sequence[Filter], order: Order, parent_id: str | None = None) -> Any:
        """The owner-scoped query in `order`, the document id breaking ties (in the last field's direction)."""
        from google.cloud.firestore import Query

        query = self._query(kind, filters, parent_id)
        direction = Query.ASCENDING
        for name, descending in order.fields:
            direction = Query.DESCENDING if descending else Query.ASCENDING
            query = query.order_by(name, direction=direction)
        return query.order_by("__name__", direction=direction)

    def _query(self, kind: Kind, filters: Sequence[Filter], parent_id: str | None = None) -> Any:
        from google.cloud.firestore import FieldFilter

        query = self._collection(kind, parent_id).where(filter=FieldFilter("owner_id", "==", self.uid))
        for f in filters:
            query = query.where(filter=FieldFilter(f.field, f.op, f.value))
        return query

    # -- writes ------------------------------------------------------------------------

    @database.translated
    def create(
        self,
        kind: Kind,
        data: Mapping[str, Any],
        *,
        doc_id: str | None = None,
        parent_id: str | None = None,
        along: Companion | None = None,
    ) -> dict[str, Any]:
        """Store a new document owned by the tenant and return it with its common fields; `along`
        is stored in the same commit, and so is a counted kind's counter: past CSCX_MAX_DOCUMENTS
        of the kind, a 429 and nothing stored.

        With `doc_id`, a document already there is a 409 ALREADY_EXISTS; so is a `created` companion's.
        """
        from google.api_core import exceptions as gexc

        collection = self._collection(kind, parent_id)
        reference = collection.document(doc_id) if doc_id else collection.document()
        document = new_document(self.uid, data)
        with counts.turn(self.uid, kind):  # a user's creates on this instance, one at a time
            for attempt in range(30):
                batch = self._db.batch()
                batch.create(reference, document)
                judged = counts.guard(self, batch, kind, get_settings().max_documents) if kind.counted else None
                try:
                    results = self._commit(batch, reference, document, along)
                except gexc.AlreadyExists:
                    if doc_id:
                        raise ApiError(Code.ALREADY_EXISTS, f"The {kind.name} already exists.") from None
                    # A retried create whose first attempt was stored: the document is this
                    # request's, and so is its companion. Else what exists is the companion's.
                    stored = _or_none(lambda: self.get(kind, reference.id, parent_id=parent_id))
                    if stored is None:
                        raise ApiError(Code.ALREADY_EXISTS, "Something this request creates exists already.") from None
                    if along is not None:
                        along.written = True
                    return stored
                except gexc.FailedPrecondition:  # the counter moved since it was judged: judge again
                    counts.forget(self.uid, kind)
                    database.back_off(min(attempt, 2))
                    continue
                if judged is not None:
                    counts.committed(self.uid, kind, results[1], judged)
                stamp = database.server_time(results[0])
                return {"id": reference.id, **document, "created_at": stamp, "updated_at": stamp}
            raise database.busy()

    def get_or_create(self, kind: Kind, doc_id: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The tenant's document `doc_id`, created from `defaults` if it is not there yet."""
        existing = self.find(kind, doc_id)
        if existing is not None:
            return existing
        try:
            return self.create(kind, defaults, doc_id=doc_id)
        except ApiError as conflict:
            if conflict.code is not Code.ALREADY_EXISTS:
                raise
            return self.get(kind, doc_id)  # a concurrent first call created it

    def update(
        self,
        kind: Kind,
        doc_id: str,
        changes: Callable[[dict[str, Any]], Mapping[str, Any]],
        *,
        if_match: int | None = None,
        along: Companion | None = None,
    ) -> dict[str, Any]:
        """Apply `changes(current)` to an owned document as one compare-and-set.

        `changes` gets the stored document and returns the fields to write (it may raise
        ApiError to refuse; nothing to write leaves the document as it is, and `along` unwritten).
        A concurrent writer makes the precondition fail; the update is then recomputed on the
        new state, or answered 412 when the client named a version.
        """
        return self.change(kind, doc_id, changes, if_match=if_match, along=along).document

    @database.translated
    def change(
        self,
        kind: Kind,
        doc_id: str,
        changes: Callable[[dict[str, Any]], Mapping[str, Any]],
        *,
        if_match: int | None = None,
        along: Companion | None = None,
        known: Read | None = None,
    ) -> Read:
        """`update`, answering the document as written (or as read, when nothing was) with its update
        time. With `known` (the document as this caller last read or wrote it), the first attempt
        judges that instead of reading: a write whose precondition then fails reads and judges again."""
        from google.api_core import exceptions as gexc

        reference = self._collection(kind).document(doc_id)
        for attempt in range(5):
            if known is not None:
                current, update_time = known.document, known.update_time
            else:
                current, update_time = self._load(kind, doc_id)
            check_version(current, if_match)
            fields = changes(current)
            if not fields and known is not None:
                known = None  # judged on what the caller knew: judged again on the document as it is
                continue
            if not fields:
                return Read(current, update_time)  # nothing to change: no write, no new version
            write = next_version(current, fields)
            precondition = self._db.write_option(last_update_time=update_time)
            try:
                batch = self._db.batch()
                batch.update(reference, write, option=precondition)
                result = self._commit(batch, reference, write, along)[0]
            except (gexc.FailedPrecondition, gexc.NotFound):
                if known is None:
                    database.back_off(attempt)
                known = None  # stale, or gone: read it
                continue
            return Read({**current, **write, "updated_at": database.server_time(result)}, result.update_time)
        raise ApiError(Code.ABORTED, f"The {kind.name} is being changed by another request; try again.")

    @database.translated
    def set_fields(self, kind: Kind, doc_id: str, fields: Mapping[str, Any]) -> None:
        """Change a document of the tenant's that only this request writes (an idempotency key
        it holds) without reading it first: one round trip. Its version still moves on."""
        from google.cloud.firestore import SERVER_TIMESTAMP, Increment

        write = {k: v for k, v in fields.items() if k not in SERVER_FIELDS}
        reference = self._collection(kind).document(doc_id)
        reference.update({**write, "version": Increment(1), "updated_at": SERVER_TIMESTAMP}, **self._calls)

    @database.translated
    def add(
        self, kind: Kind, doc_id: str, counts: Mapping[str, int], fields: Mapping[str, Any] | None = None
    ) -> dict[str, int]:
        """Add `counts` to the counters of a document keyed by the tenant (its id starts with their
        uid), created with `fields` and the counts if it is not there; the counters' totals after.

        The additions are Firestore increments, applied by the database itself: concurrent adds
        never lose one another, nothing is read first (one round trip once the document exists),
        and the totals come back in the commit's answer.
        """
        from google.api_core import exceptions as gexc

        _require_keyed(self.uid, doc_id)
        reference = self._collection(kind).document(doc_id)
        for _ in range(3):
            try:
                batch = self._db.batch()
                batch.update(reference, increments(counts))
                result = batch.commit(**self._calls)[0]
            except gexc.NotFound:
                try:
                    self.create(kind, {**(fields or {}), **counts}, doc_id=doc_id)
                except ApiError as error:
                    if error.code is not Code.ALREADY_EXISTS:
                        raise
                    continue  # created meanwhile by a concurrent add: add to it
                return dict(counts)
            return totals(list(counts), result)
        raise database.busy()

    @database.translated
    def delete(self, kind: Kind, doc_id: str, *, if_match: int | None = None) -> dict[str, Any]:
        """Delete an owned document as a compare-and-set against the version read.

        A concurrent writer makes the precondition fail: with `if_match` that is a 412 on the
        next read, without it the delete is tried again on the new state.
        """
        from google.api_core import exceptions as gexc

        reference = self._collection(kind).document(doc_id)
        for attempt in range(5):
            current, update_time = self._load(kind, doc_id)
            check_version(current, if_match)
            batch = self._db.batch()
            batch.delete(reference, option=self._db.write_option(last_update_time=update_time))
            if kind.counted:
                counts.change(self, batch, kind, -1)
            try:
                results = batch.commit(**self._calls)
            except (gexc.FailedPrecondition, gexc.NotFound):
                database.back_off(attempt)
                continue
            if kind.counted:
                counts.committed(self.uid, kind, results[1])
            return current
        raise ApiError(Code.ABORTED, f"The {kind.name} is being changed by another request; try again.")

    @database.translated
    def run_transaction(self, work: Callable[[TenantTransaction], R]) -> R:
        """Run `work` in one Firestore transaction, retried by Firestore on contention.

        Transactions lock what they read: for a document many requests race to change (an
        action being decided), a compare-and-set (`update`) settles faster. An ApiError raised
        by `work` rolls the transaction back and reaches the caller.
        """
        from google.api_core import exceptions as gexc
        from google.cloud import firestore

        @firestore.transactional  # type: ignore[untyped-decorator]
        def attempt(transaction: Any) -> tuple[R, list[Companion]]:
            tenant = TenantTransaction(self, transaction)
            return work(tenant), tenant.companions

        try:
            result, companions = attempt(self._db.transaction())
            for along in companions:  # those of the attempt that committed
                along.written = True
            return result  # type: ignore[no-any-return]
        except gexc.AlreadyExists:
            raise ApiError(Code.ALREADY_EXISTS, "Something this request creates exists already.") from None
        except ValueError as error:
            # The library reports "failed to commit in N attempts" and a failed rollback as
            # ValueError, the database error that caused it chained behind.
            cause = error.__cause__ or error.__context__
            if isinstance(cause, (gexc.GoogleAPICallError, gexc.RetryError)):
                raise cause from None
            raise

    def watch(self, kind: Kind, doc_id: str, on_change: Callable[[dict[str, Any] | None], None]) -> Callable[[], None]:
        """Call `on_change` with the tenant's document now and on every change (None once it is
        gone, or if it is not theirs), from Firestore's listener thread; returns the unsubscribe."""

        def changed(snapshots: list[Any], _changes: Any, _read_time: Any) -> None:
            if not snapshots:  # a deleted document is reported as no document at all
                on_change(None)
            for snapshot in snapshots:
                try:
                    on_change(self._owned(snapshot, kind))
                except ApiError:
                    on_change(None)

        watch = self._collection(kind).document(doc_id).on_snapshot(changed)
        return watch.unsubscribe  # type: ignore[no-any-return]

    def follow(
        self,
        kind: Kind,
        filters: Sequence[Filter],
        order: Order,
        on_added: Callable[[Sequence[dict[str, Any]]], None],
    ) -> Callable[[], None]:
        """Call `on_added` with the tenant's documents matching `filters`: those there now, then
        those added later, each batch in `order`, from Firestore's listener thread; returns the
        unsubscribe. (The client reports no failure of a listener to its callback: a caller that
        must not wait forever looks for itself now and then.)"""

        def changed(_snapshots: list[Any], changes: list[Any], _read_time: Any) -> None:
            added = [change.document for change in changes if change.type.name == "ADDED"]
            self.documents_read += len(added)
            if added:
                on_added(
                    sorted((database.document(s) for s in added), key=lambda d: [d.get(f) for f, _ in order.fields])
                )

        watch = self._ordered(kind, filters, order).on_snapshot(changed)
        return watch.unsubscribe  # type: ignore[no-any-return]

    @database.translated
    def delete_where(
        self,
        kind: Kind,
        filters: Sequence[Filter],
        *,
        parent_id: str | None = None,
        before: Callable[[Sequence[dict[str, Any]]], None] | None = None,
    ) -> int:
        """Delete every owned document matching `filters`, in batches; returns how many.
        `before` is given each batch's documents before they go (to delete what they own).

        One call deletes at most CSCX_DELETE_BATCH_LIMIT documents, then answers 409 with
        `Retry-After`: a retry goes on where it stopped, instead of one request running to
        the function's time limit.
        """
        from google.api_core import exceptions as gexc

        deleted, conflicts = 0, 0
        limit = get_settings().delete_batch_limit
        while conflicts < 5:
            if deleted >= limit:
                raise ApiError(
                    Code.ABORTED,
                    f"Deleted {deleted} of the {kind.collection} so far; retry the request to finish.",
                    headers={"Retry-After": "1"},
                )
            size = min(BATCH_SIZE, limit - deleted)
            snapshots = list(self._query(kind, filters, parent_id).limit(size).stream(**self._calls))
            if not snapshots:
                return deleted
            if before is not None:
                before([database.document(snapshot) for snapshot in snapshots])
            batch = self._db.batch()
            for snapshot in snapshots:
                # Only as it was matched: one changed meanwhile (an action approved, say) fails
                # the batch, and the next round asks again.
                batch.delete(snapshot.reference, option=self._db.write_option(last_update_time=snapshot.update_time))
            if kind.counted:
                counts.change(self, batch, kind, -len(snapshots))
            try:
                results = batch.commit(**self._calls)
            except (gexc.FailedPrecondition, gexc.NotFound):
                database.back_off(conflicts)
                conflicts += 1
                continue
            if kind.counted:
                counts.committed(self.uid, kind, results[-1])
            deleted += len(snapshots)
        raise database.busy()


class TenantTransaction:
    """One tenant's reads and writes inside a Firestore transaction (serializable: what it
    read, queries included, cannot change before it commits). All reads come before writes."""

    def __init__(self, repo: Repository, transaction: Any) -> None:
        self._repo = repo
        self._transaction = transaction
        self.companions: list[Companion] = []  # stored with this transaction's writes

    @property
    def uid(self) -> str:
        return self._repo.uid

    def get(self, kind: Kind, doc_id: str) -> dict[str, Any]:
        # Whose it is is asked first, outside the transaction (its owner alone is read): another
        # user's document is then neither read nor held by this transaction.
        self._repo.require(kind, doc_id)
        reference = self._repo._collection(kind).document(doc_id)
        return self._repo._owned(reference.get(transaction=self._transaction, **self._repo._calls), kind)

    def find(self, kind: Kind, doc_id: str) -> dict[str, Any] | None:
        return _or_none(lambda: self.get(kind, doc_id))

    def any(self, kind: Kind, filters: Sequence[Filter]) -> bool:
        query = self._repo._query(kind, filters).limit(1)
        return bool(list(query.get(transaction=self._transaction, **self._repo._calls)))

    def create(
        self,
        kind: Kind,
        data: Mapping[str, Any],
        *,
        doc_id: str | None = None,
        parent_id: str | None = None,
        along: Companion | None = None,
    ) -> str:
        """Create a document in the transaction; `along` is stored with it when it commits. A
        counted kind's counter goes up with it, uncapped: the caller judged room first
        (`Repository.count`), as a transaction's reads all come before its writes."""
        collection = self._repo._collection(kind, parent_id)
        reference = collection.document(doc_id) if doc_id else collection.document()
        document = new_document(self._repo.uid, data)
        self._transaction.create(reference, document)
        if kind.counted:
            counts.change(self._repo, self._transaction, kind, 1)
            counts.forget(self.uid, kind)
        if along is not None:
            self._repo._add_companion(self._transaction, reference, along, document)
            self.companions.append(along)
        return str(reference.id)

    def update(self, kind: Kind, current: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        reference = self._repo._collection(kind).document(current["id"])
        self._transaction.update(reference, next_version(current, fields))

    def delete(self, kind: Kind, doc_id: str, *, parent_id: str | None = None) -> None:
        """Delete a document this transaction read (a counted kind's counter goes down with it)."""
        self._transaction.delete(self._repo._collection(kind, parent_id).document(doc_id))
        if kind.counted:
            counts.change(self._repo, self._transaction, kind, -1)
            counts.forget(self.uid, kind)


# -- across tenants -------------------------------------------------------------------------


def _or_none(read: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """What `read` reads, or None where it answers 404."""
    try:
        return read()
    except NotFoundError:
        return None


def _require_keyed(uid: str, doc_id: str) -> None:
    if not doc_id.startswith(f"{uid}-"):
        raise ValueError("a document keyed by its owner has an id that starts with their uid")


def check_version(current: Mapping[str, Any], if_match: int | None) -> None:
    if if_match is not None and current.get("version") != if_match:
        raise ApiError(
            Code.FAILED_PRECONDITION,
            f"The object is at version {current.get('version')}, not {if_match}; reload it and retry.",
        )


def _query_id(uid: str, path: str, filters: Iterable[Filter], order: Order) -> str:
    """The identity of a list query (tenant, collection, filters, order): what its cursors are bound to."""
    key = json.dumps([uid, path, [[f.field, f.op, f.value] for f in filters], order.name], default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:32]
