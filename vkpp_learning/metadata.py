"""Review metadata read from the document (title page first), its file name, and an analyst's manifest.

Precedence: manifest > title page > later front pages > file name > PDF metadata. What cannot be read
is "unknown" with a reason, never a silent guess.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from vkpp_learning.errors import VkppError
from vkpp_learning.records import REVIEW_SUBTYPES, ExtractedDocument, ReviewMetadata

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
# (type, subtype, pattern): the most specific first. A MAPPA SCR must not be read as a child SCR.
TYPE_PATTERNS: tuple[tuple[str, str | None, str], ...] = (
    (
        "MAPPA",
        None,
        r"\bMAPPA\b[^\n]{0,60}\bserious case review|\bserious case review\b[^\n]{0,60}\bMAPPA\b|"
        r"multi[- ]agency public protection arrangements",
    ),
    ("DHR", "DARDR", r"domestic abuse related death review"),
    ("DHR", None, r"domestic homicide review"),
    ("CSPR", "CPR", r"\bchild practice review"),
    ("SAR", "APR", r"\badult practice review"),
    ("CSPR", None, r"child safeguarding practice review|local child safeguarding practice review"),
    ("SAR", None, r"safeguarding adults? review"),
    ("CSPR", "SCR", r"\bserious case review"),
)
FILENAME_TYPES: tuple[tuple[str, str | None, str], ...] = (
    ("MAPPA", None, r"mappa"),
    ("DHR", "DARDR", r"dardr"),
    ("DHR", None, r"(?:^|[^a-z])dhr(?:[^a-z]|$)|domestic[-_ ]homicide"),
    ("CSPR", "CPR", r"(?:^|[^a-z])cpr(?:[^a-z]|$)"),
    ("SAR", "APR", r"(?:^|[^a-z])apr(?:[^a-z]|$)"),
    ("CSPR", None, r"cspr|lcspr"),
    ("SAR", None, r"(?:^|[^a-z])sar(?:[^a-z]|$)"),
    ("CSPR", "SCR", r"(?:^|[^a-z])scr(?:[^a-z]|$)"),
)
BODY_SUFFIXES = (
    r"Local Safeguarding Children Board",
    r"Regional Safeguarding Children Board",
    r"Regional Safeguarding Adults Board",
    r"Safeguarding Children Partnership",
    r"Safeguarding Children Board",
    r"Safeguarding Adults Board",
    r"Safeguarding Adults Partnership",
    r"Community Safety Partnership",
    r"MAPPA Strategic Management Board",
    r"Strategic Management Board",
    r"Safeguarding Partnership",
)
_BODY = re.compile(r"((?:[A-Z][\w'’&-]*\s+){1,4}?)(" + "|".join(BODY_SUFFIXES) + r")\b")
_MONTH_YEAR = re.compile(r"\b(" + "|".join(MONTHS) + r")\s+((?:19|20)\d\d)\b", re.I)
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")  # also inside file names: "DHR_2019_final"
_SUBJECT_PATTERNS = (
    r"\bSubject(?: of the review)?\s*:\s*[‘'\"“]?([A-Z][\w' ]{0,30}?)[’'\"”]?\s*(?:\n|$)",
    r"\bReview\s*:\s*(?:the death of\s+)?[‘'\"“]?((?:Child|Baby|Adult|Mr|Mrs|Ms|Offender)?\s?[A-Z][\w]*)",
    r"\b((?:Child|Baby|Adult|Young Person|Offender)\s+[A-Z]{1,2}\d?)\b",
    r"\b((?:Mr|Mrs|Ms|Miss|Mx)\.?\s+[A-Z][a-z]*)\b",
    r"(?:death|murder|killing|homicide) of\s+[‘'\"“]?([A-Z][a-z]+)",
    r"(?:in respect of|concerning|regarding|relating to|into)\s+[‘'\"“]?((?:[A-Z][a-z]+|[A-Z]{1,2}\b)(?:\s+[A-Z]\b)?)",
    r"[‘“\"]([A-Z][a-z]+)[’”\"]",
)
_STOP_SUBJECTS = {
    "The",
    "This",
    "A",
    "An",
    "Review",
    "Domestic",
    "Safeguarding",
    "Serious",
    "Child",
    "Adult",
    "Mr",
    "Executive",
    "Overview",
    "Report",
    "Final",
    "Practice",
    "Published",
}


def load_manifest(path: str | Path) -> dict[str, dict[str, str]]:
    """Read an analyst's manifest CSV, keyed by file name. Needs a `file` (or `filename`) column."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise VkppError(f"cannot read the manifest {path}: {exc}", code="bad_manifest") from None
    if not rows:
        return {}
    key = next((k for k in ("file", "filename", "file_name") if k in rows[0]), None)
    if key is None:
        raise VkppError(f"the manifest {path} needs a 'file' column naming each PDF", code="bad_manifest")
    return {Path(r[key]).name: {k: (v or "").strip() for k, v in r.items() if k} for r in rows if r.get(key)}


def read_metadata(doc: ExtractedDocument, filename: str, manifest_row: dict[str, str] | None = None) -> ReviewMetadata:
    meta = ReviewMetadata(page_count=doc.page_count)
    title_page = doc.pages[0].text if doc.pages else ""
    front = "\n".join(p.text for p in doc.pages[:3])
    _read_type(meta, title_page, front, filename)
    _read_title(meta, doc)
    _read_subject(meta, title_page, front)
    _read_date(meta, title_page, front, filename, doc.pdf_metadata)
    _read_body(meta, title_page, front)
    meta.executive_summary = bool(re.search(r"executive summary", title_page, re.I))
    if manifest_row:
        _apply_manifest(meta, manifest_row)
    _explain_unknowns(meta)
    return meta


