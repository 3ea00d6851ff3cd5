"""What the model sees of a session's earlier messages: their turns, newest kept, within a budget.

Stored messages hold the parts the CSM saw (`stream.Transcript`); each assistant message is read
back step by step into the model's turns: what it said and the tools it called, then their
results. A tool call is never sent without its result: calls cut off before one are left out,
and messages are dropped whole, oldest first, so a call and its result go together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from common.llm import AssistantTurn, ToolCall, ToolResult, ToolResultsTurn, Turn, UserTurn

CHARS_PER_TOKEN = 4  # a rough count, on the safe side for English text and JSON


def estimate_tokens(turns: Iterable[Turn]) -> int:
    size = 0
    for turn in turns:
        if isinstance(turn, UserTurn):
            size += len(turn.text)
        elif isinstance(turn, AssistantTurn):
            size += len(turn.text) + sum(len(c.name) + len(json.dumps(c.input)) for c in turn.tool_calls)
        else:
            size += sum(len(json.dumps(r.output, default=str)) for r in turn.results)
    return size // CHARS_PER_TOKEN + 1


def turns_of(message: Mapping[str, Any]) -> list[Turn]:
    """The model's turns for one stored message."""
    parts = message.get("parts") or []
    if message.get("role") == "user":
        text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
        return [UserTurn(text)] if text else []
    turns: list[Turn] = []
    for step in _steps(parts):
        text = "".join(p.get("text", "") for p in step if p.get("type") == "text")
        calls, results = [], []
        for part in step:
            result = _result(part)
            if result is not None:
                calls.append(ToolCall(part["toolCallId"], result.name, part.get("input") or {}))
                results.append(result)
        if text or calls:
            turns.append(AssistantTurn(text, tuple(calls)))
        if results:
            turns.append(ToolResultsTurn(tuple(results)))
    return turns


def _steps(parts: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    steps: list[list[dict[str, Any]]] = [[]]
    for part in parts:
        if part.get("type") == "step-start":
            if steps[-1]:
                steps.append([])
            continue
        steps[-1].append(part)
    return steps


def _result(part: dict[str, Any]) -> ToolResult | None:
    """The result a stored tool part gave the model, or None for a call that never got one."""
    kind = str(part.get("type", ""))
    if not kind.startswith("tool-") or "toolCallId" not in part:
        return None
    name, state = kind.removeprefix("tool-"), part.get("state")
    if state == "output-available":
        return ToolResult(part["toolCallId"], name, part.get("output"))
    if state == "output-error":
        return ToolResult(part["toolCallId"], name, {"error": part.get("errorText", "")}, is_error=True)
    if state == "approval-requested":
        action_id = (part.get("approval") or {}).get("id")
        note = "Proposed to the CSM, for their approval in the app."
        return ToolResult(part["toolCallId"], name, {"action_id": action_id, "note": note})
    return None


def within_budget(messages: Sequence[Mapping[str, Any]], budget: int) -> list[Turn]:
    """The turns of `messages` (oldest first), dropping the oldest messages whole until they fit
    (the newest is kept whatever its size).

    The history starts with a user turn, as the providers require.
    """
    units = [turns_of(m) for m in messages]
    kept: list[list[Turn]] = []
    used = 0
    for unit in reversed(units):
        size = estimate_tokens(unit)
        if kept and used + size > budget:  # the newest message always goes, whatever its size
            break
        kept.append(unit)
        used += size
    turns = [turn for unit in reversed(kept) for turn in unit]
    while turns and not isinstance(turns[0], UserTurn):
        turns.pop(0)
    return turns
