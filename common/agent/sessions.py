"""Chat sessions as records: the session document the server owns, typed; reading, listing,
renaming and deleting sessions, reading their messages; and the one rule of their streams, with
how a turn's stream holds its session and lets it go.

A stream holds its session while the session is `streaming` and the stream's lease
(`common.lease`, `{holder, until}` in the field `lease`) runs (`streaming`): a stream whose
instance died frees the session when its lease runs out, and the session then reads as `idle`
(`public`). The session also names its latest turn (`turn`: the assistant message's id, which is
its part log's), so that a stream can be resumed from any instance. The stream itself is in
`turn.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypedDict

from pydantic import BaseModel, ConfigDict

from common import lease, models
from common.collections import MESSAGES, PART_LOG, SESSIONS
from common.errors import ApiError, Code
from common.lease import Lease, LeaseRecord
from common.models import MessageRole, MessageStatus, SessionStatus
from common.resources import list_args, list_by_customer, list_page, update_record
from common.store import Filter, ListPage, Repository, TenantTransaction
from common.store.commits import Commit, Read, StaleError, read


class TurnRecord(BaseModel):
    """A session's latest turn: what a resumed stream needs to find and follow it."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)  # built at first use

    id: str  # the assistant message's id, and its part log's
    ended_at: datetime | None = None
    # Until then a turn that ended may still be resumed: its end may not have reached anyone.
    replay_until: datetime | None = None


class SessionRecord(BaseModel):
    """The session document as the server reads it (`SessionPublic` is what clients see)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)  # built at first use

    id: str
    owner_id: str
    version: int
    title: str | None = None
    customer_id: str | None = None
    provider: str | None = None
    model: str | None = None
    message_count: int = 0
    last_message_at: datetime | None = None
    status: SessionStatus = SessionStatus.IDLE
    stop_requested_at: datetime | None = None
    lease: LeaseRecord | None = None  # the stream holding the session, until when
    turn: TurnRecord | None = None
    remote_read_at: datetime | None = None  # a stream resumed on another instance was last read then

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Self:
        return cls.model_validate(document)


class SessionFields(TypedDict, total=False):
    """The fields of a session the server writes (a typo in a key is a type error)."""

    title: str
    customer_id: str | None
    provider: str
    model: str
    message_count: int
    last_message_at: datetime
    status: str
    stop_requested_at: datetime | None
    lease: dict[str, Any] | None
    turn: dict[str, Any] | None
    remote_read_at: datetime | None


TITLE_LENGTH = 80


def title_of(message: str) -> str:
    """A session's title: its first message, cut at a word boundary to 80 characters."""
    text = " ".join(message.split())
    if len(text) <= TITLE_LENGTH:
        return text
    cut = text[: TITLE_LENGTH + 1].rfind(" ")
    return text[: cut if cut > 0 else TITLE_LENGTH].rstrip()


def streaming(session: Mapping[str, Any]) -> bool:
    """Whether a stream holds the session: it is `streaming` and the stream's lease has not run
    out (a stream whose instance died frees it when the lease does)."""
    return session.get("status") == SessionStatus.STREAMING and lease.held(session)


def public(session: Mapping[str, Any]) -> models.SessionPublic:
    """The session as clients see it: `idle` once the lease of the stream that held it ran out."""
    if session.get("status") == SessionStatus.STREAMING and not streaming(session):
        session = {**session, "status": SessionStatus.IDLE.value}
    return models.SessionPublic.of(session)


def get_session(repo: Repository, session_id: str) -> models.SessionPublic:
    return public(repo.get(SESSIONS, session_id))


def list_sessions(repo: Repository, query: Mapping[str, str]) -> ListPage[models.SessionPublic]:
    return list_by_customer(repo, SESSIONS, query).map(public)


def update_session(
    repo: Repository, session_id: str, update: models.SessionUpdate, if_match: int | None
) -> models.SessionPublic:
    return public(update_record(repo, SESSIONS, session_id, update.changes(), if_match))


