"""`Idempotency-Key` (issue 9, DESIGN §4): a retried POST that creates or decides has its effect
once, and every retry gets the first answer."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import functions_framework
import pytest
import requests
from flask.testing import FlaskClient

from scripts.stack import Stack
from tests.conftest import ROOT, WEB_ORIGIN, Api, Caller, Instance, assert_error, raw_firestore, seed_action
from tests.firestore_faults import FirestoreProxy


def customers_of(uid: str) -> list[dict[str, Any]]:
    from google.cloud.firestore import FieldFilter

    query = raw_firestore().collection("customers").where(filter=FieldFilter("owner_id", "==", uid))
    return [s.to_dict() or {} for s in query.stream()]


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def test_same_key_same_body_makes_one_object_and_every_answer_is_the_first(crud: Api, alice: Caller) -> None:
    answers = [crud.post("/customers", alice, json={"name": "Acme"}, headers=keyed("create-acme-1")) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert answers[1].json() == answers[0].json() == answers[2].json()
    assert answers[1].headers["ETag"] == answers[0].headers["ETag"]
    assert "Idempotent-Replayed" not in answers[0].headers
    assert [a.headers.get("Idempotent-Replayed") for a in answers[1:]] == ["true", "true"]
    assert len(customers_of(alice.uid)) == 1


def test_twenty_concurrent_requests_with_one_key_make_one_object_and_get_one_answer(crud: Api, alice: Caller) -> None:
    """The key's record is created in the create's own commit: the requests that lose the race
    find it completed, and replay it (no 409 between creates)."""

    def create(_: int) -> requests.Response:
        return Api(crud.base_url).post("/customers", alice, json={"name": "Acme"}, headers=keyed("concurrent-key"))

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(create, range(20)))
    assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers if a.status_code != 201]
    assert all(a.json() == answers[0].json() and a.headers["ETag"] == answers[0].headers["ETag"] for a in answers)
    replayed = Counter(a.headers.get("Idempotent-Replayed") for a in answers)
    assert replayed == Counter({None: 1, "true": 19})
    assert len(customers_of(alice.uid)) == 1


def test_a_repeat_refused_where_its_first_went_through_gets_the_first_answer(crud: Api, alice: Caller) -> None:
    customer = crud.post("/customers", alice, json={"name": "Acme"}).json()
    body = {"title": "Call Acme", "customer_id": customer["id"]}
    first = crud.post("/tasks", alice, json=body, headers=keyed("task-of-acme"))
    assert first.status_code == 201, first.text
    assert crud.delete(f"/customers/{customer['id']}?cascade=true", alice).status_code == 204

    again = crud.post("/tasks", alice, json=body, headers=keyed("task-of-acme"))  # it and its customer are gone

    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_error(crud.post("/tasks", alice, json=body, headers=keyed("a-new-key")), 400, "INVALID_ARGUMENT")


def test_same_key_with_another_body_is_422(crud: Api, alice: Caller) -> None:
    assert crud.post("/customers", alice, json={"name": "Acme"}, headers=keyed("reused-key")).status_code == 201
    other = crud.post("/customers", alice, json={"name": "Globex"}, headers=keyed("reused-key"))
    assert_error(other, 422, "UNPROCESSABLE_ENTITY")
    on_tasks = crud.post("/tasks", alice, json={"title": "Acme"}, headers=keyed("reused-key"))
    assert_error(on_tasks, 422, "UNPROCESSABLE_ENTITY")  # another path is another request
    assert len(customers_of(alice.uid)) == 1


def test_keys_are_per_user(crud: Api, alice: Caller, bob: Caller) -> None:
    mine = crud.post("/customers", alice, json={"name": "Acme"}, headers=keyed("shared-key"))
    theirs = crud.post("/customers", bob, json={"name": "Acme"}, headers=keyed("shared-key"))
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers


def test_a_refusal_is_not_kept_so_a_corrected_retry_goes_through(crud: Api, alice: Caller) -> None:
    bad = crud.post("/customers", alice, json={"name": ""}, headers=keyed("fix-me"))
    assert_error(bad, 400, "INVALID_ARGUMENT")
    good = crud.post("/customers", alice, json={"name": "Acme"}, headers=keyed("fix-me"))
    assert good.status_code == 201, good.text
    assert "Idempotent-Replayed" not in good.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "naïve", "tab\tkey"])
def test_a_key_that_is_not_1_to_255_visible_ascii_characters_is_400(crud: Api, alice: Caller, key: str) -> None:
    raw = {"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"}
    response = requests.post(
        f"{crud.base_url}/customers",
        data=b'{"name": "Acme"}',
        headers={**raw, "Idempotency-Key": key.encode("utf-8")},  # type: ignore[dict-item]
        timeout=10,
    )
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["details"][0]["field"] == "Idempotency-Key"
    assert customers_of(alice.uid) == []


def test_the_longest_key_is_taken(crud: Api, alice: Caller) -> None:
    assert crud.post("/customers", alice, json={"name": "Acme"}, headers=keyed("k" * 255)).status_code == 201


def test_an_expired_key_is_forgotten(crud: Api, alice: Caller) -> None:
    first = crud.post("/customers", alice, json={"name": "Acme"}, headers=keyed("day-old"))
    record = (
        raw_firestore()
        .collection("idempotency_keys")
        .document(hashlib.sha256(f"{alice.uid}\0day-old".encode()).hexdigest()[:40])
    )
    record.update({"expires_at": datetime.now(UTC) - timedelta(seconds=1)})  # the clock, 24 h later
    again = crud.post("/customers", alice, json={"name": "Acme"}, headers=keyed("day-old"))
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert len(customers_of(alice.uid)) == 2


def test_without_a_key_nothing_changes(crud: Api, alice: Caller) -> None:
    for _ in range(2):
        assert crud.post("/customers", alice, json={"name": "Acme"}).status_code == 201
    assert len(customers_of(alice.uid)) == 2
    assert list(raw_firestore().collection("idempotency_keys").stream()) == []


def test_approve_and_reject_take_keys(stack: Stack, alice: Caller) -> None:
    approvals = Api(stack.url("approve_action"))
    action = seed_action(alice.uid)
    first = approvals.post(f"/actions/{action['id']}/approve", alice, headers=keyed("approve-1"))
    again = approvals.post(f"/actions/{action['id']}/approve", alice, headers=keyed("approve-1"))
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = seed_action(alice.uid)
    rejected = approvals.post(f"/actions/{other['id']}/reject", alice, json={"reason": "No"}, headers=keyed("r-1"))
    replay = approvals.post(f"/actions/{other['id']}/reject", alice, json={"reason": "No"}, headers=keyed("r-1"))
    assert rejected.status_code == replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_a_browser_may_send_the_key(crud: Api) -> None:
    preflight = crud.call(
        "OPTIONS",
        "/customers",
        headers={"Origin": WEB_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert "Idempotency-Key" in preflight.headers["Access-Control-Allow-Headers"]
    answer = crud.call("GET", "/healthz", headers={"Origin": WEB_ORIGIN})
    assert "Idempotent-Replayed" in answer.headers["Access-Control-Expose-Headers"]


# -- a create that committed, then failed ----------------------------------------------------


@pytest.fixture
def database(stack: Stack) -> Iterator[FirestoreProxy]:
    """The stack's Firestore behind a proxy that a test can make unreachable."""
    with FirestoreProxy(f"127.0.0.1:{stack.ports.firestore}") as proxy:
        yield proxy


