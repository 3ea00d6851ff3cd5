"""Who is calling, decided per route by an `Authenticator`.

Users prove themselves with a Firebase ID token (verified by firebase-admin); the Cloud Tasks
worker's caller with a Google-signed OIDC token for the tasks service account; health checks
and the OAuth callback need nothing. Every failure to prove identity is the same 401 to the
client (the reason goes to the log); only an outage of the verification backends is a 503.
There is no fallback identity.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from common.errors import ApiError, Code, ConfigurationError
from common.instance import on_reset, per_instance
from common.log import get_logger
from common.settings import GOOGLE_ID_TOKEN_CERTS_URL, get_settings

if TYPE_CHECKING:
    import firebase_admin
    import flask
    from google.auth.transport.requests import Request as GoogleRequest

logger = get_logger(__name__)


@dataclass(frozen=True)
class User:
    uid: str
    email: str | None
    display_name: str | None


@per_instance
def firebase_app() -> firebase_admin.App:
    """The instance's firebase-admin app, created once (`instance.reset` forgets it too)."""
    import firebase_admin
    from firebase_admin import credentials

    settings = get_settings()
    credential: credentials.Base | None = None
    if settings.is_demo_project:
        # Demo projects never reach Google: no Application Default Credentials are needed.
        credential = _anonymous_credential()
    app = firebase_admin.initialize_app(credential, options={"projectId": settings.project_id}, name="cscx")
    if settings.id_token_certs_url != GOOGLE_ID_TOKEN_CERTS_URL:
        _verify_id_tokens_against(app, settings.id_token_certs_url)
    return app


def _forget_firebase_app() -> None:
    """firebase_admin keeps its apps by name: delete ours, so the next `firebase_app()` is built
    from the settings as they are then (nothing to do if firebase-admin was never loaded)."""
    import sys

    if "firebase_admin" not in sys.modules:
        return
    import firebase_admin

    with contextlib.suppress(ValueError):  # never built
        firebase_admin.delete_app(firebase_admin.get_app("cscx"))


on_reset(_forget_firebase_app)


def _verify_id_tokens_against(app: firebase_admin.App, certs_url: str) -> None:
    """Check the app's ID tokens against the certificates at `certs_url`: tests serve their own to
    prove the signature and expiry checks (settings allow it only in demo projects).

    firebase-admin has no public option for this URL (its verifier calls google-auth with a
    constant), so this sets it on the verifier as firebase-admin 7.7.0 builds it; the version is
    pinned exactly (requirements.txt and both locks), and tests/test_id_token_certificates.py
    proves, without an emulator, that tokens are then checked against these certificates and
    no others: an upgrade that moves the seam fails there, not quietly.
    """
    from firebase_admin import auth

    verifier = auth._get_client(app)._token_verifier.id_token_verifier
    if not isinstance(getattr(verifier, "cert_url", None), str):
        raise ConfigurationError(
            "this firebase-admin checks ID tokens differently: CSCX_ID_TOKEN_CERTS_URL cannot apply"
        )
    verifier.cert_url = certs_url


def _anonymous_credential() -> Any:
    """A firebase-admin credential for demo projects, where every backend is an emulator."""
    from firebase_admin import credentials
    from google.auth.credentials import AnonymousCredentials

    class AnonymousCredential(credentials.Base):  # type: ignore[misc]
        def get_credential(self) -> Any:
            return AnonymousCredentials()  # type: ignore[no-untyped-call]

    return AnonymousCredential()


def _unauthenticated(reason: str, needed: str = "A valid Firebase ID token is required.") -> ApiError:
    logger.info("authentication failed", extra={"fields": {"reason": reason}})
    return ApiError(Code.UNAUTHENTICATED, needed)


TASKS_TOKEN_NEEDED = "Only Cloud Tasks, with an OIDC token of the tasks service account, may call this."


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise _unauthenticated("missing or malformed Authorization header")
    return token


def authenticate(authorization: str | None, *, check_revoked: bool = False) -> User:
    """The user the request's bearer token proves, or a 401.

    `check_revoked` also asks the Auth backend whether the user was disabled or their
    tokens revoked since this one was issued: a network call, made where DESIGN asks for it.
    """
    from firebase_admin import auth, exceptions

    token = bearer_token(authorization)
    try:
        claims = auth.verify_id_token(token, app=firebase_app(), check_revoked=check_revoked)
    except (auth.InvalidIdTokenError, auth.UserDisabledError, auth.UserNotFoundError, ValueError) as error:
        # The class only: the verifier's messages can quote the credential itself.
        raise _unauthenticated(type(error).__name__) from None
    except (auth.CertificateFetchError, exceptions.FirebaseError) as error:
        logger.warning("token verification unavailable", extra={"fields": {"error": type(error).__name__}})
        raise ApiError(Code.UNAVAILABLE, "Sign-in could not be verified right now; try again.") from None
    uid = claims.get("uid")
    if not isinstance(uid, str) or not uid:
        raise _unauthenticated("token without uid")
    email = claims.get("email")
    name = claims.get("name")
    return User(
        uid=uid,
        email=email if isinstance(email, str) else None,
        display_name=name if isinstance(name, str) else None,
    )


# -- what a route asks of its caller ------------------------------------------------------


class Authenticator(Protocol):
    """How a route establishes who calls it: a `User`, or None for callers that are not users."""

    @property
    def check_revoked(self) -> bool: ...

    def authenticate(self, request: flask.Request) -> User | None: ...


@dataclass(frozen=True)
class FirebaseUser:
    """A signed-in CSM: a Firebase ID token; `check_revoked` also asks whether it was revoked."""

    check_revoked: bool = False

    def authenticate(self, request: flask.Request) -> User:
        return authenticate(request.headers.get("Authorization"), check_revoked=self.check_revoked)


