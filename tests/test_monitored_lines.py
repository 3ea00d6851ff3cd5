"""The log lines monitoring counts (terraform/modules/monitoring), written by the running functions
as its filters read them: a chat turn's time to its first token, how it ended and on which model; a
model call that failed; the sweep's oldest approval not carried out yet; a user's day near its
model budget. terraform/checks (monitoring) holds the filters to the code that writes these fields;
these tests hold the code to the lines it really writes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scripts.stack import Stack
from standins.client import StandinClient
from tests.chat_support import Chat, StreamReader
from tests.conftest import Api, Caller, seed_action
from tests.test_chat import WIRE, checked
from tests.test_contract_text import pdf_of
from tests.test_contracts import ORDER_FORM, upload
from tests.test_usage import log_lines, turn

PROVIDERS = ["claude", "gemini"]


def lines_of(stack: Stack, process: str, message: str, **fields: Any) -> list[dict[str, Any]]:
    """The JSON log lines of `process` with this message and these field values."""
    return [
        line
        for line in log_lines(stack, process)
        if line.get("message") == message and all(line.get(k) == v for k, v in fields.items())
    ]


def one_line(stack: Stack, process: str, message: str, **fields: Any) -> dict[str, Any]:
    """The one such line, once the process has written it (a turn's line follows its last part)."""
    deadline = time.monotonic() + 5
    while not (found := lines_of(stack, process, message, **fields)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(found) == 1, f"{len(found)} {message!r} lines with {fields} in {process}"
    return found[0]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_chat_turn_logs_its_first_token_its_end_and_its_model(
    stack: Stack, chat: Chat, models: StandinClient, alice: Caller, provider: str
) -> None:
    models.script({"provider": WIRE[provider], "steps": [{"text": "All well."}]})
    reply = chat.send(alice, message="How is Acme?", provider=provider)
    checked(reply)

    line = one_line(stack, "chat_stream", "chat turn", session_id=reply.session_id)

    assert (line["provider"], line["status"], line["finish_reason"]) == (provider, "complete", "stop")
    assert line["model"] == models.requests()[-1].model
    assert isinstance(line["first_token_ms"], int)
    # From the request's arrival: no later than the client saw it, nor than the turn's end.
    first_delta = reply.arrived[reply.types.index("text-delta")]
    assert 0 <= line["first_token_ms"] <= first_delta * 1000 + 50
    assert line["first_token_ms"] <= line["turn_ms"]
    assert line["severity"] == "INFO"


def test_a_turn_stopped_before_any_token_logs_no_first_token(
    stack: Stack, chat: Chat, models: StandinClient, alice: Caller
) -> None:
    models.script({"steps": [{"hang_ms": 20_000}, {"text": "never said"}]})
    with chat.open(alice, message="Think hard") as response:
        reader = StreamReader(response)
        reply = reader.until(lambda r: "start" in r.types)
        models.wait_for_request(1)
        assert chat.stop(alice, reply.session_id).status_code == 202
        reader.until()

    line = one_line(stack, "chat_stream", "chat turn", session_id=reply.session_id)

    assert (line["status"], line["finish_reason"]) == ("cancelled", "abort")
    assert "first_token_ms" not in line


def test_a_model_error_logs_the_failed_call_and_a_turn_that_ended_in_error(
    stack: Stack, chat: Chat, models: StandinClient, alice: Caller
) -> None:
    models.script(
        {"http_error": {"status": 529}},  # before the first token: retried
        {"steps": [{"text": "Half an ans"}, {"error": "overloaded_error"}]},  # after it: the end
    )
    reply = chat.send(alice, message="Go", provider="claude")
    checked(reply)
    assert reply.parts[-1] == {"type": "finish", "finishReason": "error"}

    failed = lines_of(stack, "chat_stream", "model call failed", provider="claude")
    assert [line["retried"] for line in failed[-2:]] == [True, False]
    assert all(line["severity"] == "WARNING" and line["model"] and line["error"] for line in failed[-2:])
    turn_line = one_line(stack, "chat_stream", "chat turn", session_id=reply.session_id)
    assert (turn_line["status"], turn_line["finish_reason"]) == ("error", "error")
    assert isinstance(turn_line["first_token_ms"], int)


def test_a_parse_whose_model_fails_logs_the_failed_call(
    stack: Stack, contracts: Api, models: StandinClient, alice: Caller, customer: dict[str, Any]
) -> None:
    models.script({"http_error": {"status": 400}})
    before = len(lines_of(stack, "contract_parse", "model call failed"))

    response = upload(contracts, alice, pdf_of(ORDER_FORM), customer["id"])

    assert (response.status_code, response.json()["status"]) == (201, "failed"), response.text
    failed = lines_of(stack, "contract_parse", "model call failed")[before:]
    assert [(line["provider"], line["retried"], line["retryable"]) for line in failed] == [("claude", False, False)]


def test_the_sweep_logs_how_long_the_oldest_approval_not_carried_out_has_waited(
    stack: Stack, worker: Api, alice: Caller
) -> None:
    def swept() -> dict[str, Any]:
        count = len(lines_of(stack, "execute_action", "sweep"))
        assert worker.post("/sweep", json={}).status_code == 200
        return lines_of(stack, "execute_action", "sweep")[count]

    assert swept()["oldest_undone_seconds"] == 0

    now = datetime.now(UTC)
    lease = {"holder": "a-live-delivery", "until": now + timedelta(minutes=1)}  # at work: no round takes it
    seed_action(alice.uid, status="executing", decided_at=now - timedelta(minutes=11), lease=lease)
    seed_action(alice.uid, status="executing", decided_at=now - timedelta(minutes=2), lease=lease)
    seed_action(alice.uid, status="executed", decided_at=now - timedelta(hours=3))

    assert 660 <= swept()["oldest_undone_seconds"] < 700


def test_a_day_near_its_budget_logs_the_user_and_their_figures(
    stack: Stack, low: dict[str, Api], models: StandinClient, alice: Caller
) -> None:
    models.script(turn("claude", {"text": "A long answer."}, input_tokens=700, output_tokens=150))
    checked(Chat(low["chat_stream"]).send(alice, message="Tell me everything"))

    line = one_line(stack, "chat_stream-near-budget", "model budget mostly spent", uid=alice.uid)

    assert (line["tokens_used"], line["token_budget"], line["severity"]) == (850, 1000, "WARNING")


@pytest.fixture(scope="module")
def low(stack: Stack) -> dict[str, Api]:
    """chat_stream with a daily budget of 1,000 tokens."""
    budget = {"CSCX_DAILY_TOKEN_BUDGET": "1000"}
    return {"chat_stream": Api(stack.start_variant("chat_stream", "near-budget", budget))}


@pytest.fixture
def contracts(stack: Stack) -> Api:
    return Api(stack.url("contract_parse"))


@pytest.fixture
def customer(crud: Api, alice: Caller) -> dict[str, Any]:
    return dict(crud.post("/customers", alice, json={"name": "Acme"}).json())
