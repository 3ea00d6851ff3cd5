"""`make plan` and `make deploy` (terraform/deploy.py): each failure before Terraform runs says
what to do, at once, instead of a prompt or a hang; the console (web/) is built before anything is
applied and published with its /config.json, as agreed with web/, to the environment's site."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts.stack import stop_processes
from terraform.checks.tree import ROOT
from terraform.deploy import (
    DeployError,
    build_console,
    console_config,
    firebase_command,
    hosting_config,
    publish_console,
)
from tests.terraform_copies import copy_terraform


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return copy_terraform(tmp_path)


def deploy(copy: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(copy / "deploy.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else dict(os.environ),
        stdin=subprocess.DEVNULL,
        check=False,
    )


def configure(copy: Path, env: str = "dev") -> None:
    directory = copy / "envs" / env
    tfvars = (directory / "terraform.tfvars.example").read_text(encoding="utf-8")
    (directory / "terraform.tfvars").write_text(tfvars.replace(f"my-cscx-{env}", f"acme-cscx-{env}"), encoding="utf-8")
    (directory / "backend.hcl").write_text(f'bucket = "acme-cscx-{env}-tfstate"\n', encoding="utf-8")


def test_make_has_plan_and_deploy() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "terraform/deploy.py plan $(ENV)" in makefile
    assert "terraform/deploy.py deploy $(ENV)" in makefile


def test_plan_without_an_environment_says_which_there_are(copy: Path) -> None:
    done = deploy(copy, "plan")
    assert done.returncode == 2
    assert "ENV must be one of dev, staging, prod" in done.stderr


def test_plan_of_an_unconfigured_environment_says_what_to_fill_in(copy: Path) -> None:
    done = deploy(copy, "plan", "dev")
    assert done.returncode == 2
    assert "terraform.tfvars is missing: copy terraform.tfvars.example" in done.stderr
    shutil.copy(copy / "envs/dev/terraform.tfvars.example", copy / "envs/dev/terraform.tfvars")
    shutil.copy(copy / "envs/dev/backend.hcl.example", copy / "envs/dev/backend.hcl")
    done = deploy(copy, "plan", "dev")
    assert done.returncode == 2
    assert "no project configured: set project_id" in done.stderr


def test_plan_of_a_state_bucket_still_the_examples_says_what_to_fill_in(copy: Path) -> None:
    configure(copy)
    shutil.copy(copy / "envs/dev/backend.hcl.example", copy / "envs/dev/backend.hcl")
    done = deploy(copy, "plan", "dev")
    assert done.returncode == 2
    assert "no state bucket configured: set bucket" in done.stderr


def test_plan_takes_any_real_project_id_even_one_that_starts_like_the_example(copy: Path, tmp_path: Path) -> None:
    directory = copy / "envs" / "dev"
    tfvars = (directory / "terraform.tfvars.example").read_text(encoding="utf-8")
    (directory / "terraform.tfvars").write_text(tfvars.replace('"my-cscx-dev"', '"my-company-cscx-dev"'))
    (directory / "backend.hcl").write_text('bucket = "my-company-cscx-dev-tfstate"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOOGLE_")} | {"HOME": str(tmp_path)}
    done = deploy(copy, "plan", "dev", env=env)
    assert done.returncode == 2
    assert "no Google credentials" in done.stderr  # past the configuration: the next check


def test_plan_without_credentials_says_how_to_log_in(copy: Path, tmp_path: Path) -> None:
    configure(copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOOGLE_")} | {"HOME": str(tmp_path)}
    done = deploy(copy, "plan", "dev", env=env)
    assert done.returncode == 2
    assert "no Google credentials" in done.stderr


def test_plan_fails_fast_when_the_provider_cannot_be_fetched(copy: Path, tmp_path: Path) -> None:
    configure(copy)
    web_standin(copy.parent)  # deploy builds the console first
    # A registry mirror nobody listens on: the same answer as this machine's, reachable or not.
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text('provider_installation {\n  network_mirror {\n    url = "https://127.0.0.1:9/"\n  }\n}\n')
    env = {k: v for k, v in os.environ.items() if k != "TERRAFORM"} | {
        "HOME": str(tmp_path),
        "GOOGLE_OAUTH_ACCESS_TOKEN": "not-a-token",
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin",
    }
    started = time.monotonic()
    done = deploy(copy, "deploy", "dev", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the providers (hashicorp/google, google-beta, archive) could not be fetched" in done.stderr
    assert time.monotonic() - started < 60
    assert not (copy / "envs/dev/tfplan").exists()


def readme_section(title: str) -> str:
    text = (ROOT / "terraform" / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_the_readme_logs_in_before_its_first_gcloud_command() -> None:
    steps = readme_section("From an empty Google Cloud project to a working environment")
    commands = [line.strip() for line in steps.splitlines() if line.strip().startswith("gcloud ")]
    assert commands[0].startswith("gcloud auth login"), commands[0]


def test_the_readme_labels_the_project_for_the_firebase_console() -> None:
    steps = readme_section("From an empty Google Cloud project to a working environment")
    assert "gcloud projects create $P --labels=firebase=enabled" in steps
    assert "gcloud projects update $P --update-labels=firebase=enabled" in steps


def test_the_readme_says_what_to_do_where_the_organisation_restricts_sharing_to_its_domain() -> None:
    steps = readme_section("From an empty Google Cloud project to a working environment")
    for needed in (
        "iam.allowedPolicyMemberDomains",
        "iam.managed.allowedPolicyMembers",
        "allowAll: true",
        "gcloud org-policies set-policy",
    ):
        assert needed in steps


# --- the console --------------------------------------------------------------------------------

# `terraform output -json` of an applied environment, as deploy.py reads it.
OUTPUTS: dict[str, Any] = {
    "hosting_site": {"sensitive": False, "type": "string", "value": "acme-cscx-dev"},
    "console_url": {"sensitive": False, "type": "string", "value": "https://acme-cscx-dev.web.app"},
    "web_config": {
        "sensitive": False,
        "type": ["object", {}],
        "value": {
            "firebase": {
                "apiKey": "AIzaSyTest-not-a-secret",
                "authDomain": "acme-cscx-dev.firebaseapp.com",
                "projectId": "acme-cscx-dev",
            },
            "api": {
                name: f"https://us-central1-acme-cscx-dev.cloudfunctions.net/cscx-{name.replace('_', '-')}"
                for name in ("crud", "chat_stream", "approve_action", "contract_parse")
            },
            "authEmulator": None,
        },
    },
}


def test_the_consoles_config_is_the_agreed_shape() -> None:
    config = console_config(OUTPUTS)
    assert json.loads(json.dumps(config)) == {
        "firebase": {
            "apiKey": "AIzaSyTest-not-a-secret",
            "authDomain": "acme-cscx-dev.firebaseapp.com",
            "projectId": "acme-cscx-dev",
        },
        "api": {
            "crud": "https://us-central1-acme-cscx-dev.cloudfunctions.net/cscx-crud",
            "chat_stream": "https://us-central1-acme-cscx-dev.cloudfunctions.net/cscx-chat-stream",
            "approve_action": "https://us-central1-acme-cscx-dev.cloudfunctions.net/cscx-approve-action",
            "contract_parse": "https://us-central1-acme-cscx-dev.cloudfunctions.net/cscx-contract-parse",
        },
        "authEmulator": None,
    }


@pytest.mark.parametrize(
    "change",
    [
        lambda config: config["api"].update(crud=config["api"]["crud"] + "/"),
        lambda config: config["api"].pop("contract_parse"),
        lambda config: config["firebase"].update(apiKey=""),
        lambda config: config["firebase"].update(storageBucket="x"),
        lambda config: config.update(authEmulator="http://127.0.0.1:9099"),
    ],
    ids=["a trailing slash", "a function missing", "no API key", "an extra key", "an emulator deployed"],
)
def test_a_console_config_off_the_agreed_shape_is_refused(change: Any) -> None:
    outputs = json.loads(json.dumps(OUTPUTS))
    change(outputs["web_config"]["value"])
    with pytest.raises(DeployError, match="not the console's configuration"):
        console_config(outputs)


def web_standin(root: Path, build: str = "") -> Path:
    """A web/ that builds as the console's does (`npm ci && npm run build` makes dist/), offline."""
    web = root / "web"
    web.mkdir()
    (web / "package.json").write_text(
        json.dumps(
            {"name": "console-standin", "private": True, "version": "0.0.0", "scripts": {"build": "node build.js"}}
        )
    )
    lock = {"name": "console-standin", "version": "0.0.0", "lockfileVersion": 3, "requires": True}
    lock["packages"] = {"": {"name": "console-standin", "version": "0.0.0"}}
    (web / "package-lock.json").write_text(json.dumps(lock))
    (web / "build.js").write_text(
        build
        or 'const fs = require("fs");\n'
        'fs.mkdirSync("dist/assets", { recursive: true });\n'
        'fs.writeFileSync("dist/index.html", "<!doctype html><title>CSCX</title><div id=root></div>");\n'
        'fs.writeFileSync("dist/assets/index-1a2b3c.js", "console.log(1)");\n'
    )
    return web


