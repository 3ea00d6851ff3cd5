"""The CSM's records (profile, customers, tasks): one function per kind and verb, with the rules
each kind adds on top of the tenant-scoped repository, and what every kind's lists and updates
share. They take validated models and return what clients see (`XPublic`). Contracts' records
are in `contracts/records.py`, chat sessions' in `agent/sessions.py`.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from common import files, models
from common.auth import User
from common.collections import ACTIONS, CONTRACTS, CUSTOMERS, PROFILES, TASKS, Kind, Order
from common.errors import ApiError, Code, NotFoundError
from common.instance import on_reset
from common.settings import get_settings
from common.store import Companion, Filter, ListPage, Repository, TenantTransaction, check_version, counts
from common.validation import ID_PATTERN

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
NO_DATE = "9999-12-31"  # sorts undated tasks and customers after dated ones


def invalid(field: str, message: str) -> ApiError:
    return ApiError(Code.INVALID_ARGUMENT, f"Invalid {field}: {message}.", [{"field": field, "message": message}])


# -- lists -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListArgs:
    limit: int
    cursor: str | None
    order: Order


def list_args(query: Mapping[str, str], kind: Kind) -> ListArgs:
    raw_limit = query.get("limit", "")
    limit = DEFAULT_PAGE_SIZE
    if raw_limit != "":
        if not re.fullmatch(r"[0-9]{1,3}", raw_limit) or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
            raise invalid("limit", f"must be a whole number from 1 to {MAX_PAGE_SIZE}")
        limit = int(raw_limit)
    order_name = query.get("order") or kind.default_order
    if order_name not in kind.orders:
        raise invalid("order", f"must be one of {', '.join(kind.orders)}")
    return ListArgs(limit, query.get("cursor") or None, kind.orders[order_name])


def _date_arg(query: Mapping[str, str], name: str) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
            raise ValueError(raw)
        dt.date.fromisoformat(raw)
    except ValueError:
        raise invalid(name, "must be a date as YYYY-MM-DD") from None
    return raw


def enum_arg(query: Mapping[str, str], name: str, values: type[enum.StrEnum]) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw not in {v.value for v in values}:
        raise invalid(name, f"must be one of {', '.join(v.value for v in values)}")
    return raw


def _id_arg(query: Mapping[str, str], name: str) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not re.fullmatch(ID_PATTERN, raw):
        raise invalid(name, "is not an id")
    return raw


def list_page(
    repo: Repository, kind: Kind, args: ListArgs, filters: list[Filter], parent_id: str | None = None
) -> ListPage[dict[str, Any]]:
    return repo.list(kind, filters=filters, order=args.order, limit=args.limit, cursor=args.cursor, parent_id=parent_id)


def list_by_customer(repo: Repository, kind: Kind, query: Mapping[str, str]) -> ListPage[dict[str, Any]]:
    """A page of `kind` (contracts, sessions), of one customer's when `customer_id` is given."""
    args = list_args(query, kind)
    customer_id = _id_arg(query, "customer_id")
    filters = [Filter("customer_id", "==", customer_id)] if customer_id else []
    return list_page(repo, kind, args, filters)


# -- profile ---------------------------------------------------------------------------

_profiles_seen: set[str] = set()
on_reset(_profiles_seen.clear)


def ensure_profile(user: User) -> None:
    """Create the caller's profile on their first authenticated call (checked once per instance).

    Every function's router calls this after authenticating a user (DESIGN §3).
    """
    if user.uid in _profiles_seen:
        return
    get_profile(Repository(user.uid), user)
    _profiles_seen.add(user.uid)


def get_profile(repo: Repository, user: User, stored: Mapping[str, Any] | None = None) -> models.ProfilePublic:
    """The caller's profile, made on first use; `stored`: the profile document, read already."""
    if stored is not None and not (user.email and stored.get("email") != user.email):
        return models.ProfilePublic.of(stored)
    defaults: dict[str, Any] = {
        "email": user.email,
        "display_name": user.display_name or "",
        "timezone": "UTC",
        "signature": "",
        "preferences": {"default_provider": models.DEFAULT_PROVIDER.value, "auto_approve": []},
    }
    profile = repo.get_or_create(PROFILES, user.uid, defaults)
    if user.email and profile.get("email") != user.email:  # changed at sign-in since
        profile = repo.update(PROFILES, user.uid, lambda _: {"email": user.email})
    return models.ProfilePublic.of(profile)


def update_profile(
    repo: Repository, user: User, update: models.ProfileUpdate, if_match: int | None
) -> models.ProfilePublic:
    changes = update.changes()
    get_profile(repo, user)

    def merge(current: dict[str, Any]) -> dict[str, Any]:
        if "preferences" in changes:
            return {**changes, "preferences": {**current.get("preferences", {}), **changes["preferences"]}}
        return changes

    return models.ProfilePublic.of(repo.update(PROFILES, user.uid, merge, if_match=if_match))


