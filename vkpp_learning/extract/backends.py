"""PDF backends: each turns a page into positioned text runs; the shared layout code does the rest.

Both backends report the same thing (`RawPage`: text runs with boxes in points, origin top-left, plus
image boxes), so reading order, running-header removal and hyphenation are decided once, in layout.py,
and the two backends give the same clean text.
"""

from __future__ import annotations

import ctypes
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vkpp_learning.errors import BadDocumentError
from vkpp_learning.records import TextSegment
from vkpp_learning.registry import register


@dataclass
class RawPage:
    number: int  # 1-based
    width: float
    height: float
    segments: list[TextSegment]
    images: list[tuple[float, float, float, float]] = field(default_factory=list)  # x0, top, x1, bottom

    def image_cover(self) -> float:
        """Share of the page covered by its largest image (a scanned page is close to 1)."""
        area = self.width * self.height or 1.0
        return max(((x1 - x0) * (b - t) / area for x0, t, x1, b in self.images), default=0.0)


class OpenPdf(AbstractContextManager["OpenPdf"], Protocol):
    page_count: int

    def metadata(self) -> dict[str, str]: ...

    def page(self, index: int) -> RawPage: ...

    def render(self, index: int, dpi: int) -> Any: ...  # a PIL image


class PdfBackend(Protocol):
    name: str

    def open(self, path: Path) -> OpenPdf: ...


