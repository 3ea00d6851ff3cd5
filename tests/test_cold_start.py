"""What a cold start pays for (issue 19): importing a function's module, as functions-framework
does, in a fresh interpreter with the stack's settings, loads no SDK, client library or e-mail
checker and builds none of the request models; each is loaded or built where it is first used.
Nothing is started: the settings name the emulators, and nothing connects to them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

import common.actions
import common.actions.records
import common.agent.sessions
import common.agent.tools
import common.contracts.schema
import common.google.grants
import common.google.integration
import common.lease
from common import models
from scripts.stack import FUNCTIONS, ROOT, Ports, Stack, isolated_env
from tests.conftest import TEST_PORT_OFFSET

pytestmark = pytest.mark.fast  # no emulator: `make test-fast` runs it

# Loaded where they are used: the model SDKs and Google's clients by the calls that need them,
# email_validator by the first address checked, tenacity by the first model call.
LOADED_WHERE_USED = (
    "anthropic",
    "google.genai",
    "googleapiclient",
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.cloud.tasks_v2",
    "firebase_admin",
    "grpc",
    "httpx",
    "email_validator",
    "pydantic.networks",
    "tenacity",
    "pypdf",
    "docx",
)

# Runs in the child: loads the module like functions_framework._function_registry does.
_LOAD = """
import importlib.util, json, os, sys
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("main", path, submodule_search_locations=[os.path.dirname(path)])
module = importlib.util.module_from_spec(spec)
sys.path.append(os.path.dirname(path))
sys.modules["main"] = module
spec.loader.exec_module(module)
from common import models
from pydantic import BaseModel
built = sorted(
    name for name, value in vars(models).items()
    if isinstance(value, type) and issubclass(value, BaseModel) and value.__pydantic_complete__
)
print(json.dumps({"modules": sorted(sys.modules), "built": built}))
"""


def _cold_import(source: str, tmp_path: Path) -> dict[str, list[str]]:
    stack = Stack(Ports.from_env({}, offset=TEST_PORT_OFFSET), env=isolated_env(), log_dir=tmp_path)
    ran = subprocess.run(
        [sys.executable, "-c", _LOAD, str(ROOT / source)],
        cwd=ROOT,
        env={**isolated_env(), **stack.settings(), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    loaded: dict[str, list[str]] = json.loads(ran.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("source", [f.source for f in FUNCTIONS], ids=[f.entry_point for f in FUNCTIONS])
def test_importing_a_function_loads_no_sdk_and_builds_no_request_model(source: str, tmp_path: Path) -> None:
    loaded = _cold_import(source, tmp_path)
    modules = set(loaded["modules"])
    assert sorted(name for name in LOADED_WHERE_USED if name in modules) == []
    assert loaded["built"] == []


def _models_of(*modules: object) -> list[type[BaseModel]]:
    return [
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__  # type: ignore[attr-defined]
    ]


def test_the_tools_input_schemas_are_built_at_first_use() -> None:
    """Importing the tools builds no JSON schema (nine of them at every cold start of chat_stream);
    the first turn that offers a tool builds its schema, once."""
    code = (
        "import json\nfrom common.agent import tools\n"
        "print(json.dumps([t.input_model.__pydantic_complete__ or 'spec' in vars(t) for t in tools.TOOLS.values()]))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**isolated_env(), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == [False] * 9
    for tool in common.agent.tools.TOOLS.values():
        assert tool.spec.input_schema["type"] == "object", tool.name
        assert tool.spec is tool.spec  # built once


def test_every_deferred_model_builds() -> None:
    """Built on first use, a model's schema error would otherwise show only at its first request."""
    deferred = _models_of(
        models,
        common.actions,
        common.actions.records,
        common.agent.sessions,
        common.contracts.schema,
        common.google.grants,
        common.google.integration,
        common.lease,
    )
    assert len(deferred) > 30
    for model in deferred:
        assert model.model_config.get("defer_build"), model.__name__
        model.model_rebuild(raise_errors=True)
        assert model.__pydantic_complete__, model.__name__
