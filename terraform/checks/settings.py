"""Every setting the code reads wired to the functions that read it; every secret from Secret Manager."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from terraform.checks.code import (
    demanded_by_load_settings,
    is_unset,
    manifest,
    placeholder,
    read_by,
    required,
    settings_read,
)
from terraform.checks.tree import Problems, Tree, functions_table, single, walk_keys

# The secrets of DESIGN §9: from Secret Manager, each to the functions that read it only.
SECRET_SETTINGS = frozenset(
    {"ANTHROPIC_API_KEY", "GOOGLE_OAUTH_CLIENT_SECRET", "CSCX_TOKEN_ENCRYPTION_KEY", "CSCX_CURSOR_KEY"}
)
# Settings of one function, from what is declared for it in modules/cscx (functions.tf).
FUNCTION_SETTINGS = {
    # functions-framework serves as many requests at once as Cloud Run sends.
    "THREADS": "tostring(each.value.concurrency)",
    # Cloud Run's IAM check verifies every caller's token first exactly when no invoker is public.
    "CSCX_BEHIND_IAM": "tostring(length(setintersection(each.value.invokers, local.public_members)) == 0)",
}
# What the code refuses in a real project: never set deployed.
NEVER_DEPLOYED = ("*_EMULATOR_HOST", "CSCX_ID_TOKEN_CERTS_URL", "CSCX_OIDC_CERTS_URL")


def check_settings(tree: Tree) -> Problems:
    """Every setting the code reads is wired, for every function that reads it, the code's way."""
    return [*_settings_classified(tree), *_settings_of_each_function(tree)]


def _settings_classified(tree: Tree) -> Problems:
    """Each setting read is set from the infrastructure, tunable, a secret or documented as unset."""
    problems: Problems = []
    cscx = tree.cscx
    infrastructure, tunable, unset = infrastructure_settings(tree), tunable_settings(tree), unset_settings(tree)
    secrets = set(cscx.variables.get("secret_ids", {}).get("default", {}))
    if cscx.locals.get("settings") != "${merge(var.setting_overrides, local.infrastructure_settings)}":
        problems.append("modules/cscx: local.settings must be the tunables overridden plus infrastructure_settings")
    environment = str(cscx.modules.get("functions", {}).get("environment_variables"))
    if not environment.startswith("${merge(local.settings, {"):
        problems.append("modules/cscx: every function gets local.settings and its own settings")
    problems += [
        f"modules/cscx: every function gets {name} = {expression}"
        for name, expression in FUNCTION_SETTINGS.items()
        if f"{name} = {expression}" not in environment
    ]
    if cscx.locals.get("public_members") != ["allUsers", "allAuthenticatedUsers"]:
        problems.append("modules/cscx: local.public_members must be allUsers and allAuthenticatedUsers")
    problems += [
        f"{name} is read by common/settings.py but neither wired nor listed in unset_settings"
        for name in sorted(settings_read())
        if name not in {*infrastructure, *tunable, *secrets, *FUNCTION_SETTINGS} and not is_unset(name, unset)
    ]
    problems += [
        f"{name} must never be set deployed"
        for pattern in NEVER_DEPLOYED
        for name in [*infrastructure, *tunable]
        if fnmatch.fnmatchcase(name, pattern)
    ]
    problems += [f"{pattern} must be listed in unset_settings" for pattern in NEVER_DEPLOYED if pattern not in unset]
    return problems


def _settings_of_each_function(tree: Tree) -> Problems:
    """What each function requires is always set; what it reads is set or tunable; it would start."""
    problems: Problems = []
    table, infrastructure, tunable, unset = (
        functions_table(tree),
        infrastructure_settings(tree),
        tunable_settings(tree),
        unset_settings(tree),
    )
    for entry in [entry for entry in manifest() if entry in table]:
        always = set(infrastructure) | set(table[entry].get("secrets", [])) | set(FUNCTION_SETTINGS)
        problems += [
            f"{entry} needs {name} at cold start, but it is not wired to it"
            for name in sorted(required(entry) | demanded_by_load_settings())
            if name not in always
        ]
        problems += [
            f"{entry} reads {name}, but it is not wired to it"
            for name in sorted(read_by(entry) - required(entry))
            if not is_unset(name, unset) and name not in always and name not in tunable
        ]
        problems += _cold_start(entry, sorted(always & settings_read()))
    return problems


def infrastructure_settings(tree: Tree) -> dict[str, Any]:
    settings: dict[str, Any] = tree.cscx.locals.get("infrastructure_settings", {})
    return settings


