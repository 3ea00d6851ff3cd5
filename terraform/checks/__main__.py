"""`python -m terraform.checks [terraform/]`: print what the offline checks find; exit 1 if anything."""

from __future__ import annotations

import sys
from pathlib import Path

from terraform.checks import problems
from terraform.checks.tree import TERRAFORM


def main(argv: list[str]) -> int:
    found = problems(Path(argv[0]) if argv else TERRAFORM)
    for check, lines in found.items():
        for line in lines:
            print(f"{check}: {line}")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
