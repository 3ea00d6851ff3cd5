"""Create latency as one user's customers grow (issue 19 point 4): CSCX_MAX_DOCUMENTS judged from a
counter kept with every create and delete, not a count per create. At each size a new user holds
that many customers (stored raw, as before the counter: its first create counts them once), then
`POST /customers` is timed interleaved with the raw commit of the same two writes (the customer and
the count, what the emulator itself takes at that size); then, apart (it keeps the emulator busy
for a while, which would weigh on whatever followed it), the count aggregation each create used to pay.

The cap is raised to 20,000 on a variant of crud, so the 10,000th customer is not refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.harness import Api, Bench, customer_document
from bench.latency import raw_counted_create
from bench.stats import Summary, sample, sample_pair

SIZES = (10, 1_000, 10_000)
WARMUP = 10
RUNS = 100
BUDGET_S = 20.0
GOAL_RATIO = 1.25  # p50 at the largest size against the smallest


@dataclass(frozen=True)
class SizeResult:
    size: int
    first_create_ms: float  # the one that counts the customers stored before the counter
    create: Summary
    raw_create: Summary  # the same two writes committed on the raw client
    count_aggregation: Summary  # what a create paid before: the owner's count


def run(bench: Bench) -> list[SizeResult]:
    url = bench.stack.start_variant("crud", "cap-20000", {"CSCX_MAX_DOCUMENTS": "20000"})
    results = []
    for size in SIZES:
        user = bench.sign_up(f"creates-{size}")
        api = Api(url, user)
        bench.seed_customers(user.uid, 0, size)
        started = time.perf_counter()
        api.call("POST", "/customers", 201, body={"name": "First"})
        first_ms = (time.perf_counter() - started) * 1000
        count_query = bench.customers_by_name(user.uid).count()

        def body(i: int) -> dict[str, Any]:
            return {"name": f"Bench {i:05d}", "arr": 1200.0}

        def create(i: int, api: Api = api) -> None:
            api.call("POST", "/customers", 201, body=body(i))

        raw = raw_counted_create(bench, user.uid, [customer_document(user.uid, body(i)) for i in range(WARMUP + RUNS)])

        def count(_: int, query: Any = count_query) -> None:
            query.get()

        created, raw_created = sample_pair(create, raw, warmup=WARMUP, iterations=RUNS, budget_s=BUDGET_S)
        counted = sample(count, warmup=WARMUP, iterations=RUNS // 4, budget_s=BUDGET_S / 4)
        results.append(SizeResult(size, first_ms, created, raw_created, counted))
    return results
