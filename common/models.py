"""The CSM's records as clients write them and as clients see them.

Each writable kind has a `XCreate` and/or `XUpdate` model with unknown fields forbidden, so
server-owned fields (`id`, `owner_id`, timestamps, `version`, states the server drives) can
never be assigned, and a `XPublic` model: the object as answered, read leniently from what is
stored, without the fields stored only for sorting and search. What a kind's `XPublic` has and
its `XCreate`/`XUpdate` does not is what the server owns.
"""

from __future__ import annotations

import enum
import functools
import re
import zoneinfo
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from common.currencies import is_currency
from common.validation import ID_PATTERN


class Stage(enum.StrEnum):
    ONBOARDING = "onboarding"
    ADOPTING = "adopting"
    RENEWING = "renewing"
    AT_RISK = "at_risk"
    CHURNED = "churned"


class Priority(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"


class TaskSource(enum.StrEnum):
    MANUAL = "manual"
    AGENT = "agent"


class ContractStatus(enum.StrEnum):
    UPLOADED = "uploaded"
    PARSING = "parsing"
    PARSED = "parsed"
    FAILED = "failed"


class SessionStatus(enum.StrEnum):
    IDLE = "idle"
    STREAMING = "streaming"
    DELETING = "deleting"  # only while a delete removes its messages


class Provider(enum.StrEnum):
    CLAUDE = "claude"
    GEMINI = "gemini"


DEFAULT_PROVIDER = Provider.CLAUDE  # a new profile's, and the model provider of a profile naming none


class ActionType(enum.StrEnum):
    EMAIL_DRAFT = "email.draft"
    EMAIL_SEND = "email.send"
    MEETING_BOOK = "meeting.book"
    TASK_CREATE = "task.create"


class ActionStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    EXECUTING = "executing"
    EXECUTED = "executed"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Risk(enum.StrEnum):
    LOW = "low"
    HIGH = "high"


LOW_RISK_ACTIONS = frozenset({ActionType.TASK_CREATE, ActionType.EMAIL_DRAFT})


class RecipientRole(enum.StrEnum):
    TO = "to"
    CC = "cc"
    ATTENDEE = "attendee"


class MessageRole(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class MessageStatus(enum.StrEnum):
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    ERROR = "error"


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
OptionalTitle = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)]
Signature = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5_000)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
DocumentId = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$")]


def _check_domain(value: str) -> str:
    value = value.strip().lower()
    if not re.fullmatch(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", value):
        raise ValueError("must be a domain name such as example.com")
    return value


def _check_email(value: str) -> str:
    # pydantic's own check, EmailStr's, imported where it is first used: pydantic.networks loads
    # email_validator and importlib.metadata, which no cold start needs before its first address.
    from pydantic.networks import validate_email

    return validate_email(value)[1]


def _check_currency(value: str) -> str:
    if not is_currency(value):
        raise ValueError("must be an ISO 4217 code such as USD")
    return value


@functools.cache
def _timezones() -> frozenset[str]:
    # The IANA names only, for profiles and meetings alike: ZoneInfo opens any zone file on the
    # tz path, posixrules and the posix/ and right/ copies too, which are no IANA names.
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(value: str) -> str:
    if value not in _timezones():
        raise ValueError("must be an IANA time zone such as Europe/Paris")
    return value


def _only_low_risk(types: list[ActionType]) -> list[ActionType]:
    high = sorted({str(t) for t in types if t not in LOW_RISK_ACTIONS})
    if high:
        raise ValueError(f"{', '.join(high)} is high-risk and always needs approval")
    if len(set(types)) != len(types):
        raise ValueError("lists an action type twice")
    return types


AutoApprove = Annotated[list[ActionType], Field(max_length=4), AfterValidator(_only_low_risk)]
Domain = Annotated[str, StringConstraints(max_length=253), AfterValidator(_check_domain)]
# An e-mail address, checked as pydantic's EmailStr checks it (the same errors, the same schema).
Email = Annotated[str, AfterValidator(_check_email), WithJsonSchema({"type": "string", "format": "email"})]
Currency = Annotated[str, AfterValidator(_check_currency)]
Money = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]
TimeZone = Annotated[str, AfterValidator(_check_timezone)]


