"""`python -m scripts.smoke dev|staging|prod|local`: walk the launch checklist, print its table; exit 1
when a step failed, 2 when there is nothing to walk it against."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scripts.smoke import checklist, target
from terraform.deploy import DeployError

STEP_WIDTH = 44
RESULT_WIDTH = 100


def print_row(row: checklist.Row) -> None:
    result = row.result if len(row.result) <= RESULT_WIDTH else row.result[: RESULT_WIDTH - 1] + "…"
    print(f"{row.step:<{STEP_WIDTH}}  {result:<{RESULT_WIDTH}}  {row.seconds:>7.2f}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", choices=("dev", "staging", "prod", "local"))
    parser.add_argument("--port-offset", type=int, default=0, help="local: every port moved by this much")
    options = parser.parse_args(argv)
    try:
        where = target.local(options.port_offset) if options.env == "local" else target.deployed(options.env)
    except DeployError as error:  # no configuration, or terraform's outputs unreadable
        print(f"make smoke: {error} (`make plan ENV={options.env}` initialises the environment)", file=sys.stderr)
        return 2
    walk = checklist.Checklist(where)
    print(f"CSCX launch checklist against {where.name} (run {walk.run})")
    print(f"{'step':<{STEP_WIDTH}}  {'result':<{RESULT_WIDTH}}  {'seconds':>7}")
    rows = walk.walk(print_row)
    failed = [row.step for row in rows if row.failed]
    skipped = [row.step for row in rows if row.result.startswith("skipped")]
    print(f"{len(rows) - len(failed) - len(skipped)} ok, {len(failed)} failed, {len(skipped)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
