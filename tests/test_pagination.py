"""Cursor pagination (DESIGN §4): every item exactly once and in order at every page size,
also while items are inserted between pages; cursors that this list did not hand out are 400.

Large data sets are seeded through the repository (the same fields the API stores) so that
seeding stays fast; the lists are read through the API. The expected order is computed from
the stored documents themselves: the order's fields, then the document id as tie-breaker.
"""

from __future__ import annotations

import base64
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest

from common import models, resources
from common.collections import MESSAGES, SESSIONS
from common.store import Repository
from common.validation import parse_json
from scripts.stack import Stack
from tests.conftest import Api, Caller, assert_error, raw_firestore

CUSTOMER_COUNT = 250
SAMPLED_LIMITS = (1, 7, 25, 100)
# Stems with case variants, shared prefixes and non-ASCII letters, so that names tie and
# prefix searches match a real subset.
NAME_STEMS = ("Acme", "ACME", "acme", "Acorn", "Beta", "beta", "Émile", "Ölkraft", "Zeta", "Zest")
ARR_VALUES = (0, 1000, 2500.5, 10_000, 99_999.99, 250_000)
RENEWAL_DATES = ("2025-01-31", "2025-06-30", "2025-12-31", "2026-03-15", "2027-01-01")
STAGES = ("onboarding", "adopting", "renewing", "at_risk", "churned")

Item = dict[str, Any]
SortKey = tuple[Any, str]


# -- seeding ---------------------------------------------------------------------------


def _customer_body(rng: random.Random) -> dict[str, Any]:
    return {
        "name": f"{rng.choice(NAME_STEMS)} {rng.randint(0, 30)}",
        "arr": rng.choice(ARR_VALUES),
        "renewal_date": rng.choice(RENEWAL_DATES),
        "stage": rng.choice(STAGES),
    }


def _item(stored: models.Stored) -> Item:
    """A stored object as the API answers it."""
    return stored.model_dump(mode="json", exclude_unset=True)


def _seed_customers(repo: Repository, bodies: list[dict[str, Any]]) -> list[Item]:
    """Store customers exactly as POST /customers does, several at a time."""

    def create(body: dict[str, Any]) -> Item:
        return _item(resources.create_customer(repo, parse_json(models.CustomerCreate, json.dumps(body).encode())))

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(create, bodies))


def _seed_random_customers(repo: Repository, count: int = CUSTOMER_COUNT, seed: int = 7) -> list[Item]:
    rng = random.Random(seed)
    return _seed_customers(repo, [_customer_body(rng) for _ in range(count)])


def _stored(uid: str, path: str) -> list[Item]:
    """The tenant's documents as Firestore holds them (ground truth, bypassing the API)."""
    from google.cloud.firestore import FieldFilter

    snapshots = raw_firestore().collection(path).where(filter=FieldFilter("owner_id", "==", uid)).stream()
    return [{"id": s.id, **(s.to_dict() or {})} for s in snapshots]


# -- orders ----------------------------------------------------------------------------


