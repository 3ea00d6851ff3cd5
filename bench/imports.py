"""Cold import time of each function's module, in a fresh interpreter with the functions' env.

Each module is loaded the way functions-framework loads it (from its file path), timed with
`perf_counter` inside the child; a separate `python -X importtime` run gives the import
tree, from which the total and the heaviest imports come.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from bench.harness import ROOT
from scripts.stack import FUNCTIONS

MODULES = tuple((f.entry_point, f.source) for f in FUNCTIONS)
# SDKs that a function should import where it uses them, not when its module is imported.
HEAVY = (
    "google.cloud.firestore",
    "firebase_admin",
    "anthropic",
    "google.genai",
    "googleapiclient",
    "grpc",
    "email_validator",
    "tenacity",
)
GOAL_MS = 600.0
GOAL_CPU_MS = 300.0  # issue 19: the CPU time of the import, less sensitive to a busy machine
RUNS = 5

# Runs in the child: loads the module like functions_framework._function_registry does.
_TIMED_IMPORT = """
import importlib.util, os, sys, time
path, heavy = sys.argv[1], sys.argv[2:]
start, cpu_start = time.perf_counter(), time.process_time()
directory = os.path.dirname(path)
spec = importlib.util.spec_from_file_location("main", path, submodule_search_locations=[directory])
module = importlib.util.module_from_spec(spec)
sys.path.append(directory)
sys.modules["main"] = module
spec.loader.exec_module(module)
elapsed_ms = (time.perf_counter() - start) * 1000
cpu_ms = (time.process_time() - cpu_start) * 1000
import json
print(json.dumps({"ms": elapsed_ms, "cpu_ms": cpu_ms, "heavy": [name for name in heavy if name in sys.modules]}))
"""
_IMPORTTIME = "import sys; sys.path.insert(0, sys.argv[1]); import main"
_IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)\s*$")


@dataclass(frozen=True)
class Imported:
    name: str
    cumulative_ms: float
    self_ms: float
    depth: int


@dataclass(frozen=True)
class ImportResult:
    function: str
    runs_ms: list[float]
    cpu_runs_ms: list[float]
    importtime_ms: float
    heavy: list[str]
    direct: list[Imported]  # the module's own imports, heaviest first
    by_package: list[tuple[str, float]]  # self time summed per package, heaviest first
    by_module: list[Imported]  # every module under it, by self time, heaviest first

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def median_cpu_ms(self) -> float:
        return statistics.median(self.cpu_runs_ms)


def run(env: Mapping[str, str]) -> list[ImportResult]:
    child_env = {**env, "PYTHONPATH": str(ROOT)}
    return [_measure(function, str(ROOT / source), child_env) for function, source in MODULES]


def _measure(function: str, path: str, env: Mapping[str, str]) -> ImportResult:
    runs: list[float] = []
    cpu_runs: list[float] = []
    heavy: list[str] = []
    for _ in range(RUNS):
        out = _child([sys.executable, "-c", _TIMED_IMPORT, path, *HEAVY], env).stdout
        result = json.loads(out.strip().splitlines()[-1])
        runs.append(float(result["ms"]))
        cpu_runs.append(float(result["cpu_ms"]))
        heavy = list(result["heavy"])
    tree = _parse_importtime(
        _child([sys.executable, "-X", "importtime", "-c", _IMPORTTIME, os.path.dirname(path)], env).stderr
    )
    top = tree[-1]
    if top.name != "main" or top.depth != 0:
        raise RuntimeError(f"-X importtime did not end with the main module for {function}")
    return ImportResult(
        function,
        runs,
        cpu_runs,
        top.cumulative_ms,
        heavy,
        sorted((i for i in tree if i.depth == 1), key=lambda i: -i.cumulative_ms),
        _by_package(tree[:-1]),
        sorted(tree[:-1], key=lambda i: -i.self_ms),
    )


def _child(argv: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, env=dict(env), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{done.stderr[-2000:]}")
    return done


def _parse_importtime(stderr: str) -> list[Imported]:
    """The imports made under the last top-level import (the function's module), in order."""
    lines: list[Imported] = []
    for line in stderr.splitlines():
        match = _IMPORTTIME_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            lines.append(Imported(name, int(cumulative_us) / 1000, int(self_us) / 1000, (len(indent) - 1) // 2))
    last = max(i for i, imported in enumerate(lines) if imported.depth == 0)
    previous = max((i for i, imported in enumerate(lines[:last]) if imported.depth == 0), default=-1)
    return lines[previous + 1 : last + 1]


def _by_package(imports: list[Imported]) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for imported in imports:
        totals[_package(imported.name)] = totals.get(_package(imported.name), 0.0) + imported.self_ms
    return sorted(totals.items(), key=lambda item: -item[1])


def _package(module: str) -> str:
    """The distribution-level name of a module: `google.cloud.firestore_v1.x` → `google.cloud.firestore_v1`."""
    parts = module.split(".")
    if parts[0] == "google":
        return ".".join(parts[:3] if len(parts) > 2 and parts[1] == "cloud" else parts[:2])
    return parts[0]
