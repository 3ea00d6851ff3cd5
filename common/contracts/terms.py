"""A contract's structured terms, kept only where the document says them (DESIGN §8).

A model reads the text and fills the tool of `schema.py`; `verify` turns its answer into the
`extracted` that is stored: each value normalised (`values.py`), then kept only if its evidence
quote occurs on the page it names (or, the page corrected, on another: `evidence.py`), otherwise
dropped and the drop recorded. Long contracts are read in `chunks` and the verified parts
`merge`d; a CSM's corrections (`apply_corrections`) carry no evidence and survive a re-parse
(`keep_corrections`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from common.contracts.evidence import Pages
from common.contracts.schema import (
    FIELDS,
    LIST_FIELDS,
    TOOL_DESCRIPTION,
    TOOL_NAME,
    Corrections,
    item_key,
    tool_input_schema,
)
from common.contracts.text import Document, Page
from common.contracts.values import amount_number, money

# The tool and the corrections' model are defined in schema.py; callers find them here too.
__all__ = [
    "TOOL_DESCRIPTION",
    "TOOL_NAME",
    "Corrections",
    "TermsError",
    "apply_corrections",
    "chunks",
    "empty",
    "keep_corrections",
    "merge",
    "tool_input_schema",
    "verify",
]

DropReason = Literal["invalid", "evidence_not_found"]


class TermsError(Exception):
    """The model's answer does not fit the schema at all: the contract is not parsed."""


# -- the stored `extracted` ---------------------------------------------------------------------


def empty() -> dict[str, Any]:
    """An `extracted` with no term known: every key present."""
    return {
        **dict.fromkeys(FIELDS),
        "confidence": {},
        "evidence": {},
        "dropped": [],
        "derived": [],
        "corrected": [],
    }


# The JSON types a term may come as, however lenient the reading (a date may be written out,
# an amount may be "$120,000"): an answer whose every term is of another type broke the schema.
_SHAPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(LIST_FIELDS, (list, str, Mapping)),
    **dict.fromkeys(
        ("effective_date", "end_date", "renewal_date", "currency", "payment_terms", "governing_law"), (str,)
    ),
    **dict.fromkeys(("notice_period_days", "term_months", "total_value", "arr"), (int, float, str)),
    "auto_renew": (bool, str),
}


def verify(raw: object, document: Document) -> dict[str, Any]:
    """The `extracted` to store from a model's answer: values normalised, kept only with evidence.

    Raises `TermsError` when the answer is not an object, names no term, has evidence or
    confidence not keyed by term, or gives every term as a type the schema does not allow.
    """
    if not isinstance(raw, Mapping):
        raise TermsError(f"the answer is {type(raw).__name__}, not an object of terms")
    if raw and not set(raw) & {*FIELDS, "confidence", "evidence"}:
        raise TermsError("the answer names none of the terms")
    evidence = _evidence_map(raw.get("evidence"))
    confidence = _confidence_map(raw.get("confidence"))
    given = [field for field in FIELDS if raw.get(field) is not None]
    if given and not any(isinstance(raw[field], _SHAPES[field]) for field in given):
        raise TermsError(f"no term in the answer has the type the schema gives it ({', '.join(given)})")
    pages = Pages(document)
    result = empty()
    for field in FIELDS:
        try:
            value = _value(field, raw.get(field), lenient=True)
        except ValueError:
            _drop(result, field, "invalid")
            continue
        if value is None:
            continue
        cite = pages.cite(evidence.get(field))
        if cite is None:
            _drop(result, field, "evidence_not_found")
            continue
        result[field] = value
        result["evidence"][field] = cite
        if field in confidence:
            result["confidence"][field] = confidence[field]
    _currency_from_amounts(result, raw)
    _derive_arr(result)
    return result


def _drop(result: dict[str, Any], field: str, reason: DropReason) -> None:
    result["dropped"].append({"field": field, "reason": reason})


def _currency_from_amounts(result: dict[str, Any], raw: Mapping[str, Any]) -> None:
    """The currency an amount's text names ("$120,000": USD), when the answer gives none."""
    if result["currency"] is not None:
        return
    for field in ("total_value", "arr"):
        written = raw.get(field)
        if result[field] is not None and isinstance(written, str):
            named = money(written)[1]
            if named:
                _set_derived(result, "currency", named, source=field)
                return


def _set_derived(result: dict[str, Any], field: str, value: object, *, source: str) -> None:
    result[field] = value
    if source in result["evidence"]:
        result["evidence"][field] = dict(result["evidence"][source])
    else:
        result["evidence"].pop(field, None)
    if source in result["confidence"]:
        result["confidence"][field] = result["confidence"][source]
    else:
        result["confidence"].pop(field, None)
    if field not in result["derived"]:
        result["derived"].append(field)


