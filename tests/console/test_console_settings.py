"""Settings in the console (DESIGN §12) in a real browser against the stack: the Google
connection through Google's consent page and §5's complete step, and the day's model usage."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, Request, expect

from scripts.stack import Stack
from standins.client import StandinClient
from standins.google_client import GoogleStandinClient
from tests.conftest import Api, Caller
from tests.console.support import Steps, sign_in


def test_google_connects_through_the_consent_page_and_the_complete_step(
    page: Page, console: str, steps: Steps, alice: Caller, crud: Api, stack: Stack
) -> None:
    google = GoogleStandinClient(f"http://127.0.0.1:{stack.ports.google}")
    google.reset()
    sign_in(page, console, alice)
    page.get_by_role("link", name="Settings").click()
    section = page.get_by_role("region", name="Google account")
    expect(section.get_by_text("Not connected.")).to_be_visible()
    steps.shot("not connected")

    def completes(request: Request) -> bool:
        return request.method == "POST" and request.url.endswith("/integrations/google/complete")

    with page.expect_request(completes) as completion:
        section.get_by_role("button", name="Connect Google").click()
    assert set(json.loads(completion.value.post_data or "{}")) == {"grant"}
    expect(section.get_by_text("Connected as csm@example.com")).to_be_visible()
    expect(page).to_have_url(f"{console}/settings/integrations")  # the one-time grant is off the address
    steps.shot("connected")
    assert crud.get("/integrations/google", alice).json()["status"] == "connected"


def test_the_days_model_usage_shows_in_settings(
    page: Page, console: str, steps: Steps, alice: Caller, chat: Any, crud: Api, models: StandinClient
) -> None:
    models.script({"steps": [{"text": "Fine."}], "usage": {"input_tokens": 1200, "output_tokens": 300}})
    chat.send(alice, message="How is my book?")
    usage = crud.get("/usage", alice).json()
    assert usage["tokens_used"] >= 1500
    sign_in(page, console, alice)
    page.get_by_role("link", name="Settings").click()
    section = page.get_by_role("region", name="Model usage today")
    expect(section).to_contain_text(
        f"{usage['tokens_used']:,} of {usage['token_budget']:,} tokens used on {usage['day']}"
    )
    steps.shot("usage")
