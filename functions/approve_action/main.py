"""approve_action: approvals (entry point approve_action) and the Cloud Tasks worker that
executes approved actions (entry point execute_action), DESIGN §6. Their routes arrive with
the approvals issue.
"""

from __future__ import annotations

import flask
import functions_framework

from common.http import function_router
from common.resources import ensure_profile

router = function_router("approve_action", on_authenticated=ensure_profile)
worker = function_router("execute_action")


@functions_framework.http
def approve_action(request: flask.Request) -> flask.Response:
    return router.dispatch(request)


@functions_framework.http
def execute_action(request: flask.Request) -> flask.Response:
    return worker.dispatch(request)
