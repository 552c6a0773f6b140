"""The layout model shared by the sample-corpus renderers: a review source becomes a `Plan` of printed
blocks, a renderer lays the plan out and reports which piece of which block landed on which page.
"""

from __future__ import annotations

import calendar
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TYPE_WORDS = {
    "CSPR": "Child Safeguarding Practice Review",
    "SAR": "Safeguarding Adults Review",
    "DHR": "Domestic Homicide Review",
    "MAPPA": "MAPPA Serious Case Review",
}
SUBTYPE_WORDS = {
    "SCR": "Serious Case Review",
    "CPR": "Child Practice Review",
    "APR": "Adult Practice Review",
    "DARDR": "Domestic Abuse Related Death Review",
}
FONT_DIR = Path("/usr/share/fonts/truetype")
TTF = {
    ("DejaVuSans", ""): FONT_DIR / "dejavu/DejaVuSans.ttf",
    ("DejaVuSans", "B"): FONT_DIR / "dejavu/DejaVuSans-Bold.ttf",
    ("DejaVuSans", "I"): FONT_DIR / "dejavu/DejaVuSans-Oblique.ttf",
    ("DejaVuSans", "BI"): FONT_DIR / "dejavu/DejaVuSans-BoldOblique.ttf",
    ("DejaVuSerif", ""): FONT_DIR / "dejavu/DejaVuSerif.ttf",
    ("DejaVuSerif", "B"): FONT_DIR / "dejavu/DejaVuSerif-Bold.ttf",
    ("DejaVuSerif", "I"): FONT_DIR / "dejavu/DejaVuSerif-Italic.ttf",
    ("DejaVuSerif", "BI"): FONT_DIR / "dejavu/DejaVuSerif-BoldItalic.ttf",
    ("LiberationSerif", ""): FONT_DIR / "liberation/LiberationSerif-Regular.ttf",
    ("LiberationSerif", "B"): FONT_DIR / "liberation/LiberationSerif-Bold.ttf",
    ("LiberationSerif", "I"): FONT_DIR / "liberation/LiberationSerif-Italic.ttf",
    ("LiberationSerif", "BI"): FONT_DIR / "liberation/LiberationSerif-BoldItalic.ttf",
    ("LiberationSans", ""): FONT_DIR / "liberation/LiberationSans-Regular.ttf",
    ("LiberationSans", "B"): FONT_DIR / "liberation/LiberationSans-Bold.ttf",
    ("LiberationSans", "I"): FONT_DIR / "liberation/LiberationSans-Italic.ttf",
    ("LiberationSans", "BI"): FONT_DIR / "liberation/LiberationSans-BoldItalic.ttf",
}
A4_MM = (210.0, 297.0)


def collapse(text: str) -> str:
    """Whitespace collapsed to single spaces, as golden text wants every block."""
    return " ".join(str(text).split())


@dataclass(eq=False)
class Block:
    """One printed block: a title-page line, contents entry, heading, paragraph, table row or footnote."""

    kind: str  # title_line | contents_title | contents_entry | heading | subheading | paragraph
    #            | table_header | table_row | footnote
    text: str  # the golden line: printed number and text, whitespace collapsed
    body: str = ""  # the text without its printed number
    number: str | None = None  # the printed number: "3.4", "3.4.1", "Para 12", "3." for a heading
    para_id: str | None = None
    section: int = -1  # index into Plan.sections; -1 for title page and contents
    cells: list[str] | None = None
    table: int | None = None  # which table a header or row belongs to
    footnote: int | None = None  # the footnote number this paragraph carries
    labels: dict[str, Any] | None = None
    scanned: bool = False
    role: str = ""  # for title-page lines: type, report, title, subject, commissioner, date, author

    @property
    def words(self) -> list[str]:
        return self.text.split()


@dataclass
class Section:
    heading: str  # as printed, with its number
    title: str  # as written in the source
    kind: str
    number: int


@dataclass
class Plan:
    """Everything a renderer draws, in document order, with the golden text of each block."""

    source: dict[str, Any]
    title_lines: list[Block]
    sections: list[Section]
    body: list[Block]  # headings, subheadings, paragraphs, table headers and rows
    footnotes: dict[int, Block] = field(default_factory=dict)

    @property
    def render(self) -> dict[str, Any]:
        return self.source["render"]

    @property
    def doc_title(self) -> str:
        return self.source["title"]

    def headings(self) -> list[Block]:
        return [b for b in self.body if b.kind == "heading"]

    def table_header(self, table: int) -> Block:
        return next(b for b in self.body if b.kind == "table_header" and b.table == table)

    def scanned_range(self) -> tuple[int, int] | None:
        idx = [i for i, b in enumerate(self.body) if b.scanned]
        return (idx[0], idx[-1] + 1) if idx else None


