"""A turn's part log: every part of a chat turn, in order, where any instance can read it (DESIGN §7).

The turn's own instance keeps the parts, framed as they are sent, in memory (`PartLog`): the
stream that started the turn, and any resumed on that instance, follow them there. A writer
thread (`LogWriter`) copies them to Firestore off the stream's path, in batches: a batch is one
`part_log` document, `{turn}-{seq}`, holding the frames of the parts made since the batch before,
byte for byte. The writer waits FLUSH_SECONDS after the first part of a batch (unless the turn
ends), then writes what has come, split so that no batch holds more than BATCH_BYTES; the last
batch says `end`. A turn therefore costs at most 1 + its length / FLUSH_SECONDS + its bytes /
BATCH_BYTES writes, however many parts it has. A stream resumed on another instance follows the
batches as they are written (`LogTail`), and `relay` turns either into the response's chunks.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from common.agent import stream
from common.collections import PART_LOG
from common.errors import ApiError, Code
from common.log import get_logger
from common.store import Filter, Repository

logger = get_logger(__name__)

FLUSH_SECONDS = 0.5  # how long the first part of a batch waits for others
BATCH_BYTES = 256 * 1024  # well below Firestore's 1 MiB a document
KEEP = timedelta(hours=1)  # then Firestore's TTL policy deletes a batch (`expires_at`)
POLL_SECONDS = 0.2  # how often a silent stream looks at its client
WRITE_RETRIES = (0.5, 1.0, 2.0, 4.0, 8.0)  # a batch Firestore did not take is written again after these


class Frames(Protocol):
    """Where a stream's frames come from: a turn's log, here or in Firestore."""

    def next(self, timeout: float) -> bytes | None:
        """The frames come since the last call, as one chunk (b"" if none came within
        `timeout`); None once the log has ended and every frame has been given."""
        ...

    def close(self) -> None: ...


class PartLog:
    """The frames of one turn's parts, in memory, as they are made; followed by any number of
    streams on this instance."""

    def __init__(self) -> None:
        self._frames: list[bytes] = []
        self._ended = False
        self._changed = threading.Condition()
        self.ended = threading.Event()

    def append(self, frame: bytes) -> None:
        with self._changed:
            self._frames.append(frame)
            self._changed.notify_all()

    def end(self) -> None:
        """No frame comes after this one."""
        with self._changed:
            self._ended = True
            self._changed.notify_all()
        self.ended.set()

    def since(self, start: int, timeout: float | None) -> tuple[list[bytes], bool]:
        """The frames from index `start` (waiting up to `timeout` for one), and whether the log has ended."""
        with self._changed:
            if len(self._frames) <= start and not self._ended:
                self._changed.wait(timeout)
            return self._frames[start:], self._ended

    def follow(self) -> LogFollower:
        return LogFollower(self)


class LogFollower:
    """The log of a turn of this instance, from its first frame on."""

    def __init__(self, log: PartLog) -> None:
        self._log = log
        self._position = 0

    def next(self, timeout: float) -> bytes | None:
        frames, ended = self._log.since(self._position, timeout)
        self._position += len(frames)
        if frames:
            return b"".join(frames)
        return None if ended else b""

    def close(self) -> None:
        return None


class LogWriter:
    """Copies a turn's log to Firestore in batches, in a thread of its own, until the log ends."""

    def __init__(self, repo: Repository, session_id: str, turn_id: str, log: PartLog) -> None:
        self.repo = repo
        self.session_id = session_id
        self.turn_id = turn_id
        self.log = log
        self.writes = 0  # batches written

    def start(self) -> None:
        context = contextvars.copy_context()
        name = f"part-log-{self.turn_id[:8]}"
        threading.Thread(target=context.run, args=(self._run,), name=name, daemon=True).start()

    def _run(self) -> None:
        written = 0
        try:
            while True:
                frames, ended = self.log.since(written, None)
                if frames and not ended:
                    self.log.ended.wait(FLUSH_SECONDS)  # the batch gathers what comes meanwhile
                    frames, ended = self.log.since(written, 0)
                for chunk, last in _chunks(frames):
                    self._write(chunk, end=ended and last)
                written += len(frames)
                if ended:
                    return
        except Exception:
            # Streams on this instance are unaffected; one resumed elsewhere ends when it sees no more.
            logger.exception("the part log is not written any further", extra={"fields": {"turn": self.turn_id}})

    def _write(self, frames: Sequence[bytes], *, end: bool) -> None:
        document = {
            "session_id": self.session_id,
            "turn": self.turn_id,
            "seq": self.writes,
            "frames": b"".join(frames),
            "end": end,
            "expires_at": datetime.now(UTC) + KEEP,
        }
        doc_id = f"{self.turn_id}-{self.writes:06d}"
        for delay in (*WRITE_RETRIES, None):
            try:
                self.repo.create(PART_LOG, document, doc_id=doc_id)
                break
            except ApiError as error:
                if error.code is Code.ALREADY_EXISTS:
                    break  # a retry of a write that was stored
                if delay is None or error.code not in (Code.UNAVAILABLE, Code.ABORTED, Code.RESOURCE_EXHAUSTED):
                    raise
                time.sleep(delay)
        self.writes += 1


