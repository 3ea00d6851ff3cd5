"""The suite's local stack: emulators and functions on test ports, reset between tests.

The stack starts once per run (ports 1xxxx, so a `make run` stack can keep running beside
it); every test gets empty Firestore and Auth emulators.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import instance  # noqa: E402
from scripts.stack import PROJECT_ID, Ports, Stack, isolated_env  # noqa: E402
from tests.task_queue import purge_task_queue  # noqa: E402

# The stack's ports are DESIGN §11's plus this offset; CSCX_TEST_PORT_OFFSET moves them.
TEST_PORT_OFFSET = int(os.environ.get("CSCX_TEST_PORT_OFFSET") or 10000)
# The test stack's console origin: the browser origin its CORS settings allow, where Google's
# consent sends the browser back to.
WEB_ORIGIN = f"http://localhost:{Ports.from_env({}, offset=TEST_PORT_OFFSET).web}"


# -- the fast tier ----------------------------------------------------------------------------
# Tests marked `fast` (a module's `pytestmark = pytest.mark.fast`, or one test's mark) run in this
# process on pure logic, without emulators; `make test-fast` (`pytest -m fast`) runs them alone,
# and the full suite runs them with everything else.
FAST = "fast"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `-m fast`, only the modules that hold fast tests are imported: importing the whole
    suite takes longer than the fast tier runs."""
    if config.option.markexpr != FAST or not collection_path.name.startswith("test_"):
        return None
    if collection_path.suffix != ".py":
        return None
    return f"pytest.mark.{FAST}" not in collection_path.read_text(encoding="utf-8") or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that needs the stack is marked `stack` (so `-m "not stack"` runs the others); a
    fast one that would is a mistake in the test, and the run is refused."""
    stacked = [item for item in items if needs_stack(item)]
    for item in stacked:
        item.add_marker(pytest.mark.stack)
    fast = [item.nodeid for item in stacked if item.get_closest_marker(FAST)]
    if fast:
        raise pytest.UsageError(f"fast tests may not use the stack: {', '.join(fast)}")


def needs_stack(item: pytest.Item) -> bool:
    return "stack" in getattr(item, "fixturenames", ()) or item.get_closest_marker("stack") is not None


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = Stack(
        Ports.from_env({}, offset=TEST_PORT_OFFSET),
        env=isolated_env(),
        log_dir=ROOT / ".stack" / f"test-{TEST_PORT_OFFSET}",
    )
    stack.start()
    os.environ.update(stack.settings())
    instance.reset()  # what this process built so far came from the environment before the stack's
    # A CI time-out sends SIGTERM: stop the stack on the way out rather than orphan it.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield stack
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


Instance = Callable[..., None]


@pytest.fixture
def fresh_instance(request: pytest.FixtureRequest) -> Iterator[Instance]:
    """A fresh function instance in this process (`common.instance.reset`); calling it with
    `NAME="value"` (or `NAME=None` to unset) changes settings and starts afresh again. The test's
    end restores the environment and starts afresh once more."""

    def configure(**env: str | None) -> None:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        instance.reset()

    if "stack" in request.fixturenames:
        request.getfixturevalue("stack")  # its settings first, so that they outlast this test's
    with mock.patch.dict(os.environ):
        instance.reset()
        yield configure
    instance.reset()


@pytest.fixture(autouse=True)
def _reset_emulators(request: pytest.FixtureRequest) -> None:
    if "stack" not in request.fixturenames and not request.node.get_closest_marker("stack"):
        return
    stack: Stack = request.getfixturevalue("stack")
    reset_emulators(stack)


def reset_emulators(stack: Stack) -> None:
    """Empty Firestore and Auth and drop the queue's tasks, the three at once (every test pays it)."""
    firestore = f"http://127.0.0.1:{stack.ports.firestore}"
    auth = f"http://127.0.0.1:{stack.ports.auth}"
    resets = [
        _RESETS.submit(_delete, f"{firestore}/emulator/v1/projects/{PROJECT_ID}/databases/(default)/documents"),
        _RESETS.submit(_delete, f"{auth}/emulator/v1/projects/{PROJECT_ID}/accounts"),
        _RESETS.submit(purge_task_queue),  # the tasks earlier tests left: expiries a day ahead, retries
    ]
    for reset in resets:
        reset.result()


_RESETS = ThreadPoolExecutor(max_workers=3, thread_name_prefix="emulator-reset")


def _delete(url: str) -> None:
    requests.delete(url, timeout=10).raise_for_status()


