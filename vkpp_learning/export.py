"""Export an evidence basket: a DOCX briefing pack, an XLSX workbook, CSV or Markdown, every excerpt
with its full citation, the searches that found it, and a method note saying how its themes were tagged."""

from __future__ import annotations

import csv
import io
import re
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vkpp_learning.baskets import THEME_FACET, Excerpt, basket_excerpts, basket_queries, get_basket
from vkpp_learning.db import models
from vkpp_learning.errors import ConfigurationError, VkppError

FORMATS = ("docx", "xlsx", "csv", "md")
NO_THEME = "No practice theme tagged"
# Cells a spreadsheet would run as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Characters XML 1.0 (and so DOCX and XLSX) cannot hold.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")
CHART_WIDTH_INCHES = 6.0
COLUMNS = (
    "citation",
    "review_type",
    "subtype",
    "subject",
    "review_title",
    "commissioner",
    "area",
    "year",
    "page_start",
    "page_end",
    "paragraph",
    "section",
    "themes",
    "theme_ids",
    "tagged_by",
    "note",
    "text",
    "passage_id",
    "review_id",
    "added_by",
)


@dataclass(frozen=True)
class TagRunNote:
    """How one current tag run was made, for the method note."""

    method: str
    taxonomy_version: str
    model_version: str | None
    created_at: datetime | None


@dataclass
class Briefing:
    """Everything an export prints about one basket."""

    name: str
    description: str
    created_by: str
    excerpts: list[Excerpt]
    searches: list[dict[str, Any]]
    runs: list[TagRunNote]
    theme_names: dict[str, str]  # practice themes by id, in taxonomy order
    taxonomy_version: str  # of the taxonomy loaded now; "" when it could not be loaded
    decisions: int  # analysts' decisions recorded on these excerpts
    label_names: dict[str, str] = field(default_factory=dict)  # every facet's theme names, for search filters
    exported_at: datetime = field(default_factory=lambda: datetime.now().astimezone())

    @property
    def reviews(self) -> int:
        return len({e.review_id for e in self.excerpts})

    def theme_name(self, theme_id: str) -> str:
        return self.theme_names.get(theme_id, theme_id)


def briefing(session: Session, name: str) -> Briefing:
    """Read a basket and what the method note needs."""
    basket = get_basket(session, name)
    excerpts = basket_excerpts(session, basket.name)
    names, version, labels = theme_names()
    return Briefing(
        name=basket.name,
        description=basket.description or "",
        created_by=basket.created_by,
        excerpts=excerpts,
        searches=basket_queries(session, basket.name),
        runs=current_runs(session),
        theme_names=names,
        label_names=labels,
        taxonomy_version=version,
        decisions=decision_count(session, [e.passage_id for e in excerpts]),
    )


def theme_names() -> tuple[dict[str, str], str, dict[str, str]]:
    """Practice theme names by id, the taxonomy version, and every facet's names by id; ids stand for names
    when the taxonomy cannot be loaded."""
    from vkpp_learning.taxonomy import load_taxonomy

    try:
        taxonomy = load_taxonomy()
    except ConfigurationError:
        return {}, "", {}
    practice = {theme.id: theme.name for theme in taxonomy.facet(THEME_FACET)}
    return practice, taxonomy.version, {theme.id: theme.name for theme in taxonomy.themes} | practice


def current_runs(session: Session) -> list[TagRunNote]:
    runs = session.scalars(
        select(models.TagRun).where(models.TagRun.is_current.is_(True)).order_by(models.TagRun.method)
    )
    return [TagRunNote(run.method, run.taxonomy_version, run.model_version, run.created_at) for run in runs]


def decision_count(session: Session, passage_ids: list[int]) -> int:
    statement = select(func.count()).where(models.Annotation.passage_id.in_(passage_ids))
    return int(session.scalar(statement) or 0)


