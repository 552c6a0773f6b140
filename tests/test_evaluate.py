"""Evaluation: the report's shape and arithmetic, document-level folds, and honest fitting."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from vkpp_learning import registry
from vkpp_learning.errors import ConfigurationError
from vkpp_learning.evaluate import (
    document_folds,
    evaluate,
    load_gold,
    predict,
    score_binary,
    score_multilabel,
)
from vkpp_learning.records import TagInput, TagResult
from vkpp_learning.tagging.base import Decided, FittableTagger, PassageLabels

SMALL_GOLD = Path(__file__).parent / "data" / "gold_small.jsonl"
MULTI = ("practice", "vulnerabilities", "agencies")
BINARY = ("missed_opportunity", "police_relevant")


def test_report_has_exactly_the_agreed_shape() -> None:
    report = evaluate(SMALL_GOLD)
    assert set(report) == set(MULTI) | set(BINARY)
    for key in MULTI:
        assert set(report[key]) == {"micro_f1", "macro_f1", "per_label"}
        for values in report[key]["per_label"].values():
            assert set(values) == {"precision", "recall", "f1", "support"}
            assert all(0.0 <= values[k] <= 1.0 for k in ("precision", "recall", "f1"))
    for key in BINARY:
        assert set(report[key]) == {"precision", "recall", "f1", "support"}
    json.dumps(report)  # the CLI prints it as JSON


def test_supports_count_the_gold_labels() -> None:
    report = evaluate(SMALL_GOLD)
    records = [json.loads(line) for line in SMALL_GOLD.read_text(encoding="utf-8").splitlines()]
    assert report["missed_opportunity"]["support"] == sum(r["missed_opportunity"] for r in records)
    assert report["police_relevant"]["support"] == sum(r["police_relevant"] for r in records)
    police = sum("police" in r["agencies"] for r in records)
    assert report["agencies"]["per_label"]["police"]["support"] == police


def test_rules_find_the_clear_cases_in_the_small_gold() -> None:
    # The hand-written paragraphs are unambiguous; the keyword baseline should get most of them.
    report = evaluate(SMALL_GOLD, include_recommendations=True)
    assert report["missed_opportunity"]["f1"] >= 0.8
    assert report["recommendation_to"]["micro_f1"] >= 0.8
    assert report["agencies"]["micro_f1"] >= 0.7
    assert report["practice"]["micro_f1"] >= 0.6


def test_multilabel_arithmetic() -> None:
    gold = [frozenset({"a", "b"}), frozenset({"a"}), frozenset()]
    predicted = [{"a"}, {"a", "c"}, {"b"}]
    report = score_multilabel(gold, predicted)
    assert report["per_label"]["a"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert report["per_label"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["per_label"]["c"]["support"] == 0
    # micro: tp=2, fp=2, fn=1 -> P=0.5, R=2/3, F1=4/7
    assert report["micro_f1"] == pytest.approx(4 / 7, abs=1e-4)
    assert report["macro_f1"] == pytest.approx(1 / 3, abs=1e-4)


def test_binary_arithmetic() -> None:
    yes, no = frozenset({"true"}), frozenset()
    result = score_binary([yes, yes, no, no], [{"true"}, set(), {"true"}, set()])
    assert result == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}


def test_folds_keep_each_document_whole() -> None:
    passages = load_gold(SMALL_GOLD)
    folds = document_folds(passages, folds=5)
    assert len(folds) == 3  # never more folds than documents
    assert sorted(i for fold in folds for i in fold) == list(range(len(passages)))
    for fold in folds:
        assert len({passages[i].doc_id for i in fold}) == 1


class MemorisingTagger:
    """A real learning tagger for the test: it recalls the labels of texts it was fitted on, and
    records what it saw so the test can check that no held-out text was used in fitting."""

    name = "tagger.test_memory.v1"
    taxonomy_version = "test"
    fitted_on: ClassVar[list[set[str]]] = []
    tagged: ClassVar[list[set[str]]] = []

    def __init__(self, **_options: object) -> None:
        self.memory: dict[str, PassageLabels] = {}

    def fit(
        self,
        items: Sequence[TagInput],
        labels: Sequence[PassageLabels],
        groups: Sequence[object] | None = None,
        decided: Decided | None = None,
        calibration: Sequence[bool] | None = None,
    ) -> None:
        self.memory = {item.text: label for item, label in zip(items, labels, strict=True)}
        MemorisingTagger.fitted_on.append(set(self.memory))

    def tag(self, items: Sequence[TagInput]) -> list[list[TagResult]]:
        MemorisingTagger.tagged.append({item.text for item in items})
        return [
            [TagResult(f, label, 1.0, self.name) for f, ls in self.memory.get(item.text, {}).items() for label in ls]
            for item in items
        ]


def test_a_learning_tagger_is_fitted_on_other_documents_only() -> None:
    registry.register("tagger", MemorisingTagger.name)(MemorisingTagger)
    assert isinstance(MemorisingTagger(), FittableTagger)
    MemorisingTagger.fitted_on, MemorisingTagger.tagged = [], []
    passages = load_gold(SMALL_GOLD)

    predicted = predict(passages, MemorisingTagger.name, folds=3)

    assert len(MemorisingTagger.fitted_on) == 3
    for fitted, tagged in zip(MemorisingTagger.fitted_on, MemorisingTagger.tagged, strict=True):
        assert fitted and tagged and not fitted & tagged
    # Memorising cannot help on unseen documents, so an honest evaluation finds nothing.
    assert all(not labels for labels in predicted)


def test_gold_folder_and_bad_records(tmp_path: Path) -> None:
    lines = SMALL_GOLD.read_text(encoding="utf-8").splitlines()
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[5:]) + "\n", encoding="utf-8")
    assert len(load_gold(tmp_path)) == len(lines)

    (tmp_path / "c.jsonl").write_text('{"doc_id": "x", "text": "no paragraph id"}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"c\.jsonl line 1: .*para_id"):
        load_gold(tmp_path)
    with pytest.raises(ConfigurationError, match="no gold"):
        load_gold(tmp_path / "missing.jsonl")


def test_table_rows_are_tagged_as_rows() -> None:
    passages = {p.para_id: p for p in load_gold(SMALL_GOLD)}
    assert passages["6.r2"].tag_input().kind == "table_row"
    assert passages["5.2"].tag_input().kind == "paragraph"
    assert passages["5.2"].tag_input().review_type == "DHR"