def test_the_console_is_built_with_npm_ci_and_npm_run_build(tmp_path: Path) -> None:
    web = web_standin(tmp_path)
    dist = build_console(web)
    assert dist == web / "dist"
    assert (dist / "index.html").is_file()


def test_a_console_that_does_not_build_stops_the_deploy(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"package\.json is missing"):
        build_console(tmp_path / "web")
    web = web_standin(tmp_path, build="process.exit(3)")
    with pytest.raises(DeployError, match="`run build` failed in web/"):
        build_console(web)
    # npm ci installs the lock, or nothing: a package.json out of step with its lock stops it.
    package = json.loads((web / "package.json").read_text())
    (web / "package.json").write_text(json.dumps(package | {"dependencies": {"left-pad": "1.3.0"}}))
    with pytest.raises(DeployError, match="`ci --no-audit --no-fund` failed in web/"):
        build_console(web)


RECORDER = """#!{python}
import json, os, pathlib, sys
here = pathlib.Path.cwd()
public = here / "public"
pathlib.Path(os.environ["FIREBASE_RECORD"]).write_text(json.dumps({{
    "argv": sys.argv[1:],
    "firebase.json": json.loads((here / "firebase.json").read_text()),
    "public": sorted(str(path.relative_to(public)) for path in public.rglob("*") if path.is_file()),
    "config.json": json.loads((public / "config.json").read_text()),
}}))
sys.exit(int(os.environ.get("FIREBASE_EXIT", "0")))
"""