def _derive_arr(result: dict[str, Any]) -> None:
    """arr = total_value * 12 / term_months when the contract does not state it.

    A derived arr follows its inputs: it is recomputed when they change, removed when they go,
    and its confidence is no higher than theirs, its evidence that of the total value.
    """
    if "arr" in result["corrected"] or (result["arr"] is not None and "arr" not in result["derived"]):
        return
    total, months = result["total_value"], result["term_months"]
    if total is None or not months:
        if "arr" in result["derived"]:
            result["arr"] = None
            result["evidence"].pop("arr", None)
            result["confidence"].pop("arr", None)
            result["derived"].remove("arr")
        return
    _set_derived(
        result, "arr", amount_number(round(Decimal(str(total)) * 12 / Decimal(months), 2)), source="total_value"
    )
    if "arr" in result["confidence"] and "term_months" in result["confidence"]:
        result["confidence"]["arr"] = min(result["confidence"]["arr"], result["confidence"]["term_months"])


# -- reading a model's answer ---------------------------------------------------------------------


def _value(field: str, raw: object, *, lenient: bool) -> Any:
    """One term's value as stored (JSON), or ValueError; None when the value is blank."""
    if raw is None or (isinstance(raw, str | list | Mapping) and not raw):
        return None
    if isinstance(raw, str) and not raw.strip():
        return None
    try:
        parsed = Corrections.model_validate({field: raw}, context={"lenient": lenient})
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"] if not str(part).startswith("function-"))
        raise ValueError(f"{where or field}: {str(first['msg']).removeprefix('Value error, ')}") from None
    return parsed.model_dump(mode="json")[field]


def _evidence_map(value: object) -> dict[str, object]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list) and all(isinstance(i, Mapping) and isinstance(i.get("field"), str) for i in value):
        grouped: dict[str, list[object]] = {}
        for item in value:
            grouped.setdefault(item["field"], []).append(item)
        return dict(grouped)
    raise TermsError("evidence is not an object of quotes and pages keyed by term")


def _confidence_map(value: object) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TermsError("confidence is not an object of numbers keyed by term")
    confidences: dict[str, float] = {}
    for field, raw in value.items():
        number = _confidence(raw)
        if number is not None:
            confidences[str(field)] = number
    return confidences


