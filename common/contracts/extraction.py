"""A contract's text read in a reader process of its own, bounded in memory and time (DESIGN §8).

pypdf and python-docx can spend minutes and gigabytes on a small crafted file (a content stream
shared by many pages, a zip that unpacks a thousandfold); inside the function's process that
would starve, or take down with it, every other request on the instance. A reader process runs
`text.extract` under an address-space limit (RLIMIT_AS, which the kernel enforces, unlike a
resident-size limit: what is resident never exceeds it) of `CSCX_PARSE_MEMORY_MB`, and is killed
after `CSCX_PARSE_SECONDS`; either is a 422 naming the limit.

Readers are fresh interpreters (fork and exec, as `subprocess` does), never a bare fork of the
function's process: that runs gunicorn's threads and gRPC's, and a fork copies their held locks
into a child that can then deadlock. (multiprocessing's forkserver would fork from a clean
server, but in Python 3.11 it runs the parent's `__main__` again in every child.) A fresh
interpreter spends about 0.3 s importing the parsers, so one reader is kept started ahead of
need: each reads one document and exits, and the next starts while the model reads the terms.
A reader gets the parent's import path and what the interpreter needs to start, nothing else of
the environment (no secrets); its job on stdin, and its answer, as JSON, on stdout: never
unpickled, its size bounded. One document is read at a time per instance: contract_parse has one vCPU, on which
readers side by side would only share it (and each other's time limit), and one reader's memory
limit is what the instance keeps free beside the function.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, get_args

from common.contracts import text
from common.instance import on_reset
from common.log import get_logger
from common.settings import get_settings

logger = get_logger(__name__)

# An answer holds at most MAX_CHARACTERS characters of text, 6 bytes each at worst in JSON.
MAX_ANSWER_BYTES = 6 * text.MAX_CHARACTERS + 2**20
# The parsers a reader imports while it waits for its document.
PARSERS = ("pypdf", "docx", "lxml.etree", "charset_normalizer")
# What a reader keeps of the function's environment: what the interpreter itself may need to start
# (a runtime whose libpython or locale is found through them), and nothing that could be a secret.
RUNTIME_VARIABLES = ("PATH", "LD_LIBRARY_PATH", "PYTHONHOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "HOME")
# The CPU time a reader may use past the time limit (its imports, mostly): the backstop that
# ends a reader whose parent died before it could kill it.
CPU_GRACE_SECONDS = 10
REASONS = frozenset(get_args(text.Reason))

_reading = threading.Lock()  # one reader at a time, and the spare
_spare: subprocess.Popen[bytes] | None = None


def _drop_spare() -> None:
    """The spare reader was started with the settings of its time: a fresh instance starts its own."""
    global _spare
    with _reading:
        if _spare is not None:
            _spare.kill()
            _spare.wait()
            _spare = None


on_reset(_drop_spare)


def extract(data: bytes, kind: text.FileKind | None) -> text.Document:
    """`text.extract(data, kind)` in a reader process, within the memory and time limits.

    Raises what `text.extract` raises, and `UnreadableDocumentError("over_limit")`, naming the
    limit, for a document that needs more memory or time than a contract may use.
    """
    global _spare
    settings = get_settings()
    job = f"{kind or ''}\n".encode() + data
    with _reading:
        reader = _spare if _spare is not None and _spare.poll() is None else _start()
        _spare = None
        started = time.monotonic()
        answer, timed_out = _run(reader, job, settings.parse_seconds)
        elapsed_ms = round((time.monotonic() - started) * 1000)
        _spare = _start()
    if timed_out:
        logger.info("contract reader out of time", extra={"fields": {"kind": kind, "ms": elapsed_ms}})
        raise text.over_limit(
            f"Reading the document takes longer than the {settings.parse_seconds} seconds a contract may take; "
            "export it again (as a PDF, say) and upload the new copy."
        )
    return _document_of(answer, reader.returncode, kind, elapsed_ms)


def _start() -> subprocess.Popen[bytes]:
    """A reader process, importing its parsers until its document arrives."""
    settings = get_settings()
    root = str(Path(__file__).resolve().parents[2])  # where `common` is
    argv = [sys.executable, "-m", __name__, str(settings.parse_memory_mb), str(settings.parse_seconds)]
    env = {name: os.environ[name] for name in RUNTIME_VARIABLES if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in (root, *sys.path) if p))
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)


def _run(reader: subprocess.Popen[bytes], job: bytes, seconds: float) -> tuple[bytes, bool]:
    """The reader's answer to `job` (empty if it gave none) and whether it was out of time.

    A watchdog kills the reader at the deadline, whatever this thread is waiting for: writing
    the job, reading the answer, or the reader's exit.
    """
    assert reader.stdin is not None
    assert reader.stdout is not None
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        reader.kill()

    watchdog = threading.Timer(seconds, kill)
    watchdog.start()
    try:
        try:
            reader.stdin.write(job)
        except BrokenPipeError:
            pass  # it died: its exit says how
        finally:
            with contextlib.suppress(BrokenPipeError):
                reader.stdin.close()
        answer = reader.stdout.read(MAX_ANSWER_BYTES + 1)
        if len(answer) > MAX_ANSWER_BYTES:
            reader.kill()
            answer = b""
        reader.wait()
    finally:
        watchdog.cancel()
        reader.stdout.close()
    return answer, timed_out.is_set()


def _document_of(raw: bytes, returncode: int | None, kind: text.FileKind | None, elapsed_ms: int) -> text.Document:
    """The document in a reader's answer, or the error it reports."""
    try:
        answer = json.loads(raw.decode("utf-8", "surrogatepass")) if raw else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        if returncode is not None and returncode < 0:
            # Killed by a signal without a word: a parser that crashed when memory ran out.
            logger.warning("contract reader killed", extra={"fields": {"signal": -returncode, "kind": kind}})
            raise _out_of_memory()
        raise RuntimeError(f"the contract reader exited with {returncode} and no answer")
    fields = {"kind": kind, "ms": elapsed_ms, "peak_mib": answer.get("peak_mib")}
    error = answer.get("error")
    if error is None:
        pages = answer.get("pages")
        if answer.get("kind") not in text.CONTENT_TYPES or not isinstance(pages, list):
            raise RuntimeError("the contract reader's answer is malformed")
        logger.info("contract text read", extra={"fields": {**fields, "pages": len(pages)}})
        numbered = (text.Page(number, str(page)) for number, page in enumerate(pages, start=1))
        return text.Document(answer["kind"], tuple(numbered))
    logger.info("contract text not read", extra={"fields": {**fields, "error": error, "reason": answer.get("reason")}})
    message = str(answer.get("message") or "")
    if error == "unsupported":
        raise text.UnsupportedDocumentError(message)
    if error == "unreadable" and answer.get("reason") in REASONS:
        raise text.UnreadableDocumentError(answer["reason"], message)
    if error == "memory":
        raise _out_of_memory()
    raise RuntimeError(f"the contract reader failed: {answer.get('type') or error}")


