"""Firebase (Firestore, its rules and indexes, Auth), the console on Hosting, the APIs, and every
environment on the modules."""

from __future__ import annotations

import json
import re

from terraform.checks.code import local_settings_path
from terraform.checks.settings import infrastructure_settings
from terraform.checks.tree import ENVIRONMENTS, Config, Problems, Tree, parse
from terraform.deploy import CONSOLE_API_KEYS, CONSOLE_FIREBASE_KEYS

REQUIRED_APIS = frozenset(
    {
        "cloudfunctions.googleapis.com",
        "run.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "firestore.googleapis.com",
        "firebaserules.googleapis.com",
        "identitytoolkit.googleapis.com",
        "cloudtasks.googleapis.com",
        "cloudscheduler.googleapis.com",
        "firebasehosting.googleapis.com",
        "secretmanager.googleapis.com",
        "storage.googleapis.com",
        "aiplatform.googleapis.com",
        "gmail.googleapis.com",
        "calendar-json.googleapis.com",
    }
)


def check_firebase(tree: Tree) -> Problems:
    """Firestore (native) with the rules released, the indexes and TTLs applied; Auth; the APIs."""
    problems: Problems = []
    platform = tree.platform.resources()
    if platform.get(("google_firestore_database", "this"), {}).get("type") != "FIRESTORE_NATIVE":
        problems.append("Firestore must be a native-mode database")
    ruleset = platform.get(("google_firebaserules_ruleset", "firestore"))
    release = platform.get(("google_firebaserules_release", "firestore"))
    if ruleset is None or "file(var.rules_file)" not in json.dumps(ruleset):
        problems.append("modules/platform: firestore.rules must be a ruleset")
    if release is None:
        problems.append("modules/platform: the Firestore rules are never released (google_firebaserules_release)")
    elif release.get("name") != "cloud.firestore" or "google_firebaserules_ruleset.firestore.name" not in str(
        release.get("ruleset_name")
    ):
        problems.append("modules/platform: the release must put the ruleset in force for cloud.firestore")
    indexes = platform.get(("google_firestore_index", "this"), {})
    from_file = "jsondecode(file(var.indexes_file))" in str(tree.platform.locals.get("indexes"))
    if "local.indexes.indexes" not in str(indexes.get("for_each")) or not from_file:
        problems.append("modules/platform: every index of firestore.indexes.json must be a google_firestore_index")
    fields = platform.get(("google_firestore_field", "this"), {})
    if "ttl_config" not in json.dumps(fields) or fields.get("for_each") != "${local.fields}":
        problems.append("modules/platform: the TTL policies and field overrides must be google_firestore_field")
    if tree.cscx.variables.get("ttl_fields", {}).get("default", {}).get("oauth_states") != "expires_at":
        problems.append("oauth_states.expires_at needs a TTL policy")
    call = tree.cscx.modules.get("platform", {})
    files = (call.get("rules_file"), call.get("indexes_file"))
    if files != ("${var.source_root}/firestore.rules", "${var.source_root}/firestore.indexes.json"):
        problems.append("modules/cscx: the platform must get the repository's firestore.rules and indexes")
    project = tree.platform.resources("data").get(("google_project", "this"), {})
    labelled = [
        check
        for block in project.get("lifecycle", [])
        for check in block.get("postcondition", [])
        if check.get("condition") == '${lookup(self.effective_labels, "firebase", "") == "enabled"}'
    ]
    if not labelled:
        problems.append("modules/platform: the plan must refuse a project without the label firebase=enabled")
    if ("google_identity_platform_config", "auth") not in platform:
        problems.append("modules/platform: Firebase Auth (Identity Platform) is not enabled")
    apis = set(re.findall(r"[a-z0-9-]+\.googleapis\.com", json.dumps(tree.platform.locals.get("apis"))))
    problems += [f"modules/platform: {api} is not enabled" for api in sorted(REQUIRED_APIS - apis)]
    return problems


# The console's site answers at both of Firebase Hosting's domains.
CONSOLE_ORIGINS = ["https://${local.hosting_site}.web.app", "https://${local.hosting_site}.firebaseapp.com"]


def check_console(tree: Tree) -> Problems:
    """The console has a Hosting site per environment; the API admits its origins and sends the
    Google connection back to its settings page; its /config.json is an output, as make deploy reads it."""
    return [*_console_hosted(tree), *_console_wired(tree), *_console_config(tree)]


def _console_hosted(tree: Tree) -> Problems:
    problems: Problems = []
    platform = tree.platform
    site = platform.resources().get(("google_firebase_hosting_site", "console"), {})
    if (
        site.get("site_id") != "${var.hosting_site_id}"
        or site.get("app_id") != "${google_firebase_web_app.console.app_id}"
    ):
        problems.append(
            "modules/platform: the console needs a Hosting site (its web app's) named by var.hosting_site_id"
        )
    if ("google_firebase_web_app_config", "console") not in platform.resources("data"):
        problems.append("modules/platform: the console's Firebase configuration must be read from its web app")
    cscx = tree.cscx
    if (
        cscx.locals.get("hosting_site") != "${coalesce(var.hosting_site_id, var.project_id)}"
        or cscx.modules.get("platform", {}).get("hosting_site_id") != "${local.hosting_site}"
    ):
        problems.append("modules/cscx: the console's site is var.hosting_site_id or else the project's default site")
    return problems