@dataclass
class Piece:
    """The part of a block drawn on one page: words [start, end) of `block.words`."""

    block: Block
    start: int = 0
    end: int | None = None

    @property
    def text(self) -> str:
        return " ".join(self.block.words[self.start : self.end])


@dataclass
class Layout:
    """What a renderer reports: per page, the pieces drawn in reading order (footnotes last)."""

    pages: list[list[Piece]]
    scanned_page: int | None = None  # 1-based

    def heading_pages(self) -> dict[int, int]:
        """Section index -> the page its heading is printed on."""
        found: dict[int, int] = {}
        for number, pieces in enumerate(self.pages, start=1):
            for piece in pieces:
                if piece.block.kind == "heading":
                    found.setdefault(piece.block.section, number)
        return found

    def footnote_pages(self) -> dict[int, int]:
        return {
            p.block.footnote: n
            for n, pieces in enumerate(self.pages, start=1)
            for p in pieces
            if p.block.kind == "footnote" and p.block.footnote is not None
        }


# ---------------------------------------------------------------- settling the layout


@dataclass
class PassState:
    """What one layout pass learned and the next uses."""

    heading_pages: dict[int, int] = field(default_factory=dict)
    total: int = 0
    reserve: dict[int, float] = field(default_factory=dict)  # page -> points kept free for footnotes


class LayoutPass(NamedTuple):
    """What one layout pass made: the PDF, its layout, and the points each page's footnotes need."""

    pdf: bytes
    layout: Layout
    notes_height: dict[int, float]


def render_until_settled(
    plan: Plan, out_path: Path, lay_out: Callable[[PassState], LayoutPass], producer: str, max_passes: int = 8
) -> Layout:
    """Lay the plan out until contents, page count and footnote space settle; write the PDF.

    Pass n uses pass n-1's heading pages (for the contents), page count (for "Page X of Y") and
    footnote heights (space reserved at the foot of each page)."""
    state = PassState()
    for _ in range(max_passes):
        pdf, layout, needed = lay_out(state)
        total = len(layout.pages)
        settled = (
            layout.heading_pages() == state.heading_pages
            and total == state.total
            and all(h <= state.reserve.get(p, 0.0) + 0.01 for p, h in needed.items())
        )
        if settled:
            out_path.write_bytes(pdf)
            return layout
        reserve = dict(state.reserve)
        for page, height in needed.items():
            reserve[page] = max(reserve.get(page, 0.0), height)
        state = PassState(layout.heading_pages(), total, reserve)
    raise RuntimeError(f"{plan.source['doc_id']}: the {producer} layout did not settle in {max_passes} passes")


# ---------------------------------------------------------------- planning


def type_words(source: dict[str, Any]) -> str:
    """The review type in words, as the title page prints it."""
    return SUBTYPE_WORDS.get(source.get("subtype") or "", TYPE_WORDS[source["review_type"]])


def heading_label(numbering: str, number: int, heading: str) -> str:
    """A section heading as printed under each numbering scheme."""
    return {
        "decimal": f"{number}. {heading}",
        "decimal3": f"{number} {heading}",
        "para": f"Section {number}: {heading}",
        "none": heading,
    }[numbering]


def title_page(source: dict[str, Any]) -> list[Block]:
    report = "Executive Summary" if source.get("executive_summary_only") else "Overview Report"
    lines = [
        ("type", type_words(source)),
        ("report", report),
        ("title", source["title"]),
        ("subject", f"Subject: {source['subject']}"),
        ("commissioner", f"Commissioned by {source['commissioner']}"),
        ("date", f"{source['month']} {source['year']}"),
        ("author", source["author"]),
    ]
    return [Block(kind="title_line", text=collapse(text), body=collapse(text), role=role) for role, text in lines]


