"""What the model reads of a long contract (`common/contracts/reading.py`, DESIGN §8): at most the
cap, the cover, the signature block and the passages densest in term cues first, in page order,
with their page numbers; gaps marked. In-process, no emulator."""

from __future__ import annotations

import hypothesis
from hypothesis import strategies as st

from common.contracts.reading import GAP, for_model
from common.contracts.text import Document, Page

BOILERPLATE = "Each party shall keep the other's confidential information confidential and use it only as agreed. "


def document(*texts: str) -> Document:
    return Document("text", tuple(Page(n, text) for n, text in enumerate(texts, start=1)))


def size(document: Document) -> int:
    return sum(len(page.text) for page in document.pages)


def test_a_contract_within_the_cap_is_read_whole() -> None:
    whole = document("Order form: $12,000 a year.", BOILERPLATE * 10, "Signed: Jane Roe")

    assert for_model(whole, 10_000) is whole


def test_the_cover_the_signature_page_and_the_terms_come_before_boilerplate() -> None:
    pages = [BOILERPLATE * 30 for _ in range(40)]
    pages[0] = "ORDER FORM by and between Acme Corp and CSCX Inc, effective March 1, 2026."
    pages[22] = BOILERPLATE * 5 + "The initial term is 24 months and renews automatically; notice of 60 days."
    pages[31] = (
        BOILERPLATE * 5 + "Fees: $96,000 per year, invoiced annually, payable net 30. Governed by the laws of Delaware."
    )
    pages[39] = "Signed for Acme Corp. Name: Jane Roe. Title: CFO. jane@acme.example"

    read = for_model(document(*pages), 8_000)

    numbers = [page.number for page in read.pages]
    assert numbers == sorted(numbers)
    assert {1, 23, 32, 40} <= set(numbers)
    by_number = {page.number: page.text for page in read.pages}
    assert "renews automatically" in by_number[23]
    assert "$96,000" in by_number[32]
    assert size(read) <= 8_000


def test_one_long_page_is_read_in_passages_with_the_gaps_marked() -> None:
    paragraphs = [f"{n}. {BOILERPLATE * 8}\n\n" for n in range(200)]
    paragraphs[120] = "120. The Customer shall pay a subscription fee of EUR 30,000 per annum, invoiced quarterly.\n\n"
    text = "".join(paragraphs)

    read = for_model(document(text), 20_000)

    [page] = read.pages
    assert page.number == 1
    assert len(page.text) <= 20_000
    assert "EUR 30,000 per annum" in page.text
    assert page.text.startswith("0. ")  # the document's first passage
    assert GAP in page.text
    for kept in page.text.split(GAP):
        assert kept in text  # nothing but the contract's own text and the marks


# Pages of repeated snippets (long pages, paragraphs, cues), mostly over the cap.
PAGE = st.builds(
    lambda snippet, times: snippet * times, st.text(alphabet="ab $1\n.", min_size=20, max_size=400), st.integers(1, 60)
)


@hypothesis.given(pages=st.lists(PAGE, min_size=1, max_size=30), cap=st.integers(min_value=1_000, max_value=20_000))
@hypothesis.settings(max_examples=200, deadline=None)
def test_what_is_read_never_exceeds_the_cap_and_is_the_contracts_own_text(pages: list[str], cap: int) -> None:
    original = document(*pages)

    read = for_model(original, cap)

    hypothesis.event("over the cap" if size(original) > cap else "within the cap")
    assert size(read) <= cap
    assert [page.number for page in read.pages] == sorted({page.number for page in read.pages})
    for page in read.pages:
        for kept in page.text.split(GAP):
            assert kept in original.pages[page.number - 1].text
