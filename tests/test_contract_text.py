"""Contract text: what a PDF, DOCX or plain-text file says, page by page, from real files made here."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable

import docx
import pytest
from docx.document import Document as WordFile
from docx.enum.section import WD_SECTION
from docx.enum.text import WD_BREAK
from docx.oxml import OxmlElement
from fpdf import FPDF
from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from common.contracts.text import (
    CONTENT_TYPES,
    MAX_CHARACTERS,
    MAX_PAGES,
    Document,
    Page,
    UnreadableDocumentError,
    UnsupportedDocumentError,
    detect_kind,
    extract,
)

# -- files --------------------------------------------------------------------------------------


def pdf_of(pages: list[str], *, user_password: str | None = None) -> bytes:
    pdf = FPDF()
    pdf.core_fonts_encoding = "windows-1252"  # typographic quotes and dashes in the core font
    pdf.set_font("helvetica", size=11)
    if user_password is not None:
        pdf.set_encryption(owner_password="owner-secret", user_password=user_password)
    for page in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, page, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def image_only_pdf(pages: int = 2) -> bytes:
    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.image(Image.new("RGB", (120, 160), "white"), x=10, y=10, w=120)
    return bytes(pdf.output())


def docx_of(build: Callable[[WordFile], object]) -> bytes:
    document = docx.Document()
    build(document)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def page_break(document: WordFile) -> None:
    # What Word's Insert > Page Break writes: a paragraph holding a page break.
    document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


# -- files made to cost their reader (DESIGN §8's bounds) -------------------------------------------


def docx_with_body(body: bytes) -> bytes:
    """A DOCX python-docx makes, its body's content replaced by `body` (WordprocessingML), deflated hard."""
    made = zipfile.ZipFile(io.BytesIO(docx_of(lambda d: None)))
    buffer = io.BytesIO()
    with made, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in made.namelist():
            part = made.read(name)
            if name == "word/document.xml":
                start = part.index(b"<w:body>") + len(b"<w:body>")
                part = part[:start] + body + part[part.index(b"<w:sectPr", start) :]
            archive.writestr(name, part)
    return buffer.getvalue()


def docx_with_doctype(doctype: bytes, body: bytes) -> bytes:
    """docx_with_body's file whose document.xml declares `doctype` (its entities) before the document."""
    made = zipfile.ZipFile(io.BytesIO(docx_with_body(body)))
    buffer = io.BytesIO()
    with made, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in made.namelist():
            part = made.read(name)
            if name == "word/document.xml":
                declared = part.index(b"?>") + 2
                part = part[:declared] + doctype + part[declared:]
            archive.writestr(name, part)
    return buffer.getvalue()


def docx_unpacking_to(size: int) -> bytes:
    """A small DOCX whose body unpacks to about `size` bytes: empty paragraphs, over and over
    (read in full, each is an element: 90 MB of them held python-docx for 88 s and 2 GB)."""
    return docx_with_body(b"<w:p/>" * (size // 6))


def pdf_sharing_one_stream(pages: int, operators: bytes) -> bytes:
    """A PDF of `pages` pages that all draw one deflated content stream: `operators` in a text object."""
    writer = PdfWriter()
    stream = DecodedStreamObject()
    stream.set_data(b"BT /F1 12 Tf " + operators + b" ET")
    content = writer._add_object(stream.flate_encode(level=9))
    font = DictionaryObject(
        {
            NameObject(k): NameObject(v)
            for k, v in (("/Type", "/Font"), ("/Subtype", "/Type1"), ("/BaseFont", "/Courier"))
        }
    )
    resources = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = content
        page[NameObject("/Resources")] = resources
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def texts(document: Document) -> list[str]:
    return [page.text for page in document.pages]


def unreadable(data: bytes) -> UnreadableDocumentError:
    with pytest.raises(UnreadableDocumentError) as caught:
        extract(data)
    return caught.value


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + bytes(range(256))


# -- the kind, from the bytes --------------------------------------------------------------------


def test_kind_is_read_from_the_bytes() -> None:
    assert detect_kind(pdf_of(["Order form"])) == "pdf"
    assert detect_kind(docx_of(lambda d: d.add_paragraph("Order form"))) == "docx"
    assert detect_kind(b"Order form\n") == "text"
    assert set(CONTENT_TYPES) == {"pdf", "docx", "text"}
    assert CONTENT_TYPES["docx"] == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(ELF, id="executable-elf"),
        pytest.param(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(200)), id="exe"),
        pytest.param(PNG, id="png"),
        pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", id="jpeg"),
        pytest.param(zip_of({"data.csv": b"a,b\n1,2\n"}), id="zip-not-docx"),
        pytest.param(zip_of({"xl/workbook.xml": b"<workbook/>"}), id="xlsx"),
        pytest.param(b"Order form\x00\x00\x01 with NUL bytes", id="text-with-nul"),
        pytest.param(bytes(range(256)) * 8, id="binary"),
    ],
)
def test_anything_else_is_no_supported_kind(data: bytes) -> None:
    assert detect_kind(data) is None
    with pytest.raises(UnsupportedDocumentError, match="not a PDF, a DOCX or a plain-text"):
        extract(data)


