"""What a contract file says, page by page: PDF (pypdf), DOCX (python-docx) or plain text.

The kind is decided from the file's bytes alone, never from its name or declared type. Pages
are numbered from 1 so that evidence can name its page: a PDF's own pages; a DOCX's pages as
its explicit breaks make them (hard page breaks, "page break before", section breaks, and the
page ends Word recorded when it last laid the document out); a text file's form feeds. A file
that cannot be read raises `UnreadableDocumentError` with a reason and a sentence for the CSM;
so does one over the bounds of a contract (DESIGN §8), naming the bound. This module reads in
the process that calls it: the functions call it through `extraction`, in a bounded process.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Literal

FileKind = Literal["pdf", "docx", "text"]
Reason = Literal["no_text_layer", "encrypted", "empty", "corrupt", "over_limit"]

CONTENT_TYPES: dict[FileKind, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text": "text/plain; charset=utf-8",
}

# A DOCX is a zip; unpacked, its parts are held in memory (the XML as trees several times its
# size), so a zip that claims to unpack to more than this is refused before python-docx inflates
# it. Python's zipfile never inflates a part past the size the zip declares for it.
MAX_UNPACKED_BYTES = 30 * 1024 * 1024
# The most of a document that is read: far beyond any contract, well short of what the model
# could be asked to read.
MAX_PAGES = 1_000
MAX_CHARACTERS = 2_000_000


class DocumentError(Exception):
    """A contract file that yields no text; `message` is a sentence for the CSM."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedDocumentError(DocumentError):
    """The bytes are not a PDF, a DOCX or plain text (an answer of 415)."""