class _Numberer:
    """Hands out printed paragraph numbers and para_ids in document order, per the numbering scheme."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.ordinal = 0  # paragraphs in the document
        self.rows = 0  # table rows in the document (for unnumbered schemes)
        self.section = 0
        self.in_section = 0
        self.sub = 1
        self.in_sub = 0
        self.section_rows = 0

    def start_section(self, number: int) -> None:
        self.section, self.in_section, self.sub, self.in_sub, self.section_rows = number, 0, 1, 0, 0

    def subheading(self) -> None:
        # decimal3: a sub-heading opens the next middle level once the current one has paragraphs
        if self.in_sub:
            self.sub, self.in_sub = self.sub + 1, 0

    def paragraph(self) -> tuple[str | None, str]:
        self.ordinal += 1
        self.in_section += 1
        self.in_sub += 1
        number = {
            "decimal": f"{self.section}.{self.in_section}",
            "decimal3": f"{self.section}.{self.sub}.{self.in_sub}",
            "para": f"Para {self.ordinal}",
            "none": None,
        }[self.scheme]
        return number, number or f"p{self.ordinal}"

    def row(self) -> str:
        self.rows += 1
        self.section_rows += 1
        return f"r{self.rows}" if self.scheme == "none" else f"{self.section}.r{self.section_rows}"


def make_plan(source: dict[str, Any]) -> Plan:
    """Number the source's sections, paragraphs and rows and lay them out as golden blocks."""
    scheme = source["render"]["numbering"]
    numberer = _Numberer(scheme)
    plan = Plan(source=source, title_lines=title_page(source), sections=[], body=[])
    unit = 0  # counts paragraphs and table rows, for scanned_blocks
    scanned = set(source["render"].get("scanned_blocks") or [])
    tables = 0
    for s_index, sec in enumerate(source["sections"]):
        printed = heading_label(scheme, s_index + 1, sec["heading"])
        plan.sections.append(Section(printed, sec["heading"], sec["kind"], s_index + 1))
        numberer.start_section(s_index + 1)
        plan.body.append(Block(kind="heading", text=collapse(printed), body=collapse(sec["heading"]), section=s_index))
        for item in sec["blocks"]:
            if "subheading" in item:
                numberer.subheading()
                text = collapse(item["subheading"])
                plan.body.append(Block(kind="subheading", text=text, body=text, section=s_index))
            elif "para" in item:
                number, para_id = numberer.paragraph()
                body = collapse(item["para"])
                block = Block(
                    kind="paragraph",
                    text=f"{number} {body}" if number else body,
                    body=body,
                    number=number,
                    para_id=para_id,
                    section=s_index,
                    labels=item.get("labels"),
                    scanned=unit in scanned,
                )
                if item.get("footnote"):
                    block.footnote = len(plan.footnotes) + 1
                    note = collapse(item["footnote"])
                    plan.footnotes[block.footnote] = Block(
                        kind="footnote", text=f"{block.footnote} {note}", body=note, footnote=block.footnote
                    )
                plan.body.append(block)
                unit += 1
            else:
                tables += 1
                unit = _plan_table(plan, item["table"], s_index, tables, numberer, unit, scanned)
    _extend_scan_over_headings(plan)
    return plan


def _plan_table(
    plan: Plan, table: dict[str, Any], s_index: int, t_id: int, numberer: _Numberer, unit: int, scanned: set[int]
) -> int:
    columns = [collapse(c) for c in table["columns"]]
    plan.body.append(Block(kind="table_header", text=" ".join(columns), cells=columns, table=t_id, section=s_index))
    for row in table["rows"]:
        cells = [collapse(c) for c in row["cells"]]
        plan.body.append(
            Block(
                kind="table_row",
                text=" ".join(cells),
                body=" ".join(cells),
                cells=cells,
                table=t_id,
                para_id=numberer.row(),
                section=s_index,
                labels=row.get("labels"),
                scanned=unit in scanned,
            )
        )
        unit += 1
    return unit


def _extend_scan_over_headings(plan: Plan) -> None:
    """A scanned page also carries the headings between and just before its scanned blocks."""
    span = plan.scanned_range()
    if not span:
        return
    first, last = span
    while first > 0 and plan.body[first - 1].kind in ("heading", "subheading"):
        first -= 1
    for block in plan.body[first:last]:
        block.scanned = True


def contents_blocks(plan: Plan, heading_pages: dict[int, int]) -> list[Block]:
    """The contents page: one entry per section heading with its page number (0 before the first pass)."""
    entries = [Block(kind="contents_title", text="Contents", body="Contents")]
    for s_index, sec in enumerate(plan.sections):
        page = heading_pages.get(s_index, 0)
        entries.append(
            Block(kind="contents_entry", text=f"{collapse(sec.heading)} {page}", body=sec.heading, section=s_index)
        )
    return entries


def iter_body_runs(plan: Plan) -> list[tuple[str, list[Block]]]:
    """The body as runs a renderer draws in one go: ("block", [b]), ("table", [header, rows...]),
    ("scan", [blocks on the scanned page])."""
    runs: list[tuple[str, list[Block]]] = []
    for block in plan.body:
        if block.scanned:
            if runs and runs[-1][0] == "scan":
                runs[-1][1].append(block)
            else:
                runs.append(("scan", [block]))
        elif block.kind == "table_header":
            runs.append(("table", [block]))
        elif block.kind == "table_row":
            last = runs[-1] if runs else None
            if last and last[0] == "table" and last[1][0].table == block.table:
                last[1].append(block)
            else:  # the rows after a scanned page: a new table part, with its header drawn again
                runs.append(("table", [plan.table_header(block.table or 0), block]))
        else:
            runs.append(("block", [block]))
    return [r for r in runs if not (r[0] == "table" and len(r[1]) == 1)]


