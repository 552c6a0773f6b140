"""Renders a review plan as a .docx (python-docx) and converts it with LibreOffice
(`soffice --headless --convert-to pdf`), as many council offices publish their reviews.

LibreOffice does not say where it broke pages, so page assignment is read back: the source words of
every block, in document order, are aligned (difflib, on `tokens()`) with the words of all pages'
text layers (pypdfium2) in page order; each source word takes the page of the text-layer word it
matched (an unmatched word the page of the word before it), and a block is cut where its words
change page. Table header rows are added on each later page a table runs on to, footnotes at the
foot of the page where their paragraph ends, and the scanned page (the page with no text layer)
gets its scanned blocks. The contents page numbers and the scanned page's "Page X of Y" come from
the previous conversion: the document is converted until they settle (two or three times).
"""

from __future__ import annotations

import difflib
import hashlib
import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from _render_common import (
    Block,
    Layout,
    Piece,
    Plan,
    ScanStyle,
    author_name,
    contents_blocks,
    creation_date,
    footer_text,
    iter_body_runs,
    page_texts,
    scan_image,
    scan_pieces,
    table_column_ratios,
    tokens,
)
from docx import Document
from docx.enum.section import WD_SECTION
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_TAB_ALIGNMENT
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.opc.packuri import PackURI
from docx.opc.part import Part
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

SOFFICE = shutil.which("soffice") or "/usr/bin/soffice"
MAX_PASSES = 4
FOOTNOTES_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


# ---------------------------------------------------------------- the .docx


