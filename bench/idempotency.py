"""Idempotency (issue 9): `POST /customers` with and without an `Idempotency-Key`, interleaved in
the same run; the key's record, its answer in it, goes in the create's own commit (issue 19)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from bench.harness import Bench
from bench.stats import Summary

RUNS = 150
GOAL_RATIO = 1.3


@dataclass(frozen=True)
class IdempotencyResult:
    with_key: Summary
    without_key: Summary


def run(bench: Bench) -> IdempotencyResult:
    user = bench.sign_up("idempotency-bench")
    session = bench.crud(user).http
    url = f"{bench.stack.url('crud')}/customers"

    def create(key: str | None) -> float:
        headers = {"Idempotency-Key": key} if key else {}
        started = time.perf_counter()
        reply = session.post(url, json={"name": f"Acme {uuid.uuid4().hex[:6]}"}, headers=headers, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        if reply.status_code != 201:
            raise RuntimeError(f"create answered {reply.status_code}: {reply.text[:300]}")
        return elapsed

    for _ in range(10):  # warm up both paths
        create(None)
        create(uuid.uuid4().hex)
    keyed, plain = [], []
    for i in range(RUNS):
        if i % 2:
            keyed.append(create(uuid.uuid4().hex))
            plain.append(create(None))
        else:
            plain.append(create(None))
            keyed.append(create(uuid.uuid4().hex))
    return IdempotencyResult(Summary.of(keyed), Summary.of(plain))
