"""The learned taggers and the tag job: registry names, held-out tagging with evidence, saved models,
tag runs kept and replaced, retraining on analysts' decisions, and `vkpp evaluate --json`.

Everything is real: the gold samples, the embedding model, sample PDFs ingested into a SQLite file.
A subset of the gold reviews keeps the fitting quick.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from vkpp_learning import registry
from vkpp_learning.cli import main
from vkpp_learning.db import models, open_database
from vkpp_learning.evaluate import GoldPassage, load_gold
from vkpp_learning.records import TagInput
from vkpp_learning.tagging.base import create_tagger
from vkpp_learning.tagging.calibrate import load_model, save_model

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "corpus_samples" / "gold"
TRAINING_REVIEWS = ("dhr_louise_2023", "sar_margaret_2023", "mappa_owen_2024", "cspr_child_t_2022", "dhr_amira_2021")
HELD_OUT_REVIEW = "dhr_gemma_2024"
DB_REVIEWS = ("dhr_gemma_2024", "sar_mr_d_2021")
LEARNED = ("tagger.embedding.v1", "tagger.supervised.v1", "tagger.ensemble.v1")


@pytest.fixture(scope="module")
def training_gold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gold")
    for review in TRAINING_REVIEWS:
        shutil.copy(GOLD / f"{review}.jsonl", folder)
    return folder


@pytest.fixture(scope="module")
def fitted(training_gold: Path) -> object:
    passages = load_gold(training_gold)
    tagger = create_tagger("ensemble")
    tagger.fit(  # type: ignore[attr-defined]
        [p.tag_input() for p in passages], [_labels(p) for p in passages], [p.doc_id for p in passages]
    )
    return tagger


@pytest.fixture(scope="module")
def held_out() -> list[GoldPassage]:
    return load_gold(GOLD / f"{HELD_OUT_REVIEW}.jsonl")


@pytest.fixture(scope="module")
def sample_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from pipelines.ingest import ingest

    url = f"sqlite:///{tmp_path_factory.mktemp('tag_db') / 'vkpp.sqlite'}"
    summary = ingest([str(ROOT / "corpus_samples" / f"{review}.pdf") for review in DB_REVIEWS], url)
    assert not summary.errors
    yield url


def _labels(passage: GoldPassage) -> dict[str, list[str]]:
    return {facet: sorted(values) for facet, values in passage.labels.items()}


def _normal(text: str) -> str:
    return " ".join(text.split())


# ---- the taggers ----------------------------------------------------------------------------------


def test_learned_taggers_are_registered_by_versioned_name_and_alias() -> None:
    names = registry.names("tagger")
    for name in LEARNED:
        assert name in names
    assert {"embedding", "supervised", "ensemble"} <= set(registry.aliases("tagger"))
    assert registry.resolve("tagger", "ensemble") == "tagger.ensemble.v1"


def test_an_ensemble_fitted_on_other_reviews_tags_a_held_out_review_with_evidence(
    fitted: object, held_out: list[GoldPassage]
) -> None:
    results = fitted.tag([p.tag_input() for p in held_out])  # type: ignore[attr-defined]
    tags = [tag for found in results for tag in found]
    assert len(tags) > len(held_out)  # most passages carry several tags
    assert all(tag.evidence.strip() and tag.method == "tagger.ensemble.v1" for tag in tags)
    assert all(0.5 <= tag.score <= 1.0 for tag in tags)  # every label's threshold is mapped to 0.5
    assert {tag.facet for tag in tags} >= {"practice", "vulnerability", "agency", "missed_opportunity"}
    truth = [p.labels["vulnerability"] for p in held_out]
    found = [{t.label for t in tags if t.facet == "vulnerability"} for tags in results]
    hits = sum(len(t & f) for t, f in zip(truth, found, strict=True))
    assert hits >= 0.5 * sum(len(t) for t in truth)  # a DHR's domestic abuse and coercive control are found


def test_missed_opportunity_evidence_is_a_sentence_of_the_passage(fitted: object, held_out: list[GoldPassage]) -> None:
    items = [p.tag_input() for p in held_out]
    checked = 0
    for item, found in zip(items, fitted.tag(items), strict=True):  # type: ignore[attr-defined]
        for tag in found:
            if tag.facet == "missed_opportunity":
                sentence = _normal(tag.evidence).rstrip("…")
                assert len(sentence) > 20 and sentence in _normal(item.text)
                checked += 1
    assert checked >= 5


def test_thresholds_are_recorded_per_label_and_sane(fitted: object) -> None:
    thresholds = fitted.thresholds  # type: ignore[attr-defined]
    assert thresholds["all"] == 0.5
    per_label = {k: v for k, v in thresholds.items() if "/" in k}
    assert "vulnerability/domestic_abuse" in per_label and "missed_opportunity/true" in per_label
    assert all(0.1 <= v <= 0.9 for v in per_label.values())


def test_a_saved_model_loads_and_tags_exactly_as_fitted(
    fitted: object, held_out: list[GoldPassage], tmp_path: Path
) -> None:
    directory = save_model(fitted, tmp_path / "model", {"passages": 1})
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "model.safetensors"]
    loaded = load_model(create_tagger("ensemble"), directory)
    items = [p.tag_input() for p in held_out[:20]]
    assert loaded.tag(items) == fitted.tag(items)  # type: ignore[attr-defined]
    assert loaded.model_version == fitted.model_version  # type: ignore[attr-defined]


def test_the_model_version_follows_the_training_labels(training_gold: Path) -> None:
    passages = load_gold(training_gold / f"{TRAINING_REVIEWS[0]}.jsonl")
    items, labels = [p.tag_input() for p in passages], [_labels(p) for p in passages]
    first, second = create_tagger("supervised"), create_tagger("supervised")
    first.fit(items, labels)  # type: ignore[attr-defined]
    labels[0] = {**labels[0], "practice": [*labels[0]["practice"], "record_keeping"]}
    second.fit(items, labels)  # type: ignore[attr-defined]
    assert first.model_version != second.model_version  # type: ignore[attr-defined]


def test_the_embedding_tagger_gives_the_nearest_example_as_evidence() -> None:
    tagger = create_tagger("embedding")
    text = "Nobody asked Child T how things were at home or what she wanted to happen."
    found = tagger.tag([TagInput(text, "CSPR", "analysis")])[0]
    assert found, "an uncalibrated embedding tagger still tags a passage this close to an example"
    assert all(tag.evidence.startswith("nearest example") for tag in found)


# ---- the tag job and the commands ---------------------------------------------------------------


def _tag(db_url: str, gold: Path, *extra: str) -> dict:
    result = CliRunner().invoke(main, ["tag", "--db", db_url, "--gold", str(gold), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def _runs(db_url: str) -> list[dict]:
    result = CliRunner().invoke(main, ["tag", "--db", db_url, "--runs", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_tag_runs_are_kept_replaced_and_retrained(sample_url: str, training_gold: Path) -> None:
    db_url = sample_url
    first = _tag(db_url, training_gold)["runs"][0]
    assert first["new_run"] and first["tags"] > first["passages"] > 100
    runs = _runs(db_url)
    assert [(r["id"], r["is_current"], r["method"]) for r in runs] == [(first["run_id"], True, "tagger.ensemble.v1")]
    assert runs[0]["model_version"] == first["model_version"] and runs[0]["tags"] == first["tags"]
    assert runs[0]["passages_read"] == first["passages"]

    again = _tag(db_url, training_gold)["runs"][0]  # same model: the current run is carried on
    assert (again["run_id"], again["new_run"], again["tags"]) == (first["run_id"], False, 0)
    assert _untagged(db_url, first["run_id"]) and again["passages"] == 0  # those it gave no tag are not read again

    db = open_database(db_url)
    from vkpp_learning.annotations import annotate
    from vkpp_learning.roles import local_user

    with db.writing() as session:
        passage_id = session.scalars(select(models.Passage.id).order_by(models.Passage.id)).first()
        annotate(session, local_user("tester"), passage_id, "practice", "record_keeping", "add", "history not checked")
    before = _annotations(db)

    retrained = _tag(db_url, training_gold, "--retrain")["runs"][0]
    assert retrained["new_run"] and retrained["model_version"] != first["model_version"]
    runs = {r["id"]: r for r in _runs(db_url)}
    assert runs[retrained["run_id"]]["is_current"] and not runs[first["run_id"]]["is_current"]
    assert runs[first["run_id"]]["tags"] == first["tags"]  # the old run stays queryable
    assert _annotations(db) == before  # analysts' decisions are never touched

    result = CliRunner().invoke(main, ["tag", "--db", db_url, "--remove-run", str(first["run_id"]), "--json"])
    assert result.exit_code == 0, result.output
    assert first["run_id"] not in {r["id"] for r in _runs(db_url)}
    with db.session() as session:
        left = session.scalar(select(func.count()).where(models.Tag.run_id == first["run_id"]))
    assert left == 0 and _annotations(db) == before
    db.dispose()


def _annotations(db: object) -> list[tuple]:
    with db.session() as session:  # type: ignore[attr-defined]
        rows = session.execute(select(models.Annotation).order_by(models.Annotation.id)).scalars()
        return [(a.id, a.passage_id, a.facet, a.label, a.decision, a.user_name, a.note) for a in rows]


def test_rules_method_records_one_run_per_rules_tagger(sample_url: str, training_gold: Path) -> None:
    db_url = sample_url
    summary = _tag(db_url, training_gold, "--method", "rules")
    methods = [run["method"] for run in summary["runs"]]
    assert methods[0] == "tagger.rules.v1" and len(methods) == 5
    assert all(run["model_version"] is None for run in summary["runs"])


def test_forced_runs_on_sqlite_and_postgresql(
    db_url: str,
    make_review_pdf: Callable[..., Path],
    training_gold: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from pipelines.ingest import ingest

    monkeypatch.chdir(tmp_path)  # models of a PostgreSQL repository are saved under ./vkpp_data
    assert not ingest([str(make_review_pdf(paragraphs=6))], db_url).errors
    first = _tag(db_url, training_gold, "--method", "missed_opportunity")["runs"][0]
    assert first["new_run"] and first["tags"] >= 6  # each of the six paragraphs names a missed opportunity
    second = _tag(db_url, training_gold, "--method", "missed_opportunity", "--force")["runs"][0]
    assert second["new_run"] and second["run_id"] != first["run_id"] and second["tags"] == first["tags"]
    runs = {r["id"]: r for r in _runs(db_url)}
    assert runs[second["run_id"]]["is_current"] and not runs[first["run_id"]]["is_current"]
    assert runs[first["run_id"]]["tags"] == first["tags"]
    _tag(db_url, training_gold, "--remove-run", str(second["run_id"]))
    assert [r["is_current"] for r in _runs(db_url)] == [True]  # the older complete run is current again

    # A run records the passages it read and gave no tag (none of the six is a recommendation), so carrying it
    # on reads nothing again; removing the run removes that record.
    addressed = _tag(db_url, training_gold, "--method", "recommendation_to")["runs"][0]
    untagged = _untagged(db_url, addressed["run_id"])
    assert addressed["tags"] == 0 and len(untagged) == addressed["passages"] == 6
    assert {r["id"]: r["passages_read"] for r in _runs(db_url)}[addressed["run_id"]] == 6
    again = _tag(db_url, training_gold, "--method", "recommendation_to")["runs"][0]
    assert (again["run_id"], again["new_run"], again["passages"]) == (addressed["run_id"], False, 0)
    _tag(db_url, training_gold, "--remove-run", str(addressed["run_id"]))
    assert _untagged(db_url, addressed["run_id"]) == []


def _untagged(db_url: str, run_id: int) -> list[int]:
    """The passages the run recorded as read without a tag."""
    db = open_database(db_url)
    try:
        with db.session() as session:
            rows = select(models.UntaggedPassage.passage_id).where(models.UntaggedPassage.run_id == run_id)
            return sorted(session.scalars(rows))
    finally:
        db.dispose()


def test_evaluate_json_has_the_agreed_shape(training_gold: Path) -> None:
    gold = training_gold / f"{TRAINING_REVIEWS[0]}.jsonl"
    # --no-train: the other folds only, so each fold fits on four reviews (the bundled training passages would
    # add minutes and change nothing about the shape; tests/test_training_labels.py covers adding them).
    command = ["evaluate", "--gold", str(training_gold), "--method", "ensemble", "--no-train", "--json"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"practice", "vulnerabilities", "agencies", "missed_opportunity", "police_relevant"}
    for key in ("practice", "vulnerabilities", "agencies"):
        assert set(report[key]) == {"micro_f1", "macro_f1", "per_label"}
        for figures in report[key]["per_label"].values():
            assert set(figures) == {"precision", "recall", "f1", "support"}
    for key in ("missed_opportunity", "police_relevant"):
        assert set(report[key]) == {"precision", "recall", "f1", "support"}
    supports = sum(json.loads(line)["missed_opportunity"] for line in gold.read_text().splitlines())
    assert report["missed_opportunity"]["support"] >= supports
    assert report["vulnerabilities"]["micro_f1"] > 0.3  # held out, fitted on four reviews each time


def test_tags_stored_batch_by_batch_with_vectors_encoded_ahead_are_the_taggers_own(
    fitted: object, sample_url: str, tmp_path: Path
) -> None:
    """run_tagger encodes batch n+1 on a worker thread while batch n is tagged (with_vectors_ahead): what it
    stores must be exactly what the tagger says of each passage, with every passage's vector stored once."""
    from pipelines.tag import passage_statement, run_tagger, tag_input
    from vkpp_learning import embeddings

    url = f"sqlite:///{tmp_path / 'prefetch.sqlite'}"
    shutil.copy(sample_url.removeprefix("sqlite:///"), url.removeprefix("sqlite:///"))
    db = open_database(url)
    try:
        with db.session() as session:
            key = embeddings.cache_key()
            session.execute(models.Embedding.__table__.delete().where(models.Embedding.model == key))
            session.commit()
        summary = run_tagger(db, fitted, force=True, batch_size=17, progress=False, on_batch=None)  # type: ignore[arg-type]
        with db.session() as session:
            ids = session.scalars(select(models.Passage.id).order_by(models.Passage.id)).all()
            rows = session.execute(passage_statement(ids)).all()
            stored = {
                (t.passage_id, t.facet, t.label)
                for t in session.scalars(select(models.Tag).where(models.Tag.run_id == summary.run_id))
            }
            vectors = session.scalar(
                select(func.count()).select_from(models.Embedding).where(models.Embedding.model == key)
            )
    finally:
        db.dispose()
    assert summary.passages == len(rows) > 17 * 3
    expected = {
        (row.id, tag.facet, tag.label)
        for row, tags in zip(rows, fitted.tag([tag_input(row) for row in rows]), strict=True)  # type: ignore[attr-defined]
        for tag in tags
    }
    assert stored == expected
    assert vectors == len({row.text for row in rows})


