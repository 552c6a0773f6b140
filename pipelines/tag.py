"""The tag job: tag the repository's passages, batch by batch, each batch in its own transaction, and
record how (one tag run per tagger: method, taxonomy and model versions, parameters, thresholds).

A run of the same method and configuration is carried on, tagging only passages it has not tagged; a new
taxonomy, model or `force` starts a new run, made current when it is complete while the older runs stay
queryable until removed. Learned taggers are fitted on the gold samples and analysts' decisions, saved
beside the database, and reused until `retrain`. Analysts' annotations are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from vkpp_learning.db import Database, models, open_database
from vkpp_learning.errors import VkppError
from vkpp_learning.evaluate import BUNDLED_LABELS, load_labelled
from vkpp_learning.records import TagInput, TagResult
from vkpp_learning.tagging.base import (
    FittableTagger,
    PassageLabels,
    RunInfo,
    Tagger,
    create_tagger,
    run_info,
)

if TYPE_CHECKING:
    import numpy as np

DEFAULT_METHOD = "ensemble"
RULES = "rules"  # the keyword baseline: the rules tagger and its four detectors
BATCH = 256
DEFAULT_LABELS: tuple[Path, ...] = BUNDLED_LABELS  # corpus_samples/gold and corpus_samples/training
LATEST = "latest.txt"

Progress = Callable[[int, int], Any]  # (passages done, passages to do)
Reporter = Callable[[str], Any]


@dataclass
class RunSummary:
    """What one tagger did: its run, whether the run is new, and how many passages and tags it wrote."""

    run_id: int
    method: str
    model_version: str | None
    new_run: bool
    passages: int = 0
    tags: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TagSummary:
    runs: list[RunSummary] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"runs": [r.to_json() for r in self.runs], "seconds": round(self.seconds, 2)}


# ---- which taggers ---------------------------------------------------------------------------------


def taggers_for(method: str, **options: Any) -> list[Tagger]:
    """The taggers a method names: "rules" is the rules tagger with its detectors; names separated by
    commas are run side by side, each with its own run."""
    from vkpp_learning.tagging.detectors import DEFAULT_TAGGERS

    names = list(DEFAULT_TAGGERS) if method == RULES else [n.strip() for n in method.split(",") if n.strip()]
    if not names:
        raise VkppError("name a tagging method, e.g. ensemble or rules", code="bad_method")
    try:
        return [create_tagger(name, **options) for name in names]
    except KeyError as exc:
        raise VkppError(str(exc.args[0]), code="bad_method") from None


def evaluation_names(method: str) -> str | Sequence[str]:
    """What `vkpp evaluate --method` hands the evaluation: the same taggers `vkpp tag` would run."""
    from vkpp_learning.tagging.detectors import DEFAULT_TAGGERS

    return DEFAULT_TAGGERS if method == RULES else method


# ---- training data ----------------------------------------------------------------------------------


@dataclass
class TrainingSet:
    """Labelled passages for the learned taggers: gold samples, then analysts' decisions on stored
    passages (which win over gold for the same text)."""

    items: list[TagInput] = field(default_factory=list)
    labels: list[PassageLabels] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    decided: list[Mapping[str, Sequence[str]] | None] = field(default_factory=list)
    calibration: list[bool] = field(default_factory=list)  # passages of real reviews: thresholds are set on them

    def summary(self) -> dict[str, Any]:
        analysts = sum(1 for d in self.decided if d is not None)
        return {"passages": len(self.items), "reviews": len(set(self.groups)), "analyst_passages": analysts}


def training_set(session: Session, gold: Path | Sequence[Path] | None) -> TrainingSet:
    """Labelled passages from the gold files or folders (missing folders skipped) and analysts' decisions."""
    found = TrainingSet()
    by_text: dict[str, int] = {}
    paths = [] if gold is None else [gold] if isinstance(gold, Path) else list(gold)
    for passage in load_labelled(paths):
        by_text[passage.text] = len(found.items)
        labels = {facet: sorted(values) for facet, values in passage.labels.items()}
        _append(found, passage.tag_input(), labels, f"gold:{passage.doc_id}", None, not passage.written)
    for item, review_id, decisions in analyst_passages(session):
        row = by_text.get(item.text)
        if row is None:
            positives = {f: sorted(label for label, keep in d.items() if keep) for f, d in decisions.items()}
            _append(found, item, positives, f"review:{review_id}", {f: sorted(d) for f, d in decisions.items()}, True)
            continue
        merged = {facet: set(values) for facet, values in found.labels[row].items()}
        for facet, decided in decisions.items():
            for label, keep in decided.items():
                (merged.setdefault(facet, set()).add if keep else merged.setdefault(facet, set()).discard)(label)
        found.labels[row] = {facet: sorted(values) for facet, values in merged.items()}
    return found