def _confidence(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            return None
    if not isinstance(raw, int | float) or not math.isfinite(raw):
        return None
    return min(1.0, max(0.0, float(raw)))


# -- long contracts -----------------------------------------------------------------------------


def chunks(document: Document, max_chars: int = 60_000) -> list[Document]:
    """The document in runs of whole pages of at most `max_chars` characters each.

    A page longer than that is cut on paragraph (else line, else word) boundaries into pieces
    that keep its number; no text is lost, so a term on page 30 is in some chunk.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    pieces: list[Page] = []
    for page in document.pages:
        if len(page.text) <= max_chars:
            pieces.append(page)
        else:
            pieces.extend(Page(page.number, part) for part in _cut(page.text, max_chars))
    runs: list[Document] = []
    run: list[Page] = []
    size = 0
    for piece in pieces:
        if run and size + len(piece.text) > max_chars:
            runs.append(Document(document.kind, tuple(run)))
            run, size = [], 0
        run.append(piece)
        size += len(piece.text)
    if run:
        runs.append(Document(document.kind, tuple(run)))
    return runs


def _cut(text: str, max_chars: int) -> list[str]:
    """`text` in consecutive pieces of at most `max_chars`, cut where a paragraph, line or word ends."""
    pieces: list[str] = []
    start = 0
    while len(text) - start > max_chars:
        end = start + max_chars
        cut = -1
        for boundary in ("\n\n", "\n", " "):
            at = text.rfind(boundary, start + 1, end)
            if at != -1:
                cut = at + len(boundary)
                break
        if cut <= start:
            cut = end
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def merge(partials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The verified extractions of a contract's chunks as one.

    A single value: the most confident (a missing confidence counts below 0), a tie going to the
    earliest page. A list: the items of every chunk, each once (names compared case- and
    whitespace-insensitively), its evidence and confidence from the most confident chunk.
    Values a chunk derived count only where no chunk states one; arr is derived again from the
    merged total value and term.
    """
    parts = [_copy(p) for p in partials]
    result = empty()
    for field in FIELDS:
        candidates = _candidates(parts, field)
        if not candidates:
            continue
        _, best = max(candidates, key=lambda c: _rank(c[1], field, c[0]))
        if field in LIST_FIELDS:
            result[field] = _united(p[field] for _, p in candidates)
        else:
            result[field] = copy.deepcopy(best[field])
        for book in ("evidence", "confidence"):
            if field in best[book]:
                result[book][field] = copy.deepcopy(best[book][field])
        for book in ("derived", "corrected"):
            if field in best[book]:
                result[book].append(field)
    for part in parts:
        for drop in part["dropped"]:
            if drop not in result["dropped"]:
                result["dropped"].append(dict(drop))
    _derive_arr(result)
    return result


def _candidates(parts: list[dict[str, Any]], field: str) -> list[tuple[int, dict[str, Any]]]:
    """The chunks that give `field`, with their index: those that state it, else those that derived it."""
    stated = [(i, p) for i, p in enumerate(parts) if p[field] is not None and field not in p["derived"]]
    if stated or field == "arr":  # arr is derived again from the merged values
        return stated
    return [(i, p) for i, p in enumerate(parts) if p[field] is not None]


def _rank(part: Mapping[str, Any], field: str, index: int) -> tuple[bool, float, float, int]:
    confidence = part["confidence"].get(field, -1.0)
    page = (part["evidence"].get(field) or {}).get("page")
    return (field in part["corrected"], confidence, -(page if isinstance(page, int) else math.inf), -index)


def _united(lists: Iterable[list[Any]]) -> list[Any]:
    """The items of several lists, each once; a repeat fills what the first left empty."""
    united: list[Any] = []
    at: dict[str, int] = {}
    for items in lists:
        for item in items:
            key = item_key(item if isinstance(item, str) else str(item.get("name", "")))
            if key not in at:
                at[key] = len(united)
                united.append(copy.deepcopy(item))
            elif isinstance(item, Mapping):
                first = united[at[key]]
                for name, value in item.items():
                    if first.get(name) is None and value is not None:
                        first[name] = copy.deepcopy(value)
    return united


def _copy(extracted: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of a stored `extracted` with every key present (older records lack some)."""
    result = empty()
    if not extracted:
        return result
    for field in FIELDS:
        result[field] = copy.deepcopy(extracted.get(field))
    for book in ("confidence", "evidence"):
        if isinstance(extracted.get(book), Mapping):
            result[book] = {k: copy.deepcopy(v) for k, v in extracted[book].items() if k in FIELDS}
    if isinstance(extracted.get("dropped"), list):
        result["dropped"] = [dict(d) for d in extracted["dropped"] if isinstance(d, Mapping)]
    for book in ("derived", "corrected"):
        if isinstance(extracted.get(book), list):
            result[book] = [f for f in extracted[book] if f in FIELDS]
    return result


# -- the CSM's corrections ----------------------------------------------------------------------


def apply_corrections(extracted: Mapping[str, Any] | None, corrections: Mapping[str, Any]) -> dict[str, Any]:
    """`extracted` with the CSM's corrections: confidence 1, no evidence, listed in `corrected`.

    A correction to null clears the term (still recorded as corrected). Raises ValueError for
    an unknown term name or a value that cannot be read (the message names the term).
    """
    unknown = sorted(set(corrections) - set(FIELDS))
    if unknown:
        raise ValueError(f"not a contract term: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for field, raw in corrections.items():
        values[field] = _value(field, raw, lenient=False)
    result = _copy(extracted)
    for field in FIELDS:
        if field in values:
            _set_corrected(result, field, values[field], confidence=1.0, evidence=None)
    _derive_arr(result)
    return result


def keep_corrections(previous: Mapping[str, Any] | None, fresh: Mapping[str, Any]) -> dict[str, Any]:
    """A re-parse's `extracted` with every term the CSM corrected before kept as corrected."""
    result = _copy(fresh)
    before = _copy(previous)
    for field in FIELDS:
        if field in before["corrected"]:
            _set_corrected(
                result,
                field,
                before[field],
                confidence=before["confidence"].get(field),
                evidence=before["evidence"].get(field),
            )
    _derive_arr(result)
    return result


def _set_corrected(
    result: dict[str, Any], field: str, value: Any, *, confidence: float | None, evidence: object
) -> None:
    result[field] = copy.deepcopy(value)
    if value is not None and confidence is not None:
        result["confidence"][field] = confidence
    else:
        result["confidence"].pop(field, None)
    if value is not None and evidence is not None:
        result["evidence"][field] = copy.deepcopy(evidence)
    else:
        result["evidence"].pop(field, None)
    # What the model proposed for this term no longer matters: the CSM's value stands.
    result["dropped"] = [d for d in result["dropped"] if d.get("field") != field]
    if field in result["derived"]:
        result["derived"].remove(field)
    if field not in result["corrected"]:
        result["corrected"].append(field)
    result["corrected"].sort(key=FIELDS.index)
