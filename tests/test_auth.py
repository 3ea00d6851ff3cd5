"""The auth matrix: every route a signed-in CSM calls, of every function, answers 401
UNAUTHENTICATED, and changes nothing, for every way of failing to prove who the caller is.

The routes come from the functions' own routers (`tests/routes.py`), so a new route joins the
matrix by itself, and fails it until `BODIES` and `seed_objects` know how to call it. Each is
called on objects the caller owns, with a body that would make it succeed, so only the
credentials are wrong. Two instances of each function are used:

- the test stack's, in Auth emulator mode (firebase-admin skips signatures and expiry there but
  still checks audience, issuer, and, with `check_revoked`, revocation and disabled users);
- a second one without the Auth emulator that verifies RS256 signatures against a certificate
  the tests serve, for expired, tampered, wrongly signed and wrongly addressed tokens.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from common import files
from common.collections import CONTRACTS, MESSAGES, SESSIONS
from common.google import grants
from scripts.stack import PROJECT_ID, Stack
from tests import tokens
from tests.conftest import Api, Caller, Users, assert_error, assert_json_headers, raw_firestore, seed_action
from tests.routes import ServedRoute, user_routes

OTHER_PROJECT = "demo-other"

# A body that makes each body-taking route succeed (None: it takes none); `{name}` in a value is
# the id `seed_objects` keeps under that name. A new POST/PATCH route needs an entry here.
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/chat"): {"message": "How is Globex doing?"},
    ("POST", "/sessions/{session_id}/stop"): None,
    ("POST", "/actions/{action_id}/approve"): {},
    ("POST", "/integrations/google/connect"): None,
    ("POST", "/integrations/google/complete"): {"grant": "{google_grant}"},
    ("POST", "/contracts/{contract_id}/reparse"): None,
    ("POST", "/contracts/upload"): None,  # multipart: see UPLOADS
    ("POST", "/actions/{action_id}/reject"): {"reason": "Not now"},
    ("PATCH", "/profile"): {"display_name": "Alice Renamed"},
    ("POST", "/customers"): {"name": "Initech"},
    ("PATCH", "/customers/{customer_id}"): {"name": "Acme Renamed"},
    ("PATCH", "/contracts/{contract_id}"): {"title": "Master agreement, renamed"},
    ("POST", "/tasks"): {"title": "Send the QBR deck"},
    ("PATCH", "/tasks/{task_id}"): {"title": "Call Acme back"},
    ("PATCH", "/sessions/{session_id}"): {"title": "Renewal prep, renamed"},
}

# The ids `seed_objects` creates, by the path parameter naming each. A route with any other
# parameter fails the matrix until the seeding creates one.
SEEDED_PARAMETERS = frozenset({"customer_id", "contract_id", "task_id", "session_id", "action_id"})


def coverage_gaps(routes: list[ServedRoute]) -> list[str]:
    """What the matrix cannot call: a body-taking route without a body, an id it does not seed."""
    gaps = []
    for route in routes:
        if route.method in {"POST", "PATCH"} and (route.method, route.pattern) not in BODIES:
            gaps.append(f"{route}: add a body that makes it succeed to BODIES")
        missing = [name for name in route.parameters if name not in SEEDED_PARAMETERS]
        if missing:
            gaps.append(f"{route}: no seeded object for {', '.join(missing)}; extend seed_objects()")
    return gaps


def path_of(route: ServedRoute, ids: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: ids[match.group(1)], route.pattern)


@pytest.fixture(scope="module")
def routes() -> list[ServedRoute]:
    """Every route of every function that a signed-in CSM calls."""
    found = user_routes()
    assert len([r for r in found if r.function == "crud"]) >= 20, found  # the crud routes of DESIGN §5
    assert coverage_gaps(found) == []
    return found


def test_every_user_route_of_every_function_is_in_the_matrix(routes: list[ServedRoute]) -> None:
    assert coverage_gaps(routes) == []
    assert {r.function for r in routes} >= {"crud"}


def revocation_checked(routes: list[ServedRoute]) -> list[ServedRoute]:
    checked = [route for route in routes if route.check_revoked]
    assert checked, "no crud route checks revocation"
    return checked


# -- the caller's objects ----------------------------------------------------------------------


@dataclass(frozen=True)
class Owned:
    """A caller and the ids of objects they own, keyed by the route parameter naming each."""

    caller: Caller
    ids: dict[str, str]


def seed_objects(api: Api, caller: Caller, repo: Any) -> Owned:
    """One object of each kind owned by `caller`, keyed by the route parameter naming it.

    Customers and tasks go through the API; contracts, sessions and messages have no create
    route in crud and are stored through the repository. The customer the routes act on is
    referenced by nothing, so deleting it succeeds.
    """

    def create(path: str, body: dict[str, Any]) -> str:
        reply = api.post(path, caller, json=body)
        assert reply.status_code == 201, reply.text
        return str(reply.json()["id"])

    customer_id = create("/customers", {"name": "Acme", "arr": 120000, "stage": "adopting"})
    holder_id = create("/customers", {"name": "Globex", "stage": "renewing"})
    task_id = create("/tasks", {"title": "Prepare the renewal call", "customer_id": holder_id})
    contract_path = f"contracts/{caller.uid}/seeded/msa.txt"
    files.put(contract_path, b"Master agreement. Term: 12 months.", "text/plain")  # its file, for reparse
    contract = repo.create(
        CONTRACTS,
        {
            "customer_id": holder_id,
            "title": "Master agreement",
            "file_name": "msa.txt",
            "content_type": "text/plain",
            "size_bytes": 12,
            "sha256": "0" * 64,
            "storage_path": contract_path,
            "status": "parsed",
        },
    )
    session = repo.create(
        SESSIONS,
        {
            "title": "Renewal prep",
            "customer_id": holder_id,
            "provider": "claude",
            "model": "claude-test",
            "message_count": 1,
            "status": "idle",
        },
    )
    repo.create(
        MESSAGES,
        {
            "role": "user",
            "parts": [{"type": "text", "text": "How is Globex doing?"}],
            "status": "complete",
        },
        parent_id=session["id"],
    )
    ids = {
        # A consent of the caller's that the OAuth callback parked (tokens Google never issued:
        # completing it asks Google nothing).
        "google_grant": grants.park(
            caller.uid,
            grants.Granted(
                google_email=f"{caller.uid}@gmail.test",
                google_sub=f"sub-{caller.uid}",
                scopes=["openid"],
                access_token=f"ya29.seeded-{uuid.uuid4().hex}",
                refresh_token=f"1//0seeded-{uuid.uuid4().hex}",
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            ),
        ),
        "customer_id": customer_id,
        "contract_id": contract["id"],
        "task_id": task_id,
        "session_id": session["id"],
        "action_id": seed_action(caller.uid, customer_id=holder_id)["id"],
        "holder_customer_id": holder_id,
        # Approving and rejecting decide an action for good: each gets its own.
        "action_id_to_reject": seed_action(caller.uid, customer_id=holder_id)["id"],
    }
    return Owned(caller, ids)


def firestore_contents() -> dict[str, dict[str, Any]]:
    """Every document in the (per-test) Firestore emulator, subcollections included, by path."""

    contents: dict[str, dict[str, Any]] = {}

    def walk(collections: Any) -> None:
        for collection in collections:
            for snapshot in collection.stream():
                contents[snapshot.reference.path] = snapshot.to_dict() or {}
                walk(snapshot.reference.collections())

    walk(raw_firestore().collections())
    return contents


# -- calling every route -----------------------------------------------------------------------


Apis = Mapping[str, Api]  # function → its instance


# Routes whose body is a form with a file; each is sent a small contract for the seeded customer.
UPLOADS = frozenset({("POST", "/contracts/upload")})


def call(apis: Apis, route: ServedRoute, ids: dict[str, str], authorization: str | None) -> requests.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    if route.pattern.endswith("/reject"):
        ids = {**ids, "action_id": ids["action_id_to_reject"]}
    api, path = apis[route.function], path_of(route, ids)
    if (route.method, route.pattern) in UPLOADS:
        form = {"customer_id": ids["holder_customer_id"]}  # the customer the delete acts on stays unreferenced
        files = {"file": ("terms.txt", f"Term: 12 months. {uuid.uuid4().hex}".encode(), "text/plain")}
        return api.call(route.method, path, data=form, files=files, headers=headers)
    return api.call(route.method, path, json=body_of(route, ids), headers=headers)


def body_of(route: ServedRoute, ids: Mapping[str, str]) -> dict[str, Any] | None:
    body = BODIES.get((route.method, route.pattern))
    if body is None:
        return None
    return {name: value.format(**ids) if isinstance(value, str) else value for name, value in body.items()}


def assert_401_everywhere(
    apis: Apis, routes: list[ServedRoute], ids: dict[str, str], authorization: str | None
) -> None:
    """Each route answers 401 with the error shape, and the database is exactly as it was."""
    before = firestore_contents()
    seeded = {name: doc_id for name, doc_id in ids.items() if not name.startswith(("holder", "google"))}
    stored = {f"{name.split('_id')[0]}s/{doc_id}" for name, doc_id in seeded.items()}
    stored.add(f"sessions/{ids['session_id']}/messages/")
    assert all(any(path.startswith(prefix) for path in before) for prefix in stored), "nothing seeded where checked"
    failures = []
    for route in routes:
        reply = call(apis, route, ids, authorization)
        try:
            assert_error(reply, 401, "UNAUTHENTICATED")
        except AssertionError as error:
            failures.append(f"{route}: {error}")
    assert failures == []
    assert firestore_contents() == before, "a rejected call changed stored data"


def assert_succeeds_everywhere(apis: Apis, routes: list[ServedRoute], ids: dict[str, str], authorization: str) -> None:
    """The positive control: the same calls with good credentials succeed (deletes last)."""
    failures = []
    for route in sorted(routes, key=lambda route: route.method == "DELETE"):
        reply = call(apis, route, ids, authorization)
        if not 200 <= reply.status_code < 300:
            failures.append(f"{route}: {reply.status_code} {reply.text}")
        elif reply.status_code != 204 and not reply.headers["Content-Type"].startswith("text/event-stream"):
            assert_json_headers(reply)  # successes too, as errors (assert_error) everywhere
    assert failures == []


# -- against the test stack (Auth emulator) ----------------------------------------------------


@pytest.fixture
def alices_objects(crud: Api, alice: Caller, repo_for: Any) -> Owned:
    return seed_objects(crud, alice, repo_for(alice.uid))


class AuthEmulatorAccounts:
    """Admin changes to Auth emulator accounts, as firebase-admin makes them (accounts:update)."""

    def __init__(self, stack: Stack) -> None:
        base = f"http://127.0.0.1:{stack.ports.auth}/identitytoolkit.googleapis.com/v1"
        self.url = f"{base}/projects/{PROJECT_ID}/accounts:update"

    def revoke_refresh_tokens(self, uid: str) -> None:
        # Like auth.revoke_refresh_tokens: tokens issued before this second stop counting.
        self._update(uid, validSince=str(int(time.time())))

    def set_disabled(self, uid: str, disabled: bool) -> None:
        self._update(uid, disableUser=disabled)  # auth.update_user(uid, disabled=...)

    def _update(self, uid: str, **changes: Any) -> None:
        headers = {"Authorization": "Bearer owner"}  # the emulator's admin credential
        reply = requests.post(self.url, json={"localId": uid, **changes}, headers=headers, timeout=10)
        reply.raise_for_status()


@pytest.fixture
def accounts(stack: Stack) -> AuthEmulatorAccounts:
    return AuthEmulatorAccounts(stack)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _unsigned_bearer(uid: str, **claims: Any) -> str:
    """An Auth-emulator-style (unsigned) token, as the emulator-mode instance accepts them."""
    return "Bearer " + tokens.unsigned(tokens.id_token_claims(uid, PROJECT_ID, **claims))


BAD_AUTHORIZATION: dict[str, Callable[[Caller], str | None]] = {
    "no-authorization-header": lambda alice: None,
    "bearer-without-token": lambda alice: "Bearer",
    "bearer-garbage": lambda alice: "Bearer not-a-token",
    "bearer-garbage-jwt-shape": lambda alice: "Bearer eyJhbGciOiJSUzI1NiJ9.bm9wZQ.c2lnbmF0dXJl",
    "bearer-two-tokens": lambda alice: f"Bearer {alice.token} {alice.token}",
    "basic-scheme": lambda alice: _basic(alice.email, alice.password),
    "valid-token-under-another-scheme": lambda alice: f"Token {alice.token}",
    "valid-token-without-scheme": lambda alice: alice.token,
    "token-for-another-project": lambda alice: _unsigned_bearer(
        alice.uid, aud=OTHER_PROJECT, iss=tokens.ISSUER_PREFIX + OTHER_PROJECT
    ),
    "token-for-another-audience": lambda alice: _unsigned_bearer(alice.uid, aud=OTHER_PROJECT),
    "token-from-another-issuer": lambda alice: _unsigned_bearer(alice.uid, iss=tokens.ISSUER_PREFIX + OTHER_PROJECT),
}


@pytest.mark.parametrize("case", BAD_AUTHORIZATION)
def test_missing_or_malformed_credentials_get_401_on_every_route(
    case: str, apis: dict[str, Api], alices_objects: Owned, routes: list[ServedRoute]
) -> None:
    authorization = BAD_AUTHORIZATION[case](alices_objects.caller)
    assert_401_everywhere(apis, routes, alices_objects.ids, authorization)


def test_owner_token_succeeds_on_every_route(
    apis: dict[str, Api], alices_objects: Owned, routes: list[ServedRoute]
) -> None:
    assert_succeeds_everywhere(apis, routes, alices_objects.ids, f"Bearer {alices_objects.caller.token}")


def test_unsigned_token_for_this_project_passes_in_emulator_mode(crud: Api, alice: Caller) -> None:
    """Control for the wrong-project cases: this instance accepts an unsigned token for its
    own project, so those are refused for their audience and issuer alone."""
    reply = crud.get("/profile", headers={"Authorization": _unsigned_bearer(alice.uid)})
    assert reply.status_code == 200, reply.text
    assert reply.json()["owner_id"] == alice.uid


def test_revoked_token_gets_401_on_routes_that_check_revocation(
    apis: dict[str, Api], users: Users, accounts: AuthEmulatorAccounts, alices_objects: Owned, routes: list[ServedRoute]
) -> None:
    alice = alices_objects.caller
    # A revocation covers tokens issued before its second, not within it.
    issued_at = tokens.claims_of(alice.token)["iat"]
    time.sleep(max(0.0, issued_at + 1.05 - time.time()))
    accounts.revoke_refresh_tokens(alice.uid)

    checked = revocation_checked(routes)
    assert_401_everywhere(apis, checked, alices_objects.ids, f"Bearer {alice.token}")
    assert_succeeds_everywhere(apis, checked, alices_objects.ids, f"Bearer {users.sign_in(alice).token}")


def test_disabled_user_gets_401_on_routes_that_check_revocation(
    apis: dict[str, Api], accounts: AuthEmulatorAccounts, alices_objects: Owned, routes: list[ServedRoute]
) -> None:
    alice = alices_objects.caller
    accounts.set_disabled(alice.uid, True)

    checked = revocation_checked(routes)
    assert_401_everywhere(apis, checked, alices_objects.ids, f"Bearer {alice.token}")
    accounts.set_disabled(alice.uid, False)  # the control: the same token works again
    assert_succeeds_everywhere(apis, checked, alices_objects.ids, f"Bearer {alice.token}")


# -- against a crud instance that checks signatures ---------------------------------------------


@dataclass(frozen=True)
class SigningCrud:
    """An instance of every function with user routes that verifies tokens against `key`'s
    served certificate; `api` is crud's."""

    apis: dict[str, Api]
    key: tokens.SigningKey
    impostor: tokens.SigningKey  # another key pair presenting the same kid

    @property
    def api(self) -> Api:
        return self.apis["crud"]

    def token(self, uid: str, **claims: Any) -> str:
        return tokens.sign_rs256(tokens.id_token_claims(uid, PROJECT_ID, **claims), self.key)


