"""The action document as the server keeps it (DESIGN §6), typed: a misspelt field is mypy's error.

`ActionRecord` reads a stored action whole — what clients see and the server's bookkeeping
beside it: the worker's lease, when the task went out, when the first attempt began, and an
e-mail's Gmail draft. Replies
are still built from the document by `models.ActionPublic`, which leaves the bookkeeping out.
`ActionFields` is what a write may set: every write of an action (a proposal, a decision, a
claim, an outcome) is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self, TypedDict

from pydantic import BaseModel, ConfigDict

from common.lease import LeaseRecord
from common.models import ActionStatus, ActionType, Recipient, Risk


class ActionRecord(BaseModel):
    """A stored action. Read leniently (what was stored was validated when written); fields an
    older document lacks read as their defaults."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    id: str
    owner_id: str
    version: int
    type: ActionType
    payload: dict[str, Any]
    summary: str
    recipients: list[Recipient] = []
    session_id: str | None = None
    tool_call_id: str | None = None
    customer_id: str | None = None
    risk: Risk
    status: ActionStatus
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    reject_reason: str | None = None
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    # The server's bookkeeping, never answered (models.ActionPublic.hidden):
    lease: LeaseRecord | None = None  # the delivery executing it, and until when
    enqueued_at: datetime | None = None  # when its task went to the worker; None: not known to have gone
    first_attempt_at: datetime | None = None  # when its effect was first tried
    draft: dict[str, str] | None = None  # an e-mail's Gmail draft, recorded before it is sent (gmail.Draft)

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Self:
        return cls.model_validate(document)


class ActionFields(TypedDict, total=False):
    """The fields a write of an action sets (stored as Firestore takes them: enums as strings)."""

    type: str
    payload: dict[str, Any]
    summary: str
    recipients: list[dict[str, Any]]
    session_id: str | None
    tool_call_id: str | None
    customer_id: str | None
    risk: str
    status: str
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reject_reason: str | None
    attempts: int
    result: dict[str, Any] | None
    error: dict[str, str] | None
    lease: dict[str, Any] | None
    enqueued_at: datetime | None
    first_attempt_at: datetime | None
    draft: dict[str, str] | None
