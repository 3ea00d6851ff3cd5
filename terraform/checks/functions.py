"""Every entry point deployed as sized, each archive holding what its main.py imports."""

from __future__ import annotations

import ast
import re
import sys

from terraform.checks.code import manifest
from terraform.checks.tree import ROOT, Problems, Tree, functions_table, single


def check_functions(tree: Tree) -> Problems:
    """Every entry point is a function of modules/cscx, deployed by modules/function, as sized."""
    problems: Problems = []
    table = functions_table(tree)
    for entry in manifest():
        if entry not in table:
            problems.append(f"entry point {entry} (functions/manifest.json) has no function in modules/cscx")
    for entry in table:
        if entry not in manifest():
            problems.append(f"function {entry} is not an entry point of functions/manifest.json")
    call = tree.cscx.modules.get("functions", {})
    if call.get("source") != "../function" or call.get("for_each") != "${local.functions}":
        problems.append("modules/cscx must deploy every entry of local.functions with modules/function")
    if "local.manifest[each.key].source" not in str(call.get("source_files")):
        problems.append("a function's archive must hold its entry point's file from functions/manifest.json")
    for entry, spec in table.items():
        threads = manifest().get(entry, {}).get("threads")
        concurrency, cpu = spec.get("concurrency"), float(spec.get("cpu", 0))
        if threads is not None and concurrency != threads:
            problems.append(f"{entry}: concurrency {concurrency} is not its {threads} threads (manifest)")
        if concurrency is not None and concurrency > 1 and cpu < 1:
            problems.append(f"{entry}: concurrency above 1 needs at least one CPU")
        if manifest().get(entry, {}).get("streaming") and spec.get("timeout_seconds") != 3600:
            problems.append(f"{entry}: a streaming function needs the longest timeout (3600 s)")
    function = tree.function.resources().get(("google_cloudfunctions2_function", "this"), {})
    service = single(function.get("service_config", [{}]))
    wiring = {
        "max_instance_request_concurrency": "${var.concurrency}",
        "available_cpu": "${var.cpu}",
        "min_instance_count": "${var.min_instances}",
        "timeout_seconds": "${var.timeout_seconds}",
        "environment_variables": "${var.environment_variables}",
        "service_account_email": "${google_service_account.runtime.email}",
    }
    for key, expected in wiring.items():
        if service.get(key) != expected:
            problems.append(f"modules/function: service_config.{key} must be {expected}")
    return problems


def check_packaging(tree: Tree) -> Problems:
    """Each archive holds what its main.py imports: common/, the runtime lock, the standard library."""
    from importlib.metadata import packages_distributions

    problems: Problems = []
    call = str(tree.cscx.modules.get("functions", {}).get("source_files"))
    for needed in ('"main.py"', '"requirements.txt" = "requirements.lock"', "local.common_files"):
        if needed not in call:
            problems.append(f"modules/cscx: the archive lacks {needed}")
    if 'fileset(var.source_root, "common/**")' not in str(tree.cscx.locals.get("common_files")):
        problems.append("modules/cscx: common_files must be the whole common/ package")
    locked = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    }
    distributions = packages_distributions()
    for entry, spec in manifest().items():
        for node in ast.walk(ast.parse((ROOT / spec["source"]).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
                tops = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for top in {name.split(".")[0] for name in tops}:
                    dists = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(top, [])}
                    if top == "common" or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    if not dists & locked:
                        problems.append(f"{entry} imports {top}, which requirements.lock does not install")
    return problems
