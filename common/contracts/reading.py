"""What the model reads of a long contract (DESIGN §8): at most `CSCX_CONTRACT_MODEL_CHARS`
characters, the passages likeliest to hold its terms first.

A contract's terms cluster: the cover page or order form (parties, dates, price), the signature
block (who signed, their titles and e-mails), and the clauses and schedules that name fees,
dates, terms, renewal, notice and governing law; definitions, data-protection and security
exhibits and service levels are long and say little the terms need. A text over the cap is cut
into passages (a page; a long page, into runs of whole paragraphs of at most 4,000 characters),
and passages are taken in this order until the cap is reached: the document's first passage,
its last, then the others by how densely they hold term cues (amounts, dates, durations,
e-mail addresses, and words such as renew, terminate, notice, fee, payment, governed by) per
character, the earlier first on a tie. A passage that does not fit whole is cut to the room
left (where a line or word ends), and the taking stops. What is taken goes to the model in document order, with its page
numbers, so evidence still names the right page; where a page lost passages, `[…]` marks the gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.contracts.text import Document, Page

PASSAGE_CHARS = 4_000
GAP = "\n[…]\n"

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
# Cues that start a word, tried only where a word starts (the scan is linear in the text).
_WORD_CUES = (
    r"(?:usd|eur|gbp|cad|aud|chf|jpy|inr|sek|nok|dkk)\b",
    r"\d{4}-\d{2}-\d{2}\b",
    r"\d{1,2}/\d{1,2}/\d{2,4}\b",
    rf"{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}\b",
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\s+\d{{4}}\b",
    r"\d+\s*(?:\(\w+\)\s*)?(?:calendar\s+|business\s+)?(?:days?|months?|years?)\b",
    r"(?:effective\s+date|commencement|initial\s+term|renew|terminat|notice|expir)",
    r"(?:fees?|price|pricing|payments?|payable|invoic|net\s?\d+|subscription|total|contract\s+value)\b",
    r"(?:seats?|licen[cs]es?|quantity|entitlements?|per\s+(?:user|month|year|annum))\b",
    r"(?:governing\s+law|governed\s+by|laws\s+of|jurisdiction)\b",
    r"by\s+and\s+between\b",
    r"(?:title|signature|signed|name)\s*:",
)
# Amounts, e-mail addresses (by their domain), and the cues above.
_CUES = re.compile(rf"[$€£¥]\s?\d|@[\w-]+\.\w|\b(?=\w)(?:{'|'.join(_WORD_CUES)})", re.IGNORECASE)


@dataclass(frozen=True)
class _Passage:
    index: int  # in document order
    page: int
    text: str

    @property
    def density(self) -> float:
        """Term cues per character (a short passage counts as one of 1,000 characters)."""
        return len(_CUES.findall(self.text)) / max(len(self.text), 1_000)


def for_model(document: Document, max_chars: int) -> Document:
    """The document as the model reads it: the whole of it when it fits in `max_chars`,
    otherwise its passages likeliest to hold terms, at most `max_chars` characters in all."""
    if sum(len(page.text) for page in document.pages) <= max_chars:
        return document
    passages = _passages(document)
    rest = sorted(passages[1:-1], key=lambda p: (-p.density, p.index))
    taken: dict[int, str] = {}
    room = max_chars
    for passage in dict.fromkeys([passages[0], passages[-1], *rest]):  # one passage may be both ends
        # A page gets at most one gap mark more than it has passages taken: two a passage bound them.
        cost = len(passage.text) + 2 * len(GAP)
        if cost <= room:
            taken[passage.index] = passage.text
            room -= cost
            continue
        if room > 2 * len(GAP):
            taken[passage.index] = _cut(passage.text, room - 2 * len(GAP)) + GAP  # its rest left out
        break
    return Document(document.kind, _pages(passages, taken))


def _passages(document: Document) -> list[_Passage]:
    passages: list[_Passage] = []
    for page in document.pages:
        for text in _runs(page.text):
            passages.append(_Passage(len(passages), page.number, text))
    return passages


def _runs(text: str) -> list[str]:
    """A page's text in runs of whole paragraphs of at most PASSAGE_CHARS (a longer paragraph
    cut where a line or word ends); the runs joined are the text."""
    runs: list[str] = []
    run = ""
    for whole in re.split(r"(?<=\n\n)", text):
        paragraph = whole
        while len(paragraph) > PASSAGE_CHARS:
            piece = _cut(paragraph, PASSAGE_CHARS)
            if run:
                runs.append(run)
                run = ""
            runs.append(piece)
            paragraph = paragraph[len(piece) :]
        if run and len(run) + len(paragraph) > PASSAGE_CHARS:
            runs.append(run)
            run = ""
        run += paragraph
    if run or not runs:
        runs.append(run)
    return runs


def _cut(text: str, max_chars: int) -> str:
    """The beginning of `text`, at most `max_chars`, ending where a line or word ends if one does."""
    if len(text) <= max_chars:
        return text
    for boundary in ("\n", " "):
        at = text.rfind(boundary, 0, max_chars)
        if at > 0:
            return text[: at + 1]
    return text[:max_chars]


def _pages(passages: list[_Passage], taken: dict[int, str]) -> tuple[Page, ...]:
    """The taken passages as pages, in document order; a page's left-out passages become a gap mark."""
    parts: dict[int, list[str]] = {}
    for passage in passages:
        page = parts.setdefault(passage.page, [])
        if passage.index in taken:
            page.append(taken[passage.index])
        elif not page or not page[-1].endswith(GAP):
            page.append(GAP)
    return tuple(Page(number, "".join(texts)) for number, texts in parts.items() if any(t != GAP for t in texts))
