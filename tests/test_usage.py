"""Model spend per user and UTC day (DESIGN §4, issue 15 point 3), through the running functions:
the tokens the model stand-ins report (Claude's and Gemini's wire formats, read by the real SDKs)
are what `GET /usage` shows; a spent budget refuses the next chat turn or contract parse with 429
and `Retry-After` before anything is written; a turn or a parse that runs out mid-way ends cleanly,
kept as far as it went. The low-budget tests run variants of the functions with a budget of 1,000.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from scripts.stack import Stack
from standins.client import StandinClient
from tests.chat_support import Chat, ChatReply, StreamReader, has_text
from tests.conftest import Api, Caller, assert_error
from tests.test_chat import WIRE, checked, stored_messages, stored_session, wait_until_idle
from tests.test_contracts import script_terms, terms_answer, upload

BUDGET = 1_000
PROVIDERS = ["claude", "gemini"]
FILLER = "Each party shall keep the other's confidential information confidential and use it only for this agreement. "


@pytest.fixture(scope="module")
def low(stack: Stack) -> dict[str, Api]:
    """crud, chat_stream and contract_parse with a daily budget of 1,000 tokens."""
    budget = {"CSCX_DAILY_TOKEN_BUDGET": str(BUDGET)}
    return {
        name: Api(stack.start_variant(name, "low-budget", budget)) for name in ("crud", "chat_stream", "contract_parse")
    }


def turn(provider: str, *steps: dict[str, Any], **usage: int) -> dict[str, Any]:
    return {"provider": WIRE[provider], "steps": list(steps), "usage": usage}


def usage_of(crud: Api, user: Caller) -> dict[str, Any]:
    response = crud.get("/usage", user)
    assert response.status_code == 200, response.text
    return dict(response.json())


def log_lines(stack: Stack, process: str) -> list[dict[str, Any]]:
    lines = (stack.log_dir / f"{process}.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def seconds_to_midnight() -> float:
    now = datetime.now(UTC)
    return (datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC) - now).total_seconds()


def assert_budget_spent(response: requests.Response) -> None:
    error = assert_error(response, 429, "RESOURCE_EXHAUSTED")
    assert "budget" in error["message"]
    assert abs(int(response.headers["Retry-After"]) - seconds_to_midnight()) < 30


# -- what is counted -----------------------------------------------------------------------


def test_usage_counts_every_model_call_as_claude_and_gemini_report_it(
    stack: Stack, chat: Chat, crud: Api, models: StandinClient, alice: Caller
) -> None:
    models.script(
        turn("claude", {"tool_call": {"name": "list_customers", "input": {}}}, input_tokens=300, output_tokens=40),
        turn("claude", {"text": "You have no customers yet."}, input_tokens=500, output_tokens=60),
    )
    claude = chat.send(alice, message="Who are my customers?", provider="claude")
    models.script(turn("gemini", {"text": "Still none."}, input_tokens=200, output_tokens=30, thinking_tokens=70))
    gemini = chat.send(alice, message="And now?", session_id=claude.session_id, provider="gemini")

    checked(claude), checked(gemini)
    today = datetime.now(UTC).date()
    assert usage_of(crud, alice) == {
        "day": today.isoformat(),
        "tokens_used": 340 + 560 + 300,  # Gemini's thoughts are output too
        "token_budget": 30_000_000,
        "resets_at": f"{today + timedelta(days=1)}T00:00:00Z",
    }
    turns = [line for line in log_lines(stack, "chat_stream") if line.get("message") == "model usage"]
    logged = [line for line in turns if line.get("session_id") == claude.session_id]
    assert [[(c["provider"], c["input_tokens"], c["output_tokens"]) for c in line["calls"]] for line in logged] == [
        [("claude", 300, 40), ("claude", 500, 60)],
        [("gemini", 200, 100)],
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stopped_turn_still_counts_what_it_spent(
    stack: Stack, chat: Chat, crud: Api, models: StandinClient, alice: Caller, provider: str
) -> None:
    hanging = turn(provider, {"text": "Thinking about it"}, {"hang_ms": 20_000}, input_tokens=5_000, output_tokens=900)
    models.script(hanging)
    with chat.open(alice, message="Think hard", provider=provider) as response:
        reader = StreamReader(response)
        reply = reader.until(has_text)
        assert chat.stop(alice, reply.session_id).status_code == 202
        reader.until()
    wait_until_idle(reply.session_id)

    # Claude told the input at the message's start; Gemini tells nothing before its end, so what
    # was sent and said is estimated (four characters a token).
    used = usage_of(crud, alice)["tokens_used"]
    assert used >= (5_000 if provider == "claude" else 1_000), used
    [line] = [
        line
        for line in log_lines(stack, "chat_stream")
        if line.get("message") == "model usage" and line.get("session_id") == reply.session_id
    ]
    assert line["calls"][0]["estimated"] is True


def test_two_turns_at_once_add_up_and_cross_each_alert_line_once(
    stack: Stack, low: dict[str, Api], models: StandinClient, alice: Caller
) -> None:
    chat = Chat(low["chat_stream"])
    for n in (1, 2):
        models.script({"match": f"turn {n}", "first_token_delay_ms": 1000, "steps": [{"text": "Yes."}],
                       "usage": {"input_tokens": 400, "output_tokens": 100}})  # fmt: skip
    replies: list[ChatReply] = []
    threads = [
        threading.Thread(target=lambda n=n: replies.append(chat.send(alice, message=f"turn {n}"))) for n in (1, 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [checked(reply).text for reply in replies] == ["Yes.", "Yes."]
    first, second = models.requests()
    assert first.finished_at is not None
    assert second.received_at < first.finished_at  # the two calls overlapped
    assert usage_of(low["crud"], alice)["tokens_used"] == 1_000
    lines = log_lines(stack, "chat_stream-low-budget")
    alerts = [line for line in lines if line["logger"] == "common.usage" and line.get("uid") == alice.uid]
    assert [(a["message"], a["severity"], a["tokens_used"], a["token_budget"]) for a in alerts] == [
        ("model budget mostly spent", "WARNING", 1_000, BUDGET),
        ("model budget spent", "WARNING", 1_000, BUDGET),
    ]


# -- the chat, once the budget is spent ------------------------------------------------------


def test_a_spent_budget_refuses_a_new_turn_with_429_and_writes_nothing(
    low: dict[str, Api], models: StandinClient, alice: Caller, bob: Caller
) -> None:
    chat = Chat(low["chat_stream"])
    models.script(turn("claude", {"text": "That was expensive."}, input_tokens=900, output_tokens=200))
    first = chat.send(alice, message="Summarise my book")
    checked(first)
    before = stored_session(first.session_id)

    assert_budget_spent(chat.api.post("/chat", alice, json={"message": "One more"}))
    assert_budget_spent(chat.api.post("/chat", alice, json={"message": "One more", "session_id": first.session_id}))

    assert len(models.requests()) == 1
    assert stored_session(first.session_id) == before
    assert len(stored_messages(first.session_id)) == 2
    assert len(low["crud"].get("/sessions", alice).json()["items"]) == 1
    figures = usage_of(low["crud"], alice)
    assert (figures["tokens_used"], figures["token_budget"]) == (1_100, BUDGET)
    models.script(turn("claude", {"text": "Hello Bob."}, input_tokens=10, output_tokens=5))
    assert checked(chat.send(bob, message="Hello")).text == "Hello Bob."  # each user's own budget


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_turn_that_runs_out_mid_way_ends_with_error_and_is_stored_as_far_as_it_went(
    low: dict[str, Api], models: StandinClient, alice: Caller, provider: str
) -> None:
    chat = Chat(low["chat_stream"])
    models.script(
        turn(provider, {"text": "Looking. "}, {"tool_call": {"name": "list_customers", "input": {}}},
             input_tokens=900, output_tokens=150),
        turn(provider, {"text": "Never asked for."}),
    )  # fmt: skip

    reply = chat.send(alice, message="Who are my customers?", provider=provider)

    check = checked(reply)
    assert reply.types[-2:] == ["error", "finish"]
    assert reply.parts[-1] == {"type": "finish", "finishReason": "error"}
    assert "budget" in reply.parts[-2]["errorText"]
    assert [part["state"] for part in check.tool_parts()] == ["output-available"]
    assert len(models.requests()) == 1
    assistant = stored_messages(reply.session_id)[-1]
    assert assistant["status"] == "error"
    assert "budget" in assistant["error"]
    assert [part["type"] for part in assistant["parts"]][:2] == ["step-start", "text"]
    assert any(part.get("toolCallId") for part in assistant["parts"])
    assert wait_until_idle(reply.session_id)["status"] == "idle"
    assert usage_of(low["crud"], alice)["tokens_used"] == 1_050


# -- contracts --------------------------------------------------------------------------------


def contract_text(pages: list[str]) -> bytes:
    return "\f".join(pages).encode()


ORDER = contract_text(["ORDER FORM. This agreement runs for an initial term of twelve (12) months.", "Signed."])
TERM = terms_answer(term_months=(12, "an initial term of twelve (12) months", 1))


def test_an_upload_or_reparse_with_the_budget_spent_is_429_and_stores_nothing(
    stack: Stack, low: dict[str, Api], models: StandinClient, alice: Caller
) -> None:
    contracts, crud = low["contract_parse"], low["crud"]
    customer = crud.post("/customers", alice, json={"name": "Acme"}).json()
    script_terms(models, TERM, usage={"input_tokens": 900, "output_tokens": 200})
    first = upload(contracts, alice, ORDER, customer["id"], name="order.txt")
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "parsed"

    other = contract_text(["ORDER FORM. A second order of fifty seats.", "Signed."])
    assert_budget_spent(upload(contracts, alice, other, customer["id"], name="second.txt"))
    assert_budget_spent(contracts.post(f"/contracts/{first.json()['id']}/reparse", alice))

    assert len(models.requests()) == 1
    assert [c["id"] for c in crud.get("/contracts", alice).json()["items"]] == [first.json()["id"]]
    assert crud.get(f"/contracts/{first.json()['id']}", alice).json() == first.json()
    bucket = stack.settings()["CSCX_CONTRACTS_BUCKET"]
    listed = requests.get(
        f"http://127.0.0.1:{stack.ports.storage}/storage/v1/b/{bucket}/o",
        params={"prefix": f"contracts/{alice.uid}/"},
        timeout=10,
    ).json()
    assert len(listed.get("items", [])) == 1
    again = upload(contracts, alice, ORDER, customer["id"], name="order.txt")
    assert again.status_code == 200, again.text  # the file already read calls no model
    assert again.json()["id"] == first.json()["id"]


def test_a_parse_that_runs_out_mid_way_fails_and_keeps_the_earlier_terms(
    low: dict[str, Api], models: StandinClient, alice: Caller
) -> None:
    contracts, crud = low["contract_parse"], low["crud"]
    customer = crud.post("/customers", alice, json={"name": "Acme"}).json()
    # Two runs of pages (60,000 characters each at most), so two model calls a parse.
    pages = [
        "ORDER FORM. This agreement runs for an initial term of twelve (12) months.",
        *[f"Clause {n}. {FILLER * 25}" for n in range(2, 40)],
    ]
    script_terms(models, TERM, usage={"input_tokens": 100, "output_tokens": 50})
    script_terms(models, {"confidence": {}, "evidence": {}}, usage={"input_tokens": 100, "output_tokens": 50})
    parsed = upload(contracts, alice, contract_text(pages), customer["id"], name="msa.txt")
    assert parsed.status_code == 201, parsed.text
    assert parsed.json()["extracted"]["term_months"] == 12
    assert len(models.requests()) == 2

    script_terms(models, TERM, usage={"input_tokens": 600, "output_tokens": 100})
    reparsed = contracts.post(f"/contracts/{parsed.json()['id']}/reparse", alice)

    assert reparsed.status_code == 200, reparsed.text
    contract = reparsed.json()
    assert contract["status"] == "failed"
    assert "budget" in contract["parse_error"]
    assert contract["extracted"] == parsed.json()["extracted"]  # the earlier terms, not half of new ones
    assert len(models.requests()) == 3
    assert usage_of(crud, alice)["tokens_used"] == 300 + 700
    assert_budget_spent(contracts.post(f"/contracts/{contract['id']}/reparse", alice))


def test_a_long_contract_sends_at_most_the_cap_its_terms_first(
    stack: Stack, crud: Api, models: StandinClient, alice: Caller
) -> None:
    contracts = Api(stack.start_variant("contract_parse", "small-cap", {"CSCX_CONTRACT_MODEL_CHARS": "4000"}))
    customer = crud.post("/customers", alice, json={"name": "Acme"}).json()
    pages = [f"Clause {n}. {FILLER * 20}" for n in range(1, 31)]
    pages[0] = "ORDER FORM by and between Acme Corp and CSCX Inc, effective January 1, 2026. " + FILLER * 3
    pages[16] = f"{FILLER * 5}Fees. The Customer shall pay $48,000 per year, invoiced annually, net 30. {FILLER * 5}"
    pages[29] = "Signed for Acme Corp: Jane Roe, Title: CFO, jane@acme.example. " + FILLER * 2
    answer = terms_answer(total_value=("$48,000", "The Customer shall pay $48,000 per year", 17))
    script_terms(models, answer)

    response = upload(contracts, alice, contract_text(pages), customer["id"], name="msa.txt")

    assert response.status_code == 201, response.text
    assert response.json()["extracted"]["evidence"]["total_value"]["page"] == 17
    [request] = models.requests()
    sent = request.body["messages"][0]["content"][0]["text"]
    # The cover, the signature page and the fees first; then, by the rule's tie, the earliest
    # page, cut where the cap is reached and marked.
    assert [n for n in range(1, 31) if f"[page {n}]\n" in sent] == [1, 2, 17, 30]
    texts = {int(text.split("]", 1)[0]): text.split("\n", 1)[1] for text in sent.split("\n\n[page ")[1:]}
    assert sum(len(text) for text in texts.values()) <= 4_000
    assert "by and between Acme Corp" in texts[1]
    assert "$48,000 per year" in texts[17]
    assert "jane@acme.example" in texts[30]
    assert texts[2].endswith("\n[…]\n")
    assert len(texts[2]) < len(pages[1])