def scan_pieces(plan: Plan, blocks: list[Block]) -> list[Piece]:
    """What a perfect OCR of the scanned page gives, a table header drawn before each table part."""
    pieces: list[Piece] = []
    previous: Block | None = None
    for block in blocks:
        if block.kind == "table_row" and (previous is None or previous.table != block.table):
            pieces.append(Piece(plan.table_header(block.table or 0)))
        if block.kind != "table_header":
            pieces.append(Piece(block))
        previous = block if block.kind in ("table_row", "table_header") else None
    return pieces


# ---------------------------------------------------------------- running text and metadata


def footer_text(plan: Plan, page: int, total: int) -> tuple[str, str]:
    """The footer as (left, right): the review title when footer_title, and "Page X of Y"."""
    left = plan.doc_title if plan.render.get("footer_title") else ""
    return left, f"Page {page} of {total}"


def creation_date(source: dict[str, Any]) -> datetime:
    """A fixed creation date (the first of the publication month) so builds are byte-reproducible."""
    month = list(calendar.month_name).index(source["month"])
    return datetime(int(source["year"]), month, 1, 9, 0, 0, tzinfo=UTC)


def pdf_date(source: dict[str, Any]) -> str:
    return creation_date(source).strftime("D:%Y%m%d%H%M%S+00'00'")


def author_name(source: dict[str, Any]) -> str:
    """The metadata author: the name after "Author:" when the title page line has one."""
    author = source["author"]
    return collapse(author.split(":", 1)[1]) if ":" in author else collapse(author)


def pil_font(font: str, style: str, size_px: int) -> ImageFont.FreeTypeFont:
    family = "LiberationSerif" if font == "serif" else "LiberationSans"
    return ImageFont.truetype(str(TTF[(family, style)]), size_px)


# ---------------------------------------------------------------- scanned pages


@dataclass
class ScanStyle:
    font: str = "serif"
    dpi: int = 200
    header: str | None = None
    footer: tuple[str, str] = ("", "")
    seed: int = 0
    rotation: float = 0.35  # degrees: a sheet laid a little askew on the scanner glass


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return [*lines, line] if line else lines


def table_column_ratios(n: int) -> list[float]:
    """Chronology column widths: narrow date and agency columns, a wide event column."""
    if n == 1:
        return [1.0]
    if n == 2:
        return [0.25, 0.75]
    narrow = [0.16, 0.2][: n - 1] + [0.14] * max(0, n - 3)
    return [*narrow, 1.0 - sum(narrow)]


def column_widths(rows: list[list[str]], total: float, measure: Any, padding: float) -> list[float]:
    """Chronology column widths: the usual ratios, widened where a column's longest word would not fit
    (renderers would otherwise break the word inside the cell), taking the room from the widest column."""
    ratios = table_column_ratios(len(rows[0]))
    widths = [r * total for r in ratios]
    for c in range(len(widths)):
        need = max((measure(word) for row in rows for word in row[c].split()), default=0.0) + padding
        if widths[c] < need:
            widest = max(range(len(widths)), key=lambda k: widths[k])
            if widest != c:
                widths[widest] -= need - widths[c]
                widths[c] = need
    return widths


