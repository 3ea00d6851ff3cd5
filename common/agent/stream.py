"""The Vercel AI SDK UI message stream protocol v1 (DESIGN §7): its parts, framed as SSE.

Every part is one `data: <json>` event with exactly the keys the SDK's chunk schema defines
(`ai` 6.x and 7.x); the stream ends with `data: [DONE]`, and `: ping` comments keep it alive while
the model is silent.
"""

from __future__ import annotations

import json
from typing import Any, Literal

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Vercel-AI-UI-Message-Stream": "v1",
    "X-Accel-Buffering": "no",
}
CONTENT_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"

Part = dict[str, Any]
FinishReason = Literal["stop", "length", "tool-calls", "error", "other"]


def frame(part: Part) -> bytes:
    return b"data: " + json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def start(message_id: str, session_id: str) -> Part:
    return {"type": "start", "messageId": message_id, "messageMetadata": {"sessionId": session_id}}


def start_step() -> Part:
    return {"type": "start-step"}


def finish_step() -> Part:
    return {"type": "finish-step"}


def text_start(text_id: str) -> Part:
    return {"type": "text-start", "id": text_id}


def text_delta(text_id: str, delta: str) -> Part:
    return {"type": "text-delta", "id": text_id, "delta": delta}


def text_end(text_id: str) -> Part:
    return {"type": "text-end", "id": text_id}


def tool_input_start(call_id: str, tool: str) -> Part:
    return {"type": "tool-input-start", "toolCallId": call_id, "toolName": tool}


def tool_input_delta(call_id: str, delta: str) -> Part:
    return {"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": delta}


def tool_input_available(call_id: str, tool: str, tool_input: Any) -> Part:
    return {"type": "tool-input-available", "toolCallId": call_id, "toolName": tool, "input": tool_input}


def tool_output_available(call_id: str, output: Any) -> Part:
    return {"type": "tool-output-available", "toolCallId": call_id, "output": output}


def tool_output_error(call_id: str, error_text: str) -> Part:
    return {"type": "tool-output-error", "toolCallId": call_id, "errorText": error_text}


def tool_approval_request(action_id: str, call_id: str) -> Part:
    return {"type": "tool-approval-request", "approvalId": action_id, "toolCallId": call_id}


def finish(reason: FinishReason) -> Part:
    return {"type": "finish", "finishReason": reason}


def error(text: str) -> Part:
    return {"type": "error", "errorText": text}


def abort(reason: str) -> Part:
    return {"type": "abort", "reason": reason}


class Transcript:
    """The message as the SDK's client assembles it from the parts (a UIMessage's `parts`),
    kept as the parts go out, so the stored message is what the CSM saw."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self._texts: dict[str, Part] = {}
        self._tools: dict[str, Part] = {}

    def add(self, part: Part) -> None:
        kind = part["type"]
        if kind == "start-step":
            self.parts.append({"type": "step-start"})
        elif kind == "text-start":
            text: Part = {"type": "text", "text": "", "state": "streaming"}
            self._texts[part["id"]] = text
            self.parts.append(text)
        elif kind == "text-delta":
            self._texts[part["id"]]["text"] += part["delta"]
        elif kind == "text-end":
            self._texts.pop(part["id"])["state"] = "done"
        elif kind == "tool-input-start":
            tool: Part = {
                "type": f"tool-{part['toolName']}",
                "toolCallId": part["toolCallId"],
                "state": "input-streaming",
            }
            self._tools[part["toolCallId"]] = tool
            self.parts.append(tool)
        elif kind == "tool-input-available":
            tool = self._tools[part["toolCallId"]]
            tool.update(state="input-available", input=part["input"])
        elif kind == "tool-output-available":
            self._tools[part["toolCallId"]].update(state="output-available", output=part["output"])
        elif kind == "tool-output-error":
            self._tools[part["toolCallId"]].update(state="output-error", errorText=part["errorText"])
        elif kind == "tool-approval-request":
            self._tools[part["toolCallId"]].update(state="approval-requested", approval={"id": part["approvalId"]})

    def close_open_text(self) -> None:
        """Texts cut off by a stop or an error are kept as far as they went."""
        for text in self._texts.values():
            text["state"] = "done"
        self._texts.clear()
