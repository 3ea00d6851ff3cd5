"""Throughput under load (issue 19): 32 clients, each its own user, looping create / list / get /
patch of a customer against one local stack for a fixed time, on loopback; then the same mix with a
chat turn every fifth loop. Requests per second, errors, and p50/p95/p99 per operation.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.harness import Bench, User

CLIENTS = 32
WARMUP_S = 3.0  # every client's first loops, not counted: connections, imports, JIT
DURATION_S = 30.0
CHAT_EVERY = 5  # loops: a chat turn on every fifth
PAGE = 25
GOAL_RPS = 200.0
GOAL_P99_MS = 500.0
CRUD = ("create", "list", "get", "patch")


@dataclass(frozen=True)
class Percentiles:
    n: int
    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Percentiles:
        if len(samples_ms) < 2:  # one sample is every percentile of itself
            return cls(len(samples_ms), samples_ms[0], samples_ms[0], samples_ms[0])
        cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
        return cls(len(samples_ms), statistics.median(samples_ms), cuts[94], cuts[98])


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    operations: dict[str, Percentiles]  # by operation, in the order first done
    errors: dict[str, int]  # by operation
    first_errors: list[str]  # a few, to say what went wrong

    @property
    def crud_requests(self) -> int:
        return sum(self.operations[op].n for op in CRUD if op in self.operations)

    @property
    def crud_rps(self) -> float:
        return self.crud_requests / self.seconds

    @property
    def crud_p99(self) -> float:
        return max(self.operations[op].p99 for op in CRUD if op in self.operations)


@dataclass(frozen=True)
class LoadResult:
    clients: int
    phases: list[Phase]


@dataclass
class _Recorder:
    """Timings and errors of every client, kept only while the clock runs."""

    counting: bool = False
    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`call(*args, **kwargs)`, timed; None, and counted as an error, when it raises."""
        started = time.perf_counter()
        try:
            result = call(*args, **kwargs)
        except Exception as error:
            self._record_error(operation, error)
            return None
        elapsed = (time.perf_counter() - started) * 1000
        if self.counting:
            with self.lock:
                self.samples.setdefault(operation, []).append(elapsed)
        return result

    def _record_error(self, operation: str, error: Exception) -> None:
        if not self.counting:
            return
        with self.lock:
            self.errors[operation] = self.errors.get(operation, 0) + 1
            if len(self.first_errors) < 3:
                self.first_errors.append(f"{operation}: {error}"[:300])


def _request(http: requests.Session, method: str, url: str, status: int, **kwargs: Any) -> Any:
    """The JSON answer of one request; an error unless it answers `status`."""
    reply = http.request(method, url, timeout=30, **kwargs)
    if reply.status_code != status:
        raise RuntimeError(f"{reply.request.method} {reply.url} answered {reply.status_code}: {reply.text[:200]}")
    return reply.json()


def _chat_turn(http: requests.Session, url: str, n: int) -> None:
    """One whole chat turn: POST /chat, its stream read to the end, on a connection of its own.

    Turns come seconds apart, longer than the local server keeps an idle connection open
    (gunicorn's keep-alive, 2 s): a kept one would mostly be found closed, and one closed by the
    server just as the request goes out is reset, which no server of ours could answer.
    """
    body = {"message": f"How is customer {n} doing?"}
    headers = {"Connection": "close"}
    with http.post(f"{url}/chat", json=body, headers=headers, stream=True, timeout=60) as reply:
        if reply.status_code != 200:
            raise RuntimeError(f"POST /chat answered {reply.status_code}: {reply.text[:200]}")
        tail = b""
        for chunk in reply.iter_content(chunk_size=None):
            tail = (tail + chunk)[-64:]
        if b"data: [DONE]" not in tail:
            raise RuntimeError("the chat stream ended without [DONE]")


def _client(bench: Bench, user: User, recorder: _Recorder, stop: threading.Event, chat: bool) -> None:
    crud, chat_url = bench.stack.url("crud"), bench.stack.url("chat_stream")
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {user.token}"
    loop = 0
    while not stop.is_set():
        loop += 1
        body = {"name": f"Load {user.uid[:6]} {loop:05d}", "arr": 1200.0, "stage": "adopting"}
        created = recorder.timed("create", _request, http, "POST", f"{crud}/customers", 201, json=body)
        recorder.timed("list", _request, http, "GET", f"{crud}/customers", 200, params={"limit": str(PAGE)})
        if created is None:
            continue
        path = f"{crud}/customers/{created['id']}"
        recorder.timed("get", _request, http, "GET", path, 200)
        change = {"arr": float(loop), "health_score": loop % 101}
        recorder.timed("patch", _request, http, "PATCH", path, 200, json=change)
        if chat and loop % CHAT_EVERY == 0:
            recorder.timed("chat turn", _chat_turn, http, chat_url, loop)


def _phase(bench: Bench, name: str, users: list[User], chat: bool) -> Phase:
    # Each phase starts on a new, empty emulator: it scans every user's customers to answer one
    # user's list, those deleted included, so what the parts and the phase before stored would
    # slow this one's lists down.
    bench.stack.restart_firestore()
    recorder = _Recorder()
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        clients = [pool.submit(_client, bench, user, recorder, stop, chat) for user in users]
        time.sleep(WARMUP_S)
        recorder.counting = True
        started = time.perf_counter()
        time.sleep(DURATION_S)
        recorder.counting = False  # what is in flight now finishes uncounted
        seconds = time.perf_counter() - started
        stop.set()
        for client in clients:
            client.result()
    operations = {op: Percentiles.of(samples) for op, samples in recorder.samples.items()}
    return Phase(name, seconds, operations, dict(recorder.errors), recorder.first_errors)


def run(bench: Bench) -> LoadResult:
    users = [bench.sign_up(f"load-{n:02d}") for n in range(CLIENTS)]
    crud = _phase(bench, "CRUD mix", users, chat=False)
    with_chat = _phase(bench, f"CRUD mix, a chat turn every {CHAT_EVERY}th loop", users, chat=True)
    return LoadResult(CLIENTS, [crud, with_chat])
