"""Plain records passed between pipeline stages: extraction -> segmentation -> tagging -> storage.

They carry no behaviour beyond small derived properties, so every stage can be tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

REVIEW_TYPES = ("CSPR", "SAR", "DHR", "MAPPA")
# Subtypes are the older or Welsh names of a review type, kept so analysts can still filter on them.
REVIEW_SUBTYPES = {"SCR": "CSPR", "CPR": "CSPR", "APR": "SAR", "DARDR": "DHR"}
SECTION_KINDS = (
    "front_matter",
    "introduction",
    "methodology",
    "family",
    "background",
    "chronology",
    "analysis",
    "findings",
    "recommendations",
    "appendix",
    "other",
)
PageStatus = Literal["ok", "ocr", "needs_ocr", "empty"]
PassageKind = Literal["paragraph", "table_row", "heading", "footnote", "list_item"]


@dataclass(frozen=True)
class TextSegment:
    """A horizontal run of text on one page, with its box in PDF points (origin top-left)."""

    text: str
    x0: float
    top: float
    x1: float
    bottom: float
    size: float = 0.0  # font size when the backend knows it; 0 when unknown
    bold: bool = False


@dataclass
class PageText:
    """One page after extraction and cleaning.

    `blocks` are the page's text blocks in reading order (headings, paragraphs, table rows,
    footnotes): running headers, footers and page numbers removed, hyphenation joined,
    whitespace normalised. `text` is the blocks joined by newlines.
    """

    number: int  # 1-based
    width: float
    height: float
    blocks: list[TextBlock] = field(default_factory=list)
    status: PageStatus = "ok"
    columns: int = 1
    removed: list[str] = field(default_factory=list)  # running headers/footers that were dropped

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self.blocks)


@dataclass
class TextBlock:
    """A paragraph-like block on a page, as laid out: one paragraph, heading, table row or footnote."""

    text: str
    kind: PassageKind = "paragraph"
    x0: float = 0.0
    top: float = 0.0
    size: float = 0.0
    bold: bool = False
    cells: list[str] | None = None  # for table rows
    continues: bool = False  # the paragraph runs on from the previous page or column


@dataclass
class ExtractedDocument:
    """A whole review as extracted: its pages and a little provenance."""

    path: str
    sha256: str
    backend: str  # registry name, e.g. "extract.pdfium.v1"
    pages: list[PageText]
    pdf_metadata: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def needs_ocr_pages(self) -> list[int]:
        return [p.number for p in self.pages if p.status == "needs_ocr"]


@dataclass
class Passage:
    """The unit of learning: one paragraph (or a sentence-bounded piece of a long one) or chronology row.

    Offsets index into the review's full text (`Segmentation.full_text`), so every character of a
    passage can be traced to its page.
    """

    ordinal: int
    text: str
    kind: PassageKind
    section: str  # the heading as printed, e.g. "5. Analysis of agency involvement"
    section_kind: str  # one of SECTION_KINDS
    paragraph: str | None  # the printed number, e.g. "5.3.2" or "Para 12"; None when unnumbered
    page_start: int
    page_end: int
    char_start: int
    char_end: int
    part: int = 0  # > 0 when a long paragraph was split: 1, 2, ...


@dataclass
class Segmentation:
    full_text: str
    passages: list[Passage]
    page_offsets: list[tuple[int, int, int]]  # (page number, char_start, char_end) in full_text


@dataclass
class ReviewMetadata:
    """What we know about a review and how we know it.

    Every field that could not be read is "unknown" (or None for numbers) with a reason in
    `unknown_reasons`, so nothing is guessed silently. `sources` says where each value came from:
    "manifest", "title_page", "filename", "pdf_metadata", "text".
    """

    review_type: str = "unknown"  # CSPR | SAR | DHR | MAPPA | unknown
    subtype: str | None = None  # SCR | CPR | APR | DARDR
    title: str = "unknown"
    subject: str = "unknown"
    year: int | None = None
    month: str | None = None
    area: str = "unknown"
    commissioner: str = "unknown"
    executive_summary: bool = False
    page_count: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    unknown_reasons: dict[str, str] = field(default_factory=dict)


# Tagging facets. Binary facets use the label "true" and carry the score of being true.
FACETS = ("practice", "vulnerability", "agency", "missed_opportunity", "police_relevant", "recommendation_to")


@dataclass(frozen=True)
class TagInput:
    """What a tagger sees of a passage: the text and the little context that changes its meaning."""

    text: str
    review_type: str = "unknown"
    section_kind: str = "other"
    kind: str = "paragraph"
    # The review the passage belongs to (any stable key; "" = unknown). Cross-validation while fitting holds
    # out whole reviews, so a model is never calibrated on passages of the review it is scored on.
    review: str = ""


@dataclass(frozen=True)
class TagResult:
    """One tag on one passage, with the evidence an analyst needs to trust or reject it."""

    facet: str  # one of FACETS
    label: str  # a taxonomy id, or "true" for binary facets
    score: float  # 0..1, calibrated where the method says so
    method: str  # the versioned registry name of the tagger, e.g. "tagger.rules.v1"
    evidence: str = ""  # the matched phrase, the sentence that carries it, or the nearest example
