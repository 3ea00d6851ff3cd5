"""approve_action: the CSM's decisions on what the agent proposed (DESIGN §6). An approval hands
the action to the worker (execute_action, functions/execute_action/main.py) through Cloud Tasks;
this function never acts at Google, so it holds neither the OAuth client's secret nor the token key."""

from __future__ import annotations

import flask
import functions_framework

from common import models
from common.actions import decisions
from common.auth import FirebaseUser
from common.http import Context, Reply, function_router
from common.idempotency import Replay
from common.resources import ensure_profile
from common.settings import get_settings
from common.store import Companion

# An approval enqueues the worker's task, with an OIDC token of the tasks service account for it.
get_settings().require("CSCX_TASKS_QUEUE", "CSCX_WORKER_URL", "CSCX_TASKS_SERVICE_ACCOUNT")
router = function_router("approve_action", on_authenticated=ensure_profile)
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


@functions_framework.http
def approve_action(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
