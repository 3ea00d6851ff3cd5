"""Timing summaries and the plain-text tables the benchmark prints."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Percentiles of one series of timings, in milliseconds."""

    n: int
    p50: float
    p95: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Summary:
        if len(samples_ms) < 2:
            raise ValueError("a summary needs at least two samples")
        return cls(
            len(samples_ms),
            statistics.median(samples_ms),
            statistics.quantiles(samples_ms, n=20, method="inclusive")[18],
        )


def timed_ms(operation: Callable[[int], object], i: int) -> float:
    """How long `operation(i)` took, in milliseconds."""
    start = time.perf_counter()
    operation(i)
    return (time.perf_counter() - start) * 1000


def sample(operation: Callable[[int], object], *, warmup: int, iterations: int, budget_s: float) -> Summary:
    """Time `operation(i)` up to `iterations` times (or until the budget is spent), after a warm-up."""
    for i in range(warmup):
        operation(i)
    samples: list[float] = []
    deadline = time.monotonic() + budget_s
    for i in range(warmup, warmup + iterations):
        if time.monotonic() > deadline and len(samples) >= 20:
            break
        samples.append(timed_ms(operation, i))
    return Summary.of(samples)


def sample_pair(
    first: Callable[[int], object],
    second: Callable[[int], object],
    *,
    warmup: int,
    iterations: int,
    budget_s: float,
) -> tuple[Summary, Summary]:
    """Time two operations interleaved (alternating which goes first) so both see the same load."""
    for i in range(warmup):
        first(i)
        second(i)
    a: list[float] = []
    b: list[float] = []
    deadline = time.monotonic() + budget_s
    for i in range(warmup, warmup + iterations):
        if time.monotonic() > deadline and len(a) >= 20:
            break
        if i % 2:
            b.append(timed_ms(second, i))
            a.append(timed_ms(first, i))
        else:
            a.append(timed_ms(first, i))
            b.append(timed_ms(second, i))
    return Summary.of(a), Summary.of(b)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns separated by two spaces: numbers right-aligned, text left-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in cells)])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)
