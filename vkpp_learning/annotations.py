"""Analysts' decisions on tags (confirm, reject, add), the effective tags they produce, and a review queue.

Decisions are append-only rows: nobody's decision is overwritten, by another analyst or by re-tagging,
and the latest decision on a (passage, facet, label) wins, as in search filters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from vkpp_learning.citations import citation
from vkpp_learning.db import models
from vkpp_learning.errors import VkppError
from vkpp_learning.records import FACETS
from vkpp_learning.roles import User, require

DECISIONS = models.ANNOTATION_DECISIONS
BINARY_FACETS = ("missed_opportunity", "police_relevant")
BINARY_LABEL = "true"
# Facets whose labels are the ids of another facet's themes.
LABELS_FROM = {"recommendation_to": "agency"}
DEFAULT_THRESHOLD = 0.5
ANALYST_PREFIX = "analyst:"
KEEPING = ("confirm", "add")


@dataclass(frozen=True)
class Decision:
    """One analyst decision as stored."""

    id: int
    passage_id: int
    facet: str
    label: str
    decision: str
    user_name: str
    note: str
    created_at: datetime | None


@dataclass(frozen=True)
class EffectiveTag:
    """A tag a passage carries once analysts' decisions are applied.

    `source` is the tagger's versioned name for an undecided machine tag, or "analyst:<name>" when an
    analyst's latest decision confirmed or added it. `score` is the machine score, or None for a tag
    only an analyst gave.
    """

    facet: str
    label: str
    source: str
    score: float | None = None
    method: str | None = None  # the tagger that proposed it, if any
    evidence: str = ""

    @property
    def by_analyst(self) -> bool:
        return self.source.startswith(ANALYST_PREFIX)


@dataclass(frozen=True)
class QueueItem:
    """A passage waiting for an analyst: its least certain tag in the facet and how near the threshold it is."""

    passage_id: int
    facet: str
    label: str
    score: float
    threshold: float
    distance: float
    annotated: bool
    method: str
    text: str = ""
    citation: str = ""


def annotate(
    session: Session, user: User, passage_id: int, facet: str, label: str, decision: str, note: str = ""
) -> Decision:
    """Record an analyst's decision on a tag (a new row: earlier decisions are kept). Not committed."""
    require(user, "annotate")
    check_decision(session, passage_id, facet, label, decision)
    row = models.Annotation(
        passage_id=passage_id, facet=facet, label=label.strip(), decision=decision, user_name=user.name, note=note
    )
    session.add(row)
    session.flush()
    return as_decision(row)


def check_decision(session: Session, passage_id: int, facet: str, label: str, decision: str) -> None:
    """VkppError for an unknown decision, facet, passage, or (when adding) a label the taxonomy lacks."""
    if decision not in DECISIONS:
        raise VkppError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}", code="bad_decision")
    if facet not in FACETS:
        raise VkppError(f"unknown facet {facet!r}; facets are {', '.join(FACETS)}", code="bad_facet")
    if not label.strip():
        raise VkppError("a tag needs a label", code="bad_label")
    if session.get(models.Passage, passage_id) is None:
        raise missing_passage(passage_id)
    if decision == "add":
        check_label(facet, label.strip())


def check_label(facet: str, label: str) -> None:
    """A label an analyst adds must exist: "true" for yes/no facets, else a theme id of the taxonomy."""
    if facet in BINARY_FACETS:
        if label != BINARY_LABEL:
            raise VkppError(f"{facet} is a yes/no facet: its only label is {BINARY_LABEL!r}", code="bad_label")
        return
    from vkpp_learning.taxonomy import load_taxonomy

    ids = load_taxonomy().ids(LABELS_FROM.get(facet, facet))
    if label not in ids:
        raise VkppError(f"{label!r} is not a {facet} theme in the taxonomy; known: {', '.join(ids)}", code="bad_label")


def missing_passage(passage_id: int) -> VkppError:
    return VkppError(
        f"passage {passage_id} is not in the repository (its review may have been deleted or re-ingested)",
        code="unknown_passage",
    )


