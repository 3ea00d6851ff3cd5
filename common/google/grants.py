"""Google grants held outside a connection: a consent parked until its user completes it, and grants owed a revoke.

Google's callback is a browser redirect that carries no ID token (DESIGN §2): its state says who
asked to connect, not who consented. So the callback only parks what Google granted, sealed,
under the uid its state names, for 10 minutes, behind a one-time handle that only the browser
coming back from Google sees (`park`); the connection is made when that same uid, with its own
ID token, presents the handle (`complete`). The handle is sealed (AES-GCM) around the uid and
the parked document's id, so it binds the grant to the uid that asked and, unlike the state
(which the asker holds from the moment the consent URL is made), is never seen by the asker
unless the consent was theirs. Presented by anyone else, it ends the grant: a consent link made
by one user and followed by another connects no one.

A grant CSCX lets go of (disconnected, replaced by a connection to another account, discarded,
or parked and never completed) is revoked at Google. It is first written down, in the same
commit that ends its use, as a grant owed a revoke, its refresh token sealed for that alone;
then revoked, and forgotten once Google confirms. When Google cannot be reached it stays owed,
usable for nothing else, and is tried again at the user's next connect, complete or disconnect.
Google's revoke ends every token of an account's consent to the app, so a grant is not revoked
while the user's connection is to the same Google account: that would end the connection too.
"""

from __future__ import annotations

import contextlib
import enum
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from common import sealing
from common.collections import GOOGLE_GRANTS, INTEGRATIONS, Order
from common.errors import ApiError, NotFoundError
from common.google import integration, oauth_url, tokens, utc
from common.log import get_logger
from common.store import Repository, TenantTransaction, not_found

logger = get_logger(__name__)

GRANT_LIFETIME = timedelta(minutes=10)  # DESIGN §5: a parked grant waits 10 minutes for its user
_HANDLE_PURPOSE = "cscx/google-grant/v1"
_REFRESH_FIELD, _ACCESS_FIELD = "grant_refresh_token", "grant_access_token"  # what the sealed tokens open as
_FIRST_RETRY = timedelta(minutes=1)
_LAST_RETRY = timedelta(hours=1)
_MOST_AT_ONCE = 20  # owed revokes tried per pass: far more than a user accumulates
_BY_ID = Order("id", ())
_HTTP_TIMEOUT_SECONDS = 10.0


class GrantState(enum.StrEnum):
    PARKED = "parked"  # waiting for its user to complete the connection
    TO_REVOKE = "to_revoke"  # let go of: to be revoked at Google


