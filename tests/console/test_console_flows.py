"""The console (issue 18, DESIGN §12) in a real browser, headless Chromium, against the running
stack and its stand-ins: the launch checklist as a CSM walks it — sign up, create a customer,
read a contract's terms with their quotes and pages, watch an answer stream, stop one, approve a
proposed e-mail and see it sent, and see nothing of another user's.

Settings, approval cards, resuming and refusals have their own files beside this one.
"""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import Page, expect

from scripts.stack import Stack
from standins.client import StandinClient
from standins.google_client import GoogleStandinClient
from tests.conftest import Api, Caller, Users, seed_action
from tests.console.support import Steps, agent_messages, connect_google, sign_in
from tests.test_contract_text import pdf_of
from tests.test_contracts import ORDER_FORM, script_terms, terms_answer


def test_a_csm_signs_up_creates_a_customer_and_reads_a_contracts_terms(
    page: Page, console: str, steps: Steps, crud: Api, models: StandinClient, users: Users
) -> None:
    page.goto(console)
    steps.shot("sign-in page")
    page.get_by_role("button", name="New here? Create an account").click()
    page.get_by_label("E-mail").fill("dana@cscx-success.com")
    page.get_by_label("Password").fill("renewals-2026")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
    expect(page.get_by_text("No customers yet")).to_be_visible()
    steps.shot("signed up, empty book")

    page.get_by_role("button", name="New customer").click()
    form = page.get_by_role("form", name="New customer")
    form.get_by_label("Name", exact=True).fill("Acme Corp")
    form.get_by_label("Domain").fill("acme.com")
    form.get_by_label("Stage").select_option("renewing")
    form.get_by_label("Contact name").fill("Dana Whitfield")
    form.get_by_label("Contact e-mail").fill("dana@acme.com")
    form.get_by_role("button", name="Add stakeholder").click()
    form.get_by_label("Stakeholder 1 name").fill("Sam Okafor")
    form.get_by_label("Stakeholder 1 e-mail").fill("sam@acme.com")
    form.get_by_label("Champion").check()
    steps.shot("new customer form")
    form.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("heading", name="Acme Corp", level=1)).to_be_visible()
    expect(page.get_by_text("Sam Okafor")).to_be_visible()

    script_terms(
        models,
        terms_answer(
            effective_date=("January 1, 2026", "This Order Form is effective as of January 1, 2026", 2),
            term_months=("twelve (12) months", "an initial term of twelve (12) months", 2),
            total_value=("$120,000", "The total contract value is $120,000", 3),
        ),
    )
    upload = page.get_by_role("form", name="Upload a contract")
    upload.get_by_label("Contract file").set_input_files(
        {"name": "acme-order-form.pdf", "mimeType": "application/pdf", "buffer": pdf_of(ORDER_FORM)}
    )
    upload.get_by_label("Title (optional)").fill("Acme order form")
    upload.get_by_role("button", name="Upload contract").click()
    terms = page.get_by_role("table", name="Terms of Acme order form")
    total = terms.get_by_role("row", name="Total value")
    expect(total).to_contain_text("$120,000")
    expect(total).to_contain_text("The total contract value is $120,000")
    expect(total).to_contain_text("page 3")
    expect(terms.get_by_role("row", name="Effective date")).to_contain_text("page 2")
    steps.shot("contract terms with quotes and pages")

    terms.get_by_role("button", name="Correct Term").click()
    correction = page.get_by_role("form", name="Correct Term")
    correction.get_by_label("Term").fill("24")
    correction.get_by_role("button", name="Save Term").click()
    term = terms.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Term", exact=True))
    expect(term).to_contain_text("24 months")
    expect(term).to_contain_text("Corrected by you")
    steps.shot("a term corrected")

    owner = users.sign_in(Caller("", "dana@cscx-success.com", "renewals-2026", ""))
    [stored] = crud.get("/contracts", owner).json()["items"]
    assert stored["extracted"]["term_months"] == 24
    assert "term_months" in stored["extracted"]["corrected"]
    [customer] = crud.get("/customers", owner).json()["items"]
    assert customer["primary_contact"]["email"] == "dana@acme.com"
    assert customer["stakeholders"][0]["is_champion"] is True
    # The parsed contract filled the customer's ARR, and the page shows it without a reload.
    expect(page.get_by_role("region", name="Account")).to_contain_text("$120,000")


