"""A user's stored Google connection: tokens encrypted at rest, and a valid access token on demand.

The connection is the `integrations/{uid}` document (DESIGN §3). Its tokens are sealed with
AES-256-GCM under CSCX_TOKEN_ENCRYPTION_KEY, the uid and field name bound in as associated data,
so a ciphertext copied to another user or field does not open. An access token that expires
within 5 minutes is refreshed by one caller at a time per user: a short lease written as a
compare-and-set on the document; the others wait for the new token rather than refreshing too.
"""

from __future__ import annotations

import binascii
import functools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common.collections import INTEGRATIONS
from common.errors import ApiError, Code, ConfigurationError
from common.google import GoogleError, NotConnected, ReauthRequired, b64, oauth_url, unb64, utc
from common.log import get_logger
from common.settings import get_settings
from common.store import Repository, TenantTransaction

logger = get_logger(__name__)

CONNECTED = "connected"
NEEDS_REAUTH = "needs_reauth"
# What never leaves this module: the sealed tokens, and the refresh lease (bookkeeping).
_PRIVATE_FIELDS = frozenset({"access_token_enc", "refresh_token_enc", "refresh_lease_until"})

REFRESH_MARGIN = timedelta(minutes=5)  # DESIGN §6: refreshed when it expires within 5 minutes
REFRESH_LEASE = timedelta(seconds=20)  # longer than a refresh takes, google-auth's own retries included
REFRESH_WAIT_SECONDS = 10.0  # how long a caller without the lease waits for the holder's token
_POLL_SECONDS = 0.2
_TOKEN_TIMEOUT_SECONDS = 10.0
_CIPHER_VERSION = "v1"


class InvalidCiphertextError(ValueError):
    """A sealed token does not open: another key, tampered, or sealed for another user or field."""


# -- sealing ---------------------------------------------------------------------------------


def encrypt(uid: str, field: str, plaintext: str) -> str:
    """`plaintext` sealed for `uid`'s `field`: ``v1.<nonce>.<ciphertext>``, base64url without padding."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)  # 96 bits, random per seal: never reused under one key in practice
    sealed = AESGCM(_key()).encrypt(nonce, plaintext.encode(), _associated_data(uid, field))
    return ".".join((_CIPHER_VERSION, b64(nonce), b64(sealed)))


def decrypt(uid: str, field: str, token: str) -> str:
    """The plaintext `encrypt(uid, field, ...)` sealed; InvalidCiphertextError for anything else."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    version, _, rest = token.partition(".")
    nonce_text, _, sealed_text = rest.partition(".")
    if version != _CIPHER_VERSION or not nonce_text or not sealed_text:
        raise InvalidCiphertextError(f"the stored {field} is not a sealed token")
    try:
        nonce, sealed = unb64(nonce_text), unb64(sealed_text)
        plaintext = AESGCM(_key()).decrypt(nonce, sealed, _associated_data(uid, field))
    except (InvalidTag, ValueError, binascii.Error):
        # The message names the field only: neither the value nor any of its bytes.
        raise InvalidCiphertextError(f"the stored {field} cannot be decrypted with this key for this user") from None
    return plaintext.decode()


def _key() -> bytes:
    key = get_settings().token_encryption_key
    if len(key) != 32:
        raise ConfigurationError("CSCX_TOKEN_ENCRYPTION_KEY is required (32 bytes in base64) to store Google tokens")
    return key


def _associated_data(uid: str, field: str) -> bytes:
    # JSON keeps the parts apart whatever they contain, so no two (uid, field) pairs collide.
    return json.dumps(["cscx/google-token", _CIPHER_VERSION, uid, field]).encode()


# -- the connection --------------------------------------------------------------------------


def store_connection(
    repo: Repository,
    *,
    google_email: str,
    scopes: list[str],
    access_token: str,
    refresh_token: str,
    expires_at: datetime,
) -> None:
    """Create or replace the user's connection, status connected, its tokens sealed."""
    uid = repo.uid
    fields: dict[str, Any] = {
        "google_email": google_email,
        "scopes": sorted(set(scopes)),
        "access_token_enc": encrypt(uid, "access_token", access_token),
        "refresh_token_enc": encrypt(uid, "refresh_token", refresh_token),
        "expires_at": utc(expires_at),
        "status": CONNECTED,
        "last_error": None,
        "refresh_lease_until": None,
    }

    def replace(t: TenantTransaction) -> None:
        current = t.find(INTEGRATIONS, uid)
        if current is None:
            t.create(INTEGRATIONS, fields, doc_id=uid)
        else:
            t.update(INTEGRATIONS, current, fields)

    repo.run_transaction(replace)


