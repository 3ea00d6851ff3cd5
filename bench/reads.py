"""Firestore reads per list page as one user's customers grow from 100 to 10,000.

A page is read through `common.resources.list_customers` on a `Repository`, whose
`documents_read` counts the documents Firestore returned. The middle page is reached by
following cursors, as a client paging through the list would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.harness import Api, Bench
from bench.stats import Summary, sample_pair
from common.collections import CUSTOMERS
from common.resources import list_customers
from common.store import Repository

SIZES = (100, 1_000, 10_000)
PAGE = 25
HOP = 100  # the largest page, used to walk to the middle of the list
WARMUP = 3
ITERATIONS = 40
BUDGET_S = 12.0  # per page and size, both sides together


@dataclass(frozen=True)
class SizeResult:
    size: int
    seed_s: float
    first_page_reads: int
    middle_page_reads: int
    middle_offset: int
    first_page: Summary
    middle_page: Summary
    raw_first_page: Summary
    raw_middle_page: Summary


def run(bench: Bench) -> list[SizeResult]:
    user = bench.sign_up("reads")
    api = bench.crud(user)
    results = []
    stored = 0
    for size in SIZES:
        started = time.monotonic()
        bench.seed_customers(user.uid, stored, size - stored)
        seed_s = time.monotonic() - started
        stored = size

        first_reads = _page_reads(bench, user.uid, None)
        cursor, offset, last = _cursor_at_middle(bench, user.uid, size)
        middle_reads = _page_reads(bench, user.uid, cursor)
        first_page, raw_first_page = _list_latency(bench, api, user.uid, None)
        middle_page, raw_middle_page = _list_latency(bench, api, user.uid, (cursor, last))
        results.append(
            SizeResult(
                size,
                seed_s,
                first_reads,
                middle_reads,
                offset,
                first_page,
                middle_page,
                raw_first_page,
                raw_middle_page,
            )
        )
    return results


def _page_reads(bench: Bench, uid: str, cursor: str | None) -> int:
    repo = Repository(uid, client=bench.client)
    query = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
    page = list_customers(repo, query)
    if len(page.items) != PAGE or page.next_cursor is None:
        raise RuntimeError(f"expected a full page with a next cursor, got {len(page.items)} items")
    return repo.documents_read


def _cursor_at_middle(bench: Bench, uid: str, size: int) -> tuple[str, int, dict[str, Any]]:
    """The cursor after the first size/2 customers (by name), following next_cursor, and the
    last customer before it."""
    middle = size // 2
    hop = min(HOP, middle)
    repo = Repository(uid, client=bench.client)
    cursor: str | None = None
    offset = 0
    while True:
        page = list_customers(repo, {"limit": str(hop), **({"cursor": cursor} if cursor else {})})
        offset += len(page.items)
        if page.next_cursor is None:
            raise RuntimeError(f"the list ended after {offset} of {size} customers")
        cursor = page.next_cursor
        if offset >= middle:
            return cursor, offset, page.items[-1].model_dump(mode="json", exclude_unset=True)


def _list_latency(
    bench: Bench, api: Api, uid: str, after: tuple[str, dict[str, Any]] | None
) -> tuple[Summary, Summary]:
    """A page through the function, interleaved with the same query on the raw client."""
    params = {"limit": str(PAGE)}
    query = bench.customers_by_name(uid)
    if after:
        cursor, last = after
        params["cursor"] = cursor
        reference = bench.client.collection(CUSTOMERS.collection).document(last["id"])
        query = query.start_after([last["name"].lower(), reference])  # name_lower, as stored
    query = query.limit(PAGE + 1)

    def function_page(_: int) -> None:
        page = api.call("GET", "/customers", 200, params=params)
        if len(page["items"]) != PAGE:
            raise RuntimeError(f"a page of {len(page['items'])} customers, not {PAGE}")

    def raw_page(_: int) -> None:
        snapshots = list(query.stream())
        if len(snapshots) != PAGE + 1:
            raise RuntimeError(f"the raw query returned {len(snapshots)} customers, not {PAGE + 1}")
        [s.to_dict() for s in snapshots]

    return sample_pair(function_page, raw_page, warmup=WARMUP, iterations=ITERATIONS, budget_s=BUDGET_S)
