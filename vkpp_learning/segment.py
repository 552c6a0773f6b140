"""Segmentation: a review's page blocks to sections and passages that keep page, paragraph and offsets.

A passage is one printed paragraph (a long one split on spaCy sentence boundaries, small fragments
merged back) or one chronology table row. Headings become sections mapped to canonical kinds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vkpp_learning.records import ExtractedDocument, Passage, Segmentation, TextBlock

MAX_WORDS = 220  # longer paragraphs are split on sentence boundaries
TARGET_WORDS = 150
MIN_FRAGMENT_WORDS = 40  # a piece shorter than this is merged into its neighbour

# The first rule whose pattern a heading matches gives its section kind. Order matters: "analysis of
# agency involvement" is analysis, "family background" is family.
SECTION_RULES: tuple[tuple[str, str], ...] = (
    ("front_matter", r"\bcontents\b|\bforeword\b|\bpreface\b"),
    ("recommendation", r"recommendation"),
    ("appendix", r"\bappendi|\bannex|\bglossary|\breferences\b|\bbibliograph|\babbreviations|\bacronyms"),
    ("chronology", r"\bchronolog|\btimeline|\bsequence of events|\bkey events"),
    ("family", r"\bfamily\b|\bfamilies\b|\bviews of\b|\bperspective of\b|\bcontribution of\b"),
    ("methodology", r"\bmethod|\bapproach\b|\bprocess of the review|\bthe review process|\bcontributors|\bpanel\b"),
    (
        "analysis",
        r"\banalysis|\bpractice episode|\bagency involvement|\bappraisal|\bdiscussion|\bkey issues|"
        r"\bkey lines of enquiry|\bpractice issues|\bthemes\b|\bconsideration of",
    ),
    ("findings", r"\bfinding|\blearning|\blessons|\bconclusion|\bgood practice|\bsummary of learning"),
    (
        "background",
        r"\bbackground|\bsummary of the case|\bcase summary|\bthe case\b|\bhistory|\bpen picture|"
        r"\babout\b|\bcircumstances|\bsummary of events|\bfacts\b",
    ),
    ("introduction", r"\bintroduction|\bterms of reference|\bscope\b|\bpurpose|\bexecutive summary|\bpreamble"),
)
_SECTION_PATTERNS = [
    (kind if kind != "recommendation" else "recommendations", re.compile(p, re.I)) for kind, p in SECTION_RULES
]

_PARA_NUMBER = re.compile(
    r"^(?P<num>\d{1,2}(?:\.\d{1,3}){1,3}|Para(?:graph)?\.?\s*\d{1,4}|\d{1,3}(?=\.\s))\.?\s+(?=\S)", re.I
)
_TOP_HEADING = re.compile(r"^(?:section\s+)?\d{1,2}\.?\s+\S|^(?:part|section|chapter)\s+\w+", re.I)
_HEADER_CELLS = {
    "date",
    "agency",
    "event",
    "events",
    "source",
    "time",
    "details",
    "description",
    "organisation",
    "key event",
    "date(s)",
    "agency/source",
    "summary",
}


@dataclass
class _Piece:
    """A paragraph or table row in document order, possibly assembled from blocks on several pages."""

    text: str
    kind: str
    page_start: int
    page_end: int
    char_start: int
    char_end: int
    section: str
    section_kind: str
    paragraph: str | None = None
    parts: list[tuple[str, int]] = field(default_factory=list)


def section_kind(heading: str) -> str | None:
    """The canonical kind a heading names, or None when it names none (e.g. a sub-heading)."""
    text = _PARA_NUMBER.sub("", heading).strip()
    for kind, pattern in _SECTION_PATTERNS:
        if pattern.search(text):
            return kind
    return None


def paragraph_number(text: str) -> tuple[str | None, str]:
    """Split a printed paragraph number from the text: "4.12 The officers..." -> ("4.12", "The officers...")."""
    match = _PARA_NUMBER.match(text)
    if not match:
        return None, text
    number = re.sub(r"\s+", " ", match.group("num"))
    if number.lower().startswith("para"):
        number = "Para " + re.sub(r"\D", "", number)
    return number, text[match.end() :]


def segment(doc: ExtractedDocument) -> Segmentation:
    full_text, placed, page_offsets = _lay_out_full_text(doc)
    pieces = _pieces(placed)
    passages: list[Passage] = []
    for piece in pieces:
        for part_no, (text, start, end) in enumerate(_split_long(piece), start=1):
            passages.append(
                Passage(
                    ordinal=len(passages),
                    text=text,
                    kind=piece.kind,  # type: ignore[arg-type]
                    section=piece.section,
                    section_kind=piece.section_kind,
                    paragraph=piece.paragraph,
                    page_start=_page_at(page_offsets, start),
                    page_end=_page_at(page_offsets, max(start, end - 1)),
                    char_start=start,
                    char_end=end,
                    part=part_no if _is_split(piece) else 0,
                )
            )
    return Segmentation(full_text, passages, page_offsets)


def _lay_out_full_text(doc: ExtractedDocument) -> tuple[str, list[tuple[TextBlock, int, int, int]], list]:
    """Full text is the pages' blocks joined by newlines, pages separated by a form feed."""
    chunks: list[str] = []
    placed: list[tuple[TextBlock, int, int, int]] = []
    page_offsets: list[tuple[int, int, int]] = []
    pos = 0
    for page in doc.pages:
        page_start = pos
        for block in page.blocks:
            chunks.append(block.text)
            placed.append((block, page.number, pos, pos + len(block.text)))
            pos += len(block.text)
            chunks.append("\n")
            pos += 1
        page_offsets.append((page.number, page_start, pos))
        chunks.append("\f")
        pos += 1
    return "".join(chunks), placed, page_offsets


