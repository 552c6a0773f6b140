"""Builds the sample corpus: every corpus_samples/sources/*.yaml rendered to a PDF by its producer,
with golden text, gold labels and the manifest generated from the same source; plus the bad files.

    python corpus_samples/build.py [--only DOC_ID] [--sources DIR --out DIR] [--long OUT_DIR --pages 320]

Page assignment (which words of which block land on which page) comes from the renderer itself for
reportlab (afterFlowable, with split paragraphs counted word by word from their split parts) and
fpdf2 (our own line layout). For LibreOffice the source words are aligned to each page's text layer
(pypdfium2) with difflib, and a block is cut where its aligned words change page (see _render_docx).
Every build then checks each page's golden words against that page's text layer and fails loudly.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _render_common import (  # noqa: E402  (the renderers live beside this script)
    Layout,
    Piece,
    Plan,
    make_plan,
    page_texts,
    tokens,
)

REPO = HERE.parent
PAGES_RANGE = (6, 30)
WORDS_RANGE = (2000, 8000)
MIN_RECALL = 0.97  # share of a page's golden words found in its text layer
MIN_PRECISION = 0.95  # share of a page's text-layer words (less running text) found in its golden text
MANIFEST_COLUMNS = [
    "file", "doc_id", "review_type", "subtype", "title", "subject", "year", "month", "area", "commissioner",
    "executive_summary", "pages", "words", "columns", "numbering", "producer", "font", "has_scanned_page",
]  # fmt: skip
LABEL_FIELDS = ("themes", "vulnerabilities", "missed_opportunity", "agencies", "police_relevant", "recommendation_to")
EMPTY_LABELS = {f: ([] if f not in ("missed_opportunity", "police_relevant") else False) for f in LABEL_FIELDS}
# taxonomy facet name (as written in taxonomy/*.yaml) -> the gold label fields it supplies ids for
FACET_FIELDS = {
    "practice": ("themes",), "practice_theme": ("themes",), "practice_themes": ("themes",), "theme": ("themes",),
    "themes": ("themes",), "vulnerability": ("vulnerabilities",), "vulnerabilities": ("vulnerabilities",),
    "agency": ("agencies", "recommendation_to"), "agencies": ("agencies", "recommendation_to"),
}  # fmt: skip


class BuildError(Exception):
    """A source or a built document that breaks the corpus contract; the message says which and why."""


# ---------------------------------------------------------------- taxonomy and validation


def _ids_in(items: Any) -> set[str]:
    """Ids of a taxonomy list, with any nested sub-theme ids."""
    ids: set[str] = set()
    for item in items or []:
        if isinstance(item, dict) and "id" in item:
            ids.add(str(item["id"]))
            for key, value in item.items():
                if "theme" in key and isinstance(value, list):
                    ids |= _ids_in(value)
    return ids


def _format_doc_ids() -> dict[str, set[str]]:
    """The id lists written in SOURCE_FORMAT.md, used until taxonomy/*.yaml exist."""
    text = (HERE / "SOURCE_FORMAT.md").read_text(encoding="utf-8")
    match = re.search(
        r"`themes` are [^:]*:(.*?)`vulnerabilities`:(.*?)`agencies` and\s+`recommendation_to`:(.*?)\n\n", text, re.S
    )
    if not match:
        raise BuildError("SOURCE_FORMAT.md: cannot find the label id lists under '## Label ids'")
    themes, vulnerabilities, agencies = (set(re.findall(r"[a-z][a-z_]+", m)) for m in match.groups())
    return {"themes": themes, "vulnerabilities": vulnerabilities, "agencies": agencies, "recommendation_to": agencies}


def load_taxonomy(taxonomy_dir: Path = REPO / "taxonomy") -> tuple[dict[str, set[str]], dict[str, str]]:
    """Known label ids per gold field, and where each field's ids came from."""
    known = _format_doc_ids()
    origin = dict.fromkeys(known, "SOURCE_FORMAT.md")
    for path in sorted(taxonomy_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict) or "facet" not in data:
            continue
        fields = FACET_FIELDS.get(str(data["facet"]).strip().lower())
        if fields is None:
            continue
        ids = _ids_in(data.get("themes"))
        if not ids:
            raise BuildError(f"{path}: facet {data['facet']!r} lists no themes with an id")
        for name in fields:
            known[name], origin[name] = ids, str(path.relative_to(taxonomy_dir.parent))
    return known, origin


_LABELS_SCHEMA = {
    "type": "object",
    "required": list(LABEL_FIELDS),
    "additionalProperties": False,
    "properties": {
        "themes": {"type": "array", "items": {"type": "string"}},
        "vulnerabilities": {"type": "array", "items": {"type": "string"}},
        "agencies": {"type": "array", "items": {"type": "string"}},
        "recommendation_to": {"type": "array", "items": {"type": "string"}},
        "missed_opportunity": {"type": "boolean"},
        "police_relevant": {"type": "boolean"},
    },
}
_TEXT = {"type": "string", "minLength": 1}
SOURCE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "doc_id", "review_type", "subtype", "title", "subject", "area", "commissioner", "month", "year", "author",
        "executive_summary_only", "render", "sections",
    ],
    "properties": {
        "doc_id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "review_type": {"enum": ["CSPR", "SAR", "DHR", "MAPPA"]},
        "subtype": {"enum": ["SCR", "CPR", "APR", "DARDR", None]},
        "title": _TEXT, "subject": _TEXT, "area": _TEXT, "commissioner": _TEXT, "author": _TEXT,
        "month": {"enum": list(calendar.month_name)[1:]},
        "year": {"type": "integer", "minimum": 1990, "maximum": 2100},
        "executive_summary_only": {"type": "boolean"},
        "render": {
            "type": "object",
            "additionalProperties": False,
            "required": ["producer", "font", "columns", "numbering"],
            "properties": {
                "producer": {"enum": ["reportlab", "fpdf2", "docx"]},
                "font": {"enum": ["serif", "sans"]},
                "columns": {"enum": [1, 2]},
                "numbering": {"enum": ["decimal", "decimal3", "para", "none"]},
                "header": {"type": ["string", "null"]},
                "footer_title": {"type": "boolean"},
                "scanned_blocks": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            },
        },
        "sections": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["heading", "kind", "blocks"],
                "properties": {
                    "heading": _TEXT,
                    "kind": {"enum": [
                        "front_matter", "introduction", "methodology", "family", "background", "chronology",
                        "analysis", "findings", "recommendations", "appendix", "other",
                    ]},
                    "blocks": {"type": "array", "minItems": 1, "items": {"oneOf": [
                        {"type": "object", "additionalProperties": False, "required": ["para"],
                         "properties": {"para": _TEXT, "footnote": _TEXT, "labels": _LABELS_SCHEMA}},
                        {"type": "object", "additionalProperties": False, "required": ["subheading"],
                         "properties": {"subheading": _TEXT}},
                        {"type": "object", "additionalProperties": False, "required": ["table"],
                         "properties": {"table": {
                             "type": "object", "additionalProperties": False, "required": ["columns", "rows"],
                             "properties": {
                                 "columns": {"type": "array", "minItems": 1, "items": _TEXT},
                                 "rows": {"type": "array", "minItems": 1, "items": {
                                     "type": "object", "additionalProperties": False, "required": ["cells"],
                                     "properties": {"cells": {"type": "array", "items": {"type": "string"}},
                                                    "labels": _LABELS_SCHEMA}}},
                             }}}},
                    ]}},
                },
            },
        },
    },
}  # fmt: skip


def schema_errors(source: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(SOURCE_SCHEMA)
    errors = []
    for error in sorted(validator.iter_errors(source), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        detail = error.message if len(error.message) < 300 else error.message[:300] + "..."
        errors.append(f"{where}: {detail}")
    return errors


def _units(source: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every labelled unit (para or table row) as (where, section, item), in document order."""
    units = []
    for s, sec in enumerate(source["sections"]):
        for b, item in enumerate(sec["blocks"]):
            if "para" in item:
                units.append((f"sections/{s}/blocks/{b}", sec, item))
            elif "table" in item:
                for r, row in enumerate(item["table"]["rows"]):
                    units.append((f"sections/{s}/blocks/{b}/table/rows/{r}", sec, row))
    return units


def label_errors(source: dict[str, Any], known: dict[str, set[str]]) -> list[str]:
    errors = []
    for where, sec, item in _units(source):
        labels = item.get("labels")
        if labels is None:
            if sec["kind"] != "front_matter":
                errors.append(f"{where}: no labels (every para and table row outside front_matter needs them)")
            continue
        for name in ("themes", "vulnerabilities", "agencies", "recommendation_to"):
            for label in labels[name]:
                if label not in known[name]:
                    errors.append(f"{where}: unknown {name} id {label!r}")
        if labels["recommendation_to"] and sec["kind"] != "recommendations":
            errors.append(f"{where}: recommendation_to is only for paragraphs in a recommendations section")
    return errors


def semantic_errors(source: dict[str, Any], path: Path) -> list[str]:
    from vkpp_learning.records import REVIEW_SUBTYPES

    errors = []
    if source["doc_id"] != path.stem:
        errors.append(f"doc_id {source['doc_id']!r} differs from the file name {path.stem!r}")
    subtype = source["subtype"]
    if subtype and REVIEW_SUBTYPES[subtype] != source["review_type"]:
        errors.append(f"subtype {subtype} belongs to {REVIEW_SUBTYPES[subtype]}, not {source['review_type']}")
    for s, sec in enumerate(source["sections"]):
        for b, item in enumerate(sec["blocks"]):
            for r, row in enumerate(item.get("table", {}).get("rows", [])):
                if len(row["cells"]) != len(item["table"]["columns"]):
                    errors.append(f"sections/{s}/blocks/{b}/table/rows/{r}: cells do not match the columns")
    scanned = sorted(source["render"].get("scanned_blocks") or [])
    units = _units(source)
    count = len(units)
    for index in scanned:
        if index < count and units[index][2].get("footnote"):
            errors.append(f"{units[index][0]}: a scanned paragraph cannot carry a footnote")
    if scanned and (scanned[-1] >= count or scanned != list(range(scanned[0], scanned[-1] + 1))):
        errors.append(f"render/scanned_blocks {scanned}: must be consecutive indices below {count}")
    return errors


def load_source(path: Path, known: dict[str, set[str]]) -> dict[str, Any]:
    """Read and validate one source; raise BuildError listing every problem found."""
    try:
        source = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BuildError(f"{path}: not valid YAML: {exc}") from exc
    errors = schema_errors(source)
    if not errors:
        errors = semantic_errors(source, path) + label_errors(source, known)
    if errors:
        listed = "\n  ".join(errors[:40]) + (f"\n  ... and {len(errors) - 40} more" if len(errors) > 40 else "")
        raise BuildError(f"{path}: {len(errors)} problem(s):\n  {listed}")
    source["render"].setdefault("header", None)
    source["render"].setdefault("footer_title", False)
    source["render"].setdefault("scanned_blocks", [])
    return source


# ---------------------------------------------------------------- rendering and ground truth


def render(plan: Plan, pdf_path: Path) -> Layout:
    producer = plan.render["producer"]
    if producer == "reportlab":
        import _render_reportlab as renderer
    elif producer == "fpdf2":
        import _render_fpdf as renderer
    else:
        import _render_docx as renderer
    return renderer.render(plan, pdf_path)


def golden(plan: Plan, layout: Layout) -> dict[str, Any]:
    """The golden text, page by page, with the blocks behind each line (see SOURCE_FORMAT.md)."""
    pages = []
    for number, pieces in enumerate(layout.pages, start=1):
        blocks = [_golden_block(p) for p in pieces if p.text]
        pages.append({"page": number, "text": "\n".join(b["text"] for b in blocks), "blocks": blocks})
    return {"doc_id": plan.source["doc_id"], "pages": pages}


def _golden_block(piece: Piece) -> dict[str, Any]:
    block = piece.block
    entry: dict[str, Any] = {"kind": block.kind, "text": piece.text}
    if block.para_id:
        entry["para_id"] = block.para_id
    if piece.start > 0:
        entry["continued"] = True  # the block started on an earlier page
    if piece.end is not None and piece.end < len(block.words):
        entry["continues"] = True  # the block runs on to the next page
    return entry


def start_pages(layout: Layout) -> dict[int, int]:
    """id(block) -> the page its first word is on."""
    found: dict[int, int] = {}
    for number, pieces in enumerate(layout.pages, start=1):
        for piece in pieces:
            if piece.start == 0:
                found.setdefault(id(piece.block), number)
    return found


def gold_records(plan: Plan, layout: Layout, default_page: int | None = None) -> list[dict[str, Any]]:
    """One labelled record per paragraph and chronology row (`default_page` for blocks the layout lacks)."""
    pages = start_pages(layout)
    records = []
    for block in plan.body:
        if block.kind not in ("paragraph", "table_row"):
            continue
        section = plan.sections[block.section]
        record = {
            "doc_id": plan.source["doc_id"],
            "para_id": block.para_id,
            "section": section.kind,
            "text": block.body,
        }
        record.update({f: list(v) if isinstance(v, list) else v for f, v in (block.labels or EMPTY_LABELS).items()})
        record.update(
            {
                "heading": section.heading,
                "page": pages[id(block)] if default_page is None else pages.get(id(block), default_page),
                "review_type": plan.source["review_type"],
            }
        )
        records.append(record)
    return records


def word_count(plan: Plan) -> int:
    """The review's own words: headings, paragraphs (without their numbers), table rows, footnotes."""
    blocks = [b for b in plan.body if b.kind != "table_header"]
    return sum(len(b.body.split()) for b in blocks) + sum(len(n.body.split()) for n in plan.footnotes.values())


# ---------------------------------------------------------------- checking the PDF against golden text


@dataclass
class PageCheck:
    page: int
    recall: float
    precision: float
    note: str = ""


@dataclass
class DocCheck:
    pages: list[PageCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return min((p.recall for p in self.pages), default=1.0)

    @property
    def precision(self) -> float:
        return min((p.precision for p in self.pages), default=1.0)


def _overlap(a: list[str], b: list[str]) -> int:
    return sum((Counter(a) & Counter(b)).values())


def running_tokens(plan: Plan, page: int, total: int) -> list[str]:
    header = plan.render.get("header") or ""
    title = plan.doc_title if plan.render.get("footer_title") else ""
    return tokens(f"{header} {title} Page {page} of {total}")


def check_against_text_layer(plan: Plan, gold: dict[str, Any], pdf_path: Path, scanned_page: int | None) -> DocCheck:
    """Every golden page's words must be in that page's text layer, and the text layer (less running
    headers and footers) must be in the golden page; the scanned page must have no text layer."""
    texts = page_texts(pdf_path)
    check = DocCheck()
    if len(texts) != len(gold["pages"]):
        check.problems.append(f"the PDF has {len(texts)} pages, golden text {len(gold['pages'])}")
        return check
    for number, (layer, page) in enumerate(zip(texts, gold["pages"], strict=True), start=1):
        if number == scanned_page:
            if layer.strip():
                check.problems.append(f"page {number} is the scanned page but has a text layer")
            continue
        want, have = tokens(page["text"]), tokens(layer)
        extra = Counter(have) - Counter(running_tokens(plan, number, len(texts)))
        found = _overlap(want, have)
        recall = found / len(want) if want else 1.0
        precision = found / max(1, sum(extra.values())) if extra else 1.0
        check.pages.append(PageCheck(number, recall, min(1.0, precision)))
        if recall < MIN_RECALL or precision < MIN_PRECISION:
            missing = list((Counter(want) - Counter(have)).elements())[:12]
            surplus = list((extra - Counter(want)).elements())[:12]
            check.problems.append(
                f"page {number}: recall {recall:.3f} precision {precision:.3f}; "
                f"golden words not in the PDF: {missing}; PDF words not in golden: {surplus}"
            )
    return check


# ---------------------------------------------------------------- one document


@dataclass
class Built:
    doc_id: str
    pages: int
    words: int
    check: DocCheck
    row: dict[str, Any]
    seconds: float
    problems: list[str] = field(default_factory=list)


def manifest_row(plan: Plan, pages: int, words: int, has_scan: bool) -> dict[str, Any]:
    s, r = plan.source, plan.render
    flag = {True: "true", False: "false"}
    return {
        "file": f"{s['doc_id']}.pdf", "doc_id": s["doc_id"], "review_type": s["review_type"],
        "subtype": s["subtype"] or "", "title": s["title"], "subject": s["subject"], "year": s["year"],
        "month": s["month"], "area": s["area"], "commissioner": s["commissioner"],
        "executive_summary": flag[bool(s["executive_summary_only"])], "pages": pages, "words": words,
        "columns": r["columns"], "numbering": r["numbering"], "producer": r["producer"], "font": r["font"],
        "has_scanned_page": flag[has_scan],
    }  # fmt: skip


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def build_document(source: dict[str, Any], out_dir: Path, limits: bool = True) -> Built:
    started = time.perf_counter()
    plan = make_plan(source)
    doc_id = source["doc_id"]
    pdf_path = out_dir / f"{doc_id}.pdf"
    layout = render(plan, pdf_path)
    gold_text = golden(plan, layout)
    records = gold_records(plan, layout)
    write_json(out_dir / "golden" / f"{doc_id}.json", gold_text)
    gold_path = out_dir / "gold" / f"{doc_id}.jsonl"
    gold_path.parent.mkdir(parents=True, exist_ok=True)
    gold_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    check = check_against_text_layer(plan, gold_text, pdf_path, layout.scanned_page)
    pages, words = len(layout.pages), word_count(plan)
    built = Built(doc_id, pages, words, check, manifest_row(plan, pages, words, layout.scanned_page is not None),
                  time.perf_counter() - started)  # fmt: skip
    built.problems += [f"{doc_id}: {p}" for p in check.problems]
    if limits and not PAGES_RANGE[0] <= pages <= PAGES_RANGE[1]:
        built.problems.append(f"{doc_id}: {pages} pages, outside {PAGES_RANGE[0]}-{PAGES_RANGE[1]}")
    if limits and not WORDS_RANGE[0] <= words <= WORDS_RANGE[1]:
        built.problems.append(f"{doc_id}: {words} words, outside {WORDS_RANGE[0]}-{WORDS_RANGE[1]}")
    if source["render"]["scanned_blocks"] and layout.scanned_page is None:
        built.problems.append(f"{doc_id}: scanned_blocks given but no scanned page was drawn")
    return built


# ---------------------------------------------------------------- the corpus


def write_manifest(out_dir: Path, rows: dict[str, dict[str, Any]], present: set[str]) -> None:
    """Rewrite the manifest: rows just built replace old ones; documents without a source drop out."""
    path = out_dir / "manifest.csv"
    merged: dict[str, dict[str, Any]] = {}
    if path.exists():
        with path.open(newline="", encoding="utf-8") as f:
            merged = {r["doc_id"]: r for r in csv.DictReader(f) if r["doc_id"] in present}
    merged.update(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for doc_id in sorted(merged):
            writer.writerow(merged[doc_id])


def print_table(results: list[Built]) -> None:
    print(f"{'doc_id':<34} {'pages':>5} {'words':>6} {'recall':>7} {'precis':>7} {'secs':>6}  status")
    for r in results:
        status = "FAIL" if r.problems else "ok"
        print(
            f"{r.doc_id:<34} {r.pages:>5} {r.words:>6} {r.check.recall:>7.3f} {r.check.precision:>7.3f} "
            f"{r.seconds:>6.1f}  {status}"
        )


def build_corpus(sources_dir: Path, out_dir: Path, only: str | None) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    known, origin = load_taxonomy()
    print("label ids from: " + ", ".join(f"{k}={v}" for k, v in origin.items()))
    paths = sorted(sources_dir.glob("*.yaml"))
    if only:
        paths = [p for p in paths if p.stem == only]
        if not paths:
            raise BuildError(f"no source {only}.yaml in {sources_dir}")
    results, problems = [], []
    for path in paths:
        try:
            source = load_source(path, known)
            results.append(build_document(source, out_dir))
        except BuildError as exc:
            problems.append(str(exc))
        except Exception as exc:  # a renderer failing on one source must not hide the others' results
            problems.append(f"{path.stem}: {type(exc).__name__}: {exc}")
    write_manifest(out_dir, {r.doc_id: r.row for r in results}, {p.stem for p in sorted(sources_dir.glob("*.yaml"))})
    if not only and (HERE / "_render_bad.py").exists():
        import _render_bad

        _render_bad.build(out_dir / "bad")
    print_table(results)
    problems += [p for r in results for p in r.problems]
    for problem in problems:
        print(f"ERROR {problem}", file=sys.stderr)
    return 1 if problems else 0


def build_long(sources_dir: Path, out_dir: Path, pages: int) -> int:
    """One long review (reportlab, mixed one- and two-column pages) and its ground truth, for the
    ingestion benchmark; more sections are added until it has at least `pages` pages."""
    import _render_long
    import _render_reportlab

    known, _ = load_taxonomy()
    sources = [load_source(path, known) for path in sorted(sources_dir.glob("*.yaml"))]
    if not sources:
        raise BuildError(f"no sources in {sources_dir} to make a long review from")
    out_dir.mkdir(parents=True, exist_ok=True)
    words = pages * _render_long.WORDS_PER_PAGE
    for _ in range(4):
        started = time.perf_counter()
        plan = make_plan(_render_long.long_source(sources, words))
        pdf_path = out_dir / f"{plan.source['doc_id']}.pdf"
        layout = _render_reportlab.render(plan, pdf_path)
        if len(layout.pages) >= pages:
            break
        words = int(words * pages / len(layout.pages) * 1.03)
    else:
        raise BuildError(f"the long review stayed under {pages} pages")
    doc_id = plan.source["doc_id"]
    gold_text = golden(plan, layout)
    write_json(out_dir / f"{doc_id}.golden.json", gold_text)
    records = gold_records(plan, layout)
    (out_dir / f"{doc_id}.gold.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    check = check_against_text_layer(plan, gold_text, pdf_path, None)
    print(
        f"{pdf_path}: {len(layout.pages)} pages, {word_count(plan)} words, {len(records)} paragraphs and rows; "
        f"recall {check.recall:.3f} precision {check.precision:.3f}; last build {time.perf_counter() - started:.1f} s"
    )
    for problem in check.problems:
        print(f"ERROR {problem}", file=sys.stderr)
    return 1 if check.problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, default=HERE / "sources", help="folder of <doc_id>.yaml sources")
    parser.add_argument("--out", type=Path, default=HERE, help="where PDFs, golden/, gold/, manifest.csv go")
    parser.add_argument("--only", help="build one document (the manifest keeps the other rows)")
    parser.add_argument("--long", type=Path, metavar="OUT_DIR", help="build one long generated review into OUT_DIR")
    parser.add_argument("--pages", type=int, default=320, help="at least this many pages for --long")
    args = parser.parse_args(argv)
    try:
        if args.long:
            return build_long(args.sources, args.long, args.pages)
        return build_corpus(args.sources, args.out, args.only)
    except BuildError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
