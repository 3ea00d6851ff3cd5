"""A user's Google tokens: sealed at rest, and a valid access token on demand.

The connection is the `integrations/{uid}` document (DESIGN §3), read as an `Integration`
(`common.google.integration`, which opens no token). Its tokens are sealed (AES-256-GCM,
`common.sealing`) under CSCX_TOKEN_ENCRYPTION_KEY with the uid and field name as associated
data, so a ciphertext copied to another user or field does not open. An access token that
expires within 5 minutes is refreshed by one caller at a time per user, under a `common.lease`
lease on the document; the others wait for the new token rather than refreshing too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common import sealing
from common.collections import INTEGRATIONS
from common.errors import ApiError, Code, ConfigurationError, NotFoundError
from common.google import GoogleError, NotConnected, ReauthRequired, oauth_url, utc
from common.google.integration import (
    REFRESH_LEASE_FIELD,
    Integration,
    IntegrationFields,
    Status,
    read,
)
from common.lease import Lease
from common.log import get_logger
from common.settings import get_settings
from common.store import Repository

logger = get_logger(__name__)

REFRESH_LEASE_SECONDS = 20.0  # longer than a refresh takes, google-auth's own retries included
REFRESH_WAIT_SECONDS = 10.0  # how long a caller without the lease waits for the holder's token
_POLL_SECONDS = 0.2
_TOKEN_TIMEOUT_SECONDS = 10.0
_CIPHER_VERSION = "v1"


class InvalidCiphertextError(ValueError):
    """A sealed token does not open: another key, tampered, or sealed for another user or field."""


# -- sealing ---------------------------------------------------------------------------------


def encrypt(uid: str, field: str, plaintext: str) -> str:
    """`plaintext` sealed for `uid`'s `field`: ``v1.<nonce>.<ciphertext>``, base64url without padding."""
    sealed = sealing.seal(key(), plaintext.encode(), _associated_data(uid, field))
    nonce, body = sealed[: sealing.NONCE_BYTES], sealed[sealing.NONCE_BYTES :]
    return ".".join((_CIPHER_VERSION, sealing.b64encode(nonce), sealing.b64encode(body)))


def decrypt(uid: str, field: str, token: str) -> str:
    """The plaintext `encrypt(uid, field, ...)` sealed; InvalidCiphertextError for anything else."""
    version, _, rest = token.partition(".")
    nonce_text, _, body_text = rest.partition(".")
    if version != _CIPHER_VERSION or not nonce_text or not body_text:
        raise InvalidCiphertextError(f"the stored {field} is not a sealed token")
    try:
        sealed = sealing.b64decode(nonce_text) + sealing.b64decode(body_text)
        return sealing.unseal(key(), sealed, _associated_data(uid, field)).decode()
    except ValueError:  # sealing.UnsealableError, bad base64, a plaintext that is not UTF-8
        # The message names the field only: neither the value nor any of its bytes.
        raise InvalidCiphertextError(f"the stored {field} cannot be decrypted with this key for this user") from None


def key() -> bytes:
    """The key Google token material is sealed under (CSCX_TOKEN_ENCRYPTION_KEY)."""
    configured = get_settings().token_encryption_key
    if len(configured) != 32:
        raise ConfigurationError("CSCX_TOKEN_ENCRYPTION_KEY is required (32 bytes in base64) to store Google tokens")
    return configured


def _associated_data(uid: str, field: str) -> bytes:
    # JSON keeps the parts apart whatever they contain, so no two (uid, field) pairs collide.
    return json.dumps(["cscx/google-token", _CIPHER_VERSION, uid, field]).encode()


def connection_fields(
    uid: str,
    *,
    google_email: str,
    google_sub: str,
    scopes: list[str],
    access_token: str,
    refresh_token: str,
    expires_at: datetime,
) -> IntegrationFields:
    """A connected `integrations/{uid}`, its tokens sealed: what a completed consent writes."""
    return {
        "google_email": google_email,
        "google_sub": google_sub,
        "scopes": sorted(set(scopes)),
        "access_token_enc": encrypt(uid, "access_token", access_token),
        "refresh_token_enc": encrypt(uid, "refresh_token", refresh_token),
        "expires_at": utc(expires_at),
        "status": Status.CONNECTED.value,
        "last_error": None,
        "refresh_lease": None,
    }


