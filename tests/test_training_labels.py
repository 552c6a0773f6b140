"""The labelled passages the learned taggers train on: corpus_samples/training beside the gold, their
validity against the taxonomy, and the rule that evaluation never trains on a review it scores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from pipelines.tag import DEFAULT_LABELS, training_set
from tests.conftest import CORPUS, sqlite_url
from vkpp_learning.db import open_database
from vkpp_learning.evaluate import BUNDLED_LABELS, MULTI_LABEL, load_gold, load_labelled, training_passages
from vkpp_learning.tagging.calibrate import calibration_rows
from vkpp_learning.taxonomy import load_taxonomy

TRAINING = CORPUS / "training"
GOLD = CORPUS / "gold"
FACET_OF_FIELD = {field: facet for field, facet in MULTI_LABEL.values()} | {"recommendation_to": "agency"}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_training_reviews_are_whole_labelled_reviews_with_taxonomy_ids() -> None:
    taxonomy = load_taxonomy()
    files = sorted(TRAINING.glob("*.jsonl"))
    assert len(files) >= 12
    for file in files:
        records = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert len(records) >= 30, file.name
        assert {r["doc_id"] for r in records} == {file.stem}, file.name
        assert len({r["para_id"] for r in records}) == len(records), file.name
        for record in records:
            for field, facet in FACET_OF_FIELD.items():
                unknown = set(record[field]) - set(taxonomy.ids(facet))
                assert not unknown, f"{file.name} {record['para_id']}: {field} {unknown}"
            if record["section"] != "recommendations":
                assert record["recommendation_to"] == [], f"{file.name} {record['para_id']}"


def test_training_reviews_are_not_the_gold_reviews() -> None:
    gold = load_gold(GOLD)
    training = load_gold(TRAINING)
    assert not {p.doc_id for p in gold} & {p.doc_id for p in training}
    assert not {p.text for p in gold} & {p.text for p in training}

    # No training passage reuses a gold sentence: no shared run of 20 words (statutory criteria, such as
    # "reasonable cause to suspect that...", are quoted by every review and may run to a dozen).
    def runs(text: str) -> set[tuple[str, ...]]:
        tokens = words(text)
        return {tuple(tokens[i : i + 20]) for i in range(len(tokens) - 19)}

    gold_runs = set().union(*(runs(p.text) for p in gold))
    copied = [p.para_id for p in training if runs(p.text) & gold_runs]
    assert copied == []


def test_evaluation_never_trains_on_a_review_it_scores(tmp_path: Path) -> None:
    gold = load_gold(GOLD)
    evaluated = [p for p in gold if p.doc_id == "dhr_louise_2023"]
    extra = training_passages(BUNDLED_LABELS, evaluated)
    assert evaluated and not {p.doc_id for p in extra} & {"dhr_louise_2023"}
    assert len(extra) == len(gold) - len(evaluated) + len(load_gold(TRAINING))
    # The same text under another doc_id (a copy of a gold file) is held out too.
    copy = tmp_path / "copy.jsonl"
    lines = (GOLD / "dhr_louise_2023.jsonl").read_text(encoding="utf-8").splitlines()
    copy.write_text("\n".join(line.replace("dhr_louise_2023", "renamed") for line in lines), encoding="utf-8")
    assert training_passages([copy], evaluated) == []
    # Evaluating the bundled gold adds only the training folder.
    assert {p.doc_id for p in training_passages(BUNDLED_LABELS, gold)} == {p.doc_id for p in load_gold(TRAINING)}


def test_empty_or_missing_label_folders_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert load_labelled([tmp_path / "empty", tmp_path / "missing"]) == []


def test_the_tag_pipeline_trains_on_gold_and_training_passages(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "labels.sqlite")
    db = open_database(url)
    try:
        with db.session() as session:
            found = training_set(session, DEFAULT_LABELS)
    finally:
        db.dispose()
    expected = len(load_gold(GOLD)) + len(load_gold(TRAINING))
    assert len(found.items) == expected
    assert len(set(found.groups)) == len({p.doc_id for p in load_labelled(DEFAULT_LABELS)})
    assert all(item.review for item in found.items)


def test_written_reviews_train_but_real_reviews_set_thresholds(tmp_path: Path) -> None:
    assert all(p.written for p in load_gold(TRAINING)) and not any(p.written for p in load_gold(GOLD))
    db = open_database(sqlite_url(tmp_path / "calibration.sqlite"))
    try:
        with db.session() as session:
            found = training_set(session, DEFAULT_LABELS)
    finally:
        db.dispose()
    real = [item.review for item, calibrate in zip(found.items, found.calibration, strict=True) if calibrate]
    assert set(real) == {p.doc_id for p in load_gold(GOLD)}
    assert len(found.calibration) == len(found.items)


def test_thresholds_come_from_real_reviews_when_they_hold_enough_positives() -> None:
    real = np.array([True] * 6 + [False] * 6)
    many = np.array([1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1], dtype=bool)
    assert calibration_rows(real, many).tolist() == real.tolist()
    few = np.array([1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], dtype=bool)
    assert calibration_rows(real, few).all()  # one real positive: every row decides
    assert calibration_rows(np.ones(12, dtype=bool), many).all()


def test_every_learned_tagger_takes_the_calibration_passages_through_fit() -> None:
    """fit(items, labels, groups, decided, calibration) is the one protocol: the embedding tagger (here alone
    and inside a combination) chooses its thresholds on the real reviews' passages, not the written ones."""
    import pytest

    from vkpp_learning.tagging.base import create_tagger

    real = [p for p in load_gold(GOLD) if p.doc_id in {"dhr_louise_2023", "sar_margaret_2023", "mappa_owen_2024"}]
    written = [p for f in sorted(TRAINING.glob("*.jsonl"))[:6] for p in load_gold(f)]
    passages = real + written
    items = [p.tag_input() for p in passages]
    labels = [{facet: sorted(found) for facet, found in p.labels.items()} for p in passages]
    on_real = [not p.written for p in passages]

    unmarked, everything, only_real = (create_tagger("embedding") for _ in range(3))
    unmarked.fit(items, labels)
    everything.fit(items, labels, calibration=[True] * len(items))
    only_real.fit(items, labels, calibration=on_real)
    assert everything.thresholds == unmarked.thresholds
    assert everything.model_version == unmarked.model_version
    changed = {k for k, v in only_real.thresholds.items() if unmarked.thresholds[k] != v}
    assert changed, "no threshold moved when only the real reviews' passages may set them"
    assert only_real.model_version != unmarked.model_version

    combined = create_tagger("embedding,rules")
    with pytest.raises(ValueError, match="calibration marks 3 passages, but"):
        combined.fit(items, labels, calibration=[True, False, True])  # type: ignore[attr-defined]
