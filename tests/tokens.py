"""Firebase-style ID tokens for the auth tests: signed with a test key, forged, or tampered with.

firebase-admin fetches Google's token certificates as `{"<kid>": "<PEM certificate>"}`; the
`CertificateServer` serves the test key's certificate in that shape on loopback, so a crud
instance pointed at it (CSCX_ID_TOKEN_CERTS_URL) really checks signatures and expiry.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from standins.local_server import JsonHandler, LocalServer, Server

ISSUER_PREFIX = "https://securetoken.google.com/"


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair with its self-signed certificate, known to verifiers by `kid`."""

    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_pem: str


def make_signing_key(kid: str) -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return SigningKey(kid, private_key, pem)


def id_token_claims(uid: str, project_id: str, *, now: int | None = None, **overrides: Any) -> dict[str, Any]:
    """The claims of a Firebase ID token for `uid`, valid for an hour from `now`."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": ISSUER_PREFIX + project_id,
        "aud": project_id,
        "sub": uid,
        "user_id": uid,
        "iat": issued,
        "exp": issued + 3600,
        "auth_time": issued,
        "email": f"{uid}@example.com",
        "email_verified": True,
        "firebase": {"sign_in_provider": "password", "identities": {}},
    }
    claims.update(overrides)
    return claims


def sign_rs256(claims: Mapping[str, Any], key: SigningKey, *, kid: str | None = None, with_kid: bool = True) -> str:
    """A token signed by `key`; `kid` names another key id, `with_kid=False` leaves it out."""
    headers = {"kid": kid or key.kid} if with_kid else None
    return jwt.encode(dict(claims), key.private_key, algorithm="RS256", headers=headers)


def assemble(header: Mapping[str, Any], claims: Mapping[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A compact JWT built by hand, for what PyJWT refuses to produce."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def unsigned(claims: Mapping[str, Any], kid: str | None = None) -> str:
    """An `alg: none` token: the shape the Auth emulator issues, and a classic forgery."""
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    return assemble(header, claims, lambda _: b"")


def hs256_with_public_certificate(claims: Mapping[str, Any], key: SigningKey) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the (public) certificate text."""
    secret = key.certificate_pem.encode()
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    return assemble(header, claims, lambda data: hmac.new(secret, data, hashlib.sha256).digest())


def with_claims(token: str, **changes: Any) -> str:
    """`token` with its payload changed and its header and signature kept as they were."""
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims.update(changes)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def signature_removed(token: str) -> str:
    """`token` as Cloud Run's IAM check passes it on once it has verified it: the signature replaced."""
    return f"{token.rpartition('.')[0]}.SIGNATURE_REMOVED_BY_GOOGLE"


def claims_of(token: str) -> dict[str, Any]:
    """The payload of `token`, unverified."""
    payload: dict[str, Any] = json.loads(_unb64(token.split(".")[1]))
    return payload


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CertificateServer(LocalServer):
    """Serves `{"<kid>": "<PEM certificate>"}` at `/certs` on 127.0.0.1 from a thread; with
    `max_age`, cacheable for that many seconds as Google's certificates are."""

    def __init__(self, *keys: SigningKey, max_age: int | None = None) -> None:
        body = json.dumps({key.kid: key.certificate_pem for key in keys}).encode()
        caching = {"Cache-Control": f"public, max-age={max_age}"} if max_age else None
        self.fetched = 0  # how many times the certificates were asked for
        certificates = self

        class Certificates(JsonHandler):
            def do_GET(self) -> None:
                certificates.fetched += 1
                if self.path != "/certs":
                    self.send_error(404)
                    return
                self.send(200, body, content_type="application/json; charset=UTF-8", headers=caching)

        super().__init__(Server(("127.0.0.1", 0), Certificates), name="certificate-server")

    @property
    def certs_url(self) -> str:
        return f"{self.url}/certs"
