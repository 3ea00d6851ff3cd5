"""The suite's view of the Cloud Tasks emulator's queue: what it holds, and waiting for it to drain.

A test that proves nothing more happened (no second e-mail, no task after a refusal) checks
after `wait_for_queue_to_drain()`, not after a sleep: a duplicate delivered later would pass a
sleep, and it cannot pass a drained queue.

How the drain is known. The emulator (gcloud-tasks-emulator) delivers a queue's tasks from one
thread, one at a time and in order; a task leaves the queue while its delivery is in flight and
goes back at the end when the answer is an error. So a marker task, added last and addressed to
a receiver in this process, arrives only once every task before it has been answered; and while
the receiver holds the marker's answer, no other delivery of the queue is in flight. If the queue
then holds no task that is due, it has drained; otherwise another marker goes after what is
left. Tasks scheduled for later (an action's expiry, a day ahead) are not due and do not count.
"""

from __future__ import annotations

import functools
import os
import queue
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from standins.local_server import JsonHandler, LocalServer, Server

DRAIN_TIMEOUT = 20.0  # seconds: the emulator retries a failing task at once, so more means stuck


def queue_name() -> str:
    return os.environ["CSCX_TASKS_QUEUE"]


@functools.cache
def _client() -> Any:
    """A client of the emulator the suite's stack runs (its address is in the environment), one
    channel for the whole run."""
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(os.environ["CLOUD_TASKS_EMULATOR_HOST"])
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def purge_task_queue() -> None:
    """Drop every task of the queue (the suite does it before each test)."""
    _client().purge_queue(name=queue_name(), timeout=10)


def due_tasks() -> list[str]:
    """The names of the queue's tasks whose time has come (not those scheduled for later)."""
    now = datetime.now(UTC)
    tasks = _client().list_tasks(parent=queue_name(), timeout=10)
    return [task.name for task in tasks if task.schedule_time is None or task.schedule_time <= now]


class _MarkerReceiver(LocalServer):
    """Receives the markers: on each, looks at the queue while still holding its answer."""

    def __init__(self) -> None:
        self.outcomes: queue.Queue[tuple[str, list[str]]] = queue.Queue()
        outcomes = self.outcomes

        class Marker(JsonHandler):
            def do_POST(self) -> None:
                marker = self.read_body().decode()
                try:
                    # Nothing else of the queue is in flight until this answer is sent.
                    outcomes.put((marker, due_tasks()))
                finally:
                    self.send(200)

        super().__init__(Server(("127.0.0.1", 0), Marker), name="queue-markers")


@functools.cache
def _receiver() -> _MarkerReceiver:
    return _MarkerReceiver().start()  # a daemon thread, for the rest of the run


def _send_marker(receiver: _MarkerReceiver) -> str:
    from google.cloud import tasks_v2

    marker = f"drain-marker-{uuid.uuid4().hex}"
    task = tasks_v2.Task(
        name=f"{queue_name()}/tasks/{marker}",
        http_request=tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST, url=f"{receiver.url}/marker", body=marker.encode()
        ),
    )
    _client().create_task(parent=queue_name(), task=task, timeout=10)
    return marker


def wait_for_queue_to_drain(timeout: float = DRAIN_TIMEOUT) -> None:
    """Return once every task due has been delivered and answered and none is in flight; fail
    loudly after `timeout` seconds, naming what was still due."""
    receiver = _receiver()
    deadline = time.monotonic() + timeout
    left: list[str] = []
    while True:
        marker = _send_marker(receiver)
        while True:
            try:
                seen, left = receiver.outcomes.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"the task queue did not drain within {timeout} s; due at the last look: {left or 'none'}"
                ) from None
            if seen == marker:  # an earlier wait's marker, answered late, is not this one
                break
        if not left:
            return
