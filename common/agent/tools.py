"""The agent's tools: read tools that look things up in the caller's own book, and action tools
that only ever propose an action for the CSM to approve (DESIGN §6, §7).

Every tool runs through the caller's tenant repository, so another user's data cannot reach
it; its input is validated by a pydantic model (the action tools' are the very payload models
the approvals re-validate), and a refusal becomes a tool error the model sees.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, model_validator

from common import actions, models, resources
from common.actions import decisions
from common.contracts import records
from common.errors import ApiError, Code
from common.llm import UNPARSABLE, ToolSpec
from common.models import ActionStatus, ActionType, DocumentId, Stage, Strict, TaskStatus
from common.store import Repository
from common.validation import InvalidInputError, parse_value

# Fields of stored objects the model has no use for.
_NOISE = frozenset({"owner_id", "version", "created_at"})


@dataclass(frozen=True)
class ToolContext:
    repo: Repository
    session_id: str
    call_id: str
    auto_approve: list[str]
    timezone: str = "UTC"


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool gives back: its output for the model, and the action it proposed, if any."""

    output: Any
    is_error: bool = False
    action: models.ActionPublic | None = None


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_model: type[Strict]
    run: Callable[[ToolContext, Any], ToolOutcome]

    @functools.cached_property
    def spec(self) -> ToolSpec:
        """What the model is told of the tool; its input's JSON schema is built at the first turn
        that offers it, not at import (a cold start builds none)."""
        return ToolSpec(self.name, self.description, _schema(self.input_model))


def _facts(stored: models.Stored) -> dict[str, Any]:
    return {k: v for k, v in stored.model_dump(mode="json", exclude_unset=True).items() if k not in _NOISE}


# -- read tools ------------------------------------------------------------------------------


class ListCustomersInput(Strict):
    stage: Stage | None = None
    name_prefix: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    order: Annotated[str, Field(pattern="^(name|-arr|renewal_date|-updated_at)$")] | None = None
    limit: Annotated[int, Field(ge=1, le=25)] = 10


def _list_customers(ctx: ToolContext, raw: Any) -> ToolOutcome:
    given = parse_value(ListCustomersInput, raw)
    query = {"limit": str(given.limit)}
    if given.stage:
        query["stage"] = given.stage.value
    if given.name_prefix:
        query["q"] = given.name_prefix
    if given.order:
        query["order"] = given.order
    page = resources.list_customers(ctx.repo, query)
    customers = [
        {
            k: v
            for k, v in _facts(c).items()
            if k in {"id", "name", "stage", "arr", "currency", "health_score", "renewal_date", "domain"}
        }
        for c in page.items
    ]
    return ToolOutcome({"customers": customers, "more": page.next_cursor is not None})


class CustomerInput(Strict):
    customer_id: DocumentId


def _get_customer(ctx: ToolContext, raw: Any) -> ToolOutcome:
    given = parse_value(CustomerInput, raw)
    return ToolOutcome({"customer": _facts(resources.get_customer(ctx.repo, given.customer_id))})


class ListContractsInput(Strict):
    customer_id: DocumentId | None = None


def _list_contracts(ctx: ToolContext, raw: Any) -> ToolOutcome:
    given = parse_value(ListContractsInput, raw)
    query = {"limit": "25", **({"customer_id": given.customer_id} if given.customer_id else {})}
    page = records.list_contracts(ctx.repo, query)
    keep = {"id", "customer_id", "title", "file_name", "status", "extracted", "parsed_at"}
    return ToolOutcome({"contracts": [{k: v for k, v in _facts(c).items() if k in keep} for c in page.items]})


class ListTasksInput(Strict):
    status: TaskStatus | None = None
    customer_id: DocumentId | None = None
    due_before: date | None = None


def _list_tasks(ctx: ToolContext, raw: Any) -> ToolOutcome:
    given = parse_value(ListTasksInput, raw)
    query = {"limit": "50"}
    if given.status:
        query["status"] = given.status.value
    if given.customer_id:
        query["customer_id"] = given.customer_id
    if given.due_before:
        query["due_before"] = given.due_before.isoformat()
    page = resources.list_tasks(ctx.repo, query)
    return ToolOutcome({"tasks": [_facts(t) for t in page.items], "more": page.next_cursor is not None})


class FreeBusyInput(Strict):
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _a_window(self) -> FreeBusyInput:
        if not self.start < self.end <= self.start + timedelta(days=31):
            raise ValueError("end: must be after start, within 31 days")
        return self


def _calendar_free_busy(ctx: ToolContext, raw: Any) -> ToolOutcome:
    from common import google
    from common.google import calendar, tokens

    given = parse_value(FreeBusyInput, raw)
    try:
        busy = calendar.free_busy(
            tokens.access_token(ctx.repo),
            start=given.start.isoformat(),
            end=given.end.isoformat(),
            timezone=ctx.timezone,
        )
    except google.ReauthRequired:
        return ToolOutcome({"error": "Google needs to be connected again in the app's settings."}, is_error=True)
    except google.GoogleError as error:
        return ToolOutcome(
            {"error": f"The calendar could not be read: {error.args[0] if error.args else error}"}, is_error=True
        )
    return ToolOutcome({"timezone": ctx.timezone, "busy": busy})


