"""Topic modelling on the sample corpus with the real model: seeded reproducibility, stored runs and topics,
taxonomy mapping, emergent flagging, outlier reduction, the small-corpus path, safetensors save with
offline reload and assignment of new passages, the `vkpp topics` commands, and lazy heavy imports."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from pipelines.embed import embed
from pipelines.ingest import ingest
from pipelines.topics import assign_new, cached, fit_topics, match_themes, model_root, theme_vectors
from vkpp_learning.cli import main as cli
from vkpp_learning.db import Database, models, open_database
from vkpp_learning.taxonomy import Taxonomy, load_taxonomy
from vkpp_learning.topics import mapping, views
from vkpp_learning.topics import model as topic_model
from vkpp_learning.topics.model import TopicParams
from vkpp_learning.topics.store import CorpusFilter, corpus_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def copy_sqlite(source_url: str, target: Path) -> str:
    source = sqlite3.connect(source_url.removeprefix("sqlite:///"))
    with sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    return f"sqlite:///{target}"


@pytest.fixture(scope="module")
def topic_db(sample_db: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A copy of the sample database with every passage embedded once (the real model)."""
    url = copy_sqlite(sample_db, tmp_path_factory.mktemp("topics") / "topics.sqlite")
    assert embed(url).embedded > 500
    return url


@pytest.fixture(scope="module")
def db(topic_db: str) -> Iterator[Database]:
    database = open_database(topic_db)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    """Loaded once, so an edit to taxonomy/ during the test session does not change it under the tests."""
    return load_taxonomy()


@pytest.fixture(scope="module")
def fitted(topic_db: str, taxonomy: Taxonomy) -> int:
    """The id of an unguided run on the whole sample corpus."""
    return fit_topics(topic_db, CorpusFilter(), TopicParams(min_topic_size=10, seed=7), taxonomy=taxonomy).run_id


@pytest.fixture(scope="module")
def taxonomy_vectors(db: Database, taxonomy: Taxonomy) -> tuple[list, np.ndarray, np.ndarray]:
    """The themes the default fit maps to, their vectors, and the corpus mean of the default selection."""
    themes = [theme for facet in TopicParams().facets for theme in taxonomy.facet(facet)]
    with db.session() as session:
        rows = corpus_rows(session, CorpusFilter())
        embeddings = cached(session, [row.text for row in rows])
        matrix = theme_vectors(session, themes)
    return themes, matrix, embeddings.mean(axis=0)


def passages_matching(db: Database, *words: str, section: str | None = None) -> list[str]:
    """Texts of passages that contain every one of `words` (case-insensitive)."""
    with db.session() as session:
        rows = corpus_rows(session, CorpusFilter(section=section, excluded_sections=()))
    return [row.text for row in rows if all(word.lower() in row.text.lower() for word in words)]


def assignments(db: Database, run_id: int) -> dict[int, int]:
    """passage id -> topic number for a run."""
    statement = (
        select(models.TopicAssignment.passage_id, models.Topic.number)
        .join(models.Topic, models.Topic.id == models.TopicAssignment.topic_id)
        .where(models.TopicAssignment.run_id == run_id)
    )
    with db.session() as session:
        return dict(session.execute(statement).all())


# --- storage of a run -------------------------------------------------------------------------------


def test_a_run_is_stored_with_its_parameters_filter_and_versions(db: Database, fitted: int, taxonomy: Taxonomy) -> None:
    with db.session() as session:
        run = views.get_run(session, fitted)
        count = len(corpus_rows(session, CorpusFilter()))
    assert run is not None
    assert run.passages == count > 500
    assert run.params["seed"] == 7 and run.params["min_topic_size"] == 10 and run.params["guided"] is False
    assert run.corpus_filter["excluded_sections"] == ["front_matter", "introduction", "methodology", "appendix"]
    assert run.taxonomy_version == taxonomy.version
    assert run.library_versions["bertopic"].startswith("0.")
    assert run.configuration == "full"
    assert run.topic_count >= 5
    assert run.created_at and run.seconds > 0


