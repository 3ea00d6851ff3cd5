"""The Cloud Tasks client of `common.cloud_tasks` against the emulator: a task created through it is
delivered over HTTP with its body and Cloud Tasks' headers."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterator

import pytest

from common import cloud_tasks
from common.settings import get_settings
from scripts.stack import Stack
from standins.local_server import JsonHandler, LocalServer, Server


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