def in_process(function: str, database: FirestoreProxy, fresh_instance: Instance) -> Iterator[FlaskClient]:
    """`function` in this process, talking to Firestore through `database`, giving up on it after 1 s."""
    fresh_instance(FIRESTORE_EMULATOR_HOST=database.address, CSCX_FIRESTORE_TIMEOUT_SECONDS="1")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield functions_framework.create_app(function, str(ROOT / f"functions/{function}/main.py")).test_client()  # type: ignore[no-untyped-call]
    finally:
        root.handlers[:], root.level = handlers, level  # type: ignore[assignment]


@pytest.fixture
def crud_in_process(database: FirestoreProxy, fresh_instance: Instance) -> Iterator[FlaskClient]:
    yield from in_process("crud", database, fresh_instance)


@pytest.fixture
def approvals_in_process(database: FirestoreProxy, fresh_instance: Instance) -> Iterator[FlaskClient]:
    yield from in_process("approve_action", database, fresh_instance)


def test_a_create_whose_read_back_failed_after_the_commit_is_answered_on_retry(
    crud_in_process: FlaskClient, database: FirestoreProxy, crud: Api, alice: Caller
) -> None:
    customer = crud.post("/customers", alice, json={"name": "Acme"}).json()
    body = json.dumps({"title": "Call Acme", "customer_id": customer["id"]})
    headers = {"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json", **keyed("task-1")}
    database.go_down_after_commit_to("tasks")  # the task and its key's record are stored, then nothing

    first = crud_in_process.post("/tasks", data=body, headers=headers)

    assert first.status_code == 503, first.get_data(as_text=True)  # committed, but the answer failed
    assert database.refused, "the database was not called after the commit"
    [stored] = crud.get("/tasks", alice).json()["items"]
    database.come_back()
    retry = crud_in_process.post("/tasks", data=body, headers=headers)

    assert retry.status_code == 201, retry.get_data(as_text=True)
    task = retry.get_json()
    assert task == stored
    assert task["title"] == "Call Acme"
    assert retry.headers["Idempotent-Replayed"] == "true"
    listed = crud.get("/tasks", alice).json()["items"]
    assert [t["id"] for t in listed] == [task["id"]]
    third = crud_in_process.post("/tasks", data=body, headers=headers)
    assert third.get_json() == task


