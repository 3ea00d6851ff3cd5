"""The AI SDK oracle (tests/aisdk.py) and the Node peer (bench/peer/chat_peer.mjs).

The oracle must accept every part DESIGN §7 uses and fail on what `ai` 6.x or 7.x would reject or
what the design forbids, each major judging on its own; the peer must speak the same protocol
through the real AI SDK. No stack.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from standins.local_server import JsonHandler, LocalServer, Server
from tests.aisdk import (
    ROOT,
    SDKS,
    AISDKUnavailableError,
    UIStreamCheck,
    check_ui_stream,
    check_ui_streams,
    node_binary,
    sse,
)

# Every part DESIGN §7 uses, in an order the SDK accepts: text, a read tool that succeeds, one that
# fails, an action tool awaiting approval, then the stream's error, abort and finish.
EVERY_PART: list[dict[str, Any] | str] = [
    {"type": "start", "messageId": "m1", "messageMetadata": {"sessionId": "s1"}},
    {"type": "start-step"},
    ": ping\n\n",
    {"type": "text-start", "id": "t1"},
    {"type": "text-delta", "id": "t1", "delta": "Looking "},
    {"type": "text-delta", "id": "t1", "delta": "it up."},
    {"type": "text-end", "id": "t1"},
    {"type": "tool-input-start", "toolCallId": "c1", "toolName": "get_customer"},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"customer_id":'},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '"cu1"}'},
    {"type": "tool-input-available", "toolCallId": "c1", "toolName": "get_customer", "input": {"customer_id": "cu1"}},
    {"type": "tool-output-available", "toolCallId": "c1", "output": {"name": "Acme"}},
    {"type": "tool-input-start", "toolCallId": "c2", "toolName": "list_tasks"},
    {"type": "tool-input-available", "toolCallId": "c2", "toolName": "list_tasks", "input": {}},
    {"type": "tool-output-error", "toolCallId": "c2", "errorText": "Firestore unavailable"},
    {"type": "tool-input-start", "toolCallId": "c3", "toolName": "send_email"},
    {"type": "tool-input-available", "toolCallId": "c3", "toolName": "send_email", "input": {"to": "a@b.co"}},
    {"type": "tool-approval-request", "approvalId": "act1", "toolCallId": "c3"},
    {"type": "finish-step"},
    {"type": "error", "errorText": "model overloaded"},
    {"type": "abort", "reason": "stopped by the user"},
    {"type": "finish", "finishReason": "error"},
]

TEXT: list[dict[str, Any] | str] = [
    {"type": "start", "messageId": "m1"},
    {"type": "start-step"},
    {"type": "text-start", "id": "t1"},
    {"type": "text-delta", "id": "t1", "delta": "Hi"},
    {"type": "text-end", "id": "t1"},
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "stop"},
]


def _with(index: int, chunk: dict[str, Any]) -> list[dict[str, Any] | str]:
    """TEXT with the chunk at `index` replaced."""
    return [*TEXT[:index], chunk, *TEXT[index + 1 :]]


# name → (body, a fragment the oracle's errors must contain); None = must be ok.
CASES: dict[str, tuple[bytes, str | None]] = {
    "every_part": (sse(*EVERY_PART), None),
    "text": (sse(*TEXT), None),
    "extra_key_on_start": (sse(*_with(0, {"type": "start", "messageId": "m1", "sessionId": "s1"})), "sessionId"),
    "extra_key_on_delta": (sse(*_with(3, {"type": "text-delta", "id": "t1", "delta": "Hi", "seq": 1})), "seq"),
    "extra_key_on_finish": (sse(*_with(6, {"type": "finish", "finishReason": "stop", "usage": {}})), "usage"),
    "unknown_type": (sse(*_with(1, {"type": "step-begin"})), "unknown chunk type"),
    "bad_finish_reason": (sse(*_with(6, {"type": "finish", "finishReason": "end_turn"})), "finishReason"),
    "approval_without_approval_id": (
        sse(
            *TEXT[:5],
            {"type": "tool-input-start", "toolCallId": "c1", "toolName": "send_email"},
            {"type": "tool-input-available", "toolCallId": "c1", "toolName": "send_email", "input": {}},
            {"type": "tool-approval-request", "toolCallId": "c1"},
            *TEXT[5:],
        ),
        "approvalId",
    ),
    "approval_for_unknown_tool_call": (
        sse(*TEXT[:5], {"type": "tool-approval-request", "approvalId": "a1", "toolCallId": "nope"}, *TEXT[5:]),
        'No tool invocation found for tool call ID "nope"',
    ),
    "delta_before_text_start": (sse(*TEXT[:2], *TEXT[3:]), 'Ensure a "text-start" chunk is sent'),
    "missing_done": (sse(*TEXT, done=False), "[DONE]"),
    "data_after_done": (sse(*TEXT) + b'data: {"type":"finish"}\n\n', "data after [DONE]"),
    "not_json": (sse(*TEXT[:2], "data: {type: start-step}\n\n", *TEXT[2:]), "not JSON"),
    "event_field": (sse(*TEXT[:2], 'event: delta\ndata: {"type":"start-step"}\n\n', *TEXT[2:]), "event: delta"),
}


@pytest.fixture(scope="module")
def verdicts() -> dict[str, UIStreamCheck]:
    """All CASES judged in one Node process."""
    names = list(CASES)
    return dict(zip(names, check_ui_streams([CASES[n][0] for n in names]), strict=True))


def test_every_part_is_valid_and_assembles_the_message(verdicts: dict[str, UIStreamCheck]) -> None:
    check = verdicts["every_part"]
    check.assert_ok()
    assert check.done
    assert check.chunks == [c["type"] for c in EVERY_PART if isinstance(c, dict)]
    message = check.message
    assert message is not None
    assert (message["id"], message["role"], message["metadata"]) == ("m1", "assistant", {"sessionId": "s1"})
    assert [p["type"] for p in message["parts"]] == [
        "step-start",
        "text",
        "tool-get_customer",
        "tool-list_tasks",
        "tool-send_email",
    ]
    assert check.text == "Looking it up."
    assert message["parts"][1]["state"] == "done"
    read, failed, action = check.tool_parts()
    assert read == {
        "type": "tool-get_customer",
        "toolCallId": "c1",
        "state": "output-available",
        "input": {"customer_id": "cu1"},
        "output": {"name": "Acme"},
    }
    assert (failed["state"], failed["errorText"], failed["input"]) == ("output-error", "Firestore unavailable", {})
    assert action["state"] == "approval-requested"
    assert action["approval"] == {"id": "act1"}
    assert action["input"] == {"to": "a@b.co"}


@pytest.mark.parametrize("name", [n for n, (_, fragment) in CASES.items() if fragment is not None])
def test_the_oracle_fails_what_the_sdk_or_design_rejects(verdicts: dict[str, UIStreamCheck], name: str) -> None:
    check = verdicts[name]
    fragment = CASES[name][1]
    assert not check.ok
    assert fragment is not None
    for sdk in SDKS:  # each major finds it by itself
        assert any(e.startswith(f"{sdk}: ") and fragment in e for e in check.errors), check.errors


def test_the_oracle_reads_with_ai_6_and_ai_7() -> None:
    def version(package: str) -> str:
        return str(json.loads((ROOT / "node_modules" / package / "package.json").read_text())["version"])

    versions = {package: version(package) for package in ("ai", "ai7")}
    assert versions["ai"].startswith("6."), versions
    assert versions["ai7"].startswith("7."), versions


def test_missing_done_is_reported_as_not_done(verdicts: dict[str, UIStreamCheck]) -> None:
    assert verdicts["text"].done
    assert not verdicts["missing_done"].done
    assert verdicts["missing_done"].text == "Hi"  # the SDK still assembled what came


def test_single_run_exit_code_matches_the_verdict() -> None:
    assert check_ui_stream(CASES["text"][0]).ok
    bad = check_ui_stream(CASES["unknown_type"][0])
    assert not bad.ok
    assert bad.chunks == ["start", "step-begin", "text-start", "text-delta", "text-end", "finish-step", "finish"]


def test_missing_node_modules_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("tests.aisdk.ROOT", tmp_path)
    with pytest.raises(AISDKUnavailableError, match="npm ci"):
        check_ui_stream(sse(*TEXT))


# --- The Node peer against a stand-in Anthropic Messages API ---------------------------------

WORDS = ["Hello", " from", " the", " stand", "-in", "."]


@dataclass
class FakeAnthropic:
    """A minimal Anthropic Messages SSE server; records what it was asked."""

    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    url: str = ""


def _anthropic_events(model: str) -> bytes:
    usage = {"input_tokens": 12, "output_tokens": 1}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": []}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "stop_reason": None, "stop_sequence": None, "usage": usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in WORDS),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 7},
        },
        {"type": "message_stop"},
    ]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()

    class Messages(JsonHandler):
        def do_POST(self) -> None:
            body = json.loads(self.read_body() or b"{}")
            fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path != "/v1/messages":
                self.send_error(404)
                return
            self.send(200, _anthropic_events(str(body.get("model"))), content_type="text/event-stream")

    with LocalServer(Server(("127.0.0.1", 0), Messages), name="fake-anthropic") as server:
        fake.url = server.url
        yield fake


def _ready_port(proc: subprocess.Popen[str], timeout: float) -> int:
    """The port from the peer's "listening <port>" line."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                break
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("listening "):
                return int(line.split()[1])
    raise AssertionError(f"the peer did not start (exit {proc.poll()})")


