"""What the console shows when the API refuses (DESIGN §4, §12), in a real browser against the
stack: the contract's own message and code where it happened, when to try again if the answer
says, and never a blank screen — a chat turn refused with the day's model budget spent (429),
and a contract over a limit (422, the message naming the limit); and a view whose code cannot
load."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from standins.client import StandinClient
from tests.chat_support import Chat
from tests.conftest import Api, Caller
from tests.console.support import Steps, agent_messages, agent_said, sign_in


def test_a_turn_refused_with_the_budget_spent_shows_why_and_when_to_try_again(
    page: Page, console: str, steps: Steps, alice: Caller, chat: Chat, crud: Api, models: StandinClient
) -> None:
    budget = crud.get("/usage", alice).json()["token_budget"]
    models.script({"steps": [{"text": "Fine."}], "usage": {"input_tokens": budget, "output_tokens": 1}})
    spent = chat.send(alice, message="How is my book?")
    assert spent.status == 200
    sign_in(page, console, alice)
    page.goto(f"{console}/chat/{spent.session_id}")
    expect(agent_messages(page)).to_have_text([agent_said("Fine.")])

    page.get_by_label("Message", exact=True).fill("And the renewals?")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/chat")) as refused:
        page.get_by_role("button", name="Send").click()
    assert refused.value.status == 429
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"Today's model budget of {budget:,} tokens is spent; it renews at 00:00 UTC.")
    expect(alert).to_contain_text("(RESOURCE_EXHAUSTED)")
    # Retry-After, which the API lets a page of another origin read: when to try again, in local time.
    exposed = refused.value.headers.get("access-control-expose-headers", "").lower()
    assert "retry-after" in [name.strip() for name in exposed.split(",")]
    hint = re.compile(r"You can try again (today|tomorrow) at \S+|You can try again in \d+ seconds?\.")
    expect(alert).to_contain_text(hint)
    # Nothing was stored: the message is back in the box, and the conversation is as it was.
    expect(page.get_by_label("Message", exact=True)).to_have_value("And the renewals?")
    expect(agent_messages(page)).to_have_count(1)
    steps.shot("the budget spent")
    stored = crud.get(f"/sessions/{spent.session_id}/messages", alice).json()["items"]
    assert [m["role"] for m in stored] == ["user", "assistant"]


def test_a_contract_over_a_limit_shows_the_message_naming_the_limit(
    page: Page, console: str, steps: Steps, alice: Caller, crud: Api
) -> None:
    customer = crud.post("/customers", alice, json={"name": "Acme Corp"}).json()
    sign_in(page, console, alice)
    page.goto(f"{console}/customers/{customer['id']}")
    upload = page.get_by_role("form", name="Upload a contract")
    upload.get_by_label("Contract file").set_input_files(
        {"name": "long.txt", "mimeType": "text/plain", "buffer": b"Fees. " * 333_334}
    )
    upload.get_by_role("button", name="Upload contract").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("more than 2,000,000 characters of text")
    expect(alert).to_contain_text("(UNPROCESSABLE_ENTITY)")
    expect(page.get_by_role("heading", name="Acme Corp", level=1)).to_be_visible()
    steps.shot("the contract over the limit")


def test_a_view_whose_code_cannot_load_says_so_under_the_navigation(
    page: Page, console: str, steps: Steps, alice: Caller
) -> None:
    sign_in(page, console, alice)
    # As after a release that replaced the console's files while this page was open.
    page.route(re.compile(r"/assets/SettingsView-[^/]+\.js$"), lambda route: route.abort())
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="This page could not be shown", level=1)).to_be_visible()
    expect(page.get_by_role("alert").get_by_role("button", name="Reload the page")).to_be_visible()
    steps.shot("a view that could not load")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
