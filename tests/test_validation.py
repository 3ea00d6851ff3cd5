"""What the crud API accepts (DESIGN §3 and §4), written as tables.

Server-owned fields in a body are refused and never stored; every field's bounds are
enforced with a 400 whose `details` name the field; bodies, query parameters and
`If-Match` preconditions are checked before anything is written. Every refusal has the
contract's error shape, and a refused write leaves every object exactly as it was.
"""

from __future__ import annotations

import socket
import time
import uuid
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from pydantic import BaseModel

from bench.edge import HOSTILE_BODIES, hostile_body
from common.actions import MeetingPayload
from common.collections import CONTRACTS, SESSIONS
from common.models import ProfileUpdate
from common.validation import InvalidInputError, parse_value
from scripts.stack import Stack
from tests.conftest import Api, Caller, assert_error, raw_firestore, seed_action
from tests.routes import ServedRoute, user_routes

MIB = 1024 * 1024
STAMP = "2000-01-01T00:00:00Z"


def assert_contract_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """The exact error shape of DESIGN §4: status, message and, if any, well-formed details."""
    error = assert_error(response, status, code)
    assert set(error) <= {"status", "message", "details"}, error
    if "details" in error:
        assert isinstance(error["details"], list)
        assert error["details"]
        for detail in error["details"]:
            assert set(detail) == {"field", "message"}, detail
            assert isinstance(detail["field"], str)
            assert detail["field"]
            assert isinstance(detail["message"], str)
            assert detail["message"]
    return error


def assert_invalid(response: requests.Response, *fields: str) -> None:
    """400 INVALID_ARGUMENT whose details name exactly `fields`."""
    error = assert_contract_error(response, 400, "INVALID_ARGUMENT")
    assert [detail["field"] for detail in error.get("details", [])] == list(fields), error


# -- objects to write to ---------------------------------------------------------------


@dataclass
class Owned:
    """One object of every writable kind, owned by `user`; `paths` maps kind → its URL, `verbs`
    the routes that act on one (`actions/approve` → its URL)."""

    user: Caller
    paths: dict[str, str]
    customer_id: str
    action_id: str = ""
    verbs: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def owned(crud: Api, alice: Caller, repo_for: Any) -> Owned:
    customer = crud.post(
        "/customers",
        alice,
        json={
            "name": "Acme",
            "domain": "acme.com",
            "arr": 120000,
            "health_score": 70,
            "renewal_date": "2026-09-30",
            "primary_contact": {"name": "Carol", "email": "carol@acme.com"},
            "notes": "keep me",
        },
    )
    assert customer.status_code == 201, customer.text
    customer_id = customer.json()["id"]
    task = crud.post(
        "/tasks",
        alice,
        json={"title": "Call Acme", "customer_id": customer_id, "due_date": "2026-06-01", "notes": "keep me"},
    )
    assert task.status_code == 201, task.text
    repo = repo_for(alice.uid)
    contract = repo.create(
        CONTRACTS,
        {
            "customer_id": customer_id,
            "title": "Acme MSA",
            "file_name": "msa.pdf",
            "content_type": "application/pdf",
            "size_bytes": 1000,
            "sha256": "a" * 64,
            "storage_path": f"contracts/{alice.uid}/msa.pdf",
            "status": "parsed",
            "extracted": {"summary": "one year"},
            "parse_error": None,
            "parsed_at": None,
            "model": "claude-test",
        },
    )
    session = repo.create(
        SESSIONS,
        {
            "title": "Acme renewal",
            "customer_id": customer_id,
            "provider": "claude",
            "model": "claude-test",
            "message_count": 0,
            "last_message_at": None,
            "status": "idle",
            "stop_requested_at": None,
        },
    )
    paths = {
        "customers": f"/customers/{customer_id}",
        "tasks": f"/tasks/{task.json()['id']}",
        "contracts": f"/contracts/{contract['id']}",
        "sessions": f"/sessions/{session['id']}",
        "profile": "/profile",
    }
    action = seed_action(alice.uid, customer_id=customer_id)
    verbs = {f"actions/{verb}": f"/actions/{action['id']}/{verb}" for verb in ("approve", "reject")}
    return Owned(alice, paths, customer_id, action["id"], verbs)


def snapshot(crud: Api, owned: Owned) -> dict[str, Any]:
    """Everything the owner can read: each object (version and timestamps included) and the lists."""
    state: dict[str, Any] = {}
    for kind, path in owned.paths.items():
        response = crud.get(path, owned.user)
        assert response.status_code == 200, response.text
        state[kind] = response.json()
    for path in ("/customers", "/tasks"):
        state[path] = crud.get(path, owned.user, params={"limit": "100"}).json()
    if owned.action_id:
        state["action"] = raw_firestore().collection("actions").document(owned.action_id).get().to_dict()
    return state


@pytest.fixture
def unchanged(crud: Api, owned: Owned) -> Iterator[None]:
    """Asserts, after the test, that nothing the owner has was created, changed or deleted."""
    before = snapshot(crud, owned)
    yield
    assert snapshot(crud, owned) == before


# -- mass assignment -------------------------------------------------------------------

COMMON_SERVER_FIELDS: list[tuple[str, Any]] = [
    ("id", "forged-id"),
    ("owner_id", "someone-else"),
    ("version", 99),
    ("created_at", STAMP),
    ("updated_at", STAMP),
]

