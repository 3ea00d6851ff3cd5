"""Settings as declared: the README's table is theirs, each is read from the environment it is
given, and a test gets a fresh instance (no emulator; the refusals are in test_platform.py)."""

from __future__ import annotations

import pytest

from common import limits, resources
from common.errors import ApiError, ConfigurationError
from common.settings import VARIABLES, Settings, get_settings, load_settings
from scripts import settings_table
from tests.conftest import Instance

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

DEMO = {"GOOGLE_CLOUD_PROJECT": "demo-cscx"}


def test_the_readme_table_is_generated_from_the_declarations() -> None:
    readme = settings_table.in_readme(settings_table.README.read_text(encoding="utf-8"))
    assert readme == settings_table.table(), "run: .venv/bin/python -m scripts.settings_table --write"


def test_every_setting_has_its_own_variables() -> None:
    variables = [variable for names in VARIABLES.values() for variable in names]
    assert len(variables) == len(set(variables))
    assert VARIABLES.keys() == Settings.model_fields.keys()


def test_the_defaults_are_those_declared() -> None:
    settings = load_settings(DEMO)
    for name, field in Settings.model_fields.items():
        if name not in {"project_id", "cursor_key", "token_encryption_key"}:  # required; derived in demo-*
            assert getattr(settings, name) == field.default, name


def test_settings_come_from_the_given_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSCX_MAX_DOCUMENTS", "5")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    given = load_settings({**DEMO, "GCLOUD_PROJECT": "demo-other"})
    assert (given.max_documents, given.emulators, given.project_id) == (10_000, {}, "demo-cscx")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-cscx")
    assert load_settings().max_documents == 5  # the process's environment, by default


def test_values_are_parsed_and_an_empty_variable_is_unset() -> None:
    settings = load_settings(
        {
            "GCLOUD_PROJECT": "demo-cscx",
            "CSCX_CORS_ORIGINS": " https://a.example , https://b.example,",
            "CSCX_CLAUDE_MODELS": "claude-x,claude-y",
            "CSCX_WORKER_URL": "https://worker.example/",
            "CSCX_LOG_LEVEL": "debug",
            "CSCX_STREAM_PING_SECONDS": "2.5",
            "CSCX_MAX_OUTPUT_TOKENS": "",
            "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9023",
            "PUBSUB_EMULATOR_HOST": "",
        }
    )
    assert settings.project_id == "demo-cscx"
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.models["claude"] == ("claude-x", "claude-y")
    assert settings.models["gemini"] == Settings.model_fields["gemini_models"].default
    assert (settings.worker_url, settings.log_level, settings.stream_ping_seconds) == (
        "https://worker.example",
        "DEBUG",
        2.5,
    )
    assert settings.max_output_tokens == 4096
    assert settings.emulators == {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9023"}


def test_demo_projects_get_fixed_local_keys_and_real_ones_need_theirs() -> None:
    demo = load_settings(DEMO)
    assert demo.is_demo_project
    assert demo.cursor_key == load_settings(DEMO).cursor_key != b""
    assert len(demo.token_encryption_key) == 32
    real = load_settings({"GOOGLE_CLOUD_PROJECT": "cscx-prod", "CSCX_CURSOR_KEY": "a-real-secret-of-32-characters-x"})
    assert not real.is_demo_project
    assert real.token_encryption_key == b""
    with pytest.raises(ConfigurationError, match="CSCX_TOKEN_ENCRYPTION_KEY is required by this function"):
        real.require("CSCX_TOKEN_ENCRYPTION_KEY")


def test_settings_are_frozen() -> None:
    settings = load_settings(DEMO)
    with pytest.raises(ValueError, match="frozen"):
        settings.max_documents = 1


def test_a_fresh_instance_rebuilds_its_settings_and_forgets_what_it_gathered(fresh_instance: Instance) -> None:
    fresh_instance(**DEMO, CSCX_RATE_LIMIT_PER_MINUTE="60", CSCX_MAX_DOCUMENTS="7")
    assert get_settings().max_documents == 7
    assert get_settings() is get_settings()  # once per instance
    resources._profiles_seen.add("uid-a")
    for _ in range(6):  # the burst: a tenth of a minute's allowance
        limits.take("uid-a")
    with pytest.raises(ApiError, match="Too many requests"):
        limits.take("uid-a")

    fresh_instance(CSCX_MAX_DOCUMENTS="8")
    assert get_settings().max_documents == 8
    assert resources._profiles_seen == set()
    limits.take("uid-a")  # a new instance's bucket is full
