"""A chat's answer as `useChat` reads it: the UI message stream's parts, each with when it arrived."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

FIRST_TOKEN = frozenset({"text-delta", "tool-input-start"})  # the CSM sees the answer begin


@dataclass
class Answer:
    """The parts of one streamed turn, in order, and the seconds from the request to each."""

    parts: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    done: bool = False  # `[DONE]` came

    @property
    def types(self) -> list[str]:
        return [part["type"] for part in self.parts]

    @property
    def session_id(self) -> str:
        start = next((p for p in self.parts if p["type"] == "start"), {})
        return str(start.get("messageMetadata", {}).get("sessionId", ""))

    @property
    def first_token_seconds(self) -> float | None:
        return next((t for p, t in zip(self.parts, self.arrived, strict=True) if p["type"] in FIRST_TOKEN), None)

    @property
    def text(self) -> str:
        return "".join(p.get("delta", "") for p in self.parts if p["type"] == "text-delta")

    def approvals(self) -> list[str]:
        """The actions the turn proposed and that wait for a decision (their ids)."""
        return [str(p["approvalId"]) for p in self.parts if p["type"] == "tool-approval-request"]


def stream_chat(
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    *,
    timeout: float,
    on_part: Callable[[Answer], None] | None = None,
) -> Answer:
    """POST /chat and read its stream to the end; `on_part` sees the answer after each part."""
    answer = Answer()
    started = time.monotonic()
    with requests.post(f"{url}/chat", json=body, headers=headers, stream=True, timeout=(10, timeout)) as response:
        if response.status_code != 200:
            raise StreamRefusedError(f"POST /chat answered {response.status_code}: {response.text[:300]}")
        for data in _events(response.iter_lines(decode_unicode=True)):
            if data == "[DONE]":
                answer.done = True
                break
            answer.parts.append(json.loads(data))
            answer.arrived.append(time.monotonic() - started)
            if on_part is not None:
                on_part(answer)
    return answer


def _events(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if line.startswith("data: "):  # comments (`: ping`) and blank separators are not parts
            yield line.removeprefix("data: ")


class StreamRefusedError(Exception):
    """The chat did not start streaming."""
