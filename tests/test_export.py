"""Basket exports opened again and checked: the DOCX briefing pack (python-docx), the XLSX workbook
(openpyxl), CSV and Markdown, on the tagged sample reviews; and one run from PDF to exported briefing."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image
from sqlalchemy import select

from tests.test_evidence import (  # noqa: F401  (tagged_master is a fixture)
    ALICE,
    LOUISE,
    VERA,
    copy_sqlite,
    find_passage,
    tag_review,
    tagged_master,
)
from vkpp_learning import annotations, baskets
from vkpp_learning.citations import abbreviate_commissioner
from vkpp_learning.cli import main
from vkpp_learning.db import Database, models, open_database
from vkpp_learning.errors import PermissionDenied, VkppError
from vkpp_learning.export import COLUMNS, FORMATS, NO_THEME, export_basket, safe_cell
from vkpp_learning.taxonomy import load_taxonomy

BASKET = "Stalking and risk: Louise"
CHILD_E = "cpr_child_e_2020.pdf"
SEARCHES = [
    {"query": "stalking missed opportunity", "mode": "hybrid", "filters": {"type": ["DHR"], "year_from": 2021}},
    {"query": "chronology", "mode": "keyword"},
]
SEARCH_LINES = ['"stalking missed opportunity" (hybrid); type: DHR; year from: 2021', '"chronology" (keyword)']
# Notes an analyst might paste that a spreadsheet would run as formulas, and markup a Markdown viewer would run.
HOSTILE_NOTES = {
    "7.11": '=HYPERLINK("http://evil.example","click")',
    "7.12": "+44 20 7946 0000 to follow up",
    "table_row": "@SUM(A1:A9)",
    CHILD_E: "-2 grades below what the history showed",
    "7.8": "<script>alert(1)</script> *not bold*\x0b (a stray control character)",
}
BAR_COLOUR = (0x2F, 0x5F, 0x8A)


@pytest.fixture
def briefing_db(tagged_master: str, tmp_path: Path) -> Iterator[Database]:  # noqa: F811
    """A basket of Louise's passages (tagged), one untagged chronology row, and a Child E passage to which an
    analyst added a theme, with hostile notes and two logged searches."""
    db = open_database(copy_sqlite(tagged_master, tmp_path / "briefing.sqlite"))
    with db.writing() as session:
        baskets.create_basket(session, ALICE, BASKET, "Missed stalking risk, for the force briefing")
        for key, note in HOSTILE_NOTES.items():
            passage = passage_for(session, key)
            baskets.add_to_basket(session, ALICE, BASKET, passage.id, note=note, query=SEARCHES[0])
        child_e = passage_for(session, CHILD_E).id
        annotations.annotate(session, ALICE, child_e, "practice", "information_sharing", "add")
        baskets.add_to_basket(session, ALICE, BASKET, passage_for(session, "7.13").id, query=SEARCHES[1])
    yield db
    db.dispose()


def passage_for(session: object, key: str) -> models.Passage:
    if key == "table_row":
        return find_passage(session, LOUISE, kind="table_row")  # type: ignore[arg-type]
    if key == CHILD_E:
        return find_passage(session, CHILD_E, multi_page=True)  # type: ignore[arg-type]
    return find_passage(session, LOUISE, paragraph=key)  # type: ignore[arg-type]


def exported(db: Database, name: str, fmt: str, out: Path | io.BytesIO) -> int:
    with db.session() as session:
        return export_basket(session, name, fmt, out)


def excerpts_of(db: Database, name: str = BASKET) -> list[baskets.Excerpt]:
    with db.session() as session:
        return baskets.basket_excerpts(session, name)


def current_runs(db: Database) -> list[models.TagRun]:
    with db.session() as session:
        return list(session.scalars(select(models.TagRun).where(models.TagRun.is_current.is_(True))))


def theme_names() -> dict[str, str]:
    return {theme.id: theme.name for theme in load_taxonomy().facet("practice")}


def expected_counts(excerpts: list[baskets.Excerpt]) -> dict[str, int]:
    names = theme_names()
    return {names[theme]: count for theme, count in Counter(t for e in excerpts for t in e.themes).items()}


# --- DOCX ----------------------------------------------------------------------------------------------


def test_docx_briefing_pack(briefing_db: Database, tmp_path: Path) -> None:
    from docx import Document

    out = tmp_path / "briefing.docx"
    written = exported(briefing_db, BASKET, "docx", out)
    assert written == out.stat().st_size > 0
    document = Document(str(out))
    paragraphs = [(p.style.name, p.text) for p in document.paragraphs]
    texts = [text for _style, text in paragraphs]
    excerpts = excerpts_of(briefing_db)

    assert paragraphs[0] == ("Title", BASKET)
    assert document.core_properties.title == BASKET
    assert f"Evidence briefing, {datetime.now().astimezone():%d %B %Y}: 6 excerpts from 2 reviews." in texts
    headings = [text for style, text in paragraphs if style == "Heading 1"]
    assert headings == ["Searches and filters used", "Method", "Theme prevalence", "Excerpts by theme", "Reviews cited"]
    assert [text for style, text in paragraphs if style == "List Bullet"][:2] == SEARCH_LINES
    method = " ".join(texts[texts.index("Method") + 1 : texts.index("Theme prevalence")])
    runs = current_runs(briefing_db)
    assert runs and all(run.method in method for run in runs)
    assert f"Taxonomy version: {runs[0].taxonomy_version}" in method
    assert "An absent tag is not evidence of absence" in method
    for e in excerpts:
        assert e.citation in texts, f"citation missing: {e.citation}"
        assert e.text in texts
    assert 'DHR "Louise", Eastmoor CSP, 2023, p. 4, chronology row' in texts
    assert 'CPR "Child E", Bro Morlais RSCB, 2020, pp. 4-5, para 6.1.3' in texts
    groups = {text for style, text in paragraphs if style == "Heading 2"}
    names = theme_names()
    assert {f"{names[e.themes[0]]}" for e in excerpts if e.themes} == {g.rsplit(" (", 1)[0] for g in groups} - {
        NO_THEME
    }
    untagged = sum(1 for e in excerpts if not e.themes)
    assert untagged >= 1 and f"{NO_THEME} ({untagged})" in groups  # the chronology row carries no practice theme
    notes = [text for text in texts if text.startswith("Analyst's note: ")]
    assert f"Analyst's note: {HOSTILE_NOTES['7.11']}" in notes
    assert "Analyst's note: <script>alert(1)</script> *not bold* (a stray control character)" in notes


def test_docx_chart_is_an_embedded_png_of_theme_counts(briefing_db: Database, tmp_path: Path) -> None:
    from docx import Document

    out = tmp_path / "briefing.docx"
    exported(briefing_db, BASKET, "docx", out)
    document = Document(str(out))
    assert len(document.inline_shapes) == 1
    [image] = [part for part in document.part.related_parts.values() if part.content_type == "image/png"]
    chart = Image.open(io.BytesIO(image.blob)).convert("RGB")
    assert chart.width > 600 and chart.height > 200
    bar_pixels = sum(1 for pixel in chart.getdata() if pixel == BAR_COLOUR)
    assert bar_pixels > 1000, "the chart has bars"
    caption = next(p.text for p in document.paragraphs if p.text.startswith("Number of the 6 excerpts"))
    assert "not evidence of absence" in caption


def test_empty_basket_exports_say_so(briefing_db: Database, tmp_path: Path) -> None:
    from docx import Document

    with briefing_db.writing() as session:
        baskets.create_basket(session, ALICE, "Empty")
    out = tmp_path / "empty.docx"
    exported(briefing_db, "Empty", "docx", out)
    texts = [p.text for p in Document(str(out)).paragraphs]
    assert "No search was recorded: the excerpts were added by hand." in texts
    assert any("holds no excerpts" in text for text in texts)
    assert any("no chart" in text for text in texts)
    assert len(Document(str(out)).inline_shapes) == 0


# --- XLSX, CSV, Markdown --------------------------------------------------------------------------------


def test_xlsx_has_every_citation_field_and_a_method_sheet(briefing_db: Database, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    out = tmp_path / "briefing.xlsx"
    exported(briefing_db, BASKET, "xlsx", out)
    workbook = load_workbook(out)
    assert workbook.sheetnames == ["Excerpts", "Method"]
    rows = list(workbook["Excerpts"].iter_rows(values_only=True))
    assert rows[0] == COLUMNS
    records = [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]
    excerpts = excerpts_of(briefing_db)
    assert [r["citation"] for r in records] == [e.citation for e in excerpts]
    assert [r["passage_id"] for r in records] == [e.passage_id for e in excerpts]
    louise = records[0]
    assert (louise["review_type"], louise["subject"], louise["year"], louise["page_start"]) == (
        "DHR",
        "Louise",
        2023,
        7,
    )
    assert louise["paragraph"] == "7.11" and louise["commissioner"] == "Eastmoor Community Safety Partnership"
    names = theme_names()
    assert louise["themes"] == "; ".join(names[t] for t in excerpts[0].themes)
    child_e = next(r for r in records if r["subject"] == "Child E")
    assert (child_e["theme_ids"], child_e["tagged_by"]) == ("information_sharing", f"analyst:{ALICE.name}")
    assert louise["note"] == "'" + HOSTILE_NOTES["7.11"]
    assert {r["note"][:2] for r in records if r["note"]} >= {"'=", "'+", "'@", "'-"}
    cells = [cell for sheet in workbook for row in sheet.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"], "no cell is a formula"
    method = dict(list(workbook["Method"].iter_rows(values_only=True))[1:])
    assert method["basket"] == BASKET
    sheet_text = " ".join(str(v) for row in workbook["Method"].iter_rows(values_only=True) for v in row)
    assert SEARCH_LINES[0] in sheet_text and SEARCH_LINES[1] in sheet_text
    assert current_runs(briefing_db)[0].taxonomy_version in sheet_text and "not evidence of absence" in sheet_text


def test_csv_parses_to_the_same_rows(briefing_db: Database) -> None:
    stream = io.BytesIO()
    written = exported(briefing_db, BASKET, "csv", stream)
    assert written == len(stream.getvalue())
    rows = list(csv.DictReader(io.StringIO(stream.getvalue().decode("utf-8-sig"))))
    excerpts = excerpts_of(briefing_db)
    assert [r["citation"] for r in rows] == [e.citation for e in excerpts]
    assert [int(r["passage_id"]) for r in rows] == [e.passage_id for e in excerpts]
    assert [r["text"] for r in rows] == [e.text for e in excerpts]
    by_paragraph = {r["paragraph"]: r for r in rows}
    assert by_paragraph["7.11"]["note"] == "'" + HOSTILE_NOTES["7.11"]
    assert by_paragraph["7.12"]["note"].startswith("'+44")
    assert by_paragraph["6.1.3"]["note"].startswith("'-2") and by_paragraph["6.1.3"]["page_end"] == "5"


def test_markdown_briefing(briefing_db: Database) -> None:
    stream = io.BytesIO()
    exported(briefing_db, BASKET, "md", stream)
    text = stream.getvalue().decode("utf-8")
    excerpts = excerpts_of(briefing_db)
    assert text.startswith(f"# {BASKET}\n")
    for e in excerpts:
        assert f"**{e.citation}**" in text
    for line in SEARCH_LINES:
        assert f"- {line}" in text
    for name, count in expected_counts(excerpts).items():
        assert f"| {name} | {count} |" in text
    assert "<script>" not in text and r"\<script\>alert(1)\</script\> \*not bold\*" in text
    assert "An absent tag is not evidence of absence" in text


def test_every_format_to_a_stream_and_a_path(briefing_db: Database, tmp_path: Path) -> None:
    for fmt in FORMATS:
        stream = io.BytesIO()
        written = exported(briefing_db, BASKET, fmt, stream)
        path = tmp_path / "nested" / f"briefing.{fmt}"
        assert exported(briefing_db, BASKET, fmt.upper(), path) == path.stat().st_size
        assert written == len(stream.getvalue()) > 500


def test_export_errors(briefing_db: Database, tmp_path: Path) -> None:
    with pytest.raises(VkppError, match="cannot export as 'pdf'") as error:
        exported(briefing_db, BASKET, "pdf", tmp_path / "x.pdf")
    assert error.value.code == "bad_format"
    with pytest.raises(VkppError, match="no basket called 'Nope'"):
        exported(briefing_db, "Nope", "md", tmp_path / "x.md")
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "x.md").exists()


def test_viewers_export_but_do_not_collect(briefing_db: Database) -> None:
    with briefing_db.writing() as session, pytest.raises(PermissionDenied):
        baskets.add_to_basket(session, VERA, BASKET, excerpts_of(briefing_db)[0].passage_id)
    assert exported(briefing_db, BASKET, "md", io.BytesIO()) > 0  # export takes no role: all may


def test_safe_cell() -> None:
    assert [safe_cell(v) for v in ("=1+1", "+1", "-1", "@A1", "\tx", "plain", 7, None, "a\x00b")] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@A1",
        "'\tx",
        "plain",
        7,
        None,
        "ab",
    ]


# --- the command line, and one run from PDF to briefing ---------------------------------------------------


def vkpp(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_export(briefing_db: Database, tmp_path: Path) -> None:
    from docx import Document
    from openpyxl import load_workbook

    db = briefing_db.url
    result = vkpp("export", "--basket", BASKET, "--format", "docx", "--out", str(tmp_path / "b.docx"), "--db", db)
    assert result.exit_code == 0 and "b.docx (docx," in result.stdout
    assert Document(str(tmp_path / "b.docx")).paragraphs[0].text == BASKET
    assert vkpp("export", "--basket", BASKET, "--out", str(tmp_path / "b.xlsx"), "--db", db).exit_code == 0
    assert load_workbook(tmp_path / "b.xlsx").sheetnames == ["Excerpts", "Method"]
    assert vkpp("export", "--basket", BASKET, "--out", str(tmp_path / "b.markdown"), "--db", db).exit_code == 0
    assert (tmp_path / "b.markdown").read_text(encoding="utf-8").startswith(f"# {BASKET}")
    unknown = vkpp("export", "--basket", "Nope", "--out", str(tmp_path / "n.csv"), "--db", db)
    assert unknown.exit_code == 1 and "no basket called 'Nope'" in unknown.output
    unclear = vkpp("export", "--basket", BASKET, "--out", str(tmp_path / "b.txt"), "--db", db)
    assert unclear.exit_code == 2 and "say --format" in unclear.output


def test_pdf_to_exported_briefing(db_url: str, make_review_pdf: Callable[..., Path], tmp_path: Path) -> None:
    """A rendered review is ingested, tagged, searched; the results go in a basket and out as a briefing."""
    from docx import Document

    from pipelines.ingest import ingest
    from vkpp_learning.search.facade import search

    pdf = make_review_pdf("dhr_anna_2022.pdf", paragraphs=3, topic="Anna")
    assert ingest([str(pdf)], db_url).reviews == 1
    db = open_database(db_url)
    tag_review(db, pdf.name)
    page = search(db, "MARAC referral", mode="keyword", limit=5)
    assert len(page.results) == 3
    query = {"query": page.query, "mode": page.mode, "filters": {}}
    with db.writing() as session:
        baskets.create_basket(session, ALICE, "Anna")
        for result in page.results:
            baskets.add_to_basket(session, ALICE, "Anna", result.passage_id, query=query)
    out = tmp_path / "anna.docx"
    exported(db, "Anna", "docx", out)
    texts = [p.text for p in Document(str(out)).paragraphs]
    with db.session() as session:  # the body's name as the metadata reader found it on the title page
        body = abbreviate_commissioner(session.scalar(select(models.Review.commissioner)))
    assert body.endswith("Westshire CSP")
    assert {t for t in texts if t.startswith('DHR "Anna"') and ", p. " in t} == {
        f'DHR "Anna", {body}, 2022, p. 2, para 2.{n}' for n in (1, 2, 3)
    }
    assert '"MARAC referral" (keyword)' in texts
    db.dispose()


def test_logged_searches_read_as_words(briefing_db: Database) -> None:
    from vkpp_learning.export import describe_query
    from vkpp_learning.search.filters import Filters

    filters = Filters(review_types=("DHR", "SAR"), themes=("risk_assessment",), year_to=2023, missed_only=True)
    with briefing_db.writing() as session:
        baskets.create_basket(session, ALICE, "Filtered")
        passage = excerpts_of(briefing_db)[0].passage_id
        baskets.add_to_basket(session, ALICE, "Filtered", passage, query={"query": "", "filters": filters})
        [logged] = baskets.basket_queries(session, "Filtered")
    assert logged["filters"]["review_types"] == ["DHR", "SAR"] and logged["filters"]["missed_only"] is True
    names = {theme.id: theme.name for theme in load_taxonomy().themes}
    # Logged as JSON with sorted keys; unset filters are left out.
    assert describe_query(logged, names) == (
        "no search words; missed only: yes; review types: DHR, SAR; themes: Risk assessment; year to: 2023"
    )


def test_method_note_says_when_the_taxonomy_changed_after_tagging() -> None:
    from vkpp_learning.export import Briefing, TagRunNote, taxonomy_line

    def line(loaded: str) -> str:
        run = TagRunNote("tagger.rules.v1", "2026.11.0+aaaaaaaa", None, None)
        return taxonomy_line(Briefing("b", "", "ann", [], [], [run], {}, loaded, 0))

    assert line("2026.11.0+aaaaaaaa") == "Taxonomy version: 2026.11.0+aaaaaaaa."
    assert line("2026.12.0+bbbbbbbb") == (
        "Taxonomy version: 2026.11.0+aaaaaaaa (the taxonomy has been edited since: it is now 2026.12.0+bbbbbbbb)."
    )
