"""The benchmark's stack: emulators and functions on their own ports, real users, raw clients."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import models  # noqa: E402
from common.collections import CUSTOMERS  # noqa: E402
from common.resources import customer_fields  # noqa: E402
from common.validation import parse_json  # noqa: E402
from scripts.stack import PROJECT_ID, Ports, Stack, StackError, isolated_env  # noqa: E402

if TYPE_CHECKING:
    from google.cloud import firestore

# Below the ephemeral port range (32768+), where outgoing connections could hold them; helpers
# benchmarking side by side give each run its own (CSCX_BENCH_PORT_OFFSET).
PORT_OFFSET = int(os.environ.get("CSCX_BENCH_PORT_OFFSET") or 20000)
SEED_BATCH = 500  # Firestore's limit of writes per batch


def bench_stack(log_dir: Path | None = None) -> Stack:
    return Stack(Ports.from_env({}, offset=PORT_OFFSET), env=isolated_env(), log_dir=log_dir, with_functions=True)


def function_env() -> dict[str, str]:
    """The environment the stack's functions get (without starting anything)."""
    with tempfile.TemporaryDirectory(prefix="cscx-bench-") as log_dir:
        return {**isolated_env(), **bench_stack(Path(log_dir)).settings()}


@dataclass(frozen=True)
class User:
    uid: str
    token: str


class Api:
    """Keep-alive HTTP calls to one function as one user; any unexpected status is an error."""

    def __init__(self, base_url: str, user: User) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {user.token}"

    def call(
        self, method: str, path: str, expect: int, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        reply = self.http.request(method, self.base_url + path, json=body, params=params, timeout=30)
        if reply.status_code != expect:
            raise RuntimeError(f"{method} {path} answered {reply.status_code}: {reply.text[:300]}")
        return reply.json()


@dataclass
class Bench:
    stack: Stack
    client: firestore.Client

    def sign_up(self, name: str) -> User:
        """A real user of the Auth emulator and their ID token."""
        base = f"http://127.0.0.1:{self.stack.ports.auth}/identitytoolkit.googleapis.com/v1"
        body = {
            "email": f"{name}-{uuid.uuid4().hex[:8]}@example.com",
            "password": "bench-password",
            "returnSecureToken": True,
        }
        reply = requests.post(f"{base}/accounts:signUp?key=bench", json=body, timeout=10)
        reply.raise_for_status()
        data = reply.json()
        return User(data["localId"], data["idToken"])

    def crud(self, user: User) -> Api:
        return Api(self.stack.url("crud"), user)

    def customers_by_name(self, uid: str) -> Any:
        """The query the repository issues for a customer list in the default order (name)."""
        from google.cloud.firestore import FieldFilter, Query

        return (
            self.client.collection(CUSTOMERS.collection)
            .where(filter=FieldFilter("owner_id", "==", uid))
            .order_by("name_lower", direction=Query.ASCENDING)
            .order_by("__name__", direction=Query.ASCENDING)
        )

    def seed_customers(self, uid: str, start: int, count: int) -> list[str]:
        """Store customers `start`..`start+count-1` of `uid` with batch writes; returns their ids."""
        ids: list[str] = []
        collection = self.client.collection(CUSTOMERS.collection)
        for first in range(start, start + count, SEED_BATCH):
            batch = self.client.batch()
            for n in range(first, min(first + SEED_BATCH, start + count)):
                reference = collection.document()
                batch.create(reference, customer_document(uid, {"name": f"Customer {n:05d}"}))
                ids.append(reference.id)
            batch.commit()
        return ids


def stream_events(response: requests.Response) -> Iterator[bytes]:
    """The events of a server-sent event stream as they arrive (`data: ...`, without the blank line)."""
    buffer = b""
    for chunk in response.iter_content(chunk_size=None):
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            yield event


def customer_document(uid: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Exactly the fields `POST /customers` stores for `body`."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    fields = customer_fields(parse_json(models.CustomerCreate, json.dumps(body).encode()).model_dump(mode="json"))
    return {**fields, "owner_id": uid, "version": 1, "created_at": SERVER_TIMESTAMP, "updated_at": SERVER_TIMESTAMP}


def _started_stack(attempts: int = 3) -> Stack:
    """A started stack; a port briefly held as another connection's ephemeral port gets a retry."""
    for attempt in range(1, attempts + 1):
        stack = bench_stack()
        try:
            stack.start()
        except StackError as error:
            if attempt == attempts or "in use" not in str(error):
                raise
            print(f"stack: a port was in use; retrying ({error})"[:300], file=sys.stderr, flush=True)
            shutil.rmtree(stack.log_dir, ignore_errors=True)
            time.sleep(5)
            continue
        return stack
    raise AssertionError("unreachable")


@contextmanager
def running_bench() -> Iterator[Bench]:
    """Start the stack on the benchmark's ports, point this process at it, and stop it after."""
    from google.cloud import firestore

    stack = _started_stack()
    try:
        os.environ.update(stack.settings())
        yield Bench(stack, firestore.Client(project=PROJECT_ID))
    finally:
        stack.stop()
    shutil.rmtree(stack.log_dir, ignore_errors=True)  # kept when something failed