def test_executable_named_pdf_is_refused_whatever_its_name() -> None:
    # Only the bytes count: the name and declared type never reach detect_kind.
    assert detect_kind(ELF + b"%PDF-1.7") is None


# -- PDF -----------------------------------------------------------------------------------------


def test_pdf_pages_are_numbered_from_one() -> None:
    document = extract(pdf_of(["Master Services Agreement", "Fees: $120,000 per year", "Signatures"]))
    assert document.kind == "pdf"
    assert [page.number for page in document.pages] == [1, 2, 3]
    assert "Fees: $120,000 per year" in document.pages[1].text
    assert "Signatures" in document.pages[2].text
    assert document.text.split("\f")[1] == document.pages[1].text


def test_pdf_keeps_typographic_characters() -> None:
    document = extract(pdf_of(["The \u201cInitial Term\u201d is twelve (12) months \u2014 renewing."]))
    assert "\u201cInitial Term\u201d" in document.pages[0].text


def test_image_only_pdf_has_no_text_layer() -> None:
    error = unreadable(image_only_pdf())
    assert error.reason == "no_text_layer"
    assert "no text layer" in error.message


def test_pdf_with_a_password_is_encrypted() -> None:
    error = unreadable(pdf_of(["Confidential pricing"], user_password="s3cret"))
    assert error.reason == "encrypted"
    assert "encrypted" in error.message


def test_pdf_that_opens_without_a_password_is_read() -> None:
    # Restricted from editing only (an empty user password): every viewer shows its text.
    document = extract(pdf_of(["Signed order form"], user_password=""))
    assert "Signed order form" in document.pages[0].text


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"%PDF-1.7\nthis is not a PDF body", id="garbage"),
        pytest.param(pdf_of(["Order form"])[:400], id="truncated"),
    ],
)
def test_malformed_pdf_is_corrupt(data: bytes) -> None:
    assert detect_kind(data) == "pdf"
    assert unreadable(data).reason == "corrupt"


# -- DOCX ----------------------------------------------------------------------------------------


def test_docx_reads_paragraphs_and_tables_in_body_order() -> None:
    def build(document: WordFile) -> None:
        document.add_paragraph("Order Form")
        table = document.add_table(rows=2, cols=3)
        for row, cells in zip(table.rows, (("Product", "Seats", "Price"), ("Analytics", "100", "$50")), strict=True):
            for cell, value in zip(row.cells, cells, strict=True):
                cell.text = value
        document.add_paragraph("Payment terms: Net 30")

    document = extract(docx_of(build))
    assert document.kind == "docx"
    assert texts(document) == ["Order Form\nProduct | Seats | Price\nAnalytics | 100 | $50\nPayment terms: Net 30\n"]


