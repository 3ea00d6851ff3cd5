"""The path of a chat turn before the model call (issue 19): each step of `start_chat`, timed alone
in this process against the bench's emulators and model stand-in, for a new session (what the
time to first token of part 4 measures) and for a turn in an existing session.

Alone, a step's time is what it adds when it is on the critical path; `start_chat` runs the reads
beside one another, so the path pays the longest of those that judge the request, then the
claim's one commit (no transaction), then the model call. What the request really waits before
the model call, end to end, is part 4's "before model" figure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from bench.harness import Bench, User
from bench.stats import Summary, table
from standins.client import StandinClient

if TYPE_CHECKING:
    from common import auth

PATH_RUNS = 20
R = TypeVar("R")


@dataclass(frozen=True)
class PathResult:
    steps: dict[str, Summary]  # ms, in the order of the path


class Steps:
    """The times of each step, by name, in the order first taken (none while warming up)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.warming = True

    def add(self, name: str, ms: float) -> None:
        if not self.warming:
            self.samples.setdefault(name, []).append(ms)

    def time(self, name: str, step: Callable[[], R]) -> R:
        started = time.perf_counter()
        result = step()
        self.add(name, (time.perf_counter() - started) * 1000)
        return result


def run_path(bench: Bench) -> PathResult:
    from common import auth

    user = bench.sign_up("chat-path")
    customer_id = bench.seed_customers(user.uid, 0, 1)[0]
    caller = auth.authenticate(f"Bearer {user.token}")
    steps = Steps()
    standin = StandinClient(f"http://127.0.0.1:{bench.stack.ports.models}")
    for run in range(PATH_RUNS + 1):  # the first warms the clients up
        steps.warming = run == 0
        _one_turn(steps, user, caller, customer_id, standin)
    return PathResult(steps={name: Summary.of(values) for name, values in steps.samples.items()})


def _one_turn(steps: Steps, user: User, caller: auth.User, customer_id: str, standin: StandinClient) -> None:
    from common import auth, models, resources, usage
    from common.agent import chat, sessions
    from common.agent.sessions import NewTurn
    from common.collections import SESSIONS
    from common.llm import ModelRequest, Upstream, UserTurn
    from common.llm.providers import provider
    from common.settings import get_settings
    from common.store import Repository, commits

    settings = get_settings()
    repo = Repository(caller.uid)
    model = settings.models["claude"][0]
    lease = settings.stream_lease_seconds
    steps.time("auth: the ID token verified", lambda: auth.authenticate(f"Bearer {user.token}"))
    steps.time("profile read, alone", lambda: resources.get_profile(repo, caller))
    steps.time("usage read (the budget), alone", lambda: usage.today(repo))
    steps.time("sessions counted (a new one's room), alone", lambda: resources.ensure_room(repo, SESSIONS))
    fresh = models.ChatRequest.model_validate({"message": "path"})
    reads = steps.time(
        "new session: the reads that judge it, batched (profile, usage, room, Google): one call",
        lambda: chat.read_for(repo, caller, fresh),
    )
    room = "new session: the room judged on the counter read"
    steps.time(room, lambda: resources.ensure_room(repo, SESSIONS, reads.room()))
    new = NewTurn(text="path", provider="claude", model=model)
    claim = steps.time(
        "claim, new session: one commit with the message",
        lambda: sessions.hold(repo, None, new, uuid.uuid4().hex, lease),
    )
    sessions.release(repo, claim, None, replay_seconds=None)
    held = claim.session.id
    steps.time("session read (an existing one), alone", lambda: commits.read(repo, SESSIONS, held))
    named = models.ChatRequest.model_validate({"message": "again", "session_id": held, "customer_id": customer_id})
    session = steps.time(
        "existing session, a customer: the reads that judge it, batched (+ session, customer): one call",
        lambda: chat.read_for(repo, caller, named),
    ).session
    assert session is not None
    steps.time("the session's customer read (beside the commit)", lambda: chat.customer_of(repo, customer_id))
    again = NewTurn(text="again", provider="claude", model=model, customer_id=customer_id)
    claim = steps.time(
        "claim, existing session, a customer: one compare-and-set commit with the message",
        lambda: sessions.hold(repo, session, again, uuid.uuid4().hex, lease),
    )
    steps.time("history read (an existing session)", lambda: sessions.latest_messages(repo, held, 100))
    sessions.release(repo, claim, None, replay_seconds=None)
    marker = f"path-{uuid.uuid4().hex}"
    standin.reset()
    standin.script({"match": marker, "steps": [{"text": "Hi"}]})
    sent = time.time()
    for _ in provider("claude").stream(ModelRequest(model, "system", (UserTurn(marker),)), Upstream()):
        pass
    record = next(r for r in standin.requests() if marker in str(r.body))
    steps.add("provider: client made, connected, the request received", (record.received_at - sent) * 1000)


def report(result: PathResult) -> str:
    rows = [[name, s.n, s.p50, s.p95] for name, s in result.steps.items()]
    return (
        "\n4c. The path of a chat turn before the model call (issue 19): each step of start_chat alone, ms\n"
        "   (start_chat runs the reads beside one another; part 4's 'before model' is the whole path)\n"
        + table(["step", "n", "p50", "p95"], rows)
    )