class DocxWriter:
    """Builds the Word document: title page, contents, running text, body, real footnotes."""

    def __init__(self, plan: Plan, heading_pages: dict[int, int], scan_footer: tuple[str, str]) -> None:
        self.plan, self.heading_pages, self.scan_footer = plan, heading_pages, scan_footer
        self.doc = Document()
        self.font = "Times New Roman" if plan.render["font"] == "serif" else "Arial"
        self.size = 11 if plan.render["font"] == "serif" else 10
        self.notes: list[tuple[int, str]] = []
        self._styles()

    # -- set up

    def _styles(self) -> None:
        for name in ("Normal", "Heading 1", "Heading 2", "Heading 3", "Title"):
            style = self.doc.styles[name]
            style.font.name = self.font
            style.font.color.rgb = RGBColor(0, 0, 0)
            fonts = style.element.get_or_add_rPr().get_or_add_rFonts()
            for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
                fonts.set(qn(attr), self.font)
            for theme in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
                fonts.attrib.pop(qn(theme), None)
        normal = self.doc.styles["Normal"]
        normal.font.size = Pt(self.size)
        normal.paragraph_format.space_after = Pt(6)
        normal.paragraph_format.line_spacing = 1.1
        self.doc.styles["Heading 1"].font.size = Pt(self.size + 3)
        self.doc.styles["Heading 3"].font.size = Pt(self.size)
        for name in ("Heading 1", "Heading 3"):
            self.doc.styles[name].paragraph_format.space_before = Pt(10)
            self.doc.styles[name].paragraph_format.keep_with_next = True
        self.doc.styles["Heading 3"].font.italic = True
        section = self.doc.sections[0]
        section.page_width, section.page_height = Mm(210), Mm(297)
        self._margins(section, 25)

    @staticmethod
    def _margins(section: Any, mm: float) -> None:
        section.left_margin = section.right_margin = Mm(mm)
        section.top_margin, section.bottom_margin = Mm(mm), Mm(mm)
        section.header_distance = section.footer_distance = Mm(max(0.0, mm - 13))

    @staticmethod
    def _columns(section: Any, count: int) -> None:
        sect_pr = section._sectPr
        cols = sect_pr.find(qn("w:cols"))
        if cols is None:
            cols = OxmlElement("w:cols")
            sect_pr.append(cols)
        cols.set(qn("w:num"), str(count))
        cols.set(qn("w:space"), "425")

    def _running(self, section: Any) -> None:
        """The running header and "Page X of Y" footer (fields, so LibreOffice numbers the pages)."""
        section.header.is_linked_to_previous = False
        section.footer.is_linked_to_previous = False
        header = section.header.paragraphs[0]
        header.text = self.plan.render.get("header") or ""
        header.alignment = WD_ALIGN_PARAGRAPH.CENTER
        footer = section.footer.paragraphs[0]
        footer.text = ""
        footer.style = self.doc.styles["Normal"]  # not "Footer", whose centre tab would catch the title
        footer.paragraph_format.tab_stops.add_tab_stop(Mm(160), WD_TAB_ALIGNMENT.RIGHT)
        title = self.plan.doc_title if self.plan.render.get("footer_title") else ""
        run = footer.add_run(f"{title}\tPage ")
        run.font.size = Pt(8)
        self._field(footer, "PAGE")
        footer.add_run(" of ").font.size = Pt(8)
        self._field(footer, "NUMPAGES")
        for run in header.runs:
            run.font.size = Pt(8.5)

    @staticmethod
    def _field(paragraph: Any, instruction: str) -> None:
        field = OxmlElement("w:fldSimple")
        field.set(qn("w:instr"), instruction)
        run = OxmlElement("w:r")
        rpr = OxmlElement("w:rPr")
        size = OxmlElement("w:sz")
        size.set(qn("w:val"), "16")
        rpr.append(size)
        run.append(rpr)
        text = OxmlElement("w:t")
        text.text = "1"
        run.append(text)
        field.append(run)
        paragraph._p.append(field)

    # -- content

    def title_and_contents(self) -> None:
        section = self.doc.sections[0]
        section.different_first_page_header_footer = True
        self._running(section)
        sizes = {"type": 24, "report": 16, "title": 17}
        first = True
        for block in self.plan.title_lines:
            paragraph = self.doc.add_paragraph()
            paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
            paragraph.paragraph_format.space_before = Pt(150 if first else 6)
            paragraph.paragraph_format.space_after = Pt(30 if block.role == "report" else 12)
            run = paragraph.add_run(block.body)
            run.font.size = Pt(sizes.get(block.role, 12))
            run.bold = block.role in ("type", "title")
            first = False
        entries = contents_blocks(self.plan, self.heading_pages)
        heading = self.doc.add_paragraph(entries[0].body, style="Heading 1")
        heading.paragraph_format.page_break_before = True
        for entry in entries[1:]:
            paragraph = self.doc.add_paragraph()
            paragraph.paragraph_format.tab_stops.add_tab_stop(Mm(160), WD_TAB_ALIGNMENT.RIGHT)
            paragraph.add_run(f"{entry.body}\t{entry.text.rsplit(' ', 1)[1]}")

    def body_section(self) -> None:
        section = self.doc.add_section(WD_SECTION.NEW_PAGE)
        section.different_first_page_header_footer = False  # add_section copies the title page's setting
        self._margins(section, 25)
        self._columns(section, self.plan.render["columns"])
        self._running(section)

    def heading(self, block: Block) -> None:
        self.doc.add_paragraph(block.text, style="Heading 1" if block.kind == "heading" else "Heading 3")

    def paragraph(self, block: Block) -> None:
        paragraph = self.doc.add_paragraph()
        paragraph.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
        if block.number:
            indent = Mm(16 if block.number.startswith("Para") else 13)
            paragraph.paragraph_format.left_indent = indent
            paragraph.paragraph_format.first_line_indent = -indent
            paragraph.paragraph_format.tab_stops.add_tab_stop(indent)
            paragraph.add_run(block.number).bold = True
            paragraph.add_run("\t")
        paragraph.add_run(block.body)
        if block.footnote:
            self._footnote_reference(paragraph, block.footnote)
            self.notes.append((block.footnote, self.plan.footnotes[block.footnote].body))

    def table(self, blocks: list[Block]) -> None:
        two_columns = self.plan.render["columns"] == 2
        if two_columns:  # a full-width table in a two-column report: a one-column section around it
            self._continuous_section(1)
        header, rows = blocks[0], blocks[1:]
        table = self.doc.add_table(rows=len(rows) + 1, cols=len(header.cells or []))
        table.style = "Table Grid"
        table.alignment = WD_TABLE_ALIGNMENT.CENTER
        table.autofit = False
        widths = [Mm(160 * r) for r in table_column_ratios(len(header.cells or []))]
        for column, width in zip(table.columns, widths, strict=True):
            column.width = width
        for r, block in enumerate([header, *rows]):
            row = table.rows[r]
            tr_pr = row._tr.get_or_add_trPr()
            tr_pr.append(OxmlElement("w:cantSplit"))
            if r == 0:
                tr_pr.append(OxmlElement("w:tblHeader"))
            for c, text in enumerate(block.cells or []):
                cell = row.cells[c]
                cell.width = widths[c]
                paragraph = cell.paragraphs[0]
                paragraph.paragraph_format.space_after = Pt(2)
                run = paragraph.add_run(text)
                run.font.size = Pt(self.size - 1.5)
                run.bold = r == 0
        self.doc.add_paragraph().paragraph_format.space_after = Pt(2)
        if two_columns:
            self._continuous_section(2)

    def _continuous_section(self, columns: int) -> None:
        section = self.doc.add_section(WD_SECTION.CONTINUOUS)
        self._columns(section, columns)

    def scan(self, blocks: list[Block]) -> None:
        section = self.doc.add_section(WD_SECTION.NEW_PAGE)
        self._margins(section, 3)
        self._columns(section, 1)
        for part in (section.header, section.footer):
            part.is_linked_to_previous = False
            part.paragraphs[0].text = ""
        style = ScanStyle(
            font=self.plan.render["font"], header=self.plan.render.get("header"), seed=len(self.plan.body),
            footer=self.scan_footer,
        )  # fmt: skip
        image = scan_image(scan_pieces(self.plan, blocks), style)
        paragraph = self.doc.add_paragraph()
        paragraph.paragraph_format.space_after = Pt(0)
        paragraph.add_run().add_picture(io.BytesIO(image), width=Mm(203), height=Mm(287))
        self.body_section()

    # -- footnotes: python-docx has no API for them, so the part is written here

    @staticmethod
    def _footnote_reference(paragraph: Any, number: int) -> None:
        run = paragraph.add_run()
        rpr = run._r.get_or_add_rPr()
        align = OxmlElement("w:vertAlign")
        align.set(qn("w:val"), "superscript")
        rpr.append(align)
        reference = OxmlElement("w:footnoteReference")
        reference.set(qn("w:id"), str(number))
        run._r.append(reference)

    def _footnotes_part(self) -> None:
        if not self.notes:
            return
        notes = [
            '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>',
            '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r>'
            "</w:p></w:footnote>",
        ]
        for number, text in self.notes:
            notes.append(
                f'<w:footnote w:id="{number}"><w:p><w:pPr><w:spacing w:after="0"/></w:pPr>'
                f'<w:r><w:rPr><w:vertAlign w:val="superscript"/><w:sz w:val="15"/></w:rPr><w:footnoteRef/></w:r>'
                f'<w:r><w:rPr><w:sz w:val="15"/></w:rPr><w:t xml:space="preserve"> {_xml(text)}</w:t></w:r>'
                f"</w:p></w:footnote>"
            )
        xml = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:footnotes xmlns:w="{W_NS}">'
        xml += "".join(notes) + "</w:footnotes>"
        part = Part(PackURI("/word/footnotes.xml"), FOOTNOTES_TYPE, xml.encode("utf-8"), self.doc.part.package)
        self.doc.part.relate_to(part, RELATIONSHIP_TYPE.FOOTNOTES)

    def save(self) -> bytes:
        self._footnotes_part()
        source = self.plan.source
        props = self.doc.core_properties
        props.title, props.author = source["title"], author_name(source)
        props.subject = f"{source['review_type']} review: {source['subject']}"
        props.created = props.modified = creation_date(source).replace(tzinfo=None)
        props.last_modified_by, props.revision = author_name(source), 1
        out = io.BytesIO()
        self.doc.save(out)
        return out.getvalue()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_docx(plan: Plan, heading_pages: dict[int, int], scan_footer: tuple[str, str]) -> bytes:
    writer = DocxWriter(plan, heading_pages, scan_footer)
    writer.title_and_contents()
    writer.body_section()
    for kind, blocks in iter_body_runs(plan):
        if kind == "scan":
            writer.scan(blocks)
        elif kind == "table":
            writer.table(blocks)
        elif blocks[0].kind in ("heading", "subheading"):
            writer.heading(blocks[0])
        else:
            writer.paragraph(blocks[0])
    return writer.save()