def test_topics_have_keywords_labels_sizes_and_representative_passages(db: Database, fitted: int) -> None:
    with db.session() as session:
        topics = views.topics_of_run(session, fitted)
        stored = assignments(db, fitted)
        for topic in topics:
            assert topic.size == sum(1 for number in stored.values() if number == topic.number)
            if topic.is_outliers:
                continue
            assert len(topic.keywords) >= 5 and topic.label
            assert topic.label.lower().split(",")[0].strip() in " ".join(topic.keywords)
            shown = views.representative_passages(session, topic.id)
            assert 1 <= len(shown) <= 5
            assert all(stored[p.passage_id] == topic.number for p in shown)
            assert all(p.review_title and p.page_start >= 1 for p in shown)
    assert sum(topic.size for topic in topics) == len(stored)
    # Case names never label a topic: every keyword occurs in at least three reviews.
    names = {"louise", "amira", "gemma", "sophie", "owen", "margaret", "jade"}
    assert not names & {word for topic in topics for keyword in topic.keywords for word in keyword.split()}


def test_topics_recur_across_reviews_not_one_topic_per_review(db: Database, fitted: int) -> None:
    statement = text(
        "SELECT t.number, count(DISTINCT p.review_id) FROM topic_assignments a JOIN topics t ON t.id = a.topic_id "
        "JOIN passages p ON p.id = a.passage_id WHERE a.run_id = :run AND t.number >= 0 GROUP BY t.number"
    )
    with db.session() as session:
        reviews_per_topic = dict(session.execute(statement, {"run": fitted}).all())
    assert np.median(list(reviews_per_topic.values())) >= 4


def test_outliers_are_reduced_to_the_stated_share_and_keywords_follow(db: Database, fitted: int) -> None:
    with db.session() as session:
        run = views.get_run(session, fitted)
        sources = dict(
            session.execute(
                select(models.TopicAssignment.source, func.count())
                .where(models.TopicAssignment.run_id == fitted)
                .group_by(models.TopicAssignment.source)
            ).all()
        )
    assert run is not None
    assert run.outlier_share_before > 0.15
    assert run.outlier_share_after <= 0.10 + 1 / run.passages
    assert sources["reduced"] == round((run.outlier_share_before - run.outlier_share_after) * run.passages)
    saved = topic_model.load(Path(run.model_path))
    stored = assignments(db, fitted)
    # The saved representation was recomputed on the reduced assignment: its topic sizes are the stored ones.
    assert dict(saved.model.topic_sizes_) == {n: list(stored.values()).count(n) for n in set(stored.values())}


def test_breakdowns_per_review_type_and_year(db: Database, fitted: int) -> None:
    with db.session() as session:
        by_type = views.topics_by_review_type(session, fitted)
        by_year = views.topics_over_years(session, fitted)
        topic = views.topics_of_run(session, fitted)[0]
        behind = views.passages_of_topic(session, topic.id, review_type=by_type[0].value, limit=1000)
    assert {share.value for share in by_type} == {"CSPR", "DHR", "MAPPA", "SAR"}
    for review_type in ("CSPR", "DHR", "MAPPA", "SAR"):
        assert sum(s.share for s in by_type if s.value == review_type) == pytest.approx(1.0)
    assert {int(share.value) for share in by_year} >= {2016, 2019, 2020, 2021, 2022, 2023, 2024}
    assert [int(s.value) for s in by_year] == sorted(int(s.value) for s in by_year)
    assert any(share.keywords for share in by_type) and any(share.keywords for share in by_year)
    figure = next(s for s in by_type if s.topic_id == topic.id and s.value == by_type[0].value)
    assert len(behind) == figure.passages  # every figure opens onto its passages
    assert all(p.review_type == by_type[0].value for p in behind)


# --- mapping to the taxonomy and emergent topics ----------------------------------------------------


def test_a_topic_of_risk_assessment_passages_maps_to_risk_assessment(db: Database, taxonomy_vectors: tuple) -> None:
    themes, matrix, corpus_mean = taxonomy_vectors
    texts = passages_matching(db, "DASH", "risk")
    assert len(texts) >= 8
    with db.session() as session:
        topic_mean = cached(session, texts).mean(axis=0)
    matches = match_themes(topic_mean, corpus_mean, themes, matrix)
    assert matches[0].theme_id == "risk_assessment"
    assert matches[0].similarity >= TopicParams().emergent_threshold
    assert matches[0].similarity - matches[1].similarity > 0.05


def test_a_topic_of_review_process_passages_is_far_from_every_theme(db: Database, taxonomy_vectors: tuple) -> None:
    themes, matrix, corpus_mean = taxonomy_vectors
    texts = passages_matching(db, "review", "panel", section="methodology")
    assert len(texts) >= 5
    with db.session() as session:
        topic_mean = cached(session, texts).mean(axis=0)
    assert match_themes(topic_mean, corpus_mean, themes, matrix)[0].similarity < TopicParams().emergent_threshold


