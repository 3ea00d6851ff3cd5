"""What clients may write (`common/models.py`), validated in process the way the edge does it
(`common.validation.parse_json`): the rules and limits of each field, what PATCH's `null`
means, and how refusals name their fields. `tests/test_validation.py` proves the same answers
come back from every running route."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from common import models
from common.validation import MAX_DETAILS, InvalidInputError, parse_json

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it


def parse(model: type[BaseModel], body: Any) -> Any:
    return parse_json(model, json.dumps(body).encode())


def refused(model: type[BaseModel], body: Any) -> dict[str, str]:
    """The bad fields, by name, of a body the model refuses."""
    with pytest.raises(InvalidInputError) as error:
        parse(model, body)
    return {detail["field"]: detail["message"] for detail in error.value.details}


def test_a_customer_needs_only_a_name_and_gets_the_defaults() -> None:
    customer = parse(models.CustomerCreate, {"name": "  Acme  "})
    assert (customer.name, customer.currency, customer.stage) == ("Acme", "USD", models.Stage.ONBOARDING)
    assert (customer.stakeholders, customer.tags, customer.notes) == ([], [], None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Acme", "arr": "100"}, "arr"),  # strict: no coercion from text
        ({"name": "Acme", "arr": -1}, "arr"),
        ({"name": "Acme", "health_score": 101}, "health_score"),
        ({"name": "Acme", "domain": "not a domain"}, "domain"),
        ({"name": "Acme", "currency": "XYZ"}, "currency"),
        ({"name": "Acme", "stage": "won"}, "stage"),
        ({"name": "Acme", "renewal_date": "2027-02-30"}, "renewal_date"),
        ({"name": "Acme", "stakeholders": [{"name": "Dana"}] * 101}, "stakeholders"),
        ({"name": "Acme", "stakeholders": [{"name": "Dana", "email": "not-an-address"}]}, "stakeholders.0.email"),
        ({"name": "Acme", "tags": ["t"] * 51}, "tags"),
        ({"name": "Acme", "tags": ["x" * 51]}, "tags.0"),
        ({"name": "Acme", "notes": "n" * 20_001}, "notes"),
        ({"name": "Acme", "primary_contact": {"name": "Dana", "phone": "1"}}, "primary_contact.phone"),
    ],
)
def test_a_customer_field_out_of_its_rules_is_named(body: dict[str, Any], field: str) -> None:
    assert field in refused(models.CustomerCreate, body)


def test_a_customer_at_every_limit_is_taken() -> None:
    body = {
        "name": "x" * 200,
        "domain": " Acme-Corp.Example.COM ",
        "arr": 1e15,
        "currency": "EUR",
        "health_score": 100,
        "stakeholders": [{"name": "n" * 200, "role": "r" * 200}] * 100,
        "tags": ["t" * 50] * 50,
        "notes": "n" * 20_000,
    }
    customer = parse(models.CustomerCreate, body)
    assert customer.domain == "acme-corp.example.com"
    assert len(customer.stakeholders) == 100


def test_server_owned_and_unknown_fields_are_told_apart() -> None:
    assert refused(models.CustomerCreate, {"name": "Acme", "owner_id": "me", "version": 9, "colour": "red"}) == {
        "owner_id": "is set by the server and cannot be written",
        "version": "is set by the server and cannot be written",
        "colour": "is not a field of this object",
    }
    assert refused(models.CustomerCreate, {"name": "Acme", "name_lower": "acme"}) == {
        "name_lower": "is set by the server and cannot be written"  # stored for sorting, never answered
    }


def test_an_answer_lists_twenty_bad_fields_and_counts_the_rest() -> None:
    with pytest.raises(InvalidInputError) as error:
        parse(models.CustomerCreate, {"name": "Acme", "tags": [""] * 30})
    assert len(error.value.details) == MAX_DETAILS
    assert error.value.message == f"The request has 30 invalid fields; the first {MAX_DETAILS} are listed."


# -- PATCH ---------------------------------------------------------------------------------------


def test_an_update_changes_only_the_fields_sent_and_null_clears_an_optional_one() -> None:
    update = parse(models.CustomerUpdate, {"domain": None, "arr": 5})
    assert update.changes() == {"domain": None, "arr": 5}


def test_an_update_refuses_null_for_a_required_field_and_an_empty_body() -> None:
    assert refused(models.CustomerUpdate, {"name": None}) == {"name": "may not be null"}
    assert refused(models.TaskUpdate, {"title": "Call", "status": None}) == {"status": "may not be null"}
    assert refused(models.TaskUpdate, {}) == {"body": "the body names no field to change"}


def test_preferences_auto_approve_only_low_risk_types_once_each() -> None:
    taken = parse(models.ProfileUpdate, {"preferences": {"auto_approve": ["task.create", "email.draft"]}})
    assert taken.preferences.auto_approve == [models.ActionType.TASK_CREATE, models.ActionType.EMAIL_DRAFT]
    high = refused(models.ProfileUpdate, {"preferences": {"auto_approve": ["email.send"]}})
    assert high == {"preferences.auto_approve": "email.send is high-risk and always needs approval"}
    twice = refused(models.ProfileUpdate, {"preferences": {"auto_approve": ["task.create", "task.create"]}})
    assert twice == {"preferences.auto_approve": "lists an action type twice"}
    assert "preferences.theme" in refused(models.ProfileUpdate, {"preferences": {"theme": "dark"}})


@pytest.mark.parametrize(("zone", "ok"), [("Europe/Paris", True), ("UTC", True), ("Mars/Olympus", False), ("", False)])
def test_a_profile_timezone_is_an_iana_zone(zone: str, ok: bool) -> None:
    if ok:
        assert parse(models.ProfileUpdate, {"timezone": zone}).timezone == zone
    else:
        assert refused(models.ProfileUpdate, {"timezone": zone}) == {
            "timezone": "must be an IANA time zone such as Europe/Paris"
        }


# -- ids and other inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("customer_id", "ok"),
    [("a", True), ("Ab0_-z", True), ("x" * 128, True), ("x" * 129, False), ("_x", False), ("a/b", False), ("", False)],
)
def test_a_reference_is_an_id_the_server_could_have_handed_out(customer_id: str, ok: bool) -> None:
    body = {"title": "Call", "customer_id": customer_id}
    if ok:
        assert parse(models.TaskCreate, body).customer_id == customer_id
    else:
        assert "customer_id" in refused(models.TaskCreate, body)


def test_a_chat_message_has_something_to_say_within_twenty_thousand_characters() -> None:
    assert parse(models.ChatRequest, {"message": "x" * 20_000}).message == "x" * 20_000
    for message in ("", " \n\t", "x" * 20_001):
        assert "message" in refused(models.ChatRequest, {"message": message})
