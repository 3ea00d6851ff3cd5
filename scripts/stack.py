"""The local stack: emulators and all five function entry points, on loopback.

`python scripts/stack.py run` starts everything (DESIGN §11 ports), prints where each part
listens, and stops it all on Ctrl-C. The test suite uses `Stack` with its own ports. Any
setting already in the environment wins over the defaults here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT_ID = "demo-cscx"
QUEUE = f"projects/{PROJECT_ID}/locations/us-central1/queues/cscx-actions"
FIRESTORE_LAUNCHERS = (
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator",
    "/usr/share/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator",
)

MANIFEST = ROOT / "functions" / "manifest.json"
WEB_DIST = ROOT / "web" / "dist"


def stop_processes(processes: list[subprocess.Popen[Any]], grace: float = 10) -> None:
    """Stop processes started with `start_new_session=True`, children included: SIGTERM to each
    group, then SIGKILL to any group still running after `grace` seconds. Never raises, so a
    process slow to shut down never hides what a test found."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True)
class Function:
    """One deployed entry point, as `functions/manifest.json` lists it."""

    entry_point: str
    source: str  # the file that defines it, from the repository root
    port_setting: str  # the setting that moves its local port
    port: int  # its local port (DESIGN §11)
    threads: int | None = None  # functions-framework worker threads: its Cloud Run concurrency (terraform)
    streaming: bool = False  # answers with a stream as long as the model talks (the longest timeout)


def load_manifest(path: Path = MANIFEST) -> tuple[Function, ...]:
    """The functions of the manifest: the stack, the tests and terraform all read this list."""
    entries = json.loads(path.read_text(encoding="utf-8"))["functions"]
    return tuple(Function(**entry) for entry in entries)


FUNCTIONS = load_manifest()


