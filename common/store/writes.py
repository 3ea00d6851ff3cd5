"""The one shape of every write of a tenant's document: a new document's common fields, an
update's next version, counters' increments and the totals a commit answers for them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Fields every document has, written by the store alone.
SERVER_FIELDS = frozenset({"id", "owner_id", "created_at", "updated_at", "version"})


def new_document(uid: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A new document's fields: the caller's, then the common ones only the server writes."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    fields = {k: v for k, v in data.items() if k not in SERVER_FIELDS}
    return {**fields, "owner_id": uid, "version": 1, "created_at": SERVER_TIMESTAMP, "updated_at": SERVER_TIMESTAMP}


def next_version(current: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """An update's fields: the changed ones, the version after `current`'s, a new updated_at."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    write = {k: v for k, v in fields.items() if k not in SERVER_FIELDS}
    return {**write, "version": current["version"] + 1, "updated_at": SERVER_TIMESTAMP}


def increments(counts: Mapping[str, int]) -> dict[str, Any]:
    """An update adding `counts` to a document's counters (Firestore increments: concurrent ones
    add up, nothing is read first), its version and update time moving on with them."""
    from google.cloud.firestore import SERVER_TIMESTAMP, Increment

    changes: dict[str, Any] = {name: Increment(count) for name, count in counts.items()}
    return changes | {"version": Increment(1), "updated_at": SERVER_TIMESTAMP}


def totals(names: Sequence[str], result: Any) -> dict[str, int]:
    """The counters `names` as a commit's write of `increments` left them (that write's result)."""
    # The client sends field transforms ordered by field path, and the results come in that order.
    transforms = sorted([*names, "version", "updated_at"])
    values = dict(zip(transforms, result.transform_results, strict=True))
    return {name: int(values[name].integer_value) for name in names}
