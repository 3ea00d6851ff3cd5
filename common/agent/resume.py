"""Resuming a turn's stream: `GET /chat/{session_id}/stream`, what `useChat({resume: true})` calls
(DESIGN §7).

A session's turn can be resumed while it runs, and for the grace after it ended if its end may
have reached no one. The stream starts at the turn's first part and follows it to its end, like
the original: from memory when the turn runs on this instance, else from its part log in
Firestore. While it is read there, it says so through the session every HEARTBEAT_SECONDS
(`remote_read_at`), which keeps the turn from stopping for want of a reader, and tells this
stream if the turn's instance died (the turn is no longer held, or never ends): the stream then
ends with `abort`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from common.agent import sessions, stream
from common.agent.part_log import LogTail, relay
from common.agent.sessions import SessionFields, SessionRecord
from common.agent.turn import HEARTBEAT_SECONDS, live
from common.collections import SESSIONS
from common.errors import ApiError, Code
from common.http import StreamReply
from common.log import get_logger
from common.settings import get_settings
from common.store import Repository

logger = get_logger(__name__)

# A turn seen ended whose last batch has not come this long after the one before is given up.
END_WAIT_SECONDS = 10.0
CUT_OFF = stream.frame(stream.abort("the answer was cut off; reload the conversation to see what was kept"))


def resume_stream(repo: Repository, session_id: str, client_gone: Callable[[], bool]) -> StreamReply | None:
    """The stream of the session's turn in flight, from its first part; None when there is none,
    also for a session the caller does not have: a stock `useChat({resume: true})` asks for a new
    chat's id before its first message (and someone else's session is like a missing one)."""
    settings = get_settings()
    grace = settings.stream_resume_grace_seconds
    if grace <= 0:  # resuming is switched off
        return None
    found: list[tuple[str, bool]] = []  # the turn to follow, and whether it still runs

    def attach(current: dict[str, Any]) -> SessionFields:
        found.clear()
        session = SessionRecord.of(current)
        turn, now = session.turn, datetime.now(UTC)
        if turn is None:
            return {}
        running = turn.ended_at is None and sessions.streaming(current)
        if not running and (turn.ended_at is None or turn.replay_until is None or turn.replay_until <= now):
            return {}
        found.append((turn.id, running))
        return {"remote_read_at": now} if running and live(turn.id) is None else {}

    try:
        repo.update(SESSIONS, session_id, attach)
    except ApiError as error:
        if error.code is not Code.NOT_FOUND:
            raise
    if not found:
        return None
    turn_id, running = found[0]
    local = live(turn_id)
    if local is not None:
        chunks = local.follow(client_gone)
    else:
        frames = RemoteFrames(repo, session_id, turn_id, running=running)
        chunks = _follow(frames, client_gone, settings.stream_ping_seconds, grace)
    return StreamReply(chunks, stream.CONTENT_TYPE, headers=dict(stream.HEADERS))


def _follow(
    frames: RemoteFrames, client_gone: Callable[[], bool], ping_seconds: float, grace: float
) -> Iterator[bytes]:
    delivered = False
    try:
        delivered = yield from relay(frames, client_gone, ping_seconds)
    finally:
        if not delivered and not frames.cut_off:
            try:
                sessions.stream_left(frames.repo, frames.session_id, frames.turn_id, grace)
            except Exception:
                logger.exception("a resumed stream's leaving was not recorded")


class RemoteFrames:
    """The part log of a turn of another instance, read as it is written, saying it is read."""

    def __init__(self, repo: Repository, session_id: str, turn_id: str, *, running: bool) -> None:
        self.repo = repo
        self.session_id = session_id
        self.turn_id = turn_id
        self.running = running
        self.cut_off = False  # the turn's instance died: the stream ended with `abort`
        self._tail = LogTail(repo, turn_id)
        self._heard_at = time.monotonic()  # when a batch last came (or the turn was seen to end)
        self._beat_at = time.monotonic() + HEARTBEAT_SECONDS

    def next(self, timeout: float) -> bytes | None:
        if self.cut_off:
            return None
        chunk = self._tail.next(timeout)
        now = time.monotonic()
        if chunk:
            self._heard_at = now
        if chunk is None:
            return None
        if self.running and now >= self._beat_at:
            self._beat_at = now + HEARTBEAT_SECONDS
            self._beat(now)
        elif not self.running and not chunk and now - self._heard_at >= END_WAIT_SECONDS:
            self.cut_off = True  # the turn ended, but its last batch never came
        if self.cut_off:
            logger.warning("a resumed turn's instance died", extra={"fields": {"turn": self.turn_id}})
            return chunk + CUT_OFF
        return chunk

    def _beat(self, now: float) -> None:
        """Say the turn is read; learn whether it still runs."""

        def beat(current: dict[str, Any]) -> SessionFields:
            turn = SessionRecord.of(current).turn
            running = turn is not None and turn.id == self.turn_id and turn.ended_at is None
            return {"remote_read_at": datetime.now(UTC)} if running and sessions.streaming(current) else {}

        try:
            document = self.repo.update(SESSIONS, self.session_id, beat)
        except ApiError as error:
            logger.warning("a resumed stream could not say it is read", extra={"fields": {"code": error.code.value}})
            return
        except Exception:
            logger.exception("a resumed stream could not say it is read")
            return
        turn = SessionRecord.of(document).turn
        if turn is not None and turn.id == self.turn_id and turn.ended_at is not None:
            self.running, self._heard_at = False, now  # its last batch is on its way
        elif turn is None or turn.id != self.turn_id or not sessions.streaming(document):
            self.cut_off = True  # no longer held, and never ended: its instance died

    def close(self) -> None:
        self._tail.close()