@pytest.fixture(scope="module")
def signing_crud(stack: Stack) -> Iterator[SigningCrud]:
    key = tokens.make_signing_key(f"test-key-{uuid.uuid4().hex[:8]}")
    impostor = tokens.make_signing_key(key.kid)
    certificates = tokens.CertificateServer(key).start()
    try:
        # Without the Auth emulator's address, firebase-admin checks signatures and expiry:
        # the very checks proven here.
        changes = {"CSCX_ID_TOKEN_CERTS_URL": certificates.certs_url, "FIREBASE_AUTH_EMULATOR_HOST": None}
        functions = sorted({route.function for route in user_routes()})
        urls = stack.start_variants(dict.fromkeys(functions), "signature-checks", changes)
        apis = {name: Api(url) for name, url in urls.items()}
        yield SigningCrud(apis, key, impostor)
    finally:
        certificates.stop()


@pytest.fixture
def signed_alices_objects(signing_crud: SigningCrud, repo_for: Any) -> Owned:
    """A user known only by her signed token (this instance never asks the Auth backend)."""
    uid = f"signed-{uuid.uuid4().hex[:12]}"
    alice = Caller(uid, f"{uid}@example.com", "", signing_crud.token(uid))
    return seed_objects(signing_crud.api, alice, repo_for(uid))


