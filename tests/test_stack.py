"""The local stack of `make run`: everything starts, settings are honoured, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from scripts.stack import FUNCTIONS, PROJECT_ID, ROOT, Ports, Stack, StackError, firestore_launcher, isolated_env
from tests.conftest import TEST_PORT_OFFSET

# Ports of this test's own `run` stack: 1100-1400 above the suite's (+offset), clear of both
# the suite's stack and `make run`'s.
_BASE = TEST_PORT_OFFSET + 1000
PORTS = {
    "CSCX_MODEL_STANDIN_PORT": _BASE + 190,
    "CSCX_GOOGLE_STANDIN_PORT": _BASE + 191,
    "CSCX_FIRESTORE_PORT": _BASE + 180,
    "CSCX_AUTH_PORT": _BASE + 199,
    "CSCX_TASKS_PORT": _BASE + 123,
    "CSCX_STORAGE_PORT": _BASE + 124,
    "CSCX_EMULATOR_HUB_PORT": _BASE + 400,
    **{f.port_setting: _BASE + 181 + i for i, f in enumerate(FUNCTIONS)},
}
ORIGIN = "https://app.cscx.example"


def _open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_missing_firestore_emulator_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSCX_FIRESTORE_EMULATOR", "/nonexistent/cloud_firestore_emulator")
    with pytest.raises(StackError, match="Firestore emulator is missing"):
        firestore_launcher()


def test_run_starts_everything_honours_settings_and_stops_on_ctrl_c() -> None:
    env = {**isolated_env(), **{k: str(v) for k, v in PORTS.items()}, "CSCX_CORS_ORIGINS": ORIGIN}
    process = subprocess.Popen(
        [sys.executable, "scripts/stack.py", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("logs"):
                break
        output = "".join(lines)
        assert "CSCX local stack is up" in output, output
        for function in FUNCTIONS:
            url = f"http://127.0.0.1:{PORTS[function.port_setting]}"
            assert function.entry_point in output
            assert url in output, output
            assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        assert f"127.0.0.1:{PORTS['CSCX_FIRESTORE_PORT']}" in output
        assert f"127.0.0.1:{PORTS['CSCX_AUTH_PORT']}" in output

        # A setting present in the environment wins over the stack's default.
        crud = f"http://127.0.0.1:{PORTS['CSCX_CRUD_PORT']}"
        preflight = requests.options(
            f"{crud}/customers",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
            timeout=5,
        )
        assert preflight.headers.get("Access-Control-Allow-Origin") == ORIGIN

        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 0
        time.sleep(0.5)
        still_open = [name for name, port in PORTS.items() if _open(port)]
        assert still_open == [], f"still listening after Ctrl-C: {still_open}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_restarted_firestore_emulator_is_empty_on_the_same_port_and_its_clients_carry_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from google.cloud import firestore

    # A stack of its own, without functions, 2000 above the suite's: clear of it and of `run`'s.
    ports = Ports.from_env({}, offset=TEST_PORT_OFFSET + 2000)
    stack = Stack(ports, env=isolated_env(), log_dir=tmp_path, with_functions=False)
    stack.start()
    try:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{stack.ports.firestore}")
        document = firestore.Client(project=PROJECT_ID).collection("restarts").document("one")
        document.set({"n": 1})

        stack.restart_firestore()

        assert not document.get().exists
        document.set({"n": 2})
        assert document.get().to_dict() == {"n": 2}
        assert [name for name, _ in stack.processes].count("firestore") == 1
    finally:
        stack.stop()