def export_basket(session: Session, name: str, fmt: str, out: str | Path | IO[bytes]) -> int:
    """Write the basket as `fmt` (docx, xlsx, csv, md) to a path or binary stream; returns bytes written."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in RENDERERS:
        raise VkppError(f"cannot export as {fmt!r}; formats: {', '.join(FORMATS)}", code="bad_format")
    data = RENDERERS[fmt](briefing(session, name))
    if isinstance(out, str | Path):
        Path(out).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Path(out).expanduser().write_bytes(data)
    else:
        out.write(data)
    return len(data)


# --- content shared by every format ---------------------------------------------------------------


def plain(text: Any) -> str:
    """Text fit for XML: characters DOCX and XLSX cannot hold are dropped."""
    return NOT_XML.sub("", "" if text is None else str(text))


def safe_cell(value: Any) -> Any:
    """A spreadsheet cell: numbers as they are, text never read as a formula (a leading apostrophe)."""
    if value is None or isinstance(value, int | float):
        return value
    text = plain(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def describe_query(query: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """'"stalking" (hybrid); review types: DHR; themes: Risk assessment' from a logged search; `names` turns
    theme ids into their names."""
    text = str(query.get("query") or query.get("q") or "").strip()
    mode = query.get("mode")
    given = query.get("filters")
    filters: dict[str, Any] = given if isinstance(given, dict) else {}
    others = {k: v for k, v in query.items() if k not in ("query", "q", "mode", "filters")}
    words = [f'"{text}"' if text else "no search words"]
    if mode:
        words[0] += f" ({mode})"
    words += [
        f"{key.replace('_', ' ')}: {filter_value(value, names or {})}" for key, value in {**filters, **others}.items()
    ]
    return "; ".join(w for w in words if not w.endswith(": "))


def filter_value(value: Any, names: dict[str, str]) -> str:
    if isinstance(value, list | tuple | set):
        return ", ".join(names.get(str(v), str(v)) for v in value)
    if value is None or value is False:
        return ""
    return "yes" if value is True else str(value)


def search_lines(b: Briefing) -> list[str]:
    if not b.searches:
        return ["No search was recorded: the excerpts were added by hand."]
    return [describe_query(query, b.label_names) for query in b.searches]


def tagger_line(run: TagRunNote) -> str:
    parts = [f"model {run.model_version}" if run.model_version else ""]
    parts.append(f"run {run.created_at:%d %B %Y}" if run.created_at else "")
    details = ", ".join(p for p in parts if p)
    return f"{run.method} ({details})" if details else run.method


def counted(number: int, noun: str) -> str:
    """ "1 review", "3 reviews"."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def method_lines(b: Briefing) -> list[str]:
    """The method note: where the excerpts come from, how they were tagged, and what a tag does not mean."""
    return [
        f"{summary_words(b)}, collected in the evidence basket "
        f'"{b.name}" of the vkpp-learning repository and exported on {b.exported_at:%d %B %Y at %H:%M}.',
        "Each excerpt is quoted as extracted from the published review; its citation gives the review type, "
        "subject, commissioning body, year, page and paragraph.",
        taxonomy_line(b),
        "Taggers: " + ("; ".join(tagger_line(run) for run in b.runs) if b.runs else "none has been run yet") + ".",
        "Themes are the practice themes (perennial issues) of the taxonomy. A theme is shown when a tagger found "
        "evidence for it in the passage (a score at or above its threshold) or an analyst added or confirmed it; "
        f"analysts' decisions override the taggers, and {b.decisions} such decisions apply to these excerpts.",
        "An absent tag is not evidence of absence: a passage without a theme may still concern it, and a review "
        "may discuss a theme in passages not collected here. Counts describe this basket, not all reviews.",
    ]


def summary_words(b: Briefing) -> str:
    return f"{counted(len(b.excerpts), 'excerpt')} from {counted(b.reviews, 'review')}"


def taxonomy_line(b: Briefing) -> str:
    """The taxonomy version(s) the tags were made with, and the one loaded now when it differs."""
    versions = sorted({run.taxonomy_version for run in b.runs if run.taxonomy_version})
    line = "Taxonomy version: " + (", ".join(versions) or b.taxonomy_version or "unknown")
    if versions and b.taxonomy_version and b.taxonomy_version not in versions:
        line += f" (the taxonomy has been edited since: it is now {b.taxonomy_version})"
    return line + "."


def theme_counts(b: Briefing) -> list[tuple[str, int]]:
    """(theme name, excerpts carrying it), most frequent first; an excerpt may count for several themes."""
    counts = Counter(theme for e in b.excerpts for theme in e.themes)
    order = list(b.theme_names)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], order.index(kv[0]) if kv[0] in order else len(order)))
    return [(b.theme_name(theme), count) for theme, count in ranked]


def excerpts_by_theme(b: Briefing) -> list[tuple[str, list[Excerpt]]]:
    """Excerpts grouped under their strongest theme, groups in taxonomy order; untagged ones last."""
    groups: dict[str, list[Excerpt]] = {}
    for e in b.excerpts:
        groups.setdefault(e.themes[0] if e.themes else "", []).append(e)
    order = list(b.theme_names)
    keys = sorted(groups, key=lambda k: (k == "", order.index(k) if k in order else len(order), k))
    return [(b.theme_name(key) if key else NO_THEME, groups[key]) for key in keys]