def test_docx_pages_follow_explicit_page_breaks() -> None:
    def build(document: WordFile) -> None:
        document.add_paragraph("Cover page")
        page_break(document)
        paragraph = document.add_paragraph("Fees end here.")
        paragraph.add_run().add_break(WD_BREAK.PAGE)
        paragraph.add_run("Term starts here.")
        document.add_section(WD_SECTION.NEW_PAGE)
        document.add_paragraph("Schedule A")
        page_break(document)  # a break at the very end opens no page

    document = extract(docx_of(build))
    assert [page.number for page in document.pages] == [1, 2, 3, 4]
    assert "Cover page" in document.pages[0].text
    assert "Fees end here." in document.pages[1].text
    assert "Term starts here." in document.pages[2].text
    assert "Schedule A" in document.pages[3].text


def test_docx_rendered_page_breaks_count_once_after_a_hard_break() -> None:
    def build(document: WordFile) -> None:
        first = document.add_paragraph("Page one, laid out by Word.")
        first.runs[0]._r.append(OxmlElement("w:lastRenderedPageBreak"))
        first.add_run(" Page two begins mid-paragraph.")
        page_break(document)
        third = document.add_paragraph()
        third.add_run()._r.append(OxmlElement("w:lastRenderedPageBreak"))  # Word's echo of the hard break
        third.add_run("Page three.")

    document = extract(docx_of(build))
    assert [page.text.strip() for page in document.pages] == [
        "Page one, laid out by Word.",
        "Page two begins mid-paragraph.",
        "Page three.",
    ]


def test_docx_without_breaks_is_one_page() -> None:
    document = extract(docx_of(lambda d: [d.add_paragraph(f"Clause {n}.") for n in range(1, 40)]))
    assert len(document.pages) == 1
    assert "Clause 39." in document.pages[0].text


def test_empty_docx_is_empty() -> None:
    assert unreadable(docx_of(lambda d: None)).reason == "empty"
    assert unreadable(docx_of(lambda d: [d.add_paragraph("   "), d.add_table(rows=2, cols=2)])).reason == "empty"


