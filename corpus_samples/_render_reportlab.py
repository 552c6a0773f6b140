"""Renders a review plan with reportlab platypus: justified, hyphenated (pyphen) text, one or two
frames per page, footnotes at the foot of the page that carries their mark, and ruled chronology
tables whose header row repeats on every page.

The layout is built until it settles: pass n uses pass n-1's heading pages (for the contents), page
count (for "Page X of Y") and footnote heights (space reserved at the foot of each page).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

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
    footer_text,
    iter_body_runs,
    pdf_date,
    render_until_settled,
    scan_image,
    scan_pieces,
)
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

MARGIN = {"left": 24 * mm, "right": 22 * mm, "top": 26 * mm, "bottom": 24 * mm}
GUTTER = 7 * mm


# ---------------------------------------------------------------- fonts and styles


def _register(family: str) -> str:
    if family not in pdfmetrics.getRegisteredFontNames():
        for style, suffix in (("", ""), ("B", "-Bold"), ("I", "-Italic"), ("BI", "-BoldItalic")):
            pdfmetrics.registerFont(TTFont(family + suffix, str(TTF[(family, style)])))
        pdfmetrics.registerFontFamily(
            family, normal=family, bold=family + "-Bold", italic=family + "-Italic", boldItalic=family + "-BoldItalic"
        )
    return family


def _fits_cp1252(plan: Plan) -> bool:
    text = " ".join(b.text for b in [*plan.title_lines, *plan.body, *plan.footnotes.values()])
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def font_names(plan: Plan) -> dict[str, str]:
    """Times for serif (Liberation Serif when the text needs more than Latin-1), DejaVu Sans for sans."""
    if plan.render["font"] == "serif" and _fits_cp1252(plan):
        return {"": "Times-Roman", "B": "Times-Bold", "I": "Times-Italic", "BI": "Times-BoldItalic"}
    family = _register("LiberationSerif" if plan.render["font"] == "serif" else "DejaVuSans")
    return {"": family, "B": family + "-Bold", "I": family + "-Italic", "BI": family + "-BoldItalic"}


def make_styles(plan: Plan) -> dict[str, ParagraphStyle]:
    f = font_names(plan)
    size = 10.5 if plan.render["font"] == "serif" else 9.5
    two = plan.render["columns"] == 2
    body = ParagraphStyle(
        "body",
        fontName=f[""],
        fontSize=size,
        leading=size * 1.3,
        alignment=TA_JUSTIFY,
        spaceAfter=5,
        hyphenationLang="en_GB",
        embeddedHyphenation=1,
        uriWasteReduce=0.3,
        allowOrphans=0,
        allowWidows=0,
    )
    return {
        "body": body,
        "heading": ParagraphStyle(
            "heading",
            fontName=f["B"],
            fontSize=size + (2 if two else 3),
            leading=size + 7,
            spaceBefore=10,
            spaceAfter=6,
            keepWithNext=1,
            alignment=TA_LEFT,
        ),
        "subheading": ParagraphStyle(
            "subheading",
            fontName=f["BI"],
            fontSize=size,
            leading=size * 1.3,
            spaceBefore=5,
            spaceAfter=4,
            keepWithNext=1,
            alignment=TA_LEFT,
        ),
        "cell": ParagraphStyle("cell", fontName=f[""], fontSize=size - 1.5, leading=(size - 1.5) * 1.22),
        "cellhead": ParagraphStyle("cellhead", fontName=f["B"], fontSize=size - 1.5, leading=(size - 1.5) * 1.22),
        "note": ParagraphStyle("note", fontName=f[""], fontSize=7.5, leading=9.2),
        "running": ParagraphStyle("running", fontName=f[""], fontSize=8, leading=10),
        "contents_title": ParagraphStyle("ct", fontName=f["B"], fontSize=size + 5, leading=size + 10, spaceAfter=12),
        "contents_entry": ParagraphStyle("ce", fontName=f[""], fontSize=size, leading=size * 1.45),
        "contents_page": ParagraphStyle("cp", fontName=f[""], fontSize=size, leading=size * 1.45, alignment=TA_RIGHT),
        "title_type": ParagraphStyle("tt", fontName=f["B"], fontSize=22, leading=28, alignment=TA_CENTER, spaceAfter=8),
        "title_report": ParagraphStyle(
            "tr", fontName=f[""], fontSize=15, leading=20, alignment=TA_CENTER, spaceAfter=36
        ),
        "title_title": ParagraphStyle(
            "tti", fontName=f["B"], fontSize=16, leading=21, alignment=TA_CENTER, spaceAfter=18
        ),
        "title_line": ParagraphStyle("tl", fontName=f[""], fontSize=12, leading=16, alignment=TA_CENTER, spaceAfter=10),
    }


def paragraph_markup(block: Block) -> str:
    """A paragraph's markup: the printed number in bold, the text, the footnote mark as superscript."""
    text = escape(block.body)
    if block.number:
        text = f"<b>{escape(block.number)}</b> {text}"
    if block.footnote:
        text += f"<super>{block.footnote}</super>"
    return text


