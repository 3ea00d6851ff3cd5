"""Debian's Chromium, as the console's browser tests and benchmark launch it through Playwright.

Playwright's own browser download cannot work on this network, so it drives the system
browser (`make install` installs the `chromium` package) through `executable_path`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

# Without the background-networking flags, Chromium's own connections to Google's services are
# refused by the closed network, many at a time; the others keep it from trying either.
FLAGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ChromiumMissingError(RuntimeError):
    """No system Chromium to drive."""


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise ChromiumMissingError("Chromium is missing: `make install` installs Debian's chromium package")
    return path


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium with a fresh profile of its own (Playwright makes one per launch)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=list(FLAGS))
