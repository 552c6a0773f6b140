"""Diagnostic: is the ensemble held back by its thresholds or by how it ranks passages?

Run: python benchmarks/bench_tagging_ceiling.py [--gold corpus_samples/gold] [--real-copies 1] [--save FILE.npz]
                                                [--per-label] [--agency-misses]
     python benchmarks/bench_tagging_ceiling.py --report FILE.npz [--per-label] [--agency-misses]

Fits the default ensemble in the 5 folds by review that `vkpp evaluate` uses (each fold trained on the other folds'
reviews and the written reviews of corpus_samples/training, thresholds chosen on real reviews) and keeps every
held-out passage's score for every label, on the rescaled scale where 0.5 decides. Prints per facet:
- `F1@0.5`: the F1 of the recorded thresholds, which is what `vkpp evaluate` reports (for a facet of several
  labels, the mean over labels with at least 3 gold positives, and the micro F1 at the end of the line);
- `best-threshold F1`: each label's F1 at the threshold that is best *on the held-out passages themselves*. Not an
  honest figure, a ceiling: no choice of thresholds can do better with these scores, so the gap between the two
  is all that better calibration could win;
- `MAP`: mean average precision, how well the scores rank the passages whatever the threshold.
--agency-misses splits the agency labels the ensemble misses by whether the passage itself judges the agency by
name (the rules' agency detector tags it) and whether one of the two passages before it, in the same review, does:
how much of the gap is an agency a reader knows from earlier in the review.
--real-copies N trains on every passage of a real (not written) review N times, the experiment of weighting the
gold's own labelling line above the written reviews'. Minutes (about as long as `vkpp evaluate`); never fails on
a figure.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

from vkpp_learning import settings
from vkpp_learning.evaluate import (
    BUNDLED_LABELS,
    MULTI_LABEL,
    GoldPassage,
    document_folds,
    load_gold,
    training_passages,
)
from vkpp_learning.tagging.base import create_tagger

ROOT = settings.project_root()
MIN_SUPPORT = 3


def held_out_scores(gold_path: Path, real_copies: int) -> dict[str, np.ndarray]:
    """Each gold passage's held-out ensemble score (0.5 decides), by "facet/label"."""
    gold = load_gold(gold_path)
    written = training_passages(BUNDLED_LABELS, gold)
    found: dict[str, np.ndarray] = {}
    for number, test in enumerate(document_folds(gold)):
        started = time.perf_counter()
        held = set(test)
        train = [p for i, p in enumerate(gold) if i not in held for _ in range(real_copies)] + written
        for key, scores in ensemble_scores(train, [gold[i] for i in test]).items():
            found.setdefault(key, np.full(len(gold), np.nan))[test] = scores
        print(f"fold {number}: {len(test)} passages held out, {time.perf_counter() - started:.0f} s", flush=True)
    return found


def ensemble_scores(train: Sequence[GoldPassage], test: Sequence[GoldPassage]) -> dict[str, np.ndarray]:
    """The default ensemble fitted on `train` as `vkpp evaluate` fits it (thresholds chosen on the passages of real
    reviews), and its scores of the `test` passages (0.5 decides), by "facet/label"."""
    tagger = create_tagger("ensemble")
    tagger.fit(  # type: ignore[attr-defined]
        [p.tag_input() for p in train],
        [{facet: sorted(labels) for facet, labels in p.labels.items()} for p in train],
        calibration=[not p.written for p in train],
    )
    features = tagger.supervised.features([p.tag_input() for p in test])  # type: ignore[attr-defined]
    return {
        f"{facet}/{label}": scores[:, j]
        for facet, labels, scores in tagger.facet_scores(features)  # type: ignore[attr-defined]
        for j, label in enumerate(labels)
    }


def f1(truth: np.ndarray, decided: np.ndarray) -> tuple[float, int, int, int]:
    tp, fp, fn = int((truth & decided).sum()), int((~truth & decided).sum()), int((truth & ~decided).sum())
    return 2 * tp / max(1, 2 * tp + fp + fn), tp, fp, fn