def check_file(path: Path, max_bytes: int) -> bytes:
    """Read a file and refuse, with a specific error, what is plainly not an ingestible PDF."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadDocumentError(f"cannot read the file: {exc.strerror}", code="unreadable") from None
    if size == 0:
        raise BadDocumentError("the file is empty (0 bytes)", code="empty_file")
    if size > max_bytes:
        raise BadDocumentError(
            f"the file is {size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit (VKPP_MAX_FILE_MB)",
            code="too_large",
        )
    data = path.read_bytes()
    if b"%PDF-" not in data[:1024]:
        kind = "a text file" if _looks_like_text(data[:2048]) else "not a PDF"
        raise BadDocumentError(f"the file is {kind}, not a PDF (no %PDF header)", code="not_pdf")
    return data


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def open_error(exc: Exception, data: bytes) -> BadDocumentError:
    """Name the problem when PDFium refuses a document: a password, a cut-off file, or damage."""
    text = str(exc).lower()
    if "password" in text or "security" in text:
        return BadDocumentError(
            "the PDF is encrypted with a password; remove the password and try again", code="encrypted"
        )
    if b"%%EOF" not in data[-2048:]:
        return BadDocumentError(
            "the PDF is truncated (its end is missing); download or copy it again", code="truncated"
        )
    return BadDocumentError(f"the PDF is damaged and cannot be read ({exc})", code="corrupt")


def open_pdfium(data: bytes) -> Any:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise open_error(exc, data) from None
    if len(pdf) == 0:
        pdf.close()
        raise BadDocumentError("the PDF has no pages", code="corrupt")
    return pdf


def _pdfium_metadata(pdf: Any) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in pdf.get_metadata_dict(skip_empty=True).items()}
    except Exception:  # metadata is a nicety; a damaged info dictionary must not stop ingestion
        return {}


def _render(pdf: Any, index: int, dpi: int) -> Any:
    return pdf[index].render(scale=dpi / 72).to_pil()


class _PdfiumDocument:
    def __init__(self, data: bytes) -> None:
        self._pdf = open_pdfium(data)
        self.page_count = len(self._pdf)

    def __enter__(self) -> _PdfiumDocument:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pdf.close()

    def metadata(self) -> dict[str, str]:
        return _pdfium_metadata(self._pdf)

    def render(self, index: int, dpi: int) -> Any:
        return _render(self._pdf, index, dpi)

    def page(self, index: int) -> RawPage:
        import pypdfium2.raw as raw

        page = self._pdf[index]
        width, height = page.get_size()
        textpage = page.get_textpage()
        segments = _pdfium_segments(textpage, height, raw)
        images = []
        if needs_image_check(segments):  # walking page objects costs more than the text; only for scans
            images = [_flip(obj.get_bounds(), height) for obj in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE])]
        textpage.close()
        page.close()
        return RawPage(index + 1, width, height, segments, images)


SCAN_TEXT_CHARS = 400  # a page with less text than this may be a scan with a header drawn over it


def needs_image_check(segments: list[TextSegment]) -> bool:
    """Only a page with little text can be a scan; its images are then worth looking at."""
    return sum(len(s.text) for s in segments) < SCAN_TEXT_CHARS


def _flip(pos: tuple[float, float, float, float], height: float) -> tuple[float, float, float, float]:
    left, bottom, right, top = pos
    return (left, height - top, right, height - bottom)


def _pdfium_segments(textpage: Any, height: float, raw: Any) -> list[TextSegment]:
    """Text runs from PDFium's rectangles, each mapped to its exact characters.

    `get_text_bounded` would also pick up neighbouring characters that overlap the box, so each rect's
    first character is found by position and the run is the text up to the next rect's first character.
    """
    text = textpage.get_text_range()
    handle = textpage.raw  # the bare handle: the helper object costs a property call per PDFium call
    rects = _rects(handle, raw)
    starts = [_first_char(handle, rect, raw, i > 0 and _after_run(rects[i - 1], rect)) for i, rect in enumerate(rects)]
    segments = []
    carry = ""
    for i, (left, bottom, right, top) in enumerate(rects):
        start = starts[i]
        following = starts[i + 1] if i + 1 < len(starts) else len(text)
        if start >= 0 and following > start:
            run = carry + text[start:following]
        else:  # no reliable character index: fall back to the text inside the box
            run = carry + textpage.get_text_bounded(left, bottom, right, top)
        # A narrow glyph that opens the next line (a quote mark) can fall before that line's probe
        # point; what follows the last line break belongs to the next run.
        run, _, carry = run.rpartition("\r\n") if _tail_after_break(run) else (run, "", "")
        if not run.strip():
            continue
        size, bold = _pdfium_font(handle, start, raw) if start >= 0 else (0.0, False)
        segments.append(TextSegment(run, left, height - top, right, height - bottom, size, bold))
    return segments


def _tail_after_break(run: str) -> bool:
    head, sep, tail = run.rpartition("\r\n")
    return bool(sep and head and tail.strip() and len(tail) <= 2)


def _rects(textpage: Any, raw: Any) -> list[tuple[float, float, float, float]]:
    """PDFium's text rectangles as (left, bottom, right, top), read into buffers reused for the page."""
    get_rect = raw.FPDFText_GetRect
    left, top, right, bottom = box = [ctypes.c_double() for _ in range(4)]
    refs = [ctypes.byref(d) for d in box]
    rects = []
    for i in range(raw.FPDFText_CountRects(textpage, 0, -1)):
        get_rect(textpage, i, *refs)
        rects.append((left.value, bottom.value, right.value, top.value))
    return rects


def _first_char(textpage: Any, rect: tuple[float, float, float, float], raw: Any, after_run: bool = False) -> int:
    """The index of the first character of a rect: the first whose box holds a point a little way in
    (a run may begin with a space that has no box of its own: probe a little further in)."""
    left, bottom, right, top = rect
    middle = (top + bottom) / 2
    at = raw.FPDFText_GetCharIndexAtPos
    steps: tuple[float, ...] = (0.6, 2.0, 4.0, 7.0, 11.0, (right - left) / 2)
    # A rect that starts where the last one ended (nearly always) opens with a space whose box is a
    # hairline on the baseline, which the first two points miss. One search with a wider tolerance
    # around both points answers for both at the cost of one: when it finds no box near, neither point
    # has one, exact or within half a point. Otherwise the points are probed one by one as usual.
    if after_run and left + 2.0 < right and at(textpage, left + 1.3, middle, 2.41, 1.01) < 0:
        steps = steps[2:]
    for dx in steps:
        x = left + dx
        if x < right:
            # PDFium returns the first character whose box holds the point whatever the tolerance, so an
            # exact probe (half the cost: no distances) answers first, and the tolerant one (the nearest
            # box within half a point) only when no box holds the point.
            index = at(textpage, x, middle, 0.0, 0.0)
            if index < 0:
                index = at(textpage, x, middle, 1.0, 1.0)
            if index >= 0:
                return index
    return -1