def list_messages(repo: Repository, session_id: str, query: Mapping[str, str]) -> ListPage[models.MessagePublic]:
    repo.require(SESSIONS, session_id)
    args = list_args(query, MESSAGES)
    return list_page(repo, MESSAGES, args, [], parent_id=session_id).map(models.MessagePublic.of)


def latest_messages(repo: Repository, session_id: str, limit: int) -> list[dict[str, Any]]:
    """A session's latest `limit` messages, oldest first (what the model is given back)."""
    page = repo.list(MESSAGES, order=MESSAGES.orders["-created_at"], limit=limit, cursor=None, parent_id=session_id)
    return list(reversed(page.items))


def delete_session(repo: Repository, session_id: str, if_match: int | None) -> None:
    """Delete a session, every message in it and its turns' part logs.

    The session is first moved to `deleting` in one compare-and-set (refused while it
    streams), so no stream can start on it while its messages go; a retry finishes the job.
    """

    def start_deleting(current: dict[str, Any]) -> SessionFields:
        if streaming(current):
            raise ApiError(Code.ABORTED, "The session is streaming a reply; stop it before deleting it.")
        return {"status": SessionStatus.DELETING.value}

    current = repo.get(SESSIONS, session_id)
    if current.get("status") != SessionStatus.DELETING:  # a retry of an authorised delete just finishes it
        repo.update(SESSIONS, session_id, start_deleting, if_match=if_match)
    repo.delete_where(MESSAGES, [], parent_id=session_id)
    repo.delete_where(PART_LOG, [Filter("session_id", "==", session_id)])
    repo.delete(SESSIONS, session_id)


# -- a turn's hold on its session -------------------------------------------------------------


@dataclass(frozen=True)
class NewTurn:
    """What a turn asks of its session: the CSM's message, or the last answer again."""

    text: str  # the CSM's message (a regenerated turn's only if its session is new)
    provider: str
    model: str
    customer_id: str | None = None
    regenerate: bool = False
    replaced_id: str | None = None  # a regenerated turn: the stored answer it replaces


@dataclass(frozen=True)
class HeldSession:
    """A session held by one turn's stream."""

    session: SessionRecord
    lease: Lease
    turn_id: str  # the assistant message's id
    # The session's version as the claim found it; None: the claim created it. Every write of a
    # session's messages changes its session in the same commit, so messages read after the
    # session was read at this version, and before the claim, are all of them.
    found_version: int | None

    @property
    def created(self) -> bool:
        return self.found_version is None


