"""`make plan` and `make deploy` (terraform/deploy.py): each failure before Terraform runs says
what to do, at once, instead of a prompt or a hang."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terraform.checks.tree import ROOT
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
