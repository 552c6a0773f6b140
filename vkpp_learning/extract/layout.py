"""Page layout shared by every backend: running headers and footers, columns, tables, footnotes, blocks.

Input is positioned text runs (`RawPage`); output is each page's blocks in reading order. Everything is
decided from geometry and font size, never from a producer's quirks, so PDFium and pdfplumber agree.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from statistics import median

from vkpp_learning.extract.backends import RawPage
from vkpp_learning.extract.clean import collapse_spaces, join_lines, normalise
from vkpp_learning.records import TextBlock, TextSegment

CELL_GAP = 1.2  # a horizontal gap wider than this many font sizes separates table cells
MARGIN_BAND = 0.11  # running headers/footers live in the top and bottom 11% of a page
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?[-–(]?\s*\d{1,4}\s*[-–)]?(?:\s*(?:of|/)\s*\d{1,4})?$|^[ivxlc]{1,6}$", re.IGNORECASE
)
_PAGE_OF = re.compile(r"\bpage\s+\d{1,4}\s+(?:of|/)\s+\d{1,4}\b", re.IGNORECASE)
_FOOTNOTE_MARK = re.compile(r"^(?:\d{1,3}|[*†‡§])$")
_FOOTNOTE_START = re.compile(r"^(?:\d{1,3}|[*†‡§])(?:\s|$)")
_PARA_NUMBER = re.compile(r"^(?:\d{1,2}(?:\.\d{1,3}){1,3}\.?|Para(?:graph)?\.?\s*\d{1,4}\.?|\d{1,3}\.)\s")
_HANGING_NUMBER = re.compile(r"^(?:\d{1,2}(?:\.\d{1,3}){0,3}\.?|Para(?:graph)?\.?\s*\d{1,4}\.?)$", re.I)
_BULLET = re.compile(r"^[•●▪◦‣∙·\-–]\s")
_DOT_LEADER = re.compile(r"\s*\.{4,}\s*")
_TERMINAL = re.compile(r"[.:;?!)\"'”’]$")


@dataclass
class Line:
    segments: list[TextSegment]
    top: float = 0.0
    bottom: float = 0.0
    x0: float = 0.0
    x1: float = 0.0
    size: float = 0.0
    bold: bool = False
    cells: list[TextSegment] = field(default_factory=list)
    text: str = ""  # the runs' text, read several times per line while blocks are formed

    @classmethod
    def of(cls, segments: list[TextSegment]) -> Line:
        if len(segments) == 1:  # most lines are one run: nothing to sort or merge
            s = segments[0]
            return cls(segments, s.top, s.bottom, s.x0, s.x1, s.size, s.bold, text=collapse_spaces(s.text))
        segments = _merge_close(sorted(segments, key=lambda s: s.x0))
        main = max(segments, key=lambda s: len(s.text))
        return cls(
            segments,
            min(s.top for s in segments),
            max(s.bottom for s in segments),
            segments[0].x0,
            max(s.x1 for s in segments),
            main.size,
            all(s.bold for s in segments),
            text=" ".join(collapse_spaces(s.text) for s in segments),
        )


@dataclass
class DocumentStyle:
    """Facts about the whole document that single pages cannot tell reliably."""

    body_size: float
    vocab: set[str]


# --- running headers and footers ------------------------------------------------------------------


def _in_margin(seg: TextSegment, height: float) -> bool:
    return seg.bottom <= height * MARGIN_BAND or seg.top >= height * (1 - MARGIN_BAND)


def _margin_lines(page: RawPage) -> list[list[TextSegment]]:
    """The runs in the page's top and bottom bands, grouped into lines (a footer may be one run or
    several: "Review of Child T" + "Page 3 of 9", or one OCR line)."""
    lines: list[list[TextSegment]] = []
    for seg in sorted((s for s in page.segments if _in_margin(s, page.height)), key=lambda s: (s.top, s.x0)):
        if lines and abs(lines[-1][0].top - seg.top) < 3:
            lines[-1].append(seg)
        else:
            lines.append([seg])
    return [sorted(line, key=lambda s: s.x0) for line in lines]


def _line_key(line: list[TextSegment], height: float) -> tuple[str, int, str] | None:
    band = "top" if line[0].bottom <= height * MARGIN_BAND else "bottom"
    text = _DIGITS.sub("#", " ".join(collapse_spaces(s.text) for s in line).lower())
    if not any(c.isalpha() for c in text):
        return None  # bare numbers repeat by chance (hanging paragraph numbers); page numbers go separately
    return (band, round(line[0].top / 6), text)


def remove_running_text(pages: list[RawPage]) -> list[list[str]]:
    """Drop headers, footers and page numbers: lines in the page margins that repeat across pages
    (same text, digits aside, at about the same height), that carry "Page N of M", or that are bare
    page numbers. A footnote's number has its text beside it and stays.

    Returns, per page, the texts removed (kept on the page record so nothing disappears unseen).
    """
    counts: Counter[tuple[str, int, str]] = Counter()
    page_lines = [_margin_lines(page) for page in pages]
    for page, lines in zip(pages, page_lines, strict=True):
        counts.update({k for line in lines if (k := _line_key(line, page.height))})
    threshold = max(2, int(0.4 * len(pages)))
    removed: list[list[str]] = []
    for page, lines in zip(pages, page_lines, strict=True):
        drop: list[TextSegment] = []
        for line in lines:
            key = _line_key(line, page.height)
            text = " ".join(collapse_spaces(s.text) for s in line)
            repeated = key is not None and _near_count(counts, key) >= threshold
            if repeated or _PAGE_OF.search(text) or all(_PAGE_NUMBER.match(collapse_spaces(s.text)) for s in line):
                drop += line
        gone = {id(s) for s in drop}
        removed.append([collapse_spaces(s.text) for s in drop])
        page.segments = [s for s in page.segments if id(s) not in gone]
    return removed


def _near_count(counts: Counter[tuple[str, int, str]], key: tuple[str, int, str]) -> int:
    band, row, text = key
    return sum(counts[(band, r, text)] for r in (row - 1, row, row + 1))


def _merge_close(segments: list[TextSegment]) -> list[TextSegment]:
    """Join runs of one line separated by an ordinary word space (or the hole a dropped mark left),
    and a paragraph number hung in the margin to the text it numbers."""
    if _is_justified(segments):
        segments = [_joined(segments)]
    out = [segments[0]]
    for seg in segments[1:]:
        prev = out[-1]
        hanging = len(out) == 1 and _HANGING_NUMBER.match(prev.text.strip())
        gap = seg.x0 - prev.x1
        if hanging or gap < CELL_GAP * max(prev.size, seg.size, 6.0):
            left, right = collapse_spaces(prev.text), collapse_spaces(seg.text)
            text = left + ("" if _glued(left, right, gap, prev.size) else " ") + right
            out[-1] = TextSegment(
                text,
                prev.x0,
                min(prev.top, seg.top),
                seg.x1,
                max(prev.bottom, seg.bottom),
                max(prev.size, seg.size),
                prev.bold and seg.bold,
            )
        else:
            out.append(seg)
    return out


_SPACE_AFTER_OPENING = re.compile(r"(^|\s)(['‘\"“])\s+(?=\w)")
_OPENING = re.compile(r"(?:^|\s)['‘\"“(\[]$")


def _glued(left: str, right: str, gap: float, size: float) -> bool:
    """Runs split at a quote or punctuation mark by a glyph change join with no space: "'" + "Jay'"."""
    if gap > 0.1 * max(size, 6.0):
        return False
    return bool(_OPENING.search(left)) or right[:1] in ",.;:!?)]’”"


def _is_justified(segments: list[TextSegment]) -> bool:
    """A justified line that a backend split into words: every gap wide, but all about the same and
    under four font sizes (table cells leave unequal gaps, or wider ones)."""
    # Stretched word spaces leave each word a run of its own; a table cell usually holds several words.
    if len(segments) < 3 or any(" " in collapse_spaces(s.text) for s in segments):
        return False
    size = max(max(s.size for s in segments), 6.0)
    gaps = [b.x0 - a.x1 for a, b in itertools.pairwise(segments)]
    return min(gaps) >= CELL_GAP * size and max(gaps) < 4 * size and max(gaps) <= 1.5 * min(gaps)


def _joined(segments: list[TextSegment]) -> TextSegment:
    first = segments[0]
    return TextSegment(
        " ".join(collapse_spaces(s.text) for s in segments),
        first.x0,
        min(s.top for s in segments),
        segments[-1].x1,
        max(s.bottom for s in segments),
        max(s.size for s in segments),
        all(s.bold for s in segments),
    )


# --- document style ----------------------------------------------------------------------------------


def document_style(pages: list[RawPage]) -> DocumentStyle:
    from vkpp_learning.extract.clean import vocabulary

    sizes: Counter[float] = Counter()
    for page in pages:
        for seg in page.segments:
            if seg.size:
                sizes[seg.size] += len(seg.text)
    body = sizes.most_common(1)[0][0] if sizes else 10.0
    return DocumentStyle(body_size=body, vocab=vocabulary(s.text for p in pages for s in p.segments))


# --- one page ------------------------------------------------------------------------------------------


def layout_page(page: RawPage, style: DocumentStyle) -> tuple[list[TextBlock], int]:
    """A page's blocks in reading order, and how many text columns its body has."""
    segments = _drop_reference_marks([_clean(s) for s in page.segments if s.text.strip()], style)
    segments = [s for s in segments if s.text]
    if not segments:
        return [], 1
    gutter = _find_gutter(segments, page.width)
    if gutter is None:
        return _blocks(_lines(segments), style), 1
    blocks: list[TextBlock] = []
    for band in _bands(segments, gutter):
        if band[0] == "full":
            blocks += _blocks(_lines(band[1]), style)
        else:
            left, right = band[1], band[2]
            blocks += _blocks(_lines(left), style)
            right_blocks = _blocks(_lines(right), style)
            if right_blocks and blocks and _continues(blocks[-1], right_blocks[0]):
                right_blocks[0].continues = True
            blocks += right_blocks
    return blocks, 2


