"""The topic modelling job: select passages, reuse their cached embeddings, fit BERTopic, map topics to the
taxonomy, flag emergent ones, store the run, and save the model beside the database. Also assigns passages
ingested after a fit to that fit's topics.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from vkpp_learning.db import Database, models, open_database
from vkpp_learning.errors import VkppError
from vkpp_learning.taxonomy import Taxonomy, Theme, load_taxonomy
from vkpp_learning.topics import mapping, store
from vkpp_learning.topics.model import Corpus, FitResult, TopicParams
from vkpp_learning.topics.store import CorpusFilter, CorpusRow

OUTLIER_LABEL = "Outliers: passages in no topic"
THEME_MATCHES = 3
EMBED_BATCH = 1000  # passages per transaction when reading (and, if missing, computing) embeddings
Report = Callable[[str], Any]


@dataclass
class TopicRunSummary:
    """What `vkpp topics fit` prints."""

    run_id: int
    passages: int
    topics: int
    emergent: int
    configuration: str
    outlier_share_before: float
    outlier_share_after: float
    model_path: str
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "passages": self.passages,
            "topics": self.topics,
            "emergent": self.emergent,
            "configuration": self.configuration,
            "outlier_share_before": round(self.outlier_share_before, 4),
            "outlier_share_after": round(self.outlier_share_after, 4),
            "model_path": self.model_path,
            "seconds": round(self.seconds, 2),
            "notes": self.notes,
        }


@dataclass
class AssignSummary:
    run_id: int
    assigned: int
    outliers: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "assigned": self.assigned,
            "outliers": self.outliers,
            "seconds": round(self.seconds, 2),
        }


def model_root(db_url: str) -> Path:
    """Where fitted models are saved: topic_models/ beside a SQLite file, else ./vkpp_data/topic_models."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).expanduser().resolve().parent / "topic_models"
    return Path("vkpp_data").resolve() / "topic_models"


def fit_topics(
    db_url: str | None = None,
    corpus_filter: CorpusFilter | None = None,
    params: TopicParams | None = None,
    *,
    taxonomy: Taxonomy | None = None,
    report: Report | None = None,
) -> TopicRunSummary:
    """Fit a topic model on the stored passages matching `corpus_filter` and store it as a new run."""
    from vkpp_learning.topics import model

    started = time.perf_counter()
    corpus_filter, params = corpus_filter or CorpusFilter(), params or TopicParams()
    taxonomy = taxonomy or load_taxonomy()
    themes = [theme for facet in params.facets for theme in taxonomy.facet(facet)]
    say = report or (lambda _message: None)
    db = open_database(db_url)
    try:
        corpus, theme_matrix = read_corpus(db, corpus_filter, themes)
        model.check_corpus_size(len(corpus), f"the database's {corpus_filter.describe()}")
        say(f"fitting on {len(corpus)} {corpus_filter.describe()} (embeddings from the cache)")
        seeds = seed_topics(themes) if params.guided else None
        result = model.fit(corpus, params, seeds)
        say(f"{len(set(result.topics) - {-1})} topics; storing the run and saving the model")
        run = store_run(db, corpus, result, params, corpus_filter, taxonomy, themes, theme_matrix, started)
    finally:
        db.dispose()
    return run


def read_corpus(db: Database, corpus_filter: CorpusFilter, themes: list[Theme]) -> tuple[Corpus, np.ndarray]:
    """The passages and their embeddings, and the themes' vectors. Embeddings come from the cache; one
    missing (a passage never embedded) is computed and stored, batch by batch, each batch in its own
    short transaction, so an unchanged passage is never encoded twice and no write lock is held for long."""
    with db.session() as session:
        rows = store.corpus_rows(session, corpus_filter)
    batches = []
    for start in range(0, len(rows), EMBED_BATCH):
        with db.writing() as session:
            batches.append(cached(session, [row.text for row in rows[start : start + EMBED_BATCH]]))
    with db.writing() as session:
        theme_matrix = theme_vectors(session, themes)
    return corpus_of(rows, np.vstack(batches) if batches else cached_empty()), theme_matrix


def cached_empty() -> np.ndarray:
    from vkpp_learning.embeddings import DIM

    return np.zeros((0, DIM), dtype=np.float32)


def cached(session: Session, texts: list[str]) -> np.ndarray:
    from vkpp_learning.embeddings import cached_encode

    return cached_encode(session, texts) if texts else cached_empty()


def corpus_of(rows: list[CorpusRow], embeddings: np.ndarray) -> Corpus:
    return Corpus(
        passage_ids=[row.passage_id for row in rows],
        texts=[row.text for row in rows],
        review_ids=[row.review_id for row in rows],
        review_types=[row.review_type for row in rows],
        years=[row.year for row in rows],
        embeddings=embeddings,
    )


