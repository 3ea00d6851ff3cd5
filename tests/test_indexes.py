"""Every list query the API can issue has a composite index in firestore.indexes.json.

The emulator serves any query without an index; production Firestore refuses them. The
queries are recorded from the list functions themselves, over every filter and order, and
from the listeners that follow a query (a turn's part log, read by a resumed stream).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from common import resources
from common.actions import decisions, sweep
from common.agent import sessions
from common.agent.part_log import LogTail
from common.collections import ACTIONS, CONTRACTS, CUSTOMERS, MESSAGES, PART_LOG, SESSIONS, TASKS, Kind, Order
from common.contracts import records
from common.store import Filter, ListPage, Repository
from scripts.stack import ROOT

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

EQUALITY = {"==", "in"}


class RecordingRepository(Repository):
    """Records the list queries asked of it instead of running them."""

    def __init__(self) -> None:
        super().__init__("uid-recording")
        self.queries: list[tuple[str, Sequence[Filter], Order]] = []

    def get(self, kind: Kind, doc_id: str, *, parent_id: str | None = None) -> dict[str, Any]:
        return {"id": doc_id, "owner_id": self.uid, "version": 1}

    def require(self, kind: Kind, doc_id: str) -> None:
        return None

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
        self.queries.append((kind.path(parent_id), filters, order))
        return ListPage([], None)

    def follow(
        self,
        kind: Kind,
        filters: Sequence[Filter],
        order: Order,
        on_added: Callable[[Sequence[dict[str, Any]]], None],
    ) -> Callable[[], None]:
        self.queries.append((kind.path(), filters, order))
        return lambda: None


def _combinations(options: dict[str, list[str | None]]) -> Iterator[dict[str, str]]:
    names = list(options)
    for values in itertools.product(*(options[n] for n in names)):
        yield {n: v for n, v in zip(names, values, strict=True) if v is not None}


def recorded_queries() -> list[tuple[str, Sequence[Filter], Order]]:
    repo = RecordingRepository()
    for query in _combinations({"stage": [None, "adopting"], "order": [*CUSTOMERS.orders, None]}):
        resources.list_customers(repo, query)
    resources.list_customers(repo, {"q": "acme"})
    resources.list_customers(repo, {"q": "acme", "stage": "renewing", "order": "name"})
    for query in _combinations({"customer_id": [None, "c1"]}):
        records.list_contracts(repo, query)
        sessions.list_sessions(repo, query)
    for query in _combinations(
        {"status": [None, "open"], "customer_id": [None, "c1"], "due_before": [None, "2026-01-01"]}
    ):
        resources.list_tasks(repo, query)
    sessions.list_messages(repo, "s1", {})
    sessions.latest_messages(repo, "s1", 100)
    for query in _combinations({"status": [None, "pending"]}):
        decisions.list_actions(repo, query)
    LogTail(repo, "turn1").close()
    return repo.queries


def _indexes() -> list[tuple[str, list[tuple[str, str]]]]:
    document = json.loads((ROOT / "firestore.indexes.json").read_text())
    return [
        (index["collectionGroup"], [(field["fieldPath"], field["order"]) for field in index["fields"]])
        for index in document["indexes"]
    ]


def _needed(path: str, filters: Sequence[Filter], order: Order) -> tuple[str, set[str], list[tuple[str, str]]]:
    equality = {"owner_id"} | {f.field for f in filters if f.op in EQUALITY}
    ordered = [(name, "DESCENDING" if descending else "ASCENDING") for name, descending in order.fields]
    ranges = {f.field for f in filters if f.op not in EQUALITY}
    assert ranges <= {name for name, _ in ordered}, "a range filter must be on the order's field"
    return path.rsplit("/", 1)[-1], equality, ordered


@pytest.mark.parametrize(
    "query", recorded_queries(), ids=lambda q: f"{q[0]}:{[(f.field, f.op) for f in q[1]]}:{q[2].name}"
)
def test_list_query_has_a_composite_index(query: tuple[str, Sequence[Filter], Order]) -> None:
    group, equality, ordered = _needed(*query)
    for index_group, fields in _indexes():
        if index_group != group or len(fields) != len(equality) + len(ordered):
            continue
        if {name for name, _ in fields[: len(equality)]} == equality and fields[len(equality) :] == ordered:
            return
    pytest.fail(f"no index on {group} for equality {sorted(equality)} then {ordered}")


@pytest.mark.parametrize("sweep_round", sweep.QUERIES, ids=lambda r: r.name)
def test_each_query_of_the_sweep_has_a_composite_index(sweep_round: sweep.Query) -> None:
    """The sweep's queries are across tenants: their equality filters, then the order's field (its
    range filter's), without owner_id."""
    filters = sweep_round.filters(datetime.now(UTC))
    equality = {f.field for f in filters if f.op in EQUALITY}
    ranges = {f.field for f in filters if f.op not in EQUALITY}
    assert ranges <= {sweep_round.order_by}, "a range filter must be on the order's field"
    wanted = [*sorted(equality), sweep_round.order_by]
    for group, fields in _indexes():
        names = [name for name, _ in fields]
        if group == ACTIONS.collection and set(names[:-1]) == equality and names[-1] == sweep_round.order_by:
            assert fields[-1][1] == "ASCENDING", "the sweep takes the oldest first"
            return
    pytest.fail(f"no index on actions for {wanted}")


def test_recording_covers_every_list_order() -> None:
    orders = {(path.rsplit("/", 1)[-1], order.name) for path, _, order in recorded_queries()}
    kinds = (CUSTOMERS, CONTRACTS, TASKS, SESSIONS, MESSAGES)
    for kind in (*kinds, ACTIONS, PART_LOG):
        for name in kind.orders:
            assert (kind.collection, name) in orders