def _clean(seg: TextSegment) -> TextSegment:
    text = normalise(seg.text).replace("\n", " ")
    if "...." in text:  # the passes run only where they can match: most runs have no leader or quote
        text = _DOT_LEADER.sub(" ", text)
    # PDFium generates a space after an opening quote whose glyph leaves a gap: "' Jay'" -> "'Jay'".
    if "'" in text or "‘" in text or '"' in text or "“" in text:
        text = _SPACE_AFTER_OPENING.sub(r"\1\2", text)
    return TextSegment(collapse_spaces(text), seg.x0, seg.top, seg.x1, seg.bottom, seg.size, seg.bold)


def _drop_reference_marks(segments: list[TextSegment], style: DocumentStyle) -> list[TextSegment]:
    """Remove in-text footnote reference marks (small raised digits right after a word).

    A raised digit that starts a line is the number of the footnote itself and is kept.
    """
    keep = []
    for seg in segments:
        if _is_reference_mark(seg, segments, style):
            continue
        keep.append(seg)
    return keep


def _is_reference_mark(seg: TextSegment, segments: list[TextSegment], style: DocumentStyle) -> bool:
    text = seg.text.strip()
    if not _FOOTNOTE_MARK.match(text) or not seg.size or seg.size > 0.85 * style.body_size:
        return False
    for other in segments:
        if other is seg or other.size <= seg.size:
            continue
        raised = other.top < seg.bottom < other.bottom - 0.8 and seg.top < other.top + 1
        if raised and -1.5 <= seg.x0 - other.x1 <= 3.0:
            return True
    return False