def _append(
    found: TrainingSet,
    item: TagInput,
    labels: PassageLabels,
    group: str,
    decided: Mapping[str, Sequence[str]] | None,
    calibration: bool,
) -> None:
    found.items.append(item)
    found.labels.append(labels)
    found.groups.append(group)
    found.decided.append(decided)
    found.calibration.append(calibration)


def analyst_passages(session: Session) -> list[tuple[TagInput, int, dict[str, dict[str, bool]]]]:
    """(passage as the taggers see it, its review, the analysts' latest decisions by facet and label)."""
    from vkpp_learning.annotations import analyst_labels

    decisions = analyst_labels(session)
    if not decisions:
        return []
    rows = session.execute(passage_statement(sorted(decisions))).all()
    return [(tag_input(row), row.review_id, decisions[row.id]) for row in rows]


# ---- fitting and saving learned taggers -------------------------------------------------------------


def model_root(db_url: str) -> Path:
    """Where fitted taggers are saved: tagger_models/ beside a SQLite file, else ./vkpp_data/tagger_models."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).expanduser().resolve().parent / "tagger_models"
    return Path("vkpp_data").resolve() / "tagger_models"


def prepare(
    tagger: Tagger, db: Database, retrain: bool, gold: Path | Sequence[Path] | None, report: Reporter | None = None
) -> None:
    """Give a learned tagger its fit: the latest saved one, or (with `retrain`, or when none fits this
    taxonomy) a new fit on the gold samples and analysts' decisions, saved under its model version."""
    from vkpp_learning.tagging.calibrate import load_model, save_model

    if not isinstance(tagger, FittableTagger):
        return
    folder = model_root(db.url) / tagger.name
    if not retrain and _load_latest(tagger, folder, load_model):
        return
    with db.session() as session:
        training = training_set(session, gold)
    if not training.items:
        raise VkppError(
            f"{tagger.name} learns from labelled passages, and there are none: give --gold or annotate some passages",
            code="no_training_data",
        )
    if report:
        said = training.summary()
        report(
            f"fitting {tagger.name} on {said['passages']} labelled passages from {said['reviews']} reviews "
            f"({said['analyst_passages']} with analysts' decisions)"
        )
    tagger.fit(training.items, training.labels, training.groups, training.decided, training.calibration)
    directory = folder / str(tagger.model_version)  # type: ignore[attr-defined]
    save_model(tagger, directory, training.summary())
    (folder / LATEST).write_text(directory.name, encoding="utf-8")


def _load_latest(tagger: Tagger, folder: Path, load_model: Callable[[Any, Path], Any]) -> bool:
    pointer = folder / LATEST
    if not pointer.is_file():
        return False
    try:
        load_model(tagger, folder / pointer.read_text(encoding="utf-8").strip())
    except (OSError, ValueError, KeyError):
        return False  # saved for another taxonomy or configuration, or damaged: fit again
    return True


# ---- runs ------------------------------------------------------------------------------------------


