"""What a deployed function installs is pinned apart from the tooling, and agrees with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

ROOT = Path(__file__).resolve().parent.parent


def pins(name: str) -> dict[str, str]:
    """package (normalised) → exact version, from a requirements or lock file."""
    found: dict[str, str] = {}
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-r"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert match, f"{name}: not an exact pin: {line!r}"
        found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


def test_the_runtime_lock_pins_every_direct_runtime_dependency_at_its_version() -> None:
    runtime, lock = pins("requirements.txt"), pins("requirements.lock")
    assert {name: lock.get(name) for name in runtime} == runtime


def test_the_dev_lock_holds_the_runtime_lock_unchanged() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_tooling_is_not_deployed() -> None:
    runtime = pins("requirements.lock")
    for tool in ("pytest", "mypy", "ruff", "schemathesis", "hypothesis", "gcp-storage-emulator", "fpdf2"):
        assert tool not in runtime


def test_make_installs_the_dev_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "-r requirements-dev.lock" in makefile