def _console_wired(tree: Tree) -> Problems:
    problems: Problems = []
    cscx, settings = tree.cscx, infrastructure_settings(tree)
    if cscx.locals.get("console_origins") != CONSOLE_ORIGINS:
        problems.append(f"modules/cscx: the console's origins are {CONSOLE_ORIGINS}")
    if (
        settings.get("CSCX_CORS_ORIGINS") != '${join(",", local.cors_origins)}'
        or cscx.locals.get("cors_origins") != "${distinct(concat(local.console_origins, var.cors_origins))}"
    ):
        problems.append("CSCX_CORS_ORIGINS must admit the console's origins (and var.cors_origins)")
    page = '${coalesce(var.web_app_url, "${local.console_url}${local.console_settings_path}")}'
    if settings.get("CSCX_WEB_APP_URL") != page or cscx.locals.get("console_url") != "${local.console_origins[0]}":
        problems.append("CSCX_WEB_APP_URL must be the console's settings page (unless var.web_app_url names another)")
    local_path = local_settings_path()
    if cscx.locals.get("console_settings_path") != local_path:
        problems.append(f"the console's settings page is {local_path} deployed too (scripts/stack.py)")
    domains = str(cscx.locals.get("auth_authorized_domains"))
    problems += [
        f"modules/cscx: Firebase Auth must allow {domain}"
        for domain in ("${local.hosting_site}.web.app", "${local.hosting_site}.firebaseapp.com")
        if domain not in domains
    ]
    return problems


def _console_config(tree: Tree) -> Problems:
    """The web_config output is the console's /config.json: the keys deploy.py holds it to."""
    problems: Problems = []
    config = tree.cscx.outputs.get("web_config", {}).get("value", {})
    firebase = tree.platform.outputs.get("web_app_firebase_config", {}).get("value", {})
    firebase_keys = {*firebase, *re.findall(r"(\w+) = ", str(config.get("firebase")))}
    if not isinstance(config, dict) or set(config) != {"firebase", "api", "authEmulator"}:
        return ["modules/cscx: web_config must be {firebase, api, authEmulator}"]
    if "module.platform.web_app_firebase_config" not in str(config["firebase"]) or firebase_keys != set(
        CONSOLE_FIREBASE_KEYS
    ):
        problems.append(f"modules/cscx: web_config.firebase must be {list(CONSOLE_FIREBASE_KEYS)}")
    if config.get("api") != {key: f"${{local.urls.{key}}}" for key in CONSOLE_API_KEYS}:
        problems.append(f"modules/cscx: web_config.api must be the base URLs of {list(CONSOLE_API_KEYS)}")
    if config.get("authEmulator") is not None:
        problems.append("modules/cscx: web_config.authEmulator is null deployed")
    for env, env_config in tree.envs.items():
        problems += [
            f"envs/{env}: make deploy needs the output {name} (module.cscx.{name})"
            for name in ("web_config", "hosting_site")
            if env_config.outputs.get(name, {}).get("value") != f"${{module.cscx.{name}}}"
        ]
    return problems


def check_environments(tree: Tree) -> Problems:
    """Every environment is the cscx module, with its state in GCS and its variables in its example."""
    problems: Problems = []
    for env in ENVIRONMENTS:
        config = tree.envs.get(env)
        if config is None:
            problems.append(f"envs/{env} is missing")
            continue
        problems += [f"envs/{env}: {problem}" for problem in _environment_problems(tree, env, config)]
    protected = {env: config.modules.get("cscx", {}).get("deletion_protection") for env, config in tree.envs.items()}
    if protected != {"dev": False, "staging": True, "prod": True}:
        problems.append(f"only dev may be destroyed with its data (deletion_protection false), not {protected}")
    prod = tree.envs.get("prod")
    if prod is not None and prod.modules.get("cscx", {}).get("min_instances", {}).get("chat_stream", 0) < 1:
        problems.append("envs/prod: chat_stream keeps an instance warm (first token without a cold start)")
    return problems


def _environment_problems(tree: Tree, env: str, config: Config) -> Problems:
    module = config.modules.get("cscx")
    if module is None or module.get("source") != "../../modules/cscx":
        return ["does not use modules/cscx"]
    problems: Problems = []
    if module.get("environment") != env or module.get("source_root") != "${path.root}/../../..":
        problems.append(f"module cscx must be environment {env} of this repository (source_root)")
    backends = [backend for block in config.blocks("terraform") for backend in block.get("backend", [])]
    if not any(backend.get("gcs", {}).get("prefix") == f"cscx/{env}" for backend in backends):
        problems.append(f"state must be in GCS (backend gcs, prefix cscx/{env})")
    required = {
        name for block in config.blocks("terraform") for req in block.get("required_providers", []) for name in req
    }
    used = {
        name
        for module in tree.modules.values()
        for block in module.blocks("terraform")
        for req in block.get("required_providers", [])
        for name in req
    }
    problems += [f"requires no version of {name}, which the modules use" for name in sorted(used - required)]
    providers = {name: body for block in config.blocks("provider") for name, body in block.items()}
    problems += [f"provider {name} is not configured" for name in ("google", "google-beta") if name not in providers]
    problems += [
        f"provider {name} sets no default_labels" for name, body in providers.items() if not body.get("default_labels")
    ]
    example = config.path / "terraform.tfvars.example"
    given = set(parse(example.read_text(encoding="utf-8"))) if example.is_file() else set()
    problems += [
        f"terraform.tfvars.example does not show {name}"
        for name, body in config.variables.items()
        if "default" not in body and name not in given
    ]
    if not (config.path / "backend.hcl.example").is_file():
        problems.append("backend.hcl.example is missing")
    if "function_urls" not in config.outputs:
        problems.append("the functions' URLs are not an output")
    return problems