def _out_of_memory() -> text.UnreadableDocumentError:
    return text.over_limit(
        f"Reading the document needs more than the {get_settings().parse_memory_mb} MiB of memory a contract may "
        "use; upload it as a PDF or a smaller file."
    )


# -- the reader process ----------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    """A reader: limits first, then the parsers imported, then one document read and answered."""
    import importlib
    import resource

    memory_bytes, seconds = int(argv[0]) * 2**20, int(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    cpu = seconds + CPU_GRACE_SECONDS
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for module in PARSERS:
        importlib.import_module(module)
    header = sys.stdin.buffer.readline(16)
    if not header:
        return  # its parent is gone: no document will come
    kind = header.strip().decode("ascii", "replace") or None
    data = sys.stdin.buffer.read()
    try:
        answer = _read(data, kind, memory_bytes)
        out = json.dumps(answer, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except MemoryError:
        out = json.dumps({"error": "memory"}).encode()
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    os._exit(0)  # at once: tearing the parsers down would keep the parent waiting for nothing


def _read(data: bytes, kind: str | None, memory_bytes: int) -> dict[str, Any]:
    """The reader's answer: the document's pages, or what stopped them being read."""
    try:
        document = text.extract(data, kind if kind in text.CONTENT_TYPES else None)
    except BaseException as error:
        # A library that ran out of memory may report it as something else (lxml says
        # "unknown error"): the reader's peak address space at its limit gives it away.
        if _memory_ran_out(error) or _peak_bytes() > memory_bytes * 0.95:
            return {"error": "memory", "peak_mib": _peak_bytes() // 2**20}
        if isinstance(error, text.UnsupportedDocumentError):
            return {"error": "unsupported", "message": error.message}
        if isinstance(error, text.UnreadableDocumentError):
            return {"error": "unreadable", "reason": error.reason, "message": error.message}
        return {"error": "internal", "type": type(error).__name__}
    pages = [page.text for page in document.pages]
    return {"kind": document.kind, "pages": pages, "peak_mib": _peak_bytes() // 2**20}


def _memory_ran_out(error: BaseException | None) -> bool:
    """Whether a MemoryError is `error` or among the errors that led to it."""
    for _ in range(20):
        if error is None:
            return False
        if isinstance(error, MemoryError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _peak_bytes() -> int:
    """The most address space this process has held (VmPeak), 0 where it cannot be told."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