def _pieces(placed: list[tuple[TextBlock, int, int, int]]) -> list[_Piece]:
    pieces: list[_Piece] = []
    section, kind = "Front matter", "front_matter"
    open_para: _Piece | None = None
    table_header: str | None = None
    for block, page, start, end in placed:
        if _is_heading(block):
            named = section_kind(block.text)
            if named or _TOP_HEADING.match(block.text) or kind == "front_matter":
                section, kind = block.text, named or "other"
            open_para, table_header = None, None
            continue
        if block.kind == "table_row":
            if table_header is None or block.text == table_header:
                if table_header is None and _is_header_row(block):
                    table_header = block.text
                    continue
                if block.text == table_header:
                    continue
            if kind == "front_matter":
                continue  # a contents page laid out as a table
            pieces.append(_Piece(block.text, "table_row", page, page, start, end, section, kind))
            open_para = None
            continue
        if block.continues and open_para is not None:
            open_para.text = _join(open_para.text, block.text)
            open_para.parts.append((block.text, start))
            open_para.page_end, open_para.char_end = page, end
            continue
        number, text = paragraph_number(block.text)
        offset = start + len(block.text) - len(text)
        piece = _Piece(text, block.kind, page, page, offset, end, section, kind, number, [(text, offset)])
        if kind == "front_matter" and len(text.split()) < 15:
            open_para = None
            continue  # title-page lines and the like are metadata, not learning
        pieces.append(piece)
        open_para = piece if block.kind == "paragraph" else None
    return pieces


def _is_heading(block: TextBlock) -> bool:
    text = block.text
    # A heading opens with a capital or its number and is short; a line of running text that looks
    # large (an OCR line, whose size is only estimated) is not one.
    if (not text[:1].isupper() and not text[:1].isdigit()) or len(text.split()) > 14:
        return False
    if block.kind == "heading":
        return True
    # A numbered section heading set in body type: "5 Analysis" with no full stop and few words.
    return (
        block.kind == "paragraph"
        and len(text.split()) <= 8
        and not text.endswith((".", ",", ";", ":"))
        and bool(_TOP_HEADING.match(text))
        and section_kind(text) is not None
    )


def _is_header_row(block: TextBlock) -> bool:
    cells = [c.strip().lower() for c in (block.cells or []) if c.strip()]
    return bool(cells) and sum(c in _HEADER_CELLS for c in cells) >= max(1, len(cells) - 1)


def _join(a: str, b: str) -> str:
    if a.endswith("-") and b[:1].islower():
        return a[:-1] + b
    return a + " " + b


def _is_split(piece: _Piece) -> bool:
    return len(piece.text.split()) > MAX_WORDS


def _split_long(piece: _Piece) -> list[tuple[str, int, int]]:
    """The passage texts of a piece with their offsets in the full text."""
    if not _is_split(piece):
        return [(piece.text, piece.char_start, piece.char_end)]
    sentences = _sentences(piece.text)
    chunks: list[list[tuple[int, int]]] = [[]]
    words = 0
    for start, end in sentences:
        n = len(piece.text[start:end].split())
        if chunks[-1] and words + n > TARGET_WORDS:
            chunks.append([])
            words = 0
        chunks[-1].append((start, end))
        words += n
    if len(chunks) > 1 and sum(len(piece.text[s:e].split()) for s, e in chunks[-1]) < MIN_FRAGMENT_WORDS:
        chunks[-2].extend(chunks.pop())
    return [_locate(piece, chunk[0][0], chunk[-1][1]) for chunk in chunks]


def _locate(piece: _Piece, start: int, end: int) -> tuple[str, int, int]:
    """Map offsets in a piece's joined text back to the full text (pieces may span page breaks)."""
    text = piece.text[start:end].strip()
    return text, _full_offset(piece, start), _full_offset(piece, end)


def _full_offset(piece: _Piece, offset: int) -> int:
    consumed = 0
    for i, (part_text, part_start) in enumerate(piece.parts):
        sep = 0 if i == 0 else 1
        if offset <= consumed + sep + len(part_text):
            return part_start + max(0, offset - consumed - sep)
        consumed += sep + len(part_text)
    return piece.char_end


def _page_at(page_offsets: list[tuple[int, int, int]], pos: int) -> int:
    for number, start, end in page_offsets:
        if start <= pos < end:
            return number
    return page_offsets[-1][0] if page_offsets else 1


def _sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans from the same spaCy pipeline the taggers use (loaded once per process)."""
    from vkpp_learning.tagging.nlp import load_nlp

    return [(s.start_char, s.end_char) for s in load_nlp()(text).sents]