def test_an_answer_streams_into_the_page_and_stop_cancels_the_turn(
    page: Page, console: str, steps: Steps, alice: Caller, chat: Any, crud: Api, models: StandinClient
) -> None:
    words = [{"text": f"word{n} ", "delay_ms": 250} for n in range(10)]
    models.script(
        {"steps": [{"text": "Acme renews in March. "}, *words]},
        {
            "steps": [
                {"text": "Here is a long review: "},
                {"repeat": {"text": "more ", "count": 400, "interval_ms": 50}},
            ]
        },
    )
    sign_in(page, console, alice)
    page.get_by_role("link", name="Chat", exact=True).click()
    expect(page.get_by_role("heading", name="New chat", level=1)).to_be_visible()
    box = page.get_by_label("Message", exact=True)
    box.fill("When does Acme renew?")
    box.press("Enter")

    answer = agent_messages(page).last
    expect(answer).to_contain_text("Acme renews in March.")
    early = answer.inner_text()
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    steps.shot("the answer arriving")
    expect(answer).to_contain_text("word4")
    later = answer.inner_text()
    # The text grew while the stream was still open: Stop is still offered.
    assert len(later) > len(early), (early, later)
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    assert "word9" not in later
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    full = "Acme renews in March. " + "".join(f"word{n} " for n in range(10))
    expect(answer).to_have_text(re.compile(r"^Agent\s*" + re.escape(full.strip()) + r"\s*$"))
    expect(page).to_have_url(f"{console}/chat/" + page.url.rsplit("/", 1)[-1])
    session_id = page.url.rsplit("/", 1)[-1]
    steps.shot("the answer complete")

    box.fill("Give me the long review")
    page.get_by_role("button", name="Send").click()
    expect(agent_messages(page).last).to_contain_text("more more")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Stopped: the answer was cut here.")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    steps.shot("stopped")

    upstream = models.wait_for_request(2, finished=True)
    assert upstream.client_closed, "the model's call was not cut"
    assert upstream.outcome != "completed"
    stored = crud.get(f"/sessions/{session_id}/messages", alice).json()["items"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[3]["status"] == "cancelled"
    assert stored[3]["parts"][-1]["text"].startswith("Here is a long review: more")

    # The session's history, opened afresh, shows both turns and the cut.
    page.reload()
    expect(agent_messages(page)).to_have_count(2)
    expect(page.get_by_text("Stopped: the answer was cut here.")).to_be_visible()
    expect(page.get_by_role("navigation", name="Chat sessions").get_by_role("link")).to_have_count(1)


def test_approving_a_proposed_email_sends_it_once_and_the_card_says_sent(
    page: Page, console: str, steps: Steps, alice: Caller, crud: Api, models: StandinClient, stack: Stack
) -> None:
    google = GoogleStandinClient(f"http://127.0.0.1:{stack.ports.google}")
    google.reset()
    connect_google(crud, alice)
    customer = crud.post(
        "/customers",
        alice,
        json={"name": "Acme Corp", "domain": "acme.com", "primary_contact": {"name": "Dana", "email": "dana@acme.com"}},
    ).json()
    proposal = {
        "to": ["dana@acme.com"],
        "cc": [],
        "subject": "Renewal next quarter",
        "body": "Hi Dana,\n\nShall we meet about the renewal?\n\nBest",
        "customer_id": customer["id"],
    }
    models.script(
        {"steps": [{"text": "I'll draft that. "}, {"tool_call": {"name": "send_email", "input": proposal}}]},
        {"steps": [{"text": "I proposed the e-mail to Dana; it waits for your approval."}]},
    )
    sign_in(page, console, alice)
    page.goto(f"{console}/chat?customer={customer['id']}")
    expect(page.get_by_text("About Acme Corp")).to_be_visible()
    page.get_by_label("Message", exact=True).fill("Email Dana about the renewal")
    page.get_by_role("button", name="Send").click()

    card = page.get_by_role("article", name="E-mail to send: Renewal next quarter")
    expect(card).to_be_visible()
    expect(card.get_by_role("region", name="Recipients")).to_contain_text("dana@acme.com")
    expect(card).to_contain_text("High risk")
    expect(card).to_contain_text("Shall we meet about the renewal?")
    expect(agent_messages(page).last).to_contain_text("it waits for your approval")
    steps.shot("the proposal's approval card")
    assert [m["to"] for m in google.state()["accounts"].get("csm@example.com", {}).get("sent", [])] == []

    card.get_by_role("button", name="Approve").click()
    expect(card.get_by_text("Sent to dana@acme.com.")).to_be_visible()
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    steps.shot("approved and sent")

    [sent] = google.account("csm@example.com")["sent"]
    assert sent["to"] == ["dana@acme.com"]
    assert sent["subject"] == "Renewal next quarter"
    time.sleep(1)  # a second delivery, were there one, would have come by now
    assert len(google.account("csm@example.com")["sent"]) == 1
    page.get_by_role("link", name="Actions").click()
    page.get_by_label("Show").select_option("executed")
    executed = page.get_by_role("article", name="E-mail to send: Renewal next quarter")
    expect(executed.get_by_text("Sent to dana@acme.com.")).to_be_visible()


def test_a_second_user_sees_none_of_the_first_users_data(
    page: Page, console: str, steps: Steps, alice: Caller, bob: Caller, crud: Api, chat: Any, models: StandinClient
) -> None:
    customer = crud.post("/customers", alice, json={"name": "Alicecorp", "notes": "alice's secret"}).json()
    crud.post("/tasks", alice, json={"title": "Call Alicecorp", "customer_id": customer["id"]})
    models.script({"steps": [{"text": "Alicecorp is fine."}]})
    session_id = chat.send(alice, message="How is Alicecorp?", customer_id=customer["id"]).session_id
    seed_action(alice.uid, customer_id=customer["id"], summary="Create the task “Alice's follow-up”")

    sign_in(page, console, bob)
    expect(page.get_by_text("No customers yet")).to_be_visible()
    steps.shot("an empty book")
    page.get_by_label("Search by name").fill("Alice")
    expect(page.get_by_text("No customer matches these filters.")).to_be_visible()

    page.goto(f"{console}/customers/{customer['id']}")
    expect(page.get_by_role("heading", name="Customer not found")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("NOT_FOUND")
    steps.shot("another user's customer is not found")

    page.goto(f"{console}/chat/{session_id}")
    expect(page.get_by_role("alert").first).to_contain_text("NOT_FOUND")
    expect(page.get_by_role("navigation", name="Chat sessions").get_by_role("link")).to_have_count(0)
    expect(page.get_by_text("Alicecorp is fine.")).to_have_count(0)

    page.get_by_role("link", name="Actions").click()
    expect(page.get_by_text("Nothing is waiting for your decision.")).to_be_visible()
    page.get_by_label("Show").select_option("")
    expect(page.get_by_text("No actions here.")).to_be_visible()
    steps.shot("no actions of another user")
    assert "alice" not in page.content().lower()