def test_emergent_topics_are_those_far_from_every_theme(db: Database, fitted: int) -> None:
    with db.session() as session:
        run = views.get_run(session, fitted)
        topics = views.topics_of_run(session, fitted)
        emergent = views.emergent_topics(session, fitted)
    assert run is not None
    threshold = run.params["emergent_threshold"]
    real = [t for t in topics if not t.is_outliers]
    assert all(t.emergent == (t.theme_similarity < threshold) for t in real)
    assert [t.id for t in emergent] == [t.id for t in real if t.emergent]
    assert 1 <= len(emergent) < len(real)
    assert run.emergent_count == len(emergent)
    assert all(len(t.theme_matches) == 3 and t.theme_matches[0]["id"] == t.theme_id for t in real)


# --- reproducibility, guided fits, small corpora ----------------------------------------------------


def test_the_same_seed_gives_the_same_topics_twice_when_guided(topic_db: str, db: Database) -> None:
    params = TopicParams(min_topic_size=10, seed=11, guided=True)
    first = fit_topics(topic_db, CorpusFilter(review_type="DHR"), params).run_id
    result = CliRunner().invoke(
        cli, ["topics", "fit", "--db", topic_db, "--review-type", "dhr", "--seed", "11", "--guided", "--json"]
    )
    assert result.exit_code == 0, result.output
    second = json.loads(result.stdout)["run_id"]
    assert assignments(db, first) == assignments(db, second)
    with db.session() as session:
        one, two = views.topics_of_run(session, first), views.topics_of_run(session, second)
        run = views.get_run(session, second)
    assert [(t.number, t.keywords, t.theme_id) for t in one] == [(t.number, t.keywords, t.theme_id) for t in two]
    assert run is not None and run.params["guided"] is True and run.corpus_filter["review_type"] == "DHR"


def test_a_small_corpus_uses_the_small_configuration(topic_db: str, db: Database) -> None:
    corpus_filter = CorpusFilter(review_type="SAR", section="recommendations")
    summary = fit_topics(topic_db, corpus_filter, TopicParams(min_topic_size=10))
    assert 10 <= summary.passages < topic_model.FULL_MIN_PASSAGES
    assert summary.configuration == "small"
    assert summary.topics >= 2 and summary.outlier_share_after == 0
    assert any("small configuration" in note for note in summary.notes)
    with db.session() as session:
        topics = views.topics_of_run(session, summary.run_id)
    assert all(topic.keywords for topic in topics)


def test_too_few_passages_is_a_clear_message_not_a_traceback(topic_db: str) -> None:
    result = CliRunner().invoke(cli, ["topics", "fit", "--db", topic_db, "--section", "appendix"])
    assert result.exit_code == 1
    assert "needs at least 10 passages" in result.output and "widen the filter" in result.output
    assert "Traceback" not in result.output


# --- saving, offline reload, assigning new passages -------------------------------------------------


def test_the_model_is_saved_as_safetensors_beside_the_database(topic_db: str, db: Database, fitted: int) -> None:
    with db.session() as session:
        run = views.get_run(session, fitted)
    assert run is not None
    directory = Path(run.model_path)
    assert directory == model_root(topic_db) / f"run-{fitted}"
    assert directory.parent.parent == Path(topic_db.removeprefix("sqlite:///")).parent
    names = {path.name for path in directory.iterdir()}
    assert {"topic_embeddings.safetensors", "ctfidf.safetensors", "config.json", "topics.json"} <= names
    assert not [name for name in names if name.endswith((".pkl", ".pickle", ".bin", ".joblib"))]


