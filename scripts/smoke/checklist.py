"""The launch checklist, a step at a time; each step's row says ok (with what it saw), FAILED (with
what came instead) or skipped (with why), and how long it took.

Against a deployment the model is real: each step asks in so many words for what it needs ("call
the create_task tool now"), waits as long as `Target.patience`, and a proposal asked for and not
made is asked for once more. Locally the model stand-in is scripted for each step (its turns
matched to the step's tag), and the Google stand-in consents as Google would.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any

import requests

from scripts.smoke.stream import Answer, StreamRefusedError, stream_chat
from scripts.smoke.target import TEST_ACCOUNT, SmokeError, Target, User

FIRST_TOKEN_SECONDS = 2.0
# The steps others need, by name.
SIGN_UP = "sign up two users (Identity Toolkit)"
ISOLATION = "user B cannot see user A's customer"
PROPOSAL = "chat: an agent's proposal is pending"
GOOGLE = "Google connected (the complete step)"


class SkipError(Exception):
    """The step cannot run here; the sentence says why."""


@dataclass(frozen=True)
class Row:
    step: str
    result: str  # "ok…", "FAILED: …" or "skipped: …"
    seconds: float

    @property
    def failed(self) -> bool:
        return self.result.startswith("FAILED")


@dataclass
class Checklist:
    target: Target
    run: str = field(default_factory=lambda: secrets.token_hex(4))
    people: dict[str, User] = field(default_factory=dict)
    customer: dict[str, Any] = field(default_factory=dict)
    proposal: str = ""  # the pending action's id
    connected: User | None = None  # a user whose Google connection the meeting goes through
    made: list[tuple[User, str]] = field(default_factory=list)  # what to delete: (owner, path)

    def steps(self) -> list[tuple[str, Callable[[], str], tuple[str, ...]]]:
        """(name, step, the steps it needs), in order."""
        return [
            (SIGN_UP, self.sign_up, ()),
            ("no token: 401", self.no_token, ()),
            (ISOLATION, self.isolation, (SIGN_UP,)),
            ("contract: a parsed term with its page", self.contract, (ISOLATION,)),
            (PROPOSAL, self.proposal_pending, (ISOLATION,)),
            ("chat: first token under 2 s", self.first_token, (SIGN_UP,)),
            ("chat: Stop cancels the answer", self.stop, (SIGN_UP,)),
            ("approve the proposal: executed", self.approve_task, (PROPOSAL,)),
            (GOOGLE, self.google, (SIGN_UP,)),
            ("approve a meeting: executed, a Meet link", self.meeting, (GOOGLE,)),
        ]

    def walk(self, report: Callable[[Row], None]) -> list[Row]:
        """Every step, then the clean-up, each reported as it ends."""
        rows: list[Row] = []
        passed: set[str] = set()
        try:
            for name, step, needs in self.steps():
                started = time.monotonic()
                missing = [need for need in needs if need not in passed]
                if missing:
                    result = f"skipped: needs “{missing[0]}”"
                else:
                    result = _outcome(step)
                    if result.startswith("ok"):
                        passed.add(name)
                rows.append(Row(name, result, time.monotonic() - started))
                report(rows[-1])
        finally:
            started = time.monotonic()
            rows.append(Row("clean up what this run made", _outcome(self.clean_up), time.monotonic() - started))
            report(rows[-1])
        return rows

    # -- the steps ---------------------------------------------------------------------------

    def sign_up(self) -> str:
        password = secrets.token_urlsafe(18)
        for who in ("a", "b"):
            self.people[who] = self.target.sign_up(f"cscx-smoke-{self.run}-{who}@example.com", password)
        return f"{self.people['a'].email}, {self.people['b'].email}"

    def no_token(self) -> str:
        calls = [("GET", "crud", "/customers"), ("POST", "chat_stream", "/chat"), ("GET", "approve_action", "/actions")]
        calls.append(("POST", "contract_parse", "/contracts/upload"))
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            for method, function, path in calls:
                response = self.target.call(
                    method, function, path, headers=headers, json={} if method == "POST" else None
                )
                status = _error_status(response)
                if (response.status_code, status) != (401, "UNAUTHENTICATED"):
                    sent = "a forged token" if headers else "no token"
                    raise SmokeError(f"{method} {function}{path} with {sent}: {response.status_code} {status}")
        return "each user-facing function, without a token and with a forged one"

    def isolation(self) -> str:
        a, b = self.people["a"], self.people["b"]
        body = {"name": f"Smoke Co {self.run}", "domain": "smoke.example", "stage": "onboarding"}
        self.customer = self.target.json("POST", "crud", "/customers", a, 201, json=body)
        self.made.append((a, f"/customers/{self.customer['id']}?cascade=true"))
        seen = self.target.call("GET", "crud", f"/customers/{self.customer['id']}", b)
        if (seen.status_code, _error_status(seen)) != (404, "NOT_FOUND"):
            raise SmokeError(f"B reading A's customer got {seen.status_code}: {seen.text[:200]}")
        listed = self.target.json("GET", "crud", "/customers", b, 200)["items"]
        if any(item["id"] == self.customer["id"] for item in listed):
            raise SmokeError("A's customer is in B's list")
        return "404 for B, and not in B's list"

    def contract(self) -> str:
        a, tag = self.people["a"], self._tag("contract")
        text = CONTRACT.format(tag=tag, customer=self.customer["name"])
        if self.target.models is not None:
            evidence = {"effective_date": {"quote": "effective as of January 1, 2026", "page": 1}}
            terms = {"effective_date": "2026-01-01", "confidence": {"effective_date": 0.95}, "evidence": evidence}
            call = {"name": "record_contract_terms", "input": terms}
            self.target.models.script({"match": tag, "steps": [{"tool_call": call}]})
        files = {"file": (f"smoke-{self.run}.txt", text.encode(), "text/plain")}
        data = {"customer_id": self.customer["id"], "title": f"Smoke contract {self.run}"}
        response = self.target.call(
            "POST", "contract_parse", "/contracts/upload", a, files=files, data=data, timeout=600
        )
        if response.status_code != 201:
            raise SmokeError(f"upload answered {response.status_code}: {response.text[:300]}")
        contract = response.json()
        if contract["status"] != "parsed":
            raise SmokeError(f"the contract is {contract['status']}: {contract.get('parse_error')}")
        extracted = contract.get("extracted") or {}
        for name, proof in (extracted.get("evidence") or {}).items():
            if isinstance(proof, dict) and isinstance(proof.get("page"), int) and extracted.get(name) is not None:
                return f"{name} = {extracted[name]!r}, page {proof['page']}: “{proof.get('quote')}”"
        raise SmokeError(f"no term was kept with its page: {extracted}")

    def proposal_pending(self) -> str:
        a, tag = self.people["a"], self._tag("proposal")
        due = (date.today() + timedelta(days=1)).isoformat()
        title = f"Smoke check {self.run}"
        if self.target.models is not None:
            task = {"title": title, "due_date": due, "priority": "low", "customer_id": self.customer["id"]}
            self.target.models.script(
                {"match": tag, "steps": [{"tool_call": {"name": "create_task", "input": task}}]},
                {"match": tag, "steps": [{"text": "I proposed the task; it waits for your approval."}]},
            )
        ask = (
            f"Propose a task for {self.customer['name']} with the create_task tool now: title “{title}”, due {due}, "
            f"priority low. Call the tool at once, do not ask me anything. ({tag})"
        )
        self.proposal = self._proposed(a, ask)
        action = self.target.json("GET", "approve_action", f"/actions/{self.proposal}", a, 200)
        if (action["status"], action["type"]) != ("pending", "task.create"):
            raise SmokeError(f"the proposal is {action['type']} {action['status']}")
        return f"{action['type']}: {action['summary']}"

    def first_token(self) -> str:
        a, tag = self.people["a"], self._tag("first-token")
        if self.target.models is not None:
            self.target.models.script({"match": tag, "steps": [{"text": "Hello from the smoke run."}]})
        answer = self._chat(a, f"Say hello in five words. ({tag})")
        first = answer.first_token_seconds
        if first is None or first >= FIRST_TOKEN_SECONDS:
            raise SmokeError(f"the first token came after {first} s (goal: under {FIRST_TOKEN_SECONDS} s)")
        return f"{first:.2f} s"

    def stop(self) -> str:
        a, tag = self.people["a"], self._tag("stop")
        if self.target.models is not None:
            steps = [{"text": "Renewal risk shows early"}, {"hang_ms": 60_000}, {"text": " never said"}]
            self.target.models.script({"match": tag, "steps": steps})
        stopped_at: list[float] = []

        def stop_once_it_speaks(answer: Answer) -> None:
            if not stopped_at and answer.text:
                stopped_at.append(time.monotonic())
                self.target.json("POST", "chat_stream", f"/sessions/{answer.session_id}/stop", a, 202)

        ask = f"Write a 2,000-word essay on the signals of renewal risk in SaaS customers, with headings. ({tag})"
        answer = self._chat(a, ask, on_part=stop_once_it_speaks)
        ended = time.monotonic()
        if not stopped_at:
            raise SmokeError("the answer ended before it could be stopped")
        if answer.types[-1:] != ["abort"]:
            raise SmokeError(f"the stream ended with {answer.types[-1:]}, not abort")
        messages = self.target.json("GET", "crud", f"/sessions/{answer.session_id}/messages", a, 200)["items"]
        if not messages or (messages[-1]["role"], messages[-1]["status"]) != ("assistant", "cancelled"):
            raise SmokeError(f"the answer was stored as {messages[-1:]}")
        return f"ended {ended - stopped_at[0]:.2f} s after Stop, stored cancelled"

    def approve_task(self) -> str:
        a = self.people["a"]
        action = self._approve(a, self.proposal)
        task_id = (action.get("result") or {}).get("task_id")
        task = self.target.json("GET", "crud", f"/tasks/{task_id}", a, 200)
        return f"task “{task['title']}” created"

    def google(self) -> str:
        if self.target.models is None:
            if self.target.test_account is None:
                named = " and ".join(TEST_ACCOUNT)
                raise SkipError(f"no test Google account ({named} name a CSCX user connected to one)")
            self.connected = self.target.sign_in(*self.target.test_account)
        else:
            self.connected = self.people["a"]
            self._connect_through_the_stand_in(self.connected)
        connection = self.target.json("GET", "crud", "/integrations/google", self.connected, 200)
        if connection["status"] != "connected":
            raise SmokeError(f"{self.connected.email}'s Google connection is {connection['status']}")
        return f"{self.connected.email} → {connection['google_email']}"

    def meeting(self) -> str:
        assert self.connected is not None
        user, tag = self.connected, self._tag("meeting")
        google_email = self.target.json("GET", "crud", "/integrations/google", user, 200)["google_email"]
        start = datetime.combine(date.today() + timedelta(days=1), clock(15, 0), UTC)
        end, title = start + timedelta(minutes=30), f"CSCX smoke meeting {self.run}"
        if self.target.models is not None:
            meeting = {"title": title, "start": start.isoformat(), "end": end.isoformat(), "attendees": [google_email]}
            self.target.models.script(
                {
                    "match": tag,
                    "steps": [{"tool_call": {"name": "book_meeting", "input": {**meeting, "timezone": "UTC"}}}],
                },
                {"match": tag, "steps": [{"text": "I proposed the meeting; it waits for your approval."}]},
            )
        ask = (
            f"Propose a meeting with the book_meeting tool now: title “{title}”, from {start.isoformat()} to "
            f"{end.isoformat()}, time zone UTC, attendee {google_email}. Call the tool at once, do not ask me "
            f"anything. ({tag})"
        )
        action = self._approve(user, self._proposed(user, ask))
        meet_link = (action.get("result") or {}).get("meet_link")
        if not meet_link:
            raise SmokeError(f"booked without a Meet link: {action.get('result')}")
        return str(meet_link)

    def clean_up(self) -> str:
        problems = []
        for owner, path in reversed(self.made):
            response = self.target.call("DELETE", "crud", path, owner)
            if response.status_code not in (204, 404):
                problems.append(f"DELETE {path}: {response.status_code}")
        deleted = 0
        for user in self.people.values():
            try:
                self.target.delete(user)
                deleted += 1
            except (SmokeError, requests.RequestException) as error:
                problems.append(f"{user.email}: {error}")
        if problems:
            raise SmokeError("; ".join(problems))
        return f"{deleted} accounts deleted, with their customers, contracts, tasks and sessions"

    # -- helpers -----------------------------------------------------------------------------

    def _tag(self, step: str) -> str:
        """What a step's prompt carries, and its scripted turns match, locally."""
        return f"smoke-{self.run}-{step}"

    def _chat(self, user: User, message: str, on_part: Callable[[Answer], None] | None = None) -> Answer:
        body: dict[str, Any] = {"message": message}
        if self.customer and user is self.people.get("a"):
            body["customer_id"] = self.customer["id"]
        answer = stream_chat(
            self.target.api["chat_stream"], user.headers, body, timeout=self.target.patience, on_part=on_part
        )
        if answer.session_id:
            self.made.append((user, f"/sessions/{answer.session_id}"))
        if not answer.done:
            raise SmokeError(f"the stream ended without [DONE]: {answer.types[-3:]}")
        return answer

    def _proposed(self, user: User, ask: str) -> str:
        """The action a chat turn proposed when asked to. A real model that answered in words
        instead is asked once more; the stand-in does what it is scripted to."""
        for attempt in range(1 if self.target.models is not None else 2):
            answer = self._chat(user, ask if attempt == 0 else f"Call the tool now, exactly as asked. {ask}")
            if answer.approvals():
                return answer.approvals()[0]
        raise SmokeError(f"nothing was proposed; the answer: {answer.text[:200]!r}")

    def _approve(self, user: User, action_id: str) -> dict[str, Any]:
        """Approve the action and wait until the worker has carried it out."""
        key = {"Idempotency-Key": f"smoke-{self.run}-{action_id}"}
        self.target.json("POST", "approve_action", f"/actions/{action_id}/approve", user, 202, headers=key)
        deadline = time.monotonic() + self.target.patience
        while True:
            action = self.target.json("GET", "approve_action", f"/actions/{action_id}", user, 200)
            if action["status"] == "executed":
                return action
            if action["status"] == "failed" or time.monotonic() > deadline:
                raise SmokeError(f"the action is {action['status']}: {action.get('error')}")
            time.sleep(1)

    def _connect_through_the_stand_in(self, user: User) -> None:
        """The console's connection with the Google stand-in as the consent screen (DESIGN §5)."""
        auth_url = self.target.json("POST", "crud", "/integrations/google/connect", user, 200)["auth_url"]
        at_google = requests.get(auth_url, allow_redirects=False, timeout=30)
        back = requests.get(at_google.headers.get("Location", ""), allow_redirects=False, timeout=30)
        landed = back.headers.get("Location", "")
        if "google=pending" not in landed or "grant=" not in landed:
            raise SmokeError(f"the callback sent the browser to {landed or back.status_code}")
        grant = landed.split("grant=", 1)[1].split("&", 1)[0]
        self.target.json("POST", "crud", "/integrations/google/complete", user, 200, json={"grant": grant})


CONTRACT = """MASTER SUBSCRIPTION AGREEMENT ({tag})

This Master Subscription Agreement is made between {customer} (the Customer) and CSCX Smoke Test
Vendor Inc. (the Provider).

This Agreement is effective as of January 1, 2026 and runs for an initial term of twelve (12) months.
The total contract value is USD 24,000, payable annually in advance, net 30.
Either party may terminate this Agreement for material breach on thirty (30) days' written notice.
"""


def _outcome(step: Callable[[], str]) -> str:
    try:
        seen = step()
    except SkipError as skipped:
        return f"skipped: {skipped}"
    except (SmokeError, StreamRefusedError, requests.RequestException, KeyError, ValueError) as error:
        return f"FAILED: {type(error).__name__ + ': ' if isinstance(error, KeyError | ValueError) else ''}{error}"
    return f"ok: {seen}" if seen else "ok"


def _error_status(response: requests.Response) -> str:
    try:
        return str(response.json()["error"]["status"])
    except (ValueError, KeyError, TypeError):
        return ""
