"""Reading the corpus a topic fit sees and writing its run, topics, assignments and breakdowns.

Statements are built by small pure functions; the functions that run them take a Session inside the
caller's transaction, so a run is stored whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.orm import Session

from vkpp_learning.db import models
from vkpp_learning.records import REVIEW_SUBTYPES

# Headings and footnotes (references, definitions of terms) say little about practice.
TOPIC_KINDS = ("paragraph", "table_row", "list_item")
# Sections about the review itself (who commissioned it, how it was done): left out unless asked for
# with --section, or every run would find "the review panel met" as its first emergent topic.
PROCESS_SECTIONS = ("front_matter", "introduction", "methodology", "appendix")
MIN_WORDS = 6
DIMENSIONS = ("review_type", "year")


@dataclass(frozen=True)
class CorpusFilter:
    """Which stored passages a fit sees; recorded with the run."""

    review_type: str | None = None  # CSPR, SAR, DHR, MAPPA, or a subtype (SCR, CPR, APR, DARDR)
    section: str | None = None  # a section kind: analysis, findings, recommendations, chronology...
    kinds: tuple[str, ...] = TOPIC_KINDS
    min_words: int = MIN_WORDS
    excluded_sections: tuple[str, ...] = PROCESS_SECTIONS  # ignored when `section` is given

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kinds": list(self.kinds), "excluded_sections": list(self.excluded_sections)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CorpusFilter:
        return cls(
            review_type=data.get("review_type"),
            section=data.get("section"),
            kinds=tuple(data["kinds"]),
            min_words=int(data["min_words"]),
            excluded_sections=tuple(data.get("excluded_sections", ())),
        )

    def describe(self) -> str:
        words = "passages"
        if self.review_type:
            words += f" of {self.review_type} reviews"
        if self.section:
            words += f" in {self.section} sections"
        return words


@dataclass
class CorpusRow:
    passage_id: int
    text: str
    review_id: int
    review_type: str
    year: int | None


def corpus_statement(corpus_filter: CorpusFilter) -> Select:
    """The passages a fit sees, with their review's type and year, in passage order."""
    passage, review = models.Passage, models.Review
    statement = (
        select(passage.id, passage.text, passage.review_id, review.review_type, review.year)
        .join(review, review.id == passage.review_id)
        .where(passage.kind.in_(corpus_filter.kinds))
        .order_by(passage.id)
    )
    if corpus_filter.review_type:
        kind = corpus_filter.review_type.upper()
        column = review.subtype if kind in REVIEW_SUBTYPES else review.review_type
        statement = statement.where(column == kind)
    if corpus_filter.section:
        statement = statement.where(passage.section_kind == corpus_filter.section)
    elif corpus_filter.excluded_sections:
        statement = statement.where(passage.section_kind.not_in(corpus_filter.excluded_sections))
    return statement


def corpus_rows(session: Session, corpus_filter: CorpusFilter, exclude: set[int] | None = None) -> list[CorpusRow]:
    """The passages matching the filter with at least `min_words` words, less those in `exclude`."""
    rows = [CorpusRow(*row) for row in session.execute(corpus_statement(corpus_filter))]
    return [
        row
        for row in rows
        if len(row.text.split()) >= corpus_filter.min_words and (exclude is None or row.passage_id not in exclude)
    ]


def add_run(session: Session, values: dict[str, Any]) -> models.TopicRun:
    run = models.TopicRun(**values)
    session.add(run)
    session.flush()
    return run


def add_topics(session: Session, run_id: int, rows: Iterable[dict[str, Any]]) -> dict[int, int]:
    """Insert a run's topics; returns topic number -> topic id."""
    topics = [models.Topic(run_id=run_id, **row) for row in rows]
    session.add_all(topics)
    session.flush()
    return {topic.number: topic.id for topic in topics}


def add_assignments(session: Session, rows: list[dict[str, Any]]) -> None:
    """Bulk insert of {run_id, passage_id, topic_id, score, source} rows."""
    for start in range(0, len(rows), 5000):
        session.execute(insert(models.TopicAssignment), rows[start : start + 5000])


def assigned_passage_ids(session: Session, run_id: int) -> set[int]:
    statement = select(models.TopicAssignment.passage_id).where(models.TopicAssignment.run_id == run_id)
    return set(session.scalars(statement))


def topic_ids_by_number(session: Session, run_id: int) -> dict[int, int]:
    statement = select(models.Topic.number, models.Topic.id).where(models.Topic.run_id == run_id)
    return {number: topic_id for number, topic_id in session.execute(statement)}


def dimension_column(dimension: str) -> Any:
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown breakdown dimension {dimension!r}; known: {', '.join(DIMENSIONS)}")
    return getattr(models.Review, dimension)


def breakdown_counts_statement(run_id: int, dimension: str) -> Select:
    """(topic id, value, passages) for every topic of a run and every review type or year it occurs in."""
    assignment, column = models.TopicAssignment, dimension_column(dimension)
    return (
        select(assignment.topic_id, column, func.count())
        .join(models.Passage, models.Passage.id == assignment.passage_id)
        .join(models.Review, models.Review.id == models.Passage.review_id)
        .where(assignment.run_id == run_id, column.is_not(None))
        .group_by(assignment.topic_id, column)
    )


def topic_sizes_statement(run_id: int) -> Select:
    assignment = models.TopicAssignment
    return select(assignment.topic_id, func.count()).where(assignment.run_id == run_id).group_by(assignment.topic_id)


def write_breakdowns(session: Session, run_id: int, keywords: Mapping[tuple[int, str, str], list[str]]) -> None:
    """(Re)compute each topic's passages and share per review type and per year from the stored assignments.

    `keywords` maps (topic id, dimension, value) to that topic's local keywords; a row without new
    keywords keeps the ones it had (assigning new passages changes counts, not the fitted keywords).
    """
    topic_ids = list(topic_ids_by_number(session, run_id).values())
    kept = {
        (row.topic_id, row.dimension, row.value): row.keywords
        for row in session.scalars(select(models.TopicBreakdown).where(models.TopicBreakdown.topic_id.in_(topic_ids)))
    }
    session.execute(delete(models.TopicBreakdown).where(models.TopicBreakdown.topic_id.in_(topic_ids)))
    rows = []
    for dimension in DIMENSIONS:
        counts = [
            (topic_id, str(value), n)
            for topic_id, value, n in session.execute(breakdown_counts_statement(run_id, dimension))
        ]
        totals: dict[str, int] = {}
        for _, value, n in counts:
            totals[value] = totals.get(value, 0) + n
        for topic_id, value, n in counts:
            key = (topic_id, dimension, value)
            words = keywords.get(key, kept.get(key, []))
            rows.append(
                {
                    "topic_id": topic_id,
                    "dimension": dimension,
                    "value": value,
                    "passages": n,
                    "share": n / totals[value],
                    "keywords": words,
                }
            )
    if rows:
        session.execute(insert(models.TopicBreakdown), rows)


def refresh_sizes(session: Session, run_id: int) -> None:
    """Topic sizes as the stored assignments count them."""
    sizes = dict(session.execute(topic_sizes_statement(run_id)).all())
    for topic in session.scalars(select(models.Topic).where(models.Topic.run_id == run_id)):
        topic.size = sizes.get(topic.id, 0)