def theme_vectors(session: Session, themes: list[Theme]) -> np.ndarray:
    """One vector per theme: the mean embedding of its definition and example sentences (cached like passages)."""
    if not themes:
        return cached_empty()
    return np.vstack([cached(session, [theme.definition, *theme.examples]).mean(axis=0) for theme in themes])


def seed_topics(themes: list[Theme]) -> list[list[str]]:
    """BERTopic seed lists from the taxonomy: each theme's phrases, lower-cased like the vectorizer's terms."""
    return [[phrase.lower() for phrase in theme.phrases] for theme in themes if theme.phrases]


def match_themes(
    topic_mean: np.ndarray, corpus_mean: np.ndarray, themes: list[Theme], theme_matrix: np.ndarray
) -> list[mapping.ThemeMatch]:
    """The themes nearest a topic (from the mean raw embedding of its passages), best first, compared
    with the corpus's shared direction taken out of both (mapping.theme_space)."""
    keys = [(theme.facet, theme.id) for theme in themes]
    topic_vector = mapping.theme_space(topic_mean, corpus_mean)
    return mapping.nearest_themes(topic_vector, mapping.theme_space(theme_matrix, corpus_mean), keys, THEME_MATCHES)


def topic_rows(
    corpus: Corpus, result: FitResult, params: TopicParams, themes: list[Theme], theme_matrix: np.ndarray
) -> list[dict[str, Any]]:
    """One row per topic: keywords, label, size, representatives, nearest themes and the emergent flag."""
    keywords = result.keywords()
    topic_means = mapping.member_means(corpus.embeddings, result.topics)
    space_centroids = mapping.centroids(result.space, result.topics)
    labels = np.asarray(result.topics)
    rows = []
    for number in sorted(topic_means):
        members = np.flatnonzero(labels == number)
        words = [word for word, _ in keywords.get(number, [])]
        matches = [] if number == -1 else match_themes(topic_means[number], result.corpus_mean, themes, theme_matrix)
        best = matches[0] if matches else None
        reps = mapping.representatives(
            [corpus.passage_ids[i] for i in members],
            result.space[members],
            space_centroids[number],
            [corpus.review_ids[i] for i in members],
            params.representatives,
        )
        rows.append(
            {
                "number": number,
                "label": OUTLIER_LABEL if number == -1 else mapping.readable_label(words),
                "keywords": words,
                "keyword_scores": [round(score, 5) for _, score in keywords.get(number, [])],
                "size": len(members),
                "theme_id": best.theme_id if best else None,
                "theme_facet": best.facet if best else None,
                "theme_similarity": best.similarity if best else None,
                "theme_matches": [match.to_json() for match in matches],
                "emergent": bool(best and best.similarity < params.emergent_threshold),
                "representative_passage_ids": reps,
            }
        )
    return rows


def store_run(
    db: Database,
    corpus: Corpus,
    result: FitResult,
    params: TopicParams,
    corpus_filter: CorpusFilter,
    taxonomy: Taxonomy,
    themes: list[Theme],
    theme_matrix: np.ndarray,
    started: float,
) -> TopicRunSummary:
    """Store the run whole (run, topics, assignments, breakdowns) and save the model under run-<id>/."""
    from vkpp_learning.embeddings import MODEL_NAME
    from vkpp_learning.topics import model

    rows = topic_rows(corpus, result, params, themes, theme_matrix)
    keywords = breakdown_keywords(corpus, result)
    directory: Path | None = None
    try:
        with db.writing() as session:
            run = store.add_run(session, run_values(corpus, result, params, corpus_filter, taxonomy, MODEL_NAME))
            ids = store.add_topics(session, run.id, rows)
            store.add_assignments(session, assignment_rows(run.id, corpus, result, ids))
            store.write_breakdowns(session, run.id, {(ids[t], d, v): w for (t, d, v), w in keywords.items()})
            directory = model_root(db.url) / f"run-{run.id}"
            model.save(result, directory)
            run.model_path = str(directory)
            run.seconds = time.perf_counter() - started
    except BaseException:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return summary_of(run, rows)


def run_values(
    corpus: Corpus,
    result: FitResult,
    params: TopicParams,
    corpus_filter: CorpusFilter,
    taxonomy: Taxonomy,
    embedding_model: str,
) -> dict[str, Any]:
    from vkpp_learning.topics import model

    return {
        "method": model.METHOD,
        "embedding_model": embedding_model,
        "taxonomy_version": taxonomy.version,
        "params": params.to_json(),
        "corpus_filter": corpus_filter.to_json(),
        "library_versions": model.library_versions(),
        "configuration": result.configuration,
        "passages": len(corpus),
        "topic_count": len(set(result.topics) - {-1}),
        "outlier_share_before": result.outlier_share_before,
        "outlier_share_after": result.outlier_share_after,
        "notes": result.notes,
        "model_path": "",
        "seconds": 0.0,
    }