# ---------------------------------------------------------------- flowables that report where they land


class TrackedParagraph(Paragraph):
    """A paragraph that knows its block and which of the block's words each split part starts with.

    `vk_first` is the index of the word this part's first token belongs to; `vk_partial` says that
    token is the rest of a word hyphenated across a page or column break (the word then belongs to
    the earlier part, as golden text joins hyphenated words).
    """

    vk_block: Block
    vk_first: int = 0
    vk_partial: bool = False

    def split(self, availWidth: float, availHeight: float) -> list[Any]:
        parts = self._split_that_fits(availWidth, availHeight)
        if len(parts) != 2:
            return parts
        head, tail = parts
        n_tokens = len(head.getPlainText().split())
        last = self.vk_first + n_tokens - 1
        whole = head.getPlainText().split()[-1] == self.vk_block.words[last]
        for part, first, partial in (
            (head, self.vk_first, self.vk_partial),
            (tail, last + (1 if whole else 0), not whole),
        ):
            part.vk_block, part.vk_first, part.vk_partial = self.vk_block, first, partial
        head.vk_end = last + 1
        return parts

    def _split_that_fits(self, width: float, height: float) -> list[Any]:
        """Paragraph.split, retried a line shorter while its first part re-wraps taller than the space
        (with hyphenation on, reportlab's first part can gain a line when it is wrapped again)."""
        room = height
        while True:
            parts = super().split(width, room)
            if len(parts) != 2 or parts[0].wrap(width, height)[1] <= height + 0.01 or room <= 0:
                return parts
            room -= self.style.leading

    def piece(self) -> Piece:
        end = getattr(self, "vk_end", None)
        return Piece(self.vk_block, self.vk_first + (1 if self.vk_partial else 0), end)


def tracked(block: Block, markup: str, style: ParagraphStyle) -> TrackedParagraph:
    paragraph = TrackedParagraph(markup, style)
    paragraph.vk_block = block
    return paragraph


class TrackedTable(Table):
    """A table whose parts remember which row blocks they hold (row 0 is always the header)."""

    vk_header: Block | None = None
    vk_rows: list[Block]

    def split(self, availWidth: float, availHeight: float) -> list[Any]:
        parts = super().split(availWidth, availHeight)
        at = 0
        for part in parts:
            count = part._nrows - (1 if self.vk_header else 0)
            part.vk_header, part.vk_rows = self.vk_header, self.vk_rows[at : at + count]
            at += count
        return parts

    def pieces(self) -> list[Piece]:
        head = [Piece(self.vk_header)] if self.vk_header else []
        return head + [Piece(row) for row in self.vk_rows]


class ScanPlaceholder(Flowable):
    """Fills the scanned page's frame; the page template draws the scan image underneath."""

    def __init__(self, pieces: list[Piece]) -> None:
        super().__init__()
        self.vk_pieces = pieces

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        return availWidth, availHeight - 1

    def draw(self) -> None:
        return None


# ---------------------------------------------------------------- the document


def _fixed_date_canvas(date: str) -> type[Canvas]:
    class FixedDateCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.setDateFormatter(lambda *_: date)

    return FixedDateCanvas


