"""Tenant isolation (DESIGN §2): another user's object is indistinguishable from a missing one.

Alice owns one object of every kind; Bob calls every crud route that takes an id on Alice's
ids and gets exactly what a missing id gets (404 NOT_FOUND, none of Alice's data), while
Alice's objects stay as they were. Bob's lists never show Alice's objects, whatever filter,
order or page size he uses, and Bob cannot point his own objects at Alice's customer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.collections import CONTRACTS, MESSAGES, SESSIONS
from common.google import grants
from tests.conftest import Api, Caller, assert_error, raw_firestore, seed_action
from tests.routes import ServedRoute, user_routes

MISSING_ID = "doesNotExist00000000"

# Bodies that would succeed, so that only ownership decides the answer; a body-taking route
# with an id needs one here, and every id it names must be one of Alice's (`alice_world`).
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/sessions/{session_id}/stop"): None,
    ("POST", "/contracts/{contract_id}/reparse"): None,
    ("POST", "/actions/{action_id}/approve"): {},
    ("POST", "/actions/{action_id}/reject"): {"reason": "Bob says no"},
    ("PATCH", "/customers/{customer_id}"): {"name": "Taken over by Bob"},
    ("PATCH", "/contracts/{contract_id}"): {"title": "Taken over by Bob"},
    ("PATCH", "/tasks/{task_id}"): {"title": "Taken over by Bob"},
    ("PATCH", "/sessions/{session_id}"): {"title": "Taken over by Bob"},
}
ALICE_PARAMETERS = frozenset({"customer_id", "contract_id", "task_id", "session_id", "action_id"})
# Routes that answer a missing id with something else than 404, and so another user's id too:
# resuming a session's stream says "nothing in flight" (204) for a session the caller does not
# have, as `useChat({resume: true})` asks for a new chat's id before its first message.
NOT_FOUND_AS: dict[tuple[str, str], int] = {("GET", "/chat/{session_id}/stream"): 204}


def routes_with_an_id() -> list[ServedRoute]:
    """Every route of every function that names an object by id, from the routers."""
    return [route for route in user_routes() if route.parameters]


def coverage_gaps(routes: list[ServedRoute]) -> list[str]:
    gaps = []
    for route in routes:
        if route.method in {"POST", "PATCH"} and (route.method, route.pattern) not in BODIES:
            gaps.append(f"{route}: add a body that would succeed to BODIES")
        missing = [name for name in route.parameters if name not in ALICE_PARAMETERS]
        if missing:
            gaps.append(f"{route}: Alice owns no object for {', '.join(missing)}; extend alice_world")
    return gaps


ROUTES_WITH_AN_ID = routes_with_an_id()

# Every filter and order each list route supports; each query also runs with limit=2 so that
# Bob's three objects span two pages. `{bob_customer}` is Bob's customer's id.
LIST_QUERIES: dict[str, list[dict[str, str]]] = {
    "/customers": [
        {},
        {"order": "name"},
        {"order": "-arr"},
        {"order": "renewal_date"},
        {"order": "-updated_at"},
        {"stage": "renewing"},
        {"stage": "renewing", "order": "-arr"},
        {"stage": "renewing", "order": "renewal_date"},
        {"stage": "renewing", "order": "-updated_at"},
        {"q": "shared"},
        {"q": "Shared", "order": "name"},
        {"q": "shared", "stage": "renewing"},
    ],
    "/contracts": [{}, {"customer_id": "{bob_customer}"}],
    "/tasks": [
        {},
        {"status": "open"},
        {"due_before": "2027-01-01"},
        {"customer_id": "{bob_customer}"},
        {"status": "open", "customer_id": "{bob_customer}", "due_before": "2027-01-01"},
    ],
    "/sessions": [{}, {"customer_id": "{bob_customer}"}],
}


# -- seeding ---------------------------------------------------------------------------


def _create(crud: Api, user: Caller, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = crud.post(path, user, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _seed_contract(repo_for: Any, user: Caller, customer_id: str, title: str) -> dict[str, Any]:
    contract: dict[str, Any] = repo_for(user.uid).create(
        CONTRACTS,
        {
            "customer_id": customer_id,
            "title": title,
            "file_name": f"{title}.pdf",
            "content_type": "application/pdf",
            "size_bytes": 12345,
            "sha256": uuid.uuid4().hex * 2,
            "storage_path": f"contracts/{user.uid}/{uuid.uuid4().hex}.pdf",
            "status": "parsed",
            "extracted": {"summary": f"{title} renews yearly", "total_value": 120000},
            "parse_error": None,
            "parsed_at": None,
            "model": "claude-test",
        },
    )
    return contract


def _seed_session(repo_for: Any, user: Caller, customer_id: str, title: str) -> dict[str, Any]:
    session: dict[str, Any] = repo_for(user.uid).create(
        SESSIONS,
        {
            "title": title,
            "customer_id": customer_id,
            "provider": "claude",
            "model": "claude-test",
            "message_count": 2,
            "last_message_at": None,
            "status": "idle",
            "stop_requested_at": None,
        },
    )
    return session


def _seed_message(repo_for: Any, user: Caller, session_id: str, role: str, text: str) -> dict[str, Any]:
    message: dict[str, Any] = repo_for(user.uid).create(
        MESSAGES,
        {
            "role": role,
            "parts": [{"type": "text", "text": text}],
            "status": "complete",
            "usage": {"input_tokens": 10, "output_tokens": 20},
            "error": None,
        },
        parent_id=session_id,
    )
    return message


@dataclass
class AliceWorld:
    """One object of every kind owned by Alice, and every string that would betray them."""

    ids: dict[str, str]  # path parameter name → Alice's id
    secrets: list[str] = field(default_factory=list)


@pytest.fixture
def alice_world(crud: Api, alice: Caller, repo_for: Any) -> AliceWorld:
    tag = uuid.uuid4().hex[:10]
    customer = _create(
        crud,
        alice,
        "/customers",
        {
            "name": f"Alicecorp {tag}",
            "domain": f"alicecorp-{tag}.com",
            "arr": 987654,
            "primary_contact": {"name": f"Carol {tag}", "email": f"carol-{tag}@alicecorp.com"},
            "notes": f"alice private notes {tag}",
        },
    )
    task = _create(crud, alice, "/tasks", {"title": f"Alice task {tag}", "customer_id": customer["id"]})
    contract = _seed_contract(repo_for, alice, customer["id"], f"Alice MSA {tag}")
    session = _seed_session(repo_for, alice, customer["id"], f"Alice chat {tag}")
    first = _seed_message(repo_for, alice, session["id"], "user", f"alice asks {tag}")
    second = _seed_message(repo_for, alice, session["id"], "assistant", f"alice hears {tag}")
    action = seed_action(alice.uid, customer_id=customer["id"], summary=f"Alice's action {tag}")
    ids = {
        "customer_id": customer["id"],
        "contract_id": contract["id"],
        "task_id": task["id"],
        "session_id": session["id"],
        "action_id": action["id"],
    }
    return AliceWorld(
        ids=ids,
        secrets=[
            *ids.values(),
            first["id"],
            second["id"],
            tag,  # in every name, title, note, email and message of Alice's
            alice.uid,
            alice.email,
        ],
    )


def _alice_snapshot(crud: Api, alice: Caller, world: AliceWorld) -> dict[str, Any]:
    """Everything Alice can read of her objects (versions and timestamps included)."""
    snapshot: dict[str, Any] = {}
    for kind, param in [
        ("customers", "customer_id"),
        ("contracts", "contract_id"),
        ("tasks", "task_id"),
        ("sessions", "session_id"),
    ]:
        response = crud.get(f"/{kind}/{world.ids[param]}", alice)
        assert response.status_code == 200, response.text
        snapshot[kind] = response.json()
    messages = crud.get(f"/sessions/{world.ids['session_id']}/messages", alice)
    assert messages.status_code == 200, messages.text
    snapshot["messages"] = messages.json()
    assert len(snapshot["messages"]["items"]) == 2
    snapshot["action"] = raw_firestore().collection("actions").document(world.ids["action_id"]).get().to_dict()
    return snapshot


def _assert_reveals_nothing(response: Any, secrets: list[str]) -> None:
    leaked = [secret for secret in secrets if secret in response.text]
    assert not leaked, f"{response.request.method} {response.request.url} leaked {leaked}: {response.text}"
    assert "ETag" not in response.headers


# -- the matrix ------------------------------------------------------------------------


def test_the_matrix_covers_every_route_with_an_id() -> None:
    assert coverage_gaps(ROUTES_WITH_AN_ID) == []
    assert {(r.method, r.pattern) for r in ROUTES_WITH_AN_ID if r.function == "crud"} >= {
        ("GET", "/customers/{customer_id}"),
        ("DELETE", "/sessions/{session_id}"),
        ("GET", "/sessions/{session_id}/messages"),
    }


@pytest.mark.parametrize("route", ROUTES_WITH_AN_ID, ids=str)
def test_other_user_gets_404_and_nothing_of_the_object(
    apis: dict[str, Api], alice: Caller, bob: Caller, alice_world: AliceWorld, route: ServedRoute
) -> None:
    crud = apis["crud"]
    method, pattern = route.method, route.pattern
    api = apis[route.function]
    body = BODIES.get((method, pattern))
    path = pattern.format(**alice_world.ids)
    missing_path = pattern.format(**dict.fromkeys(alice_world.ids, MISSING_ID))
    before = _alice_snapshot(crud, alice, alice_world)

    attempts = [api.call(method, path, bob, json=body)]
    if method in {"PATCH", "DELETE"}:
        # Alice's current version: a version check made before the ownership check would answer 412 or succeed.
        attempts.append(api.call(method, path, bob, json=body, headers={"If-Match": '"1"'}))
    if pattern == "/customers/{customer_id}" and method == "DELETE":
        attempts.append(api.call(method, f"{path}?cascade=true", bob))
    missing = api.call(method, missing_path, bob, json=body)

    if (method, pattern) in NOT_FOUND_AS:
        assert missing.status_code == NOT_FOUND_AS[method, pattern], missing.text
        assert missing.content == b""
    else:
        assert_error(missing, 404, "NOT_FOUND")
    for response in attempts:
        assert response.status_code == missing.status_code, response.text
        assert response.content == missing.content  # indistinguishable from an id that does not exist
        _assert_reveals_nothing(response, alice_world.secrets)
    assert _alice_snapshot(crud, alice, alice_world) == before


def test_other_users_cascade_delete_leaves_everything_referencing_the_customer(
    crud: Api, alice: Caller, bob: Caller, alice_world: AliceWorld
) -> None:
    customer_id = alice_world.ids["customer_id"]
    assert_error(crud.delete(f"/customers/{customer_id}?cascade=true", bob), 404, "NOT_FOUND")
    for kind in ("contracts", "tasks"):
        listed = crud.get(f"/{kind}?customer_id={customer_id}", alice)
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["items"]) == 1, kind


# -- lists -----------------------------------------------------------------------------


@dataclass
class Tenants:
    """Three objects of every listable kind for each of Alice and Bob, alike in every filtered field."""

    alice_ids: dict[str, set[str]]  # list path → ids
    bob_ids: dict[str, set[str]]
    alice_customer: str
    bob_customer: str


def _seed_tenant(crud: Api, repo_for: Any, user: Caller, who: str) -> tuple[dict[str, set[str]], str]:
    customers = [
        _create(
            crud,
            user,
            "/customers",
            {
                "name": f"Shared {who} {i}",
                "stage": "renewing",
                "arr": 1000 * i,
                "renewal_date": f"2026-0{i}-01",
            },
        )
        for i in (1, 2, 3)
    ]
    anchor = customers[0]["id"]
    tasks = [
        _create(crud, user, "/tasks", {"title": f"{who} task {i}", "customer_id": anchor, "due_date": f"2026-0{i}-15"})
        for i in (1, 2, 3)
    ]
    contracts = [_seed_contract(repo_for, user, anchor, f"{who} contract {i}") for i in (1, 2, 3)]
    sessions = [_seed_session(repo_for, user, anchor, f"{who} session {i}") for i in (1, 2, 3)]
    ids = {
        "/customers": {c["id"] for c in customers},
        "/tasks": {t["id"] for t in tasks},
        "/contracts": {c["id"] for c in contracts},
        "/sessions": {s["id"] for s in sessions},
    }
    return ids, anchor


@pytest.fixture
def tenants(crud: Api, repo_for: Any, alice: Caller, bob: Caller) -> Tenants:
    alice_ids, alice_customer = _seed_tenant(crud, repo_for, alice, "Alice")
    bob_ids, bob_customer = _seed_tenant(crud, repo_for, bob, "Bob")
    return Tenants(alice_ids, bob_ids, alice_customer, bob_customer)


def _pages(crud: Api, user: Caller, path: str, query: dict[str, str]) -> list[list[dict[str, Any]]]:
    """Every page of a list, following next_cursor."""
    pages: list[list[dict[str, Any]]] = []
    params: dict[str, str] = dict(query)
    while True:
        response = crud.get(path, user, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        if body["next_cursor"] is None:
            return pages
        assert len(pages) < 10, "the list does not end"
        params = {**query, "cursor": body["next_cursor"]}


@pytest.mark.parametrize("path", list(LIST_QUERIES))
def test_other_users_objects_never_appear_in_a_list(
    crud: Api, bob: Caller, tenants: Tenants, subtests: pytest.Subtests, path: str
) -> None:
    for template in LIST_QUERIES[path]:
        for limit in (None, "2"):
            query = {key: value.format(bob_customer=tenants.bob_customer) for key, value in template.items()}
            if limit:
                query["limit"] = limit
            with subtests.test(path=path, query=query):
                pages = _pages(crud, bob, path, query)
                items = [item for page in pages for item in page]
                ids = [item["id"] for item in items]
                assert not set(ids) & tenants.alice_ids[path]
                assert {item["owner_id"] for item in items} == {bob.uid}
                assert sorted(ids) == sorted(tenants.bob_ids[path])  # each of Bob's, once
                if limit:
                    assert len(pages) == 2


@pytest.mark.parametrize("path", ["/contracts", "/tasks", "/sessions"])
def test_filtering_by_another_users_customer_lists_nothing(crud: Api, bob: Caller, tenants: Tenants, path: str) -> None:
    for query in ({"customer_id": tenants.alice_customer}, {"customer_id": tenants.alice_customer, "limit": "1"}):
        response = crud.get(path, bob, params=query)
        assert response.status_code == 200, response.text
        assert response.json() == {"items": [], "next_cursor": None}


def test_another_users_cursor_never_yields_their_objects(
    crud: Api, alice: Caller, bob: Caller, tenants: Tenants
) -> None:
    alices_first_page = crud.get("/customers", alice, params={"limit": "1"})
    assert alices_first_page.status_code == 200, alices_first_page.text
    cursor = alices_first_page.json()["next_cursor"]
    assert cursor
    response = crud.get("/customers", bob, params={"limit": "100", "cursor": cursor})
    error = assert_error(response, 400, "INVALID_ARGUMENT")  # a cursor is bound to the user it was made for
    assert error["details"] == [{"field": "cursor", "message": "not a cursor from this list"}]
    _assert_reveals_nothing(response, [*(tenants.alice_ids["/customers"]), cursor])


# -- references to another user's customer ----------------------------------------------


def _assert_no_such_customer(response: Any, secrets: list[str]) -> None:
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert [detail["field"] for detail in error["details"]] == ["customer_id"]
    _assert_reveals_nothing(response, [s for s in secrets if s not in response.request.body.decode()])


def test_other_user_cannot_create_a_task_for_anothers_customer(crud: Api, bob: Caller, alice_world: AliceWorld) -> None:
    response = crud.post("/tasks", bob, json={"title": "Sneaky", "customer_id": alice_world.ids["customer_id"]})
    _assert_no_such_customer(response, alice_world.secrets)
    assert crud.get("/tasks", bob).json()["items"] == []


@pytest.mark.parametrize("kind", ["tasks", "contracts", "sessions"])
def test_other_user_cannot_move_own_object_to_anothers_customer(
    crud: Api, repo_for: Any, bob: Caller, alice_world: AliceWorld, kind: str
) -> None:
    own_customer = _create(crud, bob, "/customers", {"name": "Bobco"})["id"]
    if kind == "tasks":
        own = _create(crud, bob, "/tasks", {"title": "Bob's task", "customer_id": own_customer})
    elif kind == "contracts":
        own = _seed_contract(repo_for, bob, own_customer, "Bob's contract")
    else:
        own = _seed_session(repo_for, bob, own_customer, "Bob's session")
    before = crud.get(f"/{kind}/{own['id']}", bob).json()

    response = crud.patch(f"/{kind}/{own['id']}", bob, json={"customer_id": alice_world.ids["customer_id"]})

    _assert_no_such_customer(response, alice_world.secrets)
    after = crud.get(f"/{kind}/{own['id']}", bob).json()
    assert after == before
    assert after["customer_id"] == own_customer


# -- profile ---------------------------------------------------------------------------


def test_profile_is_the_callers_own(crud: Api, alice: Caller, bob: Caller) -> None:
    tag = uuid.uuid4().hex[:10]
    patched = crud.patch("/profile", alice, json={"display_name": f"Alice {tag}", "signature": f"-- A {tag}"})
    assert patched.status_code == 200, patched.text
    alices = crud.get("/profile", alice).json()

    bobs = crud.get("/profile", bob)
    assert bobs.status_code == 200, bobs.text
    assert bobs.json()["id"] == bob.uid
    assert bobs.json()["owner_id"] == bob.uid
    assert bobs.json()["email"] == bob.email
    leaked = [secret for secret in (tag, alice.uid, alice.email) if secret in bobs.text]
    assert not leaked, bobs.text

    bob_patch = crud.patch("/profile", bob, json={"display_name": "Bob"})
    assert bob_patch.status_code == 200, bob_patch.text
    assert bob_patch.json()["id"] == bob.uid
    assert crud.get("/profile", alice).json() == alices


# -- an object named in a body: a parked Google grant ------------------------------------------


def test_other_user_presenting_alices_google_grant_gets_what_a_missing_one_gets_and_ends_it(
    crud: Api, alice: Caller, bob: Caller
) -> None:
    tag = uuid.uuid4().hex[:10]
    handle = grants.park(
        alice.uid,
        grants.Granted(
            google_email=f"alice-{tag}@gmail.test",
            google_sub=f"sub-{tag}",
            scopes=["openid"],
            access_token=f"ya29.{tag}",
            refresh_token=f"1//0{tag}",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    )
    missing = crud.post("/integrations/google/complete", bob, json={"grant": handle[::-1]})

    taken = crud.post("/integrations/google/complete", bob, json={"grant": handle})

    assert_error(missing, 404, "NOT_FOUND")
    assert_error(taken, 404, "NOT_FOUND")
    assert taken.json() == missing.json()
    _assert_reveals_nothing(taken, [tag, alice.uid, alice.email])
    assert crud.get("/integrations/google", bob).json()["status"] == "disconnected"
    # Presented by someone else, Alice's grant is ended: only who asked may complete, and only
    # before anyone else tried.
    assert_error(crud.post("/integrations/google/complete", alice, json={"grant": handle}), 404, "NOT_FOUND")
    assert crud.get("/integrations/google", alice).json()["status"] == "disconnected"


# -- model usage -------------------------------------------------------------------------


def test_usage_is_the_callers_own(chat: Any, crud: Api, models: Any, alice: Caller, bob: Caller) -> None:
    models.script({"steps": [{"text": "Hello."}], "usage": {"input_tokens": 120, "output_tokens": 5}})
    assert chat.send(alice, message="Hello").done

    assert crud.get("/usage", alice).json()["tokens_used"] == 125
    bobs = crud.get("/usage", bob)
    assert bobs.status_code == 200, bobs.text
    assert bobs.json()["tokens_used"] == 0
