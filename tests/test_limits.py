"""What one user can make the system do and hold: requests a minute, documents per
collection, documents one request deletes (README: resource limits). Each limit is tested on
a variant of the function with the limit set low."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from google.cloud.firestore import SERVER_TIMESTAMP

from common.collections import SESSIONS
from common.models import CustomerCreate
from common.resources import customer_fields
from scripts.stack import Stack
from tests.chat_support import Chat
from tests.conftest import Api, Users, assert_error, raw_firestore
from tests.test_contracts import stored_object, upload
from tests.test_crud_behaviour import _seed_session, _stored_message_ids

# -- requests a minute -----------------------------------------------------------------------


def test_a_user_past_the_rate_is_429_with_retry_after_and_others_are_not(stack: Stack, users: Users) -> None:
    # 30 a minute: bursts of 3, then one every 2 s.
    api = Api(stack.start_variant("crud", "thirty-a-minute", {"CSCX_RATE_LIMIT_PER_MINUTE": "30"}))
    alice, bob = users.create("alice"), users.create("bob")

    answers = [api.get("/customers", alice).status_code for _ in range(3)]
    refused = api.get("/customers", alice)

    assert answers == [200, 200, 200]
    assert_error(refused, 429, "RESOURCE_EXHAUSTED")
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 2
    assert api.get("/customers", bob).status_code == 200  # the allowance is each user's own
    time.sleep(wait)
    assert api.get("/customers", alice).status_code == 200


def test_refused_requests_write_nothing(stack: Stack, users: Users, crud: Api) -> None:
    api = Api(stack.start_variant("crud", "thirty-a-minute-writes", {"CSCX_RATE_LIMIT_PER_MINUTE": "30"}))
    alice = users.create("alice")

    statuses = [api.post("/customers", alice, json={"name": f"Acme {n}"}).status_code for n in range(5)]

    assert statuses[:3] == [201, 201, 201]
    assert 429 in statuses[3:]
    created = statuses.count(201)
    assert len(crud.get("/customers", alice).json()["items"]) == created


# -- documents per collection ----------------------------------------------------------------


def test_customers_and_tasks_past_the_cap_are_429_and_deleting_makes_room(
    stack: Stack, users: Users, crud: Api
) -> None:
    api = Api(stack.start_variant("crud", "two-documents", {"CSCX_MAX_DOCUMENTS": "2"}))
    alice, bob = users.create("alice"), users.create("bob")
    first, _ = (api.post("/customers", alice, json={"name": name}).json() for name in ("Acme", "Globex"))
    for title in ("Call", "Write"):
        assert api.post("/tasks", alice, json={"title": title}).status_code == 201

    error = assert_error(api.post("/customers", alice, json={"name": "Initech"}), 429, "RESOURCE_EXHAUSTED")
    assert "2 customers" in error["message"]
    assert_error(api.post("/tasks", alice, json={"title": "Plan"}), 429, "RESOURCE_EXHAUSTED")
    assert [c["name"] for c in crud.get("/customers", alice).json()["items"]] == ["Acme", "Globex"]
    assert api.post("/customers", bob, json={"name": "Initech"}).status_code == 201  # per user

    assert api.delete(f"/customers/{first['id']}", alice).status_code == 204
    assert api.post("/customers", alice, json={"name": "Initech"}).status_code == 201


def test_documents_stored_before_their_counter_count_toward_the_cap(stack: Stack, users: Users, crud: Api) -> None:
    api = Api(stack.start_variant("crud", "two-documents-before", {"CSCX_MAX_DOCUMENTS": "2"}))
    alice = users.create("alice")
    for name in ("Acme", "Globex"):  # stored as before the counter existed: no counter at all
        fields = customer_fields(CustomerCreate(name=name).model_dump(mode="json"))
        common = {"owner_id": alice.uid, "version": 1, "created_at": SERVER_TIMESTAMP, "updated_at": SERVER_TIMESTAMP}
        raw_firestore().collection("customers").document().create({**fields, **common})

    assert_error(api.post("/customers", alice, json={"name": "Initech"}), 429, "RESOURCE_EXHAUSTED")
    [first, _] = crud.get("/customers", alice).json()["items"]
    assert api.delete(f"/customers/{first['id']}", alice).status_code == 204
    assert api.post("/customers", alice, json={"name": "Initech"}).status_code == 201
    assert_error(api.post("/customers", alice, json={"name": "Umbrella"}), 429, "RESOURCE_EXHAUSTED")


def test_concurrent_creates_never_pass_the_cap(stack: Stack, users: Users, crud: Api) -> None:
    api = Api(stack.start_variant("crud", "four-documents", {"CSCX_MAX_DOCUMENTS": "4"}))
    alice = users.create("alice")
    assert api.post("/customers", alice, json={"name": "Acme 0"}).status_code == 201

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda n: api.post("/customers", alice, json={"name": f"Acme {n}"}).status_code,
                                 range(1, 7)))  # fmt: skip

    assert sorted(statuses) == [201, 201, 201, 429, 429, 429]
    assert len(crud.get("/customers", alice).json()["items"]) == 4


def test_a_keyed_create_holds_to_the_cap_and_its_repeats_at_the_cap_get_its_answer(
    stack: Stack, users: Users, crud: Api
) -> None:
    """The key's record goes in the create's own commit, with the counter: the cap holds there,
    a refusal keeps nothing, and a repeat of a create that went through is answered, not refused."""
    api = Api(stack.start_variant("crud", "one-document-keyed", {"CSCX_MAX_DOCUMENTS": "1"}))
    alice = users.create("alice")
    key = {"Idempotency-Key": "acme"}

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: api.post("/customers", alice, json={"name": "Acme"}, headers=key), range(6)))

    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert all(a.json() == answers[0].json() for a in answers)
    repeat = api.post("/customers", alice, json={"name": "Acme"}, headers=key)  # at the cap
    assert repeat.status_code == 201, repeat.text
    assert (repeat.json(), repeat.headers["Idempotent-Replayed"]) == (answers[0].json(), "true")
    refused = api.post("/customers", alice, json={"name": "Globex"}, headers={"Idempotency-Key": "globex"})
    assert_error(refused, 429, "RESOURCE_EXHAUSTED")
    assert [c["name"] for c in crud.get("/customers", alice).json()["items"]] == ["Acme"]

    assert api.delete(f"/customers/{answers[0].json()['id']}", alice).status_code == 204
    again = api.post("/customers", alice, json={"name": "Globex"}, headers={"Idempotency-Key": "globex"})
    assert again.status_code == 201, again.text  # the refusal was not kept
    assert "Idempotent-Replayed" not in again.headers


def test_a_cascade_delete_makes_room_for_the_documents_it_deleted(stack: Stack, users: Users) -> None:
    api = Api(stack.start_variant("crud", "two-documents-cascade", {"CSCX_MAX_DOCUMENTS": "2"}))
    alice = users.create("alice")
    customer = api.post("/customers", alice, json={"name": "Acme"}).json()
    for title in ("Call", "Write"):
        assert api.post("/tasks", alice, json={"title": title, "customer_id": customer["id"]}).status_code == 201
    assert_error(api.post("/tasks", alice, json={"title": "Plan"}), 429, "RESOURCE_EXHAUSTED")

    assert api.delete(f"/customers/{customer['id']}?cascade=true", alice).status_code == 204

    assert [api.post("/tasks", alice, json={"title": t}).status_code for t in ("Plan", "Meet")] == [201, 201]
    assert [api.post("/customers", alice, json={"name": n}).status_code for n in ("Globex", "Initech")] == [201, 201]
    assert_error(api.post("/tasks", alice, json={"title": "More"}), 429, "RESOURCE_EXHAUSTED")


def test_contracts_past_the_cap_are_429_before_the_file_is_stored(
    stack: Stack, users: Users, crud: Api, models: Any
) -> None:
    api = Api(stack.start_variant("contract_parse", "one-document", {"CSCX_MAX_DOCUMENTS": "1"}))
    alice = users.create("alice")
    customer = crud.post("/customers", alice, json={"name": "Acme"}).json()
    assert upload(api, alice, b"Term: 12 months.", customer["id"], name="a.txt").status_code == 201

    refused = upload(api, alice, b"Term: 24 months.", customer["id"], name="b.txt")

    assert_error(refused, 429, "RESOURCE_EXHAUSTED")
    assert len(crud.get("/contracts", alice).json()["items"]) == 1


def test_a_new_session_past_the_cap_is_429_and_an_existing_one_goes_on(stack: Stack, users: Users, models: Any) -> None:
    chat = Chat(Api(stack.start_variant("chat_stream", "one-document", {"CSCX_MAX_DOCUMENTS": "1"})))
    alice = users.create("alice")
    first = chat.send(alice, message="How is my book?")

    refused = chat.send(alice, message="And Acme?")
    again = chat.send(alice, message="And Acme?", session_id=first.session_id)

    assert refused.status == 429
    assert refused.error()["status"] == "RESOURCE_EXHAUSTED"
    assert again.types[-1] == "finish"
    assert [s["id"] for s in Api(stack.url("crud")).get("/sessions", alice).json()["items"]] == [first.session_id]


# -- documents one request deletes ------------------------------------------------------------


def _until_done(call: Any) -> tuple[requests.Response, int]:
    """Repeat a delete while it answers 409 asking to be retried; the last answer and the retries."""
    retries = 0
    while (response := call()).status_code == 409:
        assert_error(response, 409, "ABORTED")
        assert response.headers["Retry-After"] == "1"
        retries += 1
        assert retries < 10
    return response, retries


def test_a_large_cascade_is_finished_by_retries_files_included(
    stack: Stack, users: Users, crud: Api, models: Any
) -> None:
    api = Api(stack.start_variant("crud", "deletes-three", {"CSCX_DELETE_BATCH_LIMIT": "3"}))
    alice = users.create("alice")
    customer = crud.post("/customers", alice, json={"name": "Acme"}).json()
    tasks = [
        crud.post("/tasks", alice, json={"title": f"Call {n}", "customer_id": customer["id"]}).json() for n in range(7)
    ]
    contract = upload(Api(stack.url("contract_parse")), alice, b"Term: 12 months.", customer["id"], name="a.txt").json()
    assert stored_object(stack, contract["storage_path"]).status_code == 200

    response, retries = _until_done(lambda: api.delete(f"/customers/{customer['id']}?cascade=true", alice))

    assert response.status_code == 204
    assert retries == 2  # 1 contract and 3 tasks, 3 tasks, 1 task and the customer
    assert crud.get(f"/customers/{customer['id']}", alice).status_code == 404
    assert all(crud.get(f"/tasks/{task['id']}", alice).status_code == 404 for task in tasks)
    assert crud.get(f"/contracts/{contract['id']}", alice).status_code == 404
    assert stored_object(stack, contract["storage_path"]).status_code == 404


def test_a_long_session_is_deleted_over_retries_and_cannot_stream_meanwhile(
    stack: Stack, users: Users, crud: Api, repo_for: Any
) -> None:
    api = Api(stack.start_variant("crud", "deletes-two", {"CSCX_DELETE_BATCH_LIMIT": "2"}))
    alice = users.create("alice")
    session, _ = _seed_session(repo_for(alice.uid), messages=5)

    first = api.delete(f"/sessions/{session['id']}", alice)
    assert_error(first, 409, "ABORTED")
    assert repo_for(alice.uid).get(SESSIONS, session["id"])["status"] == "deleting"
    assert len(_stored_message_ids(session["id"])) == 3
    response, retries = _until_done(lambda: api.delete(f"/sessions/{session['id']}", alice))

    assert response.status_code == 204
    assert retries == 1
    assert _stored_message_ids(session["id"]) == set()
    assert crud.get(f"/sessions/{session['id']}", alice).status_code == 404


def test_limits_are_read_from_settings_within_bounds() -> None:
    from common.errors import ConfigurationError
    from common.settings import load_settings

    project = {"GOOGLE_CLOUD_PROJECT": "demo-cscx"}
    settings = load_settings(project | {"CSCX_RATE_LIMIT_PER_MINUTE": "120", "CSCX_MAX_DOCUMENTS": "50"})
    assert (settings.rate_limit_per_minute, settings.max_documents, settings.delete_batch_limit) == (120, 50, 2000)
    defaults = load_settings(project)
    assert (defaults.rate_limit_per_minute, defaults.max_documents) == (600, 10_000)
    for name in ("CSCX_RATE_LIMIT_PER_MINUTE", "CSCX_MAX_DOCUMENTS", "CSCX_DELETE_BATCH_LIMIT"):
        with pytest.raises(ConfigurationError, match=name):
            load_settings(project | {name: "0"})