@pytest.fixture
def firebase_recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """firebase-tools' place taken by a script that records how it was called and what it was given."""
    script = tmp_path / "firebase"
    script.write_text(RECORDER.format(python=sys.executable))
    script.chmod(0o755)
    record = tmp_path / "firebase-call.json"
    monkeypatch.setenv("FIREBASE", str(script))
    monkeypatch.setenv("FIREBASE_RECORD", str(record))
    return record


def test_deploy_publishes_the_built_console_with_its_config_to_the_environments_site(
    tmp_path: Path, firebase_recorder: Path
) -> None:
    web = web_standin(tmp_path)
    build_console(web)
    publish_console(OUTPUTS, "acme-cscx-dev", web=web)
    written = json.loads((web / "dist" / "config.json").read_text())
    assert written == console_config(OUTPUTS)
    call = json.loads(firebase_recorder.read_text())
    assert call["argv"] == [
        "deploy",
        "--only",
        "hosting:acme-cscx-dev",
        "--project",
        "acme-cscx-dev",
        "--config",
        "firebase.json",
        "--non-interactive",
    ]
    assert call["firebase.json"] == hosting_config("acme-cscx-dev")
    assert call["public"] == ["assets/index-1a2b3c.js", "config.json", "index.html"]
    assert call["config.json"] == written


def test_a_failed_publication_fails_the_deploy(
    tmp_path: Path, firebase_recorder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = web_standin(tmp_path)
    build_console(web)
    monkeypatch.setenv("FIREBASE_EXIT", "1")
    with pytest.raises(DeployError, match="firebase deploy failed"):
        publish_console(OUTPUTS, "acme-cscx-dev", web=web)


def test_make_deploy_builds_the_console_before_terraform_runs(copy: Path, tmp_path: Path) -> None:
    configure(copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOOGLE_")} | {
        "HOME": str(tmp_path),
        "GOOGLE_OAUTH_ACCESS_TOKEN": "not-a-token",
        "TERRAFORM": "/nonexistent/terraform",  # never reached
    }
    done = deploy(copy, "deploy", "dev", env=env)
    assert done.returncode == 2, done.stderr
    assert "web/package.json is missing: make deploy publishes the console" in done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_firebase_tools_serves_the_published_console_as_configured(tmp_path: Path) -> None:
    # firebase-tools' own Hosting emulator, on the firebase.json deploy.py writes: every path of the
    # single-page app is index.html, config.json and index.html are revalidated, assets kept.
    firebase = firebase_command()  # the one deploy.py publishes with
    web = web_standin(tmp_path)
    build_console(web)
    shutil.copytree(web / "dist", tmp_path / "public")
    (tmp_path / "public" / "config.json").write_text(json.dumps(console_config(OUTPUTS)))
    port, hub, logging_port = free_port(), free_port(), free_port()
    config = hosting_config("demo-cscx") | {
        "emulators": {
            "hosting": {"host": "127.0.0.1", "port": port},
            "hub": {"host": "127.0.0.1", "port": hub},
            "logging": {"host": "127.0.0.1", "port": logging_port},
            "ui": {"enabled": False},
        }
    }
    (tmp_path / "firebase.json").write_text(json.dumps(config))
    env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "1"}
    # A project of its own: firebase-tools keeps one hub locator per project in the temporary
    # directory, and the stack beside this run has an Auth emulator for demo-cscx.
    command = [
        *firebase,
        "emulators:start",
        "--only",
        "hosting",
        "--project",
        "demo-cscx-hosting-test",
        "--config",
        "firebase.json",
    ]
    log_path = tmp_path / "emulator.log"
    with log_path.open("w") as log:
        emulator = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        # Only once firebase-tools says all its emulators are ready: before that, a busy machine can
        # see the port open and a connection reset.
        deadline = time.monotonic() + 90
        while "All emulators ready" not in log_path.read_text():
            assert emulator.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.25)
        base = f"http://127.0.0.1:{port}"
        page = requests.get(f"{base}/settings/integrations?google=pending&grant=g1", timeout=10)
        assert page.status_code == 200
        assert "<title>CSCX</title>" in page.text
        assert page.headers["Cache-Control"] == "no-cache"
        served = requests.get(f"{base}/config.json", timeout=10)
        assert served.json() == console_config(OUTPUTS)
        assert served.headers["Cache-Control"] == "no-cache"
        asset = requests.get(f"{base}/assets/index-1a2b3c.js", timeout=10)
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        stop_processes([emulator])
