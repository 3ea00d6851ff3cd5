"""The control API under `/_standin/` (never Google's): what tests read, inject and arrange.

GET  /_standin/state, /_standin/requests        what is held, what was asked (secrets redacted)
POST /_standin/fail     DELETE /_standin/fail   inject failures by API method, or clear them
POST /_standin/accounts                         who consents next, granting what (or declining)
POST /_standin/expire, /_standin/revoke         expire an account's access, or revoke it
POST /_standin/reset, /_standin/clients         forget everything; register an OAuth client
POST /_standin/events, /_standin/quirks         seed a busy event; switch a quirk of Google's
"""

from __future__ import annotations

import time
from typing import Any

from standins.google.calendar import event_resource, event_time, new_event_id
from standins.google.routing import Call, route
from standins.google.scopes import APIS, SCOPE_SHORTHANDS
from standins.google.state import Consent, FailureRule, OAuthClient, StoredEvent
from standins.google.wire import ADDRESS, Reply, api_error, json_reply


def healthz(call: Call) -> Reply:
    return json_reply(200, {"status": "ok"})


def control_state(call: Call) -> Reply:
    return json_reply(200, call.state.snapshot())


def control_requests(call: Call) -> Reply:
    with call.state.lock:
        return json_reply(200, {"requests": list(call.state.requests)})


def control_fail(call: Call) -> Reply:
    body = call.json()
    api = body.get("api")
    if api not in APIS:
        raise api_error(400, f"api must be one of {sorted(APIS)}", "invalid")
    status, times = body.get("status", 503), body.get("times", 1)
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise api_error(400, "status must be an HTTP error status or null (delay only)", "invalid")
    if times is not None and (not isinstance(times, int) or times < 1):
        raise api_error(400, "times must be a positive integer or null (until cleared)", "invalid")
    rule = FailureRule(
        api=api,
        status=status,
        times=times,
        reason=body.get("reason"),
        message=body.get("message"),
        delay_ms=int(body.get("delay_ms") or 0),
        after_effect=bool(body.get("after_effect", False)),
    )
    with call.state.lock:
        call.state.failures.append(rule)
    return json_reply(200, {"failure": rule.as_dict()})


def control_clear_failures(call: Call) -> Reply:
    with call.state.lock:
        call.state.failures.clear()
    return json_reply(200, {"failures": []})


def control_accounts(call: Call) -> Reply:
    body = call.json()
    address = body.get("email")
    if address is not None and (not isinstance(address, str) or not ADDRESS.fullmatch(address)):
        raise api_error(400, "email must be an e-mail address or null", "invalid")
    scopes = body.get("scopes")
    if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
        raise api_error(400, "scopes must be a list of scopes or null (grant all asked)", "invalid")
    with call.state.lock:
        call.state.consent = Consent(
            email=address.lower() if address else None,
            scopes=tuple(SCOPE_SHORTHANDS.get(str(s), str(s)) for s in scopes) if scopes is not None else None,
            deny=bool(body.get("deny", False)),
        )
        if address:
            call.state.account(address)
        consent = call.state.consent
    return json_reply(200, {"consent": {"email": consent.email, "scopes": consent.scopes, "deny": consent.deny}})


def control_expire(call: Call) -> Reply:
    address = str(call.json().get("email", "")).lower()
    now = time.time()
    with call.state.lock:
        tokens = [t for t in call.state.access_tokens.values() if t.email == address and t.usable(now)]
        for access in tokens:
            access.expires_at = now
    return json_reply(200, {"expired": len(tokens)})


def control_revoke(call: Call) -> Reply:
    """The user removes the app at myaccount.google.com: by account (and client), or by refresh token."""
    body = call.json()
    with call.state.lock:
        grant = call.state.grants.get(str(body.get("refresh_token", "")))
        if grant is not None:
            refresh, access = call.state.revoke_access(grant.email, grant.client_id)
        elif body.get("email"):
            refresh, access = call.state.revoke_access(str(body["email"]).lower(), body.get("client_id"))
        else:
            raise api_error(400, "give email (and client_id) or refresh_token", "invalid")
    return json_reply(200, {"revoked_refresh_tokens": refresh, "revoked_access_tokens": access})


def control_reset(call: Call) -> Reply:
    call.state.reset()
    return json_reply(200, {"status": "reset"})


def control_clients(call: Call) -> Reply:
    body = call.json()
    uris = body.get("redirect_uris")
    if not body.get("client_id") or not body.get("client_secret"):
        raise api_error(400, "client_id and client_secret are required", "invalid")
    client = OAuthClient(
        str(body["client_id"]), str(body["client_secret"]), tuple(map(str, uris)) if uris is not None else None
    )
    with call.state.lock:
        call.state.clients[client.client_id] = client
    return json_reply(200, {"client_id": client.client_id, "redirect_uris": client.redirect_uris})


def control_seed_event(call: Call) -> Reply:
    """Puts an event on an account's primary calendar, e.g. to make a slot busy for freebusy."""
    body = call.json()
    address = str(body.get("email") or "").lower()
    if not ADDRESS.fullmatch(address):
        raise api_error(400, "email is required", "invalid")
    start, start_view = event_time(body.get("start"), "start")
    end, end_view = event_time(body.get("end"), "end")
    with call.state.lock:
        account = call.state.account(address)
        event_id = str(body.get("id") or new_event_id())
        fields: dict[str, Any] = {k: body[k] for k in ("summary", "transparency") if k in body}
        resource = event_resource(account, event_id, body=fields, start=start_view, end=end_view)
        account.events[event_id] = StoredEvent(resource, start, end, None, 0, seeded=True)
    return json_reply(200, resource)


def control_quirks(call: Call) -> Reply:
    body = call.json()
    with call.state.lock:
        for name, value in body.items():
            if name not in call.state.quirks:
                raise api_error(400, f"unknown quirk {name}; known: {sorted(call.state.quirks)}", "invalid")
            call.state.quirks[name] = bool(value)
        return json_reply(200, {"quirks": dict(call.state.quirks)})


ROUTES = (
    route("GET", r"/healthz", healthz),
    route("GET", r"/_standin/state", control_state),
    route("GET", r"/_standin/requests", control_requests),
    route("POST", r"/_standin/fail", control_fail),
    route("DELETE", r"/_standin/fail", control_clear_failures),
    route("POST", r"/_standin/accounts", control_accounts),
    route("POST", r"/_standin/expire", control_expire),
    route("POST", r"/_standin/revoke", control_revoke),
    route("POST", r"/_standin/reset", control_reset),
    route("POST", r"/_standin/clients", control_clients),
    route("POST", r"/_standin/events", control_seed_event),
    route("POST", r"/_standin/quirks", control_quirks),
)
