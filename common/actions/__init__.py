"""Actions: what the agent proposes that changes something outside (DESIGN §6).

Each type has a payload model, validated the same way whether the agent proposes it or the CSM
edits it before approving; a risk (high for what leaves the building: sending, booking); and a
one-line summary for the approval card, naming everyone it reaches (`recipients.py` judges
whether the CSM knows them). The states and their transitions are in `decisions.py` (propose,
approve, reject, expire), the execution in `execution.py`, the sweep in `sweep.py`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, model_validator

from common.models import (
    LOW_RISK_ACTIONS,
    ActionType,
    DocumentId,
    Email,
    Priority,
    Recipient,
    RecipientRole,
    Risk,
    Strict,
    TimeZone,
)
from common.resources import require_customer
from common.store import Repository
from common.validation import parse_value

# Every character str.splitlines() ends a line at: CR, LF, VT, FF, the file, group and record
# separators, NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR. Python's email refuses a header holding any.
_LINE_BREAK = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _one_line(value: str) -> str:
    found = _LINE_BREAK.search(value)
    if found:
        raise ValueError(f"must be one line, without a line break or separator (U+{ord(found.group()):04X})")
    return value


def _ascii_before_the_at(address: str) -> str:
    # A domain has an ASCII form (IDNA, written when the e-mail is); the part before the @ has
    # none, and would need SMTPUTF8, which the message is not written in.
    if not address.rpartition("@")[0].isascii():
        raise ValueError("the part before the @ must be ASCII letters, digits or punctuation")
    return address


Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Subject = Annotated[Title, AfterValidator(_one_line)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
Recipients = Annotated[list[Email], Field(max_length=50)]
Address = Annotated[Email, AfterValidator(_ascii_before_the_at)]


class EmailPayload(Strict):
    """An e-mail to draft or send, as plain text."""

    to: Annotated[list[Address], Field(min_length=1, max_length=50)]
    cc: Annotated[list[Address], Field(max_length=50)] = Field(default_factory=list)
    subject: Subject
    body: Body
    customer_id: DocumentId | None = None


class MeetingPayload(Strict):
    """A Google Calendar event on the CSM's primary calendar, with a Meet link."""

    title: Title
    start: AwareDatetime
    end: AwareDatetime
    attendees: Recipients = Field(default_factory=list)
    description: Annotated[str, StringConstraints(max_length=10_000)] = ""
    timezone: TimeZone = "UTC"
    customer_id: DocumentId | None = None

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> MeetingPayload:
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        if self.end - self.start > timedelta(hours=24):
            raise ValueError("end: a meeting lasts at most 24 hours")
        return self


class TaskPayload(Strict):
    """A task in the CSM's list, created by the agent (`source: agent`)."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    due_date: date | None = None
    priority: Priority = Priority.MEDIUM
    customer_id: DocumentId | None = None


PAYLOADS: dict[ActionType, type[Strict]] = {
    ActionType.EMAIL_DRAFT: EmailPayload,
    ActionType.EMAIL_SEND: EmailPayload,
    ActionType.MEETING_BOOK: MeetingPayload,
    ActionType.TASK_CREATE: TaskPayload,
}


def risk_of(action_type: ActionType) -> Risk:
    return Risk.LOW if action_type in LOW_RISK_ACTIONS else Risk.HIGH


def validate_payload(repo: Repository, action_type: ActionType, payload: Any) -> dict[str, Any]:
    """The payload as stored: validated by its type's model, its customer one of the caller's."""
    model = parse_value(PAYLOADS[action_type], payload)
    customer_id = getattr(model, "customer_id", None)
    if customer_id is not None:
        require_customer(repo, customer_id)
    return model.model_dump(mode="json")


def summary_of(action_type: ActionType, payload: dict[str, Any], recipients: Sequence[Recipient]) -> str:
    """One line for the approval card: every recipient or attendee named (`recipients`, from
    `recipients.recipients_of`), each unknown one marked so; only the subject or title is cut."""

    def named(role: RecipientRole) -> str:
        return ", ".join(r.email + ("" if r.known else " (unknown)") for r in recipients if r.role is role)

    if action_type in {ActionType.EMAIL_DRAFT, ActionType.EMAIL_SEND}:
        verb = "Draft" if action_type is ActionType.EMAIL_DRAFT else "Send"
        cc = named(RecipientRole.CC)
        return f"{verb} an e-mail to {named(RecipientRole.TO)}{f', cc {cc}' if cc else ''}: {_cut(payload['subject'])}"
    if action_type is ActionType.MEETING_BOOK:
        attendees = named(RecipientRole.ATTENDEE) or "no attendees"
        return f"Book “{_cut(payload['title'])}” at {payload['start']} with {attendees}"
    due = f", due {payload['due_date']}" if payload.get("due_date") else ""
    return _cut(f"Create the task “{payload['title']}”{due}", 200)


def _cut(text: str, length: int = 120) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"