# kind → the server-owned fields a client might try to write, with a plausible value each.
SERVER_OWNED: dict[str, list[tuple[str, Any]]] = {
    "customers": [*COMMON_SERVER_FIELDS, ("name_lower", "aaa")],
    "tasks": [*COMMON_SERVER_FIELDS, ("source", "agent"), ("due_key", "0000-01-01")],
    "contracts": [
        *COMMON_SERVER_FIELDS,
        ("status", "parsed"),
        ("sha256", "0" * 64),
        ("storage_path", "contracts/someone-else/file.pdf"),
        ("file_name", "forged.pdf"),
        ("content_type", "text/html"),
        ("size_bytes", 1),
        ("parse_error", "forged"),
        ("parsed_at", STAMP),
        ("model", "forged-model"),
    ],
    "sessions": [
        *COMMON_SERVER_FIELDS,
        ("status", "streaming"),
        ("message_count", 1000),
        ("last_message_at", STAMP),
        ("stop_requested_at", STAMP),
    ],
    "profile": [*COMMON_SERVER_FIELDS, ("email", "forged@example.com")],
}

# A valid body for each kind, so that only the server-owned field is wrong.
VALID_CREATE: dict[str, dict[str, Any]] = {
    "customers": {"name": "Globex"},
    "tasks": {"title": "Send the QBR deck"},
}
VALID_PATCH: dict[str, dict[str, Any]] = {
    "customers": {"name": "Acme Renamed"},
    "tasks": {"title": "Call Acme today"},
    "contracts": {"title": "Acme MSA v2"},
    "sessions": {"title": "Acme renewal prep"},
    "profile": {"display_name": "Alice A."},
}


def _cases(kinds: list[str]) -> list[Any]:
    return [
        pytest.param(kind, name, value, id=f"{kind}.{name}") for kind in kinds for name, value in SERVER_OWNED[kind]
    ]


@pytest.mark.parametrize(("kind", "name", "value"), _cases(["customers", "tasks"]))
def test_create_with_a_server_owned_field_is_refused_and_creates_nothing(
    crud: Api, alice: Caller, kind: str, name: str, value: Any
) -> None:
    response = crud.post(f"/{kind}", alice, json={**VALID_CREATE[kind], name: value})
    assert_invalid(response, name)
    assert crud.get(f"/{kind}", alice).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(("kind", "name", "value"), _cases(list(SERVER_OWNED)))
@pytest.mark.usefixtures("unchanged")
def test_update_with_a_server_owned_field_is_refused_and_stores_nothing(
    crud: Api, owned: Owned, kind: str, name: str, value: Any
) -> None:
    response = crud.patch(owned.paths[kind], owned.user, json={**VALID_PATCH[kind], name: value})
    assert_invalid(response, name)


# -- customer fields -------------------------------------------------------------------

# Each row: fields that break exactly one rule, and the field the 400 must name. Sent on
# create (with a valid name) and on update.
CUSTOMER_INVALID = [
    pytest.param({"name": ""}, "name", id="name empty"),
    pytest.param({"name": "   "}, "name", id="name whitespace"),
    pytest.param({"name": "x" * 201}, "name", id="name 201 chars"),
    pytest.param({"name": 42}, "name", id="name a number"),
    pytest.param({"domain": "not a domain"}, "domain", id="domain"),
    pytest.param({"arr": -1}, "arr", id="arr negative"),
    pytest.param({"arr": -0.01}, "arr", id="arr slightly negative"),
    pytest.param({"arr": "1000"}, "arr", id="arr a string"),
    pytest.param({"arr": 1e16}, "arr", id="arr absurd"),
    pytest.param({"health_score": -1}, "health_score", id="health -1"),
    pytest.param({"health_score": 101}, "health_score", id="health 101"),
    pytest.param({"health_score": 50.5}, "health_score", id="health fractional"),
    pytest.param({"health_score": "50"}, "health_score", id="health a string"),
    pytest.param({"health_score": True}, "health_score", id="health a boolean"),
    pytest.param({"stage": "won"}, "stage", id="stage not in enum"),
    pytest.param({"stage": "Renewing"}, "stage", id="stage wrong case"),
    pytest.param({"currency": "usd"}, "currency", id="currency lower case"),
    pytest.param({"currency": "US"}, "currency", id="currency 2 letters"),
    pytest.param({"currency": "EURO"}, "currency", id="currency 4 letters"),
    pytest.param({"currency": "XYZ"}, "currency", id="currency not an ISO 4217 code"),
    pytest.param({"renewal_date": "2026-13-01"}, "renewal_date", id="renewal month 13"),
    pytest.param({"renewal_date": "2026-02-30"}, "renewal_date", id="renewal Feb 30"),
    pytest.param({"renewal_date": "01/02/2026"}, "renewal_date", id="renewal US format"),
    pytest.param({"renewal_date": 20260101}, "renewal_date", id="renewal a number"),
    pytest.param({"renewal_date": "2026-01-01T00:00:00Z"}, "renewal_date", id="renewal a timestamp"),
    pytest.param({"primary_contact": {"name": "Carol", "email": "carol"}}, "primary_contact.email", id="contact email"),
    pytest.param({"primary_contact": {"email": "carol@example.com"}}, "primary_contact.name", id="contact no name"),
    pytest.param({"primary_contact": "Carol"}, "primary_contact", id="contact a string"),
    pytest.param({"stakeholders": [{"email": "dana@example.com"}]}, "stakeholders.0.name", id="stakeholder no name"),
    pytest.param(
        {"stakeholders": [{"name": "Dana", "email": "dana@"}]}, "stakeholders.0.email", id="stakeholder email"
    ),
    pytest.param(
        {"stakeholders": [{"name": "Dana", "is_champion": "yes"}]},
        "stakeholders.0.is_champion",
        id="stakeholder flag a string",
    ),
    pytest.param({"stakeholders": [{"name": "Dana", "phone": "1"}]}, "stakeholders.0.phone", id="stakeholder unknown"),
    pytest.param({"tags": ["x" * 51]}, "tags.0", id="tag 51 chars"),
    pytest.param({"tags": [""]}, "tags.0", id="tag empty"),
    pytest.param({"tags": [f"t{i}" for i in range(51)]}, "tags", id="51 tags"),
    pytest.param({"tags": "vip"}, "tags", id="tags a string"),
    pytest.param({"notes": "x" * 20_001}, "notes", id="notes too long"),
    pytest.param({"colour": "red"}, "colour", id="unknown field"),
]