class ReviewDocTemplate(BaseDocTemplate):
    """Page templates (title, front, body1, body2, scan) and the bookkeeping of pieces per page."""

    def __init__(self, target: Any, plan: Plan, state: PassState, styles: dict[str, ParagraphStyle], **kw: Any):
        source = plan.source
        super().__init__(
            target,
            pagesize=A4,
            leftMargin=MARGIN["left"],
            rightMargin=MARGIN["right"],
            topMargin=MARGIN["top"],
            bottomMargin=MARGIN["bottom"],
            title=source["title"],
            author=author_name(source),
            subject=f"{source['review_type']} review: {source['subject']}",
            creator=source["commissioner"],
            invariant=1,
            **kw,
        )
        self.plan, self.state, self.styles = plan, state, styles
        self.pieces: dict[int, list[Piece]] = {}
        self.notes: dict[int, list[Block]] = {}
        self.scanned_page: int | None = None
        self._scan_cache: dict[tuple[int, int], bytes] = {}
        self.addPageTemplates(
            [
                PageTemplate("title", frames=self.frames_for("title", 0)),
                PageTemplate(
                    "front", frames=self.frames_for("front", 0), onPage=self.draw_running, onPageEnd=self.draw_notes
                ),
                PageTemplate(
                    "body1", frames=self.frames_for("body1", 0), onPage=self.draw_running, onPageEnd=self.draw_notes
                ),
                PageTemplate(
                    "body2", frames=self.frames_for("body2", 0), onPage=self.draw_running, onPageEnd=self.draw_notes
                ),
                PageTemplate("scan", frames=self.frames_for("scan", 0), onPage=self.draw_scan),
            ]
        )

    def frames_for(self, template: str, reserve: float) -> list[Frame]:
        x, y, w, h = self.leftMargin, self.bottomMargin + reserve, self.width, self.height - reserve
        if template != "body2":
            return [Frame(x, y, w, h, id=f"{template}0")]
        col = (w - GUTTER) / 2
        return [Frame(x, y, col, h, id="left"), Frame(x + col + GUTTER, y, col, h, id="right")]

    def beforePage(self) -> None:
        reserve = self.state.reserve.get(self.page, 0.0)
        self.pageTemplate.frames = self.frames_for(self.pageTemplate.id, reserve)

    def afterFlowable(self, flowable: Any) -> None:
        page = self.pieces.setdefault(self.page, [])
        if isinstance(flowable, TrackedParagraph):
            piece = flowable.piece()
            page.append(piece)
            if piece.block.footnote and piece.end is None:
                self.notes.setdefault(self.page, []).append(self.plan.footnotes[piece.block.footnote])
        elif isinstance(flowable, TrackedTable):
            page.extend(flowable.pieces())
        elif isinstance(flowable, ScanPlaceholder):
            page.extend(flowable.vk_pieces)
            self.scanned_page = self.page

    # -- drawing on the page itself

    def draw_running(self, canvas: Canvas, doc: BaseDocTemplate) -> None:
        canvas.saveState()
        font = self.styles["running"].fontName
        header = self.plan.render.get("header")
        if header:
            canvas.setFont(font, 8.5)
            canvas.drawCentredString(A4[0] / 2, A4[1] - 14 * mm, header)
        left, right = footer_text(self.plan, self.page, self.state.total)
        canvas.setFont(font, 8)
        canvas.drawRightString(A4[0] - self.rightMargin, 12 * mm, right)
        if left:
            canvas.drawString(self.leftMargin, 12 * mm, left[:110])
        canvas.setLineWidth(0.4)
        canvas.line(self.leftMargin, 16 * mm, A4[0] - self.rightMargin, 16 * mm)
        canvas.restoreState()

    def note_paragraphs(self, notes: list[Block]) -> list[Paragraph]:
        return [Paragraph(f"<super>{n.footnote}</super> {escape(n.body)}", self.styles["note"]) for n in notes]

    def notes_height(self, notes: list[Block]) -> float:
        return 6 + sum(p.wrap(self.width, A4[1])[1] + 1.5 for p in self.note_paragraphs(notes))

    def draw_notes(self, canvas: Canvas, doc: BaseDocTemplate) -> None:
        notes = self.notes.get(self.page, [])
        if not notes:
            return
        y = self.bottomMargin + self.notes_height(notes) - 3
        canvas.setLineWidth(0.5)
        canvas.line(self.leftMargin, y, self.leftMargin + 50 * mm, y)
        y -= 3
        for paragraph in self.note_paragraphs(notes):
            _, h = paragraph.wrap(self.width, A4[1])
            paragraph.drawOn(canvas, self.leftMargin, y - h)
            y -= h + 1.5
        self.pieces.setdefault(self.page, []).extend(Piece(n) for n in notes)

    def draw_scan(self, canvas: Canvas, doc: BaseDocTemplate) -> None:
        key = (self.page, self.state.total)
        if key not in self._scan_cache:
            span = self.plan.scanned_range()
            assert span is not None
            pieces = scan_pieces(self.plan, self.plan.body[span[0] : span[1]])
            style = ScanStyle(
                font=self.plan.render["font"],
                header=self.plan.render.get("header"),
                footer=footer_text(self.plan, self.page, self.state.total),
                seed=len(self.plan.body),
            )
            self._scan_cache[key] = scan_image(pieces, style)
        canvas.drawImage(ImageReader(io.BytesIO(self._scan_cache[key])), 0, 0, width=A4[0], height=A4[1])


# ---------------------------------------------------------------- the story


def title_story(plan: Plan, styles: dict[str, ParagraphStyle]) -> list[Any]:
    role_style = {"type": "title_type", "report": "title_report", "title": "title_title"}
    story: list[Any] = [Spacer(1, 40 * mm)]
    for block in plan.title_lines:
        story.append(tracked(block, escape(block.body), styles[role_style.get(block.role, "title_line")]))
    return story