# -- customers -------------------------------------------------------------------------


def customer_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(values)
    if "name" in fields:
        fields["name_lower"] = fields["name"].lower()
    if "renewal_date" in fields:
        fields["renewal_key"] = fields["renewal_date"] or NO_DATE
    return fields


def ensure_room(repo: Repository, kind: Kind, counter: counts.Counter | None = None) -> None:
    """Refuse a new document past the per-user cap (CSCX_MAX_DOCUMENTS) of its kind: 429, before
    the work that precedes its create (a file stored, a model called, a transaction). A create
    outside a transaction holds to the cap in its own commit (`Repository.create`). `counter`:
    the kind's counter, read already."""
    cap = get_settings().max_documents
    if (counter.total if counter is not None else repo.count(kind)) >= cap:
        raise counts.full(kind, cap)


def get_customer(repo: Repository, customer_id: str) -> models.CustomerPublic:
    return models.CustomerPublic.of(repo.get(CUSTOMERS, customer_id))


def create_customer(
    repo: Repository, customer: models.CustomerCreate, *, along: Companion | None = None
) -> models.CustomerPublic:
    """Store a new customer (`along`, an idempotency key's record, in the same commit)."""
    fields = customer_fields(customer.model_dump(mode="json"))
    return models.CustomerPublic.of(repo.create(CUSTOMERS, fields, along=along))


def update_customer(
    repo: Repository, customer_id: str, update: models.CustomerUpdate, if_match: int | None
) -> models.CustomerPublic:
    changes = customer_fields(update.changes())
    return models.CustomerPublic.of(update_record(repo, CUSTOMERS, customer_id, changes, if_match))


def list_customers(repo: Repository, query: Mapping[str, str]) -> ListPage[models.CustomerPublic]:
    args = list_args(query, CUSTOMERS)
    filters = []
    stage = enum_arg(query, "stage", models.Stage)
    if stage:
        filters.append(Filter("stage", "==", stage))
    prefix = query.get("q")
    if prefix is not None:
        prefix = prefix.strip().lower()
        if not 1 <= len(prefix) <= 200:
            raise invalid("q", "must be 1 to 200 characters")
        if args.order.name != "name":
            raise invalid("order", "must be name when searching with q")
        # Everything that starts with the prefix sorts before the prefix with its last
        # character incremented (Firestore compares strings by their UTF-8 bytes).
        filters += [Filter("name_lower", ">=", prefix), Filter("name_lower", "<", _after_prefix(prefix))]
    return list_page(repo, CUSTOMERS, args, filters).map(models.CustomerPublic.of)


def update_record(
    repo: Repository, kind: Kind, doc_id: str, changes: dict[str, Any], if_match: int | None
) -> dict[str, Any]:
    """Apply a validated partial update; a `customer_id` it sets must name one of the caller's
    customers, checked in the same transaction as the write so the customer cannot go meanwhile."""
    customer_id = changes.get("customer_id")
    if customer_id is None:
        return repo.update(kind, doc_id, lambda _: changes, if_match=if_match)
    # Judged outside the transaction first: the common refusals (and an outage) answer fast.
    check_version(repo.get(kind, doc_id), if_match)
    require_customer(repo, customer_id)

    def update_referencing(t: TenantTransaction) -> None:
        current = t.get(kind, doc_id)  # a missing object is 404 before its reference
        check_version(current, if_match)
        require_customer(t, customer_id)
        t.update(kind, current, changes)

    repo.run_transaction(update_referencing)
    return repo.get(kind, doc_id)


def _after_prefix(prefix: str) -> str:
    """The smallest string above every string that starts with `prefix`."""
    last = ord(prefix[-1])
    following = 0xE000 if last == 0xD7FF else last + 1  # surrogates are not characters
    if following > 0x10FFFF:
        return prefix + "\U0010ffff"
    return prefix[:-1] + chr(following)


def require_customer(reader: Repository | TenantTransaction, customer_id: str, field: str = "customer_id") -> None:
    """Refuse a reference to a customer the caller does not own (indistinguishable from none)."""
    try:
        if isinstance(reader, Repository):
            reader.require(CUSTOMERS, customer_id)  # its existence is all that is asked
        else:
            reader.get(CUSTOMERS, customer_id)  # in a transaction, the read is what holds it
    except NotFoundError:
        raise invalid(field, "no such customer") from None


class _StillReferencedError(ApiError):
    """The customer still has contracts, tasks or pending actions."""

    def __init__(self, blocking: list[str]) -> None:
        super().__init__(
            Code.ABORTED,
            f"The customer is still referenced by {', '.join(blocking)}; delete those first or use ?cascade=true.",
            [{"field": name, "message": "references this customer"} for name in blocking],
        )