# Each row: fields at the edge of a rule, which are accepted and stored as sent.
CUSTOMER_VALID = [
    pytest.param({"name": "x" * 200}, id="name 200 chars"),
    pytest.param({"name": "A"}, id="name 1 char"),
    pytest.param({"arr": 0}, id="arr 0"),
    pytest.param({"arr": 1234.5}, id="arr fractional"),
    pytest.param({"health_score": 0}, id="health 0"),
    pytest.param({"health_score": 100}, id="health 100"),
    pytest.param({"stage": "at_risk"}, id="stage at_risk"),
    pytest.param({"currency": "EUR"}, id="currency EUR"),
    pytest.param({"renewal_date": "2028-02-29"}, id="renewal leap day"),
    pytest.param({"domain": "acme.example.com"}, id="domain"),
    pytest.param({"primary_contact": {"name": "Carol", "email": "carol@acme.com", "title": "CTO"}}, id="contact"),
    pytest.param(
        {
            "stakeholders": [
                {
                    "name": "Dana",
                    "email": "dana@acme.com",
                    "role": "VP",
                    "is_champion": True,
                    "is_decision_maker": False,
                }
            ]
        },
        id="stakeholder",
    ),
    pytest.param({"tags": ["x" * 50] + [f"t{i}" for i in range(49)]}, id="50 tags, 50 chars"),
]


@pytest.mark.parametrize(("fields", "field"), CUSTOMER_INVALID)
@pytest.mark.usefixtures("unchanged")
def test_customer_field_out_of_bounds_is_refused_on_create_and_update(
    crud: Api, owned: Owned, fields: dict[str, Any], field: str
) -> None:
    assert_invalid(crud.post("/customers", owned.user, json={"name": "Globex", **fields}), field)
    assert_invalid(crud.patch(owned.paths["customers"], owned.user, json=fields), field)


def test_customer_without_a_name_is_refused(crud: Api, alice: Caller) -> None:
    assert_invalid(crud.post("/customers", alice, json={"arr": 10}), "name")
    assert crud.get("/customers", alice).json()["items"] == []


def test_every_bad_field_is_named_at_once(crud: Api, alice: Caller) -> None:
    response = crud.post("/customers", alice, json={"name": "", "arr": -1, "health_score": 101, "colour": "red"})
    error = assert_contract_error(response, 400, "INVALID_ARGUMENT")
    assert sorted(detail["field"] for detail in error["details"]) == ["arr", "colour", "health_score", "name"]


@pytest.mark.parametrize("fields", CUSTOMER_VALID)
def test_customer_field_at_its_bound_is_accepted(crud: Api, alice: Caller, fields: dict[str, Any]) -> None:
    created = crud.post("/customers", alice, json={"name": "Globex", **fields})
    assert created.status_code == 201, created.text
    stored = crud.get(f"/customers/{created.json()['id']}", alice).json()
    assert {name: stored[name] for name in fields} == fields


# -- task fields -----------------------------------------------------------------------

TASK_INVALID = [
    pytest.param({"title": ""}, "title", id="title empty"),
    pytest.param({"title": "  "}, "title", id="title whitespace"),
    pytest.param({"title": "x" * 501}, "title", id="title 501 chars"),
    pytest.param({"title": ["Call"]}, "title", id="title a list"),
    pytest.param({"priority": "urgent"}, "priority", id="priority not in enum"),
    pytest.param({"priority": "HIGH"}, "priority", id="priority wrong case"),
    pytest.param({"status": "closed"}, "status", id="status not in enum"),
    pytest.param({"due_date": "2026-02-30"}, "due_date", id="due Feb 30"),
    pytest.param({"due_date": "tomorrow"}, "due_date", id="due a word"),
    pytest.param({"due_date": "2026-1-5"}, "due_date", id="due unpadded"),
    pytest.param({"due_date": 20260105}, "due_date", id="due a number"),
    pytest.param({"customer_id": "../customers/x"}, "customer_id", id="customer_id a path"),
    pytest.param({"customer_id": 7}, "customer_id", id="customer_id a number"),
    pytest.param({"customer_id": "noSuchCustomer"}, "customer_id", id="customer_id unknown"),
    pytest.param({"assignee": "bob"}, "assignee", id="unknown field"),
]

