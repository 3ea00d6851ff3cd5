"""`python -m bench [part ...]`: start the stack on the benchmark's ports, measure, print, stop.

Parts: imports, crud (latency, reads per page), chat, approvals, contracts, idempotency, edge,
console (the web console's budgets in headless Chromium), load (throughput of 32 clients); all of
them without arguments.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

from bench import (
    approvals,
    breakdown,
    chat,
    chat_path,
    console,
    contracts,
    creates,
    edge,
    idempotency,
    imports,
    latency,
    load,
    reads,
)
from bench.harness import PORT_OFFSET, function_env, running_bench
from bench.stats import Summary, table

PARTS = ("imports", "crud", "chat", "approvals", "contracts", "idempotency", "edge", "console", "load")


def main() -> int:
    parts = sys.argv[1:] or list(PARTS)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        print(f"unknown part(s): {', '.join(unknown)}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    load_at_start = load_average()
    reports: list[str] = []
    if "imports" in parts:
        # Measured first, on a quiet machine: the import children only need the stack's settings.
        progress("measuring cold imports (fresh interpreters)...")
        reports.append(imports_report(imports.run(function_env())))
    if set(PARTS[1:]) & set(parts):
        progress(f"starting the stack (ports +{PORT_OFFSET})...")
        with running_bench() as bench:
            if "crud" in parts:
                progress("measuring CRUD latency, function vs raw client...")
                reports.append(latency_report(latency.run(bench)))
                progress("measuring where a CRUD request's time goes, step by step...")
                reports.append(breakdown.report(breakdown.run(bench)))
                progress("measuring create latency as one user's customers grow...")
                reports.append(creates_report(creates.run(bench)))
                progress("measuring reads per list page as the collection grows...")
                reports.append(reads_report(reads.run(bench)))
            if "chat" in parts:
                progress("measuring chat streaming against the AI SDK peer...")
                reports.append(chat.report(chat.run(bench)))
                progress("measuring the path of a chat turn before the model call, step by step...")
                reports.append(chat_path.report(chat_path.run_path(bench)))
                progress("measuring chat streaming with the part log and without it...")
                reports.append(part_log_report(chat.run_part_log(bench)))
            if "approvals" in parts:
                progress("measuring approvals and approve-to-executed through Cloud Tasks...")
                reports.append(approvals_report(approvals.run(bench)))
            if "contracts" in parts:
                progress("measuring contract text extraction and upload-to-parsed...")
                reports.append(contracts_report(contracts.run(bench)))
            if "idempotency" in parts:
                progress("measuring creates with and without an Idempotency-Key...")
                reports.append(idempotency_report(idempotency.run(bench)))
            if "edge" in parts:
                progress("measuring the edge: 404s of another user's document, bodies made of errors...")
                reports.append(edge_report(edge.run(bench)))
            if "console" in parts:
                progress("measuring the console in headless Chromium: first-load JavaScript, send to first token...")
                reports.append(console_report(console.run(bench)))
            if "load" in parts:
                progress(f"measuring throughput: {load.CLIENTS} clients for {load.DURATION_S:.0f} s, twice...")
                reports.append(load_report(load.run(bench)))
    print(header(load_at_start))
    for report in reports:
        print(report)
    print(f"\nwhole benchmark: {time.monotonic() - started:.0f} s; load average now {load_average()}")
    return 0


def load_report(result: load.LoadResult) -> str:
    sections = []
    for phase in result.phases:
        rows = [[op, p.n, phase.errors.get(op, 0), p.p50, p.p95, p.p99] for op, p in phase.operations.items()]
        met = phase.crud_rps >= load.GOAL_RPS and phase.crud_p99 <= load.GOAL_P99_MS and not phase.errors
        sections.append(
            f"\n   {phase.name}: {phase.crud_requests:,} CRUD requests in {phase.seconds:.1f} s, "
            f"{phase.crud_rps:.0f} rps, {sum(phase.errors.values())} errors\n"
            + table(["operation", "n", "errors", "p50", "p95", "p99"], rows)
            + f"\n   goal >= {load.GOAL_RPS:.0f} rps, CRUD p99 <= {load.GOAL_P99_MS:.0f} ms, no errors: {verdict(met)}"
            + "".join(f"\n   error: {e}" for e in phase.first_errors)
        )
    return (
        f"\n10. Throughput (issue 19): {result.clients} clients on loopback, each its own user looping create / "
        f"list / get /\n   patch of a customer, {load.DURATION_S:.0f} s after {load.WARMUP_S:.0f} s uncounted; ms"
        + "".join(sections)
    )


def console_report(result: console.ConsoleResult) -> str:
    worst = max(s.kb for s in result.screens)
    screens = [[s.name, len(s.files), f"{s.kb:.1f}"] for s in result.screens]
    biggest = sorted(result.build_chunks.items(), key=lambda kv: -kv[1])[:6]
    chunks = ", ".join(f"{name} {kb:.1f}" for name, kb in biggest)
    p, b = result.send_to_painted, result.backend_ttft
    parts = [
        ("Send to the request", result.send_to_request),
        ("the request to the first delta read", result.request_to_first_delta),
        ("that delta to its paint", result.delta_to_painted),
    ]
    rows = [
        ["Send to the first token painted (page marks)", p.n, p.p50, p.p95],
        ["backend's own time to first token (HTTP client)", b.n, b.p50, b.p95],
        *[[f"  in the page: {name}", s.n, s.p50, s.p95] for name, s in parts],
    ]
    added_p50, added_p95 = p.p50 - b.p50, p.p95 - b.p95
    met = added_p50 <= console.GOAL_ADDED_MS and added_p95 <= console.GOAL_ADDED_MS
    return (
        "\n9. The console (issue 18) in headless Chromium\n"
        "   first-load JavaScript of each first screen, nothing cached, gzip -9, KB\n"
        + table(["first screen", "scripts", "KB gzipped"], screens)
        + f"\n   largest {worst:.1f} KB (goal <= {console.BUDGET_KB:.0f}: {verdict(worst <= console.BUDGET_KB)}); "
        f"the build's index.html loads {result.build_entry_kb:.1f} KB at once\n"
        f"   largest chunks (KB gzipped): {chunks}\n"
        f"\n   a chat turn: {p.n} in the page, interleaved with as many by a plain client, same scripted answer, ms\n"
        + table(["span", "n", "p50", "p95"], rows)
        + f"\n   added by the page: p50 {added_p50:.1f}, p95 {added_p95:.1f} "
        f"(goal <= {console.GOAL_ADDED_MS:.0f}: {verdict(met)})"
    )


def edge_report(result: edge.EdgeResult) -> str:
    rows = []
    worst = 0.0
    for p in result.probes:
        ratio = p.others.p50 / p.missing.p50
        worst = max(worst, ratio)
        same = "yes" if p.identical else "NO"
        rows.append([p.operation, p.others.n, p.others.p50, p.missing.p50, f"{ratio:.2f}", same])
    o = result.owner_read
    amplification = [
        [
            a.body,
            a.request_bytes,
            a.answer_bytes,
            a.refused.p50,
            a.valid_create.p50,
            f"{a.refused.p50 / a.valid_create.p50:.2f}",
        ]
        for a in result.amplification
    ]
    largest = max(a.answer_bytes for a in result.amplification)
    costliest = max(a.refused.p50 / a.valid_create.p50 for a in result.amplification)
    return (
        f"\n8. Existence oracle (issue 10): another user's {edge.DOCUMENT_BYTES // 1000} KB customer"
        " vs a missing id, p50 ms\n"
        + table(["operation", "n", "another user's", "missing", "ratio", "same bytes"], rows)
        + f"\n   worst ratio {worst:.2f} (goal <= {edge.GOAL_RATIO}: {verdict(worst <= edge.GOAL_RATIO)}); "
        f"the owner's own read of it: p50 {o.p50:.1f} ms"
        + "\n\n   Bodies just under 1 MiB made of errors vs the largest valid POST /customers, interleaved, p50 ms\n"
        + table(["body", "bytes", "answer bytes", "refused", "valid create", "ratio"], amplification)
        + f"\n   largest answer {largest} bytes (goal <= {edge.ANSWER_GOAL_BYTES}: "
        f"{verdict(largest <= edge.ANSWER_GOAL_BYTES)}); worst cost ratio {costliest:.2f} (goal <= 1: "
        f"{verdict(costliest <= 1.0)})"
    )


def contracts_report(result: contracts.ContractsResult) -> str:
    rows = [
        [
            f"100-page {e.kind}",
            e.ours_ms,
            e.direct_ms,
            e.ours_ms / e.direct_ms,
            e.ours_peak_kib / 1024,
            e.direct_peak_kib / 1024,
            e.ours_peak_kib / e.direct_peak_kib,
            verdict(
                e.ours_ms / e.direct_ms <= contracts.GOAL_RATIO
                and e.ours_peak_kib / e.direct_peak_kib <= contracts.GOAL_RATIO
            ),
        ]
        for e in result.extraction
    ]
    headers = [
        "document",
        "ours ms",
        "direct ms",
        "time ratio",
        "ours MiB",
        "direct MiB",
        "memory ratio",
        "goal <= 1.2",
    ]
    u, s = result.upload_to_parsed, result.standin_ms
    return (
        "\n6. Contracts (issue 8): text extraction, common.contracts.text vs pypdf / python-docx called directly,\n"
        f"   median of {contracts.RUNS} interleaved runs after one unmeasured each; median peak memory by tracemalloc\n"
        "   (Python allocations)\n"
        + table(headers, rows)
        + "\n   upload-to-parsed (multipart upload, Storage emulator, text, model stand-in, verify, Firestore), less\n"
        f"   the stand-in's own time: p50 {u.p50:.1f} ms, p95 {u.p95:.1f} ms (n={u.n}); "
        f"the stand-in's own: p50 {s.p50:.1f} ms"
    )


def idempotency_report(result: idempotency.IdempotencyResult) -> str:
    k, p = result.with_key, result.without_key
    rows = [["with Idempotency-Key", k.n, k.p50, k.p95], ["without", p.n, p.p50, p.p95]]
    return (
        "\n7. Idempotency (issue 9): POST /customers, interleaved, ms\n"
        + table(["request", "n", "p50", "p95"], rows)
        + f"\n   ratio p50 {k.p50 / p.p50:.2f}, p95 {k.p95 / p.p95:.2f} (goal <= {idempotency.GOAL_RATIO}: "
        f"{verdict(k.p50 / p.p50 <= idempotency.GOAL_RATIO)})"
    )


def approvals_report(result: approvals.ApprovalsResult) -> str:
    a, b = result.approve, result.bare_transaction
    rows = [
        ["POST /actions/{id}/approve (HTTP, token with revocation check, CAS, enqueue)", a.n, a.p50, a.p95],
        ["bare Firestore transaction: read, compare, write approved", b.n, b.p50, b.p95],
    ]
    e = result.executed
    return (
        "\n5. Approvals (issue 7), ms\n"
        + table(["operation", "n", "p50", "p95"], rows)
        + f"\n   ratio p50 {a.p50 / b.p50:.2f}, p95 {a.p95 / b.p95:.2f} (the route also checks revocation at the Auth"
        "\n   emulator and enqueues the Cloud Task)\n"
        f"\n   approve-to-executed through the Cloud Tasks emulator, {result.executed_n} e-mails sent and drafted at "
        f"the Google stand-in:\n   p50 {e.p50:.0f} ms, p95 {e.p95:.0f} ms "
        f"(goal p95 <= {approvals.GOAL_EXECUTED_P95_MS:.0f}: {verdict(e.p95 <= approvals.GOAL_EXECUTED_P95_MS)}); "
        f"failed or unfinished: {result.failed}\n"
        f"   (the emulator hands tasks over one at a time, so a burst queues behind the worker:)\n"
        f"   the worker's own time per e-mail, {result.worker.n} called directly: p50 {result.worker.p50:.0f} ms, "
        f"p95 {result.worker.p95:.0f} ms (goal p95 <= {approvals.GOAL_EXECUTED_P95_MS:.0f}: "
        f"{verdict(result.worker.p95 <= approvals.GOAL_EXECUTED_P95_MS)})\n"
        f"   e-mails and drafts at Google: {result.sent}; duplicates after redelivering every task once more: "
        f"{result.duplicates} (goal 0: {verdict(result.duplicates == 0)})" + concurrent_report(result.concurrent)
    )


def concurrent_report(c: approvals.ConcurrentResult) -> str:
    spans = [
        ("approve request sent -> the delivery that executed it answered", c.executed),
        ("the approve requests", c.approve),
        ("each delivery (OIDC token checked, claim, quota, Gmail, record)", c.delivery),
    ]
    rows = [[name, s.n, s.p50, s.p95] for name, s in spans]
    met = c.executed.p95 <= approvals.GOAL_EXECUTED_P95_MS and c.duplicates == 0 and c.lost == 0
    return (
        f"\n\n   the worker as Cloud Tasks drives it (issue 19): {c.approved} e-mails approved "
        f"{approvals.APPROVERS} at a time, their tasks\n   taken from the paused emulator queue and delivered "
        f"{approvals.DISPATCHES} at once with the tasks account's OIDC token, ms\n"
        + table(["span", "n", "p50", "p95"], rows)
        + f"\n   {c.executed_n} executed with their message at Google in {c.seconds:.1f} s; deliveries refused "
        f"(retried after {approvals.BACKOFF_S:.0f} s): {c.refused};\n   every task delivered once more, all at once: "
        f"{c.redelivered}; duplicates {c.duplicates}, lost {c.lost}\n"
        f"   goal p95 <= {approvals.GOAL_EXECUTED_P95_MS:.0f} ms, 0 duplicates, 0 lost: {verdict(met)}"
    )


def part_log_report(result: chat.PartLogResult) -> str:
    with_log, without = "with the part log", "without"
    ttft = {name: Summary.of(values) for name, values in result.added_ttft.items()}
    quartiles = {name: statistics.quantiles(values, n=4) for name, values in result.added_ttft.items()}
    ttft_rows = [[name, s.n, quartiles[name][0], s.p50, quartiles[name][2], s.p95] for name, s in ttft.items()]
    relay = {name: statistics.median(values) for name, values in result.relay.items()}
    relay_rows = [
        [name, f"{relay[name]:,.0f}", ", ".join(f"{v:,.0f}" for v in runs)] for name, runs in result.relay.items()
    ]
    low, high = quartiles[without][0], quartiles[without][2]
    ttft_met = low <= ttft[with_log].p50 <= high or abs(ttft[with_log].p50 - ttft[without].p50) <= 1.0
    relay_met = relay[with_log] >= min(result.relay[without])
    writes_rows = [
        [f"{w.deltas:,} deltas, the turn {w.seconds:.2f} s", w.part_log, f"{w.part_log_bytes / 1024:.0f}", w.bound,
         w.session, w.messages, w.total]
        for w in result.writes
    ]  # fmt: skip
    return (
        "\n4b. The part log (issue 17): chat_stream with it (resume on) vs the same code without it\n"
        "   (CSCX_STREAM_RESUME_GRACE_SECONDS=0, a second instance), same stand-in, interleaved\n"
        "   added time to the first text-delta (ms), with its quartiles\n"
        + table(["side", "n", "p25", "p50", "p75", "p95"], ttft_rows)
        + f"\n   goal within noise (p50 with it inside the quartiles without it, or within 1 ms): "
        f"{verdict(ttft_met)}\n"
        f"\n   relay rate of a {chat.RELAY_DELTAS:,}-delta answer, deltas per second (median, and every run)\n"
        + table(["side", "median", "runs"], relay_rows)
        + f"\n   goal within noise (median with it >= slowest run without it): {verdict(relay_met)}\n"
        "\n   Firestore writes of one turn in an existing session (counted in Firestore), the answer relayed as\n"
        "   fast as it comes and paced like a model writing; the part log's bound: 1 + s / 0.5 + KiB / 256\n"
        + table(["answer", "part log", "KiB", "bound", "session", "messages", "writes"], writes_rows)
        + "\n   session: the turn's hold, its lease renewals (every 10 s), its release; messages: the CSM's, the answer"
    )


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def header(load_at_start: str) -> str:
    return (
        f"CSCX benchmark (issue 2): {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        "Firestore and Auth emulators, every baseline measured in this run\n"
        f"load average at start {load_at_start} (other work on the machine inflates wall times)"
    )


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def latency_report(result: latency.LatencyResult) -> str:
    rows = [
        [
            c.operation,
            c.function.n,
            c.function.p50,
            c.function.p95,
            c.raw.p50,
            c.raw.p95,
            c.function.p50 - c.raw.p50,
            c.ratio_p50,
            c.ratio_p95,
            f"<= {latency.GOAL_RATIO}",
            verdict(c.ratio_p50 <= latency.GOAL_RATIO),
        ]
        for c in result.comparisons
    ]
    headers = [
        "operation", "n", "fn p50", "fn p95", "raw p50", "raw p95", "overhead p50",
        "ratio p50", "ratio p95", "goal", "met? (p50)",
    ]  # fmt: skip
    return (
        "\n1. CRUD latency (ms): crud function over HTTP with a real ID token vs the same operation on the raw\n"
        "   google-cloud-firestore client, interleaved; ratio = function / raw\n"
        + table(headers, rows)
        + "\n   raw baselines: get = document get; list = owner_id filter, order name_lower, __name__, limit 26;\n"
        "   create = document create of the stored fields; patch = document update of the written fields\n"
        "   (the route also reads the document first: patch is a read plus a compare-and-set write);\n"
        "   create vs create+count = the same route against the raw commit of the two writes it makes: the\n"
        "   customer and the caller's count of customers (CSCX_MAX_DOCUMENTS at constant cost);\n"
        "   patch vs read+CAS = the same route against the raw read + update-with-precondition it needs\n"
        f"   HTTP floor, GET /healthz on the same function (no auth, no Firestore): p50 {result.http_floor.p50:.2f}, "
        f"p95 {result.http_floor.p95:.2f} (n={result.http_floor.n})\n"
        "   against the raw operation plus that floor (issue 19: goal <= 1.25), p50: "
        + "; ".join(
            f"{c.operation} {c.function.p50 / (c.raw.p50 + result.http_floor.p50):.2f} "
            f"({verdict(c.function.p50 / (c.raw.p50 + result.http_floor.p50) <= 1.25)})"
            for c in result.comparisons
        )
    )


def creates_report(results: list[creates.SizeResult]) -> str:
    rows = [
        [f"{r.size:,}", r.create.n, r.create.p50, r.create.p95, r.raw_create.p50, r.create.p50 - r.raw_create.p50,
         r.count_aggregation.p50, r.first_create_ms]
        for r in results
    ]  # fmt: skip
    first, last = results[0], results[-1]
    ratio = last.create.p50 / first.create.p50
    headers = [
        "customers", "n", "create p50", "create p95", "raw p50", "route's own p50", "count p50 (before)",
        "first create",
    ]  # fmt: skip
    return (
        "\n1c. POST /customers as one user's customers grow (CSCX_MAX_DOCUMENTS from a counter kept with every\n"
        "   create and delete), interleaved with the raw commit of the same two writes (customer and count);\n"
        "   apart, the count aggregation a create paid before; ms; route's own = create less raw\n"
        + table(headers, rows)
        + f"\n   create p50 at {last.size:,} / at {first.size:,}: {ratio:.2f} "
        f"(goal <= {creates.GOAL_RATIO}: {verdict(ratio <= creates.GOAL_RATIO)}); the raw commit's own: "
        f"{last.raw_create.p50 / first.raw_create.p50:.2f} (the emulator's, as the database grows);\n"
        "   the first create counts the customers stored before the counter"
    )


def reads_report(results: list[reads.SizeResult]) -> str:
    rows = [
        [
            f"{r.size:,}",
            f"{r.seed_s:.1f} s",
            r.first_page_reads,
            f"{r.middle_page_reads} (after {r.middle_offset:,})",
            r.first_page.p50,
            r.raw_first_page.p50,
            r.first_page.p95,
            r.middle_page.p50,
            r.raw_middle_page.p50,
            r.middle_page.p95,
        ]
        for r in results
    ]
    headers = [
        "customers", "seeded in", "reads 1st page", "reads middle page", "fn 1st p50", "raw 1st p50",
        "fn 1st p95", "fn mid p50", "raw mid p50", "fn mid p95",
    ]  # fmt: skip
    counts = {(r.first_page_reads, r.middle_page_reads) for r in results}
    constant = len(counts) == 1
    return (
        f"\n2. Firestore reads per list page (limit {reads.PAGE}, Repository.documents_read) and list latency\n"
        "   (ms) through the function, beside the same query on the raw client, as one user's customers grow\n"
        + table(headers, rows)
        + f"\n   reads per page constant as the collection grows: {'yes' if constant else 'NO'} ({verdict(constant)});"
        f"\n   a page of {reads.PAGE} reads {reads.PAGE + 1} documents: the extra one says whether there is a next page"
    )


def imports_report(results: list[imports.ImportResult]) -> str:
    rows = [
        [
            r.function,
            r.median_ms,
            min(r.runs_ms),
            max(r.runs_ms),
            r.median_cpu_ms,
            r.importtime_ms,
            f"<= {imports.GOAL_MS:.0f}, cpu <= {imports.GOAL_CPU_MS:.0f}",
            verdict(r.median_ms <= imports.GOAL_MS and r.importtime_ms <= imports.GOAL_MS)
            + f", cpu {verdict(r.median_cpu_ms <= imports.GOAL_CPU_MS)}",
            ", ".join(r.heavy) or "none",
        ]
        for r in results
    ]
    headers = ["module", "median", "min", "max", "cpu", "-X importtime", "goal", "met?", "heavy SDKs imported"]
    crud = next(r for r in results if r.function == "crud")
    direct = table(["crud's own imports", "cumulative ms"], [[i.name, i.cumulative_ms] for i in crud.direct[:5]])
    packages = table(["package", "self ms"], [[name, ms] for name, ms in crud.by_package[:5]])
    modules = table(["module", "self ms"], [[i.name, i.self_ms] for i in crud.by_module[:5]])
    return (
        f"\n3. Cold import of each function's module (ms), loaded from its file like functions-framework does, in a\n"
        f"   fresh interpreter with the functions' env: wall time median/min/max of {imports.RUNS} runs timed in the\n"
        "   child, its CPU time (median; less sensitive to a busy machine), -X importtime cumulative of the module\n"
        + table(headers, rows)
        + f"\n   heavy SDKs checked (imported at module import?): {', '.join(imports.HEAVY)}\n"
        + "\n   5 heaviest imports of crud, by cumulative time of its direct imports:\n"
        + _indent(direct)
        + "\n\n   by self time summed per package:\n"
        + _indent(packages)
        + "\n\n   and single modules by self time:\n"
        + _indent(modules)
    )


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
