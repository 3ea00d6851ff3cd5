"""Approvals (issue 7): the approve request against a bare Firestore transaction doing the same
compare-and-set, interleaved; and approve-to-executed through the Cloud Tasks emulator for 200
e-mails sent at the Google stand-in, with every task delivered once more after it ran (a
redelivery), counting duplicate e-mails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from bench.harness import Api, Bench, User
from bench.stats import Summary
from standins.google_client import GoogleStandinClient

APPROVE_RUNS = 100
EXECUTED_RUNS = 200
WORKER_RUNS = 60  # e-mails sent by calling the worker directly, one at a time
GOAL_EXECUTED_P95_MS = 1000.0
EMAIL = "bench@acme-success.com"


@dataclass(frozen=True)
class ApprovalsResult:
    approve: Summary
    bare_transaction: Summary
    executed: Summary
    executed_n: int
    worker: Summary  # the worker's own time per e-mail, called directly
    failed: int
    duplicates: int
    sent: int


def _action(bench: Bench, uid: str, n: int, **fields: Any) -> str:
    """An e-mail to send (odd n: a draft, so 200 stay within the daily sending quota of 100)."""
    now = datetime.now(UTC)
    reference = bench.client.collection("actions").document()
    payload = {"to": ["cfo@acme.com"], "cc": [], "subject": f"Renewal {n}", "body": "Hello", "customer_id": None}
    reference.create(
        {
            "owner_id": uid,
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "type": "email.draft" if n % 2 else "email.send",
            "payload": payload,
            "summary": f"Send an e-mail {n}",
            "session_id": None,
            "tool_call_id": None,
            "customer_id": None,
            "risk": "high",
            "status": "pending",
            "expires_at": now + timedelta(hours=1),
            "decided_at": None,
            "decided_by": None,
            "reject_reason": None,
            "attempts": 0,
            "result": None,
            "error": None,
            **fields,
        }
    )
    return str(reference.id)


def _connect(bench: Bench, user: User) -> None:
    crud = bench.stack.url("crud")
    headers = {"Authorization": f"Bearer {user.token}"}
    auth_url = requests.post(f"{crud}/integrations/google/connect", headers=headers, timeout=10).json()["auth_url"]
    callback = requests.get(auth_url, allow_redirects=False, timeout=10).headers["Location"]
    back = requests.get(callback, allow_redirects=False, timeout=10).headers["Location"]
    handle = parse_qs(urlsplit(back).query).get("grant")
    if "google=pending" not in back or not handle:
        raise RuntimeError(f"Google did not connect: {back}")
    done = requests.post(f"{crud}/integrations/google/complete", headers=headers, json={"grant": handle[0]}, timeout=10)
    if done.status_code != 200:
        raise RuntimeError(f"Google did not connect: {done.status_code} {done.text}")


def _bare_transaction(bench: Bench, action_id: str, uid: str) -> None:
    """What the approval's decision is at its core: read the action, compare, write `approved`."""
    from google.cloud import firestore

    reference = bench.client.collection("actions").document(action_id)

    @firestore.transactional  # type: ignore[untyped-decorator]
    def decide(transaction: Any) -> None:
        current = reference.get(transaction=transaction).to_dict() or {}
        if current.get("owner_id") != uid or current.get("status") != "pending":
            raise RuntimeError("not a pending action of the user")
        transaction.update(
            reference,
            {
                "status": "approved",
                "decided_at": datetime.now(UTC),
                "decided_by": uid,
                "version": current["version"] + 1,
            },
        )

    decide(bench.client.transaction())


def run(bench: Bench) -> ApprovalsResult:
    google = GoogleStandinClient(f"http://127.0.0.1:{bench.stack.ports.google}")
    google.reset()
    google.set_account(EMAIL)
    user = bench.sign_up("approvals-bench")
    _connect(bench, user)
    approve_url = bench.stack.url("approve_action")
    session = Api(approve_url, user).http

    ours: list[float] = []
    bare: list[float] = []
    approved: dict[str, float] = {}  # action id → wall time its approval was sent
    for n in range(max(APPROVE_RUNS, EXECUTED_RUNS)):
        action_id = _action(bench, user.uid, n)
        started = time.time()
        reply = session.post(f"{approve_url}/actions/{action_id}/approve", timeout=30)
        elapsed = (time.time() - started) * 1000
        if reply.status_code != 202:
            raise RuntimeError(f"approve answered {reply.status_code}: {reply.text[:300]}")
        approved[action_id] = started
        if n < APPROVE_RUNS:
            ours.append(elapsed)
            other = _action(bench, user.uid, -n)
            begun = time.perf_counter()
            _bare_transaction(bench, other, user.uid)
            bare.append((time.perf_counter() - begun) * 1000)

    deadline = time.monotonic() + 120
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(approved) and time.monotonic() < deadline:
        for action_id in approved.keys() - done.keys():
            data = bench.client.collection("actions").document(action_id).get().to_dict() or {}
            if data.get("status") in {"executed", "failed"}:
                done[action_id] = data
        time.sleep(0.2)
    latencies = [
        (data["updated_at"].timestamp() - approved[action_id]) * 1000
        for action_id, data in done.items()
        if data["status"] == "executed"
    ]
    # Every task again, as a redelivery would: nothing more may be sent.
    worker = bench.stack.url("execute_action")
    for action_id in done:
        requests.post(f"{worker}/execute", json={"action_id": action_id, "owner_id": user.uid}, timeout=30)
    worker_ms = _worker_alone(bench, worker)
    account = google.account(EMAIL)
    sent = account["sent"] + [draft["message"] for draft in account["drafts"]]
    per_message_id: dict[str, int] = {}
    for message in sent:
        per_message_id[message["message_id"]] = per_message_id.get(message["message_id"], 0) + 1
    duplicates = sum(count - 1 for count in per_message_id.values())
    return ApprovalsResult(
        approve=Summary.of(ours),
        bare_transaction=Summary.of(bare),
        executed=Summary.of(latencies),
        executed_n=len(approved),
        worker=worker_ms,
        failed=sum(1 for data in done.values() if data["status"] == "failed") + len(approved) - len(done),
        duplicates=duplicates,
        sent=len(sent),
    )


def _worker_alone(bench: Bench, worker: str) -> Summary:
    """The worker's own time per e-mail (claim, quota, Gmail's Sent checked, sent, recorded),
    each approved action handed to it directly as Cloud Tasks would, without the emulator's
    one-at-a-time dispatch; another user, so that the daily quota holds."""
    user = bench.sign_up("worker-bench")
    _connect(bench, user)
    samples = []
    for n in range(WORKER_RUNS):
        now = datetime.now(UTC)
        action_id = _action(
            bench, user.uid, 2 * n, status="approved", decided_at=now, decided_by=user.uid, enqueued_at=now
        )
        started = time.perf_counter()
        reply = requests.post(f"{worker}/execute", json={"action_id": action_id, "owner_id": user.uid}, timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            raise RuntimeError(f"the worker answered {reply.status_code}: {reply.text[:300]}")
    return Summary.of(samples)
