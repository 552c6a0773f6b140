"""Extraction, segmentation and metadata on the real sample PDFs, against their golden text and gold labels."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkpp_learning.errors import BadDocumentError
from vkpp_learning.extract import BACKENDS, extract_pdf
from vkpp_learning.extract.backends import PdfiumBackend, RawPage, _first_char, _rects
from vkpp_learning.extract.fidelity import fidelity, load_golden
from vkpp_learning.extract.layout import _gutter_candidates, _gutter_ruled_out
from vkpp_learning.metadata import load_manifest, read_metadata
from vkpp_learning.records import ExtractedDocument, TextSegment
from vkpp_learning.segment import paragraph_number, section_kind, segment

SAMPLES = Path(__file__).resolve().parent.parent / "corpus_samples"
MANIFEST = (
    {r["doc_id"]: r for r in csv.DictReader((SAMPLES / "manifest.csv").open())}
    if (SAMPLES / "manifest.csv").exists()
    else {}
)
DOC_IDS = sorted(MANIFEST)
HAS_TESSERACT = shutil.which("tesseract") is not None
pytestmark = pytest.mark.skipif(not DOC_IDS, reason="corpus_samples/manifest.csv missing: run corpus_samples/build.py")


@cache
def extracted(doc_id: str, backend: str) -> ExtractedDocument:
    return extract_pdf(SAMPLES / f"{doc_id}.pdf", backend, ocr="auto")


def gold(doc_id: str) -> list[dict]:
    return [json.loads(line) for line in (SAMPLES / "gold" / f"{doc_id}.jsonl").open()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_clean_text_matches_golden(doc_id: str, backend: str) -> None:
    doc = extracted(doc_id, backend)
    golden = load_golden(SAMPLES / "golden" / f"{doc_id}.json")
    result = fidelity(doc, golden)
    scanned = MANIFEST[doc_id]["has_scanned_page"] == "true"
    assert doc.page_count == len(golden)
    # OCR of the scanned page cannot be perfect; every other page must be nearly exact.
    floor = 0.94 if scanned and HAS_TESSERACT else 0.98
    assert result.similarity >= floor, f"worst page {result.worst_page}: {min(result.per_page):.3f}"
    text_pages = [s for s, p in zip(result.per_page, doc.pages, strict=True) if p.status == "ok"]
    assert min(text_pages) >= 0.97


@pytest.mark.parametrize("doc_id", [d for d in DOC_IDS if MANIFEST[d]["columns"] == "2"] or ["none"])
def test_two_column_reading_order(doc_id: str) -> None:
    if doc_id == "none":
        pytest.skip("no two-column sample")
    # Every gold paragraph's opening words appear in one passage in order: columns were not interleaved.
    passages = segment(extracted(doc_id, "pdfium")).passages
    texts = " ".join(p.text for p in passages)
    for para in gold(doc_id):
        opening = " ".join(para["text"].split()[:12])
        assert opening in texts, f"{para['para_id']} interleaved or lost"
    assert any(p.columns == 2 for p in extracted(doc_id, "pdfium").pages)


@pytest.mark.parametrize("backend", BACKENDS)
def test_running_headers_footers_and_page_numbers_removed(backend: str) -> None:
    for doc_id in DOC_IDS:
        doc = extracted(doc_id, backend)
        for page in doc.pages[1:]:
            assert not re.search(r"Page \d+ of \d+", page.text), f"{doc_id} p{page.number}"
            assert not any(b.text in ("OFFICIAL", "OFFICIAL SENSITIVE") for b in page.blocks)
        # What was dropped is kept on the page record; the footer may come as one run or several.
        assert all(any("Page" in t for t in p.removed) for p in doc.pages[1:]), doc_id


def test_hyphenated_line_breaks_are_joined() -> None:
    # Words the renderer hyphenated at line ends come back whole: no "informa- tion" or "informa-tion".
    for doc_id in DOC_IDS:
        text = " ".join(p.text for p in extracted(doc_id, "pdfium").pages)
        golden = " ".join(load_golden(SAMPLES / "golden" / f"{doc_id}.json"))
        broken = [w for w in re.findall(r"\b[a-z]{2,}-[a-z]{2,}\b", text) if w not in golden]
        assert len(broken) <= 2, f"{doc_id}: {broken[:5]}"


def test_paragraph_numbers_and_page_citations_match_gold() -> None:
    numbered = matched = right_number = right_page = total = 0
    for doc_id in DOC_IDS:
        passages = segment(extracted(doc_id, "pdfium")).passages
        for para in gold(doc_id):
            total += 1
            found = [p for p in passages if p.text[:40] == para["text"][:40]]
            if not found:
                continue
            matched += 1
            passage = found[0]
            right_page += passage.page_start == para["page"]
            if re.match(r"^(\d+(\.\d+)+|Para \d+)$", para["para_id"]):
                numbered += 1
                right_number += passage.paragraph == para["para_id"]
    assert matched / total >= 0.98
    assert right_page == matched
    assert right_number / numbered >= 0.97


def test_passages_trace_to_full_text_and_pages() -> None:
    seg = segment(extracted("dhr_louise_2023", "pdfium"))
    for passage in seg.passages:
        span = seg.full_text[passage.char_start : passage.char_end]
        assert passage.text[:30] in span.replace("\n", " ")
        assert passage.page_start <= passage.page_end
        start = next(s for n, s, _ in seg.page_offsets if n == passage.page_start)
        assert passage.char_start >= start


def test_sections_and_chronology_rows() -> None:
    passages = segment(extracted("dhr_louise_2023", "pdfium")).passages
    kinds = {p.section_kind for p in passages}
    assert {
        "introduction",
        "methodology",
        "family",
        "background",
        "chronology",
        "analysis",
        "findings",
        "recommendations",
    } <= kinds
    rows = [p for p in passages if p.kind == "table_row"]
    gold_rows = [g for g in gold("dhr_louise_2023") if ".r" in g["para_id"] or g["para_id"].startswith("r")]
    assert len(rows) == len(gold_rows)
    assert all(p.section_kind == "chronology" for p in rows)
    assert not any(p.text.startswith("Date Agency Event") for p in rows)  # header rows are not passages


def test_long_paragraphs_are_split_on_sentences() -> None:
    passages = segment(extracted("cspr_child_t_2022", "pdfium")).passages
    parts = [p for p in passages if p.part]
    assert parts, "the sample has paragraphs over the split length"
    for p in parts:
        assert p.text[-1] in ".?!)'\"’”", p.text[-40:]
        assert len(p.text.split()) >= 20


def test_metadata_read_from_the_document_matches_manifest() -> None:
    for doc_id, row in MANIFEST.items():
        meta = read_metadata(extracted(doc_id, "pdfium"), row["file"])
        assert (meta.review_type, meta.subtype or "") == (row["review_type"], row["subtype"]), doc_id
        assert (meta.year, meta.month) == (int(row["year"]), row["month"]), doc_id
        assert (meta.subject, meta.area, meta.commissioner) == (row["subject"], row["area"], row["commissioner"])
        assert meta.title == row["title"]
        assert meta.executive_summary == (row["executive_summary"] == "true")
        assert meta.sources["review_type"] == "title_page"


def test_manifest_overrides_and_unknowns_say_why(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,review_type,year,area\ndhr_louise_2023.pdf,SCR,2030,Elsewhere\n")
    rows = load_manifest(manifest)
    meta = read_metadata(extracted("dhr_louise_2023", "pdfium"), "dhr_louise_2023.pdf", rows["dhr_louise_2023.pdf"])
    assert (meta.review_type, meta.subtype, meta.year, meta.area) == ("CSPR", "SCR", 2030, "Elsewhere")
    assert meta.sources["year"] == "manifest"
    bare = ExtractedDocument("x.pdf", "0" * 64, "extract.pdfium.v1", [], {}, [])
    unknown = read_metadata(bare, "x.pdf")
    assert unknown.review_type == "unknown" and "review type" in unknown.unknown_reasons["review_type"]
    assert "year" in unknown.unknown_reasons


def test_filename_gives_the_type_when_the_document_does_not() -> None:
    bare = ExtractedDocument("x.pdf", "0" * 64, "extract.pdfium.v1", [], {}, [])
    meta = read_metadata(bare, "Eastmoor_DHR_Overview_2019.pdf")
    assert (meta.review_type, meta.year, meta.sources["review_type"]) == ("DHR", 2019, "filename")


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("empty.pdf", "empty_file"),
        ("not_a_pdf.pdf", "not_pdf"),
        ("truncated.pdf", "truncated"),
        ("encrypted.pdf", "encrypted"),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_files_give_specific_errors(name: str, code: str, backend: str) -> None:
    with pytest.raises(BadDocumentError) as info:
        extract_pdf(SAMPLES / "bad" / name, backend)
    assert info.value.code == code
    assert info.value.message


def test_image_only_pdf_without_ocr_is_a_clear_error() -> None:
    with pytest.raises(BadDocumentError) as info:
        extract_pdf(SAMPLES / "bad" / "image_only.pdf", ocr="off")
    assert info.value.code == "needs_ocr" and "Tesseract" in info.value.message


def test_scanned_page_is_marked_needs_ocr_and_the_rest_ingested() -> None:
    doc = extract_pdf(SAMPLES / "dhr_gemma_2024.pdf", ocr="off")
    assert doc.needs_ocr_pages and len(doc.needs_ocr_pages) == 1
    assert any("needs OCR" in w for w in doc.warnings)
    assert sum(1 for p in doc.pages if p.blocks) == doc.page_count - 1


@pytest.mark.skipif(not HAS_TESSERACT, reason="Tesseract is not installed (apt-get install tesseract-ocr)")
def test_scanned_page_is_ocred_when_tesseract_is_there() -> None:
    doc = extracted("dhr_gemma_2024", "pdfium")
    ocr_pages = [p for p in doc.pages if p.status == "ocr"]
    assert len(ocr_pages) == 1
    golden = load_golden(SAMPLES / "golden" / "dhr_gemma_2024.json")
    from vkpp_learning.extract.fidelity import similarity

    assert similarity(ocr_pages[0].text, golden[ocr_pages[0].number - 1]) >= 0.9


def test_section_kinds_and_paragraph_numbers() -> None:
    assert section_kind("5. Analysis of agency involvement") == "analysis"
    assert section_kind("Involvement of the family") == "family"
    assert section_kind("9 Recommendations") == "recommendations"
    assert section_kind("Key practice episode 2") == "analysis"
    assert section_kind("Appendix A: Glossary") == "appendix"
    assert paragraph_number("4.12 The officers attended.") == ("4.12", "The officers attended.")
    assert paragraph_number("5.3.2 Text") == ("5.3.2", "Text")
    assert paragraph_number("Para 12 Text") == ("Para 12", "Text")
    assert paragraph_number("Paragraph 7. Text") == ("Para 7", "Text")
    assert paragraph_number("In 2021 officers") == (None, "In 2021 officers")


@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_both_backends_give_the_same_passages(doc_id: str) -> None:
    # The backends share the layout code, so their passages (not only their text) agree.
    fast = [p.text for p in segment(extracted(doc_id, "pdfium")).passages]
    careful = [p.text for p in segment(extracted(doc_id, "pdfplumber")).passages]
    assert abs(len(fast) - len(careful)) <= 2
    same = len(set(fast) & set(careful))
    assert same >= 0.95 * max(len(fast), len(careful))


def pdfium_pages(doc_id: str) -> list[RawPage]:
    path = SAMPLES / f"{doc_id}.pdf"
    with PdfiumBackend().open(path, path.read_bytes()) as pdf:
        return [pdf.page(i) for i in range(pdf.page_count)]


def test_exact_probe_finds_the_character_the_tolerant_probe_finds() -> None:
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    def tolerant(handle, rect) -> int:  # the probe as it was: tolerance 1 at every step
        left, bottom, right, top = rect
        for dx in (0.6, 2.0, 4.0, 7.0, 11.0, (right - left) / 2):
            if left + dx < right:
                index = raw.FPDFText_GetCharIndexAtPos(handle, left + dx, (top + bottom) / 2, 1.0, 1.0)
                if index >= 0:
                    return index
        return -1

    probed = 0
    for doc_id in DOC_IDS:
        pdf = pdfium.PdfDocument(SAMPLES / f"{doc_id}.pdf")
        for page in pdf:
            textpage = page.get_textpage()
            rects = _rects(textpage.raw, raw)
            assert rects == [textpage.get_rect(i) for i in range(textpage.count_rects())]
            for rect in rects:  # whether or not the rect is taken to follow another run
                expected = tolerant(textpage.raw, rect)
                assert _first_char(textpage.raw, rect, raw, False) == expected
                assert _first_char(textpage.raw, rect, raw, True) == expected
            probed += len(rects)
        pdf.close()
    assert probed > 1000


def test_pages_ruled_out_of_two_columns_have_no_gutter_candidate() -> None:
    ruled_out = 0
    for doc_id in DOC_IDS:
        for page in pdfium_pages(doc_id):
            first, last = math.ceil(page.width * 0.35), int(page.width * 0.65)
            if _gutter_ruled_out(page.segments, first, last):
                ruled_out += 1
                assert _gutter_candidates(page.segments, page.width, first, last) == []
    assert ruled_out > 20


# Runs in two loose columns on A4 or Letter pages, so that some pages have gutter candidates and some nearly do.
column_runs = st.lists(
    st.tuples(
        st.sampled_from([40.0, 60.0, 300.0, 320.0]) | st.floats(-5, 600),
        st.sampled_from([150.0, 230.0, 250.0]) | st.floats(0, 560),
    ),
    max_size=60,
)


@given(column_runs, st.sampled_from([595.0, 612.0]) | st.floats(1, 700))
def test_the_one_pass_gutter_check_never_rules_out_a_candidate(boxes: list[tuple[float, float]], width: float) -> None:
    segments = [TextSegment("word", x0, 100.0 + i, x0 + w, 108.0 + i, 10.0) for i, (x0, w) in enumerate(boxes)]
    first, last = math.ceil(width * 0.35), int(width * 0.65)
    if first >= 1 and _gutter_ruled_out(segments, first, last):
        assert _gutter_candidates(segments, width, first, last) == []
