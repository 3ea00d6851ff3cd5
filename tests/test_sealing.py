"""common.sealing in-process (no emulator): what opens, what is refused, and the formats kept."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common import sealing

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SECRET = b"a-secret-of-at-least-16-bytes"


def test_base64url_has_no_padding_and_takes_it_back_with_or_without() -> None:
    for data in (b"", b"a", b"ab", b"abc", bytes(range(256))):
        text = sealing.b64encode(data)
        assert "=" not in text
        assert "+" not in text
        assert "/" not in text
        assert sealing.b64decode(text) == data
        assert sealing.b64decode(base64.urlsafe_b64encode(data).decode()) == data
    for bad in ("é", "a", "ab$c"):
        with pytest.raises(ValueError, match="base64url"):
            sealing.b64decode(bad)


def test_a_sealed_value_opens_only_with_its_key_and_associated_data_untouched() -> None:
    sealed = sealing.seal(KEY, b"ya29.secret", b"user-a/access_token")

    assert sealing.unseal(KEY, sealed, b"user-a/access_token") == b"ya29.secret"
    assert b"ya29.secret" not in sealed
    assert sealing.seal(KEY, b"ya29.secret", b"user-a/access_token") != sealed  # a fresh nonce each time
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for key, value, associated in [
        (OTHER_KEY, sealed, b"user-a/access_token"),
        (KEY, sealed, b"user-b/access_token"),
        (KEY, tampered, b"user-a/access_token"),
        (KEY, sealed[:20], b"user-a/access_token"),
        (KEY, b"", b"user-a/access_token"),
    ]:
        with pytest.raises(sealing.UnsealableError):
            sealing.unseal(key, value, associated)


def test_sealed_values_keep_the_layout_stored_cursors_and_tokens_were_written_in() -> None:
    """nonce (12 bytes) then AES-GCM's ciphertext and tag: what the stand-alone code wrote before."""
    nonce, associated = b"\x01" * 12, b"query"
    written_before = nonce + AESGCM(KEY).encrypt(nonce, b"plain", associated)
    assert sealing.unseal(KEY, written_before, associated) == b"plain"
    # The cursor key was SHA-256("cscx/list-cursor/v1", NUL, CSCX_CURSOR_KEY).
    assert (
        sealing.derive_key(SECRET, "cscx/list-cursor/v1") == hashlib.sha256(b"cscx/list-cursor/v1\0" + SECRET).digest()
    )


def test_a_signed_value_is_read_back_within_its_age_and_only_for_its_purpose() -> None:
    signed = sealing.sign(SECRET, "purpose/a", {"u": "uid-1", "n": "nonce"})

    assert sealing.verify(SECRET, "purpose/a", signed, timedelta(minutes=10)) == {"u": "uid-1", "n": "nonce"}
    payload = json.loads(sealing.b64decode(signed.split(".")[0]))
    assert payload == {"u": "uid-1", "n": "nonce"}  # readable: signed, not sealed
    for secret, purpose, value in [
        (b"another-secret-of-16-bytes", "purpose/a", signed),
        (SECRET, "purpose/b", signed),
        (
            SECRET,
            "purpose/a",
            sealing.b64encode(json.dumps({"u": "uid-2", "n": "nonce"}).encode()) + signed[signed.index(".") :],
        ),
        (SECRET, "purpose/a", signed[:-2]),
        (SECRET, "purpose/a", ""),
    ]:
        with pytest.raises(sealing.BadSignatureError):
            sealing.verify(secret, purpose, value, timedelta(minutes=10))


def test_a_signed_value_past_its_age_is_expired_and_says_what_it_held() -> None:
    signed = sealing.sign(SECRET, "purpose/a", {"n": "nonce"})
    with pytest.raises(sealing.ExpiredError) as expired:
        sealing.verify(SECRET, "purpose/a", signed, timedelta(seconds=-1))
    assert expired.value.value == {"n": "nonce"}