def _find_gutter(segments: list[TextSegment], width: float) -> float | None:
    """The x of a two-column gutter, when the body text is set in two columns."""
    first, last = math.ceil(width * 0.35), int(width * 0.65)  # the x a gutter may have
    if first >= 1 and _gutter_ruled_out(segments, first, last):
        return None
    candidates = _gutter_candidates(segments, width, first, last)
    if not candidates:
        return None
    # The gutter is the middle of the widest stretch of x that the fewest runs cross.
    fewest = min(c for c, _ in candidates)
    runs: list[list[int]] = []
    for c, x in candidates:
        if c == fewest:
            if runs and x == runs[-1][-1] + 1:
                runs[-1].append(x)
            else:
                runs.append([x])
    widest = max(runs, key=len)
    best = (fewest, widest[len(widest) // 2])
    x = float(best[1])
    left = [s for s in segments if s.x1 <= x]
    right = [s for s in segments if s.x0 >= x]
    if len(left) < 6 or len(right) < 6:
        return None
    # Table cells also leave a gap; real columns are filled almost to the gutter on most lines.
    left_span = x - min(s.x0 for s in left)
    right_span = max(s.x1 for s in right) - x
    # Lines of a real left column mostly run almost to the gutter; the date and agency cells of a
    # chronology table end wherever their text ends, and its wrapped event cells outnumber them.
    left_lines, right_lines = _line_extents(left), _line_extents(right)
    near_gutter = sum(1 for _, x1 in left_lines if x1 >= x - 0.25 * left_span) / len(left_lines)
    right_full = median(x1 - x0 for x0, x1 in right_lines) >= 0.6 * right_span
    balanced = 0.5 <= len(left_lines) / len(right_lines) <= 2.0
    return x if near_gutter >= 0.6 and right_full and balanced and _cell_share(left) < 0.3 else None


def _gutter_candidates(segments: list[TextSegment], width: float, first: int, last: int) -> list[tuple[int, int]]:
    """(runs crossing x, x) for each whole x in [first, last] that few runs cross, with runs ending
    before it and starting after it."""
    n = int(width) + 2
    crossing = [0] * n  # a difference array: runs covering each whole point of x
    ends = [0] * n  # runs ending at or before x
    starts = [0] * n  # runs starting at or after x
    for s in segments:
        lo, hi = max(0, int(s.x0) + 1), min(n - 1, int(s.x1))
        if lo < hi:
            crossing[lo] += 1
            crossing[hi] -= 1
        # Clamped to the page: a run off its left or right edge must neither wrap round nor overflow.
        ends[min(n - 1, max(0, int(s.x1) + 1))] += 1
        starts[min(n - 1, max(0, int(s.x0)))] += 1
    # Running sums (in C) give, at each x, the runs covering it, ended by it and started before it.
    covering, ended = list(itertools.accumulate(crossing)), list(itertools.accumulate(ends))
    started_before = [0, *itertools.accumulate(starts)]
    candidates = []
    for x in range(first, last + 1):
        started_after = len(segments) - started_before[x]
        if ended[x] >= 6 and started_after >= 6 and covering[x] <= 0.25 * (ended[x] + started_after):
            candidates.append((covering[x], x))
    return candidates


def _gutter_ruled_out(segments: list[TextSegment], first: int, last: int) -> bool:
    """Whether _gutter_candidates will find none, told in one pass (most pages are one column): the runs
    spanning the whole range cross every x in it, and no more runs end before an x than end before
    `last`, nor start after it than start after `first`."""
    spanning = ended = started = 0
    for s in segments:  # whole points, as in _gutter_candidates' arrays
        x0, x1 = int(s.x0), int(s.x1)
        spanning += x0 < first and x1 > last
        ended += x1 < last
        started += x0 >= first
    return ended < 6 or started < 6 or spanning > 0.25 * (ended + started)


def _cell_share(segments: list[TextSegment]) -> float:
    """Share of lines made of separate cells (runs a cell gap apart): high for a table, nil for prose."""
    by_line: dict[int, list[TextSegment]] = {}
    for s in segments:
        by_line.setdefault(round(s.bottom / 3), []).append(s)
    cells = 0
    for runs in by_line.values():
        runs.sort(key=lambda r: r.x0)
        if any(b.x0 - a.x1 >= CELL_GAP * max(a.size, 6.0) for a, b in itertools.pairwise(runs)):
            cells += 1
    return cells / max(len(by_line), 1)


def _line_extents(segments: list[TextSegment]) -> list[tuple[float, float]]:
    """(x0, x1) of each text line (runs sharing a baseline), whatever the backend's run granularity."""
    lines: dict[int, tuple[float, float]] = {}
    for s in segments:
        key = round(s.bottom / 3)
        x0, x1 = lines.get(key, (s.x0, s.x1))
        lines[key] = (min(x0, s.x0), max(x1, s.x1))
    return list(lines.values())


def _bands(segments: list[TextSegment], gutter: float) -> list[tuple]:
    """Split a two-column page at full-width runs (title, spanning heading, wide table) into bands."""
    full = sorted((s for s in segments if s.x0 < gutter < s.x1), key=lambda s: s.top)
    cuts = _merge_spans([(s.top, s.bottom) for s in full])
    bands: list[tuple] = []
    edges = [(-1e9, -1e9), *cuts, (1e9, 1e9)]
    for (_, prev_bottom), (next_top, next_bottom) in itertools.pairwise(edges):
        inside = [s for s in segments if prev_bottom <= s.top < next_top and not s.x0 < gutter < s.x1]
        if inside:
            bands.append(("cols", [s for s in inside if s.x1 <= gutter], [s for s in inside if s.x0 >= gutter]))
        spanning = [s for s in full if next_top <= s.top <= next_bottom]
        if spanning:
            bands.append(("full", spanning))
    return bands


def _merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for top, bottom in sorted(spans):
        if merged and top <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], bottom))
        else:
            merged.append((top, bottom))
    return merged


