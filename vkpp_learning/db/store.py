"""Reading and writing the repository: save a processed review in one transaction, find, delete, list, dump.

Statements are built by small pure functions so they can be read and tested on their own; the
functions that run them take a `Database` (writes) or a `Session` (reads).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Select, delete, func, insert, or_, select
from sqlalchemy.orm import Session, defer

from vkpp_learning import records
from vkpp_learning.db import models
from vkpp_learning.db.engine import Database
from vkpp_learning.search.index import index_review

DUMP_COLUMNS = (
    "review_id",
    "filename",
    "sha256",
    "review_type",
    "title",
    "year",
    "area",
    "passage_id",
    "ordinal",
    "kind",
    "page_start",
    "page_end",
    "paragraph",
    "section",
    "section_kind",
    "text",
    "tags",
)


@dataclass
class IngestedReview:
    """A review after extraction, segmentation and metadata reading: everything `save_review` stores."""

    source_path: str
    sha256: str
    file_size: int
    document: records.ExtractedDocument
    segmentation: records.Segmentation
    metadata: records.ReviewMetadata
    pipeline_version: str

    @property
    def filename(self) -> str:
        return Path(self.source_path).name

    @property
    def status(self) -> str:
        """'needs_ocr' when some pages still have no text, 'ocr' when some were read by OCR, else 'ok'."""
        statuses = {page.status for page in self.document.pages}
        if "needs_ocr" in statuses:
            return "needs_ocr"
        return "ocr" if "ocr" in statuses else "ok"


@dataclass
class ReviewListing:
    """One line of `vkpp reviews`: a stored review, or a file whose latest ingest failed (status 'error')."""

    filename: str
    source_path: str
    sha256: str | None
    status: str
    review_type: str = "unknown"
    subtype: str | None = None
    title: str = ""
    year: int | None = None
    month: str | None = None
    area: str = ""
    page_count: int = 0
    passages: int = 0
    review_id: int | None = None
    warnings: list[str] = field(default_factory=list)
    error_code: str | None = None
    error: str | None = None
    at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def storable(text: str) -> str:
    """Text as stored: NUL, which PostgreSQL refuses in text, becomes U+FFFD (same length, so offsets hold)."""
    return text.replace("\x00", "\ufffd")


def review_values(item: IngestedReview) -> dict[str, Any]:
    """The `reviews` row for a processed review."""
    meta = item.metadata
    return {
        "sha256": item.sha256,
        "filename": item.filename,
        "source_path": item.source_path,
        "file_size": item.file_size,
        "review_type": meta.review_type,
        "subtype": meta.subtype,
        "title": meta.title,
        "subject": meta.subject,
        "year": meta.year,
        "month": meta.month,
        "area": meta.area,
        "commissioner": meta.commissioner,
        "executive_summary": meta.executive_summary,
        "page_count": item.document.page_count,
        "status": item.status,
        "warnings": list(item.document.warnings),
        "metadata_sources": dict(meta.sources),
        "unknown_reasons": dict(meta.unknown_reasons),
        "full_text": storable(item.segmentation.full_text),
        "extraction_backend": item.document.backend,
        "pipeline_version": item.pipeline_version,
    }


def page_values(item: IngestedReview, review_id: int) -> list[dict[str, Any]]:
    offsets = {number: (start, end) for number, start, end in item.segmentation.page_offsets}
    return [
        {
            "review_id": review_id,
            "number": page.number,
            "status": page.status,
            "columns": page.columns,
            "char_start": offsets.get(page.number, (0, 0))[0],
            "char_end": offsets.get(page.number, (0, 0))[1],
        }
        for page in item.document.pages
    ]


def passage_values(passages: Iterable[records.Passage], review_id: int) -> list[dict[str, Any]]:
    return [
        {
            "review_id": review_id,
            "ordinal": p.ordinal,
            "kind": p.kind,
            "section": p.section,
            "section_kind": p.section_kind,
            "paragraph": p.paragraph,
            "part": p.part,
            "page_start": p.page_start,
            "page_end": p.page_end,
            "char_start": p.char_start,
            "char_end": p.char_end,
            "text": text,
            "text_hash": text_hash(text),
        }
        for p, text in ((p, storable(p.text)) for p in passages)
    ]


def save_review(db: Database, item: IngestedReview, *, replace: bool = False) -> int:
    """Store a processed review with its pages and passages in ONE transaction; returns the review id.

    With `replace`, a stored review with the same SHA-256 is deleted in the same transaction, so a
    failure leaves the old one in place. A successful save clears the file's recorded ingest errors.
    """
    with db.writing() as session:
        return add_review(session, item, replace=replace)


def add_review(session: Session, item: IngestedReview, *, replace: bool = False) -> int:
    """`save_review` inside the caller's transaction, so a queue worker can mark its claim done in the same one."""
    if replace:
        session.execute(delete_review_statement(item.sha256))
    review = models.Review(**review_values(item))
    session.add(review)
    session.flush()
    if item.document.pages:
        session.execute(insert(models.Page), page_values(item, review.id))
    if item.segmentation.passages:
        session.execute(insert(models.Passage), passage_values(item.segmentation.passages, review.id))
        index_review(session, review.id)  # PostgreSQL keyword index, same transaction (SQLite: triggers)
    session.execute(clear_errors_statement(item.source_path, item.sha256))
    return review.id


def delete_review_statement(sha256: str) -> Any:
    # Pages, passages and everything hanging off passages go with it through ON DELETE CASCADE.
    return delete(models.Review).where(models.Review.sha256 == sha256)


def clear_errors_statement(source_path: str, sha256: str) -> Any:
    return delete(models.IngestError).where(
        or_(models.IngestError.source_path == source_path, models.IngestError.sha256 == sha256)
    )