def test_reload_offline_and_assign_new_passages(
    topic_db: str,
    db: Database,
    fitted: int,
    monkeypatch: pytest.MonkeyPatch,
    make_review_pdf: Callable[..., Path],
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # any hub request would fail here
    pdf = make_review_pdf("dhr_nadia_2025.pdf", paragraphs=3, topic="Nadia")
    assert ingest([str(pdf)], topic_db).reviews == 1
    before = assignments(db, fitted)
    summary = assign_new(topic_db, fitted)
    after = assignments(db, fitted)
    assert summary.assigned == len(after) - len(before) >= 3
    new_ids = set(after) - set(before)
    with db.session() as session:
        rows = session.execute(
            select(models.TopicAssignment.source, models.TopicAssignment.score).where(
                models.TopicAssignment.run_id == fitted, models.TopicAssignment.passage_id.in_(new_ids)
            )
        ).all()
        topics = {t.number: t for t in views.topics_of_run(session, fitted)}
    assert {source for source, _ in rows} == {"assigned"}
    assert all(-1 <= score <= 1 for _, score in rows)
    # The new passages are about DASH grading and MARAC: they join an existing topic, and the same one.
    numbers = {after[i] for i in new_ids}
    assert len(numbers) == 1 and -1 not in numbers
    assert topics[numbers.pop()].size == list(after.values()).count(after[next(iter(new_ids))])
    assert assign_new(topic_db, fitted).assigned == 0  # nothing new the second time


# --- the commands ------------------------------------------------------------------------------------


def test_topics_show_prints_topics_their_themes_and_the_emergent_ones(topic_db: str, fitted: int) -> None:
    result = CliRunner().invoke(cli, ["topics", "show", "--db", topic_db, "--run", str(fitted)])
    assert result.exit_code == 0, result.output
    assert f"Topic run {fitted}" in result.output
    assert "Emergent topics" in result.output and "EMERGENT" in result.output
    assert "nearest:" in result.output and "keywords:" in result.output
    as_json = CliRunner().invoke(cli, ["topics", "show", "--db", topic_db, "--run", str(fitted), "--json"])
    report = json.loads(as_json.stdout)
    assert report["run"]["id"] == fitted
    assert report["emergent"] == [t["number"] for t in report["topics"] if t["emergent"]]
    assert all(t["passages"] for t in report["topics"])
    assert {row["value"] for row in report["by_review_type"]} == {"CSPR", "DHR", "MAPPA", "SAR"}


def test_topics_show_with_no_run_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["topics", "show", "--db", f"sqlite:///{tmp_path / 'empty.sqlite'}"])
    assert result.exit_code == 1
    assert "vkpp topics fit" in result.output and "Traceback" not in result.output


def test_heavy_libraries_load_only_inside_the_topic_commands() -> None:
    code = (
        "import sys, vkpp_learning.cli, vkpp_learning.cli_topics, vkpp_learning.topics.views, pipelines.topics\n"
        "heavy = [m for m in ('bertopic', 'umap', 'hdbscan', 'torch', 'sentence_transformers') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == ""


# --- the geometry, on small arrays ---------------------------------------------------------------------


def test_outlier_threshold_moves_the_most_similar_outliers_first() -> None:
    similarities = np.array([0.9, 0.1, 0.5, 0.3])
    assert mapping.outlier_threshold(similarities, total=20, target_share=0.10) == 0.5  # 2 may stay
    assert mapping.outlier_threshold(similarities, total=40, target_share=0.10) is None  # 4 may stay
    assert mapping.outlier_threshold(similarities, total=20, target_share=0.0) == 0.1


def test_readable_label_prefers_phrases_and_skips_repeats() -> None:
    assert mapping.readable_label(["risk", "dash", "risk assessment", "marac"]) == "Risk assessment, dash, marac"
    assert mapping.readable_label(["mental health", "health", "mental", "gp"]) == "Mental health, gp"
    assert mapping.readable_label([]) == "(no keywords)"


def test_representatives_take_one_passage_per_review_first() -> None:
    vectors = mapping.normalize_rows(np.array([[1, 0], [0.99, 0.1], [0.9, 0.4], [0.1, 1]]))
    centroid = mapping.normalize_rows(np.array([1.0, 0.0]))
    chosen = mapping.representatives([10, 11, 12, 13], vectors, centroid, groups=[1, 1, 2, 3], k=3)
    assert chosen == [10, 12, 13]


def test_review_centering_removes_what_a_review_shares() -> None:
    rng = np.random.default_rng(0)
    case = rng.normal(size=8)
    embeddings = mapping.normalize_rows(case + 0.3 * rng.normal(size=(6, 8)))
    centered = mapping.center_by_review(embeddings, [1] * 6, 1.0, embeddings.mean(axis=0))
    assert np.allclose(np.linalg.norm(centered, axis=1), 1.0, atol=1e-5)
    pairs = np.triu_indices(6, 1)
    assert (embeddings @ embeddings.T)[pairs].mean() > 0.8  # one case: all alike
    assert (centered @ centered.T)[pairs].mean() < 0  # what they shared is gone; what is left points apart
    short = mapping.center_by_review(embeddings[:2], [5, 5], 1.0, np.zeros(8))  # too short: corpus mean used
    assert np.allclose(short, embeddings[:2], atol=1e-5)