def _lines(segments: list[TextSegment]) -> list[Line]:
    """Group runs into lines: runs whose vertical middles fall within the current line's extent."""
    lines: list[list[TextSegment]] = []
    top = bottom = 0.0  # the extent of the last line so far
    for seg in sorted(segments, key=lambda s: (s.top + s.bottom) / 2):
        middle = (seg.top + seg.bottom) / 2
        if lines and top <= middle <= bottom and not any(_overlaps_x(seg, s) for s in lines[-1]):
            lines[-1].append(seg)
            top, bottom = min(top, seg.top), max(bottom, seg.bottom)
            continue
        lines.append([seg])
        top, bottom = seg.top, seg.bottom
    return [Line.of(group) for group in lines]


def _overlaps_x(a: TextSegment, b: TextSegment) -> bool:
    return a.x0 < b.x1 - 1 and b.x0 < a.x1 - 1


# --- blocks ---------------------------------------------------------------------------------------------


def _typical_gap(lines: list[Line], style: DocumentStyle) -> float:
    """The usual space between lines of one paragraph here (most line pairs are inside a paragraph)."""
    gaps = [b.top - a.bottom for a, b in itertools.pairwise(lines) if 0 <= b.top - a.bottom < 2 * style.body_size]
    return median(gaps) if len(gaps) >= 3 else 0.2 * style.body_size


