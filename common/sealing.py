"""Sealed values (AES-GCM: secret and tamper-proof) and signed expiring values (itsdangerous), one way each.

A sealed value reveals nothing of what it holds and opens only under its key with the same
associated data, which says what the value is for (a user and a field, a list query): one
copied to another use does not open. A signed value is readable but cannot be changed, is
bound to its purpose (itsdangerous' salt), and is refused once older than the age its reader
allows. Both travel as base64url without padding (`b64encode`), the one encoding of this module.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from itsdangerous import URLSafeTimedSerializer

NONCE_BYTES = 12  # AES-GCM's 96-bit nonce, random per seal: never reused under one key in practice
_TAG_BYTES = 16


class UnsealableError(ValueError):
    """A sealed value does not open: another key, other associated data, tampered, or not sealed at all."""


class BadSignatureError(ValueError):
    """A signed value was not signed with this secret for this purpose, or was changed."""


class ExpiredError(ValueError):
    """A signed value, genuine, but older than its reader allows; `value` is what it holds."""

    def __init__(self, value: Any) -> None:
        super().__init__("the signed value has expired")
        self.value = value


# -- base64url -------------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """The bytes of `b64encode`'s text (padding optional); ValueError for anything else."""
    try:
        return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
    except (UnicodeError, binascii.Error) as error:
        raise ValueError("not base64url") from error


# -- sealing (AES-GCM) -----------------------------------------------------------------------


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 256-bit key for one purpose from a longer-lived secret: SHA-256(purpose, NUL, secret)."""
    return hashlib.sha256(purpose.encode() + b"\0" + secret).digest()


@functools.cache
def _cipher(key: bytes) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """`plaintext` encrypted and authenticated under `key`, bound to `associated_data`: the nonce,
    then the ciphertext with its tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _cipher(key).encrypt(nonce, plaintext, associated_data)


def unseal(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """The plaintext `seal(key, ..., associated_data)` sealed; UnsealableError for anything else."""
    from cryptography.exceptions import InvalidTag

    if len(sealed) < NONCE_BYTES + _TAG_BYTES:
        raise UnsealableError("too short to be sealed")
    try:
        return _cipher(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
    except InvalidTag:
        raise UnsealableError("does not open with this key and associated data") from None


# -- signed expiring values (itsdangerous) ---------------------------------------------------


@functools.cache
def _serializer(secret: bytes, purpose: str) -> URLSafeTimedSerializer:
    import itsdangerous

    # HMAC-SHA256 under a key derived by HMAC from the secret and the purpose (the salt), rather
    # than itsdangerous' defaults (SHA-1, concatenation): nothing signed for one purpose passes
    # for another, and the secret itself never keys a signature.
    return itsdangerous.URLSafeTimedSerializer(
        secret, salt=purpose, signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256}
    )


def sign(secret: bytes, purpose: str, value: Any) -> str:
    """`value` (anything JSON holds) signed for `purpose` with the time of signing; URL-safe."""
    return str(_serializer(secret, purpose).dumps(value))


def verify(secret: bytes, purpose: str, signed: str, max_age: timedelta) -> Any:
    """The value `sign(secret, purpose, ...)` signed, if at most `max_age` old.

    BadSignatureError when it was not signed so (or was changed); ExpiredError, holding the
    value, when it is genuine but too old.
    """
    import itsdangerous

    serializer = _serializer(secret, purpose)
    try:
        return serializer.loads(signed, max_age=int(max_age.total_seconds()))
    except itsdangerous.SignatureExpired as expired:
        try:
            value = serializer.load_payload(expired.payload) if expired.payload is not None else None
        except itsdangerous.BadPayload:
            value = None
        raise ExpiredError(value) from None
    except itsdangerous.BadData:
        raise BadSignatureError("not signed with this secret for this purpose") from None