TASK_VALID = [
    pytest.param({"title": "x" * 500}, id="title 500 chars"),
    pytest.param({"priority": "low"}, id="priority low"),
    pytest.param({"priority": "high"}, id="priority high"),
    pytest.param({"status": "done"}, id="status done"),
    pytest.param({"due_date": "2026-12-31"}, id="due date"),
]


@pytest.mark.parametrize(("fields", "field"), TASK_INVALID)
@pytest.mark.usefixtures("unchanged")
def test_task_field_out_of_bounds_is_refused_on_create_and_update(
    crud: Api, owned: Owned, fields: dict[str, Any], field: str
) -> None:
    assert_invalid(crud.post("/tasks", owned.user, json={"title": "Send the deck", **fields}), field)
    assert_invalid(crud.patch(owned.paths["tasks"], owned.user, json=fields), field)


def test_task_without_a_title_is_refused(crud: Api, alice: Caller) -> None:
    assert_invalid(crud.post("/tasks", alice, json={"priority": "high"}), "title")
    assert crud.get("/tasks", alice).json()["items"] == []


@pytest.mark.parametrize("fields", TASK_VALID)
def test_task_field_at_its_bound_is_accepted(crud: Api, alice: Caller, fields: dict[str, Any]) -> None:
    created = crud.post("/tasks", alice, json={"title": "Send the deck", **fields})
    assert created.status_code == 201, created.text
    stored = crud.get(f"/tasks/{created.json()['id']}", alice).json()
    assert {name: stored[name] for name in fields} == fields
    assert stored["source"] == "manual"


# -- profile fields --------------------------------------------------------------------

PROFILE_INVALID = [
    pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", id="timezone not IANA"),
    pytest.param({"timezone": "GMT+2"}, "timezone", id="timezone an offset"),
    pytest.param({"timezone": "utc"}, "timezone", id="timezone wrong case"),
    pytest.param({"timezone": None}, "timezone", id="timezone null"),
    pytest.param({"preferences": {"auto_approve": ["email.send"]}}, "preferences.auto_approve", id="auto email.send"),
    pytest.param(
        {"preferences": {"auto_approve": ["meeting.book"]}}, "preferences.auto_approve", id="auto meeting.book"
    ),
    pytest.param(
        {"preferences": {"auto_approve": ["task.create", "email.send"]}},
        "preferences.auto_approve",
        id="auto low and high",
    ),
    pytest.param(
        {"preferences": {"auto_approve": ["task.create", "task.create"]}}, "preferences.auto_approve", id="auto twice"
    ),
    pytest.param({"preferences": {"auto_approve": ["sms.send"]}}, "preferences.auto_approve.0", id="auto unknown"),
    pytest.param({"preferences": {"auto_approve": "task.create"}}, "preferences.auto_approve", id="auto a string"),
    pytest.param({"preferences": {"default_provider": "openai"}}, "preferences.default_provider", id="provider"),
    pytest.param({"preferences": {"default_provider": None}}, "preferences.default_provider", id="provider null"),
    pytest.param({"preferences": {"theme": "dark"}}, "preferences.theme", id="preferences unknown field"),
    pytest.param({"preferences": None}, "preferences", id="preferences null"),
    pytest.param({"display_name": 5}, "display_name", id="display_name a number"),
    pytest.param({"signature": "x" * 5_001}, "signature", id="signature too long"),
    pytest.param({"theme": "dark"}, "theme", id="unknown field"),
]

PROFILE_VALID = [
    pytest.param({"timezone": "Europe/Paris"}, id="timezone"),
    pytest.param({"timezone": "UTC"}, id="timezone UTC"),
    pytest.param({"preferences": {"auto_approve": ["task.create"]}}, id="auto task.create"),
    pytest.param({"preferences": {"auto_approve": ["email.draft"]}}, id="auto email.draft"),
    pytest.param({"preferences": {"auto_approve": ["task.create", "email.draft"]}}, id="auto both low-risk"),
    pytest.param({"preferences": {"auto_approve": []}}, id="auto none"),
    pytest.param({"preferences": {"default_provider": "gemini"}}, id="provider gemini"),
    pytest.param({"display_name": "Alice A.", "signature": "-- Alice"}, id="name and signature"),
]


@pytest.mark.parametrize(("fields", "field"), PROFILE_INVALID)
@pytest.mark.usefixtures("unchanged")
def test_profile_field_out_of_bounds_is_refused(crud: Api, owned: Owned, fields: dict[str, Any], field: str) -> None:
    assert_invalid(crud.patch("/profile", owned.user, json=fields), field)


@pytest.mark.parametrize("fields", PROFILE_VALID)
def test_profile_field_within_bounds_is_accepted(crud: Api, alice: Caller, fields: dict[str, Any]) -> None:
    before = crud.get("/profile", alice).json()
    response = crud.patch("/profile", alice, json=fields)
    assert response.status_code == 200, response.text
    stored = crud.get("/profile", alice).json()
    assert stored["version"] == before["version"] + 1
    for name, value in fields.items():
        if name == "preferences":  # a partial update of the preferences keeps the others
            assert stored["preferences"] == {**before["preferences"], **value}
        else:
            assert stored[name] == value