class Grant(BaseModel):
    """`google_grants/{id}` as the server keeps it."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    id: str
    owner_id: str
    state: GrantState
    google_email: str = ""
    google_sub: str = ""
    refresh_token_enc: str = ""
    # Parked only: the rest of what the consent gave, and until when it may be completed.
    access_token_enc: str = ""
    scopes: tuple[str, ...] = ()
    token_expires_at: datetime | None = None
    expires_at: datetime | None = None
    # Owed a revoke only: how often it failed, and not to be tried again before.
    revoke_attempts: int = 0
    revoke_after: datetime | None = None

    def due(self, now: datetime) -> bool:
        """Whether it should be revoked now: owed and due, or parked and never completed in time."""
        if self.state is GrantState.PARKED:
            return self.expires_at is None or utc(self.expires_at) <= now
        return self.revoke_after is None or utc(self.revoke_after) <= now


@dataclass(frozen=True)
class Granted:
    """What one consent at Google gave: the account, the scopes, and its tokens."""

    google_email: str
    google_sub: str
    scopes: list[str]
    access_token: str
    refresh_token: str
    expires_at: datetime


def _no_such_grant() -> ApiError:
    # One answer for every grant that cannot be completed: unknown, used, expired, another's.
    return not_found("Google grant")


# -- parking and completing ------------------------------------------------------------------


def park(uid: str, granted: Granted) -> str:
    """Keep what a consent gave for `uid` to complete within 10 minutes; the one-time handle."""
    grant_id = secrets.token_urlsafe(24)
    Repository(uid).create(
        GOOGLE_GRANTS,
        {
            "state": GrantState.PARKED.value,
            "google_email": granted.google_email,
            "google_sub": granted.google_sub,
            "scopes": sorted(set(granted.scopes)),
            "access_token_enc": tokens.encrypt(uid, _ACCESS_FIELD, granted.access_token),
            "refresh_token_enc": tokens.encrypt(uid, _REFRESH_FIELD, granted.refresh_token),
            "token_expires_at": utc(granted.expires_at),
            "expires_at": datetime.now(UTC) + GRANT_LIFETIME,
        },
        doc_id=grant_id,
    )
    sealed = sealing.seal(_handle_key(), json.dumps([uid, grant_id]).encode(), _HANDLE_PURPOSE.encode())
    return sealing.b64encode(sealed)


def complete(repo: Repository, handle: str) -> None:
    """Make the parked grant `handle` names the caller's connection, replacing any other.

    404 for a handle that is not one, a grant used, expired or discarded already, and one parked
    for another uid, which is then ended: only the uid that asked to connect may complete it.
    """
    opened = _open_handle(handle)
    if opened is None:
        raise _no_such_grant()
    owner, grant_id = opened
    if owner != repo.uid:
        _discard(Repository(owner), grant_id, presented_by=repo)
        raise _no_such_grant()
    now = datetime.now(UTC)
    connected: bool = repo.run_transaction(lambda t: _connect(t, grant_id, now))
    revoke_owed(repo)  # what the connection replaced, or the grant if it came too late
    if not connected:
        raise _no_such_grant()
    logger.info("Google connected", extra={"fields": {"uid": repo.uid}})


def _connect(t: TenantTransaction, grant_id: str, now: datetime) -> bool:
    """In one commit: the parked grant becomes the connection, and the grant it replaces is owed a revoke."""
    stored = t.find(GOOGLE_GRANTS, grant_id)
    current = t.find(INTEGRATIONS, t.uid)  # every read before the first write
    if stored is None:
        return False
    grant = Grant.model_validate(stored)
    if grant.state is not GrantState.PARKED:
        return False
    if grant.due(now):  # too late: never to be used, only revoked
        t.update(GOOGLE_GRANTS, stored, {"state": GrantState.TO_REVOKE.value, "revoke_after": now})
        return False
    try:
        access_token = tokens.decrypt(t.uid, _ACCESS_FIELD, grant.access_token_enc)
        refresh_token = tokens.decrypt(t.uid, _REFRESH_FIELD, grant.refresh_token_enc)
    except tokens.InvalidCiphertextError:
        logger.warning("parked Google grant unreadable", extra={"fields": {"uid": t.uid}})
        t.delete(GOOGLE_GRANTS, grant_id)
        return False
    fields = tokens.connection_fields(
        t.uid,
        google_email=grant.google_email,
        google_sub=grant.google_sub,
        scopes=list(grant.scopes),
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=grant.token_expires_at or now,
    )
    t.delete(GOOGLE_GRANTS, grant_id)
    if current is None:
        t.create(INTEGRATIONS, dict(fields), doc_id=t.uid)
        return True
    t.update(INTEGRATIONS, current, dict(fields))
    replaced = integration.Integration.model_validate(current)
    replaced_token = tokens.refresh_token_of(replaced)
    # Another account's grant is let go of; the same account's is the one Google just renewed.
    if replaced_token and not _same_account(replaced.google_sub, replaced.google_email, grant):
        _owe_revoke(t, replaced_token, replaced.google_sub, replaced.google_email, now)
    return True


def _discard(owner: Repository, grant_id: str, *, presented_by: Repository) -> None:
    """End a parked grant that someone other than its uid presented: owed a revoke, and revoked now.

    Unless the presenter's own connection is to the same Google account: revoking would end it.
    """
    now = datetime.now(UTC)
    presenters = integration.read(presented_by)

    def end(t: TenantTransaction) -> None:
        stored = t.find(GOOGLE_GRANTS, grant_id)
        if stored is None or stored.get("state") != GrantState.PARKED:
            return
        grant = Grant.model_validate(stored)
        if presenters is not None and _same_account(presenters.google_sub, presenters.google_email, grant):
            t.delete(GOOGLE_GRANTS, grant_id)
        else:
            t.update(GOOGLE_GRANTS, stored, {"state": GrantState.TO_REVOKE.value, "revoke_after": now})

    owner.run_transaction(end)
    logger.warning(
        "Google grant presented by another user: discarded",
        extra={"fields": {"uid": owner.uid, "presented_by": presented_by.uid}},
    )
    revoke_owed(owner)


# -- disconnecting ---------------------------------------------------------------------------


def disconnect(repo: Repository) -> None:
    """Forget the user's connection and revoke its grant at Google (later, if Google cannot answer now)."""
    now = datetime.now(UTC)

    def let_go(t: TenantTransaction) -> bool:
        stored = t.find(INTEGRATIONS, t.uid)
        if stored is None:
            return False
        record = integration.Integration.model_validate(stored)
        refresh_token = tokens.refresh_token_of(record)
        t.delete(INTEGRATIONS, t.uid)
        if refresh_token:
            _owe_revoke(t, refresh_token, record.google_sub, record.google_email, now)
        return True

    if repo.run_transaction(let_go):
        logger.info("Google disconnected", extra={"fields": {"uid": repo.uid}})
    revoke_owed(repo)


# -- revoking --------------------------------------------------------------------------------


