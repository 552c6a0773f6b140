"""Measure taggers against gold labels: precision, recall and F1 per label, micro and macro per facet.

Passages are tagged by exactly the taggers the pipeline uses (`create_tagger`). A tagger that learns
(`fit`) is evaluated by document-level cross-validation: it is fitted on the other documents' passages
and tags the held-out documents, so no passage of a review is seen in training and in testing.

The pipeline's learned taggers train on every labelled passage the project ships (corpus_samples/gold and
corpus_samples/training, see BUNDLED_LABELS). Evaluation does the same: each fold trains on the other folds'
documents plus the bundled passages, minus every bundled passage of a review being evaluated (same doc_id
or same text). Evaluating the bundled gold itself therefore adds only corpus_samples/training; evaluating an
independent gold set measures the model the pipeline would actually use. `training=()` turns this off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vkpp_learning import settings
from vkpp_learning.errors import ConfigurationError
from vkpp_learning.records import TagInput
from vkpp_learning.tagging.base import BINARY_LABEL, FittableTagger, PassageLabels, by_facet, create_tagger
from vkpp_learning.tagging.detectors import DEFAULT_TAGGERS

# Report key -> (gold JSONL field, tag facet).
MULTI_LABEL = {
    "practice": ("themes", "practice"),
    "vulnerabilities": ("vulnerabilities", "vulnerability"),
    "agencies": ("agencies", "agency"),
}
BINARY_FACETS = {
    "missed_opportunity": ("missed_opportunity", "missed_opportunity"),
    "police_relevant": ("police_relevant", "police_relevant"),
}
RECOMMENDATION = ("recommendation_to", "recommendation_to")
REQUIRED_FIELDS = ("doc_id", "para_id", "text")
TABLE_ROW_ID = re.compile(r"(^|\.)r\d+$")
DEFAULT_FOLDS = 5
# Passages of whole reviews written only to be labelled: learned from, but thresholds are chosen on passages
# of real reviews (gold, analysts' decisions) whenever there are enough (ensemble.calibration_rows).
WRITTEN_LABELS = settings.project_root() / "corpus_samples" / "training"
BUNDLED_LABELS = (settings.project_root() / "corpus_samples" / "gold", WRITTEN_LABELS)


@dataclass(frozen=True)
class GoldPassage:
    """One labelled paragraph or chronology row, with its labels by tag facet."""

    doc_id: str
    para_id: str
    section: str
    text: str
    review_type: str
    labels: dict[str, frozenset[str]]
    written: bool = False  # from WRITTEN_LABELS: a review written only to be labelled

    def tag_input(self) -> TagInput:
        kind = "table_row" if TABLE_ROW_ID.search(self.para_id) else "paragraph"
        return TagInput(
            text=self.text, review_type=self.review_type, section_kind=self.section, kind=kind, review=self.doc_id
        )


def load_gold(path: str | Path) -> list[GoldPassage]:
    """Gold passages from one JSONL file or every *.jsonl file in a folder (in name order)."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise ConfigurationError(f"no gold JSONL files at {path}", code="gold_missing")
    return [replace(passage, written=is_written(file)) for file in files for passage in _read_gold_file(file)]


def is_written(file: Path) -> bool:
    """Whether a labelled file lies in WRITTEN_LABELS (reviews written only to be labelled)."""
    return file.resolve().is_relative_to(WRITTEN_LABELS.resolve())


def load_labelled(paths: Sequence[str | Path]) -> list[GoldPassage]:
    """Labelled passages from several gold files or folders; a missing path or a folder with no JSONL file
    is skipped (the training folder may be empty)."""
    found = [Path(p) for p in paths if Path(p).is_file() or any(Path(p).glob("*.jsonl"))]
    return [passage for path in found for passage in load_gold(path)]


def training_passages(paths: Sequence[str | Path], evaluated: Sequence[GoldPassage]) -> list[GoldPassage]:
    """The labelled passages at `paths` that share no review (doc_id) and no text with `evaluated`."""
    reviews = {p.doc_id for p in evaluated}
    texts = {p.text for p in evaluated}
    return [p for p in load_labelled(paths) if p.doc_id not in reviews and p.text not in texts]


def _read_gold_file(file: Path) -> list[GoldPassage]:
    passages = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            passages.append(_gold_passage(record))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"{file.name} line {number}: not a gold record ({exc})", code="gold_invalid"
            ) from None
    return passages


