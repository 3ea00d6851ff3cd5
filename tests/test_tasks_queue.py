"""The Cloud Tasks client of `common.cloud_tasks` against the emulator: a task created through it is
delivered over HTTP with its body and Cloud Tasks' headers. And the suite's wait for the queue to
drain (`tests/task_queue.py`), which every check that nothing more happened relies on."""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from common import cloud_tasks
from common.settings import get_settings
from scripts.stack import Stack
from standins.local_server import JsonHandler, LocalServer, Server
from tests.task_queue import due_tasks, wait_for_queue_to_drain


class Receiver(LocalServer):
    """An HTTP endpoint on loopback that records each POST it gets."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        received = self.received

        class Recorder(JsonHandler):
            def do_POST(self) -> None:
                received.put((self.path, {k.lower(): v for k, v in self.headers.items()}, self.read_body()))
                self.send(200)

        super().__init__(Server(("127.0.0.1", 0), Recorder), name="task-receiver")


@pytest.fixture
def receiver(stack: Stack) -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def test_a_task_created_through_the_client_is_delivered_by_the_emulator(receiver: Receiver) -> None:
    from google.cloud import tasks_v2

    settings = get_settings()
    assert "CLOUD_TASKS_EMULATOR_HOST" in settings.emulators
    task_id = f"probe-{uuid.uuid4().hex}"
    created = cloud_tasks.tasks_client().create_task(
        parent=settings.tasks_queue,
        task=tasks_v2.Task(
            name=cloud_tasks.task_name(task_id),
            http_request=tasks_v2.HttpRequest(
                http_method=tasks_v2.HttpMethod.POST,
                url=f"{receiver.url}/probe",
                headers={"Content-Type": "application/json"},
                body=json.dumps({"probe": task_id}).encode(),
            ),
        ),
        timeout=10,
    )
    assert created.name == f"{settings.tasks_queue}/tasks/{task_id}"

    path, headers, body = receiver.received.get(timeout=10)
    assert path == "/probe"
    assert json.loads(body) == {"probe": task_id}
    assert headers["x-cloudtasks-taskname"] == task_id
    assert headers["x-cloudtasks-queuename"] == settings.tasks_queue


# -- waiting for the queue to drain (tests/task_queue.py) -------------------------------------


class FlakyReceiver(LocalServer):
    """Answers 503 to the first `failures` deliveries, slowly, then 200: every one is counted."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.deliveries: list[int] = []
        receiver = self

        class Flaky(JsonHandler):
            def do_POST(self) -> None:
                self.read_body()
                receiver.deliveries.append(len(receiver.deliveries) + 1)
                time.sleep(0.2)  # an answer that takes a while: in flight, not in the queue
                self.send(503 if len(receiver.deliveries) <= receiver.failures else 200)

        super().__init__(Server(("127.0.0.1", 0), Flaky), name="flaky-receiver")


def _task_to(url: str, *, schedule_time: datetime | None = None) -> None:
    from google.cloud import tasks_v2

    settings = get_settings()
    task = tasks_v2.Task(
        name=cloud_tasks.task_name(f"probe-{uuid.uuid4().hex}"),
        http_request=tasks_v2.HttpRequest(http_method=tasks_v2.HttpMethod.POST, url=url, body=b"{}"),
    )
    if schedule_time is not None:
        task.schedule_time = schedule_time
    cloud_tasks.tasks_client().create_task(parent=settings.tasks_queue, task=task, timeout=10)


@pytest.mark.usefixtures("stack")
def test_the_queue_drains_only_once_every_retry_has_been_answered() -> None:
    with FlakyReceiver(failures=3) as flaky:
        _task_to(f"{flaky.url}/flaky")
        _task_to(f"{flaky.url}/later", schedule_time=datetime.now(UTC) + timedelta(days=1))  # not due: no wait

        wait_for_queue_to_drain()

        assert flaky.deliveries == [1, 2, 3, 4]  # three 503s retried, the fourth answered 200
        assert due_tasks() == []


@pytest.mark.usefixtures("stack")
def test_a_queue_that_never_drains_fails_the_wait_naming_what_is_due() -> None:
    with FlakyReceiver(failures=1_000_000) as failing:
        _task_to(f"{failing.url}/failing")
        with pytest.raises(AssertionError, match=r"did not drain within 2 s; due at the last look: .*probe-"):
            wait_for_queue_to_drain(timeout=2)
        failing.failures = 0  # leave the queue empty
        wait_for_queue_to_drain()
