"""The model stand-in speaks the Anthropic Messages and Vertex Gemini wire protocols: proven through the real SDKs.

The stand-in runs in this process on a free port; nothing else of the stack is needed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.lib.streaming import MessageStreamManager
from anthropic.types import ToolParam
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from google.oauth2.credentials import Credentials

from standins.client import RecordedRequest, StandinClient, StandinError, Turn
from standins.models import ModelStandin

CLAUDE = "claude-sonnet-5"
GEMINI = "gemini-2.5-flash"

CUSTOMER_TOOL: ToolParam = {
    "name": "get_customer",
    "description": "Look up one customer.",
    "input_schema": {"type": "object", "properties": {"customer_id": {"type": "string"}}, "required": ["customer_id"]},
}
GEMINI_CUSTOMER_TOOL = genai_types.Tool(
    function_declarations=[
        genai_types.FunctionDeclaration(
            name="get_customer",
            description="Look up one customer.",
            parameters_json_schema=CUSTOMER_TOOL["input_schema"],
        )
    ]
)


@pytest.fixture(scope="module")
def standin() -> Iterator[ModelStandin]:
    with ModelStandin(port=0) as server:
        yield server


@pytest.fixture
def control(standin: ModelStandin) -> StandinClient:
    client = StandinClient(standin.url)
    client.reset()
    return client


@pytest.fixture(scope="module")
def claude(standin: ModelStandin) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=standin.url, api_key="local", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def gemini(standin: ModelStandin) -> genai.Client:
    # Vertex mode refreshes AnonymousCredentials and fails; a static token is what works locally.
    return genai.Client(
        vertexai=True,
        project="demo-cscx",
        location="us-central1",
        credentials=Credentials(token="local"),  # type: ignore[no-untyped-call]
        http_options=genai_types.HttpOptions(base_url=standin.url),
    )


def ask_claude(claude: anthropic.Anthropic, text: str = "Hello", **extra: Any) -> MessageStreamManager[Any]:
    return claude.messages.stream(model=CLAUDE, max_tokens=256, messages=[{"role": "user", "content": text}], **extra)


def timed_texts(chunks: Iterator[str]) -> list[tuple[float, str]]:
    return [(time.time(), text) for text in chunks]


def finished_at(control: StandinClient) -> float:
    """When the stand-in wrote the end of the (only) answer."""
    record = control.wait_for_request(1, finished=True)
    assert record.finished_at is not None
    return record.finished_at


# ------------------------------------------------------------------ Anthropic


def test_anthropic_stream_delivers_text_as_it_is_written(control: StandinClient, claude: anthropic.Anthropic) -> None:
    control.script(
        {
            "steps": [{"text": "Hello "}, {"text": "world", "delay_ms": 1000}],
            "first_token_delay_ms": 100,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )

    started = time.time()
    with ask_claude(claude) as stream:
        deltas = timed_texts(stream.text_stream)
        message = stream.get_final_message()

    assert [text for _, text in deltas] == ["Hello ", "world"]
    assert deltas[0][0] - started >= 0.09
    # The first delta was in hand long before the stand-in wrote the last one (a margin for a busy machine).
    assert deltas[0][0] < finished_at(control) - 0.5
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello world"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 5)
    assert message.id.startswith("msg_")


def test_anthropic_stream_sends_tool_input_in_pieces_and_ends_with_tool_use(
    control: StandinClient, claude: anthropic.Anthropic
) -> None:
    tool_input = {"customer_id": "cus_0001", "fields": ["name", "arr", "renewal_date"], "note": 'Grüße "quoted"'}
    control.script({"steps": [{"text": "Let me look."}, {"tool_call": {"name": "get_customer", "input": tool_input}}]})

    with ask_claude(claude, tools=[CUSTOMER_TOOL]) as stream:
        events = list(stream)
        message = stream.get_final_message()

    pieces = [
        e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(pieces) > 2
    assert pieces[0] == ""
    assert [e.type for e in events][:3] == ["message_start", "content_block_start", "content_block_delta"]
    tool_use = message.content[1]
    assert isinstance(tool_use, anthropic.types.ToolUseBlock)
    assert tool_use.name == "get_customer"
    assert tool_use.input == tool_input
    assert tool_use.id.startswith("toolu_")
    assert message.stop_reason == "tool_use"


def test_anthropic_create_returns_the_whole_message(control: StandinClient, claude: anthropic.Anthropic) -> None:
    control.script(
        {
            "steps": [
                {"text": "Two "},
                {"text": "parts.", "delay_ms": 50},
                {"tool_call": {"name": "get_customer", "input": {"customer_id": "c1"}, "id": "toolu_fixed"}},
            ],
            "stop": "max_tokens",
        }
    )

    message = claude.messages.create(
        model=CLAUDE, max_tokens=16, tools=[CUSTOMER_TOOL], messages=[{"role": "user", "content": "hi"}]
    )

    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].type == "text"
    assert message.content[0].text == "Two parts."
    assert message.content[1].type == "tool_use"
    assert (message.content[1].id, message.content[1].input) == ("toolu_fixed", {"customer_id": "c1"})
    assert message.stop_reason == "max_tokens"
    record = control.wait_for_request(1, finished=True)
    assert record.stream is False
    assert record.first_token_at is not None


def test_anthropic_error_mid_stream_raises_the_sdks_status_error(
    control: StandinClient, claude: anthropic.Anthropic
) -> None:
    control.script({"steps": [{"text": "Partial "}, {"error": "overloaded_error", "delay_ms": 50}]})

    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as raised, ask_claude(claude) as stream:
        received.extend(stream.text_stream)

    assert received == ["Partial "]
    assert raised.value.type == "overloaded_error"
    assert raised.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert control.wait_for_request(1, finished=True).outcome == "error"


def test_anthropic_http_errors_raise_the_sdks_status_errors(
    control: StandinClient, claude: anthropic.Anthropic
) -> None:
    control.script({"http_error": {"status": 529}}, {"http_error": {"status": 429, "retry_after": 7}})

    with pytest.raises(anthropic.OverloadedError) as overloaded:
        claude.messages.create(model=CLAUDE, max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as limited, ask_claude(claude) as stream:
        stream.until_done()

    assert (overloaded.value.status_code, overloaded.value.type) == (529, "overloaded_error")
    assert overloaded.value.request_id is not None
    assert overloaded.value.request_id.startswith("req_")
    assert (limited.value.status_code, limited.value.type) == (429, "rate_limit_error")
    assert limited.value.response.headers["retry-after"] == "7"
    assert [r.status for r in control.requests()] == [529, 429]


def test_anthropic_sdk_retries_an_overloaded_answer_by_default(control: StandinClient, standin: ModelStandin) -> None:
    control.script({"http_error": {"status": 529}}, {"steps": [{"text": "Second time lucky."}]})

    with anthropic.Anthropic(base_url=standin.url, api_key="local", max_retries=1) as client:
        message = client.messages.create(model=CLAUDE, max_tokens=16, messages=[{"role": "user", "content": "hi"}])

    assert message.content[0].type == "text"
    assert message.content[0].text == "Second time lucky."
    assert [r.headers["x-stainless-retry-count"] for r in control.requests()] == ["0", "1"]


def test_anthropic_counts_thinking_in_output_tokens(control: StandinClient, claude: anthropic.Anthropic) -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "thinking_tokens": 40}
    control.script({"steps": [{"text": "Done."}], "usage": usage})

    with ask_claude(claude) as stream:
        message = stream.get_final_message()

    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 45)


# ------------------------------------------------------------------ Vertex Gemini


def test_gemini_stream_delivers_text_as_it_is_written(control: StandinClient, gemini: genai.Client) -> None:
    control.script(
        {
            "steps": [{"text": "Hello "}, {"text": "world", "delay_ms": 1000}],
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )

    chunks = [(time.time(), chunk) for chunk in gemini.models.generate_content_stream(model=GEMINI, contents="Hi")]

    assert [chunk.text for _, chunk in chunks] == ["Hello ", "world"]
    assert chunks[0][0] < finished_at(control) - 0.5
    last = chunks[-1][1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (10, 5)
    record = control.wait_for_request(1, finished=True)
    assert record.path == (
        f"/v1beta1/projects/demo-cscx/locations/us-central1/publishers/google/models/{GEMINI}"
        ":streamGenerateContent?alt=sse"
    )
    assert record.headers["authorization"] == "Bearer local"


def test_gemini_stream_function_call_parses_into_the_sdks_function_call(
    control: StandinClient, gemini: genai.Client
) -> None:
    control.script(
        {
            "steps": [
                {"text": "Checking."},
                {"tool_call": {"name": "get_customer", "input": {"customer_id": "cus_1"}}},
                {"tool_call": {"name": "get_customer", "input": {"customer_id": "cus_2"}, "id": "call-2"}},
            ]
        }
    )
    config = genai_types.GenerateContentConfig(
        tools=[GEMINI_CUSTOMER_TOOL],
        automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
    )

    chunks = list(gemini.models.generate_content_stream(model=GEMINI, contents="Look up two", config=config))

    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [(call.name, call.args, call.id) for call in calls] == [
        ("get_customer", {"customer_id": "cus_1"}, None),
        ("get_customer", {"customer_id": "cus_2"}, "call-2"),
    ]
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.STOP
    body = control.wait_for_request(1).body
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_customer"


def test_gemini_generate_content_returns_the_whole_response(control: StandinClient, gemini: genai.Client) -> None:
    control.script(
        {
            "steps": [{"text": "Two "}, {"text": "parts.", "delay_ms": 50}, {"tool_call": {"name": "get_customer"}}],
            "stop": "max_tokens",
        }
    )

    response = gemini.models.generate_content(
        model=GEMINI,
        contents="hi",
        config=genai_types.GenerateContentConfig(
            tools=[GEMINI_CUSTOMER_TOOL],
            automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )

    assert response.candidates is not None
    assert response.candidates[0].content is not None
    parts = response.candidates[0].content.parts or []
    assert [part.text for part in parts] == ["Two parts.", None]
    assert response.function_calls is not None
    assert response.function_calls[0].name == "get_customer"
    assert response.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS


def test_gemini_error_mid_stream_raises_the_sdks_api_error(control: StandinClient, gemini: genai.Client) -> None:
    control.script({"steps": [{"text": "Partial "}, {"error": "overloaded_error", "delay_ms": 50}]})

    received: list[str | None] = []
    with pytest.raises(genai_errors.ServerError) as raised:
        received.extend(chunk.text for chunk in gemini.models.generate_content_stream(model=GEMINI, contents="Hi"))

    assert received == ["Partial "]
    assert (raised.value.code, raised.value.status) == (503, "UNAVAILABLE")


def test_gemini_http_errors_raise_the_sdks_api_errors_without_retrying(
    control: StandinClient, gemini: genai.Client
) -> None:
    control.script({"http_error": {"status": 429}}, {"http_error": {"status": 503}})

    with pytest.raises(genai_errors.ClientError) as limited:
        list(gemini.models.generate_content_stream(model=GEMINI, contents="Hi"))
    with pytest.raises(genai_errors.ServerError) as unavailable:
        gemini.models.generate_content(model=GEMINI, contents="Hi")

    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert (unavailable.value.code, unavailable.value.status) == (503, "UNAVAILABLE")
    # google-genai retries only when HttpOptions.retry_options is set: one request each.
    assert [r.status for r in control.requests()] == [429, 503]


def test_gemini_reports_thoughts_apart_from_the_candidates(control: StandinClient, gemini: genai.Client) -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "thinking_tokens": 40}
    control.script({"steps": [{"text": "Done."}], "usage": usage})

    chunks = list(gemini.models.generate_content_stream(model=GEMINI, contents="Hi"))

    reported = chunks[-1].usage_metadata
    assert reported is not None
    assert (reported.prompt_token_count, reported.candidates_token_count, reported.thoughts_token_count) == (10, 5, 40)
    assert reported.total_token_count == 55


# ------------------------------------------------------------------ both: log, hang-ups, routing, default


def test_request_log_records_bodies_and_times(control: StandinClient, claude: anthropic.Anthropic) -> None:
    control.script({"steps": [{"text": "ok"}], "first_token_delay_ms": 100})

    with ask_claude(claude, "Summarise Acme", system="You are CSCX.", tools=[CUSTOMER_TOOL]) as stream:
        stream.until_done()

    record = control.wait_for_request(1, finished=True)
    assert (record.provider, record.path, record.model, record.stream) == ("anthropic", "/v1/messages", CLAUDE, True)
    assert record.body["system"] == "You are CSCX."
    assert record.body["messages"] == [{"role": "user", "content": "Summarise Acme"}]
    assert record.body["tools"][0]["name"] == "get_customer"
    assert (record.turn, record.outcome, record.client_closed) == ("scripted", "complete", False)
    assert record.first_byte_at is not None
    assert record.first_token_at is not None
    assert record.finished_at is not None
    assert record.received_at <= record.first_byte_at < record.first_token_at <= record.finished_at
    assert record.first_token_at - record.first_byte_at >= 0.09


def test_closing_an_anthropic_stream_after_the_first_delta_is_recorded_at_once(
    control: StandinClient, claude: anthropic.Anthropic
) -> None:
    control.script({"steps": [{"text": "First "}, {"repeat": {"text": "more ", "count": 100, "interval_ms": 100}}]})

    with ask_claude(claude) as stream:
        next(iter(stream.text_stream))
    closed_at = time.time()

    record = control.wait_for_request(1, timeout=2, finished=True)
    assert_closed_within_a_second(record, closed_at)


def test_a_hang_up_during_silence_is_noticed(control: StandinClient, claude: anthropic.Anthropic) -> None:
    control.script({"steps": [{"text": "First "}, {"hang_ms": 10_000}, {"text": "never sent"}]})

    with ask_claude(claude) as stream:
        next(iter(stream.text_stream))
    closed_at = time.time()

    record = control.wait_for_request(1, timeout=2, finished=True)
    assert_closed_within_a_second(record, closed_at)


def test_closing_a_gemini_stream_after_the_first_chunk_is_recorded_at_once(
    control: StandinClient, gemini: genai.Client
) -> None:
    control.script({"steps": [{"text": "First "}, {"hang_ms": 10_000}, {"text": "never sent"}]})

    # google-genai's stream is a generator: leaving the loop drops it, which closes the connection.
    # (A generator still referenced keeps the connection open until it is closed or collected.)
    for _ in gemini.models.generate_content_stream(model=GEMINI, contents="Hi"):
        break
    closed_at = time.time()

    record = control.wait_for_request(1, timeout=2, finished=True)
    assert_closed_within_a_second(record, closed_at)


def assert_closed_within_a_second(record: RecordedRequest, closed_at: float) -> None:
    assert (record.outcome, record.client_closed) == ("client_closed", True)
    assert record.client_closed_at is not None
    assert record.client_closed_at - closed_at < 1.0


def test_a_disconnect_step_breaks_the_stream_in_both_sdks(
    control: StandinClient, claude: anthropic.Anthropic, gemini: genai.Client
) -> None:
    broken: Turn = {"steps": [{"text": "Partial "}, {"disconnect": True}]}
    control.script(broken, broken)

    with pytest.raises(httpx2.RemoteProtocolError), ask_claude(claude) as stream:
        stream.until_done()
    with pytest.raises(httpx2.RemoteProtocolError):
        list(gemini.models.generate_content_stream(model=GEMINI, contents="Hi"))

    assert [r.outcome for r in control.requests()] == ["disconnected", "disconnected"]


def test_match_routes_a_turn_to_the_request_that_contains_it(
    control: StandinClient, claude: anthropic.Anthropic, gemini: genai.Client
) -> None:
    control.script(
        {"steps": [{"text": "about renewals"}], "match": "renewal date"},
        {"steps": [{"text": "for Gemini"}], "provider": "gemini"},
        {"steps": [{"text": "first general"}]},
        {"steps": [{"text": "second general"}]},
    )

    def claude_says(text: str) -> str:
        with ask_claude(claude, text) as stream:
            return stream.get_final_text()

    assert claude_says("Hello") == "first general"
    assert claude_says("When is Acme's renewal date?") == "about renewals"
    assert gemini.models.generate_content(model=GEMINI, contents="Hello").text == "for Gemini"
    assert claude_says("Again") == "second general"
    assert control.pending() == []


def test_unscripted_requests_get_an_answer_that_says_it_is_the_stand_in(
    control: StandinClient, claude: anthropic.Anthropic, gemini: genai.Client
) -> None:
    with ask_claude(claude, "What is Acme's ARR?") as stream:
        claude_deltas = list(stream.text_stream)
    gemini_chunks = [c.text for c in gemini.models.generate_content_stream(model=GEMINI, contents="Plan my week")]

    claude_text = "".join(claude_deltas)
    assert len(claude_deltas) > 5
    assert "local model stand-in, not a model" in claude_text
    assert claude_text.endswith("You said: What is Acme's ARR?")
    assert "".join(text or "" for text in gemini_chunks).endswith("not a model. You said: Plan my week")
    assert [r.turn for r in control.requests()] == ["default", "default"]


def test_fifty_streams_at_once_all_complete(control: StandinClient, claude: anthropic.Anthropic) -> None:
    streams = 60
    turn: Turn = {"steps": [{"repeat": {"text": "word ", "count": 30, "interval_ms": 50}}]}
    control.script(*[turn] * streams)
    texts: list[str] = []
    lock = threading.Lock()

    def one_stream() -> None:
        with ask_claude(claude) as stream:
            text = stream.get_final_text()
        with lock:
            texts.append(text)

    threads = [threading.Thread(target=one_stream) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert texts == ["word " * 30] * streams
    records = control.requests()
    assert len(records) == streams
    assert {r.outcome for r in records} == {"complete"}
    most_at_once = max(sum(r.received_at <= s.received_at < (r.finished_at or 0) for r in records) for s in records)
    assert most_at_once >= 50


def test_a_malformed_turn_is_refused_with_the_field_named(control: StandinClient) -> None:
    bad: Any = {"steps": [{"text": "ok"}, {"txt": "typo"}]}
    with pytest.raises(StandinError, match=r"turns\[0\]\.steps\[1\]"):
        control.script(bad)
    assert control.pending() == []


def test_reset_forgets_turns_and_requests(control: StandinClient, claude: anthropic.Anthropic) -> None:
    turn: Turn = {"steps": [{"text": "queued"}]}
    control.script(turn, turn)
    claude.messages.create(model=CLAUDE, max_tokens=16, messages=[{"role": "user", "content": "hi"}])

    control.reset()

    assert (control.pending(), control.requests()) == ([], [])
