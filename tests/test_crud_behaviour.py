"""What each crud route does (DESIGN §3-5), plus the HTTP edge every function shares:
routing (404/405), /healthz, CORS, request ids and the shape of an unexpected error.

Kinds that have no create route yet (contracts, sessions, messages, actions) are seeded
through the repository, with the fields their own function will store.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from common.collections import ACTIONS, CONTRACTS, CUSTOMERS, MESSAGES, SESSIONS, TASKS
from common.store import Repository
from scripts.stack import FUNCTIONS, Stack
from tests.conftest import WEB_ORIGIN, Api, Caller, assert_error, raw_firestore

ALLOWED_ORIGIN = WEB_ORIGIN
FULL_CUSTOMER: dict[str, Any] = {
    "name": "Acme Corp",
    "domain": "acme.example.com",
    "industry": "Manufacturing",
    "arr": 125000.5,
    "currency": "EUR",
    "stage": "renewing",
    "health_score": 72,
    "renewal_date": "2026-03-31",
    "primary_contact": {"name": "Ada Lovelace", "email": "ada@acme.example.com", "title": "VP Ops"},
    "stakeholders": [
        {
            "name": "Grace Hopper",
            "email": "grace@acme.example.com",
            "role": "Sponsor",
            "is_champion": True,
            "is_decision_maker": False,
        }
    ],
    "tags": ["enterprise", "emea"],
    "notes": "Wants quarterly reviews.",
}
COMMON_FIELDS = {"id", "owner_id", "created_at", "updated_at", "version"}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _create_customer(crud: Api, user: Caller, **fields: Any) -> dict[str, Any]:
    response = crud.post("/customers", user, json={"name": "Globex", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _without_times(document: dict[str, Any]) -> dict[str, Any]:
    """A document minus its timestamps (see test_write_responses_carry_the_stored_timestamps)."""
    return {k: v for k, v in document.items() if k not in {"created_at", "updated_at"}}


def _exists(path: str, doc_id: str) -> bool:
    return bool(raw_firestore().collection(path).document(doc_id).get().exists)


# -- profile ---------------------------------------------------------------------------


def test_profile_is_created_on_first_call_with_defaults(crud: Api, alice: Caller) -> None:
    response = crud.get("/profile", alice)

    assert response.status_code == 200, response.text
    profile = response.json()
    assert profile["id"] == alice.uid
    assert profile["owner_id"] == alice.uid
    assert profile["email"] == alice.email
    assert profile["timezone"] == "UTC"
    assert profile["signature"] == ""
    assert profile["preferences"] == {"default_provider": "claude", "auto_approve": []}
    assert profile["version"] == 1
    assert response.headers["ETag"] == '"1"'
    assert _exists("profiles", alice.uid)
    again = crud.get("/profile", alice)
    assert _without_times(again.json()) == _without_times(profile)


def test_profile_is_created_by_the_first_call_to_any_route(crud: Api, alice: Caller) -> None:
    assert not _exists("profiles", alice.uid)

    crud.get("/customers", alice)

    stored = raw_firestore().collection("profiles").document(alice.uid).get().to_dict()
    assert stored is not None
    assert stored["email"] == alice.email
    assert stored["owner_id"] == alice.uid


def test_profile_patch_changes_timezone_and_signature(crud: Api, alice: Caller) -> None:
    before = crud.get("/profile", alice).json()

    response = crud.patch("/profile", alice, json={"timezone": "Europe/Paris", "signature": "Best, Alice"})

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["timezone"] == "Europe/Paris"
    assert patched["signature"] == "Best, Alice"
    assert patched["email"] == alice.email
    assert patched["preferences"] == before["preferences"]
    assert patched["version"] == before["version"] + 1
    assert response.headers["ETag"] == f'"{patched["version"]}"'
    assert _without_times(crud.get("/profile", alice).json()) == _without_times(patched)


def test_profile_patch_before_any_get_creates_then_patches(crud: Api, alice: Caller) -> None:
    response = crud.patch("/profile", alice, json={"timezone": "Asia/Tokyo"})

    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == "Asia/Tokyo"
    assert response.json()["email"] == alice.email


def test_profile_preferences_are_merged_not_replaced(crud: Api, alice: Caller) -> None:
    first = crud.patch("/profile", alice, json={"preferences": {"auto_approve": ["task.create"]}})
    assert first.status_code == 200, first.text

    response = crud.patch("/profile", alice, json={"preferences": {"default_provider": "gemini"}})

    assert response.status_code == 200, response.text
    assert response.json()["preferences"] == {"default_provider": "gemini", "auto_approve": ["task.create"]}
    assert crud.get("/profile", alice).json()["preferences"] == response.json()["preferences"]


# -- customers -------------------------------------------------------------------------


def test_customer_create_returns_201_with_etag_and_every_field(crud: Api, alice: Caller) -> None:
    response = crud.post("/customers", alice, json=FULL_CUSTOMER)

    assert response.status_code == 201, response.text
    customer = response.json()
    assert response.headers["ETag"] == '"1"'
    assert {k: customer[k] for k in FULL_CUSTOMER} == FULL_CUSTOMER
    assert set(customer) == set(FULL_CUSTOMER) | COMMON_FIELDS
    assert customer["owner_id"] == alice.uid
    assert customer["version"] == 1
    assert customer["created_at"] == customer["updated_at"]
    assert abs(_time(customer["created_at"]).timestamp() - time.time()) < 60


def test_customer_get_returns_what_was_created(crud: Api, alice: Caller) -> None:
    created = crud.post("/customers", alice, json=FULL_CUSTOMER).json()

    response = crud.get(f"/customers/{created['id']}", alice)

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    assert _without_times(response.json()) == _without_times(created)


def test_customer_defaults_currency_usd_and_stage_onboarding(crud: Api, alice: Caller) -> None:
    customer = _create_customer(crud, alice, name="Initech")

    assert customer["currency"] == "USD"
    assert customer["stage"] == "onboarding"
    assert customer["tags"] == []
    assert customer["stakeholders"] == []
    assert customer["arr"] is None
    assert _without_times(crud.get(f"/customers/{customer['id']}", alice).json()) == _without_times(customer)


def test_customer_patch_changes_only_the_fields_sent(crud: Api, alice: Caller) -> None:
    created = crud.get(f"/customers/{crud.post('/customers', alice, json=FULL_CUSTOMER).json()['id']}", alice).json()
    time.sleep(0.01)  # so that a moved updated_at is visible

    response = crud.patch(f"/customers/{created['id']}", alice, json={"stage": "at_risk", "health_score": 35})

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["stage"] == "at_risk"
    assert patched["health_score"] == 35
    unchanged = set(FULL_CUSTOMER) - {"stage", "health_score"}
    assert {k: patched[k] for k in unchanged} == {k: created[k] for k in unchanged}
    assert patched["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert patched["created_at"] == created["created_at"]
    assert _time(patched["updated_at"]) > _time(created["updated_at"])
    after = crud.get(f"/customers/{created['id']}", alice).json()
    assert _without_times(after) == _without_times(patched)
    assert _time(after["updated_at"]) > _time(created["updated_at"])


def test_customer_patch_null_clears_an_optional_field(crud: Api, alice: Caller) -> None:
    created = crud.post("/customers", alice, json=FULL_CUSTOMER).json()

    response = crud.patch(f"/customers/{created['id']}", alice, json={"notes": None, "renewal_date": None})

    assert response.status_code == 200, response.text
    assert response.json()["notes"] is None
    assert response.json()["renewal_date"] is None
    assert response.json()["name"] == FULL_CUSTOMER["name"]


def test_renamed_customer_is_found_by_its_new_name(crud: Api, alice: Caller) -> None:
    customer = _create_customer(crud, alice, name="Old Name")

    crud.patch(f"/customers/{customer['id']}", alice, json={"name": "Zenith Labs"})

    found = crud.get("/customers", alice, params={"q": "zen"}).json()["items"]
    assert [c["id"] for c in found] == [customer["id"]]
    assert crud.get("/customers", alice, params={"q": "old"}).json()["items"] == []


def test_customer_delete_returns_204_then_404(crud: Api, alice: Caller) -> None:
    customer = _create_customer(crud, alice)

    response = crud.delete(f"/customers/{customer['id']}", alice)

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_error(crud.get(f"/customers/{customer['id']}", alice), 404, "NOT_FOUND")
    assert_error(crud.delete(f"/customers/{customer['id']}", alice), 404, "NOT_FOUND")
    assert not _exists("customers", customer["id"])


def test_write_responses_carry_the_stored_timestamps(crud: Api, alice: Caller) -> None:
    first_profile = crud.get("/profile", alice).json()
    created = crud.post("/customers", alice, json={"name": "Acme"}).json()
    patched = crud.patch(f"/customers/{created['id']}", alice, json={"name": "Acme Inc"}).json()
    task = crud.post("/tasks", alice, json={"title": "Call"}).json()

    stored_customer = crud.get(f"/customers/{created['id']}", alice).json()
    assert crud.get("/profile", alice).json()["created_at"] == first_profile["created_at"]
    assert created["created_at"] == stored_customer["created_at"]
    assert patched["created_at"] == stored_customer["created_at"]
    assert patched["updated_at"] == stored_customer["updated_at"]
    assert crud.get(f"/tasks/{task['id']}", alice).json()["created_at"] == task["created_at"]


# -- customer delete and what references it --------------------------------------------


def _seed_contract(repo: Repository, customer_id: str, title: str = "Master agreement") -> dict[str, Any]:
    return repo.create(
        CONTRACTS,
        {
            "customer_id": customer_id,
            "title": title,
            "file_name": "msa.pdf",
            "content_type": "application/pdf",
            "size_bytes": 1234,
            "sha256": "0" * 64,
            "storage_path": f"contracts/{repo.uid}/x/msa.pdf",
            "status": "parsed",
        },
    )


def _seed_task(repo: Repository, customer_id: str) -> dict[str, Any]:
    return repo.create(
        TASKS,
        {
            "title": "Call",
            "customer_id": customer_id,
            "due_date": None,
            "priority": "medium",
            "status": "open",
            "source": "manual",
            "notes": None,
            "due_key": "9999-12-31",
        },
    )


def _seed_action(repo: Repository, customer_id: str, status: str = "pending") -> dict[str, Any]:
    return repo.create(
        ACTIONS,
        {
            "type": "task.create",
            "status": status,
            "customer_id": customer_id,
            "payload": {"title": "Follow up", "customer_id": customer_id},
            "summary": "Create a follow-up task",
            "risk": "low",
        },
    )


REFERENCES = {"contracts": _seed_contract, "tasks": _seed_task, "actions": _seed_action}


@pytest.mark.parametrize("kind", ["contracts", "tasks", "actions"])
def test_customer_delete_is_refused_while_something_references_it(
    crud: Api, alice: Caller, repo_for: type[Repository], kind: str
) -> None:
    customer = _create_customer(crud, alice)
    reference = REFERENCES[kind](repo_for(alice.uid), customer["id"])

    response = crud.delete(f"/customers/{customer['id']}", alice)

    error = assert_error(response, 409, "ABORTED")
    assert [d["field"] for d in error["details"]] == [kind]
    assert kind in error["message"]
    assert crud.get(f"/customers/{customer['id']}", alice).status_code == 200
    assert _exists(kind, reference["id"])


def test_customer_delete_refusal_names_every_kind_of_reference(
    crud: Api, alice: Caller, repo_for: type[Repository]
) -> None:
    customer = _create_customer(crud, alice)
    for seed in REFERENCES.values():
        seed(repo_for(alice.uid), customer["id"])

    error = assert_error(crud.delete(f"/customers/{customer['id']}", alice), 409, "ABORTED")

    assert sorted(d["field"] for d in error["details"]) == ["actions", "contracts", "tasks"]


def test_cascade_deletes_contracts_tasks_and_pending_actions_then_the_customer(
    crud: Api, alice: Caller, repo_for: type[Repository]
) -> None:
    repo = repo_for(alice.uid)
    customer = _create_customer(crud, alice)
    other = _create_customer(crud, alice, name="Other")
    contracts = [_seed_contract(repo, customer["id"], f"c{n}") for n in range(3)]
    tasks = [_seed_task(repo, customer["id"]) for _ in range(3)]
    actions = [_seed_action(repo, customer["id"]) for _ in range(2)]
    kept = {"contracts": _seed_contract(repo, other["id"]), "tasks": _seed_task(repo, other["id"])}
    kept_action = _seed_action(repo, other["id"])

    response = crud.delete(f"/customers/{customer['id']}", alice, params={"cascade": "true"})

    assert response.status_code == 204, response.text
    assert_error(crud.get(f"/customers/{customer['id']}", alice), 404, "NOT_FOUND")
    for contract in contracts:
        assert_error(crud.get(f"/contracts/{contract['id']}", alice), 404, "NOT_FOUND")
    for task in tasks:
        assert_error(crud.get(f"/tasks/{task['id']}", alice), 404, "NOT_FOUND")
    assert not any(_exists("actions", a["id"]) for a in actions)
    for kind, document in kept.items():
        assert crud.get(f"/{kind}/{document['id']}", alice).status_code == 200
    assert _exists("actions", kept_action["id"])
    assert crud.get(f"/customers/{other['id']}", alice).status_code == 200


@pytest.mark.parametrize("status", ["approved", "executing"])
@pytest.mark.parametrize("cascade", ["true", "false"])
def test_action_under_way_blocks_customer_delete_even_with_cascade(
    crud: Api, alice: Caller, repo_for: type[Repository], status: str, cascade: str
) -> None:
    repo = repo_for(alice.uid)
    customer = _create_customer(crud, alice)
    contract = _seed_contract(repo, customer["id"])
    task = _seed_task(repo, customer["id"])
    pending = _seed_action(repo, customer["id"])
    under_way = _seed_action(repo, customer["id"], status)

    response = crud.delete(f"/customers/{customer['id']}", alice, params={"cascade": cascade})

    assert_error(response, 409, "ABORTED")
    assert crud.get(f"/customers/{customer['id']}", alice).status_code == 200
    assert crud.get(f"/contracts/{contract['id']}", alice).status_code == 200
    assert crud.get(f"/tasks/{task['id']}", alice).status_code == 200
    assert _exists("actions", pending["id"])
    assert _exists("actions", under_way["id"])


@pytest.mark.parametrize("status", ["executed", "rejected", "failed", "expired"])
def test_finished_actions_do_not_block_customer_delete_and_are_kept(
    crud: Api, alice: Caller, repo_for: type[Repository], status: str
) -> None:
    customer = _create_customer(crud, alice)
    finished = _seed_action(repo_for(alice.uid), customer["id"], status)

    response = crud.delete(f"/customers/{customer['id']}", alice)

    assert response.status_code == 204, response.text
    assert _exists("actions", finished["id"])  # history: deleting a customer deletes nothing else silently


@pytest.mark.parametrize("value", ["maybe", "1", "TRUE", ""])
def test_cascade_must_be_true_or_false(crud: Api, alice: Caller, repo_for: type[Repository], value: str) -> None:
    customer = _create_customer(crud, alice)
    _seed_task(repo_for(alice.uid), customer["id"])

    response = crud.delete(f"/customers/{customer['id']}", alice, params={"cascade": value})

    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert [d["field"] for d in error["details"]] == ["cascade"]
    assert crud.get(f"/customers/{customer['id']}", alice).status_code == 200


# -- tasks -----------------------------------------------------------------------------


def test_task_create_is_manual_with_defaults_and_due_date(crud: Api, alice: Caller) -> None:
    customer = _create_customer(crud, alice)

    response = crud.post(
        "/tasks", alice, json={"title": "Send QBR deck", "due_date": "2026-02-01", "customer_id": customer["id"]}
    )

    assert response.status_code == 201, response.text
    assert response.headers["ETag"] == '"1"'
    task = response.json()
    assert task["title"] == "Send QBR deck"
    assert task["due_date"] == "2026-02-01"
    assert task["customer_id"] == customer["id"]
    assert task["source"] == "manual"
    assert task["status"] == "open"
    assert task["priority"] == "medium"
    assert task["owner_id"] == alice.uid
    assert "due_key" not in task
    assert _without_times(crud.get(f"/tasks/{task['id']}", alice).json()) == _without_times(task)


@pytest.mark.parametrize("source", ["agent", "manual"])
def test_task_source_cannot_be_set_by_the_client(crud: Api, alice: Caller, source: str) -> None:
    response = crud.post("/tasks", alice, json={"title": "Sneaky", "source": source})

    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert [d["field"] for d in error["details"]] == ["source"]
    assert crud.get("/tasks", alice).json()["items"] == []


def test_task_for_an_unknown_customer_is_refused(crud: Api, alice: Caller) -> None:
    response = crud.post("/tasks", alice, json={"title": "Orphan", "customer_id": "doesNotExist123"})

    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert [d["field"] for d in error["details"]] == ["customer_id"]


def test_task_patch_marks_it_done_and_the_status_filter_follows(crud: Api, alice: Caller) -> None:
    task = crud.post("/tasks", alice, json={"title": "Renewal call"}).json()

    response = crud.patch(f"/tasks/{task['id']}", alice, json={"status": "done"})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "done"
    assert response.json()["source"] == "manual"
    assert response.json()["version"] == 2
    assert crud.get("/tasks", alice, params={"status": "open"}).json()["items"] == []
    assert [t["id"] for t in crud.get("/tasks", alice, params={"status": "done"}).json()["items"]] == [task["id"]]


def test_task_delete_returns_204_then_404(crud: Api, alice: Caller) -> None:
    task = crud.post("/tasks", alice, json={"title": "Temporary"}).json()

    assert crud.delete(f"/tasks/{task['id']}", alice).status_code == 204
    assert_error(crud.get(f"/tasks/{task['id']}", alice), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "closed"}, "status"),
        ({"due_before": "tomorrow"}, "due_before"),
        ({"customer_id": "a/b"}, "customer_id"),
    ],
)
def test_task_filters_with_bad_values_are_refused(crud: Api, alice: Caller, params: dict[str, str], field: str) -> None:
    error = assert_error(crud.get("/tasks", alice, params=params), 400, "INVALID_ARGUMENT")

    assert [d["field"] for d in error["details"]] == [field]


# -- contracts -------------------------------------------------------------------------


def test_contract_get_patch_title_and_delete(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    customer = _create_customer(crud, alice)
    contract = _seed_contract(repo_for(alice.uid), customer["id"])

    got = crud.get(f"/contracts/{contract['id']}", alice)
    assert got.status_code == 200, got.text
    assert got.headers["ETag"] == '"1"'
    assert got.json()["title"] == "Master agreement"
    assert got.json()["status"] == "parsed"

    patched = crud.patch(f"/contracts/{contract['id']}", alice, json={"title": "MSA 2026"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "MSA 2026"
    assert patched.json()["version"] == 2
    assert {k: patched.json()[k] for k in ("file_name", "status", "customer_id", "sha256")} == {
        k: got.json()[k] for k in ("file_name", "status", "customer_id", "sha256")
    }

    assert crud.delete(f"/contracts/{contract['id']}", alice).status_code == 204
    assert_error(crud.get(f"/contracts/{contract['id']}", alice), 404, "NOT_FOUND")


def test_contract_status_cannot_be_patched(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    customer = _create_customer(crud, alice)
    contract = _seed_contract(repo_for(alice.uid), customer["id"])

    error = assert_error(
        crud.patch(f"/contracts/{contract['id']}", alice, json={"status": "failed"}), 400, "INVALID_ARGUMENT"
    )

    assert [d["field"] for d in error["details"]] == ["status"]
    assert crud.get(f"/contracts/{contract['id']}", alice).json()["status"] == "parsed"


def test_contracts_list_filters_by_customer(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    repo = repo_for(alice.uid)
    first, second = _create_customer(crud, alice, name="A"), _create_customer(crud, alice, name="B")
    mine = _seed_contract(repo, first["id"])
    _seed_contract(repo, second["id"])

    items = crud.get("/contracts", alice, params={"customer_id": first["id"]}).json()["items"]

    assert [c["id"] for c in items] == [mine["id"]]
    assert len(crud.get("/contracts", alice).json()["items"]) == 2


# -- sessions --------------------------------------------------------------------------


def _seed_session(repo: Repository, status: str = "idle", messages: int = 3) -> tuple[dict[str, Any], list[str]]:
    fields: dict[str, Any] = {"title": "QBR prep", "status": status, "message_count": messages}
    if status == "streaming":  # held by a stream whose lease runs
        fields["lease"] = {"holder": "a-stream", "until": datetime.now(UTC) + timedelta(minutes=5)}
    session = repo.create(SESSIONS, fields)
    ids = [
        repo.create(
            MESSAGES,
            {"role": "user", "parts": [{"type": "text", "text": f"hello {n}"}], "status": "complete"},
            parent_id=session["id"],
        )["id"]
        for n in range(messages)
    ]
    return session, ids


def _stored_message_ids(session_id: str) -> set[str]:
    return {s.id for s in raw_firestore().collection(f"sessions/{session_id}/messages").stream()}


def test_session_get_and_patch_title(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    session, _ = _seed_session(repo_for(alice.uid))

    got = crud.get(f"/sessions/{session['id']}", alice)
    assert got.status_code == 200, got.text
    assert got.json()["title"] == "QBR prep"

    patched = crud.patch(f"/sessions/{session['id']}", alice, json={"title": "Renewal plan"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "Renewal plan"
    assert patched.json()["status"] == "idle"
    assert patched.json()["message_count"] == 3
    assert patched.headers["ETag"] == '"2"'


def test_session_status_cannot_be_patched(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    session, _ = _seed_session(repo_for(alice.uid))

    assert_error(crud.patch(f"/sessions/{session['id']}", alice, json={"status": "streaming"}), 400, "INVALID_ARGUMENT")
    assert crud.get(f"/sessions/{session['id']}", alice).json()["status"] == "idle"


def test_session_delete_deletes_its_messages_too(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    repo = repo_for(alice.uid)
    session, message_ids = _seed_session(repo, messages=5)
    other, other_ids = _seed_session(repo, messages=2)
    assert _stored_message_ids(session["id"]) == set(message_ids)

    response = crud.delete(f"/sessions/{session['id']}", alice)

    assert response.status_code == 204, response.text
    assert _stored_message_ids(session["id"]) == set()
    assert not _exists("sessions", session["id"])
    assert_error(crud.get(f"/sessions/{session['id']}", alice), 404, "NOT_FOUND")
    assert_error(crud.get(f"/sessions/{session['id']}/messages", alice), 404, "NOT_FOUND")
    assert _stored_message_ids(other["id"]) == set(other_ids)


def test_streaming_session_cannot_be_deleted(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    session, message_ids = _seed_session(repo_for(alice.uid), status="streaming")

    assert_error(crud.delete(f"/sessions/{session['id']}", alice), 409, "ABORTED")

    assert _exists("sessions", session["id"])
    assert _stored_message_ids(session["id"]) == set(message_ids)


# -- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/customers/abc/nope", "/customers/has%20space", "/", "/profile/x"])
@pytest.mark.parametrize("signed_in", [True, False])
def test_unknown_route_is_404_with_the_error_shape(crud: Api, alice: Caller, path: str, signed_in: bool) -> None:
    response = crud.get(path, alice if signed_in else None)

    assert_error(response, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/customers", "GET, POST"),
        ("DELETE", "/customers", "GET, POST"),
        ("POST", "/customers/abc123", "DELETE, GET, PATCH"),
        ("PUT", "/profile", "GET, PATCH"),
        ("POST", "/sessions/abc123/messages", "GET"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_wrong_method_on_a_known_route_is_405_with_allow(
    crud: Api, alice: Caller, method: str, path: str, allow: str
) -> None:
    response = crud.call(method, path, alice, json={})

    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == allow


@pytest.mark.parametrize("function", [f.entry_point for f in FUNCTIONS])
def test_every_function_answers_healthz_without_auth(stack: Stack, function: str) -> None:
    for headers in ({}, {"Authorization": "Bearer garbage"}):
        response = requests.get(f"{stack.url(function)}/healthz", headers=headers, timeout=10)

        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json() == {"status": "ok"}


# -- CORS ------------------------------------------------------------------------------


def test_preflight_from_an_allowed_origin_is_answered_without_auth(crud: Api) -> None:
    response = crud.call(
        "OPTIONS",
        "/customers/abc123",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
    )

    assert response.status_code == 204, response.text
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PATCH", "DELETE"} <= methods
    allowed_headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "if-match"} <= allowed_headers
    assert "Origin" in response.headers["Vary"]


def test_preflight_from_another_origin_gets_no_allow_origin(crud: Api) -> None:
    response = crud.call(
        "OPTIONS",
        "/customers",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers


def test_responses_to_an_allowed_origin_expose_etag_request_id_and_retry_after(crud: Api, alice: Caller) -> None:
    ok = crud.post("/customers", alice, json={"name": "Acme"}, headers={"Origin": ALLOWED_ORIGIN})
    refused = crud.get("/customers", headers={"Origin": ALLOWED_ORIGIN})
    foreign = crud.get("/customers", alice, headers={"Origin": "https://evil.example.com"})

    for response in (ok, refused):
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
        exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"etag", "x-request-id", "retry-after"} <= exposed  # a page reads when to try again (§4)
    assert refused.status_code == 401
    assert foreign.status_code == 200
    assert "Access-Control-Allow-Origin" not in foreign.headers


# -- request ids and unexpected errors -------------------------------------------------


def test_every_response_has_a_request_id(stack: Stack, crud: Api, alice: Caller) -> None:
    customer = _create_customer(crud, alice)
    responses = [
        crud.get("/customers", alice),
        crud.get(f"/customers/{customer['id']}", alice),
        crud.post("/customers", alice, json={"name": "Beta"}),
        crud.delete(f"/customers/{customer['id']}", alice),
        crud.post("/customers", alice, json={"name": ""}),
        crud.get("/customers"),
        crud.get("/customers/missing1", alice),
        crud.call("PUT", "/customers", alice),
        crud.call("OPTIONS", "/customers", headers={"Origin": ALLOWED_ORIGIN}),
        *[requests.get(f"{stack.url(name)}/healthz", timeout=10) for name in (f.entry_point for f in FUNCTIONS)],
    ]

    assert sorted({r.status_code for r in responses}) == [200, 201, 204, 400, 401, 404, 405]
    ids = [r.headers.get("X-Request-Id") for r in responses]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)


def test_unexpected_error_is_500_internal_without_internals(
    crud: Api, alice: Caller, repo_for: type[Repository]
) -> None:
    # A stored value the API never writes (bytes) cannot be put in a list cursor: the
    # repository raises TypeError, which must reach the client as a bare INTERNAL.
    repo = repo_for(alice.uid)
    repo.create(CUSTOMERS, {"name": "Corrupt", "name_lower": "corrupt", "arr": b"\x00\x01"})
    repo.create(CUSTOMERS, {"name": "Fine", "name_lower": "fine", "arr": 5})

    response = crud.get("/customers", alice, params={"order": "-arr", "limit": "1"})

    error = assert_error(response, 500, "INTERNAL")
    assert error == {"status": "INTERNAL", "message": "Internal error."}
    assert "TypeError" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["X-Request-Id"]


def test_error_while_writing_the_response_is_500_internal(crud: Api, alice: Caller, repo_for: type[Repository]) -> None:
    corrupt = repo_for(alice.uid).create(CUSTOMERS, {"name": "Corrupt", "name_lower": "corrupt", "arr": b"\x00"})

    response = crud.get(f"/customers/{corrupt['id']}", alice)

    assert_error(response, 500, "INTERNAL")
    assert response.headers.get("X-Request-Id")