def assignment_rows(run_id: int, corpus: Corpus, result: FitResult, topic_ids: dict[int, int]) -> list[dict[str, Any]]:
    """Each passage's topic, its similarity to the topic's centroid, and whether it came from outlier reduction."""
    centroids = mapping.centroids(result.space, result.topics)
    return [
        {
            "run_id": run_id,
            "passage_id": passage_id,
            "topic_id": topic_ids[topic],
            "score": float(result.space[i] @ centroids[topic]),
            "source": "reduced" if result.initial_topics[i] == -1 and topic != -1 else "fit",
        }
        for i, (passage_id, topic) in enumerate(zip(corpus.passage_ids, result.topics, strict=True))
    ]


def breakdown_keywords(corpus: Corpus, result: FitResult) -> dict[tuple[int, str, str], list[str]]:
    """(topic number, dimension, value) -> the topic's keywords within that review type or year."""
    from vkpp_learning.topics import model

    by_type = model.per_class_keywords(result.model, corpus.texts, corpus.review_types)
    dated = [i for i, year in enumerate(corpus.years) if year is not None]
    by_year = model.per_year_keywords(
        result.model,
        [corpus.texts[i] for i in dated],
        [int(corpus.years[i]) for i in dated],  # type: ignore[arg-type]
        [result.topics[i] for i in dated],
    )
    keywords = {(topic, "review_type", value): words for (topic, value), words in by_type.items()}
    keywords |= {(topic, "year", value): words for (topic, value), words in by_year.items()}
    return keywords


def summary_of(run: models.TopicRun, rows: list[dict[str, Any]]) -> TopicRunSummary:
    return TopicRunSummary(
        run_id=run.id,
        passages=run.passages,
        topics=run.topic_count,
        emergent=sum(1 for row in rows if row["emergent"]),
        configuration=run.configuration,
        outlier_share_before=run.outlier_share_before,
        outlier_share_after=run.outlier_share_after,
        model_path=run.model_path,
        seconds=run.seconds,
        notes=list(run.notes),
    )


def assign_new(db_url: str | None = None, run_id: int | None = None) -> AssignSummary:
    """Assign passages stored after a fit (matching its corpus filter) to its topics with the saved model."""
    from vkpp_learning.topics import model

    started = time.perf_counter()
    db = open_database(db_url)
    try:
        run = find_run(db, run_id)
        corpus_filter = CorpusFilter.from_json(run.corpus_filter)
        with db.writing() as session:
            rows = store.corpus_rows(session, corpus_filter, exclude=store.assigned_passage_ids(session, run.id))
            embeddings = cached(session, [row.text for row in rows])
        if not rows:
            return AssignSummary(run.id, 0, 0, time.perf_counter() - started)
        saved = model.load(Path(run.model_path))
        corpus = corpus_of(rows, embeddings)
        space = mapping.center_by_review(
            corpus.embeddings, corpus.review_ids, run.params["centering"], saved.corpus_mean
        )
        topics, scores = model.assign(saved, corpus.texts, space)
        with db.writing() as session:
            ids = store.topic_ids_by_number(session, run.id)
            store.add_assignments(session, new_assignment_rows(run.id, corpus, topics, scores, ids))
            store.refresh_sizes(session, run.id)
            store.write_breakdowns(session, run.id, {})
    finally:
        db.dispose()
    return AssignSummary(run.id, len(topics), sum(1 for t in topics if t == -1), time.perf_counter() - started)


def new_assignment_rows(
    run_id: int, corpus: Corpus, topics: list[int], scores: list[float], topic_ids: dict[int, int]
) -> list[dict[str, Any]]:
    rows = []
    for passage_id, topic, score in zip(corpus.passage_ids, topics, scores, strict=True):
        if topic not in topic_ids:  # an outlier when the run kept no outlier topic: nothing to join
            continue
        rows.append(
            {
                "run_id": run_id,
                "passage_id": passage_id,
                "topic_id": topic_ids[topic],
                "score": score,
                "source": "assigned",
            }
        )
    return rows


def find_run(db: Database, run_id: int | None) -> models.TopicRun:
    """The run with this id, or the latest run; a clear error when there is none."""
    with db.session() as session:
        statement = select(models.TopicRun)
        statement = (
            statement.where(models.TopicRun.id == run_id) if run_id else statement.order_by(models.TopicRun.id.desc())
        )
        run = session.scalars(statement.limit(1)).first()
    if run is None:
        what = f"no topic run {run_id}" if run_id else "no topic run yet"
        raise VkppError(f"{what} in this database; fit one with `vkpp topics fit`", code="no_topic_run")
    return run
