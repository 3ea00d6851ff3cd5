"""No module of `common/` or `standins/` grows past about 600 lines (issue 14): one that does holds
more than one job, and becomes a package named after its concern (STYLE.md: `common/llm/`,
`common/google/`, `standins/google/`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.stack import ROOT

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

# About 600 lines: the bound is 630, every line counted (docstrings, comments, blank lines).
MAX_LINES = 630
PACKAGES = ("common", "standins")


def modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_no_module_of_common_or_standins_is_over_about_600_lines() -> None:
    sizes = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines()) for path in modules()}
    assert len(sizes) > 40, "the modules were not found"
    over = {module: lines for module, lines in sizes.items() if lines > MAX_LINES}
    assert over == {}, f"over {MAX_LINES} lines: split each into a package by concern"