def contents_story(plan: Plan, state: PassState, styles: dict[str, ParagraphStyle], width: float) -> list[Any]:
    entries = contents_blocks(plan, state.heading_pages)
    story: list[Any] = [tracked(entries[0], "Contents", styles["contents_title"])]
    for entry in entries[1:]:
        page = entry.text.rsplit(" ", 1)[1]
        row = TrackedTable(
            [[Paragraph(escape(entry.body), styles["contents_entry"]), Paragraph(page, styles["contents_page"])]],
            colWidths=[width - 20 * mm, 20 * mm],
        )
        row.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))
        row.vk_header, row.vk_rows = None, [entry]
        story.append(row)
    return story


def chronology_table(blocks: list[Block], styles: dict[str, ParagraphStyle], width: float) -> TrackedTable:
    header, rows = blocks[0], blocks[1:]
    data = [[Paragraph(escape(c), styles["cellhead"]) for c in header.cells or []]]
    data += [[Paragraph(escape(c), styles["cell"]) for c in row.cells or []] for row in rows]
    cells = [header.cells or [], *[row.cells or [] for row in rows]]
    font, size = styles["cellhead"].fontName, styles["cellhead"].fontSize  # bold: the widest case
    widths = column_widths(cells, width, lambda w: pdfmetrics.stringWidth(w, font, size), 14)
    table = TrackedTable(data, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.86, 0.86, 0.86)),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    table.vk_header, table.vk_rows = header, rows
    return table


def body_story(plan: Plan, styles: dict[str, ParagraphStyle], full_width: float, body_template: str) -> list[Any]:
    story: list[Any] = []
    section_columns = plan.render.get("section_columns")  # per-section columns: the long benchmark review
    current = body_template
    for kind, blocks in iter_body_runs(plan):
        first = blocks[0]
        if section_columns and first.kind == "heading":
            wanted = f"body{section_columns[first.section]}"
            if wanted != current:
                story += [NextPageTemplate(wanted), PageBreak()]
                current = wanted
        width = (full_width - GUTTER) / 2 if current == "body2" else full_width
        if kind == "scan":
            pieces = scan_pieces(plan, blocks)
            story += [
                NextPageTemplate("scan"),
                PageBreak(),
                ScanPlaceholder(pieces),
                NextPageTemplate(current),
                PageBreak(),
            ]
        elif kind == "table":
            story += [chronology_table(blocks, styles, width), Spacer(1, 6)]
        elif first.kind in ("heading", "subheading"):
            story.append(tracked(first, escape(first.text), styles[first.kind]))
        else:
            story.append(tracked(first, paragraph_markup(first), styles["body"]))
    return story


def _build_once(plan: Plan, state: PassState, **kw: Any) -> LayoutPass:
    styles = make_styles(plan)
    if callable(kw.get("encrypt")):  # an encryption object serves one build only: make one per pass
        kw = {**kw, "encrypt": kw["encrypt"]()}
    buffer = io.BytesIO()
    doc = ReviewDocTemplate(buffer, plan, state, styles, **kw)
    body_template = "body2" if plan.render["columns"] == 2 else "body1"
    if plan.render.get("section_columns"):
        body_template = f"body{plan.render['section_columns'][0]}"
    story = [*title_story(plan, styles), NextPageTemplate("front"), PageBreak()]
    story += [*contents_story(plan, state, styles, doc.width), NextPageTemplate(body_template), PageBreak()]
    story += body_story(plan, styles, doc.width, body_template)
    doc.build(story, canvasmaker=_fixed_date_canvas(pdf_date(plan.source)))
    needed = {page: doc.notes_height(notes) for page, notes in doc.notes.items()}
    return LayoutPass(buffer.getvalue(), _layout(doc, doc.page), needed)


def _layout(doc: ReviewDocTemplate, total: int) -> Layout:
    pages = [_merge(doc.pieces.get(n, [])) for n in range(1, total + 1)]
    return Layout(pages=pages, scanned_page=doc.scanned_page)


def _merge(pieces: list[Piece]) -> list[Piece]:
    """Join the parts of one block that sit on the same page (a paragraph running from column 1 to 2)."""
    merged: list[Piece] = []
    for piece in pieces:
        last = merged[-1] if merged else None
        if last and last.block is piece.block and last.end is not None and last.end == piece.start:
            last.end = piece.end
        else:
            merged.append(Piece(piece.block, piece.start, piece.end))
    return merged


def render(plan: Plan, out_path: Path, **kw: Any) -> Layout:
    """Lay the plan out until contents, page count and footnote space settle; write the PDF."""
    return render_until_settled(plan, out_path, lambda state: _build_once(plan, state, **kw), "reportlab")
