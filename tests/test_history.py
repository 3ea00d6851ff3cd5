"""What the model is given of a session (`common/agent/history.py`) and what a session is called
(its title), in process: the stored messages read back into the model's turns, trimmed to the
token budget in whole messages, newest kept."""

from __future__ import annotations

from typing import Any

import pytest

from common.agent import history
from common.agent.sessions import TITLE_LENGTH, title_of
from common.llm import AssistantTurn, ToolCall, ToolResult, ToolResultsTurn, UserTurn

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"type": "text", "text": text}]}


def tool_part(call_id: str, name: str, state: str, **fields: Any) -> dict[str, Any]:
    return {"type": f"tool-{name}", "toolCallId": call_id, "state": state, "input": {"q": call_id}, **fields}


def assistant(*steps: list[dict[str, Any]]) -> dict[str, Any]:
    """An assistant message as the stream stored it: each step opened by `step-start`."""
    parts: list[dict[str, Any]] = []
    for step in steps:
        parts += [{"type": "step-start"}, *step]
    return {"role": "assistant", "parts": parts}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


# -- a stored message, as turns ----------------------------------------------------------------


def test_a_user_message_is_one_user_turn_of_its_text_parts() -> None:
    message = {"role": "user", "parts": [text("Renewal "), {"type": "file", "url": "x"}, text("plans?")]}
    assert history.turns_of(message) == [UserTurn("Renewal plans?")]
    assert history.turns_of(user("")) == []


def test_an_assistant_message_is_read_back_step_by_step_each_call_with_its_result() -> None:
    message = assistant(
        [text("Let me look. "), tool_part("c1", "list_tasks", "output-available", output={"tasks": []})],
        [text("Nothing due.")],
    )
    assert history.turns_of(message) == [
        AssistantTurn("Let me look. ", (ToolCall("c1", "list_tasks", {"q": "c1"}),)),
        ToolResultsTurn((ToolResult("c1", "list_tasks", {"tasks": []}),)),
        AssistantTurn("Nothing due."),
    ]


def test_a_failed_tool_is_given_back_as_an_error_result() -> None:
    message = assistant([tool_part("c1", "get_customer", "output-error", errorText="not found")])
    [_, results] = history.turns_of(message)
    assert results == ToolResultsTurn((ToolResult("c1", "get_customer", {"error": "not found"}, is_error=True),))


def test_a_call_without_its_result_is_left_out_and_its_steps_text_kept() -> None:
    message = assistant(
        [text("Checking"), tool_part("c1", "list_tasks", "input-streaming"), tool_part("c2", "list_tasks", "x")],
    )
    assert history.turns_of(message) == [AssistantTurn("Checking")]
    assert history.turns_of(assistant([tool_part("c1", "list_tasks", "input-available")])) == []


def test_tokens_are_estimated_at_four_characters_each_on_the_safe_side() -> None:
    assert history.estimate_tokens([UserTurn("x" * 400)]) == 101
    assert history.estimate_tokens([]) == 1
    call = AssistantTurn("", (ToolCall("c1", "abcd", {}),))  # the name and "{}"
    assert history.estimate_tokens([call]) == 2


# -- the budget --------------------------------------------------------------------------------


def conversation(n: int, size: int = 400) -> list[dict[str, Any]]:
    """n exchanges of `size`-character messages, the last one the CSM's question."""
    messages: list[dict[str, Any]] = []
    for i in range(n):
        messages += [user(f"q{i} " + "x" * size), assistant([text(f"a{i} " + "y" * size)])]
    return [*messages, user("now")]


def test_everything_goes_when_it_fits() -> None:
    messages = conversation(3)
    assert history.within_budget(messages, 100_000) == [t for m in messages for t in history.turns_of(m)]


def test_the_oldest_messages_are_dropped_whole_until_the_rest_fits() -> None:
    messages = conversation(5)  # each message about 101 tokens
    kept = history.within_budget(messages, 450)
    assert [t.text[:2] for t in kept if isinstance(t, (UserTurn, AssistantTurn))] == ["q3", "a3", "q4", "a4", "no"]
    assert history.estimate_tokens(kept) <= 450


def test_the_newest_message_goes_whatever_its_size() -> None:
    huge = user("z" * 100_000)
    assert history.within_budget([*conversation(2), huge], 1_000) == [UserTurn("z" * 100_000)]


def test_the_history_starts_with_the_csms_turn() -> None:
    # The budget would keep the assistant's answer before "now", but a history opens with a user turn.
    messages = [user("q " + "x" * 400), assistant([text("a")]), user("now")]
    assert history.within_budget(messages, 50) == [UserTurn("now")]


def test_a_tool_call_and_its_result_are_kept_or_dropped_together() -> None:
    output = {"rows": ["r" * 300]}
    messages = [
        user("first"),
        assistant([text("a"), tool_part("c1", "list_tasks", "output-available", output=output)], [text("b")]),
        user("second"),
        assistant([tool_part("c2", "list_tasks", "output-available", output=output)], [text("done")]),
        user("now"),
    ]
    for budget in range(1, 400, 7):
        kept = history.within_budget(messages, budget)
        assert isinstance(kept[0], UserTurn)
        calls = [c.id for t in kept if isinstance(t, AssistantTurn) for c in t.tool_calls]
        results = [r.call_id for t in kept if isinstance(t, ToolResultsTurn) for r in t.results]
        assert calls == results, budget


# -- a session's title -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("When does Acme renew?", "When does Acme renew?"),
        ("  Acme\n\nrenewal\tplans  ", "Acme renewal plans"),
        ("w" * TITLE_LENGTH, "w" * TITLE_LENGTH),
        ("word " * 30, ("word " * 16).strip()),  # cut at the last space within 80 characters
        ("x" * 100, "x" * TITLE_LENGTH),  # no space to cut at
        ("a" * 79 + " b", "a" * 79),
        ("", ""),
    ],
)
def test_a_title_is_the_first_message_cut_at_a_word_boundary_to_80_characters(message: str, title: str) -> None:
    assert title_of(message) == title
    assert len(title_of(message)) <= TITLE_LENGTH
