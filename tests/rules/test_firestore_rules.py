"""Specification of firestore.rules (DESIGN §2), run against the Firestore emulator.

Clients are played over the emulator's REST API with unsigned ID tokens, which the
emulator accepts; data is seeded with the emulator's admin token, which bypasses rules.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts.stack import Stack

PROJECT_ID = "demo-cscx"
RULES_PATH = Path(__file__).resolve().parents[2] / "firestore.rules"
ADMIN_TOKEN = "owner"  # the emulator's built-in token that bypasses security rules
TIMEOUT_SECONDS = 10


def _new_id() -> str:
    return uuid.uuid4().hex


def _b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _id_token(uid: str) -> str:
    """An unsigned Firebase ID token: the emulator checks claims, not signatures."""
    now = int(time.time())
    claims = {
        "sub": uid,
        "user_id": uid,
        "aud": PROJECT_ID,
        "iss": f"https://securetoken.google.com/{PROJECT_ID}",
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "firebase": {"sign_in_provider": "password", "identities": {}},
    }
    return f"{_b64url({'alg': 'none', 'typ': 'JWT'})}.{_b64url(claims)}."


def _owned_fields(owner_id: str) -> dict[str, Any]:
    return {
        "owner_id": {"stringValue": owner_id},
        "title": {"stringValue": "seeded"},
        "version": {"integerValue": "1"},
    }


@dataclass(frozen=True)
class OwnedCollection:
    """A collection of owner-scoped documents, as laid out in DESIGN §3."""

    collection_id: str
    under_session: bool = False  # sessions/{id}/messages
    id_is_uid: bool = False  # profiles/{uid}, integrations/{uid}

    def __str__(self) -> str:
        return f"sessions/*/{self.collection_id}" if self.under_session else self.collection_id


CLIENT_READABLE = [
    OwnedCollection("profiles", id_is_uid=True),
    OwnedCollection("customers"),
    OwnedCollection("contracts"),
    OwnedCollection("tasks"),
    OwnedCollection("sessions"),
    OwnedCollection("messages", under_session=True),
    OwnedCollection("actions"),
]
INTEGRATIONS = OwnedCollection("integrations", id_is_uid=True)
# The server's own bookkeeping, owned by a user but never theirs to read.
SERVER_ONLY = [
    INTEGRATIONS,
    OwnedCollection("oauth_states"),
    OwnedCollection("google_grants"),
    OwnedCollection("quotas"),
    OwnedCollection("usage"),
    OwnedCollection("idempotency_keys"),
    OwnedCollection("part_log"),
    OwnedCollection("document_counts"),
]
EVERY_COLLECTION = [*CLIENT_READABLE, *SERVER_ONLY]


class FirestoreEmulator:
    """Just enough of the Firestore v1 REST API to act as a client or as an admin."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.documents_url = f"http://{host}/v1/projects/{PROJECT_ID}/databases/(default)/documents"
        self.http = requests.Session()

    # --- emulator administration -------------------------------------------------

    def load_rules(self, source: str) -> None:
        response = self.http.put(
            f"http://{self.host}/emulator/v1/projects/{PROJECT_ID}:securityRules",
            json={"rules": {"files": [{"name": "firestore.rules", "content": source}]}},
            timeout=TIMEOUT_SECONDS,
        )
        assert response.status_code == 200, f"rules not loaded: {response.text}"

    def delete_all_documents(self) -> None:
        response = self.http.delete(
            f"http://{self.host}/emulator/v1/projects/{PROJECT_ID}/databases/(default)/documents",
            timeout=TIMEOUT_SECONDS,
        )
        assert response.status_code == 200, f"reset failed: {response.text}"

    def seed(self, path: str, fields: dict[str, Any]) -> None:
        response = self._request("PATCH", path, ADMIN_TOKEN, json={"fields": fields})
        assert response.status_code == 200, f"seeding {path} failed: {response.text}"

    def read_as_admin(self, path: str) -> dict[str, Any] | None:
        response = self._request("GET", path, ADMIN_TOKEN)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    # --- client operations, as a signed-in user (uid) or anonymous (None) --------

    def get(self, path: str, uid: str | None) -> requests.Response:
        return self._request("GET", path, _id_token(uid) if uid else None)

    def run_query(
        self,
        collection_id: str,
        uid: str | None,
        *,
        parent: str = "",
        owner_id: str | None = None,
        all_descendants: bool = False,
    ) -> requests.Response:
        query: dict[str, Any] = {"from": [{"collectionId": collection_id, "allDescendants": all_descendants}]}
        if owner_id is not None:
            query["where"] = {
                "fieldFilter": {
                    "field": {"fieldPath": "owner_id"},
                    "op": "EQUAL",
                    "value": {"stringValue": owner_id},
                }
            }
        parent_url = f"{self.documents_url}/{parent}" if parent else self.documents_url
        return self.http.post(
            f"{parent_url}:runQuery",
            json={"structuredQuery": query},
            headers=_authorization(_id_token(uid) if uid else None),
            timeout=TIMEOUT_SECONDS,
        )

    def create(self, parent: str, collection_id: str, document_id: str, uid: str | None) -> requests.Response:
        collection_path = f"{parent}/{collection_id}" if parent else collection_id
        return self.http.post(
            f"{self.documents_url}/{collection_path}",
            params={"documentId": document_id},
            json={"fields": _owned_fields(uid or "nobody")},
            headers=_authorization(_id_token(uid) if uid else None),
            timeout=TIMEOUT_SECONDS,
        )

    def patch(self, path: str, uid: str | None, fields: dict[str, Any]) -> requests.Response:
        return self._request("PATCH", path, _id_token(uid) if uid else None, json={"fields": fields})

    def delete(self, path: str, uid: str | None) -> requests.Response:
        return self._request("DELETE", path, _id_token(uid) if uid else None)

    def _request(
        self,
        method: str,
        path: str,
        token: str | None,
        json: dict[str, Any] | None = None,
    ) -> requests.Response:
        return self.http.request(
            method,
            f"{self.documents_url}/{path}",
            json=json,
            headers=_authorization(token),
            timeout=TIMEOUT_SECONDS,
        )


