"""Where the checklist runs: a deployment's URLs and web API key (terraform's outputs) or the local
stack's; and people signed up, in, and deleted through Identity Toolkit's REST API, as the console's
Firebase Auth does."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import requests

from scripts.stack import Ports
from standins.client import StandinClient

# What the console calls (web_config's api); the worker is Cloud Tasks' alone.
USER_FACING = ("crud", "chat_stream", "approve_action", "contract_parse")
IDENTITY_TOOLKIT = "https://identitytoolkit.googleapis.com"
# A CSCX user whose Google connection is to a test Google account, made once in the console: with
# them, the checklist books a meeting at Google against a deployment.
TEST_ACCOUNT = ("CSCX_SMOKE_EMAIL", "CSCX_SMOKE_PASSWORD")


class SmokeError(Exception):
    """A step did not get what the checklist expects: the sentence says what came instead."""


@dataclass(frozen=True)
class User:
    email: str
    uid: str
    token: str
    made: bool  # signed up by this run (and so deleted at its end)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Target:
    name: str
    api: dict[str, str]  # each user-facing function's base URL
    identity_toolkit: str  # Identity Toolkit's REST API (the Auth emulator's locally)
    api_key: str  # the web API key (any string for the emulator)
    models: StandinClient | None = None  # locally, the model stand-in the checklist scripts
    test_account: tuple[str, str] | None = None  # e-mail and password of a user connected to Google
    patience: float = 120.0  # seconds the model, the queue and the worker may take

    @property
    def deployed(self) -> bool:
        return self.models is None

    # -- reaching the functions ------------------------------------------------------------

    def call(self, method: str, function: str, path: str, user: User | None = None, **kw: Any) -> requests.Response:
        headers = {**(user.headers if user else {}), **kw.pop("headers", {})}
        url = f"{self.api[function]}{path}"
        return requests.request(method, url, headers=headers, timeout=kw.pop("timeout", 60), **kw)

    def json(self, method: str, function: str, path: str, user: User, status: int, **kw: Any) -> dict[str, Any]:
        """The answer's JSON, which must come with `status`."""
        response = self.call(method, function, path, user, **kw)
        if response.status_code != status:
            raise SmokeError(f"{method} {path} answered {response.status_code}, not {status}: {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    # -- people, as Firebase Auth's REST API makes them ----------------------------------------

    def _identity(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.identity_toolkit}/v1/accounts:{method}"
        response = requests.post(url, params={"key": self.api_key}, json=body, timeout=30)
        if response.status_code != 200:
            raise SmokeError(
                f"Identity Toolkit accounts:{method} answered {response.status_code}: {response.text[:300]}"
            )
        answer: dict[str, Any] = response.json()
        return answer

    def sign_up(self, email: str, password: str) -> User:
        made = self._identity("signUp", {"email": email, "password": password, "returnSecureToken": True})
        return User(email, str(made["localId"]), str(made["idToken"]), made=True)

    def sign_in(self, email: str, password: str) -> User:
        found = self._identity("signInWithPassword", {"email": email, "password": password, "returnSecureToken": True})
        return User(email, str(found["localId"]), str(found["idToken"]), made=False)

    def delete(self, user: User) -> None:
        """Delete the account: Identity Toolkit's accounts:delete with the user's own ID token."""
        self._identity("delete", {"idToken": user.token})


def deployed(env: str) -> Target:
    """A deployed environment, from its terraform outputs (`make plan ENV=<env>` initialised it)."""
    from terraform.deploy import console_config, environment_dir, terraform_outputs

    config = console_config(terraform_outputs(environment_dir(env)))
    email, password = (os.environ.get(name, "") for name in TEST_ACCOUNT)
    return Target(
        name=env,
        api=dict(config["api"]),
        identity_toolkit=IDENTITY_TOOLKIT,
        api_key=str(config["firebase"]["apiKey"]),
        test_account=(email, password) if email and password else None,
    )


def local(port_offset: int = 0) -> Target:
    """The local stack on its ports (each moved by its setting, or all by `port_offset`)."""
    ports = Ports.from_env(os.environ, offset=port_offset)
    return Target(
        name="local",
        api={name: f"http://127.0.0.1:{ports.functions[name]}" for name in USER_FACING},
        identity_toolkit=f"http://127.0.0.1:{ports.auth}/identitytoolkit.googleapis.com",
        api_key="local",
        models=StandinClient(f"http://127.0.0.1:{ports.models}"),
        patience=30.0,
    )