def refresh_token_of(record: Integration) -> str | None:
    """The connection's refresh token, for revoking it; None when there is none or it does not open."""
    if not record.refresh_token_enc:
        return None
    try:
        return decrypt(record.owner_id, "refresh_token", record.refresh_token_enc)
    except InvalidCiphertextError:
        logger.warning("stored refresh token unreadable", extra={"fields": {"uid": record.owner_id}})
        return None


def mark_needs_reauth(repo: Repository, reason: str) -> None:
    """Google no longer honours the grant: the user must connect again (their tokens are kept for revoking)."""
    changes: IntegrationFields = {"status": Status.NEEDS_REAUTH.value, "last_error": reason, "refresh_lease": None}
    with contextlib.suppress(NotFoundError):  # disconnected meanwhile: nothing to mark
        repo.update(INTEGRATIONS, repo.uid, lambda _current: dict(changes))
    logger.info("Google connection needs reauthorisation", extra={"fields": {"uid": repo.uid, "reason": reason}})


# -- a valid access token --------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What acting as the user at Google takes: a valid access token, and the address it is for."""

    token: str
    google_email: str


def access_token(repo: Repository) -> str:
    """A valid access token of the user (see `access`)."""
    return access(repo).token


def access(repo: Repository, read_before: Integration | None = None) -> Access:
    """A valid access token of the user, refreshed first when it expires within 5 minutes, with
    the Google address of the connection; `read_before`, the connection as the caller read it
    just before (beside its other reads), spares reading it again.

    NotConnected without a connection; ReauthRequired once Google refused the grant (at once
    for a connection already marked needs_reauth); GoogleError(transient=True) when the
    refresh could not be done now.
    """
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    while True:
        stored, read_before = read_before or read(repo), None
        if stored is None:
            raise NotConnected()
        stored.require_connected()
        if stored.fresh():
            return _access(repo, stored)
        # While a lease runs, only read: an attempt to take it per poll would race the holder's writes.
        if not stored.refreshing():
            refresher = Lease(repo, INTEGRATIONS, repo.uid, seconds=REFRESH_LEASE_SECONDS, field=REFRESH_LEASE_FIELD)
            held = _take(refresher)
            if held is not None:
                return Access(_refresh(repo, held, refresher), held.google_email)
        if time.monotonic() >= deadline:
            return _after_waiting(repo, stored)
        time.sleep(_POLL_SECONDS)


def _access(repo: Repository, stored: Integration) -> Access:
    return Access(_open(repo, stored, "access_token"), stored.google_email)


def _take(refresher: Lease) -> Integration | None:
    """The connection, now held by `refresher` for a refresh; None when another caller holds the
    lease, the token is fresh already (someone refreshed it meanwhile), or others kept winning
    the race for it: look again shortly.

    The lease is a compare-and-set write (`common.lease`), not a read-write transaction:
    concurrent transactions on one document hold read locks that each other's writes wait for
    (the emulator stalls them for ~10 s), while a losing compare-and-set fails at once and reads
    the winner's lease.
    """
    now = datetime.now(UTC)

    def needs_refresh(current: dict[str, Any]) -> dict[str, Any] | None:
        record = Integration.model_validate(current)
        record.require_connected()
        return None if record.fresh(now) else {}

    try:
        taken = refresher.take(needs_refresh)
    except NotFoundError:
        raise NotConnected() from None
    except ApiError as error:
        if error.code is not Code.ABORTED:
            raise
        return None
    return None if taken is None else Integration.model_validate(taken)