class _ScanWriter:
    """Draws text onto a page image top to bottom, failing loudly when the page is full."""

    def __init__(self, style: ScanStyle) -> None:
        self.style = style
        self.px = style.dpi / 25.4  # pixels per mm
        self.size = (round(A4_MM[0] * self.px), round(A4_MM[1] * self.px))
        self.image = Image.new("L", self.size, 255)
        self.draw = ImageDraw.Draw(self.image)
        self.left, self.right = round(25 * self.px), self.size[0] - round(25 * self.px)
        self.y = round(28 * self.px)
        self.bottom = self.size[1] - round(25 * self.px)
        pt = style.dpi / 72
        self.body = pil_font(style.font, "", round(10.5 * pt))
        self.bold = pil_font(style.font, "B", round(10.5 * pt))
        self.heading = pil_font(style.font, "B", round(13 * pt))
        self.small = pil_font(style.font, "", round(8.5 * pt))
        self.line_h = round(10.5 * pt * 1.32)

    def _need(self, height: float) -> None:
        if self.y + height > self.bottom:
            raise ValueError("the scanned blocks do not fit on one page: scan fewer blocks")

    def text_block(self, text: str, font: ImageFont.FreeTypeFont, gap: float) -> None:
        lines = _wrap(self.draw, text, font, self.right - self.left)
        line_h = round(font.size * 1.32)
        self._need(len(lines) * line_h)
        for line in lines:
            self.draw.text((self.left, self.y), line, font=font, fill=25)
            self.y += line_h
        self.y += round(gap * self.px)

    def paragraph(self, block: Block) -> None:
        indent = round(14 * self.px) if block.number else 0
        lines = _wrap(self.draw, block.body, self.body, self.right - self.left - indent)
        self._need(len(lines) * self.line_h)
        if block.number:
            self.draw.text((self.left, self.y), block.number, font=self.bold, fill=25)
        for line in lines:
            self.draw.text((self.left + indent, self.y), line, font=self.body, fill=25)
            self.y += self.line_h
        self.y += round(2.5 * self.px)

    def table_row(self, cells: list[str], header: bool) -> None:
        font = self.bold if header else self.body
        width = self.right - self.left
        xs = [self.left]
        for ratio in table_column_ratios(len(cells)):
            xs.append(xs[-1] + ratio * width)
        pad = round(1.5 * self.px)
        wrapped = [_wrap(self.draw, c, font, xs[i + 1] - xs[i] - 2 * pad) for i, c in enumerate(cells)]
        height = max(len(w) for w in wrapped) * self.line_h + 2 * pad
        self._need(height)
        for i, lines in enumerate(wrapped):
            self.draw.rectangle((xs[i], self.y, xs[i + 1], self.y + height), outline=40, width=2)
            for k, line in enumerate(lines):
                self.draw.text((xs[i] + pad, self.y + pad + k * self.line_h), line, font=font, fill=25)
        self.y += height

    def running_text(self) -> None:
        if self.style.header:
            w = self.draw.textlength(self.style.header, font=self.small)
            self.draw.text(((self.size[0] - w) / 2, round(12 * self.px)), self.style.header, font=self.small, fill=40)
        left, right = self.style.footer
        y = self.size[1] - round(15 * self.px)
        if left:
            self.draw.text((self.left, y), left, font=self.small, fill=40)
        w = self.draw.textlength(right, font=self.small)
        self.draw.text((self.right - w, y), right, font=self.small, fill=40)

    def finish(self) -> bytes:
        rng = np.random.default_rng(self.style.seed)
        pixels = np.asarray(self.image, dtype=np.float32)
        pixels = pixels * 0.93 + 8 + rng.normal(0, 9, pixels.shape)  # grey paper and sensor noise
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
        image = image.rotate(self.style.rotation, resample=Image.Resampling.BILINEAR, fillcolor=245)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=55, optimize=True, dpi=(self.style.dpi, self.style.dpi))
        return out.getvalue()


def scan_image(pieces: list[Piece], style: ScanStyle) -> bytes:
    """A scanned page (greyscale JPEG, no text layer) showing the given pieces and the running text."""
    writer = _ScanWriter(style)
    for piece in pieces:
        block = piece.block
        if block.kind == "heading":
            writer.text_block(block.text, writer.heading, 3)
        elif block.kind in ("subheading", "title_line", "contents_title"):
            writer.text_block(block.text, writer.bold, 2)
        elif block.kind in ("table_header", "table_row"):
            writer.table_row(block.cells or [block.text], block.kind == "table_header")
        else:
            writer.paragraph(block)
    writer.running_text()
    return writer.finish()


# ---------------------------------------------------------------- reading a PDF back


def page_texts(pdf: bytes | Path) -> list[str]:
    """The text layer of every page (pypdfium2), lines separated by newlines."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf if isinstance(pdf, bytes) else str(pdf))
    try:
        texts = []
        for page in document:
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n"))
            textpage.close()
            page.close()
        return texts
    finally:
        document.close()


_HYPHEN_AT_EOL = re.compile(r"[-\u00ad\u2010\x02\ufffe]\s*\n\s*")


def tokens(text: str) -> list[str]:
    """Comparison tokens: lower-case alphanumeric runs, with line-end hyphenation joined and hyphens
    dropped (so "multi-agency", "multi-\\nagency" and "multiagency" compare equal)."""
    text = _HYPHEN_AT_EOL.sub("", text).replace("\ufffe", "")  # pdfium marks a line-end hyphen as U+FFFE
    text = text.replace("-", "").replace("\u00ad", "").lower()
    return re.findall(r"[^\W_]+", text)
