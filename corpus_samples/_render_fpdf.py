"""Renders a review plan with fpdf2, laying lines out ourselves (ragged right, hanging paragraph
numbers, one or two columns, bordered table cells) so the renderer knows exactly which word of which
block lands on which page. Built until the contents, page count and footnote space settle.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _render_common import (
    TTF,
    Block,
    Layout,
    LayoutPass,
    PassState,
    Piece,
    Plan,
    ScanStyle,
    author_name,
    column_widths,
    contents_blocks,
    creation_date,
    footer_text,
    iter_body_runs,
    render_until_settled,
    scan_image,
    scan_pieces,
)
from fpdf import FPDF

PAGE_W, PAGE_H = 595.28, 841.89  # A4 in points
MARGIN = {"left": 62.0, "right": 62.0, "top": 74.0, "bottom": 70.0}
GUTTER = 20.0


@dataclass
class Line:
    words: list[str]
    first: int  # index in block.words of the line's first word


class ReviewPDF(FPDF):
    """FPDF with our running header, footer and page-foot footnotes."""

    def __init__(self, plan: Plan, state: PassState) -> None:
        super().__init__(orientation="P", unit="pt", format="A4")
        self.plan, self.state = plan, state
        self.family = "DejaVuSerif" if plan.render["font"] == "serif" else "LiberationSans"
        for style in ("", "B", "I", "BI"):
            self.add_font(self.family, style, str(TTF[(self.family, style)]))
        self.set_auto_page_break(False)
        self.set_margins(MARGIN["left"], MARGIN["top"], MARGIN["right"])
        self.size = 10.0 if plan.render["font"] == "serif" else 10.5
        self.lead = self.size * 1.38
        self.plain_pages: set[int] = {1}  # the title page and the scanned page carry no running text
        self.notes: dict[int, list[Block]] = {}
        self.pieces: dict[int, list[Piece]] = {}

    def header(self) -> None:
        if self.page_no() in self.plain_pages or not self.plan.render.get("header"):
            return
        self.set_font(self.family, "", 8.5)
        text = self.plan.render["header"]
        self.text((PAGE_W - self.get_string_width(text)) / 2, 38, text)

    def footer(self) -> None:
        page = self.page_no()
        self._draw_notes(page)
        if page in self.plain_pages:
            return
        left, right = footer_text(self.plan, page, self.state.total)
        self.set_font(self.family, "", 8)
        self.set_line_width(0.4)
        self.line(MARGIN["left"], PAGE_H - 48, PAGE_W - MARGIN["right"], PAGE_H - 48)
        self.text(PAGE_W - MARGIN["right"] - self.get_string_width(right), PAGE_H - 36, right)
        if left:
            self.text(MARGIN["left"], PAGE_H - 36, left[:95])

    # -- footnotes

    def note_lines(self, note: Block) -> list[Line]:
        self.set_font(self.family, "", 7.5)
        return wrap(self, note.body.split(), PAGE_W - MARGIN["left"] - MARGIN["right"] - 10)

    def notes_height(self, notes: list[Block]) -> float:
        return 8 + sum(len(self.note_lines(n)) * 9.5 + 2 for n in notes)

    def _draw_notes(self, page: int) -> None:
        notes = self.notes.get(page, [])
        if not notes:
            return
        y = PAGE_H - MARGIN["bottom"] - self.notes_height(notes) + 6
        self.set_line_width(0.5)
        self.line(MARGIN["left"], y, MARGIN["left"] + 140, y)
        y += 4
        for note in notes:
            lines = self.note_lines(note)
            self.set_font(self.family, "", 5.5)
            self.text(MARGIN["left"], y + 5, str(note.footnote))
            self.set_font(self.family, "", 7.5)
            for line in lines:
                self.text(MARGIN["left"] + 8, y + 7, " ".join(line.words))
                y += 9.5
            y += 2
        self.pieces.setdefault(page, []).extend(Piece(n) for n in notes)


def wrap(pdf: FPDF, words: list[str], width: float, first: int = 0) -> list[Line]:
    """Greedy line breaking at spaces with the current font; `first` offsets the word indices."""
    lines: list[Line] = []
    current: list[str] = []
    start = first
    space = pdf.get_string_width(" ")
    used = 0.0
    for i, word in enumerate(words):
        w = pdf.get_string_width(word)
        if current and used + space + w > width:
            lines.append(Line(current, start))
            current, start, used = [], first + i, 0.0
        used += (space if current else 0) + w
        current.append(word)
    if current:
        lines.append(Line(current, start))
    return lines


class Flow:
    """Places blocks into frames (one or two columns), page after page, recording the pieces."""

    def __init__(self, pdf: ReviewPDF, columns: int) -> None:
        self.pdf, self.columns = pdf, columns
        self.col, self.y = 0, MARGIN["top"]
        self.widths: dict[int, list[float]] = {}

    @property
    def page(self) -> int:
        return self.pdf.page_no()

    def x(self) -> float:
        return MARGIN["left"] + self.col * (self.width() + GUTTER)

    def width(self) -> float:
        full = PAGE_W - MARGIN["left"] - MARGIN["right"]
        return full if self.columns == 1 else (full - GUTTER) / 2

    def bottom(self) -> float:
        return PAGE_H - MARGIN["bottom"] - self.pdf.state.reserve.get(self.page, 0.0)

    def new_page(self) -> None:
        self.pdf.add_page()
        self.col, self.y = 0, MARGIN["top"]

    def next_frame(self) -> None:
        if self.col + 1 < self.columns:
            self.col, self.y = self.col + 1, MARGIN["top"]
        else:
            self.new_page()

    def at_top(self) -> bool:
        return self.y <= MARGIN["top"] + 0.01

    def ensure(self, height: float) -> None:
        if self.y + height > self.bottom() and not self.at_top():
            self.next_frame()

    def record(self, piece: Piece) -> None:
        self.pdf.pieces.setdefault(self.page, []).append(piece)

    # -- blocks

    def heading(self, block: Block, size: float, style: str, keep: float) -> None:
        self.pdf.set_font(self.pdf.family, style, size)
        lines = wrap(self.pdf, block.words, self.width())
        self.y += 0 if self.at_top() else size * 0.8
        self.ensure(len(lines) * size * 1.3 + keep)
        for line in lines:
            self.pdf.text(self.x(), self.y + size, " ".join(line.words))
            self.y += size * 1.3
        self.y += size * 0.45
        self.record(Piece(block))

    def paragraph(self, block: Block) -> None:
        pdf = self.pdf
        indent = 0.0
        n_number = len(block.number.split()) if block.number else 0
        if block.number:
            pdf.set_font(pdf.family, "B", pdf.size)
            indent = max(30.0, pdf.get_string_width(block.number) + 8)
        pdf.set_font(pdf.family, "", pdf.size)
        lines = wrap(pdf, block.words[n_number:], self.width() - indent, first=n_number)
        self.ensure(min(2, len(lines)) * pdf.lead)  # no orphaned first line
        start = 0
        for k, line in enumerate(lines):
            if self.y + pdf.lead > self.bottom():
                if self.col + 1 >= self.columns:  # a page break, not just the next column
                    self.record(Piece(block, start, line.first))
                    start = line.first
                self.next_frame()
            if k == 0 and block.number:
                pdf.set_font(pdf.family, "B", pdf.size)
                pdf.text(self.x(), self.y + pdf.size, block.number)
                pdf.set_font(pdf.family, "", pdf.size)
            text = " ".join(line.words)
            pdf.text(self.x() + indent, self.y + pdf.size, text)
            if k == len(lines) - 1 and block.footnote:
                self._mark(block, self.x() + indent + pdf.get_string_width(text))
            self.y += pdf.lead
        self.record(Piece(block, start, None))
        self.y += pdf.size * 0.55

    def _mark(self, block: Block, x: float) -> None:
        pdf = self.pdf
        pdf.set_font(pdf.family, "", pdf.size * 0.6)
        pdf.text(x + 0.5, self.y + pdf.size * 0.45, str(block.footnote))
        pdf.set_font(pdf.family, "", pdf.size)
        pdf.notes.setdefault(self.page, []).append(pdf.plan.footnotes[block.footnote or 0])

    def table(self, blocks: list[Block]) -> None:
        header, rows = blocks[0], blocks[1:]
        self.pdf.set_font(self.pdf.family, "B", self.pdf.size - 1.5)
        cells = [header.cells or [], *[row.cells or [] for row in rows]]
        self.widths[header.table or 0] = column_widths(cells, self.width(), self.pdf.get_string_width, 7)
        self.ensure(self._row_height(header, True) + self._row_height(rows[0], False))
        self._row(header, True)
        for row in rows:
            height = self._row_height(row, False)
            if self.y + height > self.bottom():
                self.next_frame()
                self._row(header, True)
            self._row(row, False)
        self.y += 8

    def _cells(self, block: Block, bold: bool) -> tuple[list[float], list[list[Line]]]:
        widths = self.widths[block.table or 0]
        self.pdf.set_font(self.pdf.family, "B" if bold else "", self.pdf.size - 1.5)
        return widths, [wrap(self.pdf, c.split(), w - 6) for c, w in zip(block.cells or [], widths, strict=True)]

    def _row_height(self, block: Block, bold: bool) -> float:
        _, cells = self._cells(block, bold)
        return max(len(c) for c in cells) * (self.pdf.size - 1.5) * 1.25 + 6

    def _row(self, block: Block, bold: bool) -> None:
        widths, cells = self._cells(block, bold)
        height = self._row_height(block, bold)
        x, size = self.x(), self.pdf.size - 1.5
        self.pdf.set_line_width(0.5)
        for width, lines in zip(widths, cells, strict=True):
            if bold:
                self.pdf.set_fill_color(225, 225, 225)
                self.pdf.rect(x, self.y, width, height, style="DF")
            else:
                self.pdf.rect(x, self.y, width, height)
            for k, line in enumerate(lines):
                self.pdf.text(x + 3, self.y + 3 + size + k * size * 1.25, " ".join(line.words))
            x += width
        self.y += height
        self.record(Piece(block))

    def scan(self, plan: Plan, blocks: list[Block]) -> None:
        self.pdf.plain_pages.add(self.page + 1)  # before add_page, which draws the running header
        self.new_page()
        pieces = scan_pieces(plan, blocks)
        style = ScanStyle(
            font=plan.render["font"], header=plan.render.get("header"), seed=len(plan.body),
            footer=footer_text(plan, self.page, self.pdf.state.total),
        )  # fmt: skip
        self.pdf.image(io.BytesIO(scan_image(pieces, style)), x=0, y=0, w=PAGE_W, h=PAGE_H)
        for piece in pieces:
            self.record(piece)
        self.new_page()


def _title_and_contents(flow: Flow, plan: Plan) -> None:
    pdf = flow.pdf
    flow.y = 200
    sizes = {"type": (22, "B"), "report": (15, ""), "title": (16, "B")}
    for block in plan.title_lines:
        size, style = sizes.get(block.role, (12, ""))
        pdf.set_font(pdf.family, style, size)
        for line in wrap(pdf, block.words, flow.width() - 40):
            text = " ".join(line.words)
            pdf.text((PAGE_W - pdf.get_string_width(text)) / 2, flow.y + size, text)
            flow.y += size * 1.35
        flow.y += 26 if block.role == "report" else 12
        flow.record(Piece(block))
    flow.new_page()
    entries = contents_blocks(plan, pdf.state.heading_pages)
    flow.heading(entries[0], pdf.size + 5, "B", 0)
    pdf.set_font(pdf.family, "", pdf.size)
    for entry in entries[1:]:
        page = entry.text.rsplit(" ", 1)[1]
        for line in wrap(pdf, entry.body.split(), flow.width() - 40):
            pdf.text(flow.x(), flow.y + pdf.size, " ".join(line.words))
            flow.y += pdf.lead
        pdf.text(PAGE_W - MARGIN["right"] - pdf.get_string_width(page), flow.y - pdf.lead + pdf.size, page)
        flow.y += 3
        flow.record(Piece(entry))


def _build_once(plan: Plan, state: PassState) -> LayoutPass:
    pdf = ReviewPDF(plan, state)
    source = plan.source
    pdf.set_title(source["title"])
    pdf.set_author(author_name(source))
    pdf.set_subject(f"{source['review_type']} review: {source['subject']}")
    pdf.set_creator("Microsoft Word - converted")
    pdf.set_producer("fpdf2")
    pdf.set_creation_date(creation_date(source))
    pdf.set_lang("en-GB")
    flow = Flow(pdf, 1)
    flow.new_page()
    _title_and_contents(flow, plan)
    flow.new_page()
    flow.columns = plan.render["columns"]
    size = pdf.size
    for kind, blocks in iter_body_runs(plan):
        first = blocks[0]
        if kind == "scan":
            flow.scan(plan, blocks)
        elif kind == "table":
            flow.table(blocks)
        elif first.kind == "heading":
            flow.heading(first, size + 3, "B", 3 * pdf.lead)
        elif first.kind == "subheading":
            flow.heading(first, size, "BI", 2 * pdf.lead)
        else:
            flow.paragraph(first)
    data = bytes(pdf.output())
    layout = Layout(
        pages=[pdf.pieces.get(n, []) for n in range(1, pdf.pages_count + 1)],
        scanned_page=next((p for p in sorted(pdf.plain_pages) if p != 1), None),
    )
    return LayoutPass(data, layout, {page: pdf.notes_height(notes) for page, notes in pdf.notes.items()})


def render(plan: Plan, out_path: Path, **_: Any) -> Layout:
    """Lay the plan out until contents, page count and footnote space settle; write the PDF."""
    return render_until_settled(plan, out_path, lambda state: _build_once(plan, state), "fpdf2")
