"""Cloud Tasks: the one client of the queue, and HTTP tasks addressed to the worker.

Deployed, the client is Google's, and every task carries an OIDC token of the tasks service
account for the worker's URL (which the worker checks). Locally `CLOUD_TASKS_EMULATOR_HOST`
names the emulator, which speaks gRPC without TLS or credentials: the client is wired to an
insecure channel to it (the library itself ignores that variable).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from common.errors import ApiError, Code
from common.instance import per_instance
from common.log import get_logger
from common.settings import get_settings

if TYPE_CHECKING:
    from google.cloud import tasks_v2

logger = get_logger(__name__)
EMULATOR_HOST = "CLOUD_TASKS_EMULATOR_HOST"


@per_instance
def tasks_client() -> tasks_v2.CloudTasksClient:
    """The instance's Cloud Tasks client: the emulator's channel locally, Google's deployed."""
    from google.cloud import tasks_v2

    host = get_settings().emulators.get(EMULATOR_HOST)
    if host:
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(host)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return tasks_v2.CloudTasksClient()


def task_name(task_id: str) -> str:
    """The full name of the task `task_id` on the project's queue."""
    return f"{get_settings().tasks_queue}/tasks/{task_id}"


def enqueue_for_worker(path: str, task_id: str, body: dict[str, Any], *, schedule_time: datetime | None = None) -> str:
    """Create a task that POSTs `body` as JSON to the worker's `path`; returns the task's name.

    `task_id` names the task, so Cloud Tasks refuses a second one of the same name (for about
    an hour after the first ran): an already existing task is not an error here, it is the one
    asked for. The emulator does not de-duplicate names; the worker's own idempotency covers it.
    """
    from google.api_core import exceptions as gexc
    from google.cloud import tasks_v2

    settings = get_settings()
    request = tasks_v2.HttpRequest(
        http_method=tasks_v2.HttpMethod.POST,
        url=settings.worker_url + path,
        headers={"Content-Type": "application/json"},
        body=json.dumps(body).encode(),
    )
    if settings.tasks_service_account:
        request.oidc_token = tasks_v2.OidcToken(
            service_account_email=settings.tasks_service_account, audience=settings.worker_url
        )
    task = tasks_v2.Task(name=task_name(task_id), http_request=request)
    if schedule_time is not None:
        task.schedule_time = schedule_time
    try:
        created = tasks_client().create_task(parent=settings.tasks_queue, task=task, timeout=10)
    except gexc.AlreadyExists:
        return task_name(task_id)
    except (gexc.GoogleAPICallError, gexc.RetryError) as error:
        logger.warning("Cloud Tasks unavailable", extra={"fields": {"error": type(error).__name__}})
        raise ApiError(Code.UNAVAILABLE, "The task queue is unavailable right now; try again.") from None
    return str(created.name)