# -- as clients see them -------------------------------------------------------------------


class Stored(BaseModel):
    """An object as clients see it: the fields it has, read from what is stored.

    Stored values were validated when written, so reading is lenient (a stored date string is
    a date); fields stored only to sort or search (`hidden`) are left out.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)
    hidden: ClassVar[frozenset[str]] = frozenset()

    id: str
    owner_id: str
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Self:
        return cls.model_validate(document)


# Fields every stored object has, written only by the server.
COMMON_SERVER_FIELDS = frozenset(Stored.model_fields)


class ProfilePublic(Stored):
    email: str | None
    display_name: str | None
    timezone: str
    signature: str | None
    preferences: dict[str, Any]

    @property
    def default_provider(self) -> str:
        """The model provider a chat or a contract parse uses unless it names one."""
        return str(self.preferences.get("default_provider") or DEFAULT_PROVIDER)


class CustomerPublic(Stored):
    hidden = frozenset({"name_lower", "renewal_key"})
    name: str
    domain: str | None
    industry: str | None
    arr: int | float | None
    currency: str
    stage: Stage
    health_score: int | None
    renewal_date: date | None
    primary_contact: dict[str, Any] | None
    stakeholders: list[dict[str, Any]]
    tags: list[str]
    notes: str | None


class ContractPublic(Stored):
    hidden = frozenset({"lease"})  # the parse holding the contract, and until when
    customer_id: str
    title: str | None = None
    file_name: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    storage_path: str | None = None
    status: ContractStatus
    extracted: dict[str, Any] | None = None
    parse_error: str | None = None
    parsed_at: datetime | None = None
    model: str | None = None


class TaskPublic(Stored):
    hidden = frozenset({"due_key"})
    title: str
    customer_id: str | None
    due_date: date | None
    priority: Priority
    status: TaskStatus
    source: TaskSource
    notes: str | None


class SessionPublic(Stored):
    """Read through `agent.sessions.public`: a session whose stream's lease ran out is idle."""

    # The server's own (`agent.sessions.SessionRecord`): the stream holding the session and until
    # when, its latest turn, and when a stream resumed on another instance was last read.
    hidden = frozenset({"lease", "turn", "remote_read_at"})
    title: str | None = None
    customer_id: str | None = None
    provider: Provider | None = None
    model: str | None = None
    message_count: int = 0
    last_message_at: datetime | None = None
    status: SessionStatus = SessionStatus.IDLE
    stop_requested_at: datetime | None = None


class MessagePublic(Stored):
    role: MessageRole
    parts: list[dict[str, Any]]
    status: MessageStatus | None = None
    usage: dict[str, Any] | None = None
    error: str | None = None


class Recipient(BaseModel):
    """Someone an action's e-mail or meeting reaches, and whether the CSM knows them (DESIGN §6):
    the customer's primary contact or a stakeholder, or an address at the customer's domain or
    the CSM's own (`actions.recipients`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    email: str
    role: RecipientRole
    known: bool


class ActionPublic(Stored):
    # The server's bookkeeping (actions.records.ActionRecord): the executing delivery's lease, when
    # the task went out, when the effect was first tried.
    hidden = frozenset({"lease", "enqueued_at", "first_attempt_at", "draft"})
    type: ActionType
    payload: dict[str, Any]
    summary: str
    recipients: list[Recipient] = []  # every address it reaches; absent from actions stored before they were judged
    session_id: str | None
    tool_call_id: str | None
    customer_id: str | None
    risk: Risk
    status: ActionStatus
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reject_reason: str | None
    attempts: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None


# -- as clients write them -------------------------------------------------------------------


class Strict(BaseModel):
    """Strict JSON input: no coercion between types, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)
    # The object this input writes to, whose other fields only the server writes.
    public: ClassVar[type[Stored] | None] = None

    @classmethod
    def server_owned(cls) -> frozenset[str]:
        """Fields of the stored object a client may not write, named as such in errors."""
        if cls.public is None:
            return frozenset()
        return (frozenset(cls.public.model_fields) | cls.public.hidden) - frozenset(cls.model_fields)