def hold(
    repo: Repository,
    found: Read | None,
    turn: NewTurn,
    turn_id: str,
    lease_seconds: float,
    *,
    new_id: str | None = None,
) -> HeldSession:
    """Hold the session for a turn's stream and store the CSM's message, in one commit (no
    transaction); a regenerated turn removes the answer it replaces instead. A session that is
    not there yet (`found` None) is created, already held, under `new_id` (None: a new id): 409
    ALREADY_EXISTS if that id is taken.

    The caller judged the turn (its customer one of the caller's, room for a new session) before,
    and `found` is the session as read beside those reads: the commit holds only if the session is
    still as read (a compare-and-set on its update time), else it is read and judged again here.
    Every refusal comes before the commit, and writes nothing.
    """
    session_id = found.document["id"] if found is not None else new_id or repo.new_id(SESSIONS)
    stream_lease = Lease(repo, SESSIONS, session_id, seconds=lease_seconds)
    held: SessionFields = {
        "status": SessionStatus.STREAMING.value,
        "stop_requested_at": None,
        "provider": turn.provider,
        "model": turn.model,
        "last_message_at": datetime.now(UTC),
        "turn": TurnRecord(id=turn_id).model_dump(),
        "remote_read_at": None,
        "lease": stream_lease.fields()[lease.FIELD],
    }
    message = {"role": MessageRole.USER.value, "parts": [{"type": "text", "text": turn.text}],
               "status": MessageStatus.COMPLETE.value, "usage": None, "error": None}  # fmt: skip

    if found is None:
        fields: SessionFields = {"title": title_of(turn.text), "customer_id": turn.customer_id,
                                  "message_count": 1, **held}  # fmt: skip
        commit = Commit(repo)
        commit.create(SESSIONS, fields, doc_id=session_id)  # 409 if the id is taken
        commit.create(MESSAGES, message, parent_id=session_id)
        commit.commit()  # nothing read, so nothing to go stale
        record = SessionRecord.of({**fields, "id": session_id, "owner_id": repo.uid, "version": 1})
        return HeldSession(record, stream_lease, turn_id, None)

    for _ in range(5):
        current = found.document
        if current.get("status") == SessionStatus.DELETING:
            raise ApiError(Code.ABORTED, "The session is being deleted.")
        if streaming(current):
            raise ApiError(Code.ABORTED, "A reply is already streaming in this session; stop it or wait for it.")
        changes: SessionFields = {**held}
        count = SessionRecord.of(current).message_count
        if turn.customer_id:
            changes["customer_id"] = turn.customer_id
        commit = Commit(repo)
        if turn.replaced_id is not None:
            commit.delete(MESSAGES, turn.replaced_id, parent_id=session_id)
            changes["message_count"] = max(count - 1, 0)
        elif not turn.regenerate:
            commit.create(MESSAGES, message, parent_id=session_id)
            changes["message_count"] = count + 1
        commit.update(SESSIONS, found, changes)
        try:
            commit.commit()
        except StaleError:  # changed since it was read (a stream ended, a rename): read and judge again
            found = read(repo, SESSIONS, session_id)
            continue
        record = SessionRecord.of({**current, **changes})
        return HeldSession(record, stream_lease, turn_id, int(current["version"]))
    raise ApiError(Code.ABORTED, "The session is being changed by another request; try again.")


def release(
    repo: Repository, claim: HeldSession, assistant: dict[str, Any] | None, *, replay_seconds: float | None
) -> None:
    """Store the turn's answer (if any) and free the session, if this turn still holds it; the
    turn is marked ended, resumable for `replay_seconds` more when its end may reach no one."""

    def release(t: TenantTransaction) -> None:
        current = t.find(SESSIONS, claim.session.id)
        if current is None or current.get("status") == SessionStatus.DELETING:
            return  # deleted once its lease had run out, or its messages are being deleted
        record = SessionRecord.of(current)
        now = datetime.now(UTC)
        changes: SessionFields = {}
        if assistant is not None:
            changes |= {"message_count": record.message_count + 1, "last_message_at": now}
        if claim.lease.ours(current):
            replay_until = now + timedelta(seconds=replay_seconds) if replay_seconds else None
            ended = TurnRecord(id=claim.turn_id, ended_at=now, replay_until=replay_until)
            changes |= {"status": SessionStatus.IDLE.value, "lease": None, "stop_requested_at": None,
                        "turn": ended.model_dump(), "remote_read_at": None}  # fmt: skip
        if assistant is not None:
            t.create(MESSAGES, assistant, doc_id=claim.turn_id, parent_id=record.id)
        if changes:
            t.update(SESSIONS, current, changes)

    repo.run_transaction(release)


def stream_left(repo: Repository, session_id: str, turn_id: str, replay_seconds: float) -> None:
    """A stream of turn `turn_id` lost its client before the end went out: while the turn runs, a
    stream resumed on another instance no longer reads it; once it has ended, it may be resumed
    for `replay_seconds` more."""
    until = datetime.now(UTC) + timedelta(seconds=replay_seconds)

    def left(current: dict[str, Any]) -> SessionFields:
        session = SessionRecord.of(current)
        turn = session.turn
        if turn is None or turn.id != turn_id:
            return {}
        if turn.ended_at is None:
            return {"remote_read_at": None} if session.remote_read_at is not None else {}
        if turn.replay_until is not None and turn.replay_until >= until:
            return {}
        return {"turn": turn.model_copy(update={"replay_until": until}).model_dump()}

    try:
        repo.update(SESSIONS, session_id, left)
    except ApiError as error:
        if error.code is not Code.NOT_FOUND:
            raise
