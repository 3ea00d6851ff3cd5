"""Typed settings, read once per instance from the environment.

Every setting is an environment variable; a variable already present always wins, so the
local stack and the tests point the functions at emulators and stand-ins without code
changes. A missing or malformed setting fails the cold start with its name.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from common.errors import ConfigurationError

GOOGLE_ID_TOKEN_CERTS_URL = "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
GOOGLE_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


@dataclass(frozen=True)
class Settings:
    project_id: str
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    max_upload_bytes: int = 10 * 1024 * 1024
    id_token_certs_url: str = GOOGLE_ID_TOKEN_CERTS_URL
    emulators: dict[str, str] = field(default_factory=dict)
    log_level: str = "INFO"
    cursor_key: bytes = b""
    firestore_timeout_seconds: float = 10.0
    tasks_queue: str = ""
    contracts_bucket: str = ""
    # The worker (execute_action): where Cloud Tasks delivers, and whose OIDC token it carries.
    worker_url: str = ""
    tasks_service_account: str = ""
    oidc_certs_url: str = GOOGLE_OIDC_CERTS_URL
    # The models (DESIGN §7, §11): the Anthropic SDK's own settings, Gemini on Vertex AI.
    anthropic_api_key: str = ""
    anthropic_base_url: str = ""
    gemini_base_url: str = ""
    gemini_location: str = "us-central1"
    models: dict[str, tuple[str, ...]] = field(default_factory=dict)  # provider → allowed models, default first
    chat_max_steps: int = 8
    history_token_budget: int = 24_000
    max_output_tokens: int = 4096
    stream_lease_seconds: float = 30.0
    stream_ping_seconds: float = 10.0
    stream_resume_grace_seconds: float = 15.0  # 0: no resume, no part log; a hang-up stops the turn at once
    # Google (DESIGN §5, §6): the OAuth client, where its callback sends the browser, the key of
    # stored tokens, and where the APIs are (the stand-in locally; Google's when empty).
    google_oauth_client_id: str = ""
    google_oauth_client_secret: str = ""
    oauth_redirect_url: str = ""
    web_app_url: str = ""
    token_encryption_key: bytes = b""
    google_api_base: str = ""
    google_oauth_base: str = ""
    daily_email_quota: int = 100
    daily_meeting_quota: int = 50
    tasks_max_attempts: int = 10
    action_expiry_seconds: int = 24 * 3600
    # Bounds on what one user can make the system hold and do (README: resource limits).
    rate_limit_per_minute: int = 600
    max_documents: int = 10_000  # per user and collection (customers, tasks, contracts, sessions)
    delete_batch_limit: int = 2_000  # documents one request deletes before it asks to be retried
    execution_lease_seconds: float = 60.0

    def require(self, *names: str) -> None:
        """Fail the cold start of a function that needs these settings when one is missing."""
        missing = [name for name in names if not _SETTING_VALUES[name](self)]
        if missing:
            raise ConfigurationError(f"{', '.join(missing)} is required by this function")

    @property
    def is_demo_project(self) -> bool:
        return self.project_id.startswith("demo-")


# Settings a function may require at its cold start (`Settings.require`), by their names.
_SETTING_VALUES: dict[str, Callable[[Settings], object]] = {
    "ANTHROPIC_API_KEY": lambda s: s.anthropic_api_key,
    "CSCX_TASKS_QUEUE": lambda s: s.tasks_queue,
    "CSCX_WORKER_URL": lambda s: s.worker_url,
    # Outside demo projects the worker must know whom to accept (the emulator sends no token).
    "CSCX_TASKS_SERVICE_ACCOUNT": lambda s: s.tasks_service_account or s.is_demo_project,
    "CSCX_CONTRACTS_BUCKET": lambda s: s.contracts_bucket,
    "GOOGLE_OAUTH_CLIENT_ID": lambda s: s.google_oauth_client_id,
    "GOOGLE_OAUTH_CLIENT_SECRET": lambda s: s.google_oauth_client_secret,
    "CSCX_OAUTH_REDIRECT_URL": lambda s: s.oauth_redirect_url,
    "CSCX_WEB_APP_URL": lambda s: s.web_app_url,
    "CSCX_TOKEN_ENCRYPTION_KEY": lambda s: s.token_encryption_key,
}

DEFAULT_MODELS = {
    "claude": ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"),
    "gemini": ("gemini-2.5-pro", "gemini-2.5-flash"),
}

N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, minimum: N, maximum: N) -> N:
    """The setting `name` as a number of the default's type, within [minimum, maximum]."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = type(default)(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a {type(default).__name__}, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `env` (the process environment by default)."""
    env = os.environ if env is None else env
    project_id = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or ""
    if not project_id:
        raise ConfigurationError("GOOGLE_CLOUD_PROJECT is required (the Firebase project id)")
    emulators = {name: value for name, value in env.items() if name.endswith("_EMULATOR_HOST") and value}
    if emulators and not project_id.startswith("demo-"):
        # Emulator mode makes firebase-admin skip token signature checks: never in a real project.
        raise ConfigurationError(
            f"{', '.join(sorted(emulators))} set for project {project_id!r}: emulators are "
            "only allowed with a demo-* project"
        )
    if emulators and env.get("K_SERVICE"):
        # Running on Cloud Run / Cloud Functions: never emulators, whatever the project is named.
        raise ConfigurationError(
            f"{', '.join(sorted(emulators))} set on the platform (K_SERVICE={env['K_SERVICE']}): "
            "emulators are only for local runs"
        )
    origins = tuple(o.strip() for o in env.get("CSCX_CORS_ORIGINS", "").split(",") if o.strip())
    if "*" in origins:
        raise ConfigurationError("CSCX_CORS_ORIGINS must list origins, not '*'")
    certs_url = env.get("CSCX_ID_TOKEN_CERTS_URL") or GOOGLE_ID_TOKEN_CERTS_URL
    if certs_url != GOOGLE_ID_TOKEN_CERTS_URL and not project_id.startswith("demo-"):
        raise ConfigurationError("CSCX_ID_TOKEN_CERTS_URL may only be changed in a demo-* project")
    level = env.get("CSCX_LOG_LEVEL", "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigurationError(f"CSCX_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    cursor_key = env.get("CSCX_CURSOR_KEY", "")
    if not cursor_key:
        if not project_id.startswith("demo-"):
            raise ConfigurationError("CSCX_CURSOR_KEY is required (a secret that seals list cursors)")
        cursor_key = f"{project_id}-local-cursor-key"
    elif len(cursor_key) < 16:
        raise ConfigurationError("CSCX_CURSOR_KEY must be at least 16 characters")
    oidc_certs_url = env.get("CSCX_OIDC_CERTS_URL") or GOOGLE_OIDC_CERTS_URL
    if oidc_certs_url != GOOGLE_OIDC_CERTS_URL and not project_id.startswith("demo-"):
        raise ConfigurationError("CSCX_OIDC_CERTS_URL may only be changed in a demo-* project")
    worker_url = env.get("CSCX_WORKER_URL", "").rstrip("/")
    tasks_service_account = env.get("CSCX_TASKS_SERVICE_ACCOUNT", "")
    token_key = _token_key(env, project_id)
    models = {
        provider: _names(env, f"CSCX_{provider.upper()}_MODELS") or defaults
        for provider, defaults in DEFAULT_MODELS.items()
    }
    return Settings(
        project_id=project_id,
        cors_origins=origins,
        max_body_bytes=_number(env, "CSCX_MAX_BODY_BYTES", 1024 * 1024, 1024, 2**30),
        max_upload_bytes=_number(env, "CSCX_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, 1024, 2**30),
        id_token_certs_url=certs_url,
        emulators=emulators,
        log_level=level,
        cursor_key=cursor_key.encode(),
        firestore_timeout_seconds=_number(env, "CSCX_FIRESTORE_TIMEOUT_SECONDS", 10.0, 0.1, 300.0),
        tasks_queue=env.get("CSCX_TASKS_QUEUE", ""),
        contracts_bucket=env.get("CSCX_CONTRACTS_BUCKET", ""),
        worker_url=worker_url,
        tasks_service_account=tasks_service_account,
        oidc_certs_url=oidc_certs_url,
        anthropic_api_key=env.get("ANTHROPIC_API_KEY", ""),
        anthropic_base_url=env.get("ANTHROPIC_BASE_URL", ""),
        gemini_base_url=env.get("CSCX_GEMINI_BASE_URL", ""),
        gemini_location=env.get("CSCX_GEMINI_LOCATION") or "us-central1",
        models=models,
        chat_max_steps=_number(env, "CSCX_CHAT_MAX_STEPS", 8, 1, 50),
        history_token_budget=_number(env, "CSCX_HISTORY_TOKEN_BUDGET", 24_000, 1_000, 1_000_000),
        max_output_tokens=_number(env, "CSCX_MAX_OUTPUT_TOKENS", 4096, 256, 64_000),
        stream_lease_seconds=_number(env, "CSCX_STREAM_LEASE_SECONDS", 30.0, 2.0, 600.0),
        stream_ping_seconds=_number(env, "CSCX_STREAM_PING_SECONDS", 10.0, 0.5, 60.0),
        stream_resume_grace_seconds=_number(env, "CSCX_STREAM_RESUME_GRACE_SECONDS", 15.0, 0.0, 600.0),
        google_oauth_client_id=env.get("GOOGLE_OAUTH_CLIENT_ID", ""),
        google_oauth_client_secret=env.get("GOOGLE_OAUTH_CLIENT_SECRET", ""),
        oauth_redirect_url=env.get("CSCX_OAUTH_REDIRECT_URL", ""),
        web_app_url=env.get("CSCX_WEB_APP_URL", ""),
        token_encryption_key=token_key,
        google_api_base=env.get("CSCX_GOOGLE_API_BASE", "").rstrip("/"),
        google_oauth_base=env.get("CSCX_GOOGLE_OAUTH_BASE", "").rstrip("/"),
        daily_email_quota=_number(env, "CSCX_DAILY_EMAIL_QUOTA", 100, 0, 100_000),
        daily_meeting_quota=_number(env, "CSCX_DAILY_MEETING_QUOTA", 50, 0, 100_000),
        tasks_max_attempts=_number(env, "CSCX_TASKS_MAX_ATTEMPTS", 10, 1, 100),
        action_expiry_seconds=_number(env, "CSCX_ACTION_EXPIRY_SECONDS", 24 * 3600, 1, 30 * 24 * 3600),
        rate_limit_per_minute=_number(env, "CSCX_RATE_LIMIT_PER_MINUTE", 600, 1, 1_000_000),
        max_documents=_number(env, "CSCX_MAX_DOCUMENTS", 10_000, 1, 10_000_000),
        delete_batch_limit=_number(env, "CSCX_DELETE_BATCH_LIMIT", 2_000, 1, 100_000),
        execution_lease_seconds=_number(env, "CSCX_EXECUTION_LEASE_SECONDS", 60.0, 1.0, 3600.0),
    )


def _token_key(env: Mapping[str, str], project_id: str) -> bytes:
    """The AES-256-GCM key of stored Google tokens: 32 bytes, base64 (a fixed one in demo projects)."""
    import base64
    import binascii
    import hashlib

    raw = env.get("CSCX_TOKEN_ENCRYPTION_KEY", "")
    if not raw:
        if project_id.startswith("demo-"):
            return hashlib.sha256(f"{project_id}-local-token-key".encode()).digest()
        return b""  # functions that store tokens require it at their cold start
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError("CSCX_TOKEN_ENCRYPTION_KEY must be 32 bytes in base64") from None
    if len(key) != 32:
        raise ConfigurationError("CSCX_TOKEN_ENCRYPTION_KEY must be 32 bytes in base64")
    return key


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list setting; its first entry is the default."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


@functools.cache
def get_settings() -> Settings:
    """The instance's settings, built on first use (at cold start)."""
    return load_settings()
