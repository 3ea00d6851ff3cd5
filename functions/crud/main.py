"""crud: the CSM's profile, customers, contracts, tasks, sessions and messages, the day's model usage (DESIGN §5)."""

from __future__ import annotations

import flask
import functions_framework

from common import models
from common import resources as r
from common.agent import sessions
from common.auth import FirebaseUser, User
from common.contracts import records as contracts
from common.http import ANY_QUERY, PUBLIC, Context, RedirectReply, Reply, function_router
from common.idempotency import Replay
from common.settings import get_settings
from common.store import Companion

# The Google connection (DESIGN §5) is made here.
get_settings().require(
    "GOOGLE_OAUTH_CLIENT_ID",
    "GOOGLE_OAUTH_CLIENT_SECRET",
    "CSCX_OAUTH_REDIRECT_URL",
    "CSCX_WEB_APP_URL",
    "CSCX_TOKEN_ENCRYPTION_KEY",
)
router = function_router("crud", on_authenticated=r.ensure_profile)
REVOCATION_CHECKED = FirebaseUser(check_revoked=True)  # the irreversible operations


def _user(ctx: Context) -> User:
    assert ctx.user is not None  # every route here authenticates a user
    return ctx.user


@router.route("GET", "/profile")
def get_profile(ctx: Context) -> Reply:
    return Reply.resource(r.get_profile(ctx.repo, _user(ctx)))


@router.route("PATCH", "/profile")
def patch_profile(ctx: Context) -> Reply:
    update = ctx.parse(models.ProfileUpdate)
    return Reply.resource(r.update_profile(ctx.repo, _user(ctx), update, ctx.if_match()))


@router.route("GET", "/customers", query={"limit", "cursor", "order", "stage", "q"})
def list_customers(ctx: Context) -> Reply:
    return Reply.page(r.list_customers(ctx.repo, ctx.query()))


@router.route("POST", "/customers", idempotent=Replay(r.get_customer, 201, shown=models.CustomerPublic.of))
def create_customer(ctx: Context, along: Companion | None) -> Reply:
    return Reply.resource(r.create_customer(ctx.repo, ctx.parse(models.CustomerCreate), along=along), 201)


@router.route("GET", "/customers/{customer_id}")
def get_customer(ctx: Context, customer_id: str) -> Reply:
    return Reply.resource(r.get_customer(ctx.repo, customer_id))


@router.route("PATCH", "/customers/{customer_id}")
def patch_customer(ctx: Context, customer_id: str) -> Reply:
    update = ctx.parse(models.CustomerUpdate)
    return Reply.resource(r.update_customer(ctx.repo, customer_id, update, ctx.if_match()))


@router.route("DELETE", "/customers/{customer_id}", query={"cascade"}, auth=REVOCATION_CHECKED)
def delete_customer(ctx: Context, customer_id: str) -> Reply:
    cascade = ctx.query().get("cascade", "false")
    if cascade not in {"true", "false"}:
        raise r.invalid("cascade", "must be true or false")
    r.delete_customer(ctx.repo, customer_id, cascade=cascade == "true", if_match=ctx.if_match())
    return Reply.no_content()


@router.route("GET", "/contracts", query={"limit", "cursor", "customer_id"})
def list_contracts(ctx: Context) -> Reply:
    return Reply.page(contracts.list_contracts(ctx.repo, ctx.query()))


@router.route("GET", "/contracts/{contract_id}")
def get_contract(ctx: Context, contract_id: str) -> Reply:
    return Reply.resource(contracts.get_contract(ctx.repo, contract_id))


@router.route("PATCH", "/contracts/{contract_id}")
def patch_contract(ctx: Context, contract_id: str) -> Reply:
    update = ctx.parse(models.ContractUpdate)
    return Reply.resource(contracts.update_contract(ctx.repo, contract_id, update, ctx.if_match()))


@router.route("DELETE", "/contracts/{contract_id}", auth=REVOCATION_CHECKED)
def delete_contract(ctx: Context, contract_id: str) -> Reply:
    contracts.delete_contract(ctx.repo, contract_id, ctx.if_match())
    return Reply.no_content()


