"""terraform/ parsed: the .tf files of each module and environment, by python-hcl2."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
ENVIRONMENTS = ("dev", "staging", "prod")
Problems = list[str]  # what a check found wrong, one sentence each
PARSE_OPTIONS = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=False)


@functools.cache
def parse(text: str) -> dict[str, Any]:
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
    files = {tf.name: parse(tf.read_text(encoding="utf-8")) for tf in sorted(path.glob("*.tf"))}
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
