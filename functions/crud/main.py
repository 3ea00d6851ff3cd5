"""crud: the CSM's profile, customers, contracts, tasks, sessions and messages (DESIGN §5)."""

from __future__ import annotations

import flask
import functions_framework

from common import resources as r
from common.http import Context, Reply, function_router
from common.store import Page, Repository

router = function_router("crud", on_authenticated=r.ensure_profile)


def _repo(ctx: Context) -> Repository:
    return Repository(ctx.uid)


def _page(page: Page) -> Reply:
    return Reply(page.to_body(r.public))


def _one(document: dict[str, object], status: int = 200) -> Reply:
    return Reply.resource(r.public(document), status)


@router.route("GET", "/profile")
def get_profile(ctx: Context) -> Reply:
    assert ctx.user is not None
    return _one(r.get_profile(Repository(ctx.uid), ctx.user))


@router.route("PATCH", "/profile")
def patch_profile(ctx: Context) -> Reply:
    assert ctx.user is not None
    return _one(r.update_profile(Repository(ctx.uid), ctx.user, ctx.json_body(), ctx.if_match()))


@router.route("GET", "/customers", query={"limit", "cursor", "order", "stage", "q"})
def list_customers(ctx: Context) -> Reply:
    return _page(r.list_customers(_repo(ctx), ctx.query()))


@router.route("POST", "/customers")
def create_customer(ctx: Context) -> Reply:
    return _one(r.create_customer(_repo(ctx), ctx.json_body()), 201)


@router.route("GET", "/customers/{customer_id}")
def get_customer(ctx: Context, customer_id: str) -> Reply:
    return _one(_repo(ctx).get(r.CUSTOMERS.collection, customer_id, r.CUSTOMERS.name))


@router.route("PATCH", "/customers/{customer_id}")
def patch_customer(ctx: Context, customer_id: str) -> Reply:
    return _one(r.update_customer(_repo(ctx), customer_id, ctx.json_body(), ctx.if_match()))


@router.route("DELETE", "/customers/{customer_id}", query={"cascade"}, check_revoked=True)
def delete_customer(ctx: Context, customer_id: str) -> Reply:
    cascade = ctx.query().get("cascade", "false")
    if cascade not in {"true", "false"}:
        raise r.invalid("cascade", "must be true or false")
    r.delete_customer(_repo(ctx), customer_id, cascade=cascade == "true", if_match=ctx.if_match())
    return Reply.no_content()


@router.route("GET", "/contracts", query={"limit", "cursor", "customer_id"})
def list_contracts(ctx: Context) -> Reply:
    return _page(r.list_by_customer(_repo(ctx), r.CONTRACTS, ctx.query()))


@router.route("GET", "/contracts/{contract_id}")
def get_contract(ctx: Context, contract_id: str) -> Reply:
    return _one(_repo(ctx).get(r.CONTRACTS.collection, contract_id, r.CONTRACTS.name))


@router.route("PATCH", "/contracts/{contract_id}")
def patch_contract(ctx: Context, contract_id: str) -> Reply:
    return _one(r.update_contract(_repo(ctx), contract_id, ctx.json_body(), ctx.if_match()))


@router.route("DELETE", "/contracts/{contract_id}", check_revoked=True)
def delete_contract(ctx: Context, contract_id: str) -> Reply:
    _repo(ctx).delete(r.CONTRACTS.collection, contract_id, r.CONTRACTS.name, if_match=ctx.if_match())
    return Reply.no_content()


@router.route("GET", "/tasks", query={"limit", "cursor", "status", "customer_id", "due_before"})
def list_tasks(ctx: Context) -> Reply:
    return _page(r.list_tasks(_repo(ctx), ctx.query()))


@router.route("POST", "/tasks")
def create_task(ctx: Context) -> Reply:
    return _one(r.create_task(_repo(ctx), ctx.json_body()), 201)


@router.route("GET", "/tasks/{task_id}")
def get_task(ctx: Context, task_id: str) -> Reply:
    return _one(_repo(ctx).get(r.TASKS.collection, task_id, r.TASKS.name))


@router.route("PATCH", "/tasks/{task_id}")
def patch_task(ctx: Context, task_id: str) -> Reply:
    return _one(r.update_task(_repo(ctx), task_id, ctx.json_body(), ctx.if_match()))


@router.route("DELETE", "/tasks/{task_id}", check_revoked=True)
def delete_task(ctx: Context, task_id: str) -> Reply:
    _repo(ctx).delete(r.TASKS.collection, task_id, r.TASKS.name, if_match=ctx.if_match())
    return Reply.no_content()


@router.route("GET", "/sessions", query={"limit", "cursor", "customer_id"})
def list_sessions(ctx: Context) -> Reply:
    return _page(r.list_by_customer(_repo(ctx), r.SESSIONS, ctx.query()))


@router.route("GET", "/sessions/{session_id}")
def get_session(ctx: Context, session_id: str) -> Reply:
    return _one(_repo(ctx).get(r.SESSIONS.collection, session_id, r.SESSIONS.name))


@router.route("PATCH", "/sessions/{session_id}")
def patch_session(ctx: Context, session_id: str) -> Reply:
    return _one(r.update_session(_repo(ctx), session_id, ctx.json_body(), ctx.if_match()))


@router.route("DELETE", "/sessions/{session_id}", check_revoked=True)
def delete_session(ctx: Context, session_id: str) -> Reply:
    r.delete_session(_repo(ctx), session_id, ctx.if_match())
    return Reply.no_content()


@router.route("GET", "/sessions/{session_id}/messages", query={"limit", "cursor"})
def list_messages(ctx: Context, session_id: str) -> Reply:
    return _page(r.list_messages(_repo(ctx), session_id, ctx.query()))


@functions_framework.http
def crud(request: flask.Request) -> flask.Response:
    return router.dispatch(request)