def _owe_revoke(t: TenantTransaction, refresh_token: str, google_sub: str, google_email: str, now: datetime) -> None:
    t.create(
        GOOGLE_GRANTS,
        {
            "state": GrantState.TO_REVOKE.value,
            "google_sub": google_sub,
            "google_email": google_email,
            "refresh_token_enc": tokens.encrypt(t.uid, _REFRESH_FIELD, refresh_token),
            "revoke_attempts": 0,
            "revoke_after": now,
        },
        doc_id=secrets.token_urlsafe(24),
    )


def revoke_owed(repo: Repository) -> None:
    """Revoke at Google every grant of the user's that is owed a revoke and due; never raises.

    One Google cannot revoke now stays owed, tried again after a back-off (1 minute, doubling
    to an hour). One whose account the user is connected to again is forgotten unrevoked.
    """
    try:
        _revoke_owed(repo)
    except Exception:  # the caller's request goes on: what is owed stays owed
        logger.exception("owed Google revokes not tried", extra={"fields": {"uid": repo.uid}})


def _revoke_owed(repo: Repository) -> None:
    now = datetime.now(UTC)
    owed = [Grant.model_validate(stored) for stored in _grants(repo)]
    due = [grant for grant in owed if grant.due(now)]
    if not due:
        return
    current = integration.read(repo)
    for grant in due:
        if current is not None and _same_account(current.google_sub, current.google_email, grant):
            _forget(repo, grant)  # connected to that account again: its consent is in use
            continue
        try:
            refresh_token = tokens.decrypt(repo.uid, _REFRESH_FIELD, grant.refresh_token_enc)
        except tokens.InvalidCiphertextError:
            logger.warning("owed Google revoke unreadable: forgotten", extra={"fields": {"uid": repo.uid}})
            _forget(repo, grant)
            continue
        if revoke(refresh_token):
            _forget(repo, grant)
        else:
            _retry_later(repo, grant, now)


def _grants(repo: Repository) -> list[dict[str, Any]]:
    return repo.list(GOOGLE_GRANTS, order=_BY_ID, limit=_MOST_AT_ONCE, cursor=None).items


def _forget(repo: Repository, grant: Grant) -> None:
    with contextlib.suppress(NotFoundError):  # forgotten already, by a pass beside this one
        repo.delete(GOOGLE_GRANTS, grant.id)


def _retry_later(repo: Repository, grant: Grant, now: datetime) -> None:
    wait = min(_FIRST_RETRY * 2**grant.revoke_attempts, _LAST_RETRY)
    changes = {
        "state": GrantState.TO_REVOKE.value,
        "revoke_attempts": grant.revoke_attempts + 1,
        "revoke_after": now + wait,
        # A parked grant that timed out keeps nothing but what revoking it takes.
        "access_token_enc": "",
    }
    with contextlib.suppress(NotFoundError):  # gone meanwhile: a pass beside this one forgot it
        repo.update(GOOGLE_GRANTS, grant.id, lambda _current: changes)
    logger.warning(
        "Google revoke owed: tried again later",
        extra={"fields": {"uid": repo.uid, "attempts": grant.revoke_attempts + 1}},
    )


def revoke(refresh_token: str) -> bool:
    """Revoke a grant at Google; True once it is gone (revoked now, or already), False when
    Google could not answer now (unreachable, 429, 5xx)."""
    import requests

    try:
        answer = requests.post(oauth_url("revoke"), data={"token": refresh_token}, timeout=_HTTP_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        logger.warning("Google revoke unreachable", extra={"fields": {"error": type(error).__name__}})
        return False
    if answer.ok:
        return True
    if answer.status_code == 400:
        # invalid_token: revoked already (by the user at Google, say), or expired: nothing left to end.
        logger.info("Google revoke: the grant was gone already")
        return True
    logger.warning("Google revoke refused", extra={"fields": {"status": answer.status_code}})
    return False


# -- helpers ---------------------------------------------------------------------------------


def _same_account(sub: str, email: str, grant: Grant) -> bool:
    """Whether a connection (its Google `sub` and e-mail) is to the grant's account: by the
    stable id when both have it, else by address."""
    if sub and grant.google_sub:
        return sub == grant.google_sub
    return bool(email) and email.lower() == grant.google_email.lower()


def _handle_key() -> bytes:
    return sealing.derive_key(tokens.key(), _HANDLE_PURPOSE)


def _open_handle(handle: str) -> tuple[str, str] | None:
    """(uid, grant id) of a handle `park` made; None for anything else."""
    if not handle or len(handle) > 1024:
        return None
    try:
        plain = sealing.unseal(_handle_key(), sealing.b64decode(handle), _HANDLE_PURPOSE.encode())
        uid, grant_id = json.loads(plain)
    except (ValueError, TypeError):
        return None
    if not isinstance(uid, str) or not isinstance(grant_id, str) or not uid or not grant_id:
        return None
    return uid, grant_id