def _authorization(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def assert_permission_denied(response: requests.Response) -> None:
    assert response.status_code == 403, f"expected 403, got {response.status_code}: {response.text}"
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


def returned_paths(response: requests.Response) -> set[str]:
    assert response.status_code == 200, response.text
    prefix = f"projects/{PROJECT_ID}/databases/(default)/documents/"
    return {row["document"]["name"].removeprefix(prefix) for row in response.json() if "document" in row}


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator(stack: Stack) -> Iterator[FirestoreEmulator]:
    client = FirestoreEmulator(f"127.0.0.1:{stack.ports.firestore}")
    client.load_rules(RULES_PATH.read_text())
    yield client
    client.http.close()


@pytest.fixture(autouse=True)
def empty_database(emulator: FirestoreEmulator) -> None:
    emulator.delete_all_documents()


@pytest.fixture
def alice() -> str:
    return f"alice-{_new_id()}"


@pytest.fixture
def bob() -> str:
    return f"bob-{_new_id()}"


@dataclass(frozen=True)
class Seeded:
    """One owner's document, with a sibling in the same collection owned by someone else."""

    collection: OwnedCollection
    parent: str  # "" (documents root) or "sessions/<id>"
    path: str
    stranger_path: str


def seed_parent(emulator: FirestoreEmulator, collection: OwnedCollection, owner: str) -> str:
    """The parent the collection lives under: a fresh session of the owner's, or the root."""
    if not collection.under_session:
        return ""
    session = f"sessions/{_new_id()}"
    emulator.seed(session, _owned_fields(owner))
    return session


def document_path(parent: str, collection: OwnedCollection, document_id: str) -> str:
    prefix = f"{parent}/" if parent else ""
    return f"{prefix}{collection.collection_id}/{document_id}"


def seed_owned(emulator: FirestoreEmulator, collection: OwnedCollection, owner: str, stranger: str) -> Seeded:
    parent = seed_parent(emulator, collection, owner)

    def path_for(uid: str) -> str:
        return document_path(parent, collection, uid if collection.id_is_uid else _new_id())

    seeded = Seeded(collection, parent, path_for(owner), path_for(stranger))
    emulator.seed(seeded.path, _owned_fields(owner))
    emulator.seed(seeded.stranger_path, _owned_fields(stranger))
    return seeded


readable = pytest.mark.parametrize("collection", CLIENT_READABLE, ids=str)
every_collection = pytest.mark.parametrize("collection", EVERY_COLLECTION, ids=str)


# --- reads of one's own documents -------------------------------------------------------


@readable
def test_owner_can_get_own_document(
    emulator: FirestoreEmulator, collection: OwnedCollection, alice: str, bob: str
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)

    response = emulator.get(seeded.path, alice)

    assert response.status_code == 200, response.text
    assert response.json()["fields"]["owner_id"] == {"stringValue": alice}


@readable
def test_other_user_cannot_get_document(
    emulator: FirestoreEmulator, collection: OwnedCollection, alice: str, bob: str
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)

    assert_permission_denied(emulator.get(seeded.path, bob))


@readable
def test_anonymous_client_cannot_get_document(
    emulator: FirestoreEmulator, collection: OwnedCollection, alice: str, bob: str
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)

    assert_permission_denied(emulator.get(seeded.path, None))


@readable
def test_owner_can_list_documents_filtered_by_own_owner_id(
    emulator: FirestoreEmulator, collection: OwnedCollection, alice: str, bob: str
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)

    response = emulator.run_query(collection.collection_id, alice, parent=seeded.parent, owner_id=alice)

    assert returned_paths(response) == {seeded.path}


@readable
def test_list_without_owner_id_filter_is_refused_even_for_signed_in_user(
    emulator: FirestoreEmulator, collection: OwnedCollection, alice: str, bob: str
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)

    assert_permission_denied(emulator.run_query(collection.collection_id, alice, parent=seeded.parent))


@readable
def test_list_filtered_by_another_users_owner_id_is_refused(
    emulator: FirestoreEmulator, collection: OwnedCollection, alice: str, bob: str
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)

    assert_permission_denied(emulator.run_query(collection.collection_id, bob, parent=seeded.parent, owner_id=alice))


@readable
def test_anonymous_client_cannot_list_documents(
    emulator: FirestoreEmulator, collection: OwnedCollection, alice: str, bob: str
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)

    assert_permission_denied(emulator.run_query(collection.collection_id, None, parent=seeded.parent, owner_id=alice))


def test_owner_cannot_get_a_profile_whose_id_is_not_their_uid(emulator: FirestoreEmulator, alice: str) -> None:
    emulator.seed(f"profiles/{alice}", _owned_fields(alice))
    misplaced = f"profiles/{_new_id()}"
    emulator.seed(misplaced, _owned_fields(alice))

    assert_permission_denied(emulator.get(misplaced, alice))


# --- messages across sessions (collection-group queries) --------------------------------


def seed_messages_in_two_sessions(emulator: FirestoreEmulator, alice: str, bob: str) -> tuple[set[str], set[str]]:
    """Alice's and Bob's messages, each in two sessions of their own."""
    paths: dict[str, set[str]] = {alice: set(), bob: set()}
    for owner in (alice, bob):
        for _ in range(2):
            session = f"sessions/{_new_id()}"
            message = f"{session}/messages/{_new_id()}"
            emulator.seed(session, _owned_fields(owner))
            emulator.seed(message, _owned_fields(owner))
            paths[owner].add(message)
    return paths[alice], paths[bob]


def test_owner_can_query_own_messages_across_sessions(emulator: FirestoreEmulator, alice: str, bob: str) -> None:
    alices_messages, _ = seed_messages_in_two_sessions(emulator, alice, bob)

    response = emulator.run_query("messages", alice, owner_id=alice, all_descendants=True)

    assert returned_paths(response) == alices_messages


def test_collection_group_query_on_messages_without_owner_id_filter_is_refused(
    emulator: FirestoreEmulator, alice: str, bob: str
) -> None:
    seed_messages_in_two_sessions(emulator, alice, bob)

    assert_permission_denied(emulator.run_query("messages", alice, all_descendants=True))


def test_collection_group_query_on_another_users_messages_is_refused(
    emulator: FirestoreEmulator, alice: str, bob: str
) -> None:
    seed_messages_in_two_sessions(emulator, alice, bob)

    assert_permission_denied(emulator.run_query("messages", bob, owner_id=alice, all_descendants=True))


# --- what no client may read ----------------------------------------------------------


@pytest.mark.parametrize("collection", SERVER_ONLY, ids=str)
def test_owner_cannot_get_own_server_only_document(
    emulator: FirestoreEmulator, alice: str, bob: str, collection: OwnedCollection
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)

    assert_permission_denied(emulator.get(seeded.path, alice))


@pytest.mark.parametrize("collection", SERVER_ONLY, ids=str)
def test_owner_cannot_list_own_server_only_documents(
    emulator: FirestoreEmulator, alice: str, bob: str, collection: OwnedCollection
) -> None:
    seed_owned(emulator, collection, alice, bob)

    assert_permission_denied(emulator.run_query(collection.collection_id, alice, owner_id=alice))


def test_owner_cannot_read_a_collection_the_rules_do_not_name(emulator: FirestoreEmulator, alice: str) -> None:
    path = f"unnamed_collection/{_new_id()}"
    emulator.seed(path, _owned_fields(alice))

    assert_permission_denied(emulator.get(path, alice))
    assert_permission_denied(emulator.run_query("unnamed_collection", alice, owner_id=alice))


# --- client writes: all denied, whoever asks ------------------------------------------------

ACTORS = ["owner", "other user", "anonymous"]


def _actor_uid(actor: str, alice: str, bob: str) -> str | None:
    return {"owner": alice, "other user": bob, "anonymous": None}[actor]


@every_collection
@pytest.mark.parametrize("actor", ACTORS)
def test_client_cannot_create_document(
    emulator: FirestoreEmulator,
    collection: OwnedCollection,
    actor: str,
    alice: str,
    bob: str,
) -> None:
    parent = seed_parent(emulator, collection, alice)
    uid = _actor_uid(actor, alice, bob)
    # In {uid}-keyed collections the caller's own uid is the id most likely to be allowed.
    document_id = uid if collection.id_is_uid and uid else _new_id()

    response = emulator.create(parent, collection.collection_id, document_id, uid)

    assert_permission_denied(response)
    assert emulator.read_as_admin(document_path(parent, collection, document_id)) is None


@every_collection
@pytest.mark.parametrize("actor", ACTORS)
def test_client_cannot_update_document(
    emulator: FirestoreEmulator,
    collection: OwnedCollection,
    actor: str,
    alice: str,
    bob: str,
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)
    before = emulator.read_as_admin(seeded.path)

    response = emulator.patch(
        seeded.path,
        _actor_uid(actor, alice, bob),
        {**_owned_fields(alice), "title": {"stringValue": "edited"}},
    )

    assert_permission_denied(response)
    assert emulator.read_as_admin(seeded.path) == before


@every_collection
@pytest.mark.parametrize("actor", ACTORS)
def test_client_cannot_delete_document(
    emulator: FirestoreEmulator,
    collection: OwnedCollection,
    actor: str,
    alice: str,
    bob: str,
) -> None:
    seeded = seed_owned(emulator, collection, alice, bob)

    response = emulator.delete(seeded.path, _actor_uid(actor, alice, bob))

    assert_permission_denied(response)
    assert emulator.read_as_admin(seeded.path) is not None
