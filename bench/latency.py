"""CRUD latency through the crud function against the same Firestore operation on the raw client.

Both sides run interleaved in the same run against the same emulator. The raw side is the
honest equivalent of what the route stores or reads: the same document, query or fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.cloud.firestore import SERVER_TIMESTAMP, Increment

from bench.harness import Bench, customer_document
from bench.stats import Summary, sample, sample_pair
from common.collections import CUSTOMERS, DOCUMENT_COUNTS

PAGE = 25
GOAL_RATIO = 1.5
WARMUP = 20
ITERATIONS = 300
BUDGET_S = 25.0  # per operation, both sides together


@dataclass(frozen=True)
class Comparison:
    operation: str
    function: Summary
    raw: Summary

    @property
    def ratio_p50(self) -> float:
        return self.function.p50 / self.raw.p50

    @property
    def ratio_p95(self) -> float:
        return self.function.p95 / self.raw.p95


@dataclass(frozen=True)
class LatencyResult:
    comparisons: list[Comparison]
    http_floor: Summary  # GET /healthz: HTTP, functions-framework and the router, no auth, no Firestore


def run(bench: Bench) -> LatencyResult:
    user = bench.sign_up("latency")
    api = bench.crud(user)
    ids = bench.seed_customers(user.uid, 0, 100)
    customers = bench.client.collection(CUSTOMERS.collection)
    get_id, function_patch_id, raw_patch_id = ids[0], ids[1], ids[2]

    def function_get(_: int) -> None:
        api.call("GET", f"/customers/{get_id}", 200)

    def raw_get(_: int) -> None:
        snapshot = customers.document(get_id).get()
        snapshot.to_dict()

    def function_list(_: int) -> None:
        page = api.call("GET", "/customers", 200, params={"limit": str(PAGE)})
        if len(page["items"]) != PAGE:
            raise RuntimeError(f"a page of {len(page['items'])} customers, not {PAGE}")

    # One more than the page, as the repository asks, to know whether there is a next page.
    raw_query = bench.customers_by_name(user.uid).limit(PAGE + 1)

    def raw_list(_: int) -> None:
        snapshots = list(raw_query.stream())
        [s.to_dict() for s in snapshots]

    def create_body(i: int) -> dict[str, object]:
        return {"name": f"Bench {i:05d}", "arr": 1200.0, "stage": "adopting"}

    def function_create(i: int) -> None:
        api.call("POST", "/customers", 201, body=create_body(i))

    # Built before timing: the baseline is the write alone, not the validation the route does.
    documents = [customer_document(user.uid, create_body(i)) for i in range(WARMUP + ITERATIONS)]

    def raw_create(i: int) -> None:
        customers.document().create(documents[i])

    def patch_body(i: int) -> dict[str, object]:
        return {"arr": float(i), "health_score": i % 101}

    def function_patch(i: int) -> None:
        api.call("PATCH", f"/customers/{function_patch_id}", 200, body=patch_body(i))

    def raw_patch(i: int) -> None:
        # The fields the route writes: the changes, the next version and the server timestamp.
        customers.document(raw_patch_id).update({**patch_body(i), "version": i + 2, "updated_at": SERVER_TIMESTAMP})

    safe_patch_id = ids[3]

    def raw_safe_patch(i: int) -> None:
        # What any owner-checked, compare-and-set patch needs from Firestore: read, then a
        # write conditioned on the version read. A second baseline, beside the blind update.
        reference = customers.document(safe_patch_id)
        snapshot = reference.get()
        data = snapshot.to_dict() or {}
        option = bench.client.write_option(last_update_time=snapshot.update_time)
        changes = {**patch_body(i), "version": data["version"] + 1, "updated_at": SERVER_TIMESTAMP}
        reference.update(changes, option=option)

    operations: list[tuple[str, Callable[[int], None], Callable[[int], None]]] = [
        ("get", function_get, raw_get),
        (f"list (page of {PAGE})", function_list, raw_list),
        ("create", function_create, raw_create),
        ("create vs create+count", function_create, raw_counted_create(bench, user.uid, documents)),
        ("patch", function_patch, raw_patch),
        ("patch vs read+CAS", function_patch, raw_safe_patch),
    ]

    def healthz(_: int) -> None:
        api.call("GET", "/healthz", 200)

    http_floor = sample(healthz, warmup=WARMUP, iterations=ITERATIONS, budget_s=BUDGET_S / 2)
    results = []
    for name, through_function, raw in operations:
        function, baseline = sample_pair(through_function, raw, warmup=WARMUP, iterations=ITERATIONS, budget_s=BUDGET_S)
        results.append(Comparison(name, function, baseline))
    return LatencyResult(results, http_floor)


def raw_counted_create(bench: Bench, uid: str, documents: list[dict[str, object]]) -> Callable[[int], None]:
    """The raw equivalent of what POST /customers commits: the customer and, in the same commit,
    the caller's count of customers (CSCX_MAX_DOCUMENTS at constant cost, issue 19 point 4); on a
    counter document of the bench's own, so the route's is not disturbed."""
    customers = bench.client.collection(CUSTOMERS.collection)
    counter = bench.client.collection(DOCUMENT_COUNTS.collection).document(f"{uid}-bench-{CUSTOMERS.collection}")
    counted = {"owner_id": uid, "added": Increment(1), "version": Increment(1), "updated_at": SERVER_TIMESTAMP}

    def raw_counted_create(i: int) -> None:
        batch = bench.client.batch()
        batch.create(customers.document(), documents[i])
        batch.set(counter, counted, merge=True)
        batch.commit()

    return raw_counted_create
