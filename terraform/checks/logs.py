"""The log lines the code writes, read from its source: each logger call's message and the fields
it puts on the line (`extra={"fields": ...}`, which common/log.py lifts into the JSON entry).

Read, not run, as the settings are: a message is a string literal, or a name bound to literals
(`for share, message in ((0.8, "..."), ...)`); the fields are the keys of a dict literal, of the
dict a name is bound to in the same function (`fields = {...}`, `fields["key"] = ...`,
`fields |= {...}`), and of the dicts spread into either. A spread of anything else (a call's
result) leaves the line open: other fields may come with it, but only those written here count.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from terraform.checks.tree import ROOT

LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical", "log"})
SOURCES = ("common", "functions")


@dataclass
class Line:
    """Every logger call with one message: the fields they write for certain, and where they are."""

    message: str
    fields: set[str] = field(default_factory=set)
    files: set[Path] = field(default_factory=set)


def logged_lines(code_root: Path = ROOT) -> dict[str, Line]:
    """Each message the code under `code_root` logs, with its fields (the union over its calls)."""
    return _logged_lines(code_root.resolve())


@functools.cache
def _logged_lines(code_root: Path) -> dict[str, Line]:
    lines: dict[str, Line] = {}
    for source in SOURCES:
        for path in sorted((code_root / source).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]:
                for call in _logger_calls(scope):
                    fields = _fields(call, scope)
                    for message in _messages(call, scope):
                        line = lines.setdefault(message, Line(message))
                        line.fields |= fields
                        line.files.add(path.relative_to(code_root))
    return lines


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a module or function, not of the functions defined in it."""
    for child in ast.iter_child_nodes(scope):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        yield child
        yield from _own_nodes(child)


def _logger_calls(scope: ast.AST) -> Iterator[ast.Call]:
    for node in _own_nodes(scope):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id.endswith("logger")
        ):
            yield node


def _messages(call: ast.Call, scope: ast.AST) -> set[str]:
    assert isinstance(call.func, ast.Attribute)
    position = 1 if call.func.attr == "log" else 0
    if len(call.args) <= position:
        return set()
    argument = call.args[position]
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return {argument.value}
    if isinstance(argument, ast.Name):
        return _strings_bound(argument.id, scope)
    return set()  # an f-string: no fixed message


def _strings_bound(name: str, scope: ast.AST) -> set[str]:
    """The string literals `name` is bound to in `scope`: by assignment, or as a for loop's target
    (a name in a tuple target takes that position of each tuple iterated over)."""
    found: set[str] = set()
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                found.add(node.value.value)
        elif isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple | ast.List):
            for item in node.iter.elts:
                if isinstance(node.target, ast.Name) and node.target.id == name:
                    value = item
                elif isinstance(node.target, ast.Tuple) and isinstance(item, ast.Tuple):
                    names = [t.id if isinstance(t, ast.Name) else None for t in node.target.elts]
                    if name not in names or len(item.elts) != len(names):
                        continue
                    value = item.elts[names.index(name)]
                else:
                    continue
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found.add(value.value)
    return found


def _fields(call: ast.Call, scope: ast.AST) -> set[str]:
    extra = next((k.value for k in call.keywords if k.arg == "extra"), None)
    if not isinstance(extra, ast.Dict):
        return set()
    for key, value in zip(extra.keys, extra.values, strict=True):
        if isinstance(key, ast.Constant) and key.value == "fields":
            return _keys_of(value, scope, depth=0)
    return set()


def _keys_of(value: ast.expr, scope: ast.AST, depth: int) -> set[str]:
    """The keys a dict expression surely has."""
    if depth > 5:
        return set()
    if isinstance(value, ast.Dict):
        keys: set[str] = set()
        for key, item in zip(value.keys, value.values, strict=True):
            if key is None:  # **spread
                keys |= _keys_of(item, scope, depth + 1)
            elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                keys.add(key.value)
        return keys
    if isinstance(value, ast.Name):
        return _keys_bound(value.id, scope, depth)
    return set()  # a call's result: not known here


def _keys_bound(name: str, scope: ast.AST, depth: int) -> set[str]:
    keys: set[str] = set()
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            keys |= _keys_of(node.value, scope, depth + 1)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            if node.value is not None:
                keys |= _keys_of(node.value, scope, depth + 1)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            keys |= _keys_of(node.value, scope, depth + 1)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == name
                    and isinstance(target.slice, ast.Constant)
                    and isinstance(target.slice.value, str)
                ):
                    keys.add(target.slice.value)
    return keys
