"""The reader process (`common/contracts/extraction.py`) in-process, without emulators: it reads
what `text.extract` reads, refuses what it refuses, holds none of the function's secrets, and is
bounded in memory and time by the settings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from common.contracts import extraction, text
from tests.conftest import Instance
from tests.test_contract_text import docx_of, docx_with_body, pdf_of, pdf_sharing_one_stream, unreadable

SECRET = "sk-ant-not-for-readers"


def limits(fresh_instance: Instance, *, memory_mb: int = 200, seconds: int = 60) -> None:
    """Readers from now on with these limits (a fresh instance: a reader waiting had the old ones)."""
    fresh_instance(CSCX_PARSE_MEMORY_MB=str(memory_mb), CSCX_PARSE_SECONDS=str(seconds))


@pytest.fixture(autouse=True)
def settings(fresh_instance: Instance) -> None:
    fresh_instance(GOOGLE_CLOUD_PROJECT="demo-cscx", ANTHROPIC_API_KEY=SECRET)
    limits(fresh_instance)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(pdf_of(["Order form", "Fees: \u20ac120,000 \u2014 \u201cNet 30\u201d"]), id="pdf"),
        pytest.param(docx_of(lambda d: [d.add_paragraph("Order form"), d.add_table(rows=1, cols=2)]), id="docx"),
        pytest.param("Order form\fFees: caf\u00e9 \U0001f600".encode(), id="text"),
    ],
)
def test_a_reader_reads_what_text_extract_reads(data: bytes) -> None:
    kind = text.detect_kind(data)
    assert extraction.extract(data, kind) == text.extract(data, kind)
    assert extraction.extract(data, None) == text.extract(data)  # the kind found by the reader


def test_a_reader_refuses_what_text_extract_refuses() -> None:
    empty = docx_of(lambda d: None)
    with pytest.raises(text.UnreadableDocumentError) as caught:
        extraction.extract(empty, "docx")
    assert (caught.value.reason, caught.value.message) == (unreadable(empty).reason, unreadable(empty).message)
    with pytest.raises(text.UnsupportedDocumentError):
        extraction.extract(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), None)


def test_a_reader_holds_none_of_the_functions_secrets() -> None:
    extraction.extract(b"Order form", "text")  # a reader is waiting after this one
    assert extraction._spare is not None
    environment = b""
    deadline = time.monotonic() + 10
    while not environment and time.monotonic() < deadline:  # read again while it comes out empty (seen under load)
        assert extraction._spare.poll() is None, "the waiting reader died"
        environment = Path(f"/proc/{extraction._spare.pid}/environ").read_bytes()
        time.sleep(0.05)
    assert SECRET.encode() not in environment
    assert b"ANTHROPIC_API_KEY" not in environment
    assert b"PYTHONPATH=" in environment


def test_a_reader_is_bounded_in_memory_by_the_settings() -> None:
    with pytest.raises(text.UnreadableDocumentError) as refused:
        extraction.extract(docx_with_body(b"<w:p/>" * 1_500_000), "docx")  # 9 MiB of paragraphs: ~250 MB
    assert refused.value.reason == "over_limit"
    assert "more than the 200 MiB of memory" in refused.value.message
    assert extraction.extract(b"Order form", "text").pages[0].text == "Order form"


def test_a_reader_is_bounded_in_time_by_the_settings(fresh_instance: Instance) -> None:
    limits(fresh_instance, seconds=4)
    started = time.monotonic()
    with pytest.raises(text.UnreadableDocumentError) as refused:
        extraction.extract(pdf_sharing_one_stream(20, b"() Tj " * 300_000), "pdf")  # a minute of pypdf's time
    assert time.monotonic() - started < 4 + 2
    assert refused.value.reason == "over_limit"
    assert "longer than the 4 seconds" in refused.value.message
    assert extraction.extract(b"Order form", "text").pages[0].text == "Order form"
