"""The instance's Firestore client, and the one boundary where its failures become the API's.

Only the tenant store (`common/store/__init__.py`) uses it, and `across_tenants`, the one read
that is no tenant's: for the server's own rounds over every user's documents (the sweep of
actions). It names documents — owner and id — and reads nothing of them; whatever is then done
with one goes through its owner's Repository.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from common.collections import Kind
from common.errors import ApiError, Code, NotFoundError
from common.instance import per_instance
from common.log import get_logger
from common.settings import get_settings

if TYPE_CHECKING:
    from google.cloud import firestore

logger = get_logger(__name__)


@per_instance
def client() -> firestore.Client:
    """The instance's Firestore client, created on first use; only a Repository uses it."""
    from google.cloud import firestore

    return firestore.Client(project=get_settings().project_id)


P = ParamSpec("P")
R = TypeVar("R")


def document(snapshot: Any) -> dict[str, Any]:
    """A read document as the store answers it: its fields and its `id`."""
    return {"id": snapshot.id, **(snapshot.to_dict() or {})}


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Firestore's transient failures become the API's 503 (or 429) at this one boundary."""

    @functools.wraps(method)
    def translated(*args: P.args, **kwargs: P.kwargs) -> R:
        from google.api_core import exceptions as gexc

        try:
            return method(*args, **kwargs)
        except gexc.ResourceExhausted:
            logger.warning("Firestore quota exhausted", exc_info=True)
            raise ApiError(Code.RESOURCE_EXHAUSTED, "Too many requests right now; try again shortly.") from None
        except gexc.Aborted:
            logger.info("Firestore contention", exc_info=True)
            raise busy() from None
        except (
            gexc.ServiceUnavailable,
            gexc.DeadlineExceeded,
            gexc.InternalServerError,
            gexc.Unknown,
            gexc.RetryError,
        ):
            logger.warning("Firestore unavailable", exc_info=True)
            raise ApiError(Code.UNAVAILABLE, "The database is unavailable right now; try again.") from None

    return translated


@functools.cache
def call_options(timeout: float) -> dict[str, Any]:
    """Every Firestore call gives up after `timeout` seconds, retries included."""
    from google.api_core.retry import Retry, if_transient_error

    return {"timeout": timeout, "retry": Retry(timeout=timeout, predicate=if_transient_error)}


def busy() -> ApiError:
    return ApiError(Code.ABORTED, "The object is being changed by other requests; try again.")


def not_found(kind: str) -> NotFoundError:
    return NotFoundError(f"No such {kind}.")


@dataclass(frozen=True)
class Read:
    """A tenant's document as read or as last written, and its update time: what a later write
    can name as its precondition (the write holds only if the document is still so)."""

    document: dict[str, Any]
    update_time: Any


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Owned:
    """A document named across tenants: whose it is and its id, nothing of what it holds."""

    owner_id: str
    doc_id: str


@translated
def across_tenants(kind: Kind, filters: Sequence[Filter], *, order_by: str, limit: int) -> list[Owned]:
    """At most `limit` documents of `kind` matching `filters`, lowest `order_by` first, whoever owns
    them: the one read that is no tenant's. Only their owners and ids leave Firestore.

    For the server's own rounds over every user's documents, never for a request's: each document
    named is then read and changed through `Repository(owner_id)`, as its owner's.
    """
    from google.cloud.firestore import FieldFilter, Query

    if kind.parent is not None:
        raise ValueError(f"{kind.name}: only top-level collections are read across tenants")
    query: Any = client().collection(kind.path())
    for f in filters:
        query = query.where(filter=FieldFilter(f.field, f.op, f.value))
    query = query.order_by(order_by, direction=Query.ASCENDING).select(["owner_id"]).limit(limit)
    owned = []
    for snapshot in query.stream(**call_options(get_settings().firestore_timeout_seconds)):
        owner = (snapshot.to_dict() or {}).get("owner_id")
        if isinstance(owner, str) and owner:
            owned.append(Owned(owner, snapshot.id))
    return owned


def back_off(attempt: int) -> None:
    """A short, jittered wait before retrying a compare-and-set another writer won."""
    time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not security


def server_time(result: Any) -> datetime:
    """The value Firestore stored for this write's SERVER_TIMESTAMP fields."""
    stored = result.transform_results[0].timestamp_value if result.transform_results else result.update_time
    if isinstance(stored, datetime):
        return stored
    return datetime.fromtimestamp(stored.seconds + stored.nanos / 1e9, UTC)