def _expired(crud: SigningCrud, uid: str) -> str:
    return crud.token(uid, now=int(time.time()) - 7200)  # issued two hours ago, expired an hour ago


def _tampered_subject(crud: SigningCrud, uid: str) -> str:
    """Mallory's genuine token, rewritten to name the victim, the signature kept."""
    genuine = crud.token("mallory")
    return tokens.with_claims(genuine, sub=uid, user_id=uid, email=f"{uid}@example.com")


BAD_SIGNED_TOKENS: dict[str, Callable[[SigningCrud, str], str]] = {
    "expired": _expired,
    "tampered-subject": _tampered_subject,
    "signed-by-another-key-with-the-same-kid": lambda crud, uid: tokens.sign_rs256(
        tokens.id_token_claims(uid, PROJECT_ID), crud.impostor
    ),
    "alg-none": lambda crud, uid: tokens.unsigned(tokens.id_token_claims(uid, PROJECT_ID), kid=crud.key.kid),
    "hs256-keyed-with-the-public-certificate": lambda crud, uid: tokens.hs256_with_public_certificate(
        tokens.id_token_claims(uid, PROJECT_ID), crud.key
    ),
    "wrong-audience": lambda crud, uid: crud.token(uid, aud=OTHER_PROJECT),
    "wrong-issuer": lambda crud, uid: crud.token(uid, iss=tokens.ISSUER_PREFIX + OTHER_PROJECT),
    "missing-kid": lambda crud, uid: tokens.sign_rs256(
        tokens.id_token_claims(uid, PROJECT_ID), crud.key, with_kid=False
    ),
    "unknown-kid": lambda crud, uid: tokens.sign_rs256(
        tokens.id_token_claims(uid, PROJECT_ID), crud.key, kid="no-such-key"
    ),
}


def test_correctly_signed_token_succeeds_on_every_route_without_revocation_check(
    signing_crud: SigningCrud, signed_alices_objects: Owned, routes: list[ServedRoute]
) -> None:
    # Routes with check_revoked would ask Google's Auth API (offline here) about the user.
    unchecked = [route for route in routes if not route.check_revoked]
    authorization = f"Bearer {signed_alices_objects.caller.token}"
    assert_succeeds_everywhere(signing_crud.apis, unchecked, signed_alices_objects.ids, authorization)


@pytest.mark.parametrize("case", BAD_SIGNED_TOKENS)
def test_badly_signed_or_addressed_token_gets_401_on_every_route(
    case: str, signing_crud: SigningCrud, signed_alices_objects: Owned, routes: list[ServedRoute]
) -> None:
    token = BAD_SIGNED_TOKENS[case](signing_crud, signed_alices_objects.caller.uid)
    assert_401_everywhere(signing_crud.apis, routes, signed_alices_objects.ids, f"Bearer {token}")
