"""execute_action: the Cloud Tasks worker (DESIGN §6). It carries out approved actions, expires
proposals at their time and sweeps up after lost ones; only the tasks service account calls it
(Cloud Tasks, and Cloud Scheduler for the sweep), with an OIDC token it checks."""

from __future__ import annotations

import re

import flask
import functions_framework

from common import models
from common.actions import decisions, execution, sweep
from common.auth import CloudTasks
from common.http import Context, Reply, function_router
from common.settings import get_settings
from common.store import Repository

# It knows whom to accept (the tasks service account, for its own URL); the sweep enqueues on the
# queue; carrying out an action refreshes the CSM's Google tokens (the OAuth client) and opens them.
get_settings().require(
    "CSCX_TASKS_QUEUE",
    "CSCX_WORKER_URL",
    "CSCX_TASKS_SERVICE_ACCOUNT",
    "GOOGLE_OAUTH_CLIENT_ID",
    "GOOGLE_OAUTH_CLIENT_SECRET",
    "CSCX_TOKEN_ENCRYPTION_KEY",
)
worker = function_router("execute_action")


def _retry_count(ctx: Context) -> int:
    raw = ctx.request.headers.get("X-CloudTasks-TaskRetryCount", "0")
    return int(raw) if re.fullmatch(r"[0-9]{1,6}", raw) else 0


def _answer(status: str, retry: bool) -> Reply:
    if retry:  # Cloud Tasks retries any non-2xx, with its backoff
        error = {"error": {"status": "UNAVAILABLE", "message": f"Not done yet ({status}); retry later."}}
        return Reply(error, 503, {"Retry-After": "5"})
    return Reply({"status": status})


@worker.route("POST", "/execute", auth=CloudTasks())
def execute(ctx: Context) -> Reply:
    body = ctx.parse(models.WorkerTask)
    outcome = execution.execute(execution.Delivery(body.action_id, body.owner_id, _retry_count(ctx)))
    return _answer(outcome.status, outcome.retry)


@worker.route("POST", "/expire", auth=CloudTasks())
def expire(ctx: Context) -> Reply:
    body = ctx.parse(models.WorkerTask)
    done, status = decisions.expire_if_due(Repository(body.owner_id), body.action_id)
    return _answer(status, not done)


@worker.route("POST", "/sweep", auth=CloudTasks())
def sweep_actions(ctx: Context) -> Reply:
    """Cloud Scheduler, every 5 minutes, with the same OIDC token as Cloud Tasks (DESIGN §6)."""
    ctx.parse(models.SweepRequest, optional=True)
    return Reply(sweep.sweep().body())


@functions_framework.http
def execute_action(request: flask.Request) -> flask.Response:
    return worker.dispatch(request)
