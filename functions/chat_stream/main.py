"""chat_stream: the agent's streamed chat (DESIGN §7). Its routes arrive with the chat issue."""

from __future__ import annotations

import flask
import functions_framework

from common.http import Router
from common.log import configure_logging
from common.settings import get_settings

configure_logging(get_settings().log_level)
router = Router("chat_stream")


@functions_framework.http
def chat_stream(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
