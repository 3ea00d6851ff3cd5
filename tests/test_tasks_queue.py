"""The Cloud Tasks client of `common.tasks` against the emulator: a task created through it is
delivered over HTTP with its body and Cloud Tasks' headers."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from common import tasks
from common.settings import get_settings
from scripts.stack import Stack


class Receiver:
    """An HTTP endpoint on loopback that records each POST it gets."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.put((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def receiver(stack: Stack) -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def test_a_task_created_through_the_client_is_delivered_by_the_emulator(receiver: Receiver) -> None:
    from google.cloud import tasks_v2

    settings = get_settings()
    assert "CLOUD_TASKS_EMULATOR_HOST" in settings.emulators
    task_id = f"probe-{uuid.uuid4().hex}"
    created = tasks.tasks_client().create_task(
        parent=settings.tasks_queue,
        task=tasks_v2.Task(
            name=tasks.task_name(task_id),
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