@router.route("GET", "/tasks", query={"limit", "cursor", "status", "customer_id", "due_before"})
def list_tasks(ctx: Context) -> Reply:
    return Reply.page(r.list_tasks(ctx.repo, ctx.query()))


@router.route("POST", "/tasks", idempotent=Replay(r.get_task, 201, shown=models.TaskPublic.of))
def create_task(ctx: Context, along: Companion | None) -> Reply:
    return Reply.resource(r.create_task(ctx.repo, ctx.parse(models.TaskCreate), along=along), 201)


@router.route("GET", "/tasks/{task_id}")
def get_task(ctx: Context, task_id: str) -> Reply:
    return Reply.resource(r.get_task(ctx.repo, task_id))


@router.route("PATCH", "/tasks/{task_id}")
def patch_task(ctx: Context, task_id: str) -> Reply:
    update = ctx.parse(models.TaskUpdate)
    return Reply.resource(r.update_task(ctx.repo, task_id, update, ctx.if_match()))


@router.route("DELETE", "/tasks/{task_id}", auth=REVOCATION_CHECKED)
def delete_task(ctx: Context, task_id: str) -> Reply:
    r.delete_task(ctx.repo, task_id, ctx.if_match())
    return Reply.no_content()


@router.route("GET", "/sessions", query={"limit", "cursor", "customer_id"})
def list_sessions(ctx: Context) -> Reply:
    return Reply.page(sessions.list_sessions(ctx.repo, ctx.query()))


@router.route("GET", "/sessions/{session_id}")
def get_session(ctx: Context, session_id: str) -> Reply:
    return Reply.resource(sessions.get_session(ctx.repo, session_id))


@router.route("PATCH", "/sessions/{session_id}")
def patch_session(ctx: Context, session_id: str) -> Reply:
    update = ctx.parse(models.SessionUpdate)
    return Reply.resource(sessions.update_session(ctx.repo, session_id, update, ctx.if_match()))


@router.route("DELETE", "/sessions/{session_id}", auth=REVOCATION_CHECKED)
def delete_session(ctx: Context, session_id: str) -> Reply:
    sessions.delete_session(ctx.repo, session_id, ctx.if_match())
    return Reply.no_content()


@router.route("GET", "/sessions/{session_id}/messages", query={"limit", "cursor"})
def list_messages(ctx: Context, session_id: str) -> Reply:
    return Reply.page(sessions.list_messages(ctx.repo, session_id, ctx.query()))


@router.route("GET", "/usage")
def get_usage(ctx: Context) -> Reply:
    from common import usage  # and the model interface it meters: no other route of crud needs them

    return Reply(usage.today(ctx.repo).public())


@router.route("GET", "/integrations/google")
def get_google_connection(ctx: Context) -> Reply:
    from common.google import oauth

    return Reply(oauth.connection_status(ctx.repo))


@router.route("POST", "/integrations/google/connect", auth=REVOCATION_CHECKED)
def connect_google(ctx: Context) -> Reply:
    from common.google import oauth

    return Reply({"auth_url": oauth.authorization_url(ctx.repo)})


# Google's redirect: its `state` is the proof of who asked. Any parameter Google adds is taken, and
# every outcome is a redirect back to the web app, never an error page.
@router.route("GET", "/integrations/google/callback", auth=PUBLIC, query=ANY_QUERY)
def google_callback(ctx: Context) -> RedirectReply:
    from common.google import oauth

    query = ctx.query()
    location = oauth.complete_authorization(query.get("code"), query.get("state"), query.get("error"))
    return RedirectReply(location, headers={"Referrer-Policy": "no-referrer"})


# The browser is back from Google with ?google=pending&grant=...: the same user, with its own
# token, makes the parked grant its connection; anyone else gets 404 and ends the grant.
@router.route("POST", "/integrations/google/complete", auth=REVOCATION_CHECKED)
def complete_google(ctx: Context) -> Reply:
    from common.google import oauth

    completion = ctx.parse(models.GoogleCompletion)
    return Reply(oauth.complete_connection(ctx.repo, completion.grant))


@router.route("DELETE", "/integrations/google", auth=REVOCATION_CHECKED)
def disconnect_google(ctx: Context) -> Reply:
    from common.google import oauth

    oauth.disconnect(ctx.repo)
    return Reply.no_content()


@functions_framework.http
def crud(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