def _refresh(repo: Repository, stored: Integration, refresher: Lease) -> str:
    """Refresh with the stored refresh token while holding the lease; store and return the new token."""
    from google.auth import exceptions as auth_exceptions
    from google.auth.transport.requests import Request
    from google.oauth2.credentials import Credentials

    settings = get_settings()
    settings.require("GOOGLE_OAUTH_CLIENT_ID", "GOOGLE_OAUTH_CLIENT_SECRET")
    refresh_token = _open(repo, stored, "refresh_token")
    credentials = Credentials(  # type: ignore[no-untyped-call]
        None,
        refresh_token=refresh_token,
        token_uri=oauth_url("token"),
        client_id=settings.google_oauth_client_id,
        client_secret=settings.google_oauth_client_secret,
    )
    try:
        # google-auth calls the token endpoint without a timeout of its own (120 s by default).
        credentials.refresh(functools.partial(Request(), timeout=_TOKEN_TIMEOUT_SECONDS))  # type: ignore[no-untyped-call]
    except auth_exceptions.RefreshError as error:
        oauth_error = _oauth_error_code(error)
        if oauth_error == "invalid_grant":
            mark_needs_reauth(repo, "Google refused the refresh token (invalid_grant): access was revoked or expired.")
            raise ReauthRequired() from None
        _let_go(refresher)
        transient = bool(getattr(error, "retryable", False))
        logger.warning(
            "Google token refresh failed",
            extra={"fields": {"uid": repo.uid, "error": oauth_error or "unknown", "transient": transient}},
        )
        raise GoogleError(
            "Google refused to refresh the access token.", transient=transient, reason=oauth_error
        ) from None
    except auth_exceptions.TransportError:
        _let_go(refresher)
        logger.warning("Google token endpoint unreachable", extra={"fields": {"uid": repo.uid}})
        message = "Google's token endpoint could not be reached."
        raise GoogleError(message, transient=True, reason="connection") from None

    token = str(credentials.token)
    expiry = credentials.expiry  # naive UTC in google-auth
    refreshed: IntegrationFields = {
        "access_token_enc": encrypt(repo.uid, "access_token", token),
        "expires_at": expiry.replace(tzinfo=UTC) if expiry is not None else datetime.now(UTC) + timedelta(minutes=55),
        "last_error": None,
    }
    if credentials.refresh_token and credentials.refresh_token != refresh_token:
        refreshed["refresh_token_enc"] = encrypt(repo.uid, "refresh_token", credentials.refresh_token)
    try:
        # Written only while the lease is ours: a reconnect meanwhile stored another grant (and
        # dropped the lease), which stays; this token still serves this call.
        refresher.release(dict(refreshed))
    except NotFoundError:
        raise NotConnected() from None  # disconnected while refreshing: the grant is revoked
    logger.info("Google access token refreshed", extra={"fields": {"uid": repo.uid}})
    return token


def _after_waiting(repo: Repository, stored: Integration) -> Access:
    """No fresh token within the wait (`stored`, as last read): the current one if it still works
    for a while, else try later."""
    if stored.expires_at is not None and utc(stored.expires_at) > datetime.now(UTC) + timedelta(seconds=60):
        return _access(repo, stored)
    raise GoogleError("Another refresh of the Google token is taking too long.", transient=True, reason="refresh_busy")


def _let_go(refresher: Lease) -> None:
    try:
        refresher.release()
    except ApiError:
        logger.warning("refresh lease not released; it lapses on its own", extra={"fields": {"uid": refresher.doc_id}})


def _oauth_error_code(error: Exception) -> str:
    """The OAuth error code (invalid_grant, invalid_client, ...) of a google-auth RefreshError."""
    response = error.args[1] if len(error.args) > 1 else None
    if isinstance(response, Mapping) and isinstance(response.get("error"), str):
        return str(response["error"])
    text = str(error.args[0]) if error.args else ""
    return "invalid_grant" if text.startswith("invalid_grant") else ""


def _open(repo: Repository, stored: Integration, field: str) -> str:
    """A sealed field of the connection; one that does not open can only be fixed by connecting again."""
    try:
        return decrypt(repo.uid, field, str(getattr(stored, f"{field}_enc")))
    except InvalidCiphertextError:
        mark_needs_reauth(repo, f"The stored {field.replace('_', ' ')} could not be decrypted.")
        raise ReauthRequired() from None
