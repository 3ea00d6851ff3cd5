"""Every route every function serves, read from the routers themselves.

The auth, isolation, validation and OpenAPI matrices take their rows from here, so a route
added to any function joins each matrix by itself, and fails it until the matrix knows how to
call it. The routers are loaded in a fresh interpreter: a function's import-time set-up
(settings, logging) stays out of the test process.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

from scripts.stack import FUNCTIONS, PROJECT_ID, ROOT

_LIST_ROUTES = """
import json, runpy, sys
from common.http import Router
found = []
for entry_point, source in json.loads(sys.argv[1]):
    module = runpy.run_path(source)
    [router] = [v for v in module.values() if isinstance(v, Router) and v.name == entry_point]
    for r in router.routes:
        query = None if r.query is None else sorted(r.query)
        auth, keyed = type(r.auth).__name__, r.idempotent is not None
        found.append([entry_point, r.method, r.pattern, auth, r.check_revoked, query, keyed])
print(json.dumps(found))
"""


@dataclass(frozen=True)
class ServedRoute:
    function: str  # the entry point serving it
    method: str
    pattern: str
    auth: str  # the authenticator's class: FirebaseUser, Anyone, CloudTasks
    check_revoked: bool
    query: tuple[str, ...] | None  # None: any parameter
    idempotent: bool = False  # takes an Idempotency-Key

    def __str__(self) -> str:
        return f"{self.function}: {self.method} {self.pattern}"

    @property
    def public(self) -> bool:
        return self.auth == "Anyone"

    @property
    def user_route(self) -> bool:
        """Called by a signed-in CSM (a Firebase ID token)."""
        return self.auth == "FirebaseUser"

    @property
    def parameters(self) -> list[str]:
        """The names of the ids in its path."""
        return re.findall(r"\{(\w+)\}", self.pattern)


@functools.cache
def served_routes() -> tuple[ServedRoute, ...]:
    """Every route of every function of the manifest."""
    # Only the routers are read: settings a function requires at its cold start are stood in for.
    required = (
        "ANTHROPIC_API_KEY",
        "CSCX_TASKS_QUEUE",
        "CSCX_WORKER_URL",
        "GOOGLE_OAUTH_CLIENT_ID",
        "GOOGLE_OAUTH_CLIENT_SECRET",
        "CSCX_OAUTH_REDIRECT_URL",
        "CSCX_WEB_APP_URL",
        "CSCX_CONTRACTS_BUCKET",
    )
    stood_in = dict.fromkeys(required, "listing-routes-only")
    env = {**stood_in, **os.environ, "GOOGLE_CLOUD_PROJECT": PROJECT_ID}
    env["PYTHONPATH"] = str(ROOT)
    functions = json.dumps([[f.entry_point, str(ROOT / f.source)] for f in FUNCTIONS])
    out = subprocess.run(
        [sys.executable, "-c", _LIST_ROUTES, functions],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    listed = json.loads(out.strip().splitlines()[-1])
    return tuple(
        ServedRoute(function, method, pattern, auth, revoked, None if query is None else tuple(query), idempotent)
        for function, method, pattern, auth, revoked, query, idempotent in listed
    )


def user_routes(function: str | None = None) -> list[ServedRoute]:
    """The routes a signed-in CSM calls, of one function or of all."""
    return [r for r in served_routes() if r.user_route and (function is None or r.function == function)]
