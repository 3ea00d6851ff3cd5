"""The console (web/) in a real browser: Debian's Chromium driven by Playwright, against the
suite's stack, the way a CSM uses it. Pages are found by role and label, never by CSS.

Each test's steps are saved as screenshots under `.stack/test-<offset>/console/`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from scripts.chromium import ChromiumMissingError, launch
from scripts.stack import Stack
from tests.console.support import VIEWPORT, WAIT_MS, Steps


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # Module-scoped: the sync API holds an event loop, which no other test module should meet.
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    try:
        browser = launch(playwright)
    except ChromiumMissingError as error:
        pytest.fail(str(error))
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def console(stack: Stack) -> str:
    """The console's URL: the build served on the stack's web port, with the stack's config."""
    return stack.start_console()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def steps(page: Page, stack: Stack, request: pytest.FixtureRequest) -> Steps:
    name = request.node.name.removeprefix("test_")[:60]
    return Steps(page, stack.log_dir / "console", name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if Steps.saved_in:
        terminalreporter.write_line(f"console screenshots of each step: {Steps.saved_in}")
