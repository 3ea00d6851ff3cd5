"""Approvals (issue 7): the approve request against a bare Firestore transaction doing the same
compare-and-set, interleaved; and approve-to-executed through the Cloud Tasks emulator for 200
e-mails sent at the Google stand-in, with every task delivered once more after it ran (a
redelivery), counting duplicate e-mails.

The emulator hands tasks over one at a time; Cloud Tasks dispatches up to the queue's
max_concurrent_dispatches at once. So the worker is also driven as Cloud Tasks drives it
(issue 19): the approved tasks are taken from the (paused) emulator queue and delivered 32 at a
time, each with its body, Cloud Tasks' headers and an OIDC token of the tasks service account,
to an instance of the worker that checks that token as deployed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from bench.harness import Api, Bench, User
from bench.stats import Summary
from common.google.gmail import message_id_for
from standins.google_client import GoogleStandinClient
from tests import tokens

APPROVE_RUNS = 100
EXECUTED_RUNS = 200
WORKER_RUNS = 60  # e-mails sent by calling the worker directly, one at a time
GOAL_EXECUTED_P95_MS = 1000.0
EMAIL = "bench@acme-success.com"
CONCURRENT_RUNS = 200  # e-mails approved in a burst and delivered concurrently
DISPATCHES = 32  # deliveries at once, as a queue's max_concurrent_dispatches
APPROVERS = 4  # approvals sent at once
BACKOFF_S = 10.0  # the queue's min_backoff (terraform/modules/platform): a refused delivery waits this long
DELIVERY_ATTEMPTS = 4
TASKS_ACCOUNT = "cscx-tasks@demo-cscx.iam.gserviceaccount.com"


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
    concurrent: ConcurrentResult


@dataclass(frozen=True)
class ConcurrentResult:
    """Approvals in a burst, their tasks delivered `DISPATCHES` at a time with OIDC tokens."""

    executed: Summary  # approve request sent → the delivery that executed it answered
    approve: Summary  # the approve requests themselves
    delivery: Summary  # each delivery's own time
    approved: int
    executed_n: int  # executed, each with its message at Google
    refused: int  # deliveries answered other than 200 (retried after the backoff)
    redelivered: int  # deliveries of executed tasks, all at once, afterwards
    duplicates: int  # messages at Google beyond one per action
    lost: int  # approved but not executed, or executed without its message at Google
    seconds: float  # first approval to last execution


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
        concurrent=run_concurrent(bench, google),
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


# -- the worker as Cloud Tasks drives it ---------------------------------------------------------


@dataclass
class _Dispatch:
    """One task as the bench's Cloud Tasks holds it: delivered until the worker answers 200."""

    name: str
    body: bytes
    path: str
    action_id: str
    approved_at: float  # perf_counter when its approval was sent
    attempts: int = 0
    executed_at: float | None = None


@contextmanager
def _paused_queue(bench: Bench) -> Iterator[Any]:
    """The stack's queue paused (the emulator delivers nothing) and emptied again after."""
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(f"127.0.0.1:{bench.stack.ports.tasks}")
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    queue = bench.stack.settings()["CSCX_TASKS_QUEUE"]
    client.pause_queue(name=queue)
    try:
        yield client
    finally:
        client.purge_queue(name=queue)
        client.resume_queue(name=queue)


def _oidc_worker(bench: Bench) -> tuple[str, str, tokens.CertificateServer]:
    """A worker instance that admits only the tasks service account's signed token (as deployed),
    the token Cloud Tasks would send it, and the server of the signing key's certificate."""
    key = tokens.make_signing_key("bench-oidc")
    certificates = tokens.CertificateServer(key, max_age=3600).start()
    changes = {"CSCX_TASKS_SERVICE_ACCOUNT": TASKS_ACCOUNT, "CSCX_OIDC_CERTS_URL": certificates.certs_url}
    url = bench.stack.start_variant("execute_action", "oidc", changes)
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": bench.stack.settings()["CSCX_WORKER_URL"],  # the task's oidc_token audience
        "sub": "1234567890",
        "email": TASKS_ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    return url, tokens.sign_rs256(claims, key), certificates


def run_concurrent(bench: Bench, google: GoogleStandinClient) -> ConcurrentResult:
    user = bench.sign_up("dispatch-bench")
    _connect(bench, user)
    worker_url, token, certificates = _oidc_worker(bench)
    try:
        with _paused_queue(bench) as tasks:
            return _Burst(bench, user, tasks, worker_url, token).run(google)
    finally:
        certificates.stop()