@dataclass(frozen=True)
class Anyone:
    """No credentials: health checks, and the OAuth callback whose `state` is its proof."""

    check_revoked: bool = False

    def authenticate(self, request: flask.Request) -> None:
        return None


@dataclass(frozen=True)
class CloudTasks:
    """Cloud Tasks delivering a task (or Cloud Scheduler calling the worker's sweep, as the same
    account): an OIDC token Google signed for the tasks service account, addressed to the
    worker's URL. The Cloud Tasks emulator sends no token, so a demo project without a configured
    service account accepts unauthenticated deliveries (and only then)."""

    check_revoked: bool = False

    def authenticate(self, request: flask.Request) -> None:
        settings = get_settings()
        if not settings.tasks_service_account:
            if settings.is_demo_project:
                return None
            # load_settings refuses this outside demo projects; never let a gap open the worker.
            raise _unauthenticated("no tasks service account configured", TASKS_TOKEN_NEEDED)
        verify_cloud_tasks_token(request.headers.get("Authorization"))
        return None


GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
# What Cloud Run's IAM check leaves in place of the signature of a Google-signed token it verified.
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"


def verify_cloud_tasks_token(authorization: str | None) -> dict[str, Any]:
    """The claims of a Google-signed OIDC token from the tasks service account for the worker, or a 401.

    A token with its signature is verified in full. Behind Cloud Run's IAM invoker check, the token
    arrives with the signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE` once Cloud Run verified
    it: such a token is taken on its claims (audience, issuer, account, expiry), and only on a
    Cloud Run service deployed without a public invoker (`K_SERVICE` and `CSCX_BEHIND_IAM`).
    Anywhere else nothing has checked its signature, so it is refused.
    """
    from google.auth import exceptions

    settings = get_settings()
    try:
        token = bearer_token(authorization)
    except ApiError:
        raise _unauthenticated("missing or malformed Authorization header", TASKS_TOKEN_NEEDED) from None
    try:
        if token.rpartition(".")[2] == SIGNATURE_REMOVED:
            claims = _claims_verified_by_cloud_run(token)
        else:
            from google.oauth2 import id_token

            claims = dict(
                id_token.verify_token(
                    token, _google_request(), audience=settings.worker_url, certs_url=settings.oidc_certs_url
                )
            )
    except exceptions.TransportError:
        logger.warning("OIDC certificates unavailable")
        raise ApiError(Code.UNAVAILABLE, "The caller could not be verified right now; try again.") from None
    except (ValueError, exceptions.GoogleAuthError) as error:
        raise _unauthenticated(f"OIDC token refused: {type(error).__name__}", TASKS_TOKEN_NEEDED) from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise _unauthenticated("OIDC token from another issuer", TASKS_TOKEN_NEEDED)
    if claims.get("email") != settings.tasks_service_account or claims.get("email_verified") is not True:
        raise _unauthenticated("OIDC token of another service account", TASKS_TOKEN_NEEDED)
    return claims


def _claims_verified_by_cloud_run(token: str) -> dict[str, Any]:
    """The claims of a token whose signature Cloud Run's IAM check verified and removed: its audience
    and lifetime checked here as `id_token.verify_token` checks them; its issuer and account by the caller."""
    import time

    from google.auth import jwt

    settings = get_settings()
    if not (settings.cloud_run_service and settings.behind_iam):
        # Nothing verified this token's signature: fail closed.
        raise _unauthenticated("OIDC token without its signature outside Cloud Run's IAM check", TASKS_TOKEN_NEEDED)
    header = jwt.decode_header(token)  # type: ignore[no-untyped-call]
    claims = dict(jwt.decode(token, verify=False))  # type: ignore[no-untyped-call]
    if header.get("alg") != "RS256":
        raise _unauthenticated("OIDC token of another algorithm", TASKS_TOKEN_NEEDED)
    if claims.get("aud") != settings.worker_url:
        raise _unauthenticated("OIDC token for another audience", TASKS_TOKEN_NEEDED)
    issued, expires, now = claims.get("iat"), claims.get("exp"), time.time()
    if not isinstance(issued, int | float) or not isinstance(expires, int | float) or issued > now or expires < now:
        raise _unauthenticated("OIDC token outside its lifetime", TASKS_TOKEN_NEEDED)
    return claims


@per_instance
def _google_request() -> GoogleRequest:
    """A google-auth transport that keeps Google's certificates as their headers allow."""
    import requests
    from google.auth.transport.requests import Request

    return cast("GoogleRequest", _CertificatesKept(Request(session=requests.Session())))


class _CertificatesKept:
    """A google-auth transport answering a GET from memory while its last answer's `max-age` runs.

    (cachecontrol kept them as serialized HTTP answers, read back and parsed on every delivery:
    a tenth of the worker's CPU for a delivery, issue 19.) An answer without a max-age, or with
    no-store or no-cache, is not kept."""

    def __init__(self, request: GoogleRequest) -> None:
        self._request = request
        self._kept: dict[str, tuple[float, Any]] = {}  # url: (until, the answer), monotonic time

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        import re
        import time

        kept = self._kept.get(url)
        if method == "GET" and kept is not None and kept[0] > time.monotonic():
            return kept[1]
        response = self._request(url, method=method, **kwargs)
        caching = str(response.headers.get("Cache-Control") or "")
        max_age = re.search(r"(?:^|[,\s])max-age=([0-9]{1,9})\b", caching)
        if method == "GET" and response.status == 200 and max_age and not re.search(r"no-store|no-cache", caching):
            self._kept[url] = (time.monotonic() + int(max_age.group(1)), response)
        return response
