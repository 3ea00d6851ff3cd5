"""How each provider's reported usage becomes our count (in-process, no stand-in): Claude's
running totals from `message_start` and `message_delta`, cached input included; Gemini's
`usageMetadata`, thoughts and the tool-use prompt included. Both tell the figures as soon as they
come, so a call cut off before its end still counts them."""

from __future__ import annotations

from typing import Any

from google.genai import types

from common.llm import Finished, TextDelta, Usage
from common.llm.anthropic import _events as claude_events
from common.llm.gemini import _events as gemini_events

Event = dict[str, Any]


def claude_stream(start_usage: Event, delta_usage: Event, *, end: bool = True) -> list[Event]:
    """A streamed message saying "Hi"; without its end, cut off after its first text."""
    events: list[Event] = [
        {"type": "message_start", "message": {"usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": delta_usage},
        {"type": "message_stop"},
    ]
    return events if end else events[:3]


def test_claude_counts_cached_input_and_takes_the_last_running_totals() -> None:
    start = {
        "input_tokens": 20,
        "cache_creation_input_tokens": 1_000,
        "cache_read_input_tokens": 3_000,
        "output_tokens": 1,
    }
    # The delta's figures are running totals; one it leaves out (the cache's) keeps its value.
    events = list(claude_events(iter(claude_stream(start, {"input_tokens": 25, "output_tokens": 80}))))

    assert events[0] == Usage(4_020, 1)
    assert events[-1] == Finished("stop", Usage(4_025, 80))


def test_claude_tells_the_input_before_the_answer_so_a_cut_call_keeps_it() -> None:
    start = {"input_tokens": 5_000, "output_tokens": 1}
    seen = []
    try:
        for event in claude_events(iter(claude_stream(start, {}, end=False))):
            seen.append(event)
    except ConnectionError:
        pass  # the stream ended before message_stop, as a cut one does

    assert seen == [Usage(5_000, 1), TextDelta("Hi")]


def gemini_chunk(text: str, usage: dict[str, int] | None, finish: str | None = None) -> types.GenerateContentResponse:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
    if finish:
        candidate["finish_reason"] = finish
    return types.GenerateContentResponse.model_validate({"candidates": [candidate], "usage_metadata": usage})


def test_gemini_counts_thoughts_and_the_tool_use_prompt_and_keeps_the_running_totals() -> None:
    chunks = [
        gemini_chunk("Hel", {"prompt_token_count": 100}),
        gemini_chunk("lo", None),
        gemini_chunk(
            "!",
            {
                "prompt_token_count": 100,
                "tool_use_prompt_token_count": 7,
                "candidates_token_count": 3,
                "thoughts_token_count": 40,
                "total_token_count": 150,
            },
            finish="STOP",
        ),
    ]

    events = list(gemini_events(iter(chunks)))

    assert [event for event in events if isinstance(event, Usage)] == [Usage(100, 0), Usage(107, 43)]
    assert events[-1] == Finished("stop", Usage(107, 43))
    assert "".join(event.text for event in events if isinstance(event, TextDelta)) == "Hello!"
