"""Settings, start-up refusal, structured logs and request ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from common.errors import ConfigurationError
from common.settings import load_settings
from scripts.stack import ROOT, Stack
from tests.conftest import Api, Caller


def test_settings_name_the_missing_project() -> None:
    with pytest.raises(ConfigurationError, match="GOOGLE_CLOUD_PROJECT"):
        load_settings({})


@pytest.mark.parametrize(
    "variable", ["FIRESTORE_EMULATOR_HOST", "FIREBASE_AUTH_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"]
)
def test_emulator_variables_are_refused_outside_demo_projects(variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        load_settings({"GOOGLE_CLOUD_PROJECT": "cscx-prod", variable: "127.0.0.1:8080"})


def test_emulator_variables_are_allowed_in_demo_projects() -> None:
    settings = load_settings({"GOOGLE_CLOUD_PROJECT": "demo-cscx", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080"})
    assert settings.emulators == {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CSCX_CORS_ORIGINS", "*"),
        ("CSCX_MAX_BODY_BYTES", "lots"),
        ("CSCX_LOG_LEVEL", "LOUD"),
        ("CSCX_ID_TOKEN_CERTS_URL", "http://127.0.0.1:1/certs"),
        ("CSCX_CURSOR_KEY", "short"),
        ("CSCX_OIDC_CERTS_URL", "http://127.0.0.1:1/certs"),
        ("CSCX_BEHIND_IAM", "yes"),
        ("CSCX_GEMINI_MODELS", " , "),
        ("CSCX_TOKEN_ENCRYPTION_KEY", "not base64"),
        ("CSCX_STREAM_PING_SECONDS", "0.1"),
    ],
)
def test_unsafe_or_malformed_settings_fail_with_their_name(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        load_settings({**REAL_PROJECT, variable: value})


# The least a real project's functions are started with.
REAL_PROJECT = {
    "GOOGLE_CLOUD_PROJECT": "cscx-prod",
    "CSCX_CURSOR_KEY": "a-real-secret-from-secret-manager",
    "CSCX_WORKER_URL": "https://us-central1-cscx-prod.cloudfunctions.net/execute_action",
    "CSCX_TASKS_SERVICE_ACCOUNT": "cscx-tasks@cscx-prod.iam.gserviceaccount.com",
}


def test_a_real_project_needs_a_cursor_key() -> None:
    with pytest.raises(ConfigurationError, match="CSCX_CURSOR_KEY is required"):
        load_settings({k: v for k, v in REAL_PROJECT.items() if k != "CSCX_CURSOR_KEY"})
    assert load_settings(REAL_PROJECT).cursor_key == REAL_PROJECT["CSCX_CURSOR_KEY"].encode()


@pytest.mark.parametrize("variable", ["CSCX_WORKER_URL", "CSCX_TASKS_SERVICE_ACCOUNT"])
def test_functions_using_the_worker_need_its_url_and_caller_in_a_real_project(variable: str) -> None:
    settings = load_settings({k: v for k, v in REAL_PROJECT.items() if k != variable})
    with pytest.raises(ConfigurationError, match=f"{variable} is required"):
        settings.require("CSCX_WORKER_URL", "CSCX_TASKS_SERVICE_ACCOUNT")
    load_settings(REAL_PROJECT).require("CSCX_WORKER_URL", "CSCX_TASKS_SERVICE_ACCOUNT")


def test_a_demo_project_accepts_the_emulators_unsigned_tasks() -> None:
    load_settings({"GOOGLE_CLOUD_PROJECT": "demo-cscx", "CSCX_WORKER_URL": "http://x"}).require(
        "CSCX_TASKS_SERVICE_ACCOUNT"
    )


def test_emulator_variables_are_refused_on_the_platform_whatever_the_project() -> None:
    env = {"GOOGLE_CLOUD_PROJECT": "demo-cscx", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080", "K_SERVICE": "crud"}
    with pytest.raises(ConfigurationError, match="K_SERVICE"):
        load_settings(env)


def test_currency_codes_are_data_read_on_the_first_check_not_at_import() -> None:
    probe = (
        "import common.currencies as currencies, common.models, common.contracts.terms\n"
        "read_at_import = currencies.iso_4217.cache_info().currsize\n"
        "checks = [currencies.is_currency(code) for code in ('EUR', 'XAU', 'USN', 'XYZ', 'eur')]\n"
        "print(read_at_import, *checks, len(currencies.iso_4217()))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ran.stdout.split() == ["0", "True", "True", "True", "False", "False", "180"]


def test_function_refuses_to_start_with_emulators_in_a_real_project(stack: Stack) -> None:
    env = {
        **os.environ,
        **stack.settings(),
        "GOOGLE_CLOUD_PROJECT": "cscx-prod",
        "PYTHONPATH": str(ROOT),
    }
    started = subprocess.run(
        [sys.executable, "-c", "import runpy; runpy.run_path('functions/crud/main.py')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "FIRESTORE_EMULATOR_HOST" in started.stderr
    assert "demo-*" in started.stderr


def test_our_request_id_is_answered_and_logged_with_the_callers_beside_it(
    stack: Stack, crud: Api, alice: Caller
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = crud.get(
        "/customers",
        alice,
        headers={"X-Request-Id": "req-test-12345678", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert response.status_code == 200
    ours = response.headers["X-Request-Id"]
    assert ours != "req-test-12345678", "a caller cannot choose the id its log lines carry"
    # The line is written when the response closes, which can come just after the client read it.
    deadline = time.monotonic() + 5
    while True:
        lines = (stack.log_dir / "crud.log").read_text().splitlines()
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        mine = [e for e in entries if e.get("request_id") == ours]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not [e for e in entries if e.get("request_id") == "req-test-12345678"]
    assert mine, "the request left no structured log line"
    entry = mine[-1]
    assert entry["callerRequestId"] == "req-test-12345678"
    assert entry["callerTraceparent"].startswith("00-4bf92f35")
    assert entry["severity"] == "INFO"
    assert entry["logging.googleapis.com/trace"] == f"projects/demo-cscx/traces/{trace_id}"
    assert entry["httpRequest"]["status"] == 200
    assert entry["uid"] == alice.uid


def test_generated_request_id_when_none_is_sent(crud: Api) -> None:
    response = crud.get("/healthz")
    assert response.json() == {"status": "ok"}
    assert len(response.headers["X-Request-Id"]) == 32
