"""Agreement between two labellings of the same passages (`vkpp agreement`), and the blind re-annotations of
the sample reviews it is measured on (corpus_samples/agreement)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import CORPUS
from vkpp_learning.cli import main
from vkpp_learning.errors import ConfigurationError
from vkpp_learning.evaluate import MULTI_LABEL, agreement, load_gold

GOLD = CORPUS / "gold"
ANNOTATORS = [CORPUS / "agreement" / name for name in ("annotator_a", "annotator_b")]
MULTI = ("practice", "vulnerabilities", "agencies", "recommendation_to")
BINARY = ("missed_opportunity", "police_relevant")


def test_a_labelling_agrees_with_itself_completely() -> None:
    report = agreement(GOLD, GOLD)
    assert report["passages"] == len(load_gold(GOLD))
    assert all(report[key]["micro_f1"] == report[key]["macro_f1"] == 1.0 for key in MULTI)
    assert all(report[key]["f1"] == 1.0 for key in BINARY)


@pytest.mark.parametrize("annotator", ANNOTATORS, ids=lambda p: p.name)
def test_each_blind_annotation_covers_every_gold_passage_with_taxonomy_ids(annotator: Path) -> None:
    from vkpp_learning.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    gold = {(p.doc_id, p.para_id): p for p in load_gold(GOLD)}
    second = load_gold(annotator)
    assert {(p.doc_id, p.para_id) for p in second} == gold.keys()
    for passage in second:
        assert passage.text == gold[(passage.doc_id, passage.para_id)].text
        for _, facet in MULTI_LABEL.values():
            assert passage.labels[facet] <= set(taxonomy.ids(facet)), (passage.doc_id, passage.para_id)


def test_swapping_the_two_labellings_swaps_precision_and_recall_only() -> None:
    forward, backward = agreement(GOLD, ANNOTATORS[0]), agreement(ANNOTATORS[0], GOLD)
    for key in BINARY:
        assert forward[key]["f1"] == backward[key]["f1"]
        assert forward[key]["precision"] == backward[key]["recall"]
    for key in MULTI:
        assert forward[key]["micro_f1"] == backward[key]["micro_f1"]
        for label, values in forward[key]["per_label"].items():
            assert values["f1"] == backward[key]["per_label"][label]["f1"]
            assert values["recall"] == backward[key]["per_label"][label]["precision"]


def test_blind_annotators_agree_with_the_gold_but_not_perfectly() -> None:
    # Measured figures are in docs/tagging.md; this guards the data: a copy of the gold would give 1.0,
    # a labelling of other passages far less.
    for annotator in ANNOTATORS:
        report = agreement(GOLD, annotator)
        assert 0.6 < report["practice"]["macro_f1"] < 0.95
        assert 0.6 < report["agencies"]["micro_f1"] < 0.98
        assert 0.8 < report["missed_opportunity"]["f1"] < 1.0


def test_labellings_of_different_passages_are_refused_with_the_passages_named(tmp_path: Path) -> None:
    one_review = tmp_path / "one"
    one_review.mkdir()
    shutil.copy(ANNOTATORS[0] / "dhr_amira_2021.jsonl", one_review)
    with pytest.raises(ConfigurationError, match="do not cover the same passages") as raised:
        agreement(GOLD, one_review)
    assert raised.value.code == "agreement_unmatched"
    assert "only in gold" in str(raised.value)

    edited = tmp_path / "edited.jsonl"
    records = [json.loads(line) for line in (GOLD / "dhr_amira_2021.jsonl").read_text(encoding="utf-8").splitlines()]
    records[0]["text"] += " (edited)"
    edited.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=f"{records[0]['para_id']} has another text"):
        agreement(GOLD / "dhr_amira_2021.jsonl", edited)


def test_the_cli_prints_the_evaluate_shape_and_reports_bad_input_plainly(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["agreement", str(GOLD), str(ANNOTATORS[1]), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {*MULTI, *BINARY, "passages"}
    assert report == agreement(GOLD, ANNOTATORS[1])

    result = runner.invoke(main, ["agreement", str(GOLD), str(ANNOTATORS[1] / "dhr_amira_2021.jsonl")])
    assert result.exit_code != 0
    assert "do not cover the same passages" in result.output
    assert "Traceback" not in result.output
