"""The one private seam into firebase-admin (`common.auth._verify_id_tokens_against`), proven in
process without an emulator: with `CSCX_ID_TOKEN_CERTS_URL` set, ID tokens are checked against
the certificates served there, and only those. firebase-admin is pinned exactly; an upgrade
that moves its token verifier fails here rather than letting tokens through or refusing all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from importlib.metadata import version

import pytest

from common import auth
from common.errors import ApiError, Code
from scripts.stack import ROOT
from tests import tokens
from tests.conftest import Instance

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

PROJECT_ID = "demo-seam"


@pytest.fixture
def key(fresh_instance: Instance) -> Iterator[tokens.SigningKey]:
    """A signing key whose certificate is served where the settings point the verifier."""
    key = tokens.make_signing_key(f"seam-{uuid.uuid4().hex[:8]}")
    server = tokens.CertificateServer(key).start()
    # Without the Auth emulator's variable: it would skip the signature check.
    fresh_instance(GOOGLE_CLOUD_PROJECT=PROJECT_ID, CSCX_ID_TOKEN_CERTS_URL=server.certs_url,
                   FIREBASE_AUTH_EMULATOR_HOST=None)  # fmt: skip
    try:
        yield key
    finally:
        server.stop()


def _bearer(claims: dict[str, object], key: tokens.SigningKey) -> str:
    return f"Bearer {tokens.sign_rs256(claims, key)}"


def test_a_token_signed_by_the_served_certificate_is_accepted(key: tokens.SigningKey) -> None:
    user = auth.authenticate(_bearer(tokens.id_token_claims("alice", PROJECT_ID), key))

    assert user.uid == "alice"


def test_a_token_signed_by_another_key_of_the_same_kid_is_refused(key: tokens.SigningKey) -> None:
    impostor = tokens.make_signing_key(key.kid)

    with pytest.raises(ApiError) as refused:
        auth.authenticate(_bearer(tokens.id_token_claims("alice", PROJECT_ID), impostor))

    assert refused.value.code is Code.UNAUTHENTICATED


def test_an_expired_token_is_refused(key: tokens.SigningKey) -> None:
    claims = tokens.id_token_claims("alice", PROJECT_ID, now=0)  # issued in 1970

    with pytest.raises(ApiError) as refused:
        auth.authenticate(_bearer(claims, key))

    assert refused.value.code is Code.UNAUTHENTICATED


def test_firebase_admin_is_the_version_the_seam_was_written_for() -> None:
    pinned = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
        if "==" in line
    }
    assert pinned["firebase-admin"] == version("firebase-admin") == "7.7.0", (
        "common/auth.py sets firebase-admin's certificate URL on its token verifier: check that "
        "seam against the new version (this file's tests), then update the version here"
    )