def _blocks(lines: list[Line], style: DocumentStyle) -> list[TextBlock]:
    blocks: list[TextBlock] = []
    typical = _typical_gap(lines, style)
    i = 0
    while i < len(lines):
        table_end = _table_extent(lines, i, style)
        if table_end > i:
            blocks += _table_rows(lines[i:table_end], style)
            i = table_end
            continue
        group = [lines[i]]
        i += 1
        while (
            i < len(lines)
            and not _starts_block(group, lines[i], style, typical)
            and _table_extent(lines, i, style) == i
        ):
            group.append(lines[i])
            i += 1
        blocks.append(_text_block(group, style))
    return blocks


def _gap(prev: Line, line: Line) -> float:
    return line.top - prev.bottom


def _starts_block(group: list[Line], line: Line, style: DocumentStyle, typical: float) -> bool:
    prev = group[-1]
    size = style.body_size
    if abs(line.size - prev.size) > 0.6 or line.bold != prev.bold:
        return True
    # Paragraph spacing is extra space on top of the usual leading; large type (titles, headings) is
    # set with more leading, so its wrapped lines sit further apart.
    extra = 0.6 if line.size >= size + 1.5 else 0.35
    if _gap(prev, line) > max(typical, 0.0) + extra * max(size, line.size, prev.size):
        return True
    text = line.text
    if _PARA_NUMBER.match(text) and (_TERMINAL.search(prev.text) or line.x0 < group[0].x0 - 2):
        return True
    if _BULLET.match(text) or _is_footnote_start(line, style):
        return True
    # A first-line indent, or text that starts left of an indented paragraph's continuation.
    return bool(len(group) > 1 and line.x0 > group[-1].x0 + 8 and _TERMINAL.search(prev.text))


def _is_footnote_start(line: Line, style: DocumentStyle) -> bool:
    first = line.segments[0].text
    small = line.size and line.size <= 0.9 * style.body_size
    return bool(small and _FOOTNOTE_START.match(first))