def as_decision(row: models.Annotation) -> Decision:
    return Decision(
        id=row.id,
        passage_id=row.passage_id,
        facet=row.facet,
        label=row.label,
        decision=row.decision,
        user_name=row.user_name,
        note=row.note or "",
        created_at=row.created_at,
    )


def decisions(session: Session, passage_id: int) -> list[Decision]:
    """Every decision on a passage, oldest first (who, when, what)."""
    statement = (
        select(models.Annotation).where(models.Annotation.passage_id == passage_id).order_by(models.Annotation.id)
    )
    return [as_decision(row) for row in session.scalars(statement)]


def current_tags_statement(passage_ids: Sequence[int]) -> Select:
    """Machine tags of the current tag runs on these passages, with the method that made them."""
    tag = models.Tag
    return (
        select(tag.passage_id, tag.facet, tag.label, tag.score, tag.evidence, models.TagRun.method)
        .join(models.TagRun, models.TagRun.id == tag.run_id)
        .where(models.TagRun.is_current.is_(True), tag.passage_id.in_(passage_ids))
    )


def latest_decisions_statement(passage_ids: Sequence[int]) -> Select:
    """The latest decision per (passage, facet, label) on these passages (highest id: ids only grow)."""
    annotation = models.Annotation
    latest = (
        select(func.max(annotation.id))
        .where(annotation.passage_id.in_(passage_ids))
        .group_by(annotation.passage_id, annotation.facet, annotation.label)
    )
    return select(annotation).where(annotation.id.in_(latest))


def effective_tags(session: Session, passage_ids: Iterable[int]) -> dict[int, list[EffectiveTag]]:
    """Tags per passage: the current runs' tags plus analysts' adds and confirms, minus their rejects.

    Every requested passage is a key (an empty list when it carries no tag). Tags are ordered by facet,
    then analysts' tags and higher scores first.
    """
    ids = sorted(set(passage_ids))
    machine: dict[tuple[int, str, str], EffectiveTag] = {}
    for passage_id, facet, label, score, evidence, method in session.execute(current_tags_statement(ids)):
        key = (passage_id, facet, label)
        if key not in machine or (machine[key].score or 0.0) < score:
            machine[key] = EffectiveTag(facet, label, method, score, method, evidence or "")
    tags = dict(machine)
    for row in session.scalars(latest_decisions_statement(ids)):
        apply_decision(tags, machine, row)
    found: dict[int, list[EffectiveTag]] = {passage_id: [] for passage_id in ids}
    for (passage_id, _facet, _label), tag in tags.items():
        found[passage_id].append(tag)
    return {passage_id: sorted(listed, key=tag_order) for passage_id, listed in found.items()}


def analyst_labels(session: Session, facets: Sequence[str] | None = None) -> dict[int, dict[str, dict[str, bool]]]:
    """What analysts decided, for training and evaluating taggers: passage -> facet -> label -> True when the
    latest decision confirms or adds the tag, False when it rejects it. Undecided tags are absent."""
    annotation = models.Annotation
    latest = select(func.max(annotation.id)).group_by(annotation.passage_id, annotation.facet, annotation.label)
    if facets:
        latest = latest.where(annotation.facet.in_(facets))
    statement = select(annotation.passage_id, annotation.facet, annotation.label, annotation.decision).where(
        annotation.id.in_(latest)
    )
    found: dict[int, dict[str, dict[str, bool]]] = {}
    for passage_id, facet, label, decision in session.execute(statement.order_by(annotation.passage_id)):
        found.setdefault(passage_id, {}).setdefault(facet, {})[label] = decision in KEEPING
    return found


def apply_decision(
    tags: dict[tuple[int, str, str], EffectiveTag],
    machine: dict[tuple[int, str, str], EffectiveTag],
    row: models.Annotation,
) -> None:
    key = (row.passage_id, row.facet, row.label)
    if row.decision not in KEEPING:
        tags.pop(key, None)
        return
    proposed = machine.get(key)
    tags[key] = EffectiveTag(
        facet=row.facet,
        label=row.label,
        source=ANALYST_PREFIX + row.user_name,
        score=proposed.score if proposed else None,
        method=proposed.method if proposed else None,
        evidence=row.note or (proposed.evidence if proposed else ""),
    )


