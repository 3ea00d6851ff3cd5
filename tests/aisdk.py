"""The Vercel AI SDK as a test oracle for the chat stream (DESIGN §7).

`check_ui_stream(raw)` hands a raw SSE body to `tests/node/check_ui_stream.mjs`, which judges it
with the pinned AI SDK itself, `ai` 6.x and 7.x (`ai7`) each: event splitting, its chunk schema,
no keys outside that schema, and the UIMessage that `useChat` would assemble (the same under
both). Needs `node` on PATH and `npm ci` done.

`AISDKClient` is the SDK's own chat client, `DefaultChatTransport` as `useChat` makes it, in a
Node process the tests drive (`tests/node/chat_client.mjs`): it sends messages to the running
`chat_stream`, cuts a stream off and resumes it, under `ai` 6.x or 7.x.
"""

from __future__ import annotations

import base64
import json
import selectors
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "tests" / "node" / "check_ui_stream.mjs"
# The packages the checker imports; `npm ci` installs them from package-lock.json.
REQUIRED_PACKAGES = ("ai", "ai7", "zod", "eventsource-parser")
SDKS = ("ai 6", "ai 7")  # how the oracle's errors name the major that found them


class AISDKUnavailableError(RuntimeError):
    """Node or the npm packages of the oracle are missing on this machine."""


@dataclass(frozen=True)
class UIStreamCheck:
    """The oracle's verdict on one SSE body."""

    ok: bool
    errors: list[str]
    chunks: list[str | None]  # chunk types in order; None where a data event had no string type
    message: dict[str, Any] | None  # the UIMessage `readUIMessageStream` assembled (ai 6's; ai 7's is the same)
    done: bool  # the stream ended with `data: [DONE]`

    @property
    def text(self) -> str:
        """The text of the assembled message's text parts, joined."""
        parts = (self.message or {}).get("parts", [])
        return "".join(p.get("text", "") for p in parts if p.get("type") == "text")

    def tool_parts(self) -> list[dict[str, Any]]:
        """The assembled message's tool parts (`tool-<name>`), in order."""
        parts: list[dict[str, Any]] = (self.message or {}).get("parts", [])
        return [p for p in parts if str(p.get("type", "")).startswith("tool-")]

    def assert_ok(self) -> None:
        """Fail with every error the oracle found."""
        if not self.ok:
            raise AssertionError("AI SDK rejects the stream:\n  " + "\n  ".join(self.errors))


def node_binary() -> str:
    """`node` from PATH, after checking the oracle's packages are installed."""
    node = shutil.which("node")
    if node is None:
        raise AISDKUnavailableError("node is not on PATH: the AI SDK oracle needs Node 20+")
    missing = [p for p in REQUIRED_PACKAGES if not (ROOT / "node_modules" / p / "package.json").is_file()]
    if missing:
        raise AISDKUnavailableError(
            f"node_modules lacks {', '.join(missing)}: run `npm ci` in {ROOT} (package-lock.json pins them)"
        )
    return node