# ---------------------------------------------------------------- LibreOffice


def convert(docx: bytes, stem: str) -> bytes:
    """docx -> PDF with LibreOffice, in a private profile so parallel conversions do not collide."""
    with tempfile.TemporaryDirectory(prefix="vkpp_lo_") as tmp:
        src = Path(tmp) / f"{stem}.docx"
        src.write_bytes(docx)
        command = [
            SOFFICE, f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--norestore",
            "--convert-to", "pdf", "--outdir", tmp, str(src),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        pdf = Path(tmp) / f"{stem}.pdf"
        if result.returncode != 0 or not pdf.exists():
            raise RuntimeError(f"LibreOffice could not convert {stem}.docx: {result.stderr.strip()[:500]}")
        return pdf.read_bytes()


def fix_metadata(pdf: bytes, plan: Plan) -> bytes:
    """Fixed creation date and file id in place (same byte lengths), so builds are reproducible."""
    stamp = creation_date(plan.source).strftime("%Y%m%d%H%M%S").encode()
    pdf = re.sub(rb"/(CreationDate|ModDate)\(D:\d{14}", lambda m: b"/" + m.group(1) + b"(D:" + stamp, pdf)
    pdf = re.sub(rb"/ID\s*\[\s*<[0-9A-Fa-f]+>\s*<[0-9A-Fa-f]+>\s*\]", lambda m: b"#" * len(m.group(0)), pdf)
    pdf = re.sub(rb"/DocChecksum /[0-9A-Fa-f]{32}", b"/DocChecksum /" + b"0" * 32, pdf)
    digest = hashlib.md5(pdf, usedforsecurity=False).hexdigest().upper().encode()
    pdf = pdf.replace(b"/DocChecksum /" + b"0" * 32, b"/DocChecksum /" + digest)
    return re.sub(rb"#{20,}", lambda m: _id_entry(m.group(0), digest), pdf)


def _id_entry(hole: bytes, digest: bytes) -> bytes:
    entry = b"/ID [ <" + digest + b"> <" + digest + b"> ]"
    return entry.ljust(len(hole), b" ")[: len(hole)]


# ---------------------------------------------------------------- reading the pages back


def _flat_words(blocks: list[Block]) -> tuple[list[str], list[tuple[int, int]]]:
    """Comparison tokens of the blocks' words, each with (block index, word index)."""
    stream: list[str] = []
    owners: list[tuple[int, int]] = []
    for b, block in enumerate(blocks):
        for w, word in enumerate(block.words):
            for token in tokens(word):
                stream.append(token)
                owners.append((b, w))
    return stream, owners


def _page_tokens(texts: list[str]) -> tuple[list[str], list[int]]:
    stream: list[str] = []
    pages: list[int] = []
    for number, text in enumerate(texts, start=1):
        found = tokens(text)
        stream += found
        pages += [number] * len(found)
    return stream, pages


def word_pages(blocks: list[Block], texts: list[str]) -> list[list[int]]:
    """For each block, the page of each of its words, by aligning source words with the text layer."""
    source, owners = _flat_words(blocks)
    layer, layer_pages = _page_tokens(texts)
    token_page: list[int | None] = [None] * len(source)
    matcher = difflib.SequenceMatcher(None, source, layer, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            token_page[a + k] = layer_pages[b + k]
    pages = [[0] * len(block.words) for block in blocks]
    seen = [[False] * len(block.words) for block in blocks]
    for (b, w), page in zip(owners, token_page, strict=True):
        if page is not None and not seen[b][w]:
            pages[b][w], seen[b][w] = page, True
    current = 1
    for b, block in enumerate(blocks):  # unmatched words take the page before them; pages never go back
        for w in range(len(block.words)):
            current = max(current, pages[b][w]) if seen[b][w] else current
            pages[b][w] = current
    return pages


def read_layout(plan: Plan, texts: list[str], heading_pages: dict[int, int]) -> Layout:
    """The pieces per page, from the text layer (see the module docstring)."""
    scanned_page = next((n for n, t in enumerate(texts, start=1) if not t.strip()), None)
    span = plan.scanned_range()
    flowing = [*plan.title_lines, *contents_blocks(plan, heading_pages)]
    flowing += [b for b in plan.body if not b.scanned]
    pages_of = word_pages(flowing, texts)
    pages: list[list[Piece]] = [[] for _ in texts]
    for block, word_page in zip(flowing, pages_of, strict=True):
        start = 0
        for w in range(1, len(word_page) + 1):
            if w == len(word_page) or word_page[w] != word_page[start]:
                end = None if w == len(word_page) else w
                pages[word_page[start] - 1].append(Piece(block, start, end))
                start = w
    if span and scanned_page:
        pages[scanned_page - 1] = scan_pieces(plan, plan.body[span[0] : span[1]])
    _repeat_table_headers(plan, pages)
    _add_footnotes(plan, pages)
    return Layout(pages=pages, scanned_page=scanned_page if span else None)


def _repeat_table_headers(plan: Plan, pages: list[list[Piece]]) -> None:
    """LibreOffice repeats a table's header row at the top of each later page the table runs on to."""
    seen_tables: set[int] = set()
    for number, pieces in enumerate(pages):
        updated: list[Piece] = []
        for piece in pieces:
            block = piece.block
            if block.kind == "table_header":
                seen_tables.add(block.table or 0)
            elif block.kind == "table_row" and not block.scanned and block.table in seen_tables:
                before = [p.block for p in updated]
                if not any(b.table == block.table and b.kind in ("table_header", "table_row") for b in before):
                    updated.append(Piece(plan.table_header(block.table or 0)))
            updated.append(piece)
        pages[number] = updated


def _add_footnotes(plan: Plan, pages: list[list[Piece]]) -> None:
    for pieces in pages:
        ends = [p.block for p in pieces if p.block.footnote and p.end is None and p.block.kind == "paragraph"]
        pieces.extend(Piece(plan.footnotes[b.footnote or 0]) for b in ends)


def render(plan: Plan, out_path: Path, **_: Any) -> Layout:
    """Convert until the contents page numbers, page count and scanned page settle; write the PDF."""
    heading_pages: dict[int, int] = {}
    scan_footer = ("", "")
    for _ in range(MAX_PASSES):
        pdf = convert(build_docx(plan, heading_pages, scan_footer), plan.source["doc_id"])
        texts = page_texts(pdf)
        layout = read_layout(plan, texts, heading_pages)
        found_footer = footer_text(plan, layout.scanned_page or 0, len(texts)) if layout.scanned_page else ("", "")
        if layout.heading_pages() == heading_pages and found_footer == scan_footer:
            out_path.write_bytes(fix_metadata(pdf, plan))
            return layout
        heading_pages, scan_footer = layout.heading_pages(), found_footer
    raise RuntimeError(f"{plan.source['doc_id']}: the LibreOffice layout did not settle in {MAX_PASSES} passes")