def _gold_passage(record: dict[str, Any]) -> GoldPassage:
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise KeyError(f"missing {', '.join(missing)}")
    labels = {facet: frozenset(record.get(field) or ()) for field, facet in [*MULTI_LABEL.values(), RECOMMENDATION]}
    for field, facet in BINARY_FACETS.values():
        labels[facet] = frozenset({BINARY_LABEL}) if record.get(field) else frozenset()
    return GoldPassage(
        doc_id=str(record["doc_id"]),
        para_id=str(record["para_id"]),
        section=record.get("section") or "other",
        text=record["text"],
        review_type=record.get("review_type") or "unknown",
        labels=labels,
    )


def document_folds(passages: Sequence[GoldPassage], folds: int = DEFAULT_FOLDS) -> list[list[int]]:
    """Passage indices split into folds by document: every passage of a review falls in the same fold."""
    doc_ids = sorted({p.doc_id for p in passages})
    count = max(1, min(folds, len(doc_ids)))
    fold_of = {doc_id: i % count for i, doc_id in enumerate(doc_ids)}
    split: list[list[int]] = [[] for _ in range(count)]
    for index, passage in enumerate(passages):
        split[fold_of[passage.doc_id]].append(index)
    return split


def predict(
    passages: Sequence[GoldPassage],
    tagger_names: str | Sequence[str] = DEFAULT_TAGGERS,
    folds: int = DEFAULT_FOLDS,
    threshold: float = 0.0,
    extra: Sequence[GoldPassage] = (),
    **tagger_options: Any,
) -> list[dict[str, set[str]]]:
    """The labels the taggers give each passage, by facet; fitted taggers only ever see other documents:
    the other folds' and `extra` (labelled passages of other reviews, added to every fold's training)."""
    tagger = create_tagger(tagger_names, **tagger_options)
    items = [p.tag_input() for p in passages]
    if not isinstance(tagger, FittableTagger):
        return [by_facet(results, threshold) for results in tagger.tag(items)]
    predicted: list[dict[str, set[str]]] = [{} for _ in passages]
    extra_items = [p.tag_input() for p in extra]
    extra_labels = [_as_labels(p) for p in extra]
    for test in document_folds(passages, folds):
        held_out = set(test)
        train = [i for i in range(len(passages)) if i not in held_out]
        fold_tagger = create_tagger(tagger_names, **tagger_options)
        assert isinstance(fold_tagger, FittableTagger)  # the same names as `tagger`
        fold_tagger.fit(
            [items[i] for i in train] + extra_items,
            [_as_labels(passages[i]) for i in train] + extra_labels,
            calibration=[not passages[i].written for i in train] + [not p.written for p in extra],
        )
        for index, results in zip(test, fold_tagger.tag([items[i] for i in test]), strict=True):
            predicted[index] = by_facet(results, threshold)
    return predicted


def _as_labels(passage: GoldPassage) -> PassageLabels:
    return {facet: sorted(labels) for facet, labels in passage.labels.items()}


def prf(true_positive: int, false_positive: int, false_negative: int) -> dict[str, float | int]:
    precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 0.0
    recall = true_positive / (true_positive + false_negative) if true_positive + false_negative else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "support": true_positive + false_negative,
    }


def score_multilabel(gold: Sequence[frozenset[str]], predicted: Sequence[set[str]]) -> dict[str, Any]:
    """Per-label P/R/F1 over every label seen in gold or predictions, with micro- and macro-F1."""
    labels = sorted(set().union(*gold, *predicted)) if gold else []
    counts = {label: [0, 0, 0] for label in labels}  # tp, fp, fn
    for truth, guess in zip(gold, predicted, strict=True):
        for label in truth & guess:
            counts[label][0] += 1
        for label in guess - truth:
            counts[label][1] += 1
        for label in truth - guess:
            counts[label][2] += 1
    per_label = {label: prf(*counts[label]) for label in labels}
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    macro = sum(float(s["f1"]) for s in per_label.values()) / len(per_label) if per_label else 0.0
    return {"micro_f1": prf(*totals)["f1"], "macro_f1": round(macro, 4), "per_label": per_label}