def test_a_key_whose_request_died_before_its_effect_is_held_until_its_lease_runs_out(
    approvals_in_process: FlaskClient, database: FirestoreProxy, stack: Stack, alice: Caller
) -> None:
    """A decision claims its key first (its answer is not a document it creates): a request that
    dies between the claim and the effect holds the key, in flight, until its lease runs out."""
    approvals = Api(stack.url("approve_action"))
    action = seed_action(alice.uid)
    path, body = f"/actions/{action['id']}/reject", {"reason": "No"}
    headers = {"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json", **keyed("dies")}
    database.go_down_after_commit_to("idempotency_keys")  # the key is claimed, then the database is gone

    assert approvals_in_process.post(path, data=json.dumps(body), headers=headers).status_code == 503
    database.come_back()
    record = _key_record(alice.uid, "dies")
    assert record["state"] == "in_flight"  # the failed request could not free its key
    assert record["lease"]["until"] > datetime.now(UTC)
    held = approvals.post(path, alice, json=body, headers=keyed("dies"))
    assert_error(held, 409, "ABORTED")
    assert held.headers["Retry-After"] == "1"
    assert approvals.get(f"/actions/{action['id']}", alice).json()["status"] == "pending"

    key = raw_firestore().collection("idempotency_keys").document(_key_id(alice.uid, "dies"))
    key.update({"lease.until": datetime.now(UTC) - timedelta(seconds=1)})  # the clock, a minute later
    again = approvals.post(path, alice, json=body, headers=keyed("dies"))

    assert again.status_code == 200, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["status"] == "rejected"
    assert _key_record(alice.uid, "dies")["lease"] is None  # let go with the effect


def test_a_keyed_create_costs_no_round_trip_more_than_one_without_a_key(
    crud_in_process: FlaskClient, database: FirestoreProxy, alice: Caller
) -> None:
    """The key's record, answer and all, is created in the create's own commit: a key adds a
    write to that commit, and no call."""
    authorization = {"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"}
    body = json.dumps({"name": "Acme"})
    assert crud_in_process.post("/customers", data=body, headers=authorization).status_code == 201  # the profile

    def calls(headers: dict[str, str]) -> Counter[str]:
        database.forget_calls()
        assert crud_in_process.post("/customers", data=body, headers=headers).status_code == 201
        return Counter(database.calls)

    without_key, with_key = calls(authorization), calls({**authorization, **keyed("round-trips")})
    assert with_key == without_key == Counter({"Commit": 1})
    assert _key_record(alice.uid, "round-trips")["state"] == "completed"


def _key_id(uid: str, key: str) -> str:
    return hashlib.sha256(f"{uid}\0{key}".encode()).hexdigest()[:40]


def _key_record(uid: str, key: str) -> dict[str, Any]:
    return raw_firestore().collection("idempotency_keys").document(_key_id(uid, key)).get().to_dict() or {}


def test_each_keyed_effect_is_written_with_its_key_record_naming_it(stack: Stack, crud: Api, alice: Caller) -> None:
    """The record goes with the effect's own write, whichever write that is: a create, a create
    in a transaction, a compare-and-set, a create under an id derived from the file."""
    customer = crud.post("/customers", alice, json={"name": "Acme"}, headers=keyed("customer")).json()
    loose = crud.post("/tasks", alice, json={"title": "Call"}, headers=keyed("task")).json()
    body = {"title": "Call Acme", "customer_id": customer["id"]}
    referencing = crud.post("/tasks", alice, json=body, headers=keyed("task-of-customer")).json()
    approvals = Api(stack.url("approve_action"))
    approved = approvals.post(f"/actions/{seed_action(alice.uid)['id']}/approve", alice, headers=keyed("approve"))
    rejected = approvals.post(f"/actions/{seed_action(alice.uid)['id']}/reject", alice, headers=keyed("reject"))
    files = {"file": ("msa.txt", b"Master agreement. Term: 12 months.", "text/plain")}
    contract = Api(stack.url("contract_parse")).post(
        "/contracts/upload", alice, data={"customer_id": customer["id"]}, files=files, headers=keyed("upload")
    )
    assert contract.status_code == 201, contract.text

    expected = {
        "customer": f"customers/{customer['id']}",
        "task": f"tasks/{loose['id']}",
        "task-of-customer": f"tasks/{referencing['id']}",
        "approve": f"actions/{approved.json()['id']}",
        "reject": f"actions/{rejected.json()['id']}",
        "upload": f"contracts/{contract.json()['id']}",
    }
    records = {key: _key_record(alice.uid, key) for key in expected}
    assert {key: record.get("resource") for key, record in records.items()} == expected
    assert {record.get("state") for record in records.values()} == {"completed"}
