"""The repository schema as SQLAlchemy 2.x typed models.

Alembic migrations in vkpp_learning/migrations/ create these tables; a test checks both agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints let Alembic's batch mode rebuild SQLite tables and drop constraints by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

REVIEW_STATUSES = ("ok", "needs_ocr", "ocr")
ANNOTATION_DECISIONS = ("confirm", "reject", "add")
QUEUE_STATUSES = ("queued", "claimed", "done", "failed")


def utc_now() -> datetime:
    return datetime.now(UTC)


def in_values(column: str, values: tuple[str, ...]) -> str:
    """A CHECK expression that keeps `column` to a fixed set of values (quoted literals, never user text)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime: DateTime(timezone=True),
    }


class Review(Base):
    """One review document, keyed by the SHA-256 of its bytes."""

    __tablename__ = "reviews"
    __table_args__ = (CheckConstraint(in_values("status", REVIEW_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(Text)
    source_path: Mapped[str] = mapped_column(Text)
    file_size: Mapped[int] = mapped_column(Integer)
    review_type: Mapped[str] = mapped_column(String(16), index=True)
    subtype: Mapped[str | None] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(Integer, index=True)
    month: Mapped[str | None] = mapped_column(String(16))
    area: Mapped[str] = mapped_column(Text)
    commissioner: Mapped[str] = mapped_column(Text)
    executive_summary: Mapped[bool]
    page_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    warnings: Mapped[list[str]]
    metadata_sources: Mapped[dict[str, Any]]
    unknown_reasons: Mapped[dict[str, Any]]
    full_text: Mapped[str] = mapped_column(Text)
    extraction_backend: Mapped[str] = mapped_column(String(64))
    pipeline_version: Mapped[str] = mapped_column(String(64))
    ingested_at: Mapped[datetime] = mapped_column(default=utc_now)

    pages: Mapped[list[Page]] = relationship(back_populates="review", passive_deletes=True, order_by="Page.number")
    passages: Mapped[list[Passage]] = relationship(
        back_populates="review", passive_deletes=True, order_by="Passage.ordinal"
    )


class Page(Base):
    """One page of a review: how it was read and where its text sits in the review's full text."""

    __tablename__ = "pages"

    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    columns: Mapped[int] = mapped_column(Integer)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)

    review: Mapped[Review] = relationship(back_populates="pages")


class Passage(Base):
    """A stored passage: the unit that is tagged, searched, annotated and exported with its citation."""

    __tablename__ = "passages"
    __table_args__ = (UniqueConstraint("review_id", "ordinal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    section: Mapped[str] = mapped_column(Text)
    section_kind: Mapped[str] = mapped_column(String(32), index=True)
    paragraph: Mapped[str | None] = mapped_column(String(64))
    part: Mapped[int] = mapped_column(Integer, default=0)
    page_start: Mapped[int] = mapped_column(Integer)
    page_end: Mapped[int] = mapped_column(Integer)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64), index=True)

    review: Mapped[Review] = relationship(back_populates="passages")


class IngestError(Base):
    """A file that could not be ingested, with the specific reason shown to the user."""

    __tablename__ = "ingest_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(Text, index=True)
    source_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class TagRun(Base):
    """One run of a tagger over the repository: how the tags it made were produced."""

    __tablename__ = "tag_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    method: Mapped[str] = mapped_column(String(64))
    taxonomy_version: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(128))
    params: Mapped[dict[str, Any]]
    thresholds: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    is_current: Mapped[bool] = mapped_column(default=False)


class Tag(Base):
    """A machine tag on a passage, with its score and evidence."""

    __tablename__ = "tags"
    __table_args__ = (Index(None, "facet", "label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    passage_id: Mapped[int] = mapped_column(ForeignKey("passages.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("tag_runs.id", ondelete="CASCADE"), index=True)
    facet: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[str] = mapped_column(Text, default="")


class UntaggedPassage(Base):
    """A passage a tag run has read and given no tag. A passage with tags is known to be read by its tags; this
    row keeps the run's next `vkpp tag` from reading the others again."""

    __tablename__ = "tag_run_untagged"

    run_id: Mapped[int] = mapped_column(ForeignKey("tag_runs.id", ondelete="CASCADE"), primary_key=True)
    passage_id: Mapped[int] = mapped_column(ForeignKey("passages.id", ondelete="CASCADE"), primary_key=True, index=True)


class Annotation(Base):
    """An analyst's decision on a tag (confirm, reject, add). Append-only: the latest decision wins."""

    __tablename__ = "annotations"
    __table_args__ = (CheckConstraint(in_values("decision", ANNOTATION_DECISIONS), name="decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    passage_id: Mapped[int] = mapped_column(ForeignKey("passages.id", ondelete="CASCADE"), index=True)
    facet: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    user_name: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Embedding(Base):
    """A cached sentence embedding, keyed by model and the SHA-256 of the text (float32, little-endian)."""

    __tablename__ = "embeddings"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Basket(Base):
    """An evidence basket: excerpts collected for a briefing, with the queries that found them."""

    __tablename__ = "baskets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    queries: Mapped[list[str]] = mapped_column(default=list)


class BasketItem(Base):
    __tablename__ = "basket_items"
    __table_args__ = (UniqueConstraint("basket_id", "passage_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    basket_id: Mapped[int] = mapped_column(ForeignKey("baskets.id", ondelete="CASCADE"), index=True)
    passage_id: Mapped[int] = mapped_column(ForeignKey("passages.id", ondelete="CASCADE"), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(default=utc_now)
    position: Mapped[int] = mapped_column(Integer, default=0)


class QueuedDocument(Base):
    """A document waiting for a parallel ingest worker (claimed with SELECT ... FOR UPDATE SKIP LOCKED).

    One row per file content (unique sha256, computed when queued and checked again by the worker).
    """

    __tablename__ = "ingest_queue"
    __table_args__ = (CheckConstraint(in_values("status", QUEUE_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    # Added by migration 0004: what the worker needs to read the file as `vkpp ingest` would.
    file_size: Mapped[int | None] = mapped_column(Integer)
    manifest_row: Mapped[dict[str, Any] | None]
    force: Mapped[bool] = mapped_column(default=False, server_default=false())
    finished_at: Mapped[datetime | None]


class TopicRun(Base):
    """One topic model fit: its parameters, corpus filter, taxonomy and library versions, and outcome."""

    __tablename__ = "topic_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    method: Mapped[str] = mapped_column(String(64))  # registry-style versioned name, e.g. "topics.bertopic.v1"
    embedding_model: Mapped[str] = mapped_column(String(128))
    taxonomy_version: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    corpus_filter: Mapped[dict[str, Any]]
    library_versions: Mapped[dict[str, Any]]
    configuration: Mapped[str] = mapped_column(String(16))  # "full" (UMAP + HDBSCAN) or "small"
    passages: Mapped[int] = mapped_column(Integer)
    topic_count: Mapped[int] = mapped_column(Integer)
    outlier_share_before: Mapped[float] = mapped_column(Float)
    outlier_share_after: Mapped[float] = mapped_column(Float)
    notes: Mapped[list[str]]
    model_path: Mapped[str] = mapped_column(Text)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Topic(Base):
    """A topic of a run: c-TF-IDF keywords, a readable label, and its nearest taxonomy theme."""

    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("run_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("topic_runs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # BERTopic's topic id; -1 holds the outliers
    label: Mapped[str] = mapped_column(Text)
    keywords: Mapped[list[str]]
    keyword_scores: Mapped[list[Any]] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(Integer)
    theme_id: Mapped[str | None] = mapped_column(String(64))
    theme_facet: Mapped[str | None] = mapped_column(String(32))
    theme_similarity: Mapped[float | None] = mapped_column(Float)
    theme_matches: Mapped[list[Any]] = mapped_column(JSON)  # the nearest few themes: {id, facet, similarity}
    emergent: Mapped[bool]
    representative_passage_ids: Mapped[list[Any]] = mapped_column(JSON)


class TopicAssignment(Base):
    """Which topic a passage belongs to in a run; the database, not the saved model, is the source of truth."""

    __tablename__ = "topic_assignments"

    run_id: Mapped[int] = mapped_column(ForeignKey("topic_runs.id", ondelete="CASCADE"), primary_key=True)
    passage_id: Mapped[int] = mapped_column(ForeignKey("passages.id", ondelete="CASCADE"), primary_key=True, index=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column(Float)  # cosine similarity to the topic's centroid
    source: Mapped[str] = mapped_column(String(16))  # "fit", "reduced" (was an outlier) or "assigned" (new passage)


class TopicBreakdown(Base):
    """A topic within one review type or one publication year: its passage count, share and local keywords."""

    __tablename__ = "topic_breakdowns"
    __table_args__ = (UniqueConstraint("topic_id", "dimension", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), index=True)
    dimension: Mapped[str] = mapped_column(String(16))  # "review_type" or "year"
    value: Mapped[str] = mapped_column(String(32))
    passages: Mapped[int] = mapped_column(Integer)
    share: Mapped[float] = mapped_column(Float)  # of the passages of that review type or year
    keywords: Mapped[list[str]]