class _Burst:
    """Approvals sent `APPROVERS` at a time while the bench, as Cloud Tasks, takes their tasks off
    the paused queue and delivers them `DISPATCHES` at once, retrying a refused one after the backoff."""

    def __init__(self, bench: Bench, user: User, tasks: Any, worker_url: str, token: str) -> None:
        self.approve_url = bench.stack.url("approve_action")
        self.queue = bench.stack.settings()["CSCX_TASKS_QUEUE"]
        self.user, self.tasks, self.worker_url, self.token = user, tasks, worker_url, token
        self.action_ids = [_action(bench, user.uid, n) for n in range(CONCURRENT_RUNS)]
        self.approved_at: dict[str, float] = {}
        self.approve_ms: list[float] = []
        self.delivery_ms: list[float] = []
        self.refused: list[int] = []
        self.dispatched: dict[str, _Dispatch] = {}
        self.lock = threading.Lock()
        self.sessions = threading.local()

    def _http(self) -> requests.Session:
        if not hasattr(self.sessions, "http"):
            self.sessions.http = requests.Session()
        http: requests.Session = self.sessions.http
        return http

    def approve(self, action_id: str) -> None:
        started = time.perf_counter()
        with self.lock:
            self.approved_at[action_id] = started
        headers = {"Authorization": f"Bearer {self.user.token}"}
        reply = self._http().post(f"{self.approve_url}/actions/{action_id}/approve", headers=headers, timeout=30)
        if reply.status_code != 202:
            raise RuntimeError(f"approve answered {reply.status_code}: {reply.text[:300]}")
        with self.lock:
            self.approve_ms.append((time.perf_counter() - started) * 1000)

    def deliver(self, task: _Dispatch, *, redelivery: bool = False) -> int:
        """One delivery of `task` as Cloud Tasks makes it: its body, its headers, the OIDC token."""
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token}",
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": self.queue.rsplit("/", 1)[-1],
            "X-CloudTasks-TaskName": task.name.rsplit("/", 1)[-1],
            "X-CloudTasks-TaskRetryCount": str(task.attempts),
            "X-CloudTasks-TaskExecutionCount": str(task.attempts),
        }
        task.attempts += 1
        started = time.perf_counter()
        # A connection of its own, as a dispatch is: one kept alive may be closed by the worker just
        # as the next delivery goes out on it (its keep-alive ran out), which no dispatch would see.
        reply = requests.post(self.worker_url + task.path, data=task.body, headers=headers, timeout=60)
        done = time.perf_counter()
        status = int(reply.status_code)
        if redelivery:
            return status
        with self.lock:
            self.delivery_ms.append((done - started) * 1000)
            if status != 200:
                self.refused.append(status)
        if status == 200 and reply.json().get("status") == "executed" and task.executed_at is None:
            task.executed_at = done
        return status

    def until_done(self, task: _Dispatch) -> None:
        """Cloud Tasks' retries: a refused delivery again after the queue's backoff, doubling."""
        while self.deliver(task) != 200 and task.attempts < DELIVERY_ATTEMPTS:
            time.sleep(BACKOFF_S * 2 ** (task.attempts - 1))

    def _take_new_tasks(self) -> list[_Dispatch]:
        taken = []
        for task in self.tasks.list_tasks(parent=self.queue):
            if task.name in self.dispatched or not task.http_request.url:
                continue
            body = bytes(task.http_request.body)
            action_id = str(json.loads(body)["action_id"])
            if action_id not in self.approved_at:
                continue  # not this burst's
            path = urlsplit(task.http_request.url).path
            self.dispatched[task.name] = _Dispatch(task.name, body, path, action_id, self.approved_at[action_id])
            taken.append(self.dispatched[task.name])
        return taken

    def run(self, google: GoogleStandinClient) -> ConcurrentResult:
        begun = time.perf_counter()
        with ThreadPoolExecutor(APPROVERS) as approvers, ThreadPoolExecutor(DISPATCHES) as dispatcher:
            approvals = [approvers.submit(self.approve, action_id) for action_id in self.action_ids]
            running = []
            while len(self.dispatched) < len(self.action_ids) and time.perf_counter() - begun < 120:
                running += [dispatcher.submit(self.until_done, task) for task in self._take_new_tasks()]
                time.sleep(0.02)
            for future in approvals + running:
                future.result()
        executed = [t for t in self.dispatched.values() if t.executed_at is not None]
        finished = max((t.executed_at for t in executed if t.executed_at), default=begun)
        # Every task once more, all at once, as at-least-once delivery may: nothing more may be sent.
        with ThreadPoolExecutor(DISPATCHES) as redeliveries:
            list(redeliveries.map(lambda t: self.deliver(t, redelivery=True), self.dispatched.values()))
        account = google.account(EMAIL)
        ours = {message_id_for(action_id) for action_id in self.action_ids}
        per_message: dict[str, int] = {}
        for message in account["sent"] + [draft["message"] for draft in account["drafts"]]:
            if message["message_id"] in ours:
                per_message[message["message_id"]] = per_message.get(message["message_id"], 0) + 1
        at_google = {t.action_id for t in executed if message_id_for(t.action_id) in per_message}
        return ConcurrentResult(
            executed=Summary.of([((t.executed_at or 0) - t.approved_at) * 1000 for t in executed]),
            approve=Summary.of(self.approve_ms),
            delivery=Summary.of(self.delivery_ms),
            approved=len(self.approved_at),
            executed_n=len(at_google),
            refused=len(self.refused),
            redelivered=len(self.dispatched),
            duplicates=sum(count - 1 for count in per_message.values()),
            lost=len(self.action_ids) - len(at_google),
            seconds=finished - begun,
        )
