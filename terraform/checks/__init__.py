"""The offline checks of terraform/: what `terraform validate` and a careful review would catch,
without the providers (which cannot be downloaded here).

Each check reads terraform/ as parsed by python-hcl2 (`load_tree`), holds it against the code
(functions/manifest.json, common/settings.py, each entry point's imports, the lines the code logs) and returns the
problems it finds, one sentence each: none for terraform/ as it is. tests/test_terraform.py runs
them on terraform/ and on mutated copies of it; `python -m terraform.checks` prints them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from terraform.checks.access import check_buckets, check_build, check_worker
from terraform.checks.functions import check_functions, check_packaging
from terraform.checks.monitoring import check_monitoring
from terraform.checks.platform import check_console, check_environments, check_firebase
from terraform.checks.settings import check_secrets, check_settings
from terraform.checks.tree import TERRAFORM, Problems, Tree, load_tree
from terraform.checks.validate import check_provider_arguments, check_references

CHECKS: dict[str, Callable[[Tree], Problems]] = {
    "functions": check_functions,
    "packaging": check_packaging,
    "settings": check_settings,
    "secrets": check_secrets,
    "worker": check_worker,
    "buckets": check_buckets,
    "build": check_build,
    "firebase": check_firebase,
    "console": check_console,
    "environments": check_environments,
    "monitoring": check_monitoring,
    "references": check_references,
    "provider_arguments": check_provider_arguments,
}


def problems(root: Path = TERRAFORM) -> dict[str, Problems]:
    """Every check's problems with the terraform/ at `root` (empty lists when there are none)."""
    tree = load_tree(root)
    return {name: check(tree) for name, check in CHECKS.items()}
