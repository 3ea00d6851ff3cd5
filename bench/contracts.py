"""Contracts (issue 8): text extraction of a generated 100-page PDF and a 100-page DOCX against
pypdf and python-docx called directly, time and peak memory, in the same run; and upload-to-
parsed through `contract_parse` with the model stand-in, less the stand-in's own time."""

from __future__ import annotations

import io
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from bench.harness import Bench
from bench.stats import Summary
from standins.client import StandinClient

PAGES = 100
RUNS = 7
UPLOADS = 20
GOAL_RATIO = 1.2
PARAGRAPH = "The Customer shall pay the fees set out in the Order Form within thirty (30) days of invoice. " * 6


@dataclass(frozen=True)
class Extraction:
    kind: str
    ours_ms: float
    direct_ms: float
    ours_peak_kib: float
    direct_peak_kib: float


@dataclass(frozen=True)
class ContractsResult:
    extraction: list[Extraction]
    upload_to_parsed: Summary
    standin_ms: Summary


def _pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    for n in range(1, PAGES + 1):
        pdf.add_page()
        pdf.multi_cell(0, 5, f"Section {n}. {PARAGRAPH}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _docx() -> bytes:
    import docx

    document = docx.Document()
    for n in range(1, PAGES + 1):
        document.add_paragraph(f"Section {n}. {PARAGRAPH}")
        table = document.add_table(rows=1, cols=2)
        table.cell(0, 0).text, table.cell(0, 1).text = f"Item {n}", "Included"
        document.add_page_break()  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _direct_pdf(data: bytes) -> str:
    import pypdf

    return "\f".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def _direct_docx(data: bytes) -> str:
    import docx

    document = docx.Document(io.BytesIO(data))
    parts = [p.text for p in document.paragraphs]
    parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(parts)


def _measure(read: Callable[[], Any]) -> tuple[float, float]:
    """(median ms, peak KiB) of `read`, interleaving is the caller's."""
    tracemalloc.start()
    started = time.perf_counter()
    read()
    elapsed = (time.perf_counter() - started) * 1000
    peak = tracemalloc.get_traced_memory()[1] / 1024
    tracemalloc.stop()
    return elapsed, peak


def run(bench: Bench) -> ContractsResult:
    from common.contracts import text

    results = []
    for kind, data, direct in (("pdf", _pdf(), _direct_pdf), ("docx", _docx(), _direct_docx)):
        ours_t: list[float] = []
        direct_t: list[float] = []
        ours_m: list[float] = []
        direct_m: list[float] = []

        def ours(d: bytes = data) -> object:
            return text.extract(d)

        def theirs(d: bytes = data, read: Callable[[bytes], str] = direct) -> object:
            return read(d)

        pair: list[tuple[str, Callable[[], object]]] = [("ours", ours), ("direct", theirs)]
        for _, read in pair:  # once each unmeasured: imports and the parsers' first-use caches
            read()
        for i in range(RUNS):
            for name, read in pair if i % 2 == 0 else reversed(pair):
                elapsed, peak = _measure(read)
                (ours_t if name == "ours" else direct_t).append(elapsed)
                (ours_m if name == "ours" else direct_m).append(peak)
        results.append(
            Extraction(
                kind,
                statistics.median(ours_t),
                statistics.median(direct_t),
                statistics.median(ours_m),
                statistics.median(direct_m),
            )
        )

    models = StandinClient(f"http://127.0.0.1:{bench.stack.ports.models}")
    user = bench.sign_up("contracts-bench")
    headers = {"Authorization": f"Bearer {user.token}"}
    customer = requests.post(
        f"{bench.stack.url('crud')}/customers", json={"name": "Acme"}, headers=headers, timeout=10
    ).json()
    answer = {
        "term_months": 12,
        "confidence": {"term_months": 0.9},
        "evidence": {"term_months": {"quote": "an initial term of twelve (12) months", "page": 1}},
    }
    latencies, own = [], []
    for _ in range(UPLOADS):
        models.reset()
        models.script({"steps": [{"tool_call": {"name": "record_contract_terms", "input": answer}}]})
        body = f"Order form {uuid.uuid4().hex}. This order runs for an initial term of twelve (12) months.".encode()
        started = time.perf_counter()
        reply = requests.post(
            f"{bench.stack.url('contract_parse')}/contracts/upload",
            data={"customer_id": customer["id"]},
            files={"file": ("order.txt", body, "text/plain")},
            headers=headers,
            timeout=60,
        )
        elapsed = (time.perf_counter() - started) * 1000
        if reply.status_code != 201 or reply.json()["status"] != "parsed":
            raise RuntimeError(f"upload answered {reply.status_code}: {reply.text[:300]}")
        record = models.requests()[0]
        standin = ((record.finished_at or record.received_at) - record.received_at) * 1000
        latencies.append(elapsed - standin)
        own.append(standin)
    return ContractsResult(results, Summary.of(latencies), Summary.of(own))