def test_review_batches_end_at_a_reviews_end_unless_the_review_is_long() -> None:
    from pipelines.tag import review_batches

    passages = [(1, 10), (2, 10), (3, 10), (4, 11), (5, 12), (6, 12), (7, 12), (8, 12), (9, 12), (10, 12)]
    assert review_batches(passages, 2) == [[1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert review_batches(passages, 100) == [[p for p, _ in passages]]
    assert review_batches([], 5) == []


def test_vulnerabilities_and_agencies_read_the_whole_review_beside_the_passage(
    fitted: object, held_out: list[GoldPassage]
) -> None:
    """The review context is the mean embedding of the review's passages; a passage given alone is its own."""
    import numpy as np

    from vkpp_learning.tagging.supervised import REVIEW_CONTEXT_FACETS

    supervised = fitted.supervised  # type: ignore[attr-defined]
    items = [p.tag_input() for p in held_out]
    together = supervised.features(items)
    assert np.allclose(together.review, together.vectors.mean(axis=0), atol=1e-6)
    alone = supervised.features(items[:1])
    assert np.allclose(alone.review[0], alone.vectors[0], atol=1e-6)
    width = together.matrix.shape[1]
    for facet in ("vulnerability", "agency", "practice", "missed_opportunity"):
        extra = together.review.shape[1] if facet in REVIEW_CONTEXT_FACETS else 0
        assert together.matrix_for(facet).shape[1] == width + extra
    # The context changes what the models say of the same passage.
    scores = supervised.facet_scores(together, "vulnerability")[0]
    assert not np.allclose(scores, supervised.facet_scores(alone, "vulnerability")[0], equal_nan=True)


def test_the_logistic_models_are_sklearns_balanced_logistic_regression() -> None:
    # fit_logistic fits every label in one L-BFGS run, with its products in float32: each label's model must
    # still be the one scikit-learn fits on its own (class-balanced, L2, the intercept not penalised).
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from vkpp_learning.tagging.calibrate import fit_logistic

    rng = np.random.default_rng(7)
    features = rng.normal(size=(800, 40)) * rng.uniform(0.1, 5.0, size=40) + rng.normal(size=40)
    hidden = features @ rng.normal(size=(40, 3)) / 10
    truth = hidden + rng.logistic(size=hidden.shape) > np.quantile(hidden, [0.9, 0.7, 0.5], axis=0).diagonal()
    fitted = fit_logistic(features, truth, c=0.05)
    standardised = (features - fitted.mean) / fitted.scale
    for j in range(truth.shape[1]):
        reference = LogisticRegression(C=0.05, class_weight="balanced", tol=1e-10, max_iter=5000)
        reference.fit(standardised, truth[:, j])
        expected = reference.predict_proba(standardised)[:, 1]
        assert np.abs(fitted.predict(features)[:, j] - expected).max() < 1e-3


def test_the_logistic_loss_stays_finite_where_float32_products_overflow() -> None:
    # A line-search step far from the optimum: x @ w is about 1e40, beyond float32 but not float64. The loss must
    # be large and finite, with a finite gradient and no warning, so that L-BFGS backs away instead of meeting NaN.
    import warnings

    import numpy as np

    from vkpp_learning.tagging.calibrate import logistic_loss

    x = np.array([[1.0, 1.0], [-1.0, 1.0], [2.0, 1.0]], dtype=np.float32)
    truth, weights = np.array([[1.0], [0.0], [0.0]]), np.ones((3, 1))
    penalty = np.array([[1.0], [0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = logistic_loss(np.array([[1e40], [0.0]]), x, truth, weights, penalty, c=1.0)
        ordinary, _ = logistic_loss(np.array([[0.5], [0.0]]), x, truth, weights, penalty, c=1.0)
    assert np.isfinite(value) and value > 1e40 and np.isfinite(grad).all()
    expected = np.log1p(np.exp(-0.5)) + np.log1p(np.exp(-0.5)) + np.log1p(np.exp(1.0)) + 0.125
    assert abs(ordinary - expected) < 1e-6
