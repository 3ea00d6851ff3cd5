"""A typed client for the model stand-in's control API: tests script turns, read the request log and reset with it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, NotRequired, TypedDict


class ToolCallSpec(TypedDict):
    name: str
    input: NotRequired[dict[str, Any]]
    id: NotRequired[str]


class RepeatSpec(TypedDict):
    text: str
    count: int
    interval_ms: NotRequired[float]


class Step(TypedDict, total=False):
    """Exactly one of text, tool_call, repeat, error, hang_ms, disconnect; `delay_ms` waits before it."""

    text: str
    tool_call: ToolCallSpec
    repeat: RepeatSpec
    error: str
    message: str
    hang_ms: float
    disconnect: bool
    delay_ms: float


class HttpErrorSpec(TypedDict):
    status: int
    type: NotRequired[str]
    message: NotRequired[str]
    retry_after: NotRequired[int]


class Usage(TypedDict, total=False):
    input_tokens: int
    output_tokens: int
    thinking_tokens: int  # in Claude's output_tokens; Gemini's thoughtsTokenCount


class Turn(TypedDict, total=False):
    """The answer to one model request; see `standins._turns` for what each key does."""

    steps: list[Step]
    stop: Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn"]
    usage: Usage
    first_token_delay_ms: float
    headers_delay_ms: float
    match: str
    provider: Literal["anthropic", "gemini"]
    http_error: HttpErrorSpec


@dataclass(frozen=True)
class RecordedRequest:
    """One model request as the stand-in saw it; times are Unix epoch seconds."""

    id: int
    provider: str
    method: str
    path: str
    model: str | None
    stream: bool
    headers: dict[str, str]
    body: Any
    turn: str | None  # "scripted" or "default"; None when the request was refused before a turn was chosen
    status: int | None
    outcome: str | None  # None while the answer is still going out
    received_at: float
    first_byte_at: float | None
    first_token_at: float | None
    finished_at: float | None
    client_closed: bool
    client_closed_at: float | None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RecordedRequest:
        return cls(**{f.name: obj[f.name] for f in fields(cls)})

    @property
    def finished(self) -> bool:
        return self.outcome is not None


class StandinError(Exception):
    """The stand-in refused a control call (a malformed turn, say), or did not answer in time."""


class StandinClient:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def script(self, *turns: Turn | Mapping[str, Any]) -> int:
        """Queue turns, each the answer to one later request; returns how many are now waiting."""
        answer = self._call("POST", "/_standin/scripts", {"turns": list(turns)})
        return int(answer["pending"])

    def pending(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_standin/scripts")["pending"])

    def requests(self) -> list[RecordedRequest]:
        return [RecordedRequest.from_json(obj) for obj in self._call("GET", "/_standin/requests")["requests"]]

    def reset(self) -> None:
        self._call("POST", "/_standin/reset", {})

    def wait_for_request(self, n: int = 1, timeout: float = 5.0, *, finished: bool = False) -> RecordedRequest:
        """The n-th request (from 1) once it has arrived, and with `finished` once its answer has ended."""
        deadline = time.monotonic() + timeout
        while True:
            requests = self.requests()
            if len(requests) >= n and (not finished or requests[n - 1].finished):
                return requests[n - 1]
            if time.monotonic() > deadline:
                state = "finished" if finished else "arrived"
                raise StandinError(f"request {n} had not {state} after {timeout} s ({len(requests)} received)")
            time.sleep(0.02)

    def _call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the stand-in's, given by the test
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise StandinError(f"{method} {path}: {error.code} {detail}") from error