def _timestamp(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


# For each order: the sort value of a customer (stored or as the API shows it) and whether
# the order is descending. The API hides `name_lower`, so the name is lowered here.
CUSTOMER_ORDERS: dict[str, tuple[Callable[[Item], Any], bool]] = {
    "name": (lambda c: c["name"].lower(), False),
    "-arr": (lambda c: c["arr"], True),
    "renewal_date": (lambda c: c["renewal_date"], False),
    "-updated_at": (lambda c: _timestamp(c["updated_at"]), True),
}


def _sort_key(order: str, item: Item) -> SortKey:
    value, _ = CUSTOMER_ORDERS[order]
    return value(item), item["id"]


def _expected_ids(order: str, items: list[Item]) -> list[str]:
    _, descending = CUSTOMER_ORDERS[order]
    return [c["id"] for c in sorted(items, key=lambda c: _sort_key(order, c), reverse=descending)]


# -- walking a list --------------------------------------------------------------------


def _pages(
    api: Api, user: Caller, path: str, limit: int, params: dict[str, str] | None = None
) -> Iterator[tuple[list[Item], bool]]:
    """Each page of a list, and whether it is the last, following next_cursor until it is null."""
    cursor: str | None = None
    for _ in range(CUSTOMER_COUNT * 3):  # a runaway cursor fails the test instead of hanging it
        query = {**(params or {}), "limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        response = api.get(path, user, params=query)
        assert response.status_code == 200, (limit, response.text)
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        cursor = body["next_cursor"]
        yield body["items"], cursor is None
        if cursor is None:
            return
    pytest.fail(f"{path} at limit {limit} never reached a null next_cursor")


def _walk(api: Api, user: Caller, path: str, limit: int, params: dict[str, str] | None = None) -> list[list[Item]]:
    return [items for items, _ in _pages(api, user, path, limit, params)]


def _assert_walk_is(pages: list[list[Item]], expected_ids: list[str], limit: int) -> None:
    """The pages hold exactly the expected ids in order, in full pages but the last one."""
    ids = [item["id"] for page in pages for item in page]
    assert ids == expected_ids, f"limit {limit}"
    assert len(pages) == max(1, math.ceil(len(expected_ids) / limit)), f"limit {limit}"
    assert all(len(page) == limit for page in pages[:-1]), f"limit {limit}"


def _walk_every_limit(
    stack: Stack, user: Caller, path: str, limits: Iterable[int], params: dict[str, str]
) -> dict[int, list[list[Item]]]:
    """Walk the same list at several page sizes, a few walks at a time, each on its own connection."""

    def walk(limit: int) -> tuple[int, list[list[Item]]]:
        return limit, _walk(Api(stack.url("crud")), user, path, limit, params)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(walk, limits))


# -- customers: every item once, in order ----------------------------------------------


def test_every_limit_from_1_to_100_pages_through_each_customer_once_in_name_order(
    stack: Stack, alice: Caller, repo_for: type[Repository]
) -> None:
    _seed_random_customers(repo_for(alice.uid))
    expected = _expected_ids("name", _stored(alice.uid, "customers"))
    assert len(expected) == CUSTOMER_COUNT

    walks = _walk_every_limit(stack, alice, "/customers", range(1, 101), {})

    assert sorted(walks) == list(range(1, 101))
    for limit, pages in walks.items():
        _assert_walk_is(pages, expected, limit)


def test_default_order_is_by_name_case_insensitively(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    _seed_customers(repo_for(alice.uid), [{"name": n} for n in ("beta", "Acme", "ÖL", "acorn", "Zeta", "ACME")])

    names = [c["name"] for c in crud.get("/customers", alice).json()["items"]]

    assert [n.lower() for n in names] == ["acme", "acme", "acorn", "beta", "zeta", "öl"]


@pytest.mark.parametrize("order", ["-arr", "renewal_date", "-updated_at"])
def test_sampled_limits_page_through_each_customer_once_in_every_order(
    stack: Stack, alice: Caller, repo_for: type[Repository], order: str
) -> None:
    _seed_random_customers(repo_for(alice.uid))
    expected = _expected_ids(order, _stored(alice.uid, "customers"))

    walks = _walk_every_limit(stack, alice, "/customers", SAMPLED_LIMITS, {"order": order})

    for limit, pages in walks.items():
        _assert_walk_is(pages, expected, limit)


@pytest.mark.parametrize("order", ["name", "-updated_at"])
def test_stage_filter_pages_through_exactly_the_customers_in_that_stage(
    stack: Stack, alice: Caller, repo_for: type[Repository], order: str
) -> None:
    _seed_random_customers(repo_for(alice.uid))
    renewing = [c for c in _stored(alice.uid, "customers") if c["stage"] == "renewing"]
    assert 20 < len(renewing) < CUSTOMER_COUNT - 20  # a real subset

    walks = _walk_every_limit(stack, alice, "/customers", SAMPLED_LIMITS, {"stage": "renewing", "order": order})

    for limit, pages in walks.items():
        _assert_walk_is(pages, _expected_ids(order, renewing), limit)


@pytest.mark.parametrize("prefix", ["ACM", "Öl", "acme 1"])
def test_name_prefix_search_pages_through_exactly_the_matching_customers(
    stack: Stack, alice: Caller, repo_for: type[Repository], prefix: str
) -> None:
    _seed_random_customers(repo_for(alice.uid))
    matching = [c for c in _stored(alice.uid, "customers") if c["name"].lower().startswith(prefix.lower())]
    assert 5 < len(matching) < CUSTOMER_COUNT - 20  # a real subset

    walks = _walk_every_limit(stack, alice, "/customers", SAMPLED_LIMITS, {"q": prefix})

    for limit, pages in walks.items():
        _assert_walk_is(pages, _expected_ids("name", matching), limit)


@pytest.mark.parametrize("order", ["-arr", "renewal_date"])
def test_customers_without_the_order_field_are_still_listed_once(
    crud: Api, alice: Caller, repo_for: type[Repository], order: str
) -> None:
    rng = random.Random(3)
    bodies = [_customer_body(rng) for _ in range(30)]
    for body in bodies[::3]:
        del body["arr"], body["renewal_date"]
    created = _seed_customers(repo_for(alice.uid), bodies)

    ids = [item["id"] for page in _walk(crud, alice, "/customers", 4, {"order": order}) for item in page]

    assert sorted(ids) == sorted(c["id"] for c in created)


def test_last_page_has_a_null_next_cursor_and_an_empty_list_has_one_empty_page(
    crud: Api, alice: Caller, repo_for: type[Repository]
) -> None:
    assert crud.get("/customers", alice).json() == {"items": [], "next_cursor": None}
    _seed_random_customers(repo_for(alice.uid), count=10)

    exact = crud.get("/customers", alice, params={"limit": "10"}).json()
    shorter = crud.get("/customers", alice, params={"limit": "9"}).json()

    assert len(exact["items"]) == 10
    assert exact["next_cursor"] is None
    assert len(shorter["items"]) == 9
    assert isinstance(shorter["next_cursor"], str)
    last = crud.get("/customers", alice, params={"limit": "9", "cursor": shorter["next_cursor"]}).json()
    assert len(last["items"]) == 1
    assert last["next_cursor"] is None


# -- customers: stable while others are inserted ---------------------------------------


def _is_after(order: str, item: Item, position: SortKey) -> bool:
    _, descending = CUSTOMER_ORDERS[order]
    key = _sort_key(order, item)
    return key < position if descending else key > position


@pytest.mark.parametrize("order", ["name", "-arr", "renewal_date", "-updated_at"])
def test_inserts_between_pages_never_repeat_or_skip_a_customer(
    crud: Api, alice: Caller, repo_for: type[Repository], order: str
) -> None:
    """After each page a customer is inserted: half at random, half tied with the page's last
    item (so only the id breaks the tie at the cursor). The originals appear exactly once,
    nothing appears twice, the whole walk stays in order, and an insert appears exactly when
    it sorts after the position the walk had reached when it was inserted.
    """
    originals = {c["id"] for c in _seed_random_customers(repo_for(alice.uid))}
    rng = random.Random(11)
    seen: list[Item] = []
    inserted: list[tuple[Item, SortKey]] = []

    for page, final in _pages(crud, alice, "/customers", 7, {"order": order}):
        seen += page
        if final:  # no page follows: an insert now could not be seen
            break
        last = page[-1]
        body = _customer_body(rng)
        if len(inserted) % 2:
            body |= {"name": last["name"], "arr": last["arr"], "renewal_date": last["renewal_date"]}
        created = crud.post("/customers", alice, json=body)
        assert created.status_code == 201, created.text
        inserted.append((created.json(), _sort_key(order, last)))

    counts = Counter(item["id"] for item in seen)
    assert [i for i, n in counts.items() if n > 1] == []
    assert originals <= set(counts)
    _, descending = CUSTOMER_ORDERS[order]
    keys = [_sort_key(order, item) for item in seen]
    assert keys == sorted(keys, reverse=descending)
    for customer, position in inserted:
        assert (customer["id"] in counts) == _is_after(order, customer, position), customer
    assert any(customer["id"] in counts for customer, _ in inserted) or order == "-updated_at"


# -- forged cursors --------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _edited(cursor: str, position: int) -> str:
    """The cursor with one bit of one byte flipped."""
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[position] ^= 0x01
    return _b64(bytes(raw))


def _first_cursor(api: Api, user: Caller, path: str, params: dict[str, str] | None = None) -> str:
    response = api.get(path, user, params={**(params or {}), "limit": "1"})
    assert response.status_code == 200, response.text
    cursor = response.json()["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


@pytest.fixture
def customers_cursor(crud: Api, alice: Caller, repo_for: type[Repository]) -> str:
    """A genuine cursor of alice's customers in name order."""
    _seed_random_customers(repo_for(alice.uid), count=5)
    return _first_cursor(crud, alice, "/customers")


def _assert_bad_cursor(api: Api, user: Caller, cursor: str, params: dict[str, str] | None = None) -> None:
    response = api.get("/customers", user, params={**(params or {}), "cursor": cursor})
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert [d["field"] for d in error.get("details", [])] == ["cursor"]


def test_genuine_cursor_is_accepted(crud: Api, alice: Caller, customers_cursor: str) -> None:
    response = crud.get("/customers", alice, params={"cursor": customers_cursor})

    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 4


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        "é",
        "abc",
        _b64(b"not json at all"),
        _b64(b"[1, 2, 3]"),
        _b64(b"{}"),
        _b64(b'"a string"'),
        _b64(b'{"q": "0000000000000000", "v": ["acme"], "d": "customers/abc"}'),
    ],
    ids=["garbage", "percent", "non-ascii", "short", "not-json", "json-list", "empty-object", "json-string", "foreign"],
)
def test_garbage_cursor_is_rejected(crud: Api, alice: Caller, customers_cursor: str, cursor: str) -> None:
    _assert_bad_cursor(crud, alice, cursor)


@pytest.mark.parametrize(
    "position", [0, 11, 12, 20, -17, -1], ids=["nonce", "nonce-end", "body", "body-2", "tag", "tag-end"]
)
def test_an_edited_cursor_is_rejected(crud: Api, alice: Caller, customers_cursor: str, position: int) -> None:
    _assert_bad_cursor(crud, alice, _edited(customers_cursor, position))


def test_a_cursor_reveals_no_field_value(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    names = ["Zebra Secretcorp", "Zulu Hiddenco"]
    created = _seed_customers(repo_for(alice.uid), [{"name": n, "arr": 987654321} for n in names])
    for order in ("name", "-arr", "-updated_at"):
        cursor = _first_cursor(crud, alice, "/customers", {"order": order})
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        readable = (raw + cursor.encode()).lower()
        for secret in (b"zebra", b"secretcorp", b"zulu", b"987654321", *(c["id"].lower().encode() for c in created)):
            assert secret not in readable, (order, secret)


def test_the_same_position_gives_a_different_cursor_each_time(crud: Api, alice: Caller, customers_cursor: str) -> None:
    again = _first_cursor(crud, alice, "/customers")
    assert again != customers_cursor  # a fresh nonce: cursors cannot be compared to learn anything
    assert (
        crud.get("/customers", alice, params={"cursor": again}).json()
        == crud.get("/customers", alice, params={"cursor": customers_cursor}).json()
    )


@pytest.mark.parametrize(
    ("params", "other_params"),
    [
        ({}, {"order": "-arr"}),
        ({"order": "-updated_at"}, {"order": "renewal_date"}),
        ({"stage": "onboarding"}, {"stage": "renewing"}),
        ({"stage": "onboarding"}, {}),
        ({}, {"q": "a"}),
        ({"q": "a"}, {"q": "b"}),
    ],
    ids=["order", "order-2", "stage", "stage-dropped", "q-added", "q-changed"],
)
def test_cursor_from_another_order_or_filter_is_rejected(
    crud: Api, alice: Caller, repo_for: type[Repository], params: dict[str, str], other_params: dict[str, str]
) -> None:
    repo = repo_for(alice.uid)
    _seed_customers(repo, [{"name": f"{p}{i}", "stage": "onboarding"} for p in "ab" for i in range(3)])
    _seed_customers(repo, [{"name": f"{p}{i}", "stage": "renewing"} for p in "ab" for i in range(3)])
    cursor = _first_cursor(crud, alice, "/customers", params)

    _assert_bad_cursor(crud, alice, cursor, other_params)


def test_cursor_from_another_list_is_rejected(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    repo = repo_for(alice.uid)
    for title in ("one", "two"):
        _item(resources.create_task(repo, parse_json(models.TaskCreate, json.dumps({"title": title}).encode())))
    tasks_cursor = _first_cursor(crud, alice, "/tasks")

    _assert_bad_cursor(crud, alice, tasks_cursor)


# -- messages --------------------------------------------------------------------------


def _seed_session(repo: Repository, message_count: int) -> tuple[str, list[str]]:
    """A session and its messages, created one after another (created_at is the server's clock)."""
    session = repo.create(SESSIONS, {"title": "Renewal prep", "status": "idle", "message_count": message_count})
    ids = []
    for n in range(message_count):
        role = "user" if n % 2 == 0 else "assistant"
        message = repo.create(
            MESSAGES,
            {"role": role, "parts": [{"type": "text", "text": f"message {n}"}], "status": "complete"},
            parent_id=session["id"],
        )
        ids.append(message["id"])
        time.sleep(0.002)  # distinct creation times, so oldest-first is one definite order
    return session["id"], ids


def test_messages_are_listed_oldest_first_at_every_sampled_limit(
    crud: Api, alice: Caller, repo_for: type[Repository]
) -> None:
    repo = repo_for(alice.uid)
    session_id, created_ids = _seed_session(repo, 30)
    _seed_session(repo, 3)  # another session's messages stay out

    for limit in SAMPLED_LIMITS:
        pages = _walk(crud, alice, f"/sessions/{session_id}/messages", limit)
        _assert_walk_is(pages, created_ids, limit)
        stamps = [_timestamp(m["created_at"]) for page in pages for m in page]
        assert stamps == sorted(stamps)
    first = crud.get(f"/sessions/{session_id}/messages", alice, params={"limit": "1"}).json()["items"][0]
    assert first["parts"] == [{"type": "text", "text": "message 0"}]
    assert first["role"] == "user"


def test_message_cursor_of_one_session_is_rejected_for_another(
    crud: Api, alice: Caller, repo_for: type[Repository]
) -> None:
    repo = repo_for(alice.uid)
    first_session, _ = _seed_session(repo, 3)
    second_session, _ = _seed_session(repo, 3)
    cursor = _first_cursor(crud, alice, f"/sessions/{first_session}/messages")

    response = crud.get(f"/sessions/{second_session}/messages", alice, params={"cursor": cursor})

    assert_error(response, 400, "INVALID_ARGUMENT")
    accepted = crud.get(f"/sessions/{first_session}/messages", alice, params={"cursor": cursor})
    assert accepted.status_code == 200, accepted.text


# -- tasks -----------------------------------------------------------------------------

TASK_DUE_DATES = ("2025-03-01", "2025-03-02", "2025-04-15", "2026-01-01", None)


@pytest.fixture
def seeded_tasks(alice: Caller, repo_for: type[Repository]) -> tuple[list[Item], str, str]:
    """40 tasks over two customers (and none), both statuses, tied and missing due dates."""
    repo = repo_for(alice.uid)
    first, second = _seed_customers(repo, [{"name": "First"}, {"name": "Second"}])
    rng = random.Random(5)
    tasks = []
    for n in range(40):
        body = {
            "title": f"task {n}",
            "due_date": rng.choice(TASK_DUE_DATES),
            "status": rng.choice(["open", "done"]),
            "customer_id": rng.choice([first["id"], second["id"], None]),
        }
        tasks.append(_item(resources.create_task(repo, parse_json(models.TaskCreate, json.dumps(body).encode()))))
    return tasks, first["id"], second["id"]


def _expected_task_ids(tasks: list[Item]) -> list[str]:
    """Dated tasks by due date, then the undated ones; the id breaks ties."""
    return [t["id"] for t in sorted(tasks, key=lambda t: (t["due_date"] is None, t["due_date"] or "", t["id"]))]


def test_tasks_are_listed_by_due_date_with_undated_tasks_last(
    crud: Api, alice: Caller, seeded_tasks: tuple[list[Item], str, str]
) -> None:
    tasks, _, _ = seeded_tasks
    assert any(t["due_date"] is None for t in tasks)

    for limit in SAMPLED_LIMITS:
        pages = _walk(crud, alice, "/tasks", limit)
        _assert_walk_is(pages, _expected_task_ids(tasks), limit)
    listed = [t["due_date"] for t in _walk(crud, alice, "/tasks", 100)[0]]
    undated_from = listed.index(None)
    assert all(d is None for d in listed[undated_from:])
    assert "due_key" not in _walk(crud, alice, "/tasks", 100)[0][0]


def test_task_losing_its_due_date_moves_after_the_dated_ones(
    crud: Api, alice: Caller, repo_for: type[Repository]
) -> None:
    repo = repo_for(alice.uid)
    early = _item(
        resources.create_task(
            repo, parse_json(models.TaskCreate, json.dumps({"title": "early", "due_date": "2025-01-01"}).encode())
        )
    )
    _item(
        resources.create_task(
            repo, parse_json(models.TaskCreate, json.dumps({"title": "late", "due_date": "2030-01-01"}).encode())
        )
    )

    patched = crud.patch(f"/tasks/{early['id']}", alice, json={"due_date": None})

    assert patched.status_code == 200, patched.text
    titles = [t["title"] for t in crud.get("/tasks", alice).json()["items"]]
    assert titles == ["late", "early"]


@pytest.mark.parametrize(
    "filters",
    [
        {"status": "open"},
        {"status": "done"},
        {"customer_id": "first"},
        {"due_before": "2025-03-02"},
        {"due_before": "2026-01-01"},
        {"due_before": "2099-01-01"},
        {"status": "open", "customer_id": "second", "due_before": "2025-04-16"},
    ],
    ids=["open", "done", "customer", "due-before", "due-before-later", "due-before-all", "combined"],
)
def test_task_filters_page_through_exactly_the_matching_tasks(
    crud: Api, alice: Caller, seeded_tasks: tuple[list[Item], str, str], filters: dict[str, str]
) -> None:
    tasks, first_id, second_id = seeded_tasks
    params = dict(filters)
    if "customer_id" in params:  # the parameters name the seeded customers by role
        params["customer_id"] = {"first": first_id, "second": second_id}[params["customer_id"]]

    def matches(task: Item) -> bool:
        due_before = params.get("due_before")
        return (
            params.get("status", task["status"]) == task["status"]
            and params.get("customer_id", task["customer_id"]) == task["customer_id"]
            and (due_before is None or (task["due_date"] is not None and task["due_date"] < due_before))
        )

    expected = _expected_task_ids([t for t in tasks if matches(t)])
    assert 0 < len(expected) < len(tasks)

    for limit in (1, 7, 100):
        _assert_walk_is(_walk(crud, alice, "/tasks", limit, params), expected, limit)
