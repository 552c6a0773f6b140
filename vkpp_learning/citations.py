"""Full citations for passages, as briefing authors write them: `DHR "Louise", Eastmoor CSP, 2023, p. 14, para 5.3`.

Fields the repository does not know ("unknown", None) are left out rather than printed.
"""

from __future__ import annotations

import re
from typing import Protocol

UNKNOWN = "unknown"
# Commissioning bodies as analysts abbreviate them; longer names first so "Local Safeguarding Children
# Partnership" is not read as "Local" + "Safeguarding Children Partnership".
COMMISSIONER_ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("MAPPA Strategic Management Board", "MAPPA SMB"),
    ("Regional Safeguarding Children Board", "RSCB"),
    ("Regional Safeguarding Adults Board", "RSAB"),
    ("Local Safeguarding Children Partnership", "LSCP"),
    ("Local Safeguarding Children Board", "LSCB"),
    ("Safeguarding Children Partnership", "SCP"),
    ("Safeguarding Adults Board", "SAB"),
    ("Community Safety Partnership", "CSP"),
    ("Strategic Management Board", "SMB"),
)
# How a review type is named in a citation when it differs from its code.
TYPE_NAMES = {"MAPPA": "MAPPA SCR"}
PARAGRAPH_WORD = re.compile(r"^(?:para(?:graph)?\.?|§)\s*", re.IGNORECASE)


class CitedReview(Protocol):
    review_type: str
    subtype: str | None
    title: str
    subject: str
    year: int | None
    area: str
    commissioner: str
    executive_summary: bool


class CitedPassage(Protocol):
    kind: str
    section_kind: str
    paragraph: str | None
    page_start: int
    page_end: int


def known(value: object) -> bool:
    return value is not None and str(value).strip() not in ("", UNKNOWN)


def abbreviate_commissioner(name: str) -> str:
    """ "Eastmoor Community Safety Partnership" -> "Eastmoor CSP"; names with no known body stay as they are."""
    for full, short in COMMISSIONER_ABBREVIATIONS:
        name = re.sub(rf"\b{re.escape(full)}\b", short, name, flags=re.IGNORECASE)
    return " ".join(name.split())


def review_type_name(review: CitedReview) -> str:
    """The type as the review calls itself: its subtype (SCR, CPR, APR, DARDR) when it has one."""
    if known(review.subtype):
        return str(review.subtype)
    return TYPE_NAMES.get(review.review_type, review.review_type) if known(review.review_type) else ""


def review_name(review: CitedReview) -> str:
    """The subject in quotes, falling back to the title; empty when neither is known."""
    name = review.subject if known(review.subject) else review.title if known(review.title) else ""
    return f'"{name.strip()}"' if name else ""


def issuer(review: CitedReview) -> str:
    """The commissioning body abbreviated, or the area when the body is not known."""
    if known(review.commissioner):
        return abbreviate_commissioner(review.commissioner)
    return review.area.strip() if known(review.area) else ""


def review_citation(review: CitedReview) -> str:
    """The review part of a citation: `DHR "Louise", Eastmoor CSP, 2023`."""
    head = " ".join(part for part in (review_type_name(review), review_name(review)) if part)
    summary = "executive summary" if review.executive_summary else ""
    year = str(review.year) if known(review.year) else ""
    return ", ".join(part for part in (head, summary, issuer(review), year) if part)


def pages(passage: CitedPassage) -> str:
    """ "p. 14", or "pp. 14-15" for a passage that runs over a page break."""
    start, end = passage.page_start, passage.page_end
    if not start:
        return ""
    return f"pp. {start}-{end}" if end and end != start else f"p. {start}"


def locator(passage: CitedPassage) -> str:
    """ "para 5.3", "chronology row", "table row", "footnote", or empty for an unnumbered paragraph."""
    if passage.kind == "table_row":
        return "chronology row" if passage.section_kind == "chronology" else "table row"
    number = (passage.paragraph or "").strip()
    if passage.kind == "footnote":
        return f"footnote {number}" if number else "footnote"
    if not number:
        return ""
    if number[0].isdigit() or PARAGRAPH_WORD.match(number):
        return "para " + PARAGRAPH_WORD.sub("", number)
    return number  # "Recommendation 4" and the like read best as printed


def citation(review: CitedReview, passage: CitedPassage) -> str:
    """The full citation of a passage: `DHR "Louise", Eastmoor CSP, 2023, p. 14, para 5.3`."""
    return ", ".join(part for part in (review_citation(review), pages(passage), locator(passage)) if part)
