"""What the app and `vkpp topics show` read about topic runs: runs, topics with their taxonomy mapping, the
emergent ones, topics per review type and per year, and the cited passages behind each topic.

Only SQLAlchemy: no BERTopic, no numpy model code, so the app's pages stay light.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from vkpp_learning.db import models


@dataclass
class RunView:
    id: int
    created_at: str
    method: str
    configuration: str
    passages: int
    topic_count: int
    emergent_count: int
    outlier_share_before: float
    outlier_share_after: float
    taxonomy_version: str
    corpus_filter: dict[str, Any]
    params: dict[str, Any]
    library_versions: dict[str, Any]
    notes: list[str]
    model_path: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TopicView:
    id: int
    number: int
    label: str
    keywords: list[str]
    size: int
    theme_id: str | None
    theme_facet: str | None
    theme_similarity: float | None
    theme_matches: list[dict[str, Any]]
    emergent: bool
    representative_passage_ids: list[int] = field(default_factory=list)

    @property
    def is_outliers(self) -> bool:
        return self.number == -1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TopicShare:
    """A topic within one review type or one year: one bar or point of a chart, with what opens onto it."""

    topic_id: int
    number: int
    label: str
    emergent: bool
    value: str  # the review type, or the year as text
    passages: int
    share: float  # of that review type's (or year's) passages in the run
    keywords: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TopicPassage:
    """A passage of a topic with its citation."""

    passage_id: int
    text: str
    review_id: int
    review_title: str
    review_type: str
    year: int | None
    page_start: int
    page_end: int
    paragraph: str | None
    section: str
    score: float
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_view(run: models.TopicRun, emergent_count: int) -> RunView:
    return RunView(
        id=run.id,
        created_at=run.created_at.isoformat(timespec="seconds") if run.created_at else "",
        method=run.method,
        configuration=run.configuration,
        passages=run.passages,
        topic_count=run.topic_count,
        emergent_count=emergent_count,
        outlier_share_before=run.outlier_share_before,
        outlier_share_after=run.outlier_share_after,
        taxonomy_version=run.taxonomy_version,
        corpus_filter=dict(run.corpus_filter),
        params=dict(run.params),
        library_versions=dict(run.library_versions),
        notes=list(run.notes),
        model_path=run.model_path,
        seconds=run.seconds,
    )


def _emergent_count(session: Session, run_id: int) -> int:
    topic = models.Topic
    return int(session.scalar(select(func.count()).where(topic.run_id == run_id, topic.emergent.is_(True))) or 0)


def get_run(session: Session, run_id: int) -> RunView | None:
    run = session.get(models.TopicRun, run_id)
    return run_view(run, _emergent_count(session, run.id)) if run else None


def latest_run(session: Session) -> RunView | None:
    """The most recent topic run, or None before the first fit."""
    run_id = session.scalar(select(models.TopicRun.id).order_by(models.TopicRun.id.desc()).limit(1))
    return get_run(session, run_id) if run_id is not None else None


def list_runs(session: Session) -> list[RunView]:
    runs = session.scalars(select(models.TopicRun).order_by(models.TopicRun.id.desc()))
    return [run_view(run, _emergent_count(session, run.id)) for run in runs]


def topic_view(topic: models.Topic) -> TopicView:
    return TopicView(
        id=topic.id,
        number=topic.number,
        label=topic.label,
        keywords=list(topic.keywords),
        size=topic.size,
        theme_id=topic.theme_id,
        theme_facet=topic.theme_facet,
        theme_similarity=topic.theme_similarity,
        theme_matches=list(topic.theme_matches),
        emergent=topic.emergent,
        representative_passage_ids=[int(i) for i in topic.representative_passage_ids],
    )


def topics_statement(run_id: int) -> Select:
    """A run's topics, largest first, with the outliers (-1) last."""
    topic = models.Topic
    return select(topic).where(topic.run_id == run_id).order_by((topic.number == -1), topic.size.desc(), topic.number)


def topics_of_run(session: Session, run_id: int) -> list[TopicView]:
    return [topic_view(topic) for topic in session.scalars(topics_statement(run_id))]


def emergent_topics(session: Session, run_id: int) -> list[TopicView]:
    """The topics no taxonomy theme is near: the list an analyst reads first, largest first."""
    return [topic for topic in topics_of_run(session, run_id) if topic.emergent]


def breakdown_statement(run_id: int, dimension: str) -> Select:
    topic, breakdown = models.Topic, models.TopicBreakdown
    return (
        select(breakdown, topic)
        .join(topic, topic.id == breakdown.topic_id)
        .where(topic.run_id == run_id, breakdown.dimension == dimension)
        .order_by(breakdown.value, breakdown.passages.desc(), topic.number)
    )


def _shares(session: Session, run_id: int, dimension: str) -> list[TopicShare]:
    return [
        TopicShare(
            topic_id=topic.id,
            number=topic.number,
            label=topic.label,
            emergent=topic.emergent,
            value=row.value,
            passages=row.passages,
            share=row.share,
            keywords=list(row.keywords),
        )
        for row, topic in session.execute(breakdown_statement(run_id, dimension))
    ]


def topics_by_review_type(session: Session, run_id: int) -> list[TopicShare]:
    """Each topic's passages and share within each review type (CSPR, SAR, DHR, MAPPA), with local keywords."""
    return _shares(session, run_id, "review_type")


def topics_over_years(session: Session, run_id: int) -> list[TopicShare]:
    """Each topic's passages and share within each publication year (reviews with no known year left out)."""
    return sorted(_shares(session, run_id, "year"), key=lambda s: (int(s.value), -s.passages, s.number))


def topic_passages_statement(topic_id: int) -> Select:
    passage, review, assignment = models.Passage, models.Review, models.TopicAssignment
    return (
        select(
            passage.id,
            passage.text,
            review.id,
            review.title,
            review.review_type,
            review.year,
            passage.page_start,
            passage.page_end,
            passage.paragraph,
            passage.section,
            assignment.score,
            assignment.source,
        )
        .join(assignment, assignment.passage_id == passage.id)
        .join(review, review.id == passage.review_id)
        .where(assignment.topic_id == topic_id)
    )


def representative_passages(session: Session, topic_id: int) -> list[TopicPassage]:
    """The passages chosen to show the topic (nearest its centre, one review at a time), in that order."""
    topic = session.get(models.Topic, topic_id)
    if topic is None:
        return []
    order = [int(i) for i in topic.representative_passage_ids]
    statement = topic_passages_statement(topic_id).where(models.Passage.id.in_(order))
    found = {row.passage_id: row for row in _passages(session, statement)}
    return [found[i] for i in order if i in found]  # a passage deleted since the fit is skipped


def passages_of_topic(
    session: Session, topic_id: int, *, review_type: str | None = None, year: int | None = None, limit: int = 50
) -> list[TopicPassage]:
    """The passages behind a figure: a topic's passages, optionally in one review type or year, best first."""
    statement = topic_passages_statement(topic_id)
    if review_type:
        statement = statement.where(models.Review.review_type == review_type)
    if year is not None:
        statement = statement.where(models.Review.year == year)
    statement = statement.order_by(models.TopicAssignment.score.desc(), models.Passage.id).limit(limit)
    return _passages(session, statement)


def _passages(session: Session, statement: Select) -> list[TopicPassage]:
    return [TopicPassage(*row) for row in session.execute(statement)]