def report(scores: dict[str, np.ndarray], gold_path: Path, per_label: bool) -> None:
    gold = load_gold(gold_path)
    facets = [facet for _, facet in MULTI_LABEL.values()] + ["missed_opportunity", "police_relevant"]
    for facet in facets:
        at, best, ranked, counts = [], [], [], np.zeros(3, dtype=int)
        for key in sorted(k for k in scores if k.split("/", 1)[0] == facet):
            label = key.split("/", 1)[1]
            truth = np.array([label in p.labels.get(facet, ()) for p in gold])
            if truth.sum() < MIN_SUPPORT:
                continue
            column = scores[key]
            value, *cells = f1(truth, column >= 0.5)
            counts += cells
            ceiling = max(f1(truth, column >= t)[0] for t in np.unique(column))
            precision = float(average_precision_score(truth, column))
            at.append(value)
            best.append(ceiling)
            ranked.append(precision)
            if per_label:
                print(f"  {key:45} n={truth.sum():3}  F1@0.5 {value:.3f}  best {ceiling:.3f}  AP {precision:.3f}")
        tp, fp, fn = counts
        print(
            f"{facet:19} F1@0.5 {np.mean(at):.3f}  best-threshold {np.mean(best):.3f}  "
            f"MAP {np.mean(ranked):.3f}  micro F1@0.5 {2 * tp / max(1, 2 * tp + fp + fn):.3f}"
        )


def agency_misses(scores: dict[str, np.ndarray], gold_path: Path) -> None:
    gold = load_gold(gold_path)
    named = [{tag.label for tag in tags} for tags in create_tagger("agencies").tag([p.tag_input() for p in gold])]
    cells: dict[tuple[bool, bool, bool, bool], int] = {}
    for key in sorted(k for k in scores if k.startswith("agency/")):
        agency = key.split("/", 1)[1]
        for i, passage in enumerate(gold):
            before = [named[j] for j in (i - 2, i - 1) if j >= 0 and gold[j].doc_id == passage.doc_id]
            cell = (agency in passage.labels["agency"], bool(scores[key][i] >= 0.5), agency in named[i])
            cell += (any(agency in found for found in before),)
            cells[cell] = cells.get(cell, 0) + 1
    missed = {k: v for k, v in cells.items() if k[0] and not k[1]}
    print(
        f"agency labels missed: {sum(missed.values())}, of which the passage judges the agency by name: "
        f"{sum(v for k, v in missed.items() if k[2])}"
    )
    for earlier in (True, False):
        unnamed = {k: v for k, v in cells.items() if not k[2] and k[3] == earlier}
        positive = sum(v for k, v in unnamed.items() if k[0])
        lost = sum(v for k, v in unnamed.items() if k[0] and not k[1])
        print(
            f"(passage, agency) pairs the passage does not name, {'named' if earlier else 'not named'} in the two "
            f"passages before: {sum(unnamed.values())}, gold positive {positive} "
            f"({positive / max(1, sum(unnamed.values())):.1%}), missed {lost}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, default=ROOT / "corpus_samples" / "gold")
    parser.add_argument("--real-copies", type=int, default=1, help="train on each real review's passages N times")
    parser.add_argument("--save", type=Path, help="keep the held-out scores in this .npz")
    parser.add_argument("--report", type=Path, help="only report the scores kept in this .npz")
    parser.add_argument("--per-label", action="store_true")
    parser.add_argument("--agency-misses", action="store_true", help="the missed agencies, named or not")
    args = parser.parse_args()
    if args.report:
        with np.load(args.report) as kept:
            scores = {key.replace("__", "/", 1): kept[key] for key in kept.files}
    else:
        scores = held_out_scores(args.gold, args.real_copies)
        if args.save:
            np.savez(args.save, **{key.replace("/", "__", 1): column for key, column in scores.items()})
    print(f"labels with fewer than {MIN_SUPPORT} gold positives are left out")
    report(scores, args.gold, args.per_label)
    if args.agency_misses:
        agency_misses(scores, args.gold)


if __name__ == "__main__":
    main()