# A profile's time zone and a meeting's are one rule: these zone files open with ZoneInfo (a
# meeting took them once) but are no IANA names (a profile refused them). In-process: no emulator.
ZONE_FILES_NOT_IANA = ["posix/Europe/Paris", "right/Europe/Paris", "posix/UTC", "posixrules"]
MEETING = {"title": "QBR", "start": "2030-05-01T10:00:00+02:00", "end": "2030-05-01T11:00:00+02:00"}


@pytest.mark.parametrize("zone", ZONE_FILES_NOT_IANA)
def test_a_zone_file_that_is_no_iana_name_is_refused_for_a_profile_and_a_meeting_alike(zone: str) -> None:
    assert zoneinfo.ZoneInfo(zone)  # what the meeting's check used to ask
    cases: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (ProfileUpdate, {"timezone": zone}),
        (MeetingPayload, {**MEETING, "timezone": zone}),
    ]
    for model, value in cases:
        with pytest.raises(InvalidInputError) as refused:
            parse_value(model, value)
        assert refused.value.details == [
            {"field": "timezone", "message": "must be an IANA time zone such as Europe/Paris"}
        ], model


@pytest.mark.parametrize("zone", ["Europe/Paris", "UTC", "America/Argentina/Buenos_Aires"])
def test_an_iana_time_zone_is_accepted_for_a_profile_and_a_meeting_alike(zone: str) -> None:
    assert parse_value(ProfileUpdate, {"timezone": zone}).timezone == zone
    assert parse_value(MeetingPayload, {**MEETING, "timezone": zone}).timezone == zone


# -- partial updates -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["customers", "tasks", "contracts", "sessions", "profile"])
@pytest.mark.usefixtures("unchanged")
def test_update_naming_no_field_is_refused(crud: Api, owned: Owned, kind: str) -> None:
    assert_invalid(crud.patch(owned.paths[kind], owned.user, json={}), "body")


# Fields every stored object has: null may not clear them.
REQUIRED_FIELDS = [
    ("customers", "name"),
    ("customers", "currency"),
    ("customers", "stage"),
    ("customers", "tags"),
    ("customers", "stakeholders"),
    ("tasks", "title"),
    ("tasks", "priority"),
    ("tasks", "status"),
    ("contracts", "customer_id"),
]

# Optional fields: null clears them.
OPTIONAL_FIELDS = [
    ("customers", "notes"),
    ("customers", "domain"),
    ("customers", "arr"),
    ("customers", "health_score"),
    ("customers", "renewal_date"),
    ("customers", "primary_contact"),
    ("tasks", "notes"),
    ("tasks", "due_date"),
    ("tasks", "customer_id"),
    ("contracts", "title"),
    ("sessions", "title"),
    ("sessions", "customer_id"),
    ("profile", "display_name"),
    ("profile", "signature"),
]


@pytest.mark.parametrize(("kind", "name"), REQUIRED_FIELDS, ids=[f"{k}.{n}" for k, n in REQUIRED_FIELDS])
@pytest.mark.usefixtures("unchanged")
def test_null_for_a_required_field_is_refused(crud: Api, owned: Owned, kind: str, name: str) -> None:
    assert_invalid(crud.patch(owned.paths[kind], owned.user, json={name: None}), name)


@pytest.mark.parametrize(("kind", "name"), OPTIONAL_FIELDS, ids=[f"{k}.{n}" for k, n in OPTIONAL_FIELDS])
def test_null_for_an_optional_field_clears_it(crud: Api, owned: Owned, kind: str, name: str) -> None:
    before = crud.get(owned.paths[kind], owned.user).json()
    assert before[name] is not None
    response = crud.patch(owned.paths[kind], owned.user, json={name: None})
    assert response.status_code == 200, response.text
    after = crud.get(owned.paths[kind], owned.user).json()
    assert after[name] is None
    assert after["version"] == before["version"] + 1
    unchanged = {k: v for k, v in before.items() if k not in {name, "version", "updated_at"}}
    assert {k: after[k] for k in unchanged} == unchanged


# -- bodies ----------------------------------------------------------------------------

# The objects the `owned` fixture creates, by the key of `Owned.paths`, and the verbs on them.
OWNED_KINDS = frozenset({"customers", "tasks", "contracts", "sessions", "profile"})
OWNED_VERBS = frozenset({"actions/approve", "actions/reject"})
# Writes whose body may be left out (an empty body is `{}`): the empty-body case is theirs to accept.
OPTIONAL_BODY = frozenset({("POST", "/actions/{action_id}/approve"), ("POST", "/actions/{action_id}/reject")})


def target_of(route: ServedRoute) -> str | None:
    """Where a write route is called: its own path, or the `Owned.paths` key of the object it
    writes to; None for a route the matrix does not know how to call yet."""
    if route.pattern == "/profile":
        return "profile"
    if not route.parameters:
        return route.pattern
    kind = route.pattern.split("/")[1]
    if route.pattern == f"/{kind}/{{{route.parameters[0]}}}" and kind in OWNED_KINDS:
        return kind
    verb = f"{kind}/{route.pattern.rsplit('/', 1)[-1]}"
    if route.pattern == f"/{kind}/{{{route.parameters[0]}}}/{verb.split('/')[1]}" and verb in OWNED_VERBS:
        return verb
    return None


