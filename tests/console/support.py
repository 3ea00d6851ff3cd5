"""What the console's browser tests share: screenshots of each step, signing in, and setting up
a Google connection. Fixtures are in conftest.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from playwright.sync_api import Page, ViewportSize, expect

from tests.conftest import Api, Caller

VIEWPORT: ViewportSize = {"width": 1320, "height": 900}
# Long enough for a contract's upload-and-read or a worker's run on two busy cores; every wait
# ends as soon as the page shows what it waits for.
WAIT_MS = 20_000


class Steps:
    """Screenshots of a test's steps, numbered in the order taken."""

    saved_in: Path | None = None  # where this run saved them, for the summary at its end

    def __init__(self, page: Page, directory: Path, test: str) -> None:
        self.page = page
        self.directory = directory
        self.test = test
        self.count = 0
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob(f"{test}-*.png"):
            old.unlink()

    def shot(self, step: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.test}-{self.count:02d}-{re.sub(r'[^a-z0-9]+', '-', step.lower())}.png"
        self.page.screenshot(path=path, full_page=True)
        Steps.saved_in = self.directory
        return path


def sign_in(page: Page, console: str, user: Caller) -> None:
    page.goto(f"{console}/customers")
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()


def connect_google(crud: Api, user: Caller) -> None:
    """Connects `user`'s Google through the API as the browser's round trip would (setup for
    tests of other things): crud's authorization URL, the stand-in's consent, the callback, and
    the complete step where the callback asks for one (DESIGN §5)."""
    started = crud.post("/integrations/google/connect", user)
    assert started.status_code == 200, started.text
    at_google = requests.get(started.json()["auth_url"], allow_redirects=False, timeout=10)
    back = requests.get(at_google.headers["Location"], allow_redirects=False, timeout=10)
    landing = parse_qs(urlsplit(back.headers["Location"]).query)
    if landing.get("google") == ["pending"]:
        completed = crud.post("/integrations/google/complete", user, json={"grant": landing["grant"][0]})
        assert completed.status_code == 200, completed.text
    status = crud.get("/integrations/google", user).json()
    assert status["status"] == "connected", (landing, status)


def agent_messages(page: Page) -> Any:
    return page.get_by_role("article", name="Agent said")


def agent_said(text: str) -> re.Pattern[str]:
    """An agent's message holding exactly `text` (after its heading, which only a screen reader shows)."""
    return re.compile(rf"^Agent\s*{re.escape(text.strip())}\s*$")
