"""A first look at the suite's stack, and the launch checklist (`make smoke`) walked against it: the
same script `make smoke ENV=<env>` runs against a deployment, with the stand-ins playing the model
and Google."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from scripts.smoke import target
from scripts.smoke.target import USER_FACING
from scripts.stack import PROJECT_ID, ROOT, Stack, free_port
from tests.conftest import TEST_PORT_OFFSET, Api, Caller


def test_customer_roundtrip(crud: Api, alice: Caller) -> None:
    created = crud.post("/customers", alice, json={"name": "Acme"})
    assert created.status_code == 201, created.text
    got = crud.get(f"/customers/{created.json()['id']}", alice)
    assert got.status_code == 200, got.text
    assert got.json()["name"] == "Acme"


def smoke(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scripts.smoke", *arguments]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def rows_of(output: str) -> dict[str, str]:
    """The table's rows: step → result."""
    rows = {}
    for line in output.splitlines()[2:-1]:
        step, result = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        rows[step] = result.rsplit(None, 1)[0]
    return rows


def accounts(stack: Stack) -> list[str]:
    """Every account's e-mail in the Auth emulator."""
    url = f"http://127.0.0.1:{stack.ports.auth}/identitytoolkit.googleapis.com/v1/projects/{PROJECT_ID}/accounts:query"
    answer = requests.post(url, json={}, headers={"Authorization": "Bearer owner"}, timeout=10)
    answer.raise_for_status()
    return [str(user.get("email")) for user in answer.json().get("userInfo", [])]


def test_the_launch_checklist_passes_against_the_local_stack_and_leaves_no_account(stack: Stack) -> None:
    done = smoke("local", "--port-offset", str(TEST_PORT_OFFSET))

    assert done.returncode == 0, done.stdout + done.stderr
    rows = rows_of(done.stdout)
    assert len(rows) == 11, done.stdout
    assert all(result.startswith("ok") for result in rows.values()), done.stdout
    assert "page 1" in rows["contract: a parsed term with its page"]
    assert "meet" in rows["approve a meeting: executed, a Meet link"]
    [run] = re.findall(r"\(run ([0-9a-f]+)\)", done.stdout.splitlines()[0])
    assert not [email for email in accounts(stack) if f"cscx-smoke-{run}" in email]


def test_a_checklist_that_reaches_nothing_fails_and_says_what_it_skipped() -> None:
    done = smoke("local", "--port-offset", str(free_port() - 9099))  # the Auth emulator's port: nothing there

    assert done.returncode == 1, done.stdout + done.stderr
    rows = rows_of(done.stdout)
    assert rows["sign up two users (Identity Toolkit)"].startswith("FAILED: ")
    assert rows["no token: 401"].startswith("FAILED: ")
    assert rows["user B cannot see user A's customer"] == "skipped: needs “sign up two users (Identity Toolkit)”"
    assert rows["clean up what this run made"].startswith("ok")


def test_a_deployment_is_reached_through_its_terraform_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = {name: f"https://us-central1-acme-cscx.cloudfunctions.net/cscx-{name}" for name in USER_FACING}
    config = {"firebase": {"apiKey": "AIza-web-key", "authDomain": "acme.firebaseapp.com", "projectId": "acme"}}
    outputs = {"web_config": {"value": {**config, "api": api, "authEmulator": None}}}
    terraform = tmp_path / "terraform"
    terraform.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(outputs)}\nEOF\n")
    terraform.chmod(0o755)
    monkeypatch.setenv("TERRAFORM", str(terraform))
    monkeypatch.setenv("CSCX_SMOKE_EMAIL", "smoke@acme.example")
    monkeypatch.setenv("CSCX_SMOKE_PASSWORD", "a-password")

    where = target.deployed("staging")

    assert (where.api, where.api_key, where.identity_toolkit) == (api, "AIza-web-key", target.IDENTITY_TOOLKIT)
    assert where.deployed  # no stand-in to script: the model is real
    assert where.test_account == ("smoke@acme.example", "a-password")
    assert where.patience >= 120  # a real model, queue and worker
