"""Scripted turns: the model stand-in's answer to one request, read from a test's JSON, and the queue of them.

A turn, as a test posts it to `/_standin/scripts` (every key optional unless said):

    {"steps": [step, ...],
     "stop": "end_turn" | "tool_use" | "max_tokens" | "stop_sequence" | "refusal" | "pause_turn",
     "usage": {"input_tokens": int, "output_tokens": int, "thinking_tokens": int},
     "first_token_delay_ms": number, "headers_delay_ms": number,
     "match": "<substring of the request body>",
     "provider": "anthropic" | "gemini",
     "http_error": {"status": int, "type": "<error type>", "message": str, "retry_after": int}}

    step: {"text": str}
          {"tool_call": {"name": str, "input": {...}, "id": str}}
          {"repeat": {"text": str, "count": int, "interval_ms": number}}
          {"error": "<error type>", "message": str}          the stream breaks off with this error
          {"hang_ms": number}                                silence, while watching for a hang-up
          {"disconnect": true}                               the connection drops mid-response
    and any step may carry "delay_ms", waited before it.

`usage` is what the answer reports (by default, four characters a token of what was sent and
said); `thinking_tokens` are the tokens a thinking model spent on thoughts it did not show, which
Claude counts in `output_tokens` and Gemini reports apart, as `thoughtsTokenCount`.

Error types are Anthropic's (`overloaded_error`, `rate_limit_error`, `api_error`, ...); the Gemini side
maps them to Google's codes. `stop` defaults to `tool_use` when the turn calls a tool, else `end_turn`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

Provider: TypeAlias = Literal["anthropic", "gemini"]
PROVIDERS: tuple[Provider, ...] = ("anthropic", "gemini")

STOP_REASONS = ("end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn")

# Anthropic's error types and the HTTP status each comes with: the one vocabulary scripts use.
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

DEFAULT_ANSWER = "This answer comes from the CSCX local model stand-in, not a model. You said: {said}"
_ECHO_LIMIT = 200


class ScriptError(ValueError):
    """A scripted turn that the stand-in cannot play; the message names the offending field."""


@dataclass(frozen=True)
class Text:
    text: str
    delay: float = 0.0


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]
    call_id: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Fail:
    kind: str
    message: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Pause:
    delay: float


@dataclass(frozen=True)
class Disconnect:
    delay: float = 0.0


Move: TypeAlias = Text | ToolCall | Fail | Pause | Disconnect
CONTENT = (Text, ToolCall)


@dataclass(frozen=True)
class Repeat:
    text: str
    count: int
    interval: float
    delay: float = 0.0


Step: TypeAlias = Move | Repeat


@dataclass(frozen=True)
class HttpFailure:
    status: int
    kind: str
    message: str | None = None
    retry_after: int | None = None


@dataclass(frozen=True)
class Turn:
    """The answer to one model request."""

    steps: tuple[Step, ...] = ()
    stop: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    thinking_tokens: int = 0  # thoughts not shown (Gemini reports them apart; Claude within output_tokens)
    first_token_delay: float = 0.0
    headers_delay: float = 0.0  # silence before the response's status line (an API slow to answer at all)
    match: str | None = None
    provider: Provider | None = None
    http_error: HttpFailure | None = None
    source: Literal["scripted", "default"] = "scripted"
    script: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def stop_reason(self) -> str:
        if self.stop is not None:
            return self.stop
        return "tool_use" if any(isinstance(step, ToolCall) for step in self.steps) else "end_turn"

    @property
    def total_delay(self) -> float:
        """How long the whole turn takes: a non-streaming answer waits this long before it is sent."""
        return self.first_token_delay + sum(_step_duration(step) for step in self.steps)

    def moves(self) -> Iterator[Move]:
        """The turn as the wire plays it: repeats unrolled, the first-token delay as a pause up front."""
        if self.first_token_delay > 0:
            yield Pause(self.first_token_delay)
        for step in self.steps:
            if isinstance(step, Repeat):
                for i in range(step.count):
                    yield Text(step.text, step.delay if i == 0 else step.interval)
            else:
                yield step


def _step_duration(step: Step) -> float:
    if isinstance(step, Repeat):
        return step.delay + step.interval * max(step.count - 1, 0)
    return step.delay


def estimate_tokens(text: str) -> int:
    """Roughly four characters a token: enough for usage figures that tests and budgets can read."""
    return max(1, (len(text) + 3) // 4)


def default_turn(said: str) -> Turn:
    """The unscripted answer: says plainly that it is the stand-in, streamed a word at a time."""
    said = " ".join(said.split())
    if len(said) > _ECHO_LIMIT:
        said = said[:_ECHO_LIMIT].rsplit(" ", 1)[0] + "…"
    words = DEFAULT_ANSWER.format(said=said or "(nothing)").split(" ")
    pieces = [word + " " for word in words[:-1]] + [words[-1]]
    # Small delays, so a local UI visibly streams; short enough that a local stack stays snappy.
    return Turn(
        steps=tuple(Text(piece, 0.015) for piece in pieces),
        first_token_delay=0.05,
        source="default",
    )


# ---------------------------------------------------------------- reading scripts


def parse_turns(payload: object) -> list[Turn]:
    """A turn, a list of turns, or {"turns": [...]} as posted to `/_standin/scripts`."""
    if isinstance(payload, Mapping) and "turns" in payload:
        if set(payload) != {"turns"}:
            raise ScriptError('a body with "turns" must have no other key')
        payload = payload["turns"]
    if isinstance(payload, Mapping):
        return [parse_turn(payload, "turn")]
    if isinstance(payload, list):
        if not payload:
            raise ScriptError("turns: the list is empty")
        return [parse_turn(item, f"turns[{i}]") for i, item in enumerate(payload)]
    raise ScriptError("the body must be a turn object, a list of turns, or {'turns': [...]}")


_TURN_KEYS = {"steps", "stop", "usage", "first_token_delay_ms", "headers_delay_ms", "match", "provider", "http_error"}


def parse_turn(raw: object, where: str = "turn") -> Turn:
    obj = _object(raw, where, _TURN_KEYS)
    steps_raw = obj.get("steps", [])
    if not isinstance(steps_raw, list):
        raise ScriptError(f"{where}.steps: must be a list")
    steps = tuple(_parse_step(step, f"{where}.steps[{i}]") for i, step in enumerate(steps_raw))
    http_error = _parse_http_error(obj["http_error"], f"{where}.http_error") if "http_error" in obj else None
    if not steps and http_error is None:
        raise ScriptError(f"{where}: needs steps or http_error")
    stop = obj.get("stop")
    if stop is not None and stop not in STOP_REASONS:
        raise ScriptError(f"{where}.stop: must be one of {', '.join(STOP_REASONS)}")
    provider = obj.get("provider")
    if provider is not None and provider not in PROVIDERS:
        raise ScriptError(f"{where}.provider: must be one of {', '.join(PROVIDERS)}")
    match = obj.get("match")
    if match is not None and (not isinstance(match, str) or not match):
        raise ScriptError(f"{where}.match: must be a non-empty string")
    usage = _object(obj.get("usage", {}), f"{where}.usage", {"input_tokens", "output_tokens", "thinking_tokens"})
    return Turn(
        steps=steps,
        stop=stop,
        input_tokens=_count(usage, "input_tokens", f"{where}.usage"),
        output_tokens=_count(usage, "output_tokens", f"{where}.usage"),
        thinking_tokens=_count(usage, "thinking_tokens", f"{where}.usage") or 0,
        first_token_delay=_seconds(obj, "first_token_delay_ms", where),
        headers_delay=_seconds(obj, "headers_delay_ms", where),
        match=match,
        provider=provider,
        http_error=http_error,
        script=obj,
    )


_STEP_KINDS = ("text", "tool_call", "repeat", "error", "hang_ms", "disconnect")


def _parse_step(raw: object, where: str) -> Step:
    obj = _object(raw, where, {*_STEP_KINDS, "delay_ms", "message"})
    kinds = [kind for kind in _STEP_KINDS if kind in obj]
    if len(kinds) != 1:
        raise ScriptError(f"{where}: a step needs exactly one of {', '.join(_STEP_KINDS)}")
    kind = kinds[0]
    if "message" in obj and kind != "error":
        raise ScriptError(f"{where}.message: only an error step has a message")
    delay = _seconds(obj, "delay_ms", where)
    if kind == "text":
        return Text(_string(obj, "text", where), delay)
    if kind == "tool_call":
        call = _object(obj["tool_call"], f"{where}.tool_call", {"name", "input", "id"})
        call_input = call.get("input", {})
        if not isinstance(call_input, dict):
            raise ScriptError(f"{where}.tool_call.input: must be an object")
        call_id = _string(call, "id", f"{where}.tool_call") if "id" in call else None
        return ToolCall(_string(call, "name", f"{where}.tool_call"), call_input, call_id, delay)
    if kind == "repeat":
        repeat = _object(obj["repeat"], f"{where}.repeat", {"text", "count", "interval_ms"})
        count = _count(repeat, "count", f"{where}.repeat")
        if count is None:
            raise ScriptError(f"{where}.repeat.count: is required")
        return Repeat(_string(repeat, "text", f"{where}.repeat"), count, _seconds(repeat, "interval_ms", where), delay)
    if kind == "error":
        error = obj["error"]
        if error not in ERROR_STATUS:
            raise ScriptError(f"{where}.error: must be one of {', '.join(ERROR_STATUS)}")
        message = _string(obj, "message", where) if "message" in obj else None
        return Fail(error, message, delay)
    if kind == "hang_ms":
        if "delay_ms" in obj:
            raise ScriptError(f"{where}: a hang step is its own delay; drop delay_ms")
        return Pause(_seconds(obj, "hang_ms", where))
    if obj["disconnect"] is not True:
        raise ScriptError(f"{where}.disconnect: must be true")
    return Disconnect(delay)


def _parse_http_error(raw: object, where: str) -> HttpFailure:
    obj = _object(raw, where, {"status", "type", "message", "retry_after"})
    status = obj.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise ScriptError(f"{where}.status: must be an HTTP error status (400–599)")
    kind = obj.get("type") or _kind_for_status(status)
    if kind not in ERROR_STATUS:
        raise ScriptError(f"{where}.type: must be one of {', '.join(ERROR_STATUS)}")
    message = _string(obj, "message", where) if "message" in obj else None
    return HttpFailure(status, kind, message, _count(obj, "retry_after", where))


def _kind_for_status(status: int) -> str:
    for kind, kind_status in ERROR_STATUS.items():
        if kind_status == status:
            return kind
    return "api_error" if status >= 500 else "invalid_request_error"


def _object(raw: object, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ScriptError(f"{where}: must be an object")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ScriptError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    return raw


def _string(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ScriptError(f"{where}.{key}: must be a string")
    return value


def _count(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ScriptError(f"{where}.{key}: must be a non-negative integer")
    return value


def _seconds(obj: Mapping[str, Any], key: str, where: str) -> float:
    value = obj.get(key, 0)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ScriptError(f"{where}.{key}: must be a non-negative number of milliseconds")
    return float(value) / 1000.0


# ---------------------------------------------------------------- the queue


class TurnQueue:
    """Scripted turns waiting for requests: a matching turn first, else the oldest turn without `match`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns: list[Turn] = []

    def add(self, turns: Sequence[Turn]) -> int:
        with self._lock:
            self._turns.extend(turns)
            return len(self._turns)

    def take(self, provider: Provider, body: str) -> Turn | None:
        # Matched against the raw body and its decoded form, so a match on non-ASCII text or on
        # text with quotes works whichever way the SDK escaped it.
        decoded = _decoded(body)
        with self._lock:
            candidates = [i for i, turn in enumerate(self._turns) if turn.provider in (None, provider)]
            matched = (i for i in candidates if (match := self._turns[i].match) and (match in body or match in decoded))
            unmatched = (i for i in candidates if self._turns[i].match is None)
            chosen = next(matched, None)
            if chosen is None:
                chosen = next(unmatched, None)
            return None if chosen is None else self._turns.pop(chosen)

    def pending(self) -> list[Mapping[str, Any]]:
        with self._lock:
            return [turn.script for turn in self._turns]

    def clear(self) -> None:
        with self._lock:
            self._turns.clear()


def _decoded(body: str) -> str:
    try:
        return json.dumps(json.loads(body), ensure_ascii=False)
    except ValueError:
        return body
