"""Mutated copies of terraform/: a copy to change, and the edits the tests make to it."""

from __future__ import annotations

import shutil
from pathlib import Path

from terraform.checks.tree import TERRAFORM


def copy_terraform(tmp_path: Path) -> Path:
    """terraform/ copied under `tmp_path`, without any environment's own configuration or state."""
    target = tmp_path / "terraform"
    ignored = shutil.ignore_patterns(".terraform", "*.tfvars", "backend.hcl", "tfplan", "*.zip", "__pycache__")
    shutil.copytree(TERRAFORM, target, ignore=ignored)
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