@dataclass(frozen=True)
class Caller:
    uid: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Users:
    """Creates real users in the Auth emulator and signs them in."""

    def __init__(self, stack: Stack) -> None:
        self.base = f"http://127.0.0.1:{stack.ports.auth}/identitytoolkit.googleapis.com/v1"

    def create(self, name: str = "csm") -> Caller:
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        password = "correct-horse-battery"
        body = {"email": email, "password": password, "returnSecureToken": True}
        reply = requests.post(f"{self.base}/accounts:signUp?key=test-key", json=body, timeout=10)
        reply.raise_for_status()
        data = reply.json()
        return Caller(data["localId"], email, password, data["idToken"])

    def sign_in(self, user: Caller) -> Caller:
        body = {"email": user.email, "password": user.password, "returnSecureToken": True}
        reply = requests.post(f"{self.base}/accounts:signInWithPassword?key=test-key", json=body, timeout=10)
        reply.raise_for_status()
        return Caller(user.uid, user.email, user.password, reply.json()["idToken"])


@pytest.fixture
def users(stack: Stack) -> Users:
    return Users(stack)


@pytest.fixture
def alice(users: Users) -> Caller:
    return users.create("alice")


@pytest.fixture
def bob(users: Users) -> Caller:
    return users.create("bob")


class Api:
    """HTTP calls to one function, as a given user."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        user: Caller | None = None,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        all_headers = dict(user.headers if user else {})
        all_headers.update(headers or {})
        return self.http.request(method, self.base_url + path, json=json, headers=all_headers, timeout=30, **kwargs)

    def get(self, path: str, user: Caller | None = None, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, user, **kwargs)

    def post(self, path: str, user: Caller | None = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, user, **kwargs)

    def patch(self, path: str, user: Caller | None = None, **kwargs: Any) -> requests.Response:
        return self.call("PATCH", path, user, **kwargs)

    def delete(self, path: str, user: Caller | None = None, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, user, **kwargs)


@pytest.fixture
def crud(stack: Stack) -> Api:
    return Api(stack.url("crud"))


@pytest.fixture
def approvals(stack: Stack) -> Api:
    return Api(stack.url("approve_action"))


@pytest.fixture
def worker(stack: Stack) -> Api:
    """The Cloud Tasks worker (it admits the local stack's tasks account's tokens)."""
    return Api(stack.url("execute_action"))


CSM_GOOGLE_EMAIL = "csm@acme-success.com"  # the Google account the stand-in consents as: the CSM's domain


@pytest.fixture
def google(stack: Stack) -> Iterator[Any]:
    """The Google stand-in's control API, emptied before and after, consenting as CSM_GOOGLE_EMAIL."""
    from standins.google_client import GoogleStandinClient

    client = GoogleStandinClient(f"http://127.0.0.1:{stack.ports.google}")
    client.reset()
    client.set_account(CSM_GOOGLE_EMAIL)
    yield client
    client.reset()


@pytest.fixture
def apis(stack: Stack) -> dict[str, Api]:
    """The test stack's instance of every function, by entry point."""
    return {name: Api(stack.url(name)) for name in stack.ports.functions}


@pytest.fixture
def chat(stack: Stack) -> Any:
    """POST /chat and Stop, reading the stream as it arrives (`tests/chat_support.py`)."""
    from tests.chat_support import Chat

    return Chat(Api(stack.url("chat_stream")))


@pytest.fixture
def models(stack: Stack) -> Iterator[Any]:
    """The model stand-in's control API, emptied before and after the test."""
    from standins.client import StandinClient

    client = StandinClient(f"http://127.0.0.1:{stack.ports.models}")
    client.reset()
    yield client
    client.reset()


@functools.cache
def raw_firestore() -> Any:
    """A Firestore client outside the repository, for tests that inspect what is stored."""
    from google.cloud import firestore

    return firestore.Client(project=PROJECT_ID)


@pytest.fixture
def repo_for(stack: Stack) -> Any:
    """A Repository for seeding a user's documents directly (for kinds without a create route)."""
    from common.store import Repository

    return Repository


def seed_action(
    uid: str, *, status: str = "pending", customer_id: str | None = None, expires_in: float = 86400, **fields: Any
) -> dict[str, Any]:
    """An action as the agent proposes it (`task.create` by default), stored for `uid`."""
    from datetime import UTC, datetime, timedelta

    from common.collections import ACTIONS
    from common.store import Repository

    payload = {"title": "Follow up", "due_date": None, "priority": "medium", "customer_id": customer_id}
    document = {
        "type": "task.create",
        "payload": payload,
        "summary": "Create the task “Follow up”",
        "session_id": None,
        "tool_call_id": None,
        "customer_id": customer_id,
        "risk": "low",
        "status": status,
        "expires_at": datetime.now(UTC) + timedelta(seconds=expires_in),
        "decided_at": None,
        "decided_by": None,
        "reject_reason": None,
        "attempts": 0,
        "result": None,
        "error": None,
        **fields,
    }
    return Repository(uid).create(ACTIONS, document)


def assert_json_headers(response: requests.Response) -> None:
    """What every JSON answer carries, errors included (README: choices)."""
    assert response.headers["Content-Type"] == "application/json; charset=utf-8", response.headers
    assert response.headers["Cache-Control"] == "no-store", response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff", response.headers


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert_json_headers(response)
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return dict(body["error"])