def connection(repo: Repository) -> dict[str, Any] | None:
    """The user's connection without its tokens (status, google_email, scopes, ...), None when there is none."""
    stored = repo.find(INTEGRATIONS, repo.uid)
    if stored is None:
        return None
    return {name: value for name, value in stored.items() if name not in _PRIVATE_FIELDS}


def delete_connection(repo: Repository) -> None:
    """Forget the user's connection and its tokens (revoking at Google is oauth.disconnect's job)."""
    try:
        repo.delete(INTEGRATIONS, repo.uid)
    except ApiError as error:
        if error.code is not Code.NOT_FOUND:
            raise


def stored_refresh_token(repo: Repository) -> str | None:
    """The user's refresh token, for revoking it; None when there is none or it does not open."""
    stored = repo.find(INTEGRATIONS, repo.uid)
    if stored is None or not stored.get("refresh_token_enc"):
        return None
    try:
        return decrypt(repo.uid, "refresh_token", stored["refresh_token_enc"])
    except InvalidCiphertextError:
        logger.warning("stored refresh token unreadable", extra={"fields": {"uid": repo.uid}})
        return None


def mark_needs_reauth(repo: Repository, reason: str) -> None:
    """Google no longer honours the grant: the user must connect again (their tokens are kept for revoking)."""
    try:
        repo.update(
            INTEGRATIONS,
            repo.uid,
            lambda _current: {"status": NEEDS_REAUTH, "last_error": reason, "refresh_lease_until": None},
        )
    except ApiError as error:
        if error.code is not Code.NOT_FOUND:
            raise
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


def access(repo: Repository) -> Access:
    """A valid access token of the user, refreshed first when it expires within 5 minutes, with
    the Google address of the connection.

    NotConnected without a connection; ReauthRequired once Google refused the grant (at once
    for a connection already marked needs_reauth); GoogleError(transient=True) when the
    refresh could not be done now.
    """
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    while True:
        stored = repo.find(INTEGRATIONS, repo.uid)
        if stored is None:
            raise NotConnected()
        _require_connected(stored)
        if _fresh(stored):
            return _access(repo, stored)
        # While a lease runs, only read: a lease attempt per poll would race the holder's write.
        leased = None if _leased(stored) else _take_refresh_lease(repo)
        if leased is not None:
            held, current = leased
            if held:
                return Access(_refresh(repo, current), str(current.get("google_email") or ""))
            return _access(repo, current)
        if time.monotonic() >= deadline:
            return _after_waiting(repo, stored)
        time.sleep(_POLL_SECONDS)


def _access(repo: Repository, stored: Mapping[str, Any]) -> Access:
    return Access(_open(repo, stored, "access_token"), str(stored.get("google_email") or ""))


def _take_refresh_lease(repo: Repository) -> tuple[bool, dict[str, Any]] | None:
    """(True, document) when this caller now holds the refresh lease; (False, document) when the
    token is fresh already (someone refreshed it meanwhile); None when another caller holds the
    lease, or kept winning the race for it: look again shortly.

    The lease is taken by a compare-and-set write (Repository.update: the write holds only if
    the document is still as read), not a read-write transaction: concurrent transactions on
    one document hold read locks that each other's lease writes wait for (the emulator stalls
    them for ~10 s), while a losing compare-and-set fails at once and reads the winner's lease.
    """
    now = datetime.now(UTC)
    outcome: list[tuple[bool, dict[str, Any]] | None] = [None]

    def take(current: dict[str, Any]) -> dict[str, Any]:
        # Called again on the new state when another writer got in first: the last call decides.
        _require_connected(current)
        if _fresh(current, now):
            outcome[0] = (False, current)
            return {}
        if _leased(current, now):
            outcome[0] = None
            return {}
        outcome[0] = (True, current)
        return {"refresh_lease_until": now + REFRESH_LEASE}

    try:
        repo.update(INTEGRATIONS, repo.uid, take)
    except ApiError as error:
        if error.code is Code.NOT_FOUND:
            raise NotConnected() from None
        if error.code is not Code.ABORTED:
            raise
        return None
    return outcome[0]