def tag_order(tag: EffectiveTag) -> tuple[Any, ...]:
    return (FACETS.index(tag.facet) if tag.facet in FACETS else len(FACETS), not tag.by_analyst, -(tag.score or 0))


def labels(tags: Iterable[EffectiveTag], facet: str) -> list[str]:
    """The labels of one facet, in the order given (strongest first from `effective_tags`)."""
    return [tag.label for tag in tags if tag.facet == facet]


def run_threshold(run: models.TagRun, facet: str) -> float:
    """The threshold a run recorded for a facet: its own, else the run's "all", else 0.5."""
    thresholds = run.thresholds or {}
    value = thresholds.get(facet, thresholds.get("all", DEFAULT_THRESHOLD))
    try:
        return float(value)
    except (TypeError, ValueError):
        return DEFAULT_THRESHOLD


def queue_statement(run_id: int, facet: str, threshold: float, limit: int) -> Select:
    """One run's passages with tags in `facet`: unannotated first, then nearest the threshold."""
    tag, annotation = models.Tag, models.Annotation
    distance = func.min(func.abs(tag.score - threshold)).label("distance")
    annotated = select(annotation.passage_id).where(annotation.facet == facet)
    annotated_flag = func.max(case((tag.passage_id.in_(annotated), 1), else_=0)).label("done")
    return (
        select(tag.passage_id, distance, annotated_flag)
        .where(tag.run_id == run_id, tag.facet == facet)
        .group_by(tag.passage_id)
        .order_by(annotated_flag, distance, tag.passage_id)
        .limit(limit)
    )


def annotation_queue(session: Session, facet: str = "practice", limit: int = 50) -> list[QueueItem]:
    """Passages whose `facet` tags most need an analyst: never annotated in that facet first, then those
    whose score is nearest the threshold their tag run recorded (the least certain). Only passages
    with a machine tag in the facet are queued."""
    if facet not in FACETS:
        raise VkppError(f"unknown facet {facet!r}; facets are {', '.join(FACETS)}", code="bad_facet")
    runs = session.scalars(select(models.TagRun).where(models.TagRun.is_current.is_(True))).all()
    items: dict[int, QueueItem] = {}
    for run in runs:
        for item in run_queue(session, run, facet, limit):
            if item.passage_id not in items or queue_order(item) < queue_order(items[item.passage_id]):
                items[item.passage_id] = item
    return with_passages(session, sorted(items.values(), key=queue_order)[:limit])


def with_passages(session: Session, items: list[QueueItem]) -> list[QueueItem]:
    """The queue items with their passage text and citation, read in one query."""
    ids = [item.passage_id for item in items]
    rows = session.execute(
        select(models.Passage, models.Review).join(models.Review).where(models.Passage.id.in_(ids))
    ).all()
    found = {passage.id: (passage.text, citation(review, passage)) for passage, review in rows}
    return [replace(item, text=found[item.passage_id][0], citation=found[item.passage_id][1]) for item in items]


def run_queue(session: Session, run: models.TagRun, facet: str, limit: int) -> list[QueueItem]:
    threshold = run_threshold(run, facet)
    rows = session.execute(queue_statement(run.id, facet, threshold, limit)).all()
    return [nearest_tag(session, run, facet, threshold, row.passage_id, bool(row.done)) for row in rows]


def nearest_tag(
    session: Session, run: models.TagRun, facet: str, threshold: float, passage_id: int, annotated: bool
) -> QueueItem:
    tag = models.Tag
    label, score = session.execute(
        select(tag.label, tag.score)
        .where(tag.run_id == run.id, tag.facet == facet, tag.passage_id == passage_id)
        .order_by(func.abs(tag.score - threshold), tag.label)
        .limit(1)
    ).one()
    distance = round(abs(score - threshold), 6)
    return QueueItem(passage_id, facet, label, score, threshold, distance, annotated, run.method)


def queue_order(item: QueueItem) -> tuple[bool, float, int]:
    return (item.annotated, item.distance, item.passage_id)
