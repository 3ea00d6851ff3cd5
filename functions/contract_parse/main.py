"""contract_parse: contract upload, text extraction and structured extraction (DESIGN §8)."""

from __future__ import annotations

import flask
import functions_framework

from common.contracts import parsing
from common.http import Context, Reply, function_router
from common.resources import ensure_profile
from common.settings import get_settings
from common.store import Repository

# The files are kept in Cloud Storage; Claude is the default reader of their terms.
get_settings().require("CSCX_CONTRACTS_BUCKET", "ANTHROPIC_API_KEY")
router = function_router("contract_parse", on_authenticated=ensure_profile)
# The multipart body around a file of the largest size.
MULTIPART_OVERHEAD = 64 * 1024


@router.route("POST", "/contracts/upload")
def upload_contract(ctx: Context) -> Reply:
    body = ctx.upload(ctx.settings.max_upload_bytes + MULTIPART_OVERHEAD)
    contract, created = parsing.upload(Repository(ctx.uid), body)
    return Reply.resource(contract, 201 if created else 200)


@router.route("POST", "/contracts/{contract_id}/reparse")
def reparse_contract(ctx: Context, contract_id: str) -> Reply:
    return Reply.resource(parsing.reparse(Repository(ctx.uid), contract_id))


@functions_framework.http
def contract_parse(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
