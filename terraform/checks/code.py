"""The code read, not run (but for the settings' declarations and load_settings): what
common/settings.py reads, what each entry point's file imports and requires, and which settings
each function's code uses."""

from __future__ import annotations

import ast
import base64
import fnmatch
import functools
import inspect
import json
import re
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from terraform.checks.tree import ROOT

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


CLOUD_TASKS_PY = ROOT / "common" / "cloud_tasks.py"


@functools.cache
def enqueuers() -> frozenset[str]:
    """The entry points whose code can put a task on the queue (it reaches common/cloud_tasks.py)."""
    return frozenset(entry for entry, spec in manifest().items() if CLOUD_TASKS_PY in reached_modules(spec["source"]))


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
        "CSCX_BEHIND_IAM": "true",
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


@functools.cache
def local_settings_path() -> str:
    """The path of CSCX_WEB_APP_URL in the local stack (scripts/stack.py), the console's settings
    page: a literal URL's, or the literal that follows the console's origin in an f-string."""
    tree = ast.parse((ROOT / "scripts" / "stack.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if not (isinstance(key, ast.Constant) and key.value == "CSCX_WEB_APP_URL"):
                    continue
                if isinstance(value, ast.Constant):
                    return urlsplit(str(value.value)).path
                if isinstance(value, ast.JoinedStr) and isinstance(value.values[-1], ast.Constant):
                    return str(value.values[-1].value)
    raise AssertionError("scripts/stack.py sets no CSCX_WEB_APP_URL")
