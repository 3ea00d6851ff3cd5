"""Vertex AI Gemini as the wire carries it: `…/publishers/google/models/{model}:generateContent` and
`:streamGenerateContent?alt=sse`.

The stream is one `data: {GenerateContentResponse}\\r\\n\\r\\n` per chunk; the last chunk carries `finishReason`
and the full `usageMetadata`. A failure mid-stream is a `data: {"error": {...}}` chunk, which google-genai
raises as `APIError`; a failure before it is an HTTP status with `{"error":{"code","message","status"}}`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from standins._requests import Outcome
from standins._turns import ERROR_STATUS, Disconnect, Fail, Move, Pause, Text, ToolCall, Turn, estimate_tokens
from standins._wire import Channel, new_id
from standins.local_server import dump

NAME = "gemini"

# Vertex's publisher-model path (google-genai with vertexai=True), and the Gemini Developer API's for good measure.
PATH = re.compile(
    r"^/(?P<version>v1[a-z0-9]*)/"
    r"(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/google/)?"
    r"models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$"
)

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# The scripts' (Anthropic) error types as Vertex reports them: code, status, message.
_ERRORS: dict[str, tuple[int, str, str]] = {
    "invalid_request_error": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "authentication_error": (401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
    "billing_error": (403, "PERMISSION_DENIED", "Billing is disabled for this project."),
    "permission_error": (403, "PERMISSION_DENIED", "Permission denied on resource project."),
    "not_found_error": (404, "NOT_FOUND", "Publisher Model was not found or your project does not have access to it."),
    "request_too_large": (
        400,
        "INVALID_ARGUMENT",
        "The input token count exceeds the maximum allowed.",
    ),
    "rate_limit_error": (429, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later."),
    "api_error": (500, "INTERNAL", "Internal error encountered."),
    "timeout_error": (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    "overloaded_error": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
}
assert set(_ERRORS) == set(ERROR_STATUS)

_FINISH_REASONS = {
    "end_turn": "STOP",
    "tool_use": "STOP",  # Gemini has no tool-use finish reason: a function call ends with STOP
    "stop_sequence": "STOP",
    "pause_turn": "STOP",
    "max_tokens": "MAX_TOKENS",
    "refusal": "SAFETY",
}


def refusal(body: object, headers: dict[str, str], *, vertex: bool) -> tuple[int, str, str] | None:
    """Why Vertex would refuse this request outright: (status, error type, message), or None."""
    if vertex and "authorization" not in headers:
        return 401, "authentication_error", "Request is missing required authentication credential."
    if not isinstance(body, dict):
        return 400, "invalid_request_error", "Invalid JSON payload received."
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return 400, "invalid_request_error", "Unable to submit request because it has an empty contents field."
    return None


def said(body: dict[str, Any]) -> str:
    """The last text the user wrote, for the default answer to echo."""
    for content in reversed(body.get("contents") or []):
        if not isinstance(content, dict) or content.get("role", "user") != "user":
            continue
        texts = [part.get("text", "") for part in content.get("parts") or [] if isinstance(part, dict)]
        if any(texts):
            return " ".join(text for text in texts if text)
    return ""


def send_error(
    channel: Channel, status: int, kind: str, message: str | None = None, retry_after: int | None = None
) -> None:
    _, kind_status, kind_message = _ERRORS[kind]
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    error = {"code": status, "message": message or kind_message, "status": _STATUS_NAMES.get(status, kind_status)}
    channel.send_json(status, {"error": error}, headers)


def answer(channel: Channel, turn: Turn, *, model: str, raw: str, stream: bool) -> Outcome:
    response = _Response(turn, model, raw)
    if stream:
        return _stream(channel, turn, response)
    return _generate(channel, turn, response)


class _Response:
    """What every chunk of one answer shares, and the running count of what it has said."""

    def __init__(self, turn: Turn, model: str, raw: str) -> None:
        self.turn = turn
        self.model = model
        self.id = new_id("", 22)
        self.created = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        self.prompt_tokens = turn.input_tokens if turn.input_tokens is not None else estimate_tokens(raw)
        self.written = ""

    def chunk(self, parts: list[dict[str, Any]], *, last: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
        usage: dict[str, Any] = {"trafficType": "ON_DEMAND"}
        if last:
            candidate["finishReason"] = _FINISH_REASONS[self.turn.stop_reason]
            usage = self._usage()
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.model,
            "createTime": self.created,
            "responseId": self.id,
        }

    def _usage(self) -> dict[str, Any]:
        output = self.turn.output_tokens if self.turn.output_tokens is not None else estimate_tokens(self.written)
        thoughts = self.turn.thinking_tokens
        usage: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": output,
            "totalTokenCount": self.prompt_tokens + output + thoughts,  # thoughts are in the total, apart
            "trafficType": "ON_DEMAND",
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": output}],
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def part(self, move: Text | ToolCall) -> dict[str, Any]:
        if isinstance(move, Text):
            self.written += move.text
            return {"text": move.text}
        # Vertex's Gemini 2.x leaves the call id empty, so one is sent only when the script names it: code that
        # needs an id must not find one here that the real API would not give.
        call: dict[str, Any] = {"name": move.name, "args": move.input}
        if move.call_id is not None:
            call["id"] = move.call_id
        self.written += dump(call).decode()
        return {"functionCall": call}


def _generate(channel: Channel, turn: Turn, response: _Response) -> Outcome:
    """The non-streaming answer: the whole turn's time waited, then one GenerateContentResponse."""
    parts: list[dict[str, Any]] = []
    delay = 0.0
    for move in turn.moves():
        delay += move.delay
        if isinstance(move, Text | ToolCall):
            part = response.part(move)
            if "text" in part and parts and "text" in parts[-1]:
                parts[-1]["text"] += part["text"]
            else:
                parts.append(part)
        elif isinstance(move, Fail):
            channel.wait(delay)
            send_error(channel, _ERRORS[move.kind][0], move.kind, move.message)
            return "http_error"
        elif isinstance(move, Disconnect):
            channel.wait(delay)
            channel.drop()
            return "disconnected"
    channel.wait(delay)
    channel.send_json(200, response.chunk(parts, last=True), token=True)
    return "complete"


def _stream(channel: Channel, turn: Turn, response: _Response) -> Outcome:
    channel.open_stream({"Content-Type": "text/event-stream", "X-Content-Type-Options": "nosniff"})
    moves = turn.moves()
    upcoming: Move | None = next(moves, None)
    finished = False
    while upcoming is not None:
        move, upcoming = upcoming, next(moves, None)
        channel.wait(move.delay)
        if isinstance(move, Text | ToolCall):
            # The last piece of content carries the finish reason and usage, as Vertex sends it.
            finished = upcoming is None
            _chunk(channel, response.chunk([response.part(move)], last=finished), token=True)
        elif isinstance(move, Fail):
            code, status, message = _ERRORS[move.kind]
            _chunk(channel, {"error": {"code": code, "message": move.message or message, "status": status}})
            channel.end_stream()
            return "error"
        elif isinstance(move, Disconnect):
            channel.drop()
            return "disconnected"
        else:
            assert isinstance(move, Pause)
    if not finished:
        _chunk(channel, response.chunk([{"text": ""}], last=True))
    channel.end_stream()
    return "complete"


def _chunk(channel: Channel, data: dict[str, Any], *, token: bool = False) -> None:
    channel.send_event(b"data: %s\r\n\r\n" % dump(data), token=token)
