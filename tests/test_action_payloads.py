"""What an action may carry (`common/actions/`), in process: each type's payload validated the
same way whether the agent proposes it or the CSM edits it, and each type's risk."""

from __future__ import annotations

from typing import Any

import pytest

from common.actions import risk_of, validate_payload
from common.models import ActionType, Risk
from common.store import Repository
from common.validation import InvalidInputError

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

# Payloads that name no customer are validated without a database read.
REPO = Repository("alice")

EMAIL = {"to": ["cfo@acme.com"], "subject": "Renewal", "body": "Shall we meet?"}
MEETING = {
    "title": "Renewal call",
    "start": "2027-03-01T10:00:00+01:00",
    "end": "2027-03-01T10:30:00+01:00",
    "attendees": ["cfo@acme.com"],
    "timezone": "Europe/Paris",
}


def refused(action_type: ActionType, payload: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidInputError) as error:
        validate_payload(REPO, action_type, payload)
    return {detail["field"]: detail["message"] for detail in error.value.details}


def test_payloads_are_stored_as_validated_with_their_defaults() -> None:
    assert validate_payload(REPO, ActionType.EMAIL_SEND, {**EMAIL, "subject": "  Renewal  "}) == {
        **EMAIL,
        "cc": [],
        "customer_id": None,
    }
    assert validate_payload(REPO, ActionType.TASK_CREATE, {"title": "Call Dana"}) == {
        "title": "Call Dana",
        "due_date": None,
        "priority": "medium",
        "customer_id": None,
    }
    meeting = validate_payload(REPO, ActionType.MEETING_BOOK, MEETING)
    assert (meeting["description"], meeting["timezone"]) == ("", "Europe/Paris")


@pytest.mark.parametrize(
    ("action_type", "payload", "field"),
    [
        (ActionType.EMAIL_SEND, {**EMAIL, "to": []}, "to"),
        (ActionType.EMAIL_SEND, {**EMAIL, "to": ["x@acme.com"] * 51}, "to"),
        (ActionType.EMAIL_DRAFT, {**EMAIL, "to": ["not an address"]}, "to.0"),
        (ActionType.EMAIL_SEND, {**EMAIL, "subject": " "}, "subject"),
        (ActionType.EMAIL_SEND, {**EMAIL, "bcc": ["x@acme.com"]}, "bcc"),
        (ActionType.MEETING_BOOK, {**MEETING, "end": MEETING["start"]}, "end"),
        (ActionType.MEETING_BOOK, {**MEETING, "end": "2027-03-02T10:30:00+01:00"}, "end"),
        (ActionType.MEETING_BOOK, {**MEETING, "start": "2027-03-01T10:00:00"}, "start"),  # no offset
        (ActionType.MEETING_BOOK, {**MEETING, "timezone": "Europe/Atlantis"}, "timezone"),
        (ActionType.TASK_CREATE, {"title": "Call", "priority": "urgent"}, "priority"),
        (ActionType.TASK_CREATE, {"title": "Call", "customer_id": "a/b"}, "customer_id"),
    ],
)
def test_a_payload_out_of_its_types_rules_is_refused_naming_the_field(
    action_type: ActionType, payload: dict[str, Any], field: str
) -> None:
    assert field in refused(action_type, payload)


def test_a_meeting_ends_after_it_starts_and_within_a_day() -> None:
    assert refused(ActionType.MEETING_BOOK, {**MEETING, "end": MEETING["start"]}) == {"end": "must be after start"}
    day_and_more = {**MEETING, "end": "2027-03-02T10:00:01+01:00"}
    assert refused(ActionType.MEETING_BOOK, day_and_more) == {"end": "a meeting lasts at most 24 hours"}


def test_what_leaves_the_building_is_high_risk() -> None:
    assert {t: risk_of(t) for t in ActionType} == {
        ActionType.EMAIL_DRAFT: Risk.LOW,
        ActionType.EMAIL_SEND: Risk.HIGH,
        ActionType.MEETING_BOOK: Risk.HIGH,
        ActionType.TASK_CREATE: Risk.LOW,
    }