def isolated_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (the process's by default) without the settings of an outer stack.

    For a stack of its own beside `make run` (the tests', the benchmark's): an outer shell's
    emulator addresses and CSCX_ settings must not leak into it.
    """
    env = os.environ if env is None else env
    outer = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")
    return {k: v for k, v in env.items() if not (k.endswith("_EMULATOR_HOST") or k.startswith("CSCX_") or k in outer)}


class StackError(RuntimeError):
    """A part of the stack is missing or did not start."""


@dataclass
class Ports:
    firestore: int = 8080
    auth: int = 9099
    tasks: int = 8123
    storage: int = 9023
    hub: int = 4400
    models: int = 8090  # the Anthropic and Vertex Gemini stand-in
    google: int = 8091  # the Google OAuth, Gmail and Calendar stand-in
    web: int = 3000  # the console (web/dist)
    functions: dict[str, int] = field(default_factory=lambda: {f.entry_point: f.port for f in FUNCTIONS})

    @classmethod
    def from_env(cls, env: Mapping[str, str], offset: int = 0) -> Ports:
        def port(name: str, default: int) -> int:
            return int(env.get(name) or default + offset)

        return cls(
            firestore=port("CSCX_FIRESTORE_PORT", cls.firestore),
            auth=port("CSCX_AUTH_PORT", cls.auth),
            tasks=port("CSCX_TASKS_PORT", cls.tasks),
            storage=port("CSCX_STORAGE_PORT", cls.storage),
            hub=port("CSCX_EMULATOR_HUB_PORT", cls.hub),
            models=port("CSCX_MODEL_STANDIN_PORT", cls.models),
            google=port("CSCX_GOOGLE_STANDIN_PORT", cls.google),
            web=port("CSCX_WEB_PORT", cls.web),
            functions={f.entry_point: port(f.port_setting, f.port) for f in FUNCTIONS},
        )


def firestore_launcher() -> str:
    override = os.environ.get("CSCX_FIRESTORE_EMULATOR")
    candidates = (override,) if override else FIRESTORE_LAUNCHERS
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise StackError(
        "The Firestore emulator is missing: install the Debian package "
        "google-cloud-cli-firestore-emulator (or set CSCX_FIRESTORE_EMULATOR to its launcher)."
    )


def _require(path: Path, what: str) -> str:
    if not path.exists():
        raise StackError(f"{what} is missing at {path}: run `make install` first.")
    return str(path)


class Stack:
    """Starts and stops the emulators and functions as child process groups."""

    def __init__(
        self,
        ports: Ports,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        with_functions: bool = True,
    ) -> None:
        self.ports = ports
        self.base_env = dict(os.environ if env is None else env)
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="cscx-stack-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.with_functions = with_functions
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    # -- settings ----------------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        """The settings every function (and test) gets; present values win."""
        models = f"http://127.0.0.1:{self.ports.models}"
        google = f"http://127.0.0.1:{self.ports.google}"
        defaults = {
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{self.ports.firestore}",
            "FIREBASE_AUTH_EMULATOR_HOST": f"127.0.0.1:{self.ports.auth}",
            "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{self.ports.tasks}",
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.ports.storage}",
            "CSCX_CONTRACTS_BUCKET": f"{PROJECT_ID}-contracts",
            "CSCX_TASKS_QUEUE": QUEUE,
            "CSCX_WORKER_URL": self.url("execute_action"),
            # The console this stack serves (start_console) is the browser origin it allows.
            "CSCX_CORS_ORIGINS": f"http://localhost:{self.ports.web},http://127.0.0.1:{self.ports.web}",
            # Tests and benchmarks make thousands of requests a minute as one user; the limiter
            # itself is tested on a variant with the limit low (tests/test_limits.py).
            "CSCX_RATE_LIMIT_PER_MINUTE": "1000000",
            # The project is a demo one: Gemini (Vertex AI) and Google are always the stand-ins
            # unless the caller points them elsewhere.
            "CSCX_GEMINI_BASE_URL": models,
            "CSCX_GOOGLE_API_BASE": google,
            "CSCX_GOOGLE_OAUTH_BASE": google,
            # The Google stand-in's own OAuth client, and where its consent comes back to.
            "GOOGLE_OAUTH_CLIENT_ID": "cscx-local.apps.googleusercontent.com",
            "GOOGLE_OAUTH_CLIENT_SECRET": "cscx-local-secret",
            "CSCX_OAUTH_REDIRECT_URL": f"{self.url('crud')}/integrations/google/callback",
            "CSCX_WEB_APP_URL": f"{self.console_url()}/settings/integrations",
        }
        if not self.base_env.get("ANTHROPIC_API_KEY"):
            # Without a real key, Claude is the stand-in too; with one, the SDK's own URL stays.
            defaults |= {"ANTHROPIC_API_KEY": "local-standin-key", "ANTHROPIC_BASE_URL": models}
        # The emulators are started for PROJECT_ID: a project id from the shell (a real one,
        # often) must not reach the functions, which would then refuse the emulators.
        return {
            **{key: self.base_env.get(key) or value for key, value in defaults.items()},
            "GOOGLE_CLOUD_PROJECT": PROJECT_ID,
        }

    def url(self, function: str) -> str:
        return f"http://127.0.0.1:{self.ports.functions[function]}"

    def console_url(self) -> str:
        return f"http://localhost:{self.ports.web}"

    def console_config(self) -> dict[str, object]:
        """The console's `/config.json` (web/src/config.ts) for this stack."""
        return {
            "firebase": {"apiKey": "local-emulator-key", "authDomain": "localhost", "projectId": PROJECT_ID},
            "api": {name: self.url(name) for name in ("crud", "chat_stream", "approve_action", "contract_parse")},
            "authEmulator": f"http://127.0.0.1:{self.ports.auth}",
        }

    def start_console(self, dist: Path = WEB_DIST) -> str:
        """Serve the built console on the web port with this stack's config; returns its URL."""
        if not (dist / "index.html").is_file():
            raise StackError(f"the console is not built at {dist}: run `make web` (or `make run`) first.")
        if _port_open(self.ports.web):
            raise StackError(f"port {self.ports.web} (the console) is already in use; is another stack running?")
        config = self.log_dir / "console-config.json"
        config.write_text(json.dumps(self.console_config(), indent=2))
        python = _require(ROOT / ".venv/bin/python", "the project's venv")
        argv = [python, str(ROOT / "scripts/console.py"), "--host", "127.0.0.1", "--port", str(self.ports.web)]
        self._spawn("console", [*argv, "--dist", str(dist), "--config", str(config)])
        self._await({"console": (f"http://127.0.0.1:{self.ports.web}/config.json", None)}, timeout=30)
        return self.console_url()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        busy = [f"{name} ({port})" for name, port in self._all_ports().items() if _port_open(port)]
        if busy:
            raise StackError(f"ports already in use: {', '.join(busy)}; is another stack running?")
        try:
            self._start_firestore()
            self._start_auth()
            self._start_tasks()
            self._start_storage()
            self._start_standins()
            if self.with_functions:
                for function in FUNCTIONS:
                    self._start_function(function)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_processes([process for _, process in reversed(self.processes)])
        self.processes.clear()

    def _all_ports(self) -> dict[str, int]:
        ports = {
            "firestore": self.ports.firestore,
            "auth": self.ports.auth,
            "tasks": self.ports.tasks,
            "storage": self.ports.storage,
            "emulator hub": self.ports.hub,
            "emulator logging": self.ports.hub + 100,
            "model stand-in": self.ports.models,
            "Google stand-in": self.ports.google,
        }
        if self.with_functions:
            ports.update(self.ports.functions)
        return ports

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env or self.base_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: killpg stops children too
        )
        self.processes.append((name, process))

    def _start_firestore(self) -> None:
        rules = ROOT / "firestore.rules"
        self._spawn(
            "firestore",
            [
                firestore_launcher(),
                "start",
                "--host=127.0.0.1",
                f"--port={self.ports.firestore}",
                f"--rules={rules}",
                f"--project_id={PROJECT_ID}",
            ],
        )

    def restart_firestore(self) -> None:
        """An empty Firestore emulator in place of the running one, on the same port (clients
        reconnect). Emptying it is not the same: it keeps what was deleted, and its queries scan
        that too (a list of 30 documents takes 20 ms after 20,000 others came and went, 14 ms before)."""
        [running] = [process for name, process in self.processes if name == "firestore"]
        stop_processes([running])
        self.processes.remove(("firestore", running))
        self._start_firestore()
        self._await({"firestore": (f"http://127.0.0.1:{self.ports.firestore}/", None)}, timeout=60)

    def _start_auth(self) -> None:
        firebase = _require(ROOT / "node_modules/.bin/firebase", "firebase-tools")
        config_dir = self.log_dir / "firebase"
        config_dir.mkdir(exist_ok=True)
        config = {
            "emulators": {
                "auth": {"host": "127.0.0.1", "port": self.ports.auth},
                "hub": {"host": "127.0.0.1", "port": self.ports.hub},
                "logging": {"host": "127.0.0.1", "port": self.ports.hub + 100},
                "ui": {"enabled": False},
                "singleProjectMode": True,
            }
        }
        (config_dir / "firebase.json").write_text(json.dumps(config))
        env = {**self.base_env, "NO_UPDATE_NOTIFIER": "1", "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "1"}
        self._spawn(
            "auth",
            [
                firebase,
                "emulators:start",
                "--only",
                "auth",
                "--project",
                PROJECT_ID,
                "--config",
                str(config_dir / "firebase.json"),
            ],
            env,
            cwd=config_dir,
        )

    def _start_tasks(self) -> None:
        emulator = _require(ROOT / ".venv-tasks/bin/gcloud-tasks-emulator", "gcloud-tasks-emulator")
        self._spawn(
            "tasks",
            [
                emulator,
                "start",
                "-p",
                str(self.ports.tasks),
                "-q",
                "-d",
                self.settings()["CSCX_TASKS_QUEUE"],
                "-t",
                str(self.ports.functions["execute_action"]),
                "-H",
                "127.0.0.1",
                # No limit of its own: the worker fails an action on its last attempt
                # (CSCX_TASKS_MAX_ATTEMPTS), and the emulator retries without backoff, so a limit
                # would be spent in a second while a worker restarts.
            ],
        )

    def _start_storage(self) -> None:
        emulator = _require(ROOT / ".venv/bin/gcp-storage-emulator", "gcp-storage-emulator")
        self._spawn(
            "storage",
            [
                emulator,
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.storage),
                "--in-memory",
                "--default-bucket",
                self.settings()["CSCX_CONTRACTS_BUCKET"],
            ],
        )

    def _start_standins(self) -> None:
        python = _require(ROOT / ".venv/bin/python", "the project's venv")
        for name, port in (("models", self.ports.models), ("google", self.ports.google)):
            argv = [python, "-m", f"standins.{name}", "--host", "127.0.0.1", "--port", str(port)]
            self._spawn(f"{name}-standin", argv, {**self.base_env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})

    def _start_function(
        self,
        function: Function,
        port: int | None = None,
        changes: Mapping[str, str | None] | None = None,
        log_name: str | None = None,
    ) -> None:
        framework = _require(ROOT / ".venv/bin/functions-framework", "functions-framework")
        env = {**self.base_env, **self.settings(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        if function.threads is not None:
            env["THREADS"] = str(function.threads)
        for key, value in (changes or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        name = function.entry_point
        port = self.ports.functions[name] if port is None else port
        source = str(ROOT / function.source)
        argv = [framework, "--target", name, "--source", source, "--host", "127.0.0.1", "--port", str(port)]
        self._spawn(log_name or name, argv, env)

    def start_variant(self, name: str, label: str, changes: Mapping[str, str | None], port: int | None = None) -> str:
        """Another instance of function `name` whose settings differ by `changes` (None
        removes a setting), on `port` or a free one, stopped with the stack; returns its URL."""
        return self.start_variants({name: port}, label, changes)[name]

    def start_variants(
        self, functions: Mapping[str, int | None], label: str, changes: Mapping[str, str | None]
    ) -> dict[str, str]:
        """`start_variant` of several functions (name → port, None for a free one) at once: all
        start together, then all are awaited; their URLs by name."""
        urls: dict[str, str] = {}
        checks: dict[str, tuple[str | None, int | None]] = {}
        for name, asked in functions.items():
            function = next(f for f in FUNCTIONS if f.entry_point == name)
            port = free_port() if asked is None else asked
            log_name = f"{name}-{label}"
            self._start_function(function, port, changes, log_name)
            urls[name] = f"http://127.0.0.1:{port}"
            checks[log_name] = (f"{urls[name]}/healthz", None)
        self._await(checks, timeout=60)
        return urls

    def kill(self, name: str) -> None:
        """Kill the process `name` (a variant's `<function>-<label>`) at once, as a crash would."""
        for process_name, process in list(self.processes):
            if process_name == name and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                self.processes.remove((process_name, process))

    def _wait_ready(self, timeout: float = 90) -> None:
        checks = {
            "firestore": (f"http://127.0.0.1:{self.ports.firestore}/", None),
            "auth": (f"http://127.0.0.1:{self.ports.auth}/", None),
            "tasks": (None, self.ports.tasks),
            "storage": (None, self.ports.storage),
            "models-standin": (f"http://127.0.0.1:{self.ports.models}/healthz", None),
            "google-standin": (f"http://127.0.0.1:{self.ports.google}/healthz", None),
        }
        if self.with_functions:
            for name in self.ports.functions:
                checks[name] = (f"{self.url(name)}/healthz", None)
        self._await(checks, timeout)
        # A port-only check passes on anyone's listener: ours must still be alive.
        time.sleep(0.5)
        for name in checks:
            self._check_alive(name)

    def _await(self, checks: Mapping[str, tuple[str | None, int | None]], timeout: float) -> None:
        """Wait until each process answers its check (an HTTP URL, else an open port)."""
        deadline = time.monotonic() + timeout
        pending = dict(checks)
        while pending:
            for name, (url, port) in list(pending.items()):
                self._check_alive(name)
                if (url and _http_ok(url)) or (port and _port_open(port)):
                    del pending[name]
            if time.monotonic() > deadline:
                raise StackError(f"not ready after {timeout:.0f}s: {', '.join(pending)} (logs in {self.log_dir})")
            time.sleep(0.2)

    def _check_alive(self, name: str) -> None:
        for process_name, process in self.processes:
            if process_name == name and process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise StackError(f"{name} exited with {process.returncode}:\n{tail}")

    def describe(self) -> str:
        lines = [
            f"Firestore emulator  127.0.0.1:{self.ports.firestore} (rules: firestore.rules)",
            f"Auth emulator       127.0.0.1:{self.ports.auth}",
            f"Cloud Tasks         127.0.0.1:{self.ports.tasks} (queue {self.settings()['CSCX_TASKS_QUEUE']})",
            f"Cloud Storage       127.0.0.1:{self.ports.storage} (bucket {self.settings()['CSCX_CONTRACTS_BUCKET']})",
            f"model stand-in      127.0.0.1:{self.ports.models} (Anthropic Messages, Vertex Gemini)",
            f"Google stand-in     127.0.0.1:{self.ports.google} (OAuth, Gmail, Calendar)",
        ]
        if self.with_functions:
            lines += [f"{name:<19} {self.url(name)}" for name in self.ports.functions]
        if any(name == "console" for name, _ in self.processes):
            lines.append(f"console             {self.console_url()}")
        lines.append(f"logs                {self.log_dir}")
        return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own http://127.0.0.1 URLs
            return bool(response.status == 200)
    except OSError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.parse_args()
    if shutil.which("java") is None:
        print("java is missing: the Firestore emulator needs a Java runtime", file=sys.stderr)
        return 1
    stack = Stack(Ports.from_env(os.environ), log_dir=ROOT / ".stack")
    try:
        stack.start()
        stack.start_console()
    except StackError as error:
        stack.stop()
        print(f"stack: {error}", file=sys.stderr)
        return 1
    print("CSCX local stack is up (Ctrl-C stops it):\n" + stack.describe(), flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            for name, process in stack.processes:
                if process.poll() is not None:
                    print(f"stack: {name} exited with {process.returncode}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        stack.stop()
        print("stack stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