def _text_block(group: list[Line], style: DocumentStyle) -> TextBlock:
    text = join_lines([line.text for line in group], style.vocab)
    first = group[0]
    kind = "paragraph"
    if _is_footnote_start(first, style):
        kind = "footnote"
    elif _looks_like_heading(group, text, style):
        kind = "heading"
    elif _BULLET.match(text):
        kind = "list_item"
    return TextBlock(text, kind, first.x0, first.top, first.size, all(g.bold for g in group))


def _looks_like_heading(group: list[Line], text: str, style: DocumentStyle) -> bool:
    if len(group) > 3 or len(text) > 160 or not text:
        return False
    bigger = group[0].size >= style.body_size + 1.0
    bold = all(g.bold for g in group)
    return (bigger or bold) and not text.endswith((".", ",", ";"))


# --- tables ---------------------------------------------------------------------------------------------


def _is_table_line(line: Line, style: DocumentStyle) -> bool:
    if len(line.segments) < 2:
        return False
    gaps = [b.x0 - a.x1 for a, b in zip(line.segments, line.segments[1:], strict=False)]
    return min(gaps) >= CELL_GAP * style.body_size


def _table_extent(lines: list[Line], start: int, style: DocumentStyle) -> int:
    """Index after the last line of a table starting at `start`, or `start` when no table starts there.

    A table is at least two lines with two or more cells whose left edges line up; continuation lines
    (a wrapped cell) belong to it while they sit inside its columns and close below the previous line.
    """
    if not _is_table_line(lines[start], style):
        return start
    anchors = [s.x0 for s in lines[start].segments]
    end = start + 1
    rows_with_cells = 1
    while end < len(lines):
        line = lines[end]
        if _gap(lines[end - 1], line) > 1.6 * style.body_size or line.x0 < anchors[0] - 4:
            break
        if not all(any(abs(s.x0 - a) < 4 for a in anchors) or s.x0 > anchors[1] - 4 for s in line.segments):
            break
        # A table's columns recur: a justified line's wide word gaps fall anywhere and do not.
        aligned = sum(1 for s in line.segments if any(abs(s.x0 - a) < 4 for a in anchors))
        if _is_table_line(line, style) and aligned >= 2:
            rows_with_cells += 1
        end += 1
    return end if rows_with_cells >= 2 else start


def _table_rows(lines: list[Line], style: DocumentStyle) -> list[TextBlock]:
    anchors = sorted({round(s.x0) for line in lines if _is_table_line(line, style) for s in line.segments})
    anchors = _cluster(anchors)
    rows: list[list[list[str]]] = []
    tops: list[float] = []
    for line in lines:
        if not rows or any(abs(s.x0 - anchors[0]) < 4 for s in line.segments):
            rows.append([[] for _ in anchors])
            tops.append(line.top)
        for seg in line.segments:
            column = max(i for i, a in enumerate(anchors) if seg.x0 >= a - 4) if seg.x0 >= anchors[0] - 4 else 0
            rows[-1][column].append(seg.text)
    blocks = []
    for cells_lines, top in zip(rows, tops, strict=True):
        cells = [join_lines(c, style.vocab) for c in cells_lines]
        text = " ".join(c for c in cells if c)
        blocks.append(TextBlock(text, "table_row", anchors[0], top, style.body_size, False, cells))
    return blocks


def _cluster(xs: list[int]) -> list[float]:
    out: list[list[int]] = []
    for x in xs:
        if out and x - out[-1][-1] < 6:
            out[-1].append(x)
        else:
            out.append([x])
    return [float(min(c)) for c in out]


def _continues(prev: TextBlock, block: TextBlock) -> bool:
    """Does `block` carry on the paragraph `prev` (split by a column or page break)?"""
    if prev.kind != "paragraph" or block.kind != "paragraph" or _PARA_NUMBER.match(block.text):
        return False
    return not _TERMINAL.search(prev.text) or block.text[:1].islower()


def mark_continuations(pages_blocks: list[list[TextBlock]]) -> None:
    """Flag the first paragraph of a page that carries on the last paragraph of the page before."""
    prev: TextBlock | None = None
    for blocks in pages_blocks:
        body = [b for b in blocks if b.kind != "footnote"]
        if prev is not None and body and _continues(prev, body[0]):
            body[0].continues = True
        if body:
            prev = body[-1]