@pytest.fixture
def peer(fake_anthropic: FakeAnthropic) -> Iterator[int]:
    env = {**os.environ, "ANTHROPIC_BASE_URL": fake_anthropic.url, "ANTHROPIC_API_KEY": "k"}
    env.pop("ANTHROPIC_MODEL", None)
    proc = subprocess.Popen(
        [node_binary(), str(ROOT / "bench" / "peer" / "chat_peer.mjs"), "0"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield _ready_port(proc, timeout=20)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_peer_streams_what_the_sdk_accepts(peer: int, fake_anthropic: FakeAnthropic) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", peer, timeout=20)
    conn.request(
        "POST", "/chat", body=json.dumps({"message": "Say hello"}), headers={"content-type": "application/json"}
    )
    response = conn.getresponse()
    raw = response.read()
    conn.close()

    assert response.status == 200
    assert response.getheader("content-type", "").startswith("text/event-stream")
    assert response.getheader("x-vercel-ai-ui-message-stream") == "v1"
    check = check_ui_stream(raw)
    check.assert_ok()
    assert check.done
    assert check.text == "".join(WORDS)
    assert check.chunks[:3] == ["start", "start-step", "text-start"]
    assert check.chunks[-2:] == ["finish-step", "finish"]

    # The provider took "/v1" from our base URL and sent the user's message as it came.
    [(path, headers, body)] = fake_anthropic.requests
    assert path == "/v1/messages"
    assert headers["x-api-key"] == "k"
    assert body["stream"] is True
    assert body["model"] == "claude-sonnet-4-5"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]


def test_the_peer_rejects_a_body_without_message(peer: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", peer, timeout=10)
    conn.request("POST", "/chat", body="{}", headers={"content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 400
    response.read()
    conn.close()