class Contact(Strict):
    name: Name
    email: Email | None = None
    title: ShortText | None = None


class Stakeholder(Strict):
    name: Name
    email: Email | None = None
    role: ShortText | None = None
    is_champion: bool = False
    is_decision_maker: bool = False


class Update(Strict):
    """A partial update: only the fields sent are changed; `null` clears an optional field."""

    # Fields that exist on every stored object and may not be cleared with null.
    not_nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _refuse_nulls_and_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("the body names no field to change")
        for name in sorted(self.model_fields_set & self.not_nullable):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: may not be null")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class CustomerCreate(Strict):
    public = CustomerPublic
    name: Name
    domain: Domain | None = None
    industry: ShortText | None = None
    arr: Money | None = None
    currency: Currency = "USD"
    stage: Stage = Stage.ONBOARDING
    health_score: Annotated[int, Field(ge=0, le=100)] | None = None
    renewal_date: date | None = None
    primary_contact: Contact | None = None
    stakeholders: Annotated[list[Stakeholder], Field(max_length=100)] = []
    tags: Annotated[list[Tag], Field(max_length=50)] = []
    notes: Notes | None = None


class CustomerUpdate(Update):
    public = CustomerPublic
    not_nullable = frozenset({"name", "currency", "stage", "stakeholders", "tags"})
    name: Name | None = None
    domain: Domain | None = None
    industry: ShortText | None = None
    arr: Money | None = None
    currency: Currency | None = None
    stage: Stage | None = None
    health_score: Annotated[int, Field(ge=0, le=100)] | None = None
    renewal_date: date | None = None
    primary_contact: Contact | None = None
    stakeholders: Annotated[list[Stakeholder], Field(max_length=100)] | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] | None = None
    notes: Notes | None = None


class TaskCreate(Strict):
    public = TaskPublic
    title: Title
    customer_id: DocumentId | None = None
    due_date: date | None = None
    priority: Priority = Priority.MEDIUM
    status: TaskStatus = TaskStatus.OPEN
    notes: Notes | None = None


class TaskUpdate(Update):
    public = TaskPublic
    not_nullable = frozenset({"title", "priority", "status"})
    title: Title | None = None
    customer_id: DocumentId | None = None
    due_date: date | None = None
    priority: Priority | None = None
    status: TaskStatus | None = None
    notes: Notes | None = None


class ContractUpdate(Update):
    """A contract's title and customer, and the CSM's corrections of its extracted terms
    (`{"extracted": {field: value}}`: those fields change, the others stay, a re-parse keeps them)."""

    public = ContractPublic
    not_nullable = frozenset({"customer_id", "extracted"})
    title: OptionalTitle | None = None
    customer_id: DocumentId | None = None
    extracted: dict[str, Any] | None = None  # checked field by field by contracts.terms.Corrections


class SessionUpdate(Update):
    public = SessionPublic
    title: ShortText | None = None
    customer_id: DocumentId | None = None


class PreferencesUpdate(Update):
    default_provider: Provider | None = None
    auto_approve: AutoApprove | None = None
    not_nullable = frozenset({"default_provider", "auto_approve"})


class ProfileUpdate(Update):
    public = ProfilePublic
    display_name: ShortText | None = None
    timezone: TimeZone | None = None
    signature: Signature | None = None
    preferences: PreferencesUpdate | None = None
    not_nullable = frozenset({"timezone", "preferences"})


