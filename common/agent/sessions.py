"""Chat sessions as records: reading, listing, renaming and deleting sessions, reading their
messages, and the one rule of their streams.

A stream holds its session while the session is `streaming` and the stream's lease has not run
out (`streaming`): a stream whose instance died frees the session when its lease does, and the
session then reads as `idle` (`public`). The stream itself is in `chat.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from common import models
from common.collections import MESSAGES, SESSIONS
from common.errors import ApiError, Code
from common.resources import list_args, list_by_customer, list_page, update_record
from common.store import ListPage, Repository


def streaming(session: Mapping[str, Any]) -> bool:
    """Whether a stream holds the session: it is `streaming` and the stream's lease has not run
    out (a stream whose instance died frees it when the lease does)."""
    if session.get("status") != models.SessionStatus.STREAMING:
        return False
    lease = session.get("lease_expires_at")
    return not isinstance(lease, datetime) or lease > datetime.now(UTC)


def public(session: Mapping[str, Any]) -> models.SessionPublic:
    """The session as clients see it: `idle` once the lease of the stream that held it ran out."""
    if session.get("status") == models.SessionStatus.STREAMING and not streaming(session):
        session = {**session, "status": models.SessionStatus.IDLE.value}
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
    """Delete a session and every message in it.

    The session is first moved to `deleting` in one compare-and-set (refused while it
    streams), so no stream can start on it while its messages go; a retry finishes the job.
    """

    def start_deleting(current: dict[str, Any]) -> dict[str, Any]:
        if streaming(current):
            raise ApiError(Code.ABORTED, "The session is streaming a reply; stop it before deleting it.")
        return {"status": models.SessionStatus.DELETING.value}

    current = repo.get(SESSIONS, session_id)
    if current.get("status") != models.SessionStatus.DELETING:  # a retry of an authorised delete just finishes it
        repo.update(SESSIONS, session_id, start_deleting, if_match=if_match)
    repo.delete_where(MESSAGES, [], parent_id=session_id)
    repo.delete(SESSIONS, session_id)