# Writes that take no JSON body (none at all, or a form): a JSON body sent is ignored or refused.
NO_BODY = frozenset(
    {
        ("POST", "/sessions/{session_id}/stop"),
        ("POST", "/integrations/google/connect"),
        ("POST", "/contracts/{contract_id}/reparse"),
        ("POST", "/contracts/upload"),  # a form with a file: tests/test_contracts.py refuses its bad bodies
    }
)


def write_routes() -> list[ServedRoute]:
    """Every route that reads a JSON body, of every function, from the routers."""
    return [
        route
        for route in user_routes()
        if route.method in {"POST", "PATCH"} and (route.method, route.pattern) not in NO_BODY
    ]


def coverage_gaps(routes: list[ServedRoute]) -> list[str]:
    return [f"{route}: teach target_of() and `owned` to call it" for route in routes if target_of(route) is None]


def test_every_write_route_of_every_function_is_in_the_body_matrix() -> None:
    routes = write_routes()
    assert coverage_gaps(routes) == []
    assert len(routes) >= 7


def _write_targets() -> list[tuple[ServedRoute, str]]:
    return [(route, target) for route in write_routes() if (target := target_of(route)) is not None]


@dataclass(frozen=True)
class BadBody:
    raw: bytes
    content_type: str | None  # None: no Content-Type header
    status: int
    code: str


def _bad_json(raw: bytes) -> BadBody:
    return BadBody(raw, "application/json", 400, "INVALID_ARGUMENT")


def _wrong_type(raw: bytes, content_type: str | None) -> BadBody:
    return BadBody(raw, content_type, 415, "UNSUPPORTED_MEDIA_TYPE")


