"""approve_action: the CSM's approvals (entry point approve_action) and the Cloud Tasks worker that
executes approved actions and sweeps up after lost ones (entry point execute_action), DESIGN §6."""

from __future__ import annotations

import re

import flask
import functions_framework

from common import models
from common.actions import decisions, execution, sweep
from common.auth import CloudTasks, FirebaseUser
from common.http import Context, Reply, function_router
from common.idempotency import Replay
from common.resources import ensure_profile
from common.settings import get_settings
from common.store import Companion, Repository

# Both entry points enqueue tasks for the worker, and the worker must know whom to accept; it
# refreshes the CSM's Google tokens.
get_settings().require(
    "CSCX_TASKS_QUEUE",
    "CSCX_WORKER_URL",
    "CSCX_TASKS_SERVICE_ACCOUNT",
    "GOOGLE_OAUTH_CLIENT_ID",
    "GOOGLE_OAUTH_CLIENT_SECRET",
    "CSCX_TOKEN_ENCRYPTION_KEY",
)
router = function_router("approve_action", on_authenticated=ensure_profile)
worker = function_router("execute_action")
DECIDING = FirebaseUser(check_revoked=True)  # DESIGN §2: approving checks revocation


@router.route("GET", "/actions", query={"limit", "cursor", "status"})
def list_actions(ctx: Context) -> Reply:
    return Reply.page(decisions.list_actions(ctx.repo, ctx.query()))


@router.route("GET", "/actions/{action_id}")
def get_action(ctx: Context, action_id: str) -> Reply:
    return Reply.resource(decisions.get_action(ctx.repo, action_id))


@router.route(
    "POST", "/actions/{action_id}/approve", auth=DECIDING, idempotent=Replay(decisions.approval_read_back, 202)
)
def approve(ctx: Context, action_id: str, along: Companion | None) -> Reply:
    request = ctx.parse(models.ApproveRequest, optional=True)
    assert ctx.user is not None
    return Reply.resource(decisions.approve(ctx.repo, ctx.user, action_id, request.payload, along=along), 202)


@router.route("POST", "/actions/{action_id}/reject", auth=DECIDING, idempotent=Replay(decisions.get_action, 200))
def reject(ctx: Context, action_id: str, along: Companion | None) -> Reply:
    request = ctx.parse(models.RejectRequest, optional=True)
    assert ctx.user is not None
    return Reply.resource(decisions.reject(ctx.repo, ctx.user, action_id, request.reason, along=along))


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
def approve_action(request: flask.Request) -> flask.Response:
    return router.dispatch(request)


@functions_framework.http
def execute_action(request: flask.Request) -> flask.Response:
    return worker.dispatch(request)