def tagged_by(e: Excerpt) -> str:
    return ", ".join(dict.fromkeys(tag.source for tag in e.tags if tag.facet == THEME_FACET))


def excerpt_row(b: Briefing, e: Excerpt) -> dict[str, Any]:
    """One excerpt as a row of the spreadsheet and CSV exports."""
    return {
        "citation": e.citation,
        "review_type": e.review_type,
        "subtype": e.subtype or "",
        "subject": e.subject,
        "review_title": e.review_title,
        "commissioner": e.commissioner,
        "area": e.area,
        "year": e.year,
        "page_start": e.page_start,
        "page_end": e.page_end,
        "paragraph": e.paragraph or "",
        "section": e.section,
        "themes": "; ".join(b.theme_name(t) for t in e.themes),
        "theme_ids": "; ".join(e.themes),
        "tagged_by": tagged_by(e),
        "note": e.note,
        "text": e.text,
        "passage_id": e.passage_id,
        "review_id": e.review_id,
        "added_by": e.added_by,
    }


def cited_reviews(b: Briefing) -> list[str]:
    """Each review cited once, as the review part of its citations, in order of first appearance."""
    seen: dict[int, str] = {}
    for e in b.excerpts:
        seen.setdefault(e.review_id, f"{e.review_citation}: {e.review_title}")
    return list(seen.values())


# --- the chart ------------------------------------------------------------------------------------