def score_binary(gold: Sequence[frozenset[str]], predicted: Sequence[set[str]]) -> dict[str, float | int]:
    pairs = [(BINARY_LABEL in truth, BINARY_LABEL in guess) for truth, guess in zip(gold, predicted, strict=True)]
    return prf(
        sum(1 for t, g in pairs if t and g),
        sum(1 for t, g in pairs if g and not t),
        sum(1 for t, g in pairs if t and not g),
    )


def score(
    passages: Sequence[GoldPassage], predicted: Sequence[dict[str, set[str]]], include_recommendations: bool = False
) -> dict[str, Any]:
    """The evaluation report for predictions already made (same order as `passages`)."""
    report: dict[str, Any] = {}
    for key, (_, facet) in MULTI_LABEL.items():
        report[key] = score_multilabel([p.labels[facet] for p in passages], [g.get(facet, set()) for g in predicted])
    for key, (_, facet) in BINARY_FACETS.items():
        report[key] = score_binary([p.labels[facet] for p in passages], [g.get(facet, set()) for g in predicted])
    if include_recommendations:
        facet = RECOMMENDATION[1]
        report[facet] = score_multilabel([p.labels[facet] for p in passages], [g.get(facet, set()) for g in predicted])
    return report


def agreement(reference: str | Path, other: str | Path) -> dict[str, Any]:
    """How far a second labelling of the same passages agrees with a reference labelling (two analysts, or
    the gold and a blind re-annotation): the evaluation report with `other` in the place of predictions,
    recommendation_to included, plus "passages". F1 is symmetric, so swapping the two swaps only precision
    and recall. Both must label exactly the same passages (doc_id, para_id) with the same text."""
    passages = load_gold(reference)
    second = {(p.doc_id, p.para_id): p for p in load_gold(other)}
    keys = [(p.doc_id, p.para_id) for p in passages]
    unmatched = [f"{d}/{i} only in {Path(reference).name}" for d, i in keys if (d, i) not in second]
    unmatched += [f"{d}/{i} only in {Path(other).name}" for d, i in second.keys() - set(keys)]
    unmatched += [
        f"{p.doc_id}/{p.para_id} has another text"
        for p in passages
        if second.get((p.doc_id, p.para_id), p).text != p.text
    ]
    if unmatched:
        raise ConfigurationError(
            f"the two labellings do not cover the same passages ({len(unmatched)}): {'; '.join(unmatched[:3])}",
            code="agreement_unmatched",
        )
    labelled = [{facet: set(labels) for facet, labels in second[key].labels.items()} for key in keys]
    return score(passages, labelled, include_recommendations=True) | {"passages": len(passages)}


def evaluate(
    gold_path: str | Path,
    tagger_names: str | Sequence[str] = DEFAULT_TAGGERS,
    folds: int = DEFAULT_FOLDS,
    threshold: float = 0.0,
    include_recommendations: bool = False,
    training: Sequence[str | Path] = BUNDLED_LABELS,
    **tagger_options: Any,
) -> dict[str, Any]:
    """Evaluate taggers on gold JSONL (a file or a folder of them). Every tag a tagger emits counts (each
    tagger applies its own recorded thresholds); `threshold` can raise the bar to study a trade-off.

    Returns {"practice", "vulnerabilities", "agencies": {"micro_f1", "macro_f1", "per_label"},
    "missed_opportunity", "police_relevant": {"precision", "recall", "f1", "support"}}, plus
    "recommendation_to" (multi-label) when `include_recommendations` is true.
    """
    passages = load_gold(gold_path)
    extra = training_passages(training, passages)
    return evaluate_passages(passages, extra, tagger_names, folds, threshold, include_recommendations, **tagger_options)


def evaluate_passages(
    passages: Sequence[GoldPassage],
    extra: Sequence[GoldPassage],
    tagger_names: str | Sequence[str] = DEFAULT_TAGGERS,
    folds: int = DEFAULT_FOLDS,
    threshold: float = 0.0,
    include_recommendations: bool = False,
    **tagger_options: Any,
) -> dict[str, Any]:
    """`evaluate` on passages already loaded, `extra` (see training_passages) added to every fold's training."""
    predicted = predict(passages, tagger_names, folds=folds, threshold=threshold, extra=extra, **tagger_options)
    return score(passages, predicted, include_recommendations=include_recommendations)
