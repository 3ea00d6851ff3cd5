"""The API edge (issue 10), two measurements.

No existence oracle: another user's large document must answer 404 as fast as an id that does
not exist, for single reads, updates, deletes and reference checks alike. Alice owns a customer
of about 250 KB; Bob asks for it, and for an id nobody has, interleaved. Alice's own read of it
is shown beside them, to show the document really is large to read.

No error amplification: a body just under 1 MiB built to make errors (unknown keys at the top,
inside a nested object, a list far over its cap) must cost no more than a valid create, and
answer at most 16 KiB.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from bench.harness import Bench, customer_document
from bench.stats import Summary, sample_pair
from common.collections import CUSTOMERS

DOCUMENT_BYTES = 250_000
MISSING_ID = "NoSuchCustomer0000000000"
GOAL_RATIO = 1.2
WARMUP = 10
ITERATIONS = 200
BUDGET_S = 20.0


@dataclass(frozen=True)
class Probe:
    operation: str
    others: Summary  # another user's large document
    missing: Summary  # an id that does not exist
    identical: bool  # the two answers were byte for byte the same


@dataclass(frozen=True)
class Amplification:
    body: str
    request_bytes: int
    answer_bytes: int
    refused: Summary
    valid_create: Summary  # the largest valid POST /customers, interleaved


@dataclass(frozen=True)
class EdgeResult:
    probes: list[Probe]
    owner_read: Summary
    amplification: list[Amplification]


BODY_LIMIT = 1024 * 1024
ANSWER_GOAL_BYTES = 16 * 1024


def largest_valid_customer(i: int) -> dict[str, Any]:
    """A customer with every field and list at its cap (README: resource limits)."""
    contact = {"name": "D" * 200, "email": f"dana.{'x' * 50}@example.com", "title": "T" * 200}
    stakeholder = {"name": "S" * 200, "email": "s@example.com", "role": "R" * 200, "is_champion": True}
    return {
        "name": f"Acme {i}",
        "domain": "acme.example.com",
        "industry": "I" * 200,
        "arr": 120_000,
        "stage": "adopting",
        "health_score": 80,
        "renewal_date": "2027-03-01",
        "primary_contact": contact,
        "stakeholders": [stakeholder] * 100,
        "tags": [f"{n:02d}" + "t" * 48 for n in range(50)],
        "notes": "n" * 20_000,
    }


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


# Bodies just under 1 MiB that each make as many errors as they can: each, given n, the body of n
# bad things.
HOSTILE_BODIES: dict[str, Callable[[int], bytes]] = {
    "unknown top-level keys": lambda n: _encode({f"{i:x}": 0 for i in range(n)}),
    "unknown keys in a stakeholder": lambda n: _encode(
        {"name": "Acme", "stakeholders": [{"name": "Dana", **{f"{i:x}": 0 for i in range(n)}}]}
    ),
    "stakeholders far over 100": lambda n: _encode({"name": "Acme", "stakeholders": [{"name": ""}] * n}),
    "tags far over 50": lambda n: _encode({"name": "Acme", "tags": [""] * n}),
    # The floor: one long string, as cheap to parse as JSON gets (sending and reading 1 MiB).
    "notes far over 20,000 characters": lambda n: _encode({"name": "Acme", "notes": "n" * n}),
}


@functools.cache
def hostile_body(name: str) -> bytes:
    """The body `name` of HOSTILE_BODIES with as many bad things as fit under 1 MiB (built once)."""
    make = HOSTILE_BODIES[name]
    low, low_size = 1, len(make(1))
    high, high_size = 2, len(make(2))
    while high_size < BODY_LIMIT:
        low, low_size, high = high, high_size, high * 2
        high_size = len(make(high))
    # The largest n whose body fits: a body grows about linearly with n, so each probe is where
    # the line through the two ends crosses the limit (a few builds of a mebibyte, not twenty).
    while high - low > 1:
        guess = low + (BODY_LIMIT - 1 - low_size) * (high - low) // (high_size - low_size)
        guess = min(max(guess, low + 1), high - 1)
        size = len(make(guess))
        if size < BODY_LIMIT:
            low, low_size = guess, size
        else:
            high, high_size = guess, size
    return make(low)


def hostile_bodies() -> dict[str, bytes]:
    """Every hostile body, by name."""
    return {name: hostile_body(name) for name in HOSTILE_BODIES}


# (what is measured, method, path, body, the status both answers have); {id} is the target.
OPERATIONS = [
    ("GET /customers/{id}", "GET", "/customers/{id}", None, 404),
    ("PATCH /customers/{id}", "PATCH", "/customers/{id}", {"notes": "mine now"}, 404),
    ("DELETE /customers/{id}", "DELETE", "/customers/{id}", None, 404),
    ("POST /tasks naming it", "POST", "/tasks", {"title": "Call", "customer_id": "{id}"}, 400),
]


def run(bench: Bench) -> EdgeResult:
    alice, bob = bench.sign_up("oracle-owner"), bench.sign_up("oracle-prober")
    reference = bench.client.collection(CUSTOMERS.collection).document()
    reference.create(customer_document(alice.uid, {"name": "Acme"}) | {"notes": "n" * DOCUMENT_BYTES})
    base = bench.stack.url("crud")
    as_bob, as_alice = bench.crud(bob).http, bench.crud(alice).http

    probes = []
    for label, method, path, body, status in OPERATIONS:

        def call(target: str, method: str = method, path: str = path, body: Any = body, status: int = status) -> Any:
            def once(_: int) -> bytes:
                sent = {k: v.format(id=target) for k, v in body.items()} if body else None
                reply = as_bob.request(method, base + path.format(id=target), json=sent, timeout=30)
                if reply.status_code != status:
                    raise RuntimeError(f"{method} {path} answered {reply.status_code}: {reply.text[:300]}")
                return reply.content

            return once

        others, missing = call(reference.id), call(MISSING_ID)
        identical = others(0) == missing(0)
        a, b = sample_pair(others, missing, warmup=WARMUP, iterations=ITERATIONS, budget_s=BUDGET_S)
        probes.append(Probe(label, a, b, identical))

    def own(_: int) -> None:
        as_alice.get(f"{base}/customers/{reference.id}", timeout=30).raise_for_status()

    owner_read, _ = sample_pair(own, own, warmup=3, iterations=40, budget_s=5.0)
    return EdgeResult(probes, owner_read, _amplification(as_bob, base))


def _amplification(session: requests.Session, base: str) -> list[Amplification]:
    results = []
    for label, body in hostile_bodies().items():
        answers: list[int] = []

        def refused(_: int, body: bytes = body, answers: list[int] = answers) -> None:
            reply = session.post(f"{base}/customers", data=body, headers={"Content-Type": "application/json"})
            if reply.status_code != 400:
                raise RuntimeError(f"a hostile body answered {reply.status_code}: {reply.text[:300]}")
            answers.append(len(reply.content))

        def valid(i: int) -> None:
            session.post(f"{base}/customers", json=largest_valid_customer(i)).raise_for_status()

        a, b = sample_pair(refused, valid, warmup=3, iterations=40, budget_s=15.0)
        results.append(Amplification(label, len(body), max(answers), a, b))
    return results
