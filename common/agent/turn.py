"""A chat turn as it runs (DESIGN §7): the agent loop in a thread of its own, the streams that
follow it, and what stops it.

The loop's parts go into the turn's part log (`part_log.py`), which every stream of the turn
reads: the one that started it and any resumed (`resume.py`). The turn holds its session by a
lease, kept while the loop runs, and watches the session document, so that a Stop from any
instance, a delete or a takeover reaches it. A stream whose client leaves does not stop the turn:
it stops when no stream has been read for CSCX_STREAM_RESUME_GRACE_SECONDS (a stream resumed on
another instance says through the session that it is being read, `remote_read_at`). When the
loop ends, the answer is stored and the session freed, then the log ends: `[DONE]` goes out after
the message is stored. A turn's log stays on its instance for the grace after it ended, for a
stream resumed there.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from common import usage
from common.agent import sessions, stream
from common.agent.loop import AgentLoop, TurnOutcome
from common.agent.part_log import LogWriter, PartLog, relay
from common.agent.sessions import HeldSession, SessionRecord
from common.collections import SESSIONS
from common.log import get_logger
from common.models import MessageRole, SessionStatus
from common.store import Repository

logger = get_logger(__name__)

CHECK_SECONDS = 0.25  # how often a running turn looks at who reads it
WATCH_SETUP_SECONDS = 1.0  # the session is polled instead if its watch is not set up by then
# A stream resumed on another instance writes `remote_read_at` this often while it is read; the
# turn counts it as read until this long after it last saw the field change.
HEARTBEAT_SECONDS = 5.0
REMOTE_STALE_SECONDS = 2.5 * HEARTBEAT_SECONDS
FIRST_TOKEN_PARTS = frozenset({"text-delta", "tool-input-start"})  # the CSM sees the answer begin

_LIVE: dict[str, RunningTurn] = {}  # the turns of this instance, by turn id, kept the grace after they end
_LIVE_LOCK = threading.Lock()


def live(turn_id: str) -> RunningTurn | None:
    """The turn `turn_id` if it runs on this instance, or ended here less than its grace ago."""
    with _LIVE_LOCK:
        _forget_ended()
        return _LIVE.get(turn_id)


def _forget_ended() -> None:
    """Let go of the turns that ended more than their grace ago (call with _LIVE_LOCK held)."""
    now = time.monotonic()
    for gone in [t for t in _LIVE.values() if t.ended_at is not None and now - t.ended_at > t.grace]:
        del _LIVE[gone.turn_id]


class RunningTurn:
    """One chat turn: the loop, its part log and the streams reading it."""

    def __init__(
        self,
        repo: Repository,
        claim: HeldSession,
        make_loop: Callable[[Callable[[stream.Part], None]], AgentLoop],
        *,
        meter: usage.Meter,
        grace: float,
        ping_seconds: float,
        started: float,
    ) -> None:
        self.repo = repo
        self.started = started  # time.monotonic() when the request arrived
        self.first_token_ms: int | None = None  # when the first text or tool part went out
        self.finish_reason: str | None = None  # the stream's finish part's, or "abort"
        self.claim = claim
        self.meter = meter
        self.session_id = claim.session.id
        self.turn_id = claim.turn_id
        self.grace = grace
        self.ping_seconds = ping_seconds
        self.log = PartLog()
        self.transcript = stream.Transcript()
        self.loop = make_loop(self._emit)
        self.writer = LogWriter(repo, self.session_id, self.turn_id, self.log) if grace > 0 else None
        self.ended_at: float | None = None  # time.monotonic() when the log ended
        self._lock = threading.Lock()  # who reads, and whether the stored turn can be resumed
        self._readers = 0  # streams of this instance following the log
        self._left_at = time.monotonic()  # when the last of them left
        self._remote_read_at: datetime | None = None  # the session's `remote_read_at`, as last seen
        self._remote_seen_at: float | None = None  # when it was last seen to change
        self._released = False  # the answer is stored and the session freed
        self._replayable = False  # ... and the session says the turn may still be resumed
        self._finished = threading.Event()
        self._unwatch: Callable[[], None] | None = None
        self._watching = False

    def start(self) -> None:
        if self.grace > 0:  # it can be resumed here
            with _LIVE_LOCK:
                _forget_ended()
                _LIVE[self.turn_id] = self
        if self.writer is not None:
            self.writer.start()
        _thread(self._produce, f"chat-{self.session_id}")
        _thread(self._check, f"chat-check-{self.session_id}")

    # -- the streams ----------------------------------------------------------------------------

    def follow(self, client_gone: Callable[[], bool]) -> Iterator[bytes]:
        """A stream of the turn from its first part, counted as read until its client leaves."""
        with self._lock:
            self._readers += 1
        return self._relay(client_gone)

    def _relay(self, client_gone: Callable[[], bool]) -> Iterator[bytes]:
        delivered = False
        try:
            delivered = yield from relay(self.log.follow(), client_gone, self.ping_seconds)
        finally:
            self._left(delivered)

    def _left(self, delivered: bool) -> None:
        with self._lock:
            self._readers -= 1
            if self._readers == 0:
                self._left_at = time.monotonic()
            replay = not delivered and self._released and not self._replayable
            self._replayable = self._replayable or replay
        if delivered:
            return
        if self.grace <= 0:  # no resume: a hang-up stops the turn at once
            self.loop.stop("the client disconnected")
        elif replay:  # the end reached no one: it may be resumed for the grace
            try:
                sessions.stream_left(self.repo, self.session_id, self.turn_id, self.grace)
            except Exception:
                logger.exception("the ended turn cannot be resumed")

    def _unread_since(self, now: float) -> float | None:
        """Since when no stream has read the turn (None: one does). Call with the lock held."""
        if self._readers:
            return None
        since = self._left_at
        if self._remote_seen_at is not None:
            stale = self._remote_seen_at + REMOTE_STALE_SECONDS
            if stale > now:
                return None
            since = max(since, stale)
        return since

    # -- the producer ---------------------------------------------------------------------------

    def _emit(self, part: stream.Part) -> None:
        if self.first_token_ms is None and part["type"] in FIRST_TOKEN_PARTS:
            self.first_token_ms = round((time.monotonic() - self.started) * 1000)
        elif part["type"] in ("finish", "abort"):
            self.finish_reason = str(part.get("finishReason", part["type"]))
        self.transcript.add(part)
        self.log.append(stream.frame(part))

    def _produce(self) -> None:
        outcome = TurnOutcome("error", error="The assistant failed unexpectedly.")
        try:
            with self.claim.lease.kept():
                try:
                    self._emit(stream.start(self.turn_id, self.session_id))
                    outcome = self.loop.run()
                except Exception:
                    logger.exception("chat turn failed")
                    self._emit(stream.error("The assistant failed unexpectedly; try again."))
                    self._emit(stream.finish("error"))
                finally:
                    self._stop_watching()
        finally:
            try:
                self._store(outcome)
                self.meter.settle(session_id=self.session_id, provider=self.claim.session.provider)
            finally:  # whatever happened, the streams end
                self._log_turn(outcome)
                self._finished.set()
                self.ended_at = time.monotonic()
                self.log.end()

    def _log_turn(self, outcome: TurnOutcome) -> None:
        """The turn's one line (monitoring reads it: terraform/modules/monitoring): how long the CSM
        waited for its first token (absent when nothing was said), how it ended, on which model."""
        fields: dict[str, Any] = {
            "session_id": self.session_id,
            "provider": self.claim.session.provider,
            "model": self.claim.session.model,
            "status": outcome.status,
            "finish_reason": self.finish_reason,
            "turn_ms": round((time.monotonic() - self.started) * 1000),
        }
        if self.first_token_ms is not None:
            fields["first_token_ms"] = self.first_token_ms
        logger.info("chat turn", extra={"fields": fields})

    def _store(self, outcome: TurnOutcome) -> None:
        self.transcript.close_open_text()
        message = {
            "role": MessageRole.ASSISTANT.value,
            "parts": self.transcript.parts,
            "status": outcome.status,
            "usage": {"input_tokens": outcome.usage.input_tokens, "output_tokens": outcome.usage.output_tokens},
            "error": outcome.error,
        }
        with self._lock:  # a stream leaving meanwhile waits, then knows whether the end can be resumed
            replay = self.grace > 0 and self._unread_since(time.monotonic()) is not None
            try:
                sessions.release(self.repo, self.claim, message, replay_seconds=self.grace if replay else None)
            except Exception:
                # The lease frees the session even so; the message is lost, and the log says so.
                logger.exception("the assistant's message could not be stored")
            self._released, self._replayable = True, replay

    # -- what stops it --------------------------------------------------------------------------

    def _check(self) -> None:
        """Stop the turn once no stream has read it for the grace, or its lease is lost; watch the
        session for a stop from the first check on, or poll it if it cannot be watched.

        The watch is set up a check after the turn began, off the path to the first token (it
        takes a while, and the model call is made meanwhile); its first snapshot tells a stop
        asked before it. A turn done by then is never watched.
        """
        watched = False
        next_poll = time.monotonic() + WATCH_SETUP_SECONDS
        while not self._finished.wait(CHECK_SECONDS):
            if not watched:
                watched = True
                _thread(self._watch, f"watch-{self.session_id}")
            now = time.monotonic()
            if self.claim.lease.lost:
                self.loop.stop("the session was taken over")
            if self.grace > 0:
                with self._lock:
                    since = self._unread_since(now)
                if since is not None and now - since >= self.grace:
                    self.loop.stop("the client disconnected")
            if not self._watching and now >= next_poll:
                next_poll = now + self.claim.lease.seconds / 3
                try:
                    self._session_changed(self.repo.find(SESSIONS, self.session_id))
                except Exception:
                    logger.warning("the session could not be read", exc_info=True)

    def _watch(self) -> None:
        """Watch the session for a stop (set up off the stream's path: it takes a while)."""
        try:
            unwatch = self.repo.watch(SESSIONS, self.session_id, self._session_changed)
        except Exception:
            logger.exception("the session cannot be watched: it is read every third of the lease instead")
            return
        with self._lock:
            if self._finished.is_set() or self._unwatch is not None:
                unwatch()
            else:
                self._unwatch, self._watching = unwatch, True

    def _stop_watching(self) -> None:
        with self._lock:
            unwatch, self._unwatch = self._unwatch, lambda: None  # a watch set up later is closed at once
        if unwatch is not None:
            try:
                unwatch()
            except Exception:
                logger.warning("the session watch did not close cleanly", exc_info=True)

    def _session_changed(self, document: dict[str, Any] | None) -> None:
        if document is None or not self.claim.lease.ours(document):
            self.loop.stop("the session was taken over or deleted")
            return
        session = SessionRecord.of(document)
        if session.status != SessionStatus.STREAMING:
            self.loop.stop("the session is being deleted")
        elif session.stop_requested_at is not None:
            self.loop.stop("stopped by the user")
        with self._lock:
            if session.remote_read_at != self._remote_read_at:
                now = time.monotonic()
                if session.remote_read_at is None:  # a stream resumed elsewhere left
                    self._remote_seen_at = None
                    self._left_at = max(self._left_at, now)
                else:
                    self._remote_seen_at = now
                self._remote_read_at = session.remote_read_at


def _thread(target: Callable[[], None], name: str) -> None:
    """A daemon thread that runs `target` in this request's context (its log lines keep the request id)."""
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(target,), name=name, daemon=True).start()
