"""Inputs and conditions at the edges: reserved ids, repeated parameters, wide characters,
an unavailable database, concurrent deletes, credentials kept out of the logs."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from common.collections import SESSIONS
from scripts.stack import Stack
from tests.conftest import Api, Caller, Users, assert_error, raw_firestore


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("collection", ["customers", "contracts", "tasks", "sessions"])
def test_reserved_firestore_id_is_404(crud: Api, alice: Caller, collection: str, method: str) -> None:
    body = {"notes": "x"} if collection in {"customers", "tasks"} else {"title": "x"}
    response = crud.call(method, f"/{collection}/__reserved__", alice, json=body if method == "PATCH" else None)
    assert_error(response, 404, "NOT_FOUND")


def test_reserved_firestore_id_as_a_reference_is_400(crud: Api, alice: Caller) -> None:
    response = crud.post("/tasks", alice, json={"title": "Call", "customer_id": "__reserved__"})
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert [d["field"] for d in error["details"]] == ["customer_id"]


def test_repeated_query_parameter_is_400(crud: Api, alice: Caller) -> None:
    response = crud.get("/customers?stage=adopting&stage=churned", alice)
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["details"] == [{"field": "stage", "message": "given more than once"}]


@pytest.mark.parametrize("name", ["Acme😀 Labs", "Acme Ｗｉｄｅ", "acme"])
def test_prefix_search_finds_names_continuing_with_any_character(crud: Api, alice: Caller, name: str) -> None:
    created = crud.post("/customers", alice, json={"name": name}).json()
    crud.post("/customers", alice, json={"name": "Acmf"})
    found = crud.get("/customers", alice, params={"q": "ACME"}).json()["items"]
    assert [c["id"] for c in found] == [created["id"]]


def test_nan_arr_is_400(crud: Api, alice: Caller) -> None:
    response = crud.call(
        "POST", "/customers", alice, data=b'{"name": "Acme", "arr": NaN}', headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "INVALID_ARGUMENT")


def test_unavailable_database_is_503_not_500(stack: Stack, users: Users) -> None:
    user = users.create("outage")
    # The same function with its database unreachable (a closed port), and a short timeout.
    url = stack.start_variant(
        "crud", "no-database", {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:9", "CSCX_FIRESTORE_TIMEOUT_SECONDS": "1"}
    )
    started = time.monotonic()
    response = Api(url).get("/customers", user)
    assert_error(response, 503, "UNAVAILABLE")
    assert time.monotonic() - started < 15


def test_stale_if_match_on_cascade_delete_deletes_nothing(crud: Api, alice: Caller) -> None:
    customer = crud.post("/customers", alice, json={"name": "Acme"}).json()
    task = crud.post("/tasks", alice, json={"title": "Call", "customer_id": customer["id"]}).json()
    crud.patch(f"/customers/{customer['id']}", alice, json={"notes": "renewal talk"})

    response = crud.delete(f"/customers/{customer['id']}?cascade=true", alice, headers={"If-Match": '"1"'})

    assert_error(response, 412, "FAILED_PRECONDITION")
    assert crud.get(f"/tasks/{task['id']}", alice).status_code == 200
    assert crud.get(f"/customers/{customer['id']}", alice).status_code == 200


def test_session_being_deleted_cannot_start_streaming(crud: Api, alice: Caller, repo_for: Any) -> None:
    repo = repo_for(alice.uid)
    held = {"holder": "a-stream", "until": datetime.now(UTC) + timedelta(minutes=5)}  # its lease runs
    session = repo.create(SESSIONS, {"title": "Renewal", "status": "streaming", "customer_id": None, "lease": held})
    response = crud.delete(f"/sessions/{session['id']}", alice)
    assert_error(response, 409, "ABORTED")
    stored = raw_firestore().collection("sessions").document(session["id"]).get().to_dict()
    assert stored["status"] == "streaming"
    assert stored["version"] == 1


def test_bad_credentials_never_reach_the_logs(stack: Stack, crud: Api) -> None:
    secret = "ya29.SECRET-ACCESS-TOKEN-should-not-be-logged"
    for header in (f"Bearer {secret}", f"Bearer {secret}.{secret}.{secret}"):
        assert_error(crud.get("/customers", headers={"Authorization": header}), 401, "UNAUTHENTICATED")
    assert "SECRET-ACCESS-TOKEN" not in (stack.log_dir / "crud.log").read_text()


def test_profile_email_follows_the_token(crud: Api, users: Users, stack: Stack) -> None:
    user = users.create("mover")
    assert crud.get("/profile", user).json()["email"] == user.email
    new_email = "moved-" + user.email
    base = f"http://127.0.0.1:{stack.ports.auth}/identitytoolkit.googleapis.com/v1"
    changed = requests.post(
        f"{base}/accounts:update?key=test-key",
        json={"idToken": user.token, "email": new_email, "returnSecureToken": True},
        timeout=10,
    )
    changed.raise_for_status()
    moved = Caller(user.uid, new_email, user.password, changed.json()["idToken"])
    profile = crud.get("/profile", moved).json()
    assert profile["email"] == new_email


def test_concurrent_task_creation_and_customer_delete_leave_no_orphans(crud: Api, alice: Caller) -> None:
    def call(method: str, path: str, body: dict[str, Any] | None = None) -> int:
        return Api(crud.base_url).call(method, path, alice, json=body).status_code  # a session per thread

    for _ in range(4):
        customer_id = crud.post("/customers", alice, json={"name": "Acme"}).json()["id"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            creates = [
                pool.submit(call, "POST", "/tasks", {"title": f"Call {i}", "customer_id": customer_id})
                for i in range(6)
            ]
            deleted = pool.submit(call, "DELETE", f"/customers/{customer_id}")
            statuses = [c.result() for c in creates]
        assert set(statuses) <= {201, 400}, statuses
        assert deleted.result() in {204, 409}
        customer_exists = crud.get(f"/customers/{customer_id}", alice).status_code == 200
        referring = crud.get("/tasks", alice, params={"customer_id": customer_id}).json()["items"]
        assert customer_exists == (deleted.result() == 409)
        if not customer_exists:
            assert referring == [], "a task points at a deleted customer"
        assert len(referring) == statuses.count(201)


def test_concurrent_patches_are_applied_or_refused_never_500(crud: Api, alice: Caller) -> None:
    customer_id = crud.post("/customers", alice, json={"name": "Acme"}).json()["id"]
    task_id = crud.post("/tasks", alice, json={"title": "Call"}).json()["id"]

    def patch(i: int) -> int:
        body: dict[str, Any] = {"notes": f"note {i}"}
        if i % 2:
            body["customer_id"] = customer_id  # the transactional path
        return Api(crud.base_url).patch(f"/tasks/{task_id}", alice, json=body).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(patch, range(20)))
    assert set(statuses) <= {200, 409}, statuses
    applied = statuses.count(200)
    assert applied >= 1
    assert crud.get(f"/tasks/{task_id}", alice).json()["version"] == 1 + applied


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\n{}\r\n0\r\n\r\n", b'ffff\r\n{"name": "Ac', b'5\r\n{"name"\r\n0\r\n\r\n'],
    ids=["bad-size", "cut-off", "bad-terminator"],
)
def test_broken_chunked_body_is_a_400_and_writes_nothing(stack: Stack, crud: Api, alice: Caller, chunks: bytes) -> None:
    with socket.create_connection(("127.0.0.1", stack.ports.functions["crud"]), timeout=10) as sock:
        head = (
            "POST /customers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {alice.token}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode() + chunks)
        sock.shutdown(socket.SHUT_WR)  # the client has nothing more to send
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.split()[1] == b"400", received
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert crud.get("/customers", alice).json()["items"] == []
