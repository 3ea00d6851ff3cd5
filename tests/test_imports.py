"""The import rules of `common/` (STYLE.md), read from the source with `ast`: no emulator.

- No import cycle inside `common/`, counting imports made inside functions (and under
  TYPE_CHECKING) as well as module-level ones.
- The platform never imports the domain; the domain imports the platform.
- `models` loads nothing of the HTTP edge, and `validation` nothing of `common/` at all.

Every module of `common/` is placed in the platform or the domain below, so a new one must be
placed before the suite passes.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from scripts.stack import ROOT

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

# The top-level modules and packages of common/, by layer (STYLE.md, "A shape for common/").
PLATFORM = frozenset(
    {
        "auth",
        "cloud_tasks",
        "collections",
        "currencies",
        "cursors",
        "errors",
        "files",
        "http",
        "idempotency",
        "instance",
        "lease",
        "limits",
        "log",
        "sealing",
        "settings",
        "store",
        "validation",
    }
)
DOMAIN = frozenset({"actions", "agent", "contracts", "google", "llm", "models", "resources", "usage"})


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path, package: str = "common") -> dict[str, Path]:
    return {_module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an import of `name` loads: itself, or the package that holds the name."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that importing `name` can load, wherever the import statement is
    (module level, inside a function, under TYPE_CHECKING), each with the packages above it
    that are not `name`'s own (those are loaded before `name` itself)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named |= {_resolve(alias.name, modules) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                named.add(full if full in modules else _resolve(base, modules))
    own = {".".join(name.split(".")[:end]) for end in range(1, name.count(".") + 2)}
    loaded: set[str] = set()
    for module in named - {None}:
        assert module is not None
        parts = module.split(".")
        loaded |= {".".join(parts[:end]) for end in range(1, len(parts) + 1)}
    return loaded - own


@functools.cache
def graph() -> dict[str, frozenset[str]]:
    modules = _modules(ROOT)
    return {name: frozenset(imports_of(name, path, modules)) for name, path in modules.items()}


def _layer(module: str) -> str | None:
    top = module.split(".")[1] if "." in module else ""
    return "platform" if top in PLATFORM else "domain" if top in DOMAIN else None


def _cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(edges.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def _reached(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for module in graph()[todo.pop()] - seen:
            seen.add(module)
            todo.append(module)
    return seen


def test_every_module_of_common_is_placed_in_a_layer() -> None:
    unplaced = [module for module in graph() if module != "common" and _layer(module) is None]
    assert unplaced == [], "add them to PLATFORM or DOMAIN in tests/test_imports.py"


def test_common_has_no_import_cycle() -> None:
    assert _cycles(graph()) == []


@pytest.mark.parametrize("module", sorted(m for m in graph() if _layer(m) == "platform"))
def test_the_platform_imports_no_domain_module(module: str) -> None:
    assert sorted(m for m in graph()[module] if _layer(m) == "domain") == []


def test_models_load_nothing_of_the_http_edge() -> None:
    assert sorted(m for m in _reached("common.models") if m.startswith(("common.http", "common.idempotency"))) == []


def test_validation_imports_nothing_of_common() -> None:
    assert graph()["common.validation"] == frozenset()


# -- the reader itself: what it must see for the rules above to mean anything ---------------


def test_the_reader_sees_imports_inside_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    package = tmp_path / "common"
    (package / "inner").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "b.py", "c.py", "inner/__init__.py", "inner/d.py"):
        (package / name).write_text("")
    (package / "inner" / "e.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import d\n"
        "if TYPE_CHECKING:\n"
        "    from common import a\n"
        "def later() -> None:\n"
        "    import common.b\n"
        "    from ..c import name_in_c\n"
    )
    modules = _modules(tmp_path)
    found = imports_of("common.inner.e", package / "inner" / "e.py", modules)
    assert found == {"common.inner.d", "common.a", "common.b", "common.c"}


def test_a_cycle_through_a_function_level_import_is_found() -> None:
    edges = {"common.a": frozenset({"common.b"}), "common.b": frozenset({"common.a"}), "common.c": frozenset()}
    assert _cycles(edges) == [["common.a", "common.b"]]