def test_damaged_docx_is_corrupt() -> None:
    broken_xml = zip_of({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document"})
    assert detect_kind(broken_xml) == "docx"
    assert unreadable(broken_xml).reason == "corrupt"
    truncated = docx_of(lambda d: d.add_paragraph("Order form"))[:-200]
    assert detect_kind(truncated) == "docx"
    assert unreadable(truncated).reason == "corrupt"


def test_docx_that_unpacks_past_30_mib_is_refused_before_it_is_inflated() -> None:
    data = docx_unpacking_to(90 * 2**20)
    assert len(data) < 200_000
    started = time.monotonic()
    error = unreadable(data)
    assert time.monotonic() - started < 2
    assert error.reason == "over_limit"
    assert "more than 30 MiB" in error.message


# -- plain text ----------------------------------------------------------------------------------

CONTRACT = "Master Services Agreement\r\nFees: \u20ac120,000 \u2014 \u201cNet 30\u201d.\fPage two: caf\u00e9 terms.\f"


@pytest.mark.parametrize(
    "encoding",
    ["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom", "cp1252"],
)
def test_text_in_common_encodings_splits_pages_on_form_feeds(encoding: str) -> None:
    if encoding == "utf-16-le-bom":
        data = b"\xff\xfe" + CONTRACT.encode("utf-16-le")
    elif encoding == "utf-16-be-bom":
        data = b"\xfe\xff" + CONTRACT.encode("utf-16-be")
    else:
        data = CONTRACT.encode(encoding)
    assert detect_kind(data) == "text"
    document = extract(data)
    assert document.kind == "text"
    assert texts(document) == [
        "Master Services Agreement\nFees: \u20ac120,000 \u2014 \u201cNet 30\u201d.",
        "Page two: caf\u00e9 terms.",
    ]


def test_latin1_text_is_read_as_windows_1252() -> None:
    data = "Agr\u00e9ment \u00e0 Gen\u00e8ve, fa\u00e7ade, \u00e9t\u00e9 et na\u00efvet\u00e9.\n".encode("latin-1")
    assert (
        extract(data).pages[0].text
        == "Agr\u00e9ment \u00e0 Gen\u00e8ve, fa\u00e7ade, \u00e9t\u00e9 et na\u00efvet\u00e9.\n"
    )


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n", b"\f\f  \f", "\ufeff \n".encode()])
def test_blank_text_is_empty(data: bytes) -> None:
    assert unreadable(data).reason == "empty"


# -- the bounds of a contract --------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda pages: "\f".join(["Clause."] * pages).encode(), id="text"),
        pytest.param(lambda pages: pdf_sharing_one_stream(pages, b"(Clause.) Tj"), id="pdf"),
        pytest.param(
            lambda pages: docx_with_body(b'<w:p><w:r><w:t>Clause.</w:t><w:br w:type="page"/></w:r></w:p>' * pages),
            id="docx",
        ),
    ],
)
def test_a_document_of_more_than_1000_pages_is_refused(build: Callable[[int], bytes]) -> None:
    assert len(extract(build(MAX_PAGES)).pages) == MAX_PAGES
    error = unreadable(build(MAX_PAGES + 1))
    assert error.reason == "over_limit"
    assert "more than 1,000 pages" in error.message


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda characters: b"a" * characters, id="text"),
        pytest.param(lambda characters: pdf_sharing_one_stream(2, b"(" + b"a" * (characters // 2) + b") Tj"), id="pdf"),
        pytest.param(
            lambda characters: docx_with_body(b"<w:p><w:r><w:t>" + b"a" * characters + b"</w:t></w:r></w:p>"), id="docx"
        ),
    ],
)
def test_a_document_of_more_than_2000000_characters_is_refused(build: Callable[[int], bytes]) -> None:
    read = extract(build(MAX_CHARACTERS - 2))  # a DOCX's paragraph ends in a line break
    assert MAX_CHARACTERS - 2 <= sum(len(page.text) for page in read.pages) <= MAX_CHARACTERS
    error = unreadable(build(MAX_CHARACTERS + 2))
    assert error.reason == "over_limit"
    assert "more than 2,000,000 characters" in error.message


def test_document_text_round_trips_through_a_text_file() -> None:
    document = Document("pdf", (Page(1, "one"), Page(2, ""), Page(3, "three")))
    assert texts(extract(document.text.encode())) == ["one", "", "three"]


def test_a_docx_naming_an_external_entity_reads_nothing_from_outside() -> None:
    # XXE: the entity would be /etc/passwd's text; the reader resolves no entity, so it is not there.
    doctype = b'<!DOCTYPE w:document [<!ENTITY outside SYSTEM "file:///etc/passwd">]>'
    started = time.monotonic()
    read = extract(docx_with_doctype(doctype, b"<w:p><w:r><w:t>Before &outside; after</w:t></w:r></w:p>"))
    assert time.monotonic() - started < 5
    assert "root:" not in "".join(texts(read))
    assert texts(read)[0].startswith("Before")


def test_a_docx_of_a_billion_laughs_is_refused_at_once() -> None:
    # Ten entities each ten of the one before: 10**9 "lol"s if expanded; the reader expands none.
    entities = b"".join(
        b'<!ENTITY l%d "%s">' % (level, b"".join([b"&l%d;" % (level - 1)] * 10)) for level in range(1, 10)
    )
    doctype = b'<!DOCTYPE w:document [<!ENTITY l0 "lol">' + entities + b"]>"
    started = time.monotonic()
    error = unreadable(docx_with_doctype(doctype, b"<w:p><w:r><w:t>&l9;</w:t></w:r></w:p>"))
    assert time.monotonic() - started < 5
    assert error.reason != "over_limit"  # refused as a damaged file, not after expanding it