def _set(meta: ReviewMetadata, field_name: str, value: object, source: str) -> None:
    setattr(meta, field_name, value)
    meta.sources[field_name] = source


def _read_type(meta: ReviewMetadata, title_page: str, front: str, filename: str) -> None:
    for text, source in ((title_page, "title_page"), (front, "text")):
        found = _match_type(text, TYPE_PATTERNS)
        if found:
            review_type, subtype = found
            if subtype == "SCR" and re.search(r"safeguarding adults|\badults? board", text, re.I):
                review_type, subtype = "SAR", None  # before the Care Act adult reviews were also "SCRs"
            _set(meta, "review_type", review_type, source)
            meta.subtype = subtype
            return
    found = _match_type(Path(filename).stem.lower(), FILENAME_TYPES)
    if found:
        _set(meta, "review_type", found[0], "filename")
        meta.subtype = found[1]


def _match_type(text: str, patterns: tuple[tuple[str, str | None, str], ...]) -> tuple[str, str | None] | None:
    flat = re.sub(r"\s+", " ", text)
    for review_type, subtype, pattern in patterns:
        if re.search(pattern, flat, re.I):
            return review_type, subtype
    return None


def _read_title(meta: ReviewMetadata, doc: ExtractedDocument) -> None:
    """The title is the longest of the large headings on the first page ("Domestic Homicide Review
    into the death of Louise" rather than the banner "Domestic Homicide Review" above it)."""
    if doc.pages and doc.pages[0].blocks:
        blocks = [b for b in doc.pages[0].blocks if b.kind in ("heading", "paragraph") and len(b.text) > 3]
        if blocks:
            body = min(b.size for b in blocks) or 10.0
            large = [b for b in blocks if b.size >= max(1.2 * body, max(x.size for x in blocks) - 8)]
            title = max(large or blocks, key=lambda b: (len(b.text) <= 250, len(b.text))).text
            if 5 <= len(title) <= 250:
                _set(meta, "title", title, "title_page")
                return
    pdf_title = doc.pdf_metadata.get("Title", "").strip()
    if pdf_title:
        _set(meta, "title", pdf_title, "pdf_metadata")


def _read_subject(meta: ReviewMetadata, title_page: str, front: str) -> None:
    for text, source in ((meta.title, "title_page"), (title_page, "title_page"), (front, "text")):
        for pattern in _SUBJECT_PATTERNS:
            for match in re.finditer(pattern, text):
                subject = match.group(1).strip()
                if not subject:
                    continue
                if subject.split()[0] not in _STOP_SUBJECTS or len(subject.split()) > 1:
                    _set(meta, "subject", subject, source)
                    return


def _read_date(meta: ReviewMetadata, title_page: str, front: str, filename: str, pdf_meta: dict[str, str]) -> None:
    for text, source in ((title_page, "title_page"), (front, "text")):
        dates = _MONTH_YEAR.findall(text)
        if dates:
            month, year = dates[-1]
            _set(meta, "year", int(year), source)
            meta.month = month.capitalize()
            return
    years = _YEAR.findall(Path(filename).stem)
    if years:
        _set(meta, "year", int(years[-1]), "filename")
        return
    created = re.search(r"((?:19|20)\d\d)", pdf_meta.get("CreationDate", ""))
    if created:
        _set(meta, "year", int(created.group(1)), "pdf_metadata")
        meta.unknown_reasons["year_note"] = "year taken from the PDF's creation date, which may not be publication"


def _read_body(meta: ReviewMetadata, title_page: str, front: str) -> None:
    for text, source in ((title_page, "title_page"), (front, "text")):
        match = _BODY.search(re.sub(r"\s+", " ", text))
        if match:
            area = match.group(1).strip()
            area = re.sub(r"^(?:The|For|By|Commissioned by|On behalf of)\s+", "", area, flags=re.I)
            _set(meta, "commissioner", f"{area} {match.group(2)}".strip(), source)
            _set(meta, "area", area, source)
            return


_MANIFEST_FIELDS = {
    "review_type": str,
    "subtype": str,
    "title": str,
    "subject": str,
    "year": int,
    "month": str,
    "area": str,
    "commissioner": str,
}


def _apply_manifest(meta: ReviewMetadata, row: dict[str, str]) -> None:
    for name, cast in _MANIFEST_FIELDS.items():
        value = (row.get(name) or "").strip()
        if not value:
            continue
        if name == "review_type":
            value = value.upper()
            if value in REVIEW_SUBTYPES:
                meta.subtype, value = value, REVIEW_SUBTYPES[value]
        try:
            _set(meta, name, cast(value), "manifest")
        except ValueError:
            meta.unknown_reasons[f"manifest_{name}"] = f"manifest value {value!r} for {name} is not valid; ignored"
    flag = (row.get("executive_summary") or "").strip().lower()
    if flag in ("true", "yes", "1", "false", "no", "0"):
        meta.executive_summary = flag in ("true", "yes", "1")


def _explain_unknowns(meta: ReviewMetadata) -> None:
    reasons = {
        "review_type": "no review type named on the first pages or in the file name",
        "title": "no title found on the first page or in the PDF properties",
        "subject": "no pseudonym found in the title or on the first pages",
        "area": "no commissioning partnership or board named on the first pages",
        "commissioner": "no commissioning partnership or board named on the first pages",
    }
    for name, reason in reasons.items():
        if getattr(meta, name) == "unknown":
            meta.unknown_reasons[name] = reason
    if meta.year is None:
        meta.unknown_reasons["year"] = "no month and year on the first pages, in the file name or PDF properties"