def delete_review(db: Database, sha256: str) -> bool:
    """Delete a review and everything that belongs to it; False when there was none."""
    with db.writing() as session:
        result = cast(CursorResult[Any], session.execute(delete_review_statement(sha256)))
        return result.rowcount > 0


def find_review(session: Session, sha256: str) -> models.Review | None:
    return session.scalar(select(models.Review).where(models.Review.sha256 == sha256))


def stored_hashes(session: Session) -> set[str]:
    """The SHA-256 of every stored review, to skip unchanged files without a query per file."""
    return set(session.scalars(select(models.Review.sha256)))


def record_ingest_error(db: Database, *, source_path: str, code: str, message: str, sha256: str | None = None) -> None:
    with db.writing() as session:
        add_ingest_error(session, source_path=source_path, code=code, message=message, sha256=sha256)


def add_ingest_error(session: Session, *, source_path: str, code: str, message: str, sha256: str | None) -> None:
    """`record_ingest_error` inside the caller's transaction."""
    error = models.IngestError(
        filename=Path(source_path).name, source_path=source_path, sha256=sha256, code=code, message=message
    )
    session.add(error)


def list_reviews(session: Session) -> list[ReviewListing]:
    """Every stored review, then every file whose latest ingest failed, in file-name order."""
    listings = [review_listing(review, count) for review, count in session.execute(reviews_with_counts())]
    listings += [error_listing(error) for error in session.scalars(latest_errors())]
    return sorted(listings, key=lambda row: (row.filename.lower(), row.status == "error"))


def reviews_with_counts() -> Select:  # bare: its type parameters differ between SQLAlchemy 2.0 and 2.1
    counts = select(models.Passage.review_id, func.count().label("n")).group_by(models.Passage.review_id).subquery()
    return (
        select(models.Review, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.review_id == models.Review.id)
        .options(defer(models.Review.full_text))  # a listing never needs the whole text of every review
    )


def latest_errors() -> Select:
    """The most recent error of each source file."""
    latest = select(func.max(models.IngestError.id)).group_by(models.IngestError.source_path)
    return select(models.IngestError).where(models.IngestError.id.in_(latest))


def review_listing(review: models.Review, passages: int) -> ReviewListing:
    return ReviewListing(
        filename=review.filename,
        source_path=review.source_path,
        sha256=review.sha256,
        status=review.status,
        review_type=review.review_type,
        subtype=review.subtype,
        title=review.title,
        year=review.year,
        month=review.month,
        area=review.area,
        page_count=review.page_count,
        passages=passages,
        review_id=review.id,
        warnings=list(review.warnings or []),
        at=_iso(review.ingested_at),
    )


def error_listing(error: models.IngestError) -> ReviewListing:
    return ReviewListing(
        filename=error.filename,
        source_path=error.source_path,
        sha256=error.sha256,
        status="error",
        error_code=error.code,
        error=error.message,
        at=_iso(error.created_at),
    )


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def dump_statement() -> Select:
    """Every passage with its review's citation fields, in review then reading order."""
    review, passage = models.Review, models.Passage
    return (
        select(
            review.id.label("review_id"),
            review.filename,
            review.sha256,
            review.review_type,
            review.title,
            review.year,
            review.area,
            passage.id.label("passage_id"),
            passage.ordinal,
            passage.kind,
            passage.page_start,
            passage.page_end,
            passage.paragraph,
            passage.section,
            passage.section_kind,
            passage.text,
        )
        .join(passage, passage.review_id == review.id)
        .order_by(review.id, passage.ordinal)
    )


def current_tags_statement(passage_ids: list[int]) -> Select:
    """Tags on these passages from the current tag runs."""
    tag = models.Tag
    return (
        select(tag.passage_id, tag.facet, tag.label, tag.score)
        .join(models.TagRun, models.TagRun.id == tag.run_id)
        .where(models.TagRun.is_current.is_(True), tag.passage_id.in_(passage_ids))
        .order_by(tag.passage_id, tag.facet, tag.score.desc())
    )


def iter_dump_rows(session: Session, batch_size: int = 1000) -> Iterator[dict[str, Any]]:
    """Stream every passage as a dict of DUMP_COLUMNS; `tags` is a list of {facet, label, score}."""
    result = session.execute(dump_statement().execution_options(yield_per=batch_size))
    for rows in result.partitions():
        tags = tags_by_passage(session, [row.passage_id for row in rows])
        for row in rows:
            yield {**row._asdict(), "tags": tags.get(row.passage_id, [])}


def tags_by_passage(session: Session, passage_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    tags: dict[int, list[dict[str, Any]]] = {}
    for passage_id, facet, label, score in session.execute(current_tags_statement(passage_ids)):
        tags.setdefault(passage_id, []).append({"facet": facet, "label": label, "score": round(score, 4)})
    return tags


def review_counts(session: Session) -> list[tuple[str, int | None, int]]:
    """(review type, year, number of reviews), for the overview."""
    review = models.Review
    statement = (
        select(review.review_type, review.year, func.count())
        .group_by(review.review_type, review.year)
        .order_by(review.review_type, review.year)
    )
    return [(kind, year, count) for kind, year, count in session.execute(statement)]


def repository_totals(session: Session) -> dict[str, int]:
    """How many reviews, pages and passages are stored, and how many files last failed to ingest."""

    def count(statement: Any) -> int:
        return int(session.scalar(statement) or 0)

    return {
        "reviews": count(select(func.count()).select_from(models.Review)),
        "pages": count(select(func.count()).select_from(models.Page)),
        "passages": count(select(func.count()).select_from(models.Passage)),
        "failed_files": count(select(func.count(func.distinct(models.IngestError.source_path)))),
    }
