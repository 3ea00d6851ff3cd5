"""A lease: one holder's claim on a document for a while, kept as `{holder, until}` in one field.

It is taken, renewed and let go by compare-and-set through the repository (`Repository.update`:
the write holds only if the document is still as it was read), each time with the holder's own
changes in the same write, so the claim and the state it guards change together. A holder whose
process dies stops renewing, and once `until` has passed anyone may take the document over.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from common.errors import ApiError, NotFoundError
from common.log import get_logger

if TYPE_CHECKING:
    from common.collections import Kind
    from common.store import Repository
    from common.store.database import Read

logger = get_logger(__name__)

# What a taker writes with the lease, given the document as it is; None: it is in no state to be taken.
Changes = Callable[[dict[str, Any]], Mapping[str, Any] | None]

FIELD = "lease"


class LeaseRecord(BaseModel):
    """A lease as stored, for the typed record of a document that has one."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    holder: str
    until: datetime


def held(document: Mapping[str, Any], field: str = FIELD, now: datetime | None = None) -> bool:
    """Whether someone's lease on `document` is still running."""
    lease = document.get(field)
    if not isinstance(lease, Mapping) or lease.get("until") is None:
        return False
    return bool(lease["until"] > (now or datetime.now(UTC)))


class Lease:
    """One holder's lease on a document of `kind` (a new holder id each time one is made)."""

    def __init__(self, repo: Repository, kind: Kind, doc_id: str, *, seconds: float, field: str = FIELD) -> None:
        self.repo = repo
        self.kind = kind
        self.doc_id = doc_id
        self.seconds = seconds
        self.field = field
        self.holder = uuid.uuid4().hex
        self.lost = False  # set once a renewal finds the lease gone to another holder
        self.letting_go = False  # from the first release on: nothing renews it any more
        # The document as this holder last wrote it: its next write is judged on that, without a
        # read, and holds only if nobody wrote since (else it reads and judges again).
        self.known: Read | None = None

    def fields(self) -> dict[str, Any]:
        """The lease, running from now, as a field to write (a document created already held)."""
        return {self.field: {"holder": self.holder, "until": datetime.now(UTC) + timedelta(seconds=self.seconds)}}

    def cleared(self) -> dict[str, Any]:
        """The lease let go, as a field to write with the holder's changes, for a holder that
        writes without reading (a document no one else may take by then: its state has moved on)."""
        return {self.field: None}

    def ours(self, document: Mapping[str, Any]) -> bool:
        lease = document.get(self.field)
        return isinstance(lease, Mapping) and lease.get("holder") == self.holder

    def take(self, changes: Changes = lambda _: {}) -> dict[str, Any] | None:
        """Hold the document, writing `changes(current)` with the lease; the document as written.

        None, and nothing written, while another holder's lease runs, or when `changes` answers
        None (the document is in no state to be taken). `changes` may raise ApiError to refuse.
        """
        taken = False

        def take(current: dict[str, Any]) -> Mapping[str, Any]:
            nonlocal taken  # called again on the new state when another writer got in first
            fields = self.taking(current, changes)
            taken = fields is not None
            return fields or {}

        written = self.repo.change(self.kind, self.doc_id, take, known=self.known)
        if not taken:
            return None
        self.holds(written)
        return written.document

    def taking(self, current: Mapping[str, Any], changes: Changes) -> dict[str, Any] | None:
        """What taking the document as it is (`current`) writes: `changes(current)` and the lease;
        None while another holder's lease runs, or when `changes` answers None. For a holder that
        writes it in a commit of its own, and then `holds` what that commit stored."""
        if held(current, self.field) and not self.ours(current):
            return None
        wanted = changes(dict(current))
        return None if wanted is None else {**wanted, **self.fields()}

    def holds(self, written: Read) -> None:
        """This holder wrote the lease (`taking`'s fields) and the document is now `written`."""
        self.known = written
        self.letting_go = self.lost = False

    def renew(self) -> bool:
        """Run the lease from now again, if it is still ours; False once it is not (`lost`, unless
        it was let go)."""
        if self.letting_go:
            return False
        written = self.repo.change(
            self.kind, self.doc_id, lambda current: self.fields() if self.ours(current) else {}, known=self.known
        )
        document = written.document
        if self.ours(document):
            self.known = written
        elif not self.letting_go:
            self.lost = True
        return self.ours(document)

    def release(self, changes: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Let go, writing `changes` with it, if the lease is still ours; the document as written.
        None, and nothing written, when another holder has taken it over (or it was let go)."""
        self.letting_go = True
        released = False

        def release(current: dict[str, Any]) -> Mapping[str, Any]:
            nonlocal released
            released = self.ours(current)
            return {**(changes or {}), self.field: None} if released else {}

        written = self.repo.change(self.kind, self.doc_id, release, known=self.known)
        self.known = None  # no longer this holder's to write
        return written.document if released else None

    @contextmanager
    def kept(self) -> Iterator[Lease]:
        """Renew the lease every third of its length, beside the caller, until the block ends.

        A renewal that fails for a while (the database unavailable) is tried again at the next
        third; one that finds the lease taken over, or the document gone, stops and sets `lost`.
        """
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(self.seconds / 3):
                try:
                    if not self.renew():
                        return
                except NotFoundError:
                    self.lost = True
                    return
                except ApiError as error:
                    fields = {"doc_id": self.doc_id, "code": error.code.value}
                    logger.warning("lease not renewed", extra={"fields": fields})
                except Exception:
                    logger.exception("lease not renewed")

        keeper = threading.Thread(
            target=contextvars.copy_context().run, args=(keep,), name=f"lease-{self.doc_id}", daemon=True
        )
        keeper.start()
        try:
            yield self
        finally:
            stop.set()
            keeper.join()
