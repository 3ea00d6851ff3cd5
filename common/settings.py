"""Typed settings, read once per instance from the environment.

Each setting is declared once, below: its environment variable, default, bounds and meaning
(the README's table is generated from these declarations: `python -m scripts.settings_table`).
A variable already present always wins, so the local stack and the tests point the functions at
emulators and stand-ins without code changes; an empty one counts as unset. A missing or
malformed setting fails the cold start with its name.

The declarations are a pydantic model whose fields name their variables (aliases), rather than
pydantic-settings' BaseSettings: the same declarations, without the ~40 ms of CPU its import
(asyncio, its cloud sources) would add to every cold start.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from common.errors import ConfigurationError
from common.instance import per_instance

GOOGLE_ID_TOKEN_CERTS_URL = "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
GOOGLE_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
EMULATOR_HOSTS = "*_EMULATOR_HOST"  # every SDK's emulator variable, whatever the emulator


def is_demo(project_id: str) -> bool:
    """A demo-* project is a local one: only there are emulators, other certificate URLs and
    fixed local keys allowed (Firebase's own convention for projects that never reach Google)."""
    return project_id.startswith("demo-")


def _comma_separated(value: object) -> object:
    return tuple(item.strip() for item in value.split(",") if item.strip()) if isinstance(value, str) else value


def _true_or_false(value: object) -> object:
    """`true` or `false` and nothing else (in any case): a typo must not read as either."""
    if isinstance(value, str):
        if value.strip().lower() not in {"true", "false"}:
            raise ValueError("must be true or false")
        return value.strip().lower() == "true"
    return value


# A comma-separated list.
Names = Annotated[tuple[str, ...], BeforeValidator(_comma_separated)]
# A base URL that paths are appended to.
BaseUrl = Annotated[str, AfterValidator(lambda url: url.rstrip("/"))]


def setting(variable: str | AliasChoices, default: Any, meaning: str, **bounds: Any) -> Any:
    """One setting: the environment variable it comes from, its default and what it means."""
    return Field(default, validation_alias=variable, description=meaning, **bounds)


class Settings(BaseModel):
    """Everything a function reads from its environment, validated at cold start."""

    # Defaults are validated too: each is held to its own bounds, and a key's default may depend on the project.
    model_config = ConfigDict(frozen=True, validate_default=True)

    # The project comes first: the rules of the settings after it depend on it.
    project_id: str = setting(
        AliasChoices("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"),
        ...,
        "the Firebase/GCP project id; a `demo-*` project is a local one",
    )
    emulators: dict[str, str] = setting(
        EMULATOR_HOSTS,
        {},
        "emulator addresses (the SDKs' own variables); refused unless the project is `demo-*`, since "
        "emulator mode skips token signature checks",
    )
    cloud_run_service: str = setting(
        "K_SERVICE", "", "set by Cloud Run itself: wherever it is set, emulators are refused, whatever the project"
    )
    cors_origins: Names = setting(
        "CSCX_CORS_ORIGINS", (), "comma-separated browser origins allowed to call the API (`*` is refused)"
    )
    max_body_bytes: int = setting(
        "CSCX_MAX_BODY_BYTES",
        1024 * 1024,
        "largest JSON body, in bytes; larger is 413 before parsing",
        ge=1024,
        le=2**30,
    )
    max_upload_bytes: int = setting(
        "CSCX_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, "largest contract upload, in bytes", ge=1024, le=2**30
    )
    id_token_certs_url: str = setting(
        "CSCX_ID_TOKEN_CERTS_URL",
        GOOGLE_ID_TOKEN_CERTS_URL,
        "where ID-token signing certificates are fetched; only changeable in `demo-*` projects (tests serve their own)",
    )
    oidc_certs_url: str = setting(
        "CSCX_OIDC_CERTS_URL",
        GOOGLE_OIDC_CERTS_URL,
        "where Google's OIDC signing certificates are fetched; only changeable in `demo-*` projects (tests serve "
        "their own)",
    )
    cursor_key: bytes = setting(
        "CSCX_CURSOR_KEY",
        b"",
        "secret (≥ 16 characters) that seals list cursors (AES-GCM); required outside `demo-*` projects, which "
        "get a fixed local key",
    )
    firestore_timeout_seconds: float = setting(
        "CSCX_FIRESTORE_TIMEOUT_SECONDS",
        10.0,
        "how long one Firestore call may take, retries included, before the request is a 503",
        ge=0.1,
        le=300.0,
    )
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(str.upper)] = setting(
        "CSCX_LOG_LEVEL", "INFO", "the least severe log lines written"
    )
    tasks_queue: str = setting("CSCX_TASKS_QUEUE", "", "the Cloud Tasks queue of approved actions")
    contracts_bucket: str = setting("CSCX_CONTRACTS_BUCKET", "", "the Cloud Storage bucket of contract files")
    # The worker (execute_action): where Cloud Tasks delivers, and whose OIDC token it carries.
    worker_url: BaseUrl = setting(
        "CSCX_WORKER_URL",
        "",
        "the worker's URL (`execute_action`, without a path): Cloud Tasks delivers to its `/execute` and "
        "`/expire`, and it is the audience of the OIDC token it carries; required outside `demo-*` projects",
    )
    tasks_service_account: str = setting(
        "CSCX_TASKS_SERVICE_ACCOUNT",
        "",
        "the service account whose OIDC token Cloud Tasks sends the worker (and the only caller it accepts); "
        "required outside `demo-*` projects. Unset in a `demo-*` project, the worker accepts the Cloud Tasks "
        "emulator's unsigned deliveries",
    )
    behind_iam: Annotated[bool, BeforeValidator(_true_or_false)] = setting(
        "CSCX_BEHIND_IAM",
        False,
        "`true` on a deployed function none of whose invokers is public (terraform sets it): only there, on "
        "Cloud Run (`K_SERVICE`), is a Cloud Tasks token whose signature Cloud Run removed taken on its claims",
    )
    # The models (DESIGN §7, §11): the Anthropic SDK's own settings, Gemini on Vertex AI.
    anthropic_api_key: str = setting(
        "ANTHROPIC_API_KEY",
        "",
        "Claude's API key (the SDK's own setting); `chat_stream` refuses to start without one. Without one in the "
        "environment, `make run` and the tests use the local model stand-in",
    )
    anthropic_base_url: str = setting(
        "ANTHROPIC_BASE_URL", "", "Claude's endpoint, if not Anthropic's (the SDK's own setting)"
    )
    gemini_base_url: str = setting("CSCX_GEMINI_BASE_URL", "", "Gemini's endpoint, if not Vertex AI's")
    gemini_location: str = setting("CSCX_GEMINI_LOCATION", "us-central1", "the Vertex AI region of Gemini")
    claude_models: Names = setting(
        "CSCX_CLAUDE_MODELS",
        ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"),
        "the Claude models a request may name, comma-separated, the first the default",
        min_length=1,
    )
    gemini_models: Names = setting(
        "CSCX_GEMINI_MODELS",
        ("gemini-2.5-pro", "gemini-2.5-flash"),
        "the Gemini models a request may name, comma-separated, the first the default",
        min_length=1,
    )
    chat_max_steps: int = setting(
        "CSCX_CHAT_MAX_STEPS",
        8,
        "model calls in one turn (model → tools → model) before it ends with `finish: length`",
        ge=1,
        le=50,
    )
    history_token_budget: int = setting(
        "CSCX_HISTORY_TOKEN_BUDGET",
        24_000,
        "how much of a session's earlier messages the model gets (estimated at 4 characters a token)",
        ge=1_000,
        le=1_000_000,
    )
    max_output_tokens: int = setting(
        "CSCX_MAX_OUTPUT_TOKENS", 4096, "the most one model call may write", ge=256, le=64_000
    )
    daily_token_budget: int = setting(
        "CSCX_DAILY_TOKEN_BUDGET",
        30_000_000,
        "model tokens (input and output, as the providers report them) each user may spend per UTC day, chat and "
        "contracts together; spent, a request that would call a model is `429` with `Retry-After` (README: model "
        "spend)",
        ge=0,
        le=10_000_000_000,
    )
    contract_model_chars: int = setting(
        "CSCX_CONTRACT_MODEL_CHARS",
        400_000,
        "the most characters of one contract's text the model reads, the pages likeliest to hold its terms first "
        "(README: model spend)",
        ge=1_000,
        le=2_000_000,
    )
    stream_lease_seconds: float = setting(
        "CSCX_STREAM_LEASE_SECONDS",
        30.0,
        "how long a stream holds its session without renewing (it renews every third of it)",
        ge=2.0,
        le=600.0,
    )
    stream_resume_grace_seconds: float = setting(
        "CSCX_STREAM_RESUME_GRACE_SECONDS",
        15.0,
        "how long a turn whose streams all lost their client goes on, waiting for a resume (and how long an ended "
        "turn whose end reached no one stays resumable); 0 switches resuming off",
        ge=0.0,
        le=600.0,
    )
    stream_ping_seconds: float = setting(
        "CSCX_STREAM_PING_SECONDS", 10.0, "how often `: ping` goes out while the model is silent", ge=0.5, le=60.0
    )
    # Google (DESIGN §5, §6): the OAuth client, where its callback sends the browser, the key of
    # stored tokens, and where the APIs are (the stand-in locally; Google's when empty).
    google_oauth_client_id: str = setting(
        "GOOGLE_OAUTH_CLIENT_ID", "", "the OAuth client of the Google connection (crud, the worker and chat need it)"
    )
    google_oauth_client_secret: str = setting("GOOGLE_OAUTH_CLIENT_SECRET", "", "that OAuth client's secret")
    oauth_redirect_url: str = setting(
        "CSCX_OAUTH_REDIRECT_URL", "", "crud's `/integrations/google/callback`, as registered with the OAuth client"
    )
    web_app_url: str = setting("CSCX_WEB_APP_URL", "", "where the OAuth callback sends the browser back")
    token_encryption_key: bytes = setting(
        "CSCX_TOKEN_ENCRYPTION_KEY",
        b"",
        "AES-256 key of the stored Google tokens, 32 bytes in base64; required outside `demo-*` projects, which "
        "get a fixed local key",
    )
    google_api_base: BaseUrl = setting("CSCX_GOOGLE_API_BASE", "", "Gmail's and Calendar's endpoint, if not Google's")
    google_oauth_base: BaseUrl = setting("CSCX_GOOGLE_OAUTH_BASE", "", "the OAuth endpoints, if not Google's")
    daily_email_quota: int = setting(
        "CSCX_DAILY_EMAIL_QUOTA", 100, "e-mails sent per user and UTC day", ge=0, le=100_000
    )
    daily_meeting_quota: int = setting(
        "CSCX_DAILY_MEETING_QUOTA", 50, "meetings booked per user and UTC day", ge=0, le=100_000
    )
    tasks_max_attempts: int = setting(
        "CSCX_TASKS_MAX_ATTEMPTS", 10, "the attempt on which a transient failure fails the action", ge=1, le=100
    )
    action_expiry_seconds: int = setting(
        "CSCX_ACTION_EXPIRY_SECONDS", 24 * 3600, "how long a proposal waits for a decision", ge=1, le=30 * 24 * 3600
    )
    # Bounds on what one user can make the system hold and do (README: resource limits).
    rate_limit_per_minute: int = setting(
        "CSCX_RATE_LIMIT_PER_MINUTE",
        600,
        "requests one user may make of one instance a minute (bursts of a tenth of it); beyond, `429` with "
        "`Retry-After`",
        ge=1,
        le=1_000_000,
    )
    max_documents: int = setting(
        "CSCX_MAX_DOCUMENTS",
        10_000,
        "customers, tasks, contracts and chat sessions each user may keep, per collection; beyond, `429`",
        ge=1,
        le=10_000_000,
    )
    delete_batch_limit: int = setting(
        "CSCX_DELETE_BATCH_LIMIT",
        2_000,
        "documents of one collection one delete request removes (a cascade, a session's messages) before it "
        "answers `409` asking to be retried",
        ge=1,
        le=100_000,
    )
    execution_lease_seconds: float = setting(
        "CSCX_EXECUTION_LEASE_SECONDS",
        60.0,
        "how long the worker holds an action it is carrying out",
        ge=1.0,
        le=3600.0,
    )
    sweep_limit: int = setting(
        "CSCX_SWEEP_LIMIT",
        100,
        "actions of each kind one call of the worker's /sweep handles, across all users; the rest is the next call's",
        ge=1,
        le=1000,
    )
    # Reading a contract's text (DESIGN §8): the reader process's memory and time.
    parse_memory_mb: int = setting(
        "CSCX_PARSE_MEMORY_MB",
        512,
        "the memory (address space, in MiB) of the process that reads a contract's text; beyond it the upload is 422",
        ge=128,
        le=65_536,
    )
    parse_seconds: int = setting(
        "CSCX_PARSE_SECONDS",
        60,
        "how long reading a contract's text may take before the process is killed and the upload is 422",
        ge=1,
        le=3_600,
    )

    @property
    def is_demo_project(self) -> bool:
        return is_demo(self.project_id)

    @property
    def models(self) -> dict[str, tuple[str, ...]]:
        """Provider → the models a request may name, the default first."""
        return {"claude": self.claude_models, "gemini": self.gemini_models}

    def require(self, *names: str) -> None:
        """Fail the cold start of a function that needs these settings when one is missing."""
        missing = [name for name in names if not self._has(name)]
        if missing:
            raise ConfigurationError(f"{', '.join(missing)} is required by this function")

    def _has(self, variable: str) -> bool:
        if variable == "CSCX_TASKS_SERVICE_ACCOUNT" and self.is_demo_project:
            return True  # the Cloud Tasks emulator sends no token: there is no one to name
        return bool(getattr(self, FIELDS[variable]))

    # -- the rules between settings (each validator sees the settings declared before it) -------

    @field_validator("emulators")
    @classmethod
    def _emulators_only_in_demo(cls, emulators: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if emulators and not is_demo(info.data.get("project_id", "")):
            # Emulator mode makes firebase-admin skip token signature checks: never in a real project.
            raise ValueError(f"({', '.join(sorted(emulators))}) are only allowed with a demo-* project")
        return emulators

    @field_validator("cloud_run_service")
    @classmethod
    def _no_emulators_deployed(cls, service: str, info: ValidationInfo) -> str:
        emulators = info.data.get("emulators")
        if service and emulators:
            raise ValueError(f"is {service!r}: the emulators ({', '.join(sorted(emulators))}) are only for local runs")
        return service

    @field_validator("cors_origins")
    @classmethod
    def _origins_listed(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        if "*" in origins:
            raise ValueError("must list origins, not '*'")
        return origins

    @field_validator("id_token_certs_url", "oidc_certs_url")
    @classmethod
    def _certificates_changed_only_in_demo(cls, url: str, info: ValidationInfo) -> str:
        googles = cls.model_fields[str(info.field_name)].default
        if url != googles and not is_demo(info.data.get("project_id", "")):
            raise ValueError("may only be changed in a demo-* project")
        return url

    @field_validator("cursor_key", mode="before")
    @classmethod
    def _cursor_key(cls, value: str | bytes, info: ValidationInfo) -> bytes:
        project_id = info.data.get("project_id", "")
        if not value:
            if not is_demo(project_id):
                raise ValueError("is required outside demo-* projects (a secret that seals list cursors)")
            return f"{project_id}-local-cursor-key".encode()
        if len(value) < 16:
            raise ValueError("must be at least 16 characters")
        return value.encode() if isinstance(value, str) else value

    @field_validator("token_encryption_key", mode="before")
    @classmethod
    def _token_key(cls, value: str | bytes, info: ValidationInfo) -> bytes:
        project_id = info.data.get("project_id", "")
        if not value:
            if is_demo(project_id):
                return hashlib.sha256(f"{project_id}-local-token-key".encode()).digest()
            return b""  # functions that store tokens require it at their cold start
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ValueError("must be 32 bytes in base64")
        return key


# Each setting's environment variables (the first is its name), and the setting of each variable.
def _variables(alias: object) -> tuple[str, ...]:
    return tuple(map(str, alias.choices)) if isinstance(alias, AliasChoices) else (str(alias),)


VARIABLES = {name: _variables(field.validation_alias) for name, field in Settings.model_fields.items()}
FIELDS = {variable: name for name, variables in VARIABLES.items() for variable in variables}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `env` (the process environment by default); an empty variable is unset."""
    environ = {name: value for name, value in (os.environ if env is None else env).items() if value}
    values: dict[str, object] = {name: value for name, value in environ.items() if name in FIELDS}
    values[EMULATOR_HOSTS] = {
        name: value for name, value in environ.items() if fnmatch.fnmatchcase(name, EMULATOR_HOSTS)
    }
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise ConfigurationError("; ".join(_refusal(detail) for detail in error.errors())) from None


def _refusal(error: ErrorDetails) -> str:
    """What is wrong with one setting, naming its variable."""
    where = str(error["loc"][0]) if error["loc"] else ""
    name = VARIABLES.get(where, (where,))[0]  # a default's error names the field
    if error["type"] == "missing":
        return f"{name} is required"
    if error["type"] == "value_error":  # ours, worded to follow the name
        return f"{name} {error['ctx']['error']}"
    return f"{name}: {error['msg']}, got {error['input']!r}"


@per_instance
def get_settings() -> Settings:
    """The instance's settings, built on first use (at cold start)."""
    return load_settings()
