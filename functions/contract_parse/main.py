"""contract_parse: contract upload, text extraction and structured extraction (DESIGN §8)."""

from __future__ import annotations

import flask
import functions_framework

from common.contracts import parsing, records
from common.http import Context, Reply, function_router
from common.idempotency import Replay
from common.resources import ensure_profile
from common.settings import get_settings
from common.store import Companion

# The files are kept in Cloud Storage; Claude is the default reader of their terms.
get_settings().require("CSCX_CONTRACTS_BUCKET", "ANTHROPIC_API_KEY")
router = function_router("contract_parse", on_authenticated=ensure_profile)


@router.route("POST", "/contracts/upload", idempotent=Replay(records.get_contract, 201))
def upload_contract(ctx: Context, along: Companion | None) -> Reply:
    contract, created = parsing.upload(ctx.repo, ctx.upload(), along=along)
    return Reply.resource(contract, 201 if created else 200)


@router.route("POST", "/contracts/{contract_id}/reparse")
def reparse_contract(ctx: Context, contract_id: str) -> Reply:
    return Reply.resource(parsing.reparse(ctx.repo, contract_id))


@functions_framework.http
def contract_parse(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