def tunable_settings(tree: Tree) -> set[str]:
    return set(tree.cscx.locals.get("tunable_settings", []))


def unset_settings(tree: Tree) -> dict[str, Any]:
    unset: dict[str, Any] = tree.cscx.locals.get("unset_settings", {})
    return unset


def _cold_start(entry: str, wired: list[str]) -> Problems:
    """The settings an entry point gets deployed are enough for load_settings and its require()."""
    from common.errors import ConfigurationError
    from common.settings import load_settings

    try:
        load_settings({name: placeholder(name) for name in wired}).require(*sorted(required(entry)))
    except ConfigurationError as error:
        return [f"{entry} would not start deployed: {error}"]
    return []


def check_secrets(tree: Tree) -> Problems:
    """Every secret comes from Secret Manager, to the functions that read it only, never in plain."""
    return [*_secrets_never_plain(tree), *_secrets_of_each_function(tree), *_secrets_mounted(tree)]


def _secrets_never_plain(tree: Tree) -> Problems:
    problems: Problems = []
    declared = set(tree.cscx.variables.get("secret_ids", {}).get("default", {}))
    if declared != SECRET_SETTINGS:
        problems.append(f"secret_ids must name the secret of each of {sorted(SECRET_SETTINGS)}, not {sorted(declared)}")
    problems += [
        f"{name} is not read by common/settings.py any more" for name in sorted(SECRET_SETTINGS - settings_read())
    ]
    for where, config in tree.configs().items():
        problems += [
            f"{where}: {key} is given a value in {path.lstrip('.')} (secrets: Secret Manager)"
            for parsed in config.files.values()
            for key, path in walk_keys(parsed)
            if key in SECRET_SETTINGS and not path.endswith("variable.secret_ids.default")
        ]
        if re.search(r"sk-ant-|GOCSPX-|-----BEGIN", config.text()):
            problems.append(f"{where}: a secret value is written in the HCL")
        problems += [
            f"{where}: {rtype}.{name} would put a secret's value in the state"
            for rtype, name in config.resources()
            if rtype.startswith("google_secret_manager_secret_version")
        ]
    problems += [
        f"{example.relative_to(tree.root)}: secrets are not variables"
        for example in sorted(tree.root.glob("envs/*/*.example"))
        if any(name in example.read_text(encoding="utf-8") for name in SECRET_SETTINGS)
    ]
    return problems


def _secrets_of_each_function(tree: Tree) -> Problems:
    """Exactly the secrets a function's code reads (least privilege)."""
    problems: Problems = []
    table = functions_table(tree)
    for entry in [entry for entry in manifest() if entry in table]:
        mounted = set(table[entry].get("secrets", []))
        needed = (read_by(entry) | required(entry) | demanded_by_load_settings()) & SECRET_SETTINGS
        problems += [
            f"{entry} reads the secret {name}, but it is not given to it from Secret Manager"
            for name in sorted(needed - mounted)
        ]
        problems += [
            f"{entry} is given the secret {name}, which its code never reads (least privilege)"
            for name in sorted(mounted - needed)
        ]
    return problems


def _secrets_mounted(tree: Tree) -> Problems:
    """Secrets reach a function as secret environment variables its own account may read."""
    problems: Problems = []
    call = str(tree.cscx.modules.get("functions", {}).get("secrets"))
    if "each.value.secrets" not in call or "module.platform.secret_ids[name]" not in call:
        problems.append("modules/cscx: a function's secrets must be its own list, as Secret Manager secrets")
    resources = tree.function.resources()
    service = single(resources.get(("google_cloudfunctions2_function", "this"), {}).get("service_config", [{}]))
    dynamic = {name: body for block in service.get("dynamic", []) for name, body in block.items()}
    secret_env = dynamic.get("secret_environment_variables", {})
    content = single(secret_env.get("content", [{}])) if secret_env else {}
    expected = "${secret_environment_variables.value.secret_id}"
    if secret_env.get("for_each") != "${var.secrets}" or content.get("secret") != expected:
        problems.append("modules/function: every secret must be a secret_environment_variables entry")
    accessor = resources.get(("google_secret_manager_secret_iam_member", "runtime"), {})
    if accessor.get("for_each") != "${var.secrets}" or accessor.get("role") != "roles/secretmanager.secretAccessor":
        problems.append("modules/function: the runtime account must read exactly the function's secrets")
    if ("google_secret_manager_secret", "this") not in tree.platform.resources("data"):
        problems.append("modules/platform: the plan must check that each secret exists")
    return problems