def _action_in_flight() -> ApiError:
    return ApiError(
        Code.ABORTED, "An approved action for this customer is being carried out; try again when it has finished."
    )


def delete_customer(repo: Repository, customer_id: str, *, cascade: bool, if_match: int | None) -> None:
    """Delete a customer; what references it blocks the delete unless `cascade` removes it too.

    Actions already approved or executing always block: their effect is under way.
    """
    current = repo.get(CUSTOMERS, customer_id)
    check_version(current, if_match)
    refers = Filter("customer_id", "==", customer_id)
    in_flight = [refers, Filter("status", "in", [models.ActionStatus.APPROVED, models.ActionStatus.EXECUTING])]
    references: list[tuple[Kind, list[Filter]]] = [
        (CONTRACTS, [refers]),
        (TASKS, [refers]),
        (ACTIONS, [refers, Filter("status", "==", models.ActionStatus.PENDING)]),
    ]

    def delete_unreferenced(t: TenantTransaction) -> None:
        # In one transaction with the reference queries: nothing can come to refer to the
        # customer, nor an action of it be approved, between the check and the delete.
        current = t.get(CUSTOMERS, customer_id)
        if not cascade:
            check_version(current, if_match)
        if t.any(ACTIONS, in_flight):
            raise _action_in_flight()
        blocking = [kind.collection for kind, filters in references if t.any(kind, filters)]
        if blocking:
            raise _StillReferencedError(blocking)
        t.delete(CUSTOMERS, customer_id)

    if not cascade:
        repo.run_transaction(delete_unreferenced)
        return
    if repo.first(ACTIONS, in_flight):  # judged before anything is deleted
        raise _action_in_flight()
    # If-Match was judged above, before anything is deleted: once the references are gone the
    # customer goes too, whatever was written to it meanwhile. A reference created, or a
    # pending action approved, while they were being deleted is dealt with on the next round.

    def delete_files(contracts: Sequence[dict[str, Any]]) -> None:
        for contract in contracts:
            files.delete_file_of(contract)

    for _ in range(3):
        for kind, filters in references:
            repo.delete_where(kind, filters, before=delete_files if kind is CONTRACTS else None)
        try:
            repo.run_transaction(delete_unreferenced)
            return
        except _StillReferencedError:
            continue
    raise ApiError(Code.ABORTED, "The customer keeps gaining references; try again.")


# -- tasks -----------------------------------------------------------------------------


def _task_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(values)
    if "due_date" in fields:
        fields["due_key"] = fields["due_date"] or NO_DATE
    return fields


def get_task(repo: Repository, task_id: str) -> models.TaskPublic:
    return models.TaskPublic.of(repo.get(TASKS, task_id))


def task_document(task: models.TaskCreate, source: models.TaskSource) -> dict[str, Any]:
    """The fields a task is stored with."""
    return _task_fields({**task.model_dump(mode="json"), "source": source.value})


def create_task(
    repo: Repository,
    task: models.TaskCreate,
    *,
    source: models.TaskSource = models.TaskSource.MANUAL,
    along: Companion | None = None,
) -> models.TaskPublic:
    """Store a new task (`along`, an idempotency key's record, in the same commit)."""
    fields = task_document(task, source)
    customer_id = task.customer_id
    if customer_id is None:
        return models.TaskPublic.of(repo.create(TASKS, fields, along=along))

    ensure_room(repo, TASKS)
    require_customer(repo, customer_id)  # fast refusal outside the transaction, then again inside

    def create_referencing(t: TenantTransaction) -> str:
        require_customer(t, customer_id)
        return t.create(TASKS, fields, along=along)

    return get_task(repo, repo.run_transaction(create_referencing))


def update_task(repo: Repository, task_id: str, update: models.TaskUpdate, if_match: int | None) -> models.TaskPublic:
    return models.TaskPublic.of(update_record(repo, TASKS, task_id, _task_fields(update.changes()), if_match))


def delete_task(repo: Repository, task_id: str, if_match: int | None) -> None:
    repo.delete(TASKS, task_id, if_match=if_match)


def list_tasks(repo: Repository, query: Mapping[str, str]) -> ListPage[models.TaskPublic]:
    args = list_args(query, TASKS)
    filters = []
    status = enum_arg(query, "status", models.TaskStatus)
    if status:
        filters.append(Filter("status", "==", status))
    customer_id = _id_arg(query, "customer_id")
    if customer_id:
        filters.append(Filter("customer_id", "==", customer_id))
    due_before = _date_arg(query, "due_before")
    if due_before:
        filters.append(Filter("due_key", "<", due_before))
    return list_page(repo, TASKS, args, filters).map(models.TaskPublic.of)
