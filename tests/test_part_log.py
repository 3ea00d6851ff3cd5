"""The part log's batching rule and the session's typed record, in process (no emulator): the
flow through Firestore is proven in `tests/test_chat_aisdk.py`.

A batch is written FLUSH_SECONDS after its first part, holding every part come meanwhile, split
at BATCH_BYTES, and the last says `end`; so a turn's batches are at most
1 + seconds / FLUSH_SECONDS + bytes / BATCH_BYTES, however many parts it has.
"""

from __future__ import annotations

import math
import threading
import time
import typing
from collections.abc import Mapping
from typing import Any

from common.agent import part_log, sessions
from common.agent.part_log import BATCH_BYTES, FLUSH_SECONDS, LogWriter, PartLog
from common.collections import PART_LOG, Kind
from common.errors import ApiError, Code


class Batches:
    """Stands in for the repository's create, the one call a LogWriter makes: keeps what it is given."""

    def __init__(self, fail_first: int = 0) -> None:
        self.documents: list[tuple[str, dict[str, Any]]] = []
        self.fail_first = fail_first
        self.done = threading.Event()

    def create(self, kind: Kind, data: Mapping[str, Any], *, doc_id: str | None = None) -> dict[str, Any]:
        assert kind is PART_LOG
        assert doc_id is not None
        if self.fail_first:
            self.fail_first -= 1
            raise ApiError(Code.UNAVAILABLE, "The database is unavailable right now; try again.")
        self.documents.append((doc_id, dict(data)))
        if data["end"]:
            self.done.set()
        return {"id": doc_id, **data}


def written(frames: list[bytes], pace: float, fail_first: int = 0) -> tuple[list[tuple[str, dict[str, Any]]], float]:
    """The batches a writer makes of `frames` appended `pace` seconds apart, and how long that took."""
    batches = Batches(fail_first)
    log = PartLog()
    LogWriter(typing.cast(Any, batches), "session1", "turn1", log).start()
    started = time.monotonic()
    for frame in frames:
        log.append(frame)
        if pace:
            time.sleep(pace)
    seconds = time.monotonic() - started
    log.end()
    assert batches.done.wait(30)
    return batches.documents, seconds


def frame(n: int, size: int = 60) -> bytes:
    return b"data: " + str(n).encode().ljust(size, b"x") + b"\n\n"


def test_three_thousand_parts_at_once_are_one_or_two_batches_holding_them_byte_for_byte() -> None:
    frames = [frame(n) for n in range(3000)]

    documents, _ = written(frames, pace=0)

    assert 1 <= len(documents) <= 2
    assert b"".join(d["frames"] for _, d in documents) == b"".join(frames)
    assert [doc_id for doc_id, _ in documents] == [f"turn1-{n:06d}" for n in range(len(documents))]
    assert [d["seq"] for _, d in documents] == list(range(len(documents)))
    assert [d["end"] for _, d in documents] == [False] * (len(documents) - 1) + [True]
    assert {(d["session_id"], d["turn"]) for _, d in documents} == {("session1", "turn1")}


def test_parts_over_time_cost_a_batch_a_flush_interval_not_a_write_each() -> None:
    frames = [frame(n) for n in range(60)]

    documents, seconds = written(frames, pace=0.025)  # 1.5 s of parts, 40 a second

    assert b"".join(d["frames"] for _, d in documents) == b"".join(frames)
    assert len(documents) <= 1 + math.ceil(seconds / FLUSH_SECONDS) + 1
    assert len(documents) >= 2  # each batch waited FLUSH_SECONDS, not for the end


def test_a_batch_is_split_at_its_size_limit_and_a_large_part_goes_alone() -> None:
    frames = [frame(n, 1000) for n in range(600)] + [frame(600, BATCH_BYTES + 10)] + [frame(601)]

    documents, _ = written(frames, pace=0)

    assert b"".join(d["frames"] for _, d in documents) == b"".join(frames)
    assert all(len(d["frames"]) <= BATCH_BYTES for _, d in documents if len(d["frames"]) != len(frames[600]))
    assert any(d["frames"] == frames[600] for _, d in documents)
    total = sum(len(f) for f in frames)
    assert len(documents) <= 2 + math.ceil(total / BATCH_BYTES)


def test_a_batch_firestore_did_not_take_is_written_again(monkeypatch: Any) -> None:
    monkeypatch.setattr(part_log, "WRITE_RETRIES", (0.01, 0.01, 0.01))
    frames = [frame(n) for n in range(10)]

    documents, _ = written(frames, pace=0, fail_first=2)

    assert b"".join(d["frames"] for _, d in documents) == b"".join(frames)
    assert documents[-1][1]["end"]


def test_a_log_that_ends_with_nothing_new_still_writes_its_end() -> None:
    batches = Batches()
    log = PartLog()
    LogWriter(typing.cast(Any, batches), "session1", "turn1", log).start()
    log.append(frame(1))
    time.sleep(FLUSH_SECONDS * 2)  # the first batch is written
    log.end()
    assert batches.done.wait(10)
    assert [(d["frames"], d["end"]) for _, d in batches.documents] == [(frame(1), False), (b"", True)]


def test_followers_read_every_frame_once_in_order_and_then_the_end() -> None:
    log = PartLog()
    follower = log.follow()
    assert follower.next(0.01) == b""
    log.append(b"a")
    log.append(b"b")
    assert follower.next(0.01) == b"ab"
    late = log.follow()  # a stream resumed now starts at the first frame
    log.append(b"c")
    log.end()
    assert follower.next(0.01) == b"c"
    assert follower.next(0.01) is None
    assert late.next(0.01) == b"abc"
    assert late.next(0.01) is None


def test_every_field_the_server_writes_on_a_session_is_a_field_of_its_record() -> None:
    written_fields = set(typing.get_type_hints(sessions.SessionFields))
    assert written_fields <= set(sessions.SessionRecord.model_fields)
    assert {"lease", "turn", "stop_requested_at", "remote_read_at", "status"} <= written_fields
