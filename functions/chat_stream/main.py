"""chat_stream: the agent's streamed chat (DESIGN §7). Its routes arrive with the chat issue."""

from __future__ import annotations

import flask
import functions_framework

from common.http import function_router
from common.resources import ensure_profile

router = function_router("chat_stream", on_authenticated=ensure_profile)


@functions_framework.http
def chat_stream(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
