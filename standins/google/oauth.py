"""Google's OAuth 2.0 endpoints: the consent screen (answered at once as the control API says),
the token endpoint (code exchange with PKCE, refresh), revocation and OpenID Connect userinfo.

Their errors are OAuth's `{"error", "error_description"}`, or an error page where Google shows
one rather than redirect to a URI it cannot trust.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from standins.google.routing import Call, route
from standins.google.scopes import SCOPE_SHORTHANDS, SIGN_IN_SCOPES, USERINFO_EMAIL, USERINFO_PROFILE, known_scope
from standins.google.state import AccessToken, Account, AuthorizationCode, GoogleState, Grant, OAuthClient
from standins.google.wire import Reply, b64url, consent_page_error, json_reply, oauth_error

DEFAULT_ACCOUNT_EMAIL = "csm@example.com"
AUTHORIZATION_CODE_LIFETIME_S = 600
PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def authorize(call: Call) -> Reply:
    """Google's consent screen, answered at once by the user the control API describes."""
    state = call.state
    args = {name: values[0] for name, values in call.query.items()}
    client = state.clients.get(args.get("client_id", ""))
    if client is None:
        raise consent_page_error(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = args.get("redirect_uri", "")
    if not redirect_uri or not client.allows(redirect_uri):
        raise consent_page_error(
            400, "redirect_uri_mismatch", f"The redirect URI in the request, {redirect_uri}, is not registered."
        )
    if args.get("response_type") != "code":
        raise consent_page_error(400, "unsupported_response_type", "Only response_type=code is served here.")
    raw_scopes = args.get("scope", "").split()
    if not raw_scopes:
        raise consent_page_error(400, "invalid_request", "Missing required parameter: scope")
    unknown = [s for s in raw_scopes if not known_scope(s)]
    if unknown:
        raise consent_page_error(400, "invalid_scope", f"Some requested scopes were invalid. {{invalid={unknown}}}")
    # Google does not insist on state; CSCX's callback is authenticated by it, so the stand-in does.
    if not args.get("state"):
        raise consent_page_error(400, "invalid_request", "Missing state (required by the CSCX stand-in).")
    access_type = args.get("access_type", "online")
    if access_type not in {"online", "offline"}:
        raise consent_page_error(400, "invalid_request", f"Invalid access_type: {access_type}")
    prompt = set(args.get("prompt", "").split())
    if not prompt <= {"none", "consent", "select_account"} or ("none" in prompt and len(prompt) > 1):
        raise consent_page_error(400, "invalid_request", f"Invalid prompt: {args.get('prompt')}")
    challenge = args.get("code_challenge")
    method = args.get("code_challenge_method", "plain")
    if challenge is not None and (method not in {"S256", "plain"} or not PKCE_CHALLENGE.fullmatch(challenge)):
        raise consent_page_error(400, "invalid_request", "Invalid code_challenge or code_challenge_method.")

    def back(**fields: str) -> Reply:
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return Reply(302, headers={"Location": redirect_uri + separator + urlencode(fields)})

    with state.lock:
        consent = state.consent
        if consent.deny:
            return back(error="access_denied", state=args["state"])
        hint = args.get("login_hint", "")
        address = (consent.email or (hint if "@" in hint else DEFAULT_ACCOUNT_EMAIL)).lower()
        state.account(address)
        previous = state.active_grants(address, client.client_id)
        if "none" in prompt and not previous:
            return back(error="consent_required", state=args["state"])
        asked = {SCOPE_SHORTHANDS.get(s, s) for s in raw_scopes}
        granted = asked if consent.scopes is None else asked & ({*consent.scopes} | SIGN_IN_SCOPES)
        if args.get("include_granted_scopes") == "true":
            granted |= {s for g in previous for s in g.scopes}
        code = AuthorizationCode(
            code="4/0" + secrets.token_urlsafe(48),
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            email=address,
            scopes=tuple(sorted(granted)),
            # Google sends a refresh token for offline access on a first consent, or when prompt=consent asks again.
            issue_refresh_token=access_type == "offline" and ("consent" in prompt or not previous),
            code_challenge=challenge,
            code_challenge_method=method,
            issued_at=time.time(),
        )
        state.codes[code.code] = code
    return back(
        state=args["state"],
        code=code.code,
        scope=" ".join(code.scopes),
        authuser="0",
        prompt="none" if "none" in prompt else "consent",
    )


def token(call: Call) -> Reply:
    state = call.state
    fields = call.form()
    client = _token_client(call, fields)
    grant_type = fields.get("grant_type", "")
    with state.lock:
        if grant_type == "authorization_code":
            payload = _exchange_code(state, client, fields)
        elif grant_type == "refresh_token":
            payload = _refresh(state, client, fields)
        else:
            raise oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    return json_reply(200, payload, {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"})


def _token_client(call: Call, fields: dict[str, str]) -> OAuthClient:
    """client_secret_basic when an Authorization header is sent, client_secret_post otherwise."""
    client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
    scheme, _, value = call.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError as exc:
            raise oauth_error(401, "invalid_client", "Unauthorized") from exc
        client_id, secret = unquote(user), unquote(password)
    client = call.state.clients.get(client_id)
    if client is None:
        raise oauth_error(401, "invalid_client", "The OAuth client was not found.")
    if not secrets.compare_digest(secret, client.client_secret):
        raise oauth_error(401, "invalid_client", "Unauthorized")
    return client


def _exchange_code(state: GoogleState, client: OAuthClient, fields: dict[str, str]) -> dict[str, Any]:
    value = fields.get("code")
    if not value:
        raise oauth_error(400, "invalid_request", "Missing required parameter: code")
    code = state.codes.get(value)
    now = time.time()
    expired = code is not None and now > code.issued_at + AUTHORIZATION_CODE_LIFETIME_S
    if code is None or code.used_at is not None or expired or code.client_id != client.client_id:
        raise oauth_error(400, "invalid_grant", "Bad Request")
    if not fields.get("redirect_uri"):
        raise oauth_error(400, "invalid_request", "Missing parameter: redirect_uri")
    if fields["redirect_uri"] != code.redirect_uri:
        raise oauth_error(400, "redirect_uri_mismatch", "Bad Request")
    if code.code_challenge is not None:
        verifier = fields.get("code_verifier")
        if not verifier:
            raise oauth_error(400, "invalid_grant", "Missing code verifier.")
        if _pkce_challenge(verifier, code.code_challenge_method) != code.code_challenge:
            raise oauth_error(400, "invalid_grant", "Invalid code verifier.")
    code.used_at = now
    refresh_token = None
    if code.issue_refresh_token:
        grant = Grant("1//0" + secrets.token_urlsafe(64), client.client_id, code.email, code.scopes, now)
        state.grants[grant.refresh_token] = grant
        refresh_token = grant.refresh_token
    access = state.issue_access_token(client.client_id, code.email, code.scopes, refresh_token)
    payload = _token_payload(state, access)
    if refresh_token is not None:
        payload["refresh_token"] = refresh_token
    return payload


def _refresh(state: GoogleState, client: OAuthClient, fields: dict[str, str]) -> dict[str, Any]:
    value = fields.get("refresh_token")
    if not value:
        raise oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
    grant = state.grants.get(value)
    if grant is None or grant.revoked_at is not None or grant.client_id != client.client_id:
        raise oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
    scopes = grant.scopes
    if fields.get("scope"):
        # A narrower token may be asked for; scopes never granted are left out rather than refused,
        # which is why google-auth only logs "Not all requested scopes were granted".
        asked = {SCOPE_SHORTHANDS.get(s, s) for s in fields["scope"].split()}
        scopes = tuple(s for s in grant.scopes if s in asked)
        if not scopes:
            raise oauth_error(400, "invalid_scope", "Bad Request")
    access = state.issue_access_token(client.client_id, grant.email, scopes, grant.refresh_token)
    return _token_payload(state, access)


def _token_payload(state: GoogleState, access: AccessToken) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "access_token": access.token,
        "expires_in": state.access_token_lifetime_s,
        "scope": " ".join(access.scopes),
        "token_type": "Bearer",
    }
    if "openid" in access.scopes:
        payload["id_token"] = _id_token(state.account(access.email), access)
    return payload


def _id_token(account: Account, access: AccessToken) -> str:
    """An OpenID Connect ID token with Google's claims; its signature is a placeholder, not RS256."""
    claims: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "azp": access.client_id,
        "aud": access.client_id,
        "sub": account.sub,
        "iat": int(access.issued_at),
        "exp": int(access.issued_at) + 3600,
    }
    if USERINFO_EMAIL in access.scopes:
        claims.update(email=account.email, email_verified=True)
    header = {"alg": "RS256", "kid": "cscx-standin-unsigned", "typ": "JWT"}
    parts = [json.dumps(header).encode(), json.dumps(claims).encode(), b"cscx-standin-unsigned"]
    return ".".join(b64url(part, pad=False) for part in parts)


def _pkce_challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    return b64url(hashlib.sha256(verifier.encode()).digest(), pad=False)


def revoke(call: Call) -> Reply:
    state = call.state
    value = call.form().get("token") or call.arg("token")
    if not value:
        raise oauth_error(400, "invalid_request", "Bad Request")
    with state.lock:
        now = time.time()
        grant = state.grants.get(value)
        access = state.access_tokens.get(value)
        if grant is not None and grant.revoked_at is None:
            state.revoke_access(grant.email, grant.client_id)
        elif access is not None and access.usable(now):
            if access.refresh_token is None:
                access.revoked_at = now
            else:
                state.revoke_access(access.email, access.client_id)
        else:
            raise oauth_error(400, "invalid_token", "Token expired or revoked")
    return json_reply(200, {})


def userinfo(call: Call) -> Reply:
    """OpenID Connect userinfo; its errors are OAuth-shaped, not the APIs' JSON."""
    scheme, _, value = call.headers.get("Authorization", "").partition(" ")
    state = call.state
    with state.lock:
        access = state.access_tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if access is None or not access.usable(time.time()):
            raise oauth_error(401, "invalid_request", "Invalid Credentials")
        call.token = access
        account = state.account(access.email)
    info: dict[str, Any] = {"sub": account.sub}
    if USERINFO_EMAIL in access.scopes:
        info.update(email=account.email, email_verified=True)
    if USERINFO_PROFILE in access.scopes:
        info.update(name=account.email.split("@")[0], picture="https://lh3.googleusercontent.com/a/default-user")
    return json_reply(200, info)


ROUTES = (
    route("GET", r"/o/oauth2/(?:v2/)?auth", authorize, "oauth.authorize"),
    route("POST", r"/token", token, "oauth.token"),
    route("POST", r"/revoke", revoke, "oauth.revoke"),
    route("GET", r"/(?:v1|oauth2/v3)/userinfo", userinfo, "oauth.userinfo"),
)