def chart_png(counts: list[tuple[str, int]], title: str = "Excerpts per practice theme") -> bytes:
    """A horizontal bar chart of theme counts as PNG (Agg, no display, no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    names = [textwrap.fill(name, 34) for name, _count in reversed(counts)] or ["(no theme tagged)"]
    values = [count for _name, count in reversed(counts)] or [0]
    figure = Figure(figsize=(CHART_WIDTH_INCHES, 1.2 + 0.45 * len(names)), dpi=150)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bars = axes.barh(names, values, color="#2f5f8a")
    axes.bar_label(bars, padding=3, fontsize=8)
    axes.set_xlabel("excerpts (an excerpt may carry several themes)", fontsize=8)
    axes.set_title(title, fontsize=10)
    axes.tick_params(axis="y", labelsize=8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    stream = io.BytesIO()
    figure.savefig(stream, format="png")
    return stream.getvalue()


# --- DOCX -----------------------------------------------------------------------------------------


def docx_bytes(b: Briefing) -> bytes:
    """The briefing pack: title, date, searches, method, theme chart, excerpts by theme, reviews cited."""
    from docx import Document

    document = Document()
    document.core_properties.title = plain(b.name)
    document.core_properties.author = plain(b.created_by)
    document.add_heading(plain(b.name), level=0)
    if b.description:
        document.add_paragraph(plain(b.description))
    document.add_paragraph(f"Evidence briefing, {b.exported_at:%d %B %Y}: {summary_words(b)}.")
    docx_section(document, "Searches and filters used", search_lines(b), style="List Bullet")
    docx_section(document, "Method", method_lines(b))
    docx_chart(document, b)
    docx_excerpts(document, b)
    docx_section(document, "Reviews cited", cited_reviews(b), style="List Bullet")
    stream = io.BytesIO()
    document.save(stream)
    return stream.getvalue()


def docx_section(document: Any, heading: str, lines: list[str], style: str | None = None) -> None:
    document.add_heading(heading, level=1)
    for line in lines:
        document.add_paragraph(plain(line), style=style)


def docx_chart(document: Any, b: Briefing) -> None:
    from docx.shared import Inches

    document.add_heading("Theme prevalence", level=1)
    counts = theme_counts(b)
    if not counts:
        document.add_paragraph("No excerpt in this basket carries a practice theme, so there is no chart.")
        return
    title = f"Excerpts per practice theme ({counted(len(b.excerpts), 'excerpt')} in all)"
    document.add_picture(io.BytesIO(chart_png(counts, title)), width=Inches(CHART_WIDTH_INCHES))
    document.add_paragraph(
        f"Number of the {len(b.excerpts)} excerpts tagged with each practice theme; an excerpt may carry "
        "several themes, and an untagged theme is not evidence of absence."
    )


def docx_excerpts(document: Any, b: Briefing) -> None:
    document.add_heading("Excerpts by theme", level=1)
    if not b.excerpts:
        document.add_paragraph(
            "This basket holds no excerpts. Passages leave a basket when their review is deleted or re-ingested."
        )
    for theme, excerpts in excerpts_by_theme(b):
        document.add_heading(f"{plain(theme)} ({len(excerpts)})", level=2)
        for e in excerpts:
            docx_excerpt(document, b, e)


def docx_excerpt(document: Any, b: Briefing, e: Excerpt) -> None:
    document.add_paragraph().add_run(plain(e.citation)).bold = True
    document.add_paragraph(plain(e.text), style="Quote")
    if e.note:
        note = document.add_paragraph()
        note.add_run("Analyst's note: ").bold = True
        note.add_run(plain(e.note)).italic = True
    if e.themes:
        document.add_paragraph("Themes: " + "; ".join(plain(b.theme_name(t)) for t in e.themes))


# --- XLSX, CSV, Markdown -------------------------------------------------------------------------


def xlsx_bytes(b: Briefing) -> bytes:
    """Sheet "Excerpts": one row per excerpt with every citation field; sheet "Method": the method note."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Excerpts"
    sheet.append(list(COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for e in b.excerpts:
        row = excerpt_row(b, e)
        sheet.append([safe_cell(row[column]) for column in COLUMNS])
    sheet.freeze_panes = "A2"
    text_column = get_column_letter(COLUMNS.index("text") + 1)
    sheet.column_dimensions["A"].width = 48
    sheet.column_dimensions[text_column].width = 90
    for cell in sheet[text_column][1:]:
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    write_method_sheet(workbook.create_sheet("Method"), b)
    stream = io.BytesIO()
    workbook.save(stream)
    return stream.getvalue()


def method_rows(b: Briefing) -> list[tuple[str, str]]:
    """The method note as (field, value) pairs, for the Method sheet."""
    rows = [("basket", b.name), ("description", b.description), ("created by", b.created_by)]
    rows += [("exported", f"{b.exported_at:%Y-%m-%d %H:%M %Z}".strip())]
    rows += [("search", line) for line in search_lines(b)]
    rows += [("method", line) for line in method_lines(b)]
    rows += [(f"theme count: {name}", str(count)) for name, count in theme_counts(b)]
    return rows


def write_method_sheet(sheet: Any, b: Briefing) -> None:
    from openpyxl.styles import Alignment

    sheet.append(["field", "value"])
    for key, value in method_rows(b):
        sheet.append([safe_cell(key), safe_cell(value)])
    sheet.column_dimensions["A"].width = 30
    sheet.column_dimensions["B"].width = 110
    for cell in sheet["B"]:
        cell.alignment = Alignment(wrap_text=True, vertical="top")


def csv_bytes(b: Briefing) -> bytes:
    """One row per excerpt, the same columns as the spreadsheet; UTF-8 with a BOM so Excel reads it right."""
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for e in b.excerpts:
        writer.writerow({k: "" if v is None else safe_cell(v) for k, v in excerpt_row(b, e).items()})
    return stream.getvalue().encode("utf-8-sig")


def md(text: Any) -> str:
    """Document text as literal Markdown: one line, markup characters escaped."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(plain(text).split()))


def markdown_bytes(b: Briefing) -> bytes:
    """The briefing pack in Markdown; the chart becomes a table of theme counts."""
    lines = [f"# {md(b.name)}", ""]
    lines += [md(b.description), ""] if b.description else []
    lines += [f"Evidence briefing, {b.exported_at:%d %B %Y}: {summary_words(b)}.", ""]
    lines += ["## Searches and filters used", "", *[f"- {md(line)}" for line in search_lines(b)], ""]
    lines += ["## Method", "", *[line for text in method_lines(b) for line in (md(text), "")]]
    lines += ["## Theme prevalence", "", "| theme | excerpts |", "| --- | ---: |"]
    lines += [f"| {md(name)} | {count} |" for name, count in theme_counts(b)] + [""]
    lines += ["## Excerpts by theme", ""]
    for theme, excerpts in excerpts_by_theme(b):
        lines += [f"### {md(theme)} ({len(excerpts)})", ""]
        for e in excerpts:
            lines += markdown_excerpt(b, e)
    lines += ["## Reviews cited", "", *[f"- {md(line)}" for line in cited_reviews(b)], ""]
    return "\n".join(lines).encode("utf-8")


def markdown_excerpt(b: Briefing, e: Excerpt) -> list[str]:
    lines = [f"**{md(e.citation)}**", "", f"> {md(e.text)}", ""]
    if e.note:
        lines += [f"*Analyst's note:* {md(e.note)}", ""]
    if e.themes:
        lines += ["Themes: " + "; ".join(md(b.theme_name(t)) for t in e.themes), ""]
    return lines


RENDERERS: dict[str, Callable[[Briefing], bytes]] = {
    "docx": docx_bytes,
    "xlsx": xlsx_bytes,
    "csv": csv_bytes,
    "md": markdown_bytes,
}
