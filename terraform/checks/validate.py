"""What `terraform validate` checks: references declared, module calls complete, arguments the provider has."""

from __future__ import annotations

import json
import re
from typing import Any

from terraform.checks.tree import TERRAFORM, Config, Problems, Tree, load_config, walk_strings

REFERENCE_PATTERNS = {
    "var": re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)"),
    "local": re.compile(r"(?<![\w.])local\.([A-Za-z_][\w-]*)"),
    "module": re.compile(r"(?<![\w.])module\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?(?:\.([A-Za-z_][\w-]*))?"),
    "resource": re.compile(
        r"(?<![\w.])(data\.)?((?:google|archive|time)_[a-z0-9_]+|terraform_data)\.([A-Za-z_][\w-]*)"
    ),
}
META_ARGUMENTS = {"source", "for_each", "count", "depends_on", "providers", "version"}


def check_references(tree: Tree) -> Problems:
    """What `terraform validate` would refuse: an undeclared name, a wrong module argument, a missing provider."""
    problems: Problems = []
    for where, config in tree.configs().items():
        problems += [f"{where}: {problem}" for problem in _undeclared(config)]
        problems += [f"{where}: {problem}" for problem in _module_calls(config)]
        problems += [f"{where}: {problem}" for problem in _providers(config)]
        problems += [
            f"{where}: data.{rtype}.{name} has depends_on: it would be read during the apply, not the plan"
            for (rtype, name), body in config.resources("data").items()
            if "depends_on" in body
        ]
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
    r"(?<![\w.])((?:data\.)?(?:google|archive|time)_[a-z0-9_]+)\.[A-Za-z_][\w-]*(?:\[[^\]]*\])?\.([a-z_][a-z0-9_]*)"
)

SELF_REFERENCE = re.compile(r"(?<![\w.])self\.([a-z_][a-z0-9_]*)")


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
                problems += [
                    f"{where}: {prefix}{rtype} has no attribute {attribute} (self.{attribute})"
                    for attribute in sorted({a for s in walk_strings(body) for a in SELF_REFERENCE.findall(s)})
                    if attribute not in {*names, "id"}
                ]
        for text in [s for parsed in config.files.values() for s in walk_strings(parsed)]:
            problems += [
                f"{where}: {rtype} has no attribute {attribute}"
                for rtype, attribute in ATTRIBUTE_REFERENCE.findall(text)
                if rtype in known and attribute not in {*known[rtype], "id"}  # every resource has an id
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
