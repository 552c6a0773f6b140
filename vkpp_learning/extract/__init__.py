"""PDF extraction: a review PDF to clean page text, through a replaceable backend (PDFium or pdfplumber)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from vkpp_learning import registry, settings
from vkpp_learning.errors import BadDocumentError
from vkpp_learning.extract.backends import RawPage, check_file
from vkpp_learning.extract.layout import document_style, layout_page, mark_continuations, remove_running_text
from vkpp_learning.records import ExtractedDocument, PageText

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "extract_pdf"]
BACKENDS = ("pdfium", "pdfplumber")
_BODY_CHARS_FOR_TEXT_LAYER = 40  # fewer characters than this outside the margins: a page to OCR


def extract_pdf(path: str | Path, backend: str = "pdfium", *, ocr: str | None = None) -> ExtractedDocument:
    """Extract a review: pages in reading order, running text removed, every block traceable to its page.

    Raises BadDocumentError with a specific code for a file that cannot be ingested.
    `ocr` is "auto" (Tesseract when installed) or "off"; None takes the VKPP_OCR setting.
    """
    path = Path(path)
    name = registry.resolve("extract", backend)
    data = check_file(path, settings.get_int("VKPP_MAX_FILE_MB") * 2**20)
    sha = hashlib.sha256(data).hexdigest()
    with registry.create("extract", name).open(path, data) as pdf:
        raw_pages = [pdf.page(i) for i in range(pdf.page_count)]
        statuses, warnings = _ocr_missing_text_layers(pdf, raw_pages, ocr)
        metadata = pdf.metadata()
    removed = remove_running_text(raw_pages)
    style = document_style(raw_pages)
    pages = []
    for raw, status, dropped in zip(raw_pages, statuses, removed, strict=True):
        blocks, columns = layout_page(raw, style)
        pages.append(PageText(raw.number, raw.width, raw.height, blocks, status, columns, dropped))
    mark_continuations([p.blocks for p in pages])
    if not any(p.blocks for p in pages):
        raise _no_text_error(statuses)
    return ExtractedDocument(str(path), sha, name, pages, metadata, warnings)


def _needs_text(page: RawPage) -> bool:
    band = page.height * 0.11
    body = sum(len(s.text.strip()) for s in page.segments if band < s.top < page.height - band)
    return body < _BODY_CHARS_FOR_TEXT_LAYER and page.image_cover() > 0.25


def _ocr_missing_text_layers(pdf, raw_pages: list[RawPage], ocr: str | None) -> tuple[list[str], list[str]]:
    from vkpp_learning.extract.ocr import OCR_DPI, ocr_segments, tesseract_path

    exe = None if (ocr or settings.get("VKPP_OCR")).lower() == "off" else tesseract_path()
    statuses, warnings = [], []
    for i, page in enumerate(raw_pages):
        if not _needs_text(page):
            statuses.append("ok" if page.segments else "empty")
            continue
        if exe is None:
            statuses.append("needs_ocr")
            warnings.append(f"page {page.number} has no text layer and needs OCR (Tesseract is not available)")
            continue
        try:
            page.segments = ocr_segments(pdf.render(i, OCR_DPI), page.height, exe)
            statuses.append("ocr")
        except (RuntimeError, OSError) as exc:
            statuses.append("needs_ocr")
            warnings.append(f"page {page.number}: OCR failed ({exc}); the page needs OCR")
    return statuses, warnings


def _no_text_error(statuses: list[str]) -> BadDocumentError:
    if "needs_ocr" in statuses:
        return BadDocumentError(
            "no page has a text layer (a scanned document) and OCR is not available: "
            "install Tesseract (apt-get install tesseract-ocr) or set VKPP_OCR=auto",
            code="needs_ocr",
        )
    return BadDocumentError("no readable text was found in the document, even after OCR", code="no_text")