MessageText = Annotated[str, StringConstraints(min_length=1, max_length=20_000, pattern=r"\S")]


class UIMessage(BaseModel):
    """A message as the AI SDK's `useChat` sends it: only its role and parts are read, of the
    last one alone (the stored history wins over the client's copy)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    role: Literal["system", "user", "assistant"]
    parts: list[dict[str, Any]]


class ChatRequest(Strict):
    """`POST /chat`: one message of the CSM's, in a session (a new one without `session_id`).

    The body `useChat` sends by default is taken as it is (DESIGN §7): `id` is the session
    (created under that id if the caller has none by it), the message is the text of the last
    of `messages`, which must be the CSM's, and `trigger` says whether it is a new message or
    the last answer again; `messageId` is accepted and not used (an edited message is a new one,
    and a regenerated answer is always the last).
    """

    # useChat sends the whole conversation each time: more values than any other body holds,
    # read with no per-item checks (and within the body's size limit).
    max_values: ClassVar[int] = 250_000

    session_id: DocumentId | None = None
    message: MessageText | None = None
    customer_id: DocumentId | None = None
    provider: Provider | None = None
    model: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    # The AI SDK's default body.
    id: DocumentId | None = None
    messages: Annotated[list[Any], Field(min_length=1)] | None = None
    trigger: Literal["submit-message", "regenerate-message"] | None = None
    message_id: Annotated[str | None, Field(alias="messageId")] = None

    @model_validator(mode="after")
    def _one_message(self) -> Self:
        if self.session_id and self.id and self.session_id != self.id:
            raise ValueError("id: names another session than session_id")
        if (self.message is None) == (self.messages is None):
            raise ValueError("message: give either message or messages (the AI SDK's body), not both")
        if self.messages is None and self.trigger is not None:
            raise ValueError("trigger: goes with messages")
        if self.messages is not None:
            _last_text(self.messages)
        return self

    @property
    def session(self) -> str | None:
        """The session named, by either body."""
        return self.id or self.session_id

    @property
    def text(self) -> str:
        """The CSM's message: `message`, or the text of the last of `messages`."""
        return self.message if self.message is not None else _last_text(self.messages or [])

    @property
    def regenerate(self) -> bool:
        return self.trigger == "regenerate-message"


def _last_text(messages: list[Any]) -> str:
    """The text of the last UI message, which must be the CSM's and hold only text."""
    where = f"messages.{len(messages) - 1}"
    try:
        last = UIMessage.model_validate(messages[-1])
    except ValidationError:
        raise ValueError(f"{where}: must be a UI message with a role and parts") from None
    if last.role != "user":
        raise ValueError(f"{where}: the last message must be the CSM's (role user)")
    texts = []
    for index, part in enumerate(last.parts):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ValueError(f"{where}.parts.{index}: only text parts are taken")
        texts.append(part["text"])
    text = "".join(texts)
    if not text.strip() or len(text) > 20_000:
        raise ValueError(f"{where}: its text must hold 1 to 20,000 characters, not only spaces")
    return text


class ApproveRequest(Strict):
    """`POST /actions/{id}/approve`: optionally the payload as the CSM edited it (re-validated)."""

    payload: dict[str, Any] | None = None


class RejectRequest(Strict):
    """`POST /actions/{id}/reject`: optionally why."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] | None = None


class GoogleCompletion(Strict):
    """`POST /integrations/google/complete`: the one-time handle of a grant the OAuth callback parked."""

    grant: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class SweepRequest(BaseModel):
    """What Cloud Scheduler sends the worker's `/sweep`: nothing (`{}`, or no body)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)


class WorkerTask(BaseModel):
    """What a Cloud Task tells the worker: the action, and whose it is (it is read as that user's).
    Not a client's input: only Cloud Tasks calls the worker."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)

    action_id: DocumentId
    owner_id: DocumentId
