"""Anthropic Messages API (`POST /v1/messages`) as the wire carries it: a JSON message, or the SSE event stream.

Stream: message_start, then per content block content_block_start (a ping after the first), deltas
(`text_delta`, or `input_json_delta` pieces for a tool call) and content_block_stop, then message_delta with
the stop reason and usage, and message_stop. A failure mid-stream is an `event: error` and the end of the
stream; a failure before it is an HTTP status with `{"type":"error","error":{"type":...,"message":...}}`.
"""

from __future__ import annotations

import json
from typing import Any

from standins._requests import Outcome
from standins._turns import ERROR_STATUS, Disconnect, Fail, Pause, Text, ToolCall, Turn, estimate_tokens
from standins._wire import Channel, new_id
from standins.local_server import dump

NAME = "anthropic"
PATH = "/v1/messages"

_TOOL_INPUT_PIECE = 16  # characters of tool-input JSON per input_json_delta, like the real API's small pieces

_MESSAGES = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed the rate limit for your organization.",
    "api_error": "Internal server error",
    "timeout_error": "Request timeout",
    "overloaded_error": "Overloaded",
}


def refusal(body: object, headers: dict[str, str]) -> tuple[int, str, str] | None:  # noqa: PLR0911 - one per check
    """Why the real API would refuse this request outright: (status, error type, message), or None."""
    if "x-api-key" not in headers and "authorization" not in headers:
        return 401, "authentication_error", "x-api-key header is required"
    if "anthropic-version" not in headers:
        return 400, "invalid_request_error", "anthropic-version: header is required"
    if not isinstance(body, dict):
        return 400, "invalid_request_error", "The request body is not valid JSON."
    if not isinstance(body.get("model"), str):
        return 400, "invalid_request_error", "model: Field required"
    if not isinstance(body.get("max_tokens"), int):
        return 400, "invalid_request_error", "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, "invalid_request_error", "messages: at least one message is required"
    return None


def said(body: dict[str, Any]) -> str:
    """The last text the user wrote, for the default answer to echo."""
    for message in reversed(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [
                block.get("text", "") for block in content if isinstance(block, dict) and block.get("type") == "text"
            ]
            if any(texts):
                return " ".join(texts)
    return ""


def send_error(
    channel: Channel, status: int, kind: str, message: str | None = None, retry_after: int | None = None
) -> None:
    request_id = new_id("req_01")
    headers = {"request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    body = {"type": "error", "error": {"type": kind, "message": message or _MESSAGES[kind]}, "request_id": request_id}
    channel.send_json(status, body, headers)


def answer(channel: Channel, turn: Turn, *, model: str, raw: str, stream: bool) -> Outcome:
    input_tokens = turn.input_tokens if turn.input_tokens is not None else estimate_tokens(raw)
    if stream:
        return _stream(channel, turn, model, input_tokens)
    return _message(channel, turn, model, input_tokens)


def _message(channel: Channel, turn: Turn, model: str, input_tokens: int) -> Outcome:
    """The non-streaming answer: the whole turn's time waited, then one JSON message."""
    content: list[dict[str, Any]] = []
    delay = 0.0
    for move in turn.moves():
        delay += move.delay
        if isinstance(move, Text):
            if content and content[-1]["type"] == "text":
                content[-1]["text"] += move.text
            else:
                content.append({"type": "text", "text": move.text})
        elif isinstance(move, ToolCall):
            content.append(_tool_use(move) | {"input": move.input})
        elif isinstance(move, Fail):
            channel.wait(delay)
            send_error(channel, ERROR_STATUS[move.kind], move.kind, move.message)
            return "http_error"
        elif isinstance(move, Disconnect):
            channel.wait(delay)
            channel.drop()
            return "disconnected"
    channel.wait(delay)
    output = turn.output_tokens if turn.output_tokens is not None else estimate_tokens(dump(content).decode())
    output += turn.thinking_tokens  # Claude's output_tokens include its thinking
    message = _envelope(model, input_tokens, output) | {"content": content, "stop_reason": turn.stop_reason}
    channel.send_json(200, message, {"request-id": new_id("req_01")}, token=True)
    return "complete"


def _stream(channel: Channel, turn: Turn, model: str, input_tokens: int) -> Outcome:
    channel.open_stream(
        {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "request-id": new_id("req_01"),
        }
    )
    _event(channel, "message_start", {"message": _envelope(model, input_tokens, 1) | {"content": []}})
    index = -1
    text_open = False
    written = ""  # what the model "said", for the output-token estimate

    def close_text() -> None:
        nonlocal text_open
        if text_open:
            _event(channel, "content_block_stop", {"index": index})
            text_open = False

    def start_block(block: dict[str, Any]) -> None:
        nonlocal index
        index += 1
        _event(channel, "content_block_start", {"index": index, "content_block": block})
        if index == 0:
            _event(channel, "ping", {})

    for move in turn.moves():
        channel.wait(move.delay)
        if isinstance(move, Text):
            if not text_open:
                start_block({"type": "text", "text": ""})
                text_open = True
            _event(
                channel,
                "content_block_delta",
                {"index": index, "delta": {"type": "text_delta", "text": move.text}},
                token=True,
            )
            written += move.text
        elif isinstance(move, ToolCall):
            close_text()
            start_block(_tool_use(move) | {"input": {}})
            arguments = json.dumps(move.input, separators=(",", ":"), ensure_ascii=False)
            # The real API opens with an empty piece, then the JSON in small pieces.
            pieces = ["", *(arguments[i : i + _TOOL_INPUT_PIECE] for i in range(0, len(arguments), _TOOL_INPUT_PIECE))]
            for piece in pieces:
                delta = {"type": "input_json_delta", "partial_json": piece}
                _event(channel, "content_block_delta", {"index": index, "delta": delta}, token=True)
            _event(channel, "content_block_stop", {"index": index})
            written += arguments
        elif isinstance(move, Fail):
            error = {"type": move.kind, "message": move.message or _MESSAGES[move.kind]}
            _event(channel, "error", {"error": error})
            channel.end_stream()
            return "error"
        elif isinstance(move, Disconnect):
            channel.drop()
            return "disconnected"
        else:
            assert isinstance(move, Pause)
    close_text()
    output = turn.output_tokens if turn.output_tokens is not None else estimate_tokens(written)
    output += turn.thinking_tokens  # Claude's output_tokens include its thinking
    _event(
        channel,
        "message_delta",
        {"delta": {"stop_reason": turn.stop_reason, "stop_sequence": None}, "usage": {"output_tokens": output}},
    )
    _event(channel, "message_stop", {})
    channel.end_stream()
    return "complete"


def _event(channel: Channel, name: str, data: dict[str, Any], *, token: bool = False) -> None:
    channel.send_event(b"event: %s\ndata: %s\n\n" % (name.encode(), dump({"type": name, **data})), token=token)


def _envelope(model: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "id": new_id("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }


def _tool_use(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.call_id or new_id("toolu_01"), "name": call.name}
