"""Where a quote is in a contract: the evidence that keeps a term (DESIGN §8).

Matching a quote: both sides are NFKC-normalised, case-folded, typographic quotes, apostrophes
and dashes made plain, soft hyphens and zero-width characters removed, and whitespace runs
collapsed to one space; when that finds nothing, whitespace and hyphens are ignored altogether
(PDF text breaks words at line ends and loses or adds spaces). A quote that runs over a page end
is cited at the page where it starts. A quote shorter than 3 or longer than 2,000 characters is
not evidence. The contract text is only ever searched: nothing here acts on what it says.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from common.contracts.text import Document

MIN_QUOTE_CHARS = 3
MAX_QUOTE_CHARS = 2_000

_PLAIN = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4`", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
        **dict.fromkeys("\u00ad\u200b\u200c\u200d\u2060\ufeff", None),
    }
)


def _loose(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).translate(_PLAIN).casefold().split())


def _looser(loose: str) -> str:
    return loose.replace(" ", "").replace("-", "")


class Pages:
    """A document's pages, normalised once, to find where a quote is."""

    def __init__(self, document: Document) -> None:
        texts: dict[int, list[str]] = {}
        for page in document.pages:
            # A page split into pieces (by `terms.chunks`) is whole again: its pieces are contiguous.
            texts.setdefault(page.number, []).append(page.text)
        self.numbers = sorted(texts)
        self.loose = {n: _loose("".join(texts[n])) for n in self.numbers}
        self.looser = {n: _looser(self.loose[n]) for n in self.numbers}

    def find(self, quote: str, page: int | None) -> int | None:
        """The page the quote is on: the page named if it is there, else the first it is on."""
        loose = _loose(quote)
        if not MIN_QUOTE_CHARS <= len(loose) <= MAX_QUOTE_CHARS:
            return None
        looser = _looser(loose)
        order = ([page] if page in self.loose else []) + self.numbers
        for number in order:
            if loose in self.loose[number] or looser in self.looser[number]:
                return number
        for number in order:
            following = self._next(number)
            if following is not None:
                if loose in f"{self.loose[number]} {self.loose[following]}":
                    return number
                if looser in self.looser[number] + self.looser[following]:
                    return number
        return None

    def cite(self, cited: object) -> dict[str, Any] | None:
        """The first of a model's citations for one term that is in the document, as stored."""
        for quote, page in _citations(cited):
            number = self.find(quote, page)
            if number is not None:
                return {"quote": " ".join(quote.split()), "page": number}
        return None

    def _next(self, number: int) -> int | None:
        index = self.numbers.index(number) + 1
        return self.numbers[index] if index < len(self.numbers) else None


def _citations(value: object) -> list[tuple[str, int | None]]:
    """The (quote, page) pairs a model gave for one term, in any of the shapes models use."""
    items = value if isinstance(value, list) else [value]
    cited: list[tuple[str, int | None]] = []
    for item in items:
        if isinstance(item, str):
            cited.append((item, None))
        elif isinstance(item, Mapping) and isinstance(item.get("quote"), str):
            cited.append((item["quote"], _page_number(item.get("page"))))
    return cited


def _page_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (match := re.fullmatch(r"\s*(?:p(?:age|\.|g\.?)?\s*)?(\d+)\s*", value.casefold())):
        return int(match[1])
    return None
