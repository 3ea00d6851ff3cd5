"""Claude through the `anthropic` SDK: the streaming Messages API, mapped to `ModelEvent`s.

The key and base URL are the SDK's own settings (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`).
The SDK's retries are off: a retry is only invisible before the first token, which the agent
decides, not the SDK. The SDK builds and sends the request and turns HTTP errors into its
exceptions; the events are read from its streaming response as JSON, not as the SDK's models,
which cost about ten times as much per delta (measured: the difference between 50 streams
relayed on time or late).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from common.llm import (
    UNPARSABLE,
    AssistantTurn,
    Finished,
    FinishReason,
    ModelEvent,
    ModelRequest,
    ProviderError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
    ToolResultsTurn,
    Turn,
    Upstream,
    Usage,
    UserTurn,
    transport_failed,
)
from common.settings import get_settings

STOP_REASONS: dict[str, FinishReason] = {"end_turn": "stop", "tool_use": "tool-calls", "max_tokens": "length"}
RETRYABLE_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error", "timeout_error"})


class ClaudeProvider:
    name = "claude"

    def stream(self, request: ModelRequest, upstream: Upstream) -> Iterator[ModelEvent]:
        import anthropic

        settings = get_settings()
        client = anthropic.Anthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url or None,
            http_client=upstream.client,
            max_retries=0,
        )
        arguments: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_output_tokens,
            "system": request.system,
            "messages": _messages(request.turns),
            "stream": True,
        }
        if request.tools:
            arguments["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools
            ]
        if request.force_tool:
            arguments["tool_choice"] = {"type": "tool", "name": request.force_tool}
        try:
            with client.messages.with_streaming_response.create(**arguments) as response:
                yield from _events(_server_sent_events(response.iter_lines()))
        except anthropic.APIError as error:
            raise _provider_error(error) from None
        except _StreamError as error:
            retryable = error.kind in RETRYABLE_TYPES
            raise ProviderError(f"The model answered with an error ({error.kind}).", retryable=retryable) from None
        except Exception as error:  # a cut connection surfaces as the transport's own error
            transport_failed(error, upstream)


class _StreamError(Exception):
    """An `error` event in the stream (the API's way to fail after a 200)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _server_sent_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The `data` of each event, as JSON; an `error` event raises."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # `event:` names repeat the data's own type; blank lines end events
        data = json.loads(line[5:])
        if data.get("type") == "error":
            raise _StreamError(str((data.get("error") or {}).get("type") or "error"))
        yield data


def _events(stream: Iterator[dict[str, Any]]) -> Iterator[ModelEvent]:
    usage, counts = Usage(), _Counts()
    blocks: dict[int, dict[str, Any]] = {}  # index → tool_use block being streamed
    reason: FinishReason = "other"
    for event in stream:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event["delta"]
            if delta.get("type") == "text_delta" and delta.get("text"):
                yield TextDelta(delta["text"])
            elif delta.get("type") == "input_json_delta" and event["index"] in blocks:
                blocks[event["index"]]["json"] += delta["partial_json"]
                yield ToolCallDelta(blocks[event["index"]]["id"], delta["partial_json"])
        elif kind == "message_start":
            usage = counts.update(event["message"].get("usage"))
            yield usage
        elif kind == "content_block_start":
            block = event["content_block"]
            if block.get("type") == "tool_use":
                blocks[event["index"]] = {"id": block["id"], "name": block["name"], "json": ""}
                yield ToolCallStarted(block["id"], block["name"])
        elif kind == "content_block_stop" and event.get("index") in blocks:
            block = blocks.pop(event["index"])
            yield ToolCallDone(ToolCall(block["id"], block["name"], _tool_input(block["json"])))
        elif kind == "message_delta":
            reason = STOP_REASONS.get(event.get("delta", {}).get("stop_reason") or "", "other")
            usage = counts.update(event.get("usage"))
            yield usage
        elif kind == "message_stop":
            break
    else:  # the connection ended without the message's end: it was cut
        raise ConnectionError("the stream ended before message_stop")
    yield Finished(reason, usage)


INPUT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class _Counts:
    """The message's usage as `message_start` and `message_delta` report it: each field an event
    carries is a running total (input, the cache's writes and reads, output) that replaces the
    last; one it leaves out keeps its value (as the SDK's own accumulation does). Input read from
    or written to the cache is input too: it is billed."""

    def __init__(self) -> None:
        self.fields: dict[str, int] = {}

    def update(self, reported: object) -> Usage:
        if isinstance(reported, dict):
            self.fields |= {name: int(value) for name, value in reported.items() if isinstance(value, int)}
        inputs = sum(self.fields.get(name, 0) for name in INPUT_FIELDS)
        return Usage(inputs, self.fields.get("output_tokens", 0))


def _tool_input(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return {UNPARSABLE: text}
    return value if isinstance(value, dict) else {UNPARSABLE: text}


def _messages(turns: tuple[Turn, ...]) -> list[dict[str, Any]]:
    """The Messages API's messages; turns of the same role in a row become one message."""
    merged: list[dict[str, Any]] = []
    for turn in turns:
        message = _message(turn)
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1]["content"] = merged[-1]["content"] + message["content"]
        else:
            merged.append(message)
    return merged


def _message(turn: Turn) -> dict[str, Any]:
    if isinstance(turn, UserTurn):
        return {"role": "user", "content": [{"type": "text", "text": turn.text}]}
    if isinstance(turn, AssistantTurn):
        content: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
        content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in turn.tool_calls]
        return {"role": "assistant", "content": content}
    assert isinstance(turn, ToolResultsTurn)
    return {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": result.call_id,
                "content": json.dumps(result.output, default=str),
                "is_error": result.is_error,
            }
            for result in turn.results
        ],
    }


def _provider_error(error: Exception) -> ProviderError:
    import anthropic

    if isinstance(error, anthropic.APIConnectionError):
        return ProviderError("The model could not be reached.", retryable=True)
    if isinstance(error, anthropic.APIStatusError):
        kind = _error_type(error)
        retryable = error.status_code in {408, 409, 429} or error.status_code >= 500 or kind in RETRYABLE_TYPES
        return ProviderError(f"The model answered with an error ({kind or error.status_code}).", retryable=retryable)
    return ProviderError(f"The model call failed ({type(error).__name__}).", retryable=False)


def _error_type(error: Any) -> str:
    kind = getattr(error, "type", None)
    if isinstance(kind, str):
        return kind
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("type"), str):
            return str(inner["type"])
    return ""
