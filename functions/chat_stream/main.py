"""chat_stream: the agent's streamed chat, resuming a stream, and Stop (DESIGN §7)."""

from __future__ import annotations

import flask
import functions_framework

from common import models
from common.agent import chat, resume
from common.http import Context, Reply, StreamReply, function_router
from common.resources import ensure_profile
from common.settings import get_settings

# Claude is the default provider; proposals schedule their expiry on the worker's queue; the
# free/busy tool refreshes the CSM's Google tokens.
get_settings().require(
    "ANTHROPIC_API_KEY",
    "CSCX_TASKS_QUEUE",
    "CSCX_WORKER_URL",
    "CSCX_TASKS_SERVICE_ACCOUNT",
    "GOOGLE_OAUTH_CLIENT_ID",
    "GOOGLE_OAUTH_CLIENT_SECRET",
    "CSCX_TOKEN_ENCRYPTION_KEY",
)
router = function_router("chat_stream", on_authenticated=ensure_profile)


@router.route("POST", "/chat")
def post_chat(ctx: Context) -> StreamReply:
    request = ctx.parse(models.ChatRequest)
    assert ctx.user is not None
    return chat.start_chat(ctx.repo, ctx.user, request, ctx.client_gone())


@router.route("GET", "/chat/{session_id}/stream")
def resume_stream(ctx: Context, session_id: str) -> StreamReply | Reply:
    reply = resume.resume_stream(ctx.repo, session_id, ctx.client_gone())
    return reply if reply is not None else Reply.no_content()


@router.route("POST", "/sessions/{session_id}/stop")
def stop_session(ctx: Context, session_id: str) -> Reply:
    return Reply.resource(chat.request_stop(ctx.repo, session_id), 202)


@functions_framework.http
def chat_stream(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