def _after_run(prev: tuple[float, float, float, float], rect: tuple[float, float, float, float]) -> bool:
    """Does `rect` start on the same baseline where `prev` ended (a text object split at a space)?"""
    return abs(prev[1] - rect[1]) < 3 and -0.5 < rect[0] - prev[2] < 1.5


_NAME_BUF = ctypes.create_string_buffer(128)


def _pdfium_font(textpage: Any, index: int, raw: Any) -> tuple[float, bool]:
    size = float(raw.FPDFText_GetFontSize(textpage, index))
    weight = raw.FPDFText_GetFontWeight(textpage, index)
    flags = ctypes.c_int(0)
    raw.FPDFText_GetFontInfo(textpage, index, _NAME_BUF, len(_NAME_BUF), ctypes.byref(flags))
    name = _NAME_BUF.value.decode("latin-1", "replace").lower()
    return round(size, 1), weight >= 600 or "bold" in name or "black" in name or "heavy" in name


class _PlumberDocument:
    def __init__(self, data: bytes) -> None:
        import io

        import pdfplumber

        self._pdfium = open_pdfium(data)  # validates the file the same way for both backends
        self._pdf = pdfplumber.open(io.BytesIO(data))
        self.page_count = len(self._pdf.pages)

    def __enter__(self) -> _PlumberDocument:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pdf.close()
        self._pdfium.close()

    def metadata(self) -> dict[str, str]:
        return _pdfium_metadata(self._pdfium)

    def render(self, index: int, dpi: int) -> Any:
        return _render(self._pdfium, index, dpi)

    def page(self, index: int) -> RawPage:
        page = self._pdf.pages[index]
        words = page.extract_words(extra_attrs=["size", "fontname"], keep_blank_chars=False, x_tolerance=1.5)
        segments = _words_to_segments(words)
        images = []
        if needs_image_check(segments):
            images = [(im["x0"], im["top"], im["x1"], im["bottom"]) for im in page.images]
        raw_page = RawPage(index + 1, float(page.width), float(page.height), segments, images)
        page.close()
        return raw_page


def _words_to_segments(words: list[dict[str, Any]]) -> list[TextSegment]:
    """Merge words that sit on one baseline with ordinary spacing into runs, as PDFium's rects are."""
    segments: list[TextSegment] = []
    current: list[dict[str, Any]] = []
    for word in words:
        if current and _same_run(current[-1], word):
            current.append(word)
            continue
        if current:
            segments.append(_segment(current))
        current = [word]
    if current:
        segments.append(_segment(current))
    return segments


def _same_run(prev: dict[str, Any], word: dict[str, Any]) -> bool:
    size = max(prev["size"], 1.0)
    return (
        abs(prev["bottom"] - word["bottom"]) < 0.35 * size
        and abs(prev["size"] - word["size"]) < 0.5
        and 0 <= word["x0"] - prev["x1"] < 0.9 * size
    )


def _is_bold(word: dict[str, Any]) -> bool:
    name = word["fontname"].lower()
    return "bold" in name or "black" in name or "heavy" in name


def _segment(words: list[dict[str, Any]]) -> TextSegment:
    return TextSegment(
        " ".join(w["text"] for w in words),
        min(w["x0"] for w in words),
        min(w["top"] for w in words),
        max(w["x1"] for w in words),
        max(w["bottom"] for w in words),
        round(float(words[0]["size"]), 1),
        all(_is_bold(w) for w in words),
    )


@register("extract", "extract.pdfium.v1", alias="pdfium")
class PdfiumBackend:
    name = "extract.pdfium.v1"

    def open(self, path: Path, data: bytes) -> _PdfiumDocument:
        return _PdfiumDocument(data)


@register("extract", "extract.pdfplumber.v1", alias="pdfplumber")
class PdfplumberBackend:
    name = "extract.pdfplumber.v1"

    def open(self, path: Path, data: bytes) -> _PlumberDocument:
        return _PlumberDocument(data)