def _refresh(repo: Repository, stored: Mapping[str, Any]) -> str:
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
        _release_lease(repo)
        transient = bool(getattr(error, "retryable", False))
        logger.warning(
            "Google token refresh failed",
            extra={"fields": {"uid": repo.uid, "error": oauth_error or "unknown", "transient": transient}},
        )
        raise GoogleError(
            "Google refused to refresh the access token.", transient=transient, reason=oauth_error
        ) from None
    except auth_exceptions.TransportError:
        _release_lease(repo)
        logger.warning("Google token endpoint unreachable", extra={"fields": {"uid": repo.uid}})
        message = "Google's token endpoint could not be reached."
        raise GoogleError(message, transient=True, reason="connection") from None

    token = str(credentials.token)
    expiry = credentials.expiry  # naive UTC in google-auth
    expires_at = expiry.replace(tzinfo=UTC) if expiry is not None else datetime.now(UTC) + timedelta(minutes=55)
    fields: dict[str, Any] = {
        "access_token_enc": encrypt(repo.uid, "access_token", token),
        "expires_at": expires_at,
        "refresh_lease_until": None,
        "last_error": None,
    }
    if credentials.refresh_token and credentials.refresh_token != refresh_token:
        fields["refresh_token_enc"] = encrypt(repo.uid, "refresh_token", credentials.refresh_token)

    def record(current: dict[str, Any]) -> dict[str, Any]:
        # A reconnect meanwhile stored another grant: keep it, this token still serves this call.
        if current.get("refresh_token_enc") != stored.get("refresh_token_enc"):
            return {}
        return fields

    try:
        repo.update(INTEGRATIONS, repo.uid, record)
    except ApiError as error:
        if error.code is Code.NOT_FOUND:
            raise NotConnected() from None  # disconnected while refreshing: the grant is revoked
        raise
    logger.info("Google access token refreshed", extra={"fields": {"uid": repo.uid}})
    return token


def _after_waiting(repo: Repository, stored: Mapping[str, Any]) -> Access:
    """No fresh token within the wait (`stored`, as last read): the current one if it still works
    for a while, else try later."""
    expires_at = stored.get("expires_at")
    if expires_at is not None and utc(expires_at) > datetime.now(UTC) + timedelta(seconds=60):
        return _access(repo, stored)
    raise GoogleError("Another refresh of the Google token is taking too long.", transient=True, reason="refresh_busy")


def _release_lease(repo: Repository) -> None:
    try:
        repo.update(INTEGRATIONS, repo.uid, lambda _current: {"refresh_lease_until": None})
    except ApiError:
        logger.warning("refresh lease not released; it lapses on its own", extra={"fields": {"uid": repo.uid}})


def _oauth_error_code(error: Exception) -> str:
    """The OAuth error code (invalid_grant, invalid_client, ...) of a google-auth RefreshError."""
    response = error.args[1] if len(error.args) > 1 else None
    if isinstance(response, Mapping) and isinstance(response.get("error"), str):
        return str(response["error"])
    text = str(error.args[0]) if error.args else ""
    return "invalid_grant" if text.startswith("invalid_grant") else ""


# -- helpers ---------------------------------------------------------------------------------


def _require_connected(stored: Mapping[str, Any]) -> None:
    if stored.get("status") != CONNECTED:
        raise ReauthRequired()


def _fresh(stored: Mapping[str, Any], now: datetime | None = None) -> bool:
    expires_at = stored.get("expires_at")
    now = now or datetime.now(UTC)
    return expires_at is not None and utc(expires_at) > now + REFRESH_MARGIN


def _leased(stored: Mapping[str, Any], now: datetime | None = None) -> bool:
    """Whether a refresh lease is running (taken by anyone, this caller included)."""
    lease = stored.get("refresh_lease_until")
    return lease is not None and utc(lease) > (now or datetime.now(UTC))


def _open(repo: Repository, stored: Mapping[str, Any], field: str) -> str:
    """A sealed field of the connection; one that does not open can only be fixed by connecting again."""
    try:
        return decrypt(repo.uid, field, str(stored.get(f"{field}_enc") or ""))
    except InvalidCiphertextError:
        mark_needs_reauth(repo, f"The stored {field.replace('_', ' ')} could not be decrypted.")
        raise ReauthRequired() from None
