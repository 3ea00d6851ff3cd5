"""Where a CRUD request's time goes (issue 19 point 6): the crud function in this process
(functions-framework's own app, a real ID token, the bench's emulators), each step of its path
timed where it is called, beside the raw Firestore operation it wraps.

The steps are timed by wrapping the functions that do them (restored afterwards): nothing is
replaced, each is only timed. A step's time is its own, without the steps it calls (an
idempotency key's records are "idempotency key", their Firestore calls "store"); "router and
route" is what is left of the whole request: matching, context, the handler's own code.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.harness import ROOT, Bench
from bench.stats import table

RUNS = 200
WARMUP = 20

STEPS = (
    "auth (ID token)",
    "rate limit",
    "profile check",
    "body + validation",
    "idempotency key",
    "store (Firestore)",
    "answer: model + JSON",
    "access log",
    "router and route",
)


@dataclass(frozen=True)
class Breakdown:
    operation: str
    total_p50: float
    steps_p50: dict[str, float]  # each step's own time, median over the runs
    store_calls: float  # Firestore calls of the store per request (median)


class _Clock:
    """Exclusive time per step: a step's time less that of the steps it calls."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.calls = 0
        self._stack: list[list[float]] = []

    def timed(self, step: str, call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if step == "store (Firestore)":
                self.calls += 1
            self._stack.append([0.0])
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                inner = self._stack.pop()[0]
                self.spent[step] = self.spent.get(step, 0.0) + elapsed - inner
                if self._stack:
                    self._stack[-1][0] += elapsed

        return timed


@contextmanager
def _instrumented(clock: _Clock, router: Any) -> Iterator[None]:
    from common import idempotency, limits
    from common.auth import FirebaseUser
    from common.http import access, context, replies
    from common.http import router as routing
    from common.store import Repository

    store = ("get", "find", "find_keyed", "require", "list", "count", "first", "create", "update", "set_fields",
             "add", "delete", "run_transaction", "delete_where")  # fmt: skip
    targets: list[tuple[Any, str, str]] = [
        (FirebaseUser, "authenticate", "auth (ID token)"),
        (limits, "take", "rate limit"),
        (router, "on_authenticated", "profile check"),
        (context.Context, "parse", "body + validation"),
        (idempotency, "_begin", "idempotency key"),
        (idempotency, "_finish", "idempotency key"),
        (replies.Reply, "resource", "answer: model + JSON"),
        (replies.Reply, "page", "answer: model + JSON"),
        (routing, "to_response", "answer: model + JSON"),
        (access.RequestLog, "write", "access log"),
        *[(Repository, name, "store (Firestore)") for name in store],
    ]
    saved = [(owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name))
             for owner, name, _ in targets]  # fmt: skip
    for owner, name, step in targets:
        original = getattr(owner, name)
        setattr(owner, name, classmethod(clock.timed(step, original.__func__)) if _is_classmethod(owner, name)
                else clock.timed(step, original))  # fmt: skip
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def _is_classmethod(owner: Any, name: str) -> bool:
    return isinstance(owner, type) and isinstance(owner.__dict__.get(name), classmethod)


def run(bench: Bench) -> list[Breakdown]:
    import functions_framework

    from common import instance

    instance.reset()  # the settings of the bench's stack, as the function gets them
    app = functions_framework.create_app("crud", str(ROOT / "functions/crud/main.py"))  # type: ignore[no-untyped-call]
    client = app.test_client()
    router = sys.modules["main"].router  # functions-framework loads the source as `main`
    # The log lines are made as in the function, and written where no one reads them.
    streams = [(h, h.setStream(open(os.devnull, "w")))  # noqa: SIM115 - closed below
               for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]  # fmt: skip
    user = bench.sign_up("breakdown")
    headers = {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}
    [target] = bench.seed_customers(user.uid, 0, 1)

    def call(method: str, path: str, body: Any = None, expect: int = 200, extra: dict[str, str] | None = None) -> None:
        data = None if body is None else json.dumps(body)
        response = client.open(path, method=method, data=data, headers={**headers, **(extra or {})})
        response.close()  # the access log is written when the response closes
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.get_data()[:300]!r}")

    operations: list[tuple[str, Callable[[int], None]]] = [
        ("get", lambda i: call("GET", f"/customers/{target}")),
        ("list (page of 25)", lambda i: call("GET", "/customers?limit=25")),
        ("create", lambda i: call("POST", "/customers", {"name": f"Bench {i}", "arr": 1200.0}, 201)),
        ("patch", lambda i: call("PATCH", f"/customers/{target}", {"arr": float(i)})),
        ("create, keyed", lambda i: call("POST", "/customers", {"name": f"Keyed {i}"}, 201,
                                          {"Idempotency-Key": uuid.uuid4().hex})),
    ]  # fmt: skip
    results = []
    for name, operation in operations:
        for i in range(WARMUP):
            operation(i)
        totals: list[float] = []
        per_step: dict[str, list[float]] = {step: [] for step in STEPS}
        calls: list[float] = []
        for i in range(WARMUP, WARMUP + RUNS):
            clock = _Clock()
            with _instrumented(clock, router):
                started = time.perf_counter()
                operation(i)
                total = (time.perf_counter() - started) * 1000
            totals.append(total)
            calls.append(clock.calls)
            measured = {step: ms * 1000 for step, ms in clock.spent.items()}
            measured["router and route"] = total - sum(measured.values())
            for step in STEPS:
                per_step[step].append(measured.get(step, 0.0))
        results.append(
            Breakdown(
                name,
                statistics.median(totals),
                {step: statistics.median(values) for step, values in per_step.items()},
                statistics.median(calls),
            )
        )
    for handler, stream in streams:
        handler.setStream(stream).close()  # type: ignore[union-attr]
    instance.reset()
    return results


def report(results: list[Breakdown]) -> str:
    headers = ["step", *[r.operation for r in results]]
    rows: list[list[object]] = [[step, *[r.steps_p50[step] for r in results]] for step in STEPS]
    rows.append(["whole request (p50)", *[r.total_p50 for r in results]])
    rows.append(["store methods called", *[f"{r.store_calls:.0f}" for r in results]])
    return (
        "\n1b. Where a CRUD request's time goes: crud in this process (functions-framework's app, no HTTP server),\n"
        f"   each step's own time, median of {RUNS} requests, ms\n" + table(headers, rows)
    )