def _run(args: list[str], stdin: bytes, timeout: float) -> tuple[int, Any]:
    proc = subprocess.run(
        [node_binary(), str(CHECKER), *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        out = None
    if proc.returncode not in (0, 1) or out is None:
        stderr = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{CHECKER.name} failed (exit {proc.returncode}): {stderr or proc.stdout[:500]!r}")
    return proc.returncode, out


def _verdict(out: Any) -> UIStreamCheck:
    if not isinstance(out, dict):
        raise RuntimeError(f"{CHECKER.name}: unexpected verdict {out!r:.200}")
    return UIStreamCheck(
        ok=bool(out["ok"]),
        errors=[str(e) for e in out["errors"]],
        chunks=list(out["chunks"]),
        message=out["message"],
        done=bool(out["done"]),
    )


def check_ui_stream(raw: bytes, *, timeout: float = 30.0) -> UIStreamCheck:
    """Judge a raw UI message stream body with the AI SDK's own parser and schema."""
    code, out = _run([], raw, timeout)
    check = _verdict(out)
    if check.ok != (code == 0):
        raise RuntimeError(f"{CHECKER.name}: exit {code} disagrees with ok={check.ok}")
    return check


def check_ui_streams(raws: Sequence[bytes], *, timeout: float = 60.0) -> list[UIStreamCheck]:
    """`check_ui_stream` for many bodies in one Node process (the SDK's import is paid once)."""
    bodies = [base64.b64encode(raw).decode("ascii") for raw in raws]
    _, out = _run(["--batch"], json.dumps(bodies).encode(), timeout)
    if not isinstance(out, list) or len(out) != len(raws):
        raise RuntimeError(f"{CHECKER.name} --batch: expected {len(raws)} verdicts, got {out!r:.200}")
    return [_verdict(v) for v in out]


def sse(*chunks: dict[str, Any] | str, done: bool = True) -> bytes:
    """An SSE body as DESIGN §7 sends it: `data: <json>\\n\\n` per chunk, then `data: [DONE]`.

    A `str` chunk is sent as it is (a comment such as ": ping\\n\\n", or a malformed event).
    """
    out = [c if isinstance(c, str) else f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks]
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


CLIENT = ROOT / "tests" / "node" / "chat_client.mjs"


@dataclass
class ClientStream:
    """A stream as the AI SDK's transport gave it: its chunks so far, and how the request went."""

    handle: str
    status: int | None
    chunks: list[dict[str, Any]]
    done: bool
    error: str | None = None

    @property
    def types(self) -> list[str]:
        return [str(chunk["type"]) for chunk in self.chunks]

    @property
    def text(self) -> str:
        return "".join(str(chunk["delta"]) for chunk in self.chunks if chunk["type"] == "text-delta")


class AISDKClient:
    """The AI SDK's `DefaultChatTransport`, in a Node process (`tests/node/chat_client.mjs`),
    configured as `useChat` does by default: `api` and an `Authorization` header."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._handles = 0
        self._process = subprocess.Popen(
            [node_binary(), str(CLIENT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _call(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(self.timeout):
                raise TimeoutError(f"{CLIENT.name}: no answer to {command['op']} in {self.timeout} s")
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"{CLIENT.name} ended (exit {self._process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        if "failure" in answer:
            raise RuntimeError(f"{CLIENT.name}: {answer['failure']}")
        return answer

    def _stream(self, answer: dict[str, Any]) -> ClientStream:
        return ClientStream(answer["handle"], answer["status"], answer["chunks"], answer["done"], answer.get("error"))

    def _handle(self) -> str:
        self._handles += 1
        return f"h{self._handles}"

    def send(
        self,
        ai: str,
        api: str,
        token: str,
        chat_id: str,
        messages: list[dict[str, Any]],
        *,
        trigger: str = "submit-message",
        message_id: str | None = None,
        until: tuple[str, int] | None = None,
    ) -> ClientStream:
        """`sendMessages`, read to the end or until the `until[1]`-th chunk of type `until[0]`."""
        command = {
            "op": "send",
            "handle": self._handle(),
            "ai": ai,
            "api": api,
            "headers": {"Authorization": f"Bearer {token}"},
            "chatId": chat_id,
            "messages": messages,
            "trigger": trigger,
            "messageId": message_id,
            "until": {"type": until[0], "count": until[1]} if until else None,
        }
        return self._stream(self._call(command))

    def resume(
        self, ai: str, api: str, token: str, chat_id: str, *, until: tuple[str, int] | None = None
    ) -> ClientStream:
        """`reconnectToStream`: GET {api}/{chat_id}/stream (a 204 is a stream with no chunks)."""
        command = {
            "op": "resume",
            "handle": self._handle(),
            "ai": ai,
            "api": api,
            "headers": {"Authorization": f"Bearer {token}"},
            "chatId": chat_id,
            "until": {"type": until[0], "count": until[1]} if until else None,
        }
        return self._stream(self._call(command))

    def read(self, stream: ClientStream, *, until: tuple[str, int] | None = None) -> ClientStream:
        """Read on: the chunks are added to `stream`'s."""
        command = {
            "op": "read",
            "handle": stream.handle,
            "until": {"type": until[0], "count": until[1]} if until else None,
        }
        more = self._stream(self._call(command))
        stream.chunks += more.chunks
        stream.done, stream.error = more.done, more.error
        return stream

    def cut(self, stream: ClientStream) -> None:
        """Abort the request mid-stream, as a dropped connection does: its connection closes."""
        assert self._call({"op": "cut", "handle": stream.handle})["cut"]

    def assemble(self, ai: str, chunks: list[dict[str, Any]]) -> dict[str, Any]:
        """The UIMessage `readUIMessageStream` makes of `chunks`."""
        answer = self._call({"op": "assemble", "ai": ai, "chunks": chunks})
        assert not answer["errors"], answer["errors"]
        return dict(answer["message"])