VALID_FOR_EVERY_ROUTE = b'{"name": "Acme", "title": "Acme"}'
BAD_BODIES = [
    pytest.param(_bad_json(b"{not json"), id="not JSON"),
    pytest.param(_bad_json(b'{"title": "Acme",}'), id="trailing comma"),
    pytest.param(_bad_json(b"[" + VALID_FOR_EVERY_ROUTE + b"]"), id="array"),
    pytest.param(_bad_json(b'"Acme"'), id="string"),
    pytest.param(_bad_json(b"42"), id="number"),
    pytest.param(_bad_json(b"null"), id="null"),
    pytest.param(_bad_json(b""), id="empty"),
    pytest.param(_bad_json(b'{"name": "\xff\xfe"}'), id="not UTF-8"),
    pytest.param(_bad_json(b'{"notes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), id="nested 100k deep"),
    pytest.param(_wrong_type(VALID_FOR_EVERY_ROUTE, "text/plain"), id="text/plain"),
    pytest.param(_wrong_type(b"name=Acme&title=Acme", "application/x-www-form-urlencoded"), id="form"),
    pytest.param(_wrong_type(VALID_FOR_EVERY_ROUTE, None), id="no Content-Type"),
]


def _route_path(owned: Owned, target: str) -> str:
    if target.startswith("/"):
        return target
    return owned.paths.get(target) or owned.verbs[target]


@pytest.mark.parametrize("case", BAD_BODIES)
@pytest.mark.usefixtures("unchanged")
def test_unusable_body_is_refused_by_every_write_route(
    apis: dict[str, Api], owned: Owned, subtests: pytest.Subtests, case: BadBody
) -> None:
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    for route, target in _write_targets():
        if not case.raw and (route.method, route.pattern) in OPTIONAL_BODY:
            continue  # an empty body is theirs to accept
        with subtests.test(route=str(route)):
            api = apis[route.function]
            response = api.call(route.method, _route_path(owned, target), owned.user, data=case.raw, headers=headers)
            assert_contract_error(response, case.status, case.code)


def _padded(body: bytes, size: int) -> bytes:
    """`body` (a JSON object) padded with trailing whitespace to exactly `size` bytes."""
    return body + b" " * (size - len(body))


@pytest.mark.usefixtures("unchanged")
def test_body_over_one_mebibyte_is_413_on_every_write_route(
    apis: dict[str, Api], owned: Owned, subtests: pytest.Subtests
) -> None:
    body = _padded(b'{"name": "Acme", "title": "Acme"}', MIB + 1)
    for route, target in _write_targets():
        with subtests.test(route=str(route)):
            response = apis[route.function].call(
                route.method,
                _route_path(owned, target),
                owned.user,
                data=body,
                headers={"Content-Type": "application/json"},
            )
            assert_contract_error(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.usefixtures("unchanged")
def test_chunked_body_over_one_mebibyte_is_413(crud: Api, owned: Owned) -> None:
    chunks = [b'{"name": "Acme", "notes": "', *([b"x" * 65536] * 16), b'x"}']  # no Content-Length
    response = crud.post("/customers", owned.user, data=iter(chunks), headers={"Content-Type": "application/json"})
    assert_contract_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_body_of_exactly_one_mebibyte_is_read(crud: Api, alice: Caller) -> None:
    body = _padded(b'{"name": "Acme"}', MIB)
    response = crud.post("/customers", alice, data=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Acme"


# -- query parameters ------------------------------------------------------------------

# Each row: list path ({session} is the owner's session), query, the field the 400 names.
BAD_QUERIES = [
    pytest.param("/customers", {"color": "red"}, "color", id="customers unknown parameter"),
    pytest.param("/contracts", {"color": "red"}, "color", id="contracts unknown parameter"),
    pytest.param("/tasks", {"color": "red"}, "color", id="tasks unknown parameter"),
    pytest.param("/sessions", {"color": "red"}, "color", id="sessions unknown parameter"),
    pytest.param("/sessions/{session}/messages", {"color": "red"}, "color", id="messages unknown parameter"),
    pytest.param("/customers", {"limit": "0"}, "limit", id="limit 0"),
    pytest.param("/customers", {"limit": "101"}, "limit", id="limit 101"),
    pytest.param("/customers", {"limit": "abc"}, "limit", id="limit abc"),
    pytest.param("/customers", {"limit": "-1"}, "limit", id="limit -1"),
    pytest.param("/customers", {"limit": "2.5"}, "limit", id="limit 2.5"),
    pytest.param("/customers", {"limit": " 5"}, "limit", id="limit padded"),
    pytest.param("/contracts", {"limit": "0"}, "limit", id="contracts limit 0"),
    pytest.param("/tasks", {"limit": "101"}, "limit", id="tasks limit 101"),
    pytest.param("/sessions", {"limit": "abc"}, "limit", id="sessions limit abc"),
    pytest.param("/sessions/{session}/messages", {"limit": "0"}, "limit", id="messages limit 0"),
    pytest.param("/customers", {"order": "arr"}, "order", id="customers order arr"),
    pytest.param("/customers", {"order": "-name"}, "order", id="customers order -name"),
    pytest.param("/customers", {"order": "name; drop"}, "order", id="customers order junk"),
    pytest.param("/contracts", {"order": "name"}, "order", id="contracts order"),
    pytest.param("/tasks", {"order": "title"}, "order", id="tasks order"),
    pytest.param("/sessions", {"order": "name"}, "order", id="sessions order"),
    pytest.param("/sessions/{session}/messages", {"order": "-created_at"}, "order", id="messages order"),
    pytest.param("/customers", {"stage": "won"}, "stage", id="stage not in enum"),
    pytest.param("/customers", {"stage": ""}, "stage", id="stage empty"),
    pytest.param("/customers", {"q": "acme", "order": "-arr"}, "order", id="q with -arr"),
    pytest.param("/customers", {"q": "acme", "order": "renewal_date"}, "order", id="q with renewal_date"),
    pytest.param("/customers", {"q": "acme", "order": "-updated_at"}, "order", id="q with -updated_at"),
    pytest.param("/customers", {"q": "  "}, "q", id="q blank"),
    pytest.param("/customers", {"q": "x" * 201}, "q", id="q 201 chars"),
    pytest.param("/tasks", {"status": "closed"}, "status", id="status not in enum"),
    pytest.param("/tasks", {"due_before": "2026-13-01"}, "due_before", id="due_before month 13"),
    pytest.param("/tasks", {"due_before": "tomorrow"}, "due_before", id="due_before a word"),
    pytest.param("/tasks", {"due_before": "01/02/2026"}, "due_before", id="due_before US format"),
    pytest.param("/tasks", {"due_before": "2026-1-5"}, "due_before", id="due_before unpadded"),
    pytest.param("/tasks", {"due_before": "2026-01-05T00:00"}, "due_before", id="due_before a timestamp"),
    pytest.param("/tasks", {"customer_id": "not an id"}, "customer_id", id="tasks customer_id"),
    pytest.param("/contracts", {"customer_id": "a/b"}, "customer_id", id="contracts customer_id"),
    pytest.param("/sessions", {"customer_id": ""}, "customer_id", id="sessions customer_id"),
    pytest.param("/customers", {"cursor": "not-a-cursor"}, "cursor", id="cursor garbage"),
]

GOOD_QUERIES = [
    pytest.param("/customers", {"q": "acme", "order": "name"}, id="q with name"),
    pytest.param("/customers", {"limit": "1"}, id="limit 1"),
    pytest.param("/customers", {"limit": "100"}, id="limit 100"),
    pytest.param("/customers", {"stage": "at_risk", "order": "-arr"}, id="stage and order"),
    pytest.param("/tasks", {"status": "done", "due_before": "2026-12-31"}, id="tasks filters"),
    pytest.param("/sessions/{session}/messages", {"limit": "100"}, id="messages limit 100"),
]


@pytest.mark.parametrize(("path", "query", "field"), BAD_QUERIES)
def test_bad_query_parameter_is_refused(crud: Api, owned: Owned, path: str, query: dict[str, str], field: str) -> None:
    session_id = owned.paths["sessions"].rsplit("/", 1)[1]
    response = crud.get(path.format(session=session_id), owned.user, params=query)
    assert_invalid(response, field)


@pytest.mark.parametrize(("path", "query"), GOOD_QUERIES)
def test_good_query_parameters_are_accepted(crud: Api, owned: Owned, path: str, query: dict[str, str]) -> None:
    session_id = owned.paths["sessions"].rsplit("/", 1)[1]
    response = crud.get(path.format(session=session_id), owned.user, params=query)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items", "next_cursor"}


@pytest.mark.usefixtures("unchanged")
def test_cascade_must_be_true_or_false(crud: Api, owned: Owned) -> None:
    assert_invalid(crud.delete(owned.paths["customers"], owned.user, params={"cascade": "yes"}), "cascade")


@pytest.mark.parametrize("limit", ["²", "١٠", "１０"], ids=["superscript", "Arabic-Indic", "fullwidth"])
def test_limit_in_other_scripts_digits_is_refused(crud: Api, alice: Caller, limit: str) -> None:
    assert_invalid(crud.get("/customers", alice, params={"limit": limit}), "limit")


# Routes without a list: a parameter they do not know (a hoped-for dry run) must not be ignored.
UNLISTED_QUERY_ROUTES = [
    ("GET", "customers"),
    ("PATCH", "customers"),
    ("DELETE", "customers"),
    ("POST", "/customers"),
    ("PATCH", "tasks"),
    ("DELETE", "contracts"),
    ("GET", "profile"),
    ("PATCH", "profile"),
]


@pytest.mark.parametrize(
    ("method", "target"), UNLISTED_QUERY_ROUTES, ids=[f"{m} {t}" for m, t in UNLISTED_QUERY_ROUTES]
)
@pytest.mark.usefixtures("unchanged")
def test_unknown_query_parameter_is_refused_on_every_route(crud: Api, owned: Owned, method: str, target: str) -> None:
    body = {"name": "Globex", "title": "Globex"} if method in {"POST", "PATCH"} else None
    response = crud.call(method, _route_path(owned, target), owned.user, json=body, params={"dry_run": "true"})
    assert_invalid(response, "dry_run")


# -- ETag and If-Match ------------------------------------------------------------------

VERSIONED = ["customers", "tasks", "contracts", "sessions", "profile"]
DELETABLE = ["customers", "tasks", "contracts", "sessions"]


@pytest.mark.parametrize("kind", VERSIONED)
def test_etag_is_the_quoted_version(crud: Api, owned: Owned, kind: str) -> None:
    response = crud.get(owned.paths[kind], owned.user)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{response.json()["version"]}"'
    assert response.json()["version"] == 1


@pytest.mark.parametrize("kind", VERSIONED)
def test_update_with_stale_if_match_is_412_and_changes_nothing(crud: Api, owned: Owned, kind: str) -> None:
    path, user = owned.paths[kind], owned.user
    etag = crud.get(path, user).headers["ETag"]

    first = crud.patch(path, user, json=VALID_PATCH[kind], headers={"If-Match": etag})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 2
    assert first.headers["ETag"] == '"2"'
    current = crud.get(path, user).json()

    stale_change = {name: f"stale {uuid.uuid4().hex[:6]}" for name in VALID_PATCH[kind]}
    stale = crud.patch(path, user, json=stale_change, headers={"If-Match": etag})
    assert_contract_error(stale, 412, "FAILED_PRECONDITION")
    assert crud.get(path, user).json() == current

    weak = crud.patch(path, user, json=stale_change, headers={"If-Match": 'W/"2"'})
    assert weak.status_code == 200, weak.text
    assert weak.json()["version"] == 3


@pytest.mark.parametrize("kind", DELETABLE)
def test_delete_with_stale_if_match_is_412_and_keeps_the_object(crud: Api, owned: Owned, kind: str) -> None:
    path, user = owned.paths[kind], owned.user
    patched = crud.patch(path, user, json=VALID_PATCH[kind])
    assert patched.status_code == 200, patched.text
    current = crud.get(path, user).json()
    query = "?cascade=true" if kind == "customers" else ""

    stale = crud.delete(path + query, user, headers={"If-Match": '"1"'})
    assert_contract_error(stale, 412, "FAILED_PRECONDITION")
    assert crud.get(path, user).json() == current

    fresh = crud.delete(path + query, user, headers={"If-Match": '"2"'})
    assert fresh.status_code == 204, fresh.text
    assert_contract_error(crud.get(path, user), 404, "NOT_FOUND")


@pytest.mark.parametrize("if_match", ["abc", '"v1"', "", '"-1"', '"²"', '"1" "2"'])
@pytest.mark.usefixtures("unchanged")
def test_if_match_that_is_not_an_etag_is_refused(crud: Api, owned: Owned, if_match: str) -> None:
    response = crud.patch(
        owned.paths["customers"], owned.user, json={"name": "Renamed"}, headers={"If-Match": if_match}
    )
    assert_contract_error(response, 400, "INVALID_ARGUMENT")


def test_a_body_declared_too_large_is_refused_before_it_is_sent(stack: Stack, alice: Caller) -> None:
    """The 413 comes back while the client has sent a sliver of its body (the real server, a raw socket)."""
    host, port = stack.url("crud").removeprefix("http://").split(":")
    declared = 11 * MIB
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST /customers HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"name": "')
        started = time.monotonic()
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        assert time.monotonic() - started < 1.5, "the answer waited for the body"
    status_line = received.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413"), received[:200]


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_a_mebibyte_made_of_errors_gets_a_small_answer_and_writes_nothing(crud: Api, alice: Caller, name: str) -> None:
    body = hostile_body(name)
    response = crud.post("/customers", alice, data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "INVALID_ARGUMENT")
    assert len(response.content) <= 16 * 1024
    assert crud.get("/customers", alice).json()["items"] == []


def test_a_stakeholder_with_thousands_of_unknown_keys_lists_twenty(crud: Api, alice: Caller) -> None:
    stakeholder = {"name": "Dana", **{f"k{n}": 0 for n in range(3_000)}}
    response = crud.post("/customers", alice, json={"name": "Acme", "stakeholders": [stakeholder]})
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert len(error["details"]) == 20
    assert error["details"][0] == {"field": "stakeholders.0.k0", "message": "is not a field of this object"}
    assert error["message"] == "The request has 3000 invalid fields; the first 20 are listed."
