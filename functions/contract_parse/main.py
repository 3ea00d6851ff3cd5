"""contract_parse: contract upload and extraction (DESIGN §8). Its routes arrive with the contracts issue."""

from __future__ import annotations

import flask
import functions_framework

from common.http import function_router
from common.resources import ensure_profile

router = function_router("contract_parse", on_authenticated=ensure_profile)


@functions_framework.http
def contract_parse(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