def _chunks(frames: Sequence[bytes]) -> Iterator[tuple[list[bytes], bool]]:
    """`frames` in runs of at most BATCH_BYTES (a larger frame alone), each with whether it is the
    last; no frames at all are one empty run (the end of a log with nothing left to write)."""
    run: list[bytes] = []
    size = 0
    for frame in frames:
        if run and size + len(frame) > BATCH_BYTES:
            yield run, False
            run, size = [], 0
        run.append(frame)
        size += len(frame)
    yield run, True


class LogTail:
    """The log of a turn of another instance, as its batches reach Firestore."""

    def __init__(self, repo: Repository, turn_id: str) -> None:
        self._arrived: queue.Queue[Sequence[dict[str, Any]]] = queue.Queue()
        self._waiting: dict[int, dict[str, Any]] = {}
        self._next = 0
        self._ended = False
        self._unwatch = repo.follow(
            PART_LOG, [Filter("turn", "==", turn_id)], PART_LOG.orders["seq"], self._arrived.put
        )

    def next(self, timeout: float) -> bytes | None:
        if self._ended:
            return None
        try:
            arrived = [self._arrived.get(timeout=timeout)]
        except queue.Empty:
            return b""
        while not self._arrived.empty():
            arrived.append(self._arrived.get_nowait())
        for batch in arrived:
            for document in batch:
                self._waiting[int(document["seq"])] = document
        frames: list[bytes] = []
        while self._next in self._waiting and not self._ended:  # in order, each batch once
            document = self._waiting.pop(self._next)
            self._next += 1
            frames.append(bytes(document["frames"]))
            self._ended = bool(document.get("end"))
        if not frames and self._ended:
            return None
        return b"".join(frames)

    def close(self) -> None:
        try:
            self._unwatch()
        except Exception:
            logger.warning("the part log's listener did not close cleanly", exc_info=True)


def relay(frames: Frames, client_gone: Callable[[], bool], ping_seconds: float) -> Generator[bytes, None, bool]:
    """The response's chunks: the frames as they come, `: ping` while they do not, `[DONE]` after
    the last. True once `[DONE]` has gone out; False when the client left first (a silent stream
    looks at its client's socket every POLL_SECONDS: a WSGI server notices only when it writes)."""
    last_write = time.monotonic()
    try:
        while True:
            chunk = frames.next(POLL_SECONDS)
            if chunk is None:
                yield stream.DONE
                return True
            if chunk:
                yield chunk
                last_write = time.monotonic()
                continue
            if client_gone():
                return False
            if time.monotonic() - last_write >= ping_seconds:
                yield stream.PING
                last_write = time.monotonic()
    finally:
        frames.close()