class UnreadableDocumentError(DocumentError):
    """A PDF, DOCX or text file whose text cannot be read (an answer of 422): `reason` says why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


@dataclass(frozen=True)
class Page:
    number: int  # from 1
    text: str


@dataclass(frozen=True)
class Document:
    kind: FileKind
    pages: tuple[Page, ...]

    @property
    def text(self) -> str:
        """The whole text, pages separated by form feeds (as a text file marks them)."""
        return "\f".join(page.text for page in self.pages)


# -- the kind, from the bytes --------------------------------------------------------------------


def detect_kind(data: bytes) -> FileKind | None:
    """PDF, DOCX or plain text, from the content alone; None for anything else."""
    # The PDF header may follow a little whitespace or a byte-order mark (readers accept it).
    if data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "docx" if _is_docx(data) else None
    return "text" if _decode_text(data) is not None else None


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        # A damaged zip that still names a Word body in its local headers is a damaged DOCX
        # (422, "corrupt"), not some other file type (415).
        return b"word/document.xml" in data


# Control characters other than tab, line feed, form feed and carriage return (C0, DEL, C1):
# text that has them is a binary file, whatever its bytes decode to.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")

_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),  # before UTF-16 LE, whose mark it starts with
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _decode_text(data: bytes) -> str | None:
    """The text of a plain-text file in a common encoding, or None when it is not text."""
    text: str | None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                return None
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_single_byte(data)
    if text is None or _CONTROL.search(text):
        return None
    return text


def _decode_single_byte(data: bytes) -> str | None:
    """Text in a single-byte encoding charset-normalizer is confident about, else None.

    Western European text often scores the same under Windows-1250 as under Windows-1252,
    and charset-normalizer may name either: Windows-1252 wins a tie, since it is what
    "Latin-1" files from Windows and the web actually are.
    """
    import charset_normalizer
    from charset_normalizer.utils import is_multi_byte_encoding

    matches = [m for m in charset_normalizer.from_bytes(data) if not is_multi_byte_encoding(m.encoding)]
    if not matches:
        return None
    best = min(matches, key=lambda m: m.chaos)
    if best.chaos > 0.1:
        return None
    for match in matches:
        if match.chaos <= best.chaos + 0.01 and "cp1252" in match.could_be_from_charset:
            try:
                return data.decode("cp1252")
            except UnicodeDecodeError:
                break
    try:
        return data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError):
        return None


# -- extraction ----------------------------------------------------------------------------------


def over_limit(message: str) -> UnreadableDocumentError:
    return UnreadableDocumentError("over_limit", message)


def _too_many_pages() -> UnreadableDocumentError:
    return over_limit(
        f"The document has more than {MAX_PAGES:,} pages, the most a contract may have; upload the part with its terms."
    )


def _too_many_characters() -> UnreadableDocumentError:
    return over_limit(
        f"The document has more than {MAX_CHARACTERS:,} characters of text, the most a contract may have; "
        "upload the part with its terms."
    )


def _within_bounds(texts: list[str]) -> list[str]:
    if len(texts) > MAX_PAGES:
        raise _too_many_pages()
    if sum(len(text) for text in texts) > MAX_CHARACTERS:
        raise _too_many_characters()
    return texts


def extract(data: bytes, kind: FileKind | None = None) -> Document:
    """The document's text page by page; `kind` as `detect_kind` found it (detected if not given).

    Raises `UnsupportedDocumentError` for bytes of no supported kind and
    `UnreadableDocumentError` for a file of a supported kind whose text cannot be read.
    """
    kind = kind or detect_kind(data)
    if kind == "pdf":
        texts = _pdf_pages(data)
    elif kind == "docx":
        texts = _docx_pages(data)
    elif kind == "text":
        texts = _text_pages(data)
    else:
        raise UnsupportedDocumentError("The file is not a PDF, a DOCX or a plain-text document.")
    return Document(kind, tuple(Page(number, text) for number, text in enumerate(texts, start=1)))


def _lines(text: str) -> str:
    # Only line endings are normalised: extraction is compared with the libraries' own cost.
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _without_trailing_blank_pages(texts: list[str]) -> list[str]:
    # A break at the very end of a DOCX or text file opens a page nobody wrote on.
    while texts and not texts[-1].strip():
        texts.pop()
    return texts


def _pdf_pages(data: bytes) -> list[str]:
    import pypdf
    from pypdf.errors import DependencyError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        # A PDF that opens with the empty password (only editing or printing restricted, as
        # many e-signed contracts are) is read like any other: every viewer shows its text.
        if reader.is_encrypted and not reader.decrypt(""):
            raise _encrypted()
        if len(reader.pages) > MAX_PAGES:  # as the page tree counts them, before any is read
            raise _too_many_pages()
        pages = list(reader.pages)
    except UnreadableDocumentError:
        raise
    except (DependencyError, NotImplementedError) as error:
        # An encryption algorithm pypdf cannot undo is a password we do not have.
        raise _encrypted() from error
    except Exception as error:
        # A malformed file can fail anywhere in the parser, with any exception type.
        raise UnreadableDocumentError(
            "corrupt", "The PDF is damaged and cannot be read; export it again and upload the new copy."
        ) from error
    if not pages:
        raise UnreadableDocumentError("empty", "The PDF has no pages.")
    texts: list[str] = []
    failures = 0
    characters = 0
    for page in pages:
        try:
            page_text = _lines(page.extract_text())
        except MemoryError:
            raise  # not a damaged page: the reader's memory limit
        except Exception:
            # One damaged page (a signature certificate, say) should not cost the others.
            failures += 1
            page_text = ""
        characters += len(page_text)
        if characters > MAX_CHARACTERS:
            raise _too_many_characters()
        texts.append(page_text)
    if not any(text.strip() for text in texts):
        if failures:
            raise UnreadableDocumentError(
                "corrupt", "The PDF is damaged and its pages cannot be read; export it again and upload the new copy."
            )
        raise UnreadableDocumentError(
            "no_text_layer", "The PDF has no text layer (a scan?); upload a PDF with selectable text."
        )
    return texts


def _encrypted() -> UnreadableDocumentError:
    return UnreadableDocumentError(
        "encrypted", "The PDF is encrypted with a password; upload a copy without password protection."
    )


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_P, _T, _TAB, _BR, _CR, _NO_BREAK_HYPHEN = (f"{_W}{t}" for t in ("p", "t", "tab", "br", "cr", "noBreakHyphen"))
_TR, _TC, _RENDERED_BREAK, _BREAK_BEFORE, _SECTION = (
    f"{_W}{t}" for t in ("tr", "tc", "lastRenderedPageBreak", "pageBreakBefore", "sectPr")
)
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_PARAGRAPH_PROPERTIES = f"{_W}pPr"
_WALKED = (_P, _T, _TAB, _BR, _CR, _NO_BREAK_HYPHEN, _TR, _TC, _RENDERED_BREAK, _BREAK_BEFORE, _SECTION, _FALLBACK)
_CHARACTERS = {_TAB: "\t", _CR: "\n", _NO_BREAK_HYPHEN: "-"}
_OFF = ("0", "false", "off")


def _docx_pages(data: bytes) -> list[str]:
    import docx

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except Exception as error:
        raise _corrupt_docx() from error
    if unpacked > MAX_UNPACKED_BYTES:
        raise over_limit(
            f"The DOCX unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB, the most a contract may; "
            "upload it as a PDF or a smaller DOCX."
        )
    try:
        body = docx.Document(io.BytesIO(data)).element.body
    except Exception as error:
        raise _corrupt_docx() from error
    texts = _without_trailing_blank_pages([_lines(text) for text in _DocxReader().pages(body)])
    if not texts:
        raise UnreadableDocumentError("empty", "The DOCX contains no text.")
    return _within_bounds(texts)


class _DocxReader:
    """One walk over a DOCX body in document order, cutting pages at the author's breaks.

    Paragraphs and tables alike are read, including those in content controls and tracked
    insertions (deleted text is `w:delText`, so left out). A table row becomes one line of its
    cells joined by " | "; a page break inside a table takes effect after the row. Word writes
    a rendered page break right after an explicit one: the two count as one. The walk stops as
    soon as the document is over the bounds of pages or characters.
    """

    def __init__(self) -> None:
        self.done: list[str] = []
        self.page: list[str] = []
        self.buffers = [self.page]  # the page, then the table cells being read
        self.rows: list[list[str]] = []
        self.breaks_in_table = 0
        self.after_explicit_break = False
        self.section_ends: set[object] = set()
        self.characters = 0

    def pages(self, body: object) -> list[str]:
        from lxml import etree

        walk = etree.iterwalk(body, events=("start", "end"), tag=_WALKED)
        for event, element in walk:
            if event == "start":
                if element.tag == _FALLBACK:
                    # The fallback repeats the preferred content (text boxes) for older readers.
                    walk.skip_subtree()
                else:
                    self.start(element)
            else:
                self.end(element)
        self.done.append("".join(self.page))
        return self.done

    def start(self, element: Any) -> None:
        tag = element.tag
        if tag == _T:
            if element.text:
                self.buffers[-1].append(element.text)
                self.after_explicit_break = False
                self.characters += len(element.text)
                if self.characters > MAX_CHARACTERS:
                    raise _too_many_characters()
        elif tag in _CHARACTERS:
            self.buffers[-1].append(_CHARACTERS[tag])
        elif tag == _BR:
            self.line_break(element.get(f"{_W}type"))
        elif tag == _RENDERED_BREAK:
            if not self.after_explicit_break:
                self.break_page(explicit=False)
            self.after_explicit_break = False
        elif tag == _BREAK_BEFORE:
            if element.get(f"{_W}val") not in _OFF:
                self.break_page()
        elif tag == _SECTION:
            self.section(element)
        elif tag == _TC:
            self.buffers.append([])
        elif tag == _TR:
            self.rows.append([])

    def line_break(self, kind: str | None) -> None:
        if kind == "page":
            self.break_page()
        elif kind != "column":  # a column break stays on the page
            self.buffers[-1].append("\n")

    def section(self, element: Any) -> None:
        # A section that ends at a paragraph starts the next on a new page unless it is
        # "continuous"; the body's own last sectPr ends the document, with no break.
        parent = element.getparent()
        kind = element.find(f"{_W}type")
        continuous = kind is not None and kind.get(f"{_W}val") == "continuous"
        if parent is not None and parent.tag == _PARAGRAPH_PROPERTIES and not continuous:
            self.section_ends.add(parent.getparent())

    def end(self, element: Any) -> None:
        tag = element.tag
        if tag == _P:
            self.buffers[-1].append("\n")
            if element in self.section_ends:
                self.break_page()
        elif tag == _TC:
            cell = "".join(self.buffers.pop())
            self.rows[-1].append(" ".join(cell.split()))
        elif tag == _TR:
            cells = self.rows.pop()
            if any(cells):  # an empty row (a blank form, a spacer) says nothing
                self.buffers[-1].append(" | ".join(cells) + "\n")
            if len(self.buffers) == 1:
                for _ in range(self.breaks_in_table):
                    self.new_page()
                self.breaks_in_table = 0

    def break_page(self, *, explicit: bool = True) -> None:
        self.after_explicit_break = explicit
        if len(self.buffers) > 1:
            self.breaks_in_table += 1
        else:
            self.new_page()

    def new_page(self) -> None:
        self.done.append("".join(self.page))
        self.page.clear()
        if len(self.done) > MAX_PAGES:  # and another page begun: blank pages at the end are trimmed later
            raise _too_many_pages()


def _corrupt_docx() -> UnreadableDocumentError:
    return UnreadableDocumentError(
        "corrupt", "The DOCX is damaged and cannot be read; save it again and upload the new copy."
    )


def _text_pages(data: bytes) -> list[str]:
    text = _decode_text(data)
    if text is None:
        raise UnsupportedDocumentError("The file is not a PDF, a DOCX or a plain-text document.")
    texts = _without_trailing_blank_pages(_lines(text).split("\f"))
    if not texts:
        raise UnreadableDocumentError("empty", "The text file is empty.")
    return _within_bounds(texts)