def same_configuration(run: models.TagRun, info: RunInfo) -> bool:
    return (
        run.taxonomy_version == info.taxonomy_version
        and run.model_version == info.model_version
        and (run.thresholds or {}) == _json(info.thresholds)
        and {k: v for k, v in (run.params or {}).items() if k != "complete"} == _json(info.params)
    )


def _json(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def open_run(session: Session, info: RunInfo, force: bool) -> tuple[models.TagRun, bool]:
    """The run to fill: the method's latest run when it has the same configuration (current, or left
    incomplete by an interrupted job), else a new run that becomes current only when complete."""
    latest = session.scalars(
        select(models.TagRun).where(models.TagRun.method == info.method).order_by(models.TagRun.id.desc()).limit(1)
    ).first()
    if latest is not None and not force and same_configuration(latest, info):
        return latest, False
    run = models.TagRun(
        method=info.method,
        taxonomy_version=info.taxonomy_version,
        model_version=info.model_version,
        params={**_json(info.params), "complete": False},
        thresholds=_json(info.thresholds),
        is_current=False,
    )
    session.add(run)
    session.flush()
    return run, True


def complete_run(session: Session, run_id: int) -> None:
    """Make the run its method's current run; older runs of the method stay, no longer current."""
    run = session.get(models.TagRun, run_id)
    assert run is not None
    session.execute(
        update(models.TagRun)
        .where(models.TagRun.method == run.method, models.TagRun.id != run.id)
        .values(is_current=False)
    )
    run.is_current = True
    run.params = {**(run.params or {}), "complete": True}


def unread_statement(run_id: int) -> Any:
    """(passage id, review id) of the passages the run has not read, in order: those with no tag in the run and
    not recorded as read without one (models.UntaggedPassage)."""
    tagged = select(models.Tag.passage_id).where(
        models.Tag.run_id == run_id, models.Tag.passage_id == models.Passage.id
    )
    read = select(models.UntaggedPassage.passage_id).where(
        models.UntaggedPassage.run_id == run_id, models.UntaggedPassage.passage_id == models.Passage.id
    )
    unread = ~tagged.exists() & ~read.exists()
    return select(models.Passage.id, models.Passage.review_id).where(unread).order_by(models.Passage.id)


def passage_statement(ids: Sequence[int]) -> Any:
    return (
        select(
            models.Passage.id,
            models.Passage.text,
            models.Passage.kind,
            models.Passage.section_kind,
            models.Passage.review_id,
            models.Review.review_type,
        )
        .join(models.Review, models.Review.id == models.Passage.review_id)
        .where(models.Passage.id.in_(ids))
        .order_by(models.Passage.id)
    )


def tag_input(row: Any) -> TagInput:
    return TagInput(
        text=row.text,
        review_type=row.review_type,
        section_kind=row.section_kind,
        kind=row.kind,
        review=str(row.review_id),
    )


def tag_rows(run_id: int, passage_ids: Sequence[int], results: Sequence[Sequence[TagResult]]) -> list[dict[str, Any]]:
    return [
        {
            "passage_id": passage_id,
            "run_id": run_id,
            "facet": r.facet,
            "label": r.label,
            "score": float(r.score),
            "evidence": r.evidence,
        }
        for passage_id, found in zip(passage_ids, results, strict=True)
        for r in found
    ]


# ---- the job ---------------------------------------------------------------------------------------


def tag(
    db_url: str | None = None,
    method: str = DEFAULT_METHOD,
    *,
    force: bool = False,
    retrain: bool = False,
    gold: Path | Sequence[Path] | None = DEFAULT_LABELS,
    batch_size: int = BATCH,
    progress: bool = False,
    on_batch: Progress | None = None,
    report: Reporter | None = None,
) -> TagSummary:
    """Tag every passage the method's current run has not tagged (every passage, in a new run, with `force`)."""
    started = time.perf_counter()
    db = open_database(db_url)
    summary = TagSummary()
    try:
        for tagger in taggers_for(method):
            prepare(tagger, db, retrain, gold, report)
            summary.runs.append(run_tagger(db, tagger, force, batch_size, progress, on_batch))
    finally:
        db.dispose()
    summary.seconds = time.perf_counter() - started
    return summary


def run_tagger(
    db: Database, tagger: Tagger, force: bool, batch_size: int, progress: bool, on_batch: Progress | None
) -> RunSummary:
    with db.writing() as session:
        run, new = open_run(session, run_info(tagger), force)
        run_id = run.id
    with db.session() as session:
        todo = session.execute(unread_statement(run_id)).all()
    summary = RunSummary(run_id, tagger.name, getattr(tagger, "model_version", None), new)
    batches = review_batches(todo, batch_size)
    with progress_bar(len(todo), progress, tagger.name) as bar:
        for batch, computed in with_vectors_ahead(db, tagger, batches):
            summary.tags += tag_batch(db, tagger, run_id, batch, computed)
            summary.passages += len(batch)
            bar.update(len(batch))
            if on_batch:
                on_batch(summary.passages, len(todo))
    with db.writing() as session:
        complete_run(session, run_id)
    return summary


def review_batches(passages: Sequence[tuple[int, int]], size: int) -> list[list[int]]:
    """(passage id, review id) pairs, in order, cut into batches of passage ids that end at a review's end
    once they hold `size` passages; a batch grows past `size` only to finish its review, and at most to twice
    `size` (a longer review is cut there). A review's context vectors are then encoded once, ahead of its
    first batch (a review cut in two is encoded by both look-aheads)."""
    batches: list[list[int]] = []
    current: list[int] = []
    last: int | None = None
    for passage_id, review_id in passages:
        if current and len(current) >= size and (review_id != last or len(current) >= 2 * size):
            batches.append(current)
            current = []
        current.append(passage_id)
        last = review_id
    if current:
        batches.append(current)
    return batches


def with_vectors_ahead(
    db: Database, tagger: Tagger, batches: Sequence[Sequence[int]]
) -> Iterable[tuple[Sequence[int], Mapping[str, np.ndarray]]]:
    """Each batch of passage ids with the vectors of its reviews' passages that had none stored (the batch's
    own and their review context), encoded while the batch before it was tagged (embeddings.encode_ahead);
    they are stored in the batch's own transaction by cached_encode, so a failed batch stores none of them.
    A tagger that reads no vectors gets none."""
    from vkpp_learning import embeddings

    if not hasattr(tagger, "tag_vectors"):
        return ((batch, {}) for batch in batches)

    def uncached_texts(passage_ids: Sequence[int]) -> list[str]:
        with db.session() as session:
            context = session.execute(review_passages_statement(passage_ids)).all()
            return embeddings.uncached(session, [row.text for row in context])

    return embeddings.encode_ahead(batches, uncached_texts)


def tag_batch(
    db: Database,
    tagger: Tagger,
    run_id: int,
    passage_ids: Sequence[int],
    computed: Mapping[str, np.ndarray] | None = None,
) -> int:
    """Tag one batch and store its tags, and which of its passages got none, in one transaction (embeddings from
    the database cache, or from `computed`, text hash -> vector, encoded ahead by with_vectors_ahead)."""
    from vkpp_learning.embeddings import cached_encode
    from vkpp_learning.tagging.supervised import review_means

    with db.writing() as session:
        rows = session.execute(passage_statement(passage_ids)).all()
        items = [tag_input(row) for row in rows]
        if hasattr(tagger, "tag_vectors"):
            # Every passage of the batch's reviews: their vectors give each passage its own and its review's.
            context = session.execute(review_passages_statement(passage_ids)).all()
            vectors = cached_encode(session, [row.text for row in context], computed=computed)
            means = review_means([row.review_id for row in context], vectors)
            position = {row.id: index for index, row in enumerate(context)}
            pick = [position[row.id] for row in rows]
            results = tagger.tag_vectors(items, vectors[pick], means[pick])
        else:
            results = tagger.tag(items)
        values = tag_rows(run_id, [row.id for row in rows], results)
        if values:
            session.execute(insert(models.Tag), values)
        untagged = [
            {"run_id": run_id, "passage_id": row.id} for row, found in zip(rows, results, strict=True) if not found
        ]
        if untagged:
            session.execute(insert(models.UntaggedPassage), untagged)
    return len(values)


def review_passages_statement(passage_ids: Sequence[int]) -> Any:
    """(id, review id, text) of every passage of the reviews these passages belong to, in order."""
    reviews = select(models.Passage.review_id).where(models.Passage.id.in_(passage_ids))
    columns = (models.Passage.id, models.Passage.review_id, models.Passage.text)
    return select(*columns).where(models.Passage.review_id.in_(reviews)).order_by(models.Passage.id)


def progress_bar(total: int, enabled: bool, label: str) -> Any:
    """A tqdm bar on stderr, shown only on a terminal (stdout stays clean for --json)."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, unit="passage", file=sys.stderr, disable=None if enabled else True, desc=label)


# ---- listing and removing runs ---------------------------------------------------------------------


def list_runs(db_url: str | None = None) -> list[dict[str, Any]]:
    """Every tag run with its tag count and how many passages it has read, newest first."""
    db = open_database(db_url)
    try:
        with db.session() as session:
            counts = run_counts(session)
            runs = session.scalars(select(models.TagRun).order_by(models.TagRun.id.desc())).all()
            return [run_listing(run, *counts.get(run.id, (0, 0))) for run in runs]
    finally:
        db.dispose()


def run_counts(session: Session, run_id: int | None = None) -> dict[int, tuple[int, int]]:
    """run id -> (tags, passages read): those with a tag in the run and those it recorded as read without one.
    A run made before migration 0006 counts the passages it gave no tag only once it is carried on."""
    tags = select(models.Tag.run_id, func.count(), func.count(models.Tag.passage_id.distinct()))
    untagged = select(models.UntaggedPassage.run_id, func.count())
    if run_id is not None:
        tags = tags.where(models.Tag.run_id == run_id)
        untagged = untagged.where(models.UntaggedPassage.run_id == run_id)
    read = dict(session.execute(untagged.group_by(models.UntaggedPassage.run_id)).all())
    counts = {
        run: (count, passages + read.pop(run, 0))
        for run, count, passages in session.execute(tags.group_by(models.Tag.run_id))
    }
    return counts | {run: (0, passages) for run, passages in read.items()}


def run_listing(run: models.TagRun, tags: int, passages_read: int) -> dict[str, Any]:
    return {
        "id": run.id,
        "method": run.method,
        "taxonomy_version": run.taxonomy_version,
        "model_version": run.model_version,
        "is_current": bool(run.is_current),
        "complete": bool((run.params or {}).get("complete", True)),
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "tags": tags,
        "passages_read": passages_read,
    }


def remove_run(db_url: str | None, run_id: int) -> dict[str, Any]:
    """Delete a run, its tags and its record of the passages it read without tagging. When it was current, the
    method's latest complete older run becomes current."""
    db = open_database(db_url)
    try:
        with db.writing() as session:
            run = session.get(models.TagRun, run_id)
            if run is None:
                raise VkppError(f"no tag run {run_id}; `vkpp tag --runs` lists them", code="unknown_run")
            listing = run_listing(run, *run_counts(session, run_id).get(run_id, (0, 0)))
            was_current, method = run.is_current, run.method
            session.execute(delete(models.Tag).where(models.Tag.run_id == run_id))
            session.execute(delete(models.UntaggedPassage).where(models.UntaggedPassage.run_id == run_id))
            session.delete(run)
            session.flush()
            if was_current:
                promote_latest(session, method)
        return listing
    finally:
        db.dispose()


def promote_latest(session: Session, method: str) -> None:
    for run in session.scalars(
        select(models.TagRun).where(models.TagRun.method == method).order_by(models.TagRun.id.desc())
    ):
        if (run.params or {}).get("complete", True):
            run.is_current = True
            return
