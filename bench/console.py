"""The console's budgets (issue 18), measured in headless Chromium against the benchmark's stack:

- first-load JavaScript: what the browser fetches to show the first screen (signed out, the
  book of customers, a chat opened directly), gzipped at level 9 as a host serves it, beside what
  the build's index.html asks for; goal <= 200 KB;
- from pressing Send to the first token painted (performance marks in the page) against the
  backend's own time to first token, a client reading POST /chat as it arrives (with the body
  the page sends, useChat's default: the chat's id and the whole conversation), interleaved turn
  by turn; goal: send-to-painted <= backend + 50 ms. The page's marks also split its time: Send to
  the request, the request to the first delta read, that delta to its paint.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from bench.harness import ROOT, Bench, User, stream_events
from bench.stats import Summary

BUDGET_KB = 200.0
GOAL_ADDED_MS = 50.0
TURNS = 20
DIST = ROOT / "web" / "dist"
PASSWORD = "bench-password"


@dataclass(frozen=True)
class LoadedScreen:
    name: str
    files: dict[str, int]  # JavaScript file → gzipped bytes

    @property
    def kb(self) -> float:
        return sum(self.files.values()) / 1024


@dataclass
class ConsoleResult:
    build_entry_kb: float
    build_chunks: dict[str, float]
    screens: list[LoadedScreen]
    send_to_painted: Summary
    request_to_first_delta: Summary
    send_to_request: Summary
    delta_to_painted: Summary
    backend_ttft: Summary


def gzipped(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9))


def build_sizes() -> tuple[float, dict[str, float]]:
    """What index.html loads at once (the entry and its preloads), and every chunk, in KB gzipped."""
    index = (DIST / "index.html").read_text()
    wanted = re.findall(r'<(?:script[^>]*src|link[^>]*rel="modulepreload"[^>]*href)="([^"]+\.js)"', index)
    entry = sum(gzipped((DIST / path.lstrip("/")).read_bytes()) for path in wanted) / 1024
    chunks = {p.name: gzipped(p.read_bytes()) / 1024 for p in sorted((DIST / "assets").glob("*.js"))}
    return entry, chunks


def run(bench: Bench) -> ConsoleResult:
    from playwright.sync_api import sync_playwright

    from scripts.chromium import launch

    console = bench.stack.start_console()
    entry, chunks = build_sizes()
    user, email = _user(bench)
    with sync_playwright() as driver:
        browser = launch(driver)
        try:
            screens = _first_loads(browser, console, email)
            timings = _turns(browser, console, bench, user, email)
        finally:
            browser.close()
    painted, first_delta, to_request, to_paint, backend = timings
    return ConsoleResult(entry, chunks, screens, painted, first_delta, to_request, to_paint, backend)


def _user(bench: Bench) -> tuple[User, str]:
    base = f"http://127.0.0.1:{bench.stack.ports.auth}/identitytoolkit.googleapis.com/v1"
    email = f"bench-console-{int(time.time())}@example.com"
    reply = requests.post(
        f"{base}/accounts:signUp?key=bench",
        json={"email": email, "password": PASSWORD, "returnSecureToken": True},
        timeout=10,
    )
    reply.raise_for_status()
    data = reply.json()
    return User(data["localId"], data["idToken"]), email


def _sign_in(page: Any, console: str, email: str) -> None:
    page.goto(f"{console}/customers")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Customers", level=1).wait_for()


def _first_loads(browser: Any, console: str, email: str) -> list[LoadedScreen]:
    """Each first screen loaded with nothing cached (routing turns Chromium's HTTP cache off),
    counting every script it fetched."""
    screens = []
    for name, path, signed_in, role, label in (
        ("sign-in page", "/customers", False, "button", "Sign in"),
        ("book of customers", "/customers", True, "heading", "Customers"),
        ("a chat, opened directly", "/chat", True, "heading", "New chat"),
    ):
        context = browser.new_context()
        context.route("**/*", lambda route: route.continue_())
        if signed_in:  # the sign-in stays in the profile for the page measured next
            _sign_in(context.new_page(), console, email)
        page = context.new_page()
        scripts: dict[str, int] = {}

        def seen(response: Any, scripts: dict[str, int] = scripts) -> None:
            if response.request.resource_type == "script":
                scripts[response.url.rsplit("/", 1)[-1]] = gzipped(response.body())

        page.on("response", seen)
        page.goto(console + path)
        page.get_by_role(role, name=label).first.wait_for()
        page.wait_for_load_state("networkidle")
        screens.append(LoadedScreen(name, scripts))
        context.close()
    return screens


def _turns(browser: Any, console: str, bench: Bench, user: User, email: str) -> tuple[Summary, ...]:
    """TURNS turns in the page, each beside a turn read by a plain HTTP client, the same answer."""
    from standins.client import StandinClient

    models = StandinClient(f"http://127.0.0.1:{bench.stack.ports.models}")
    answer = {"steps": [{"text": "Renewal "}, {"text": "looks healthy.", "delay_ms": 30}]}
    chat_url = bench.stack.url("chat_stream")
    headers = {"Authorization": f"Bearer {user.token}"}
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, console, email)
    page.get_by_role("link", name="Chat", exact=True).click()
    box = page.get_by_label("Message", exact=True)
    page_marks: list[dict[str, float]] = []
    backend: list[float] = []
    conversation = ClientChat(f"bench-{uuid.uuid4().hex[:16]}")
    for turn in range(TURNS + 2):  # the first two warm both sides up
        models.script(answer)
        box.fill(f"How is Acme? ({turn})")
        box.press("Enter")
        page.wait_for_function("performance.getEntriesByName('cscx:first-token-painted').length > 0")
        page.get_by_role("button", name="Send").wait_for()
        marks = page.evaluate(
            "Object.fromEntries(performance.getEntriesByType('mark')"
            ".filter(m => m.name.startsWith('cscx:')).map(m => [m.name, m.startTime]))"
        )
        models.script(answer)
        ttft = conversation.turn(chat_url, headers, f"How is Acme? (client {turn})")
        if turn >= 2:
            page_marks.append(marks)
            backend.append(ttft)
    context.close()

    def span(start: str, end: str) -> Summary:
        return Summary.of([m[f"cscx:{end}"] - m[f"cscx:{start}"] for m in page_marks])

    return (
        span("send", "first-token-painted"),
        span("chat-request", "first-delta"),
        span("send", "chat-request"),
        span("first-delta", "first-token-painted"),
        Summary.of(backend),
    )


class ClientChat:
    """A plain HTTP client's chat, sending what useChat sends: the chat's id (the session's, made
    by the client) and the whole conversation so far, its last message the new one."""

    def __init__(self, chat_id: str) -> None:
        self.chat_id = chat_id
        self.messages: list[dict[str, Any]] = []

    def turn(self, url: str, headers: dict[str, str], text: str) -> float:
        """Milliseconds from sending POST /chat to reading its first text-delta."""
        self.messages.append(_message("user", text))
        body = {"id": self.chat_id, "messages": self.messages, "trigger": "submit-message"}
        started = time.perf_counter()
        first = 0.0
        answer: list[str] = []
        with requests.post(f"{url}/chat", json=body, headers=headers, stream=True, timeout=60) as response:
            if response.status_code != 200:
                raise RuntimeError(f"POST /chat answered {response.status_code}: {response.text[:300]}")
            for event in stream_events(response):
                if not event.startswith(b'data: {"type":"text-delta"'):
                    continue
                if not first:
                    first = (time.perf_counter() - started) * 1000
                answer.append(json.loads(event[6:])["delta"])
        if not first:
            raise RuntimeError("the client's turn had no text")
        self.messages.append(_message("assistant", "".join(answer)))
        return first


def _message(role: str, text: str) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:16], "role": role, "parts": [{"type": "text", "text": text}]}
