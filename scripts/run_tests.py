"""`make test`: the whole suite as two pytest runs at once.

The tests that need the local stack run one after another against it (the conftest marks them
`stack`); beside them, in a second pytest, the tests that need none — terraform and checkov, the
deploy's firebase-tools, `make run`'s own stack, the stand-ins, the fast tier — which would
otherwise wait their turn. The second run's output follows the first's, and the exit status is
the first failing one's. Given arguments (a file, `-k`), it is one ordinary pytest run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / ".stack" / "tests-without-the-stack.log"


def pytest(*args: str, output: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """pytest with `args`, writing to `output` (this terminal when None)."""
    argv = [sys.executable, "-m", "pytest", *args]
    if output is None:
        return subprocess.Popen(argv, cwd=ROOT)
    return subprocess.Popen(argv, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)


def main(argv: list[str]) -> int:
    if argv:
        return pytest(*argv).wait()
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("wb") as log:
        runs = [pytest("-m", "stack"), pytest("-m", "not stack", output=log)]

        def stop(signum: int, frame: FrameType | None) -> None:
            for run in runs:  # each stops what it started (its conftest handles SIGTERM), then exits
                run.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        # Ctrl-C reaches both runs from the terminal: each ends as pytest does; this waits for them.
        signal.signal(signal.SIGINT, lambda signum, frame: None)
        codes = [run.wait() for run in runs]
    print(f"\n==== beside it, the tests that need no stack ({LOG.relative_to(ROOT)}) ====", flush=True)
    sys.stdout.write(LOG.read_text(encoding="utf-8", errors="replace"))
    return next((code for code in codes if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