# -- action tools ----------------------------------------------------------------------------

AWAITING = (
    "This is only a proposal: it waits for the CSM's approval in the app, and nothing has happened yet. "
    "Tell the CSM what you proposed and that it needs their approval; never say it was done."
)
APPROVED = "The CSM auto-approves this kind of action: it is approved and will be carried out shortly."


def _proposer(action_type: ActionType) -> Callable[[ToolContext, Any], ToolOutcome]:
    def propose(ctx: ToolContext, raw: Any) -> ToolOutcome:
        action = decisions.propose(
            ctx.repo,
            action_type,
            raw,
            session_id=ctx.session_id,
            tool_call_id=ctx.call_id,
            auto_approve=ctx.auto_approve,
        )
        note = APPROVED if action.status is ActionStatus.APPROVED else AWAITING
        output = {"action_id": action.id, "status": action.status.value, "summary": action.summary, "note": note}
        return ToolOutcome(output, action=action)

    return propose


def _schema(model: type[Strict]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


READ_TOOLS = (
    Tool(
        "list_customers",
        "List the CSM's customers, optionally by stage or by the start of their name; ordered by name (default), "
        "-arr (largest first), renewal_date (soonest first) or -updated_at.",
        ListCustomersInput,
        _list_customers,
    ),
    Tool(
        "get_customer",
        "Everything the CSM's book holds about one customer: contacts, stakeholders, ARR, renewal, health, notes.",
        CustomerInput,
        _get_customer,
    ),
    Tool(
        "list_contracts",
        "The CSM's contracts, of one customer when customer_id is given, with their extracted terms.",
        ListContractsInput,
        _list_contracts,
    ),
    Tool(
        "list_tasks",
        "The CSM's tasks, optionally by status, customer, or due before a date (YYYY-MM-DD).",
        ListTasksInput,
        _list_tasks,
    ),
)

ACTION_TOOLS = tuple(
    Tool(name, description, actions.PAYLOADS[action_type], _proposer(action_type))
    for name, action_type, description in (
        (
            "draft_email",
            ActionType.EMAIL_DRAFT,
            "Propose a Gmail draft (plain text) in the CSM's mailbox. The CSM approves it before it is created.",
        ),
        (
            "send_email",
            ActionType.EMAIL_SEND,
            "Propose sending an e-mail (plain text) from the CSM's Gmail. Nothing is sent until the CSM approves it.",
        ),
        (
            "book_meeting",
            ActionType.MEETING_BOOK,
            "Propose a Google Calendar meeting with a Meet link; start and end are RFC 3339 with an offset. "
            "Nothing is booked until the CSM approves it.",
        ),
        (
            "create_task",
            ActionType.TASK_CREATE,
            "Propose a task for the CSM's list (due_date YYYY-MM-DD). "
            "The CSM approves it, unless they auto-approve tasks.",
        ),
    )
)

# Offered only when the CSM's Google is connected.
CALENDAR_TOOLS = (
    Tool(
        "calendar_free_busy",
        "When the CSM is busy in their Google Calendar between start and end (RFC 3339 with an offset, "
        "at most 31 days apart), to propose meeting times that fit.",
        FreeBusyInput,
        _calendar_free_busy,
    ),
)

TOOLS = {tool.name: tool for tool in (*READ_TOOLS, *CALENDAR_TOOLS, *ACTION_TOOLS)}


def offered(*, google_connected: bool) -> tuple[Tool, ...]:
    """The tools the model is given for a turn."""
    return (*READ_TOOLS, *(CALENDAR_TOOLS if google_connected else ()), *ACTION_TOOLS)


def run_tool(ctx: ToolContext, name: str, raw_input: Any) -> ToolOutcome:
    """Run the tool `name` on the model's input; any refusal, and input that does not validate,
    is an error the model sees."""
    tool = TOOLS.get(name)
    if tool is None:
        return ToolOutcome({"error": f"There is no tool called {name}."}, is_error=True)
    if not isinstance(raw_input, dict) or UNPARSABLE in raw_input:
        return ToolOutcome({"error": "The tool input must be a JSON object."}, is_error=True)
    try:
        return tool.run(ctx, raw_input)
    except (ApiError, InvalidInputError) as error:
        if isinstance(error, ApiError) and error.code in {Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.ABORTED}:
            return ToolOutcome({"error": "The CSM's data could not be read right now; try again."}, is_error=True)
        return ToolOutcome({"error": _refusal(error)}, is_error=True)


def _refusal(error: ApiError | InvalidInputError) -> str:
    if isinstance(error, ApiError) and error.code is Code.NOT_FOUND:
        return f"{error.message.rstrip('.')} in the CSM's book."
    if error.details:
        return "Invalid input: " + "; ".join(f"{d['field']}: {d['message']}" for d in error.details)
    return error.message
