"""Ensemble tagger, the default: combines the rules, embedding, supervised and nearest-neighbour scores of
each label with a small logistic regression fitted on out-of-fold scores (folds by review), and a
threshold per label chosen on those scores. Labels with too few labelled positives keep the rules tagger's decision.

Emitted scores are rescaled so that every label's threshold sits at 0.5; the raw thresholds are kept
in `thresholds` and stored on the tag run. Saved by calibrate.save_model.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from vkpp_learning import registry
from vkpp_learning.records import FACETS, TagInput, TagResult
from vkpp_learning.tagging import detectors, neighbours, rules
from vkpp_learning.tagging.base import PassageLabels
from vkpp_learning.tagging.calibrate import (
    INNER_FOLDS,
    MIN_POSITIVES,
    Decided,
    LogisticModel,
    calibration_mask,
    calibration_rows,
    choose_threshold,
    fingerprint,
    fit_logistic,
    group_folds,
    label_matrix,
    logit,
    out_of_fold,
    training_groups,
)
from vkpp_learning.tagging.embedding import THEME_FACETS, EmbeddingTagger, Encoder, folds_within
from vkpp_learning.tagging.neighbours import LabelledVectors
from vkpp_learning.tagging.supervised import MODEL_C, PassageFeatures, SupervisedTagger, tag_evidence
from vkpp_learning.taxonomy import Taxonomy

NAME = "tagger.ensemble.v1"
CODE_VERSION = "5"  # bump when a change to the features or fitting makes old saved models stale
STACK_C = 1.0
# The stacker is not class-balanced, so its scores are probabilities; with few positives the best F1
# threshold on them is noisy and is pulled towards STACK_DEFAULT (measured: better held out than 0.5).
STACK_BALANCED = False
STACK_DEFAULT = 0.4
VOTE_RANGE = (0.01, 0.99)  # a vote of none of the neighbours is strong evidence, not certainty
DECISION = 0.5  # every label's threshold maps to this score
RULE_THRESHOLDS = {"practice": rules.THRESHOLD, "vulnerability": rules.THRESHOLD}


@registry.register("tagger", NAME, alias="ensemble")
class EnsembleTagger:
    """Rules, embedding similarity and supervised models, stacked per label with calibrated thresholds."""

    name = NAME

    def __init__(
        self,
        taxonomy: Taxonomy | None = None,
        encoder: Encoder | None = None,
        c: float = MODEL_C,
        min_positives: int = MIN_POSITIVES,
    ) -> None:
        self.supervised = SupervisedTagger(taxonomy, FACETS, encoder, c, min_positives)
        self.embedding: EmbeddingTagger = self.supervised.embedding
        self.taxonomy = self.supervised.taxonomy
        self.taxonomy_version = self.taxonomy.version
        self.stackers: dict[str, LogisticModel] = {}  # "facet/label" -> stacker
        self.neighbours: LabelledVectors | None = None  # the labelled passages the nearest-neighbour vote reads
        self.thresholds: dict[str, float] = {"all": DECISION}
        self.model_version: str | None = None
        self.params: dict[str, Any] = {
            "components": [rules.NAME, *detectors.DEFAULT_TAGGERS[1:], self.embedding.name, self.supervised.name],
            "c": c,
            "stack_c": STACK_C,
            "stack_balanced": STACK_BALANCED,
            "stack_default_threshold": STACK_DEFAULT,
            "min_positives": min_positives,
            "neighbours": neighbours.PARAMS,
            "score_scale": f"each label's threshold is mapped to {DECISION}; raw thresholds by facet/label",
            "rule_fallback": {**RULE_THRESHOLDS, "other": detectors.THRESHOLD},
            "code_version": CODE_VERSION,
        }

    # -- tagging

    def tag(self, items: Sequence[TagInput]) -> list[list[TagResult]]:
        return self.tag_features(items, self.supervised.features(items))

    def tag_vectors(
        self, items: Sequence[TagInput], vectors: np.ndarray, review_vectors: np.ndarray | None = None
    ) -> list[list[TagResult]]:
        return self.tag_features(items, self.supervised.features(items, vectors, review_vectors))

    def tag_features(self, items: Sequence[TagInput], features: PassageFeatures) -> list[list[TagResult]]:
        results: list[list[TagResult]] = [[] for _ in items]
        for facet, labels, scores in self.facet_scores(features):
            for i, j in zip(*np.nonzero(scores >= DECISION), strict=True):
                evidence = tag_evidence(features, items[i], int(i), facet, labels[j], self.taxonomy)
                results[i].append(TagResult(facet, labels[j], round(float(scores[i, j]), 4), self.name, evidence))
        return results

    def facet_scores(self, features: PassageFeatures) -> list[tuple[str, list[str], np.ndarray]]:
        """(facet, labels, (passages, labels) scores on the rescaled 0..1 scale where 0.5 decides)."""
        embedded = {
            found.facet: found.scores for found in self.embedding.facet_scores(features.vectors, features.similarities)
        }
        found = []
        for facet in FACETS:
            labels = self.supervised.labels(facet)
            rule = rule_scores(features, facet, labels)
            learned = self.supervised.facet_scores(features, facet)
            voted = self.neighbours.votes(features.vectors, facet) if self.neighbours is not None else None
            scores = np.zeros_like(rule)
            for j, label in enumerate(labels):
                key = f"{facet}/{label}"
                stacker = self.stackers.get(key)
                if stacker is None:
                    scores[:, j] = rescale(rule[:, j], rule_threshold(facet))
                    continue
                inputs = stack_inputs(
                    rule[:, j],
                    embedded.get(facet, np.empty((0, 0)))[:, j] if facet in embedded else None,
                    learned[:, j],
                    voted[:, j] if voted is not None else None,
                )
                scores[:, j] = rescale(stacker.predict(inputs)[:, 0], self.thresholds[key])
            found.append((facet, labels, scores))
        return found

    # -- fitting

    def fit(
        self,
        items: Sequence[TagInput],
        labels: Sequence[PassageLabels],
        groups: Sequence[object] | None = None,
        decided: Decided | None = None,
        calibration: Sequence[bool] | None = None,
    ) -> None:
        self.fit_features(self.supervised.features(items), items, labels, groups, decided, calibration)

    def fit_features(
        self,
        features: PassageFeatures,
        items: Sequence[TagInput],
        labels: Sequence[PassageLabels],
        groups: Sequence[object] | None = None,
        decided: Decided | None = None,
        calibration: Sequence[bool] | None = None,
    ) -> None:
        """Out-of-fold embedding and supervised scores (folds by review) train the stackers; each label's
        threshold is chosen on its stacker's own out-of-fold scores (same folds); then both components
        are fitted on every labelled passage.

        `calibration` marks the passages thresholds are chosen on (calibrate.calibration_mask)."""
        groups = training_groups(items, groups)
        calibrate = calibration_mask(len(items), calibration)
        folds = group_folds(groups, INNER_FOLDS)
        matrices = {f: label_matrix(labels, f, self.supervised.labels(f), decided) for f in FACETS}
        labelled = LabelledVectors(
            features.vectors, {f: m.truth for f, m in matrices.items()}, {f: m.known for f, m in matrices.items()}
        )
        embedded, learned, voted = self.out_of_fold(features, labels, groups, decided, folds, labelled)
        self.stackers, self.thresholds = {}, {"all": DECISION}
        for facet in FACETS:
            matrix = matrices[facet]
            rule = rule_scores(features, facet, matrix.labels)
            for j, label in enumerate(matrix.labels):
                rows = matrix.known[:, j]
                supervised = uninformative_gaps(learned[facet][rows, j])
                if matrix.positives()[j] < self.supervised.min_positives or supervised is None:
                    continue
                inputs = stack_inputs(
                    rule[rows, j],
                    embedded[facet][rows, j] if facet in embedded else None,
                    supervised,
                    voted[facet][rows, j],
                )
                truth = matrix.truth[rows, j]
                stacked = out_of_fold(
                    partial(_fit_predict, inputs, truth), len(truth), folds_within(folds, np.flatnonzero(rows))
                )[:, 0]
                chosen = calibration_rows(calibrate[rows], truth)
                threshold = choose_threshold(stacked[chosen], truth[chosen], STACK_DEFAULT)
                key = f"{facet}/{label}"
                self.stackers[key] = fit_logistic(inputs, truth, STACK_C, balanced=STACK_BALANCED)
                self.thresholds[key] = threshold
        self.embedding.fit_similarities(features.similarities, labels, groups, decided, thresholds=False)
        self.supervised.fit_features(features, labels, groups, decided, thresholds=False)
        self.neighbours = labelled
        self.model_version = fingerprint(
            self.name, items, labels, groups, decided, self.taxonomy_version, self.params, calibrate
        )

    def out_of_fold(
        self,
        features: PassageFeatures,
        labels: Sequence[PassageLabels],
        groups: Sequence[object],
        decided: Decided | None,
        folds: list[np.ndarray],
        labelled: LabelledVectors,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """facet -> (passages, labels) scores of the embedding and supervised taggers and the neighbours'
        vote, each passage scored by components fitted without its review (its neighbours are other
        reviews' passages)."""
        embedded = {f: np.zeros((len(features), len(self.supervised.labels(f)))) for f in THEME_FACETS}
        learned = {f: np.full((len(features), len(self.supervised.labels(f))), np.nan) for f in FACETS}
        voted = {f: np.zeros((len(features), len(self.supervised.labels(f))), dtype=np.float32) for f in FACETS}
        everything = np.arange(len(features))
        for test in folds:
            train = np.setdiff1d(everything, test)
            train_features, test_features = features.subset(train), features.subset(test)
            pick = [labels[i] for i in train], [groups[i] for i in train]
            train_decided = [decided[i] for i in train] if decided is not None else None
            embedding = EmbeddingTagger(self.taxonomy, THEME_FACETS, self.embedding.encoder)
            embedding.fit_similarities(train_features.similarities, *pick, train_decided, thresholds=False)
            for found in embedding.facet_scores(test_features.vectors, test_features.similarities):
                embedded[found.facet][test] = found.scores
            supervised = SupervisedTagger(
                self.taxonomy, FACETS, self.embedding.encoder, self.supervised.c, self.supervised.min_positives
            )
            supervised.fit_features(train_features, *pick, train_decided, thresholds=False)
            others = labelled.subset(train)
            for facet in FACETS:
                learned[facet][test] = supervised.facet_scores(test_features, facet)
                voted[facet][test] = others.votes(test_features.vectors, facet)
        return embedded, learned, voted

    # -- saving

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, supervised = self.supervised.state()
        embedding_arrays, embedding = self.embedding.state()
        arrays.update(embedding_arrays)
        for key, stacker in self.stackers.items():
            arrays.update(stacker.to_arrays(f"stack/{key}"))
        if self.neighbours is not None:
            arrays.update(self.neighbours.to_arrays("neighbours"))
        meta = {
            "supervised": supervised,
            "embedding": embedding,
            "stack": sorted(self.stackers),
            "neighbours": sorted(self.neighbours.truth) if self.neighbours is not None else None,
        }
        return arrays, meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.supervised.load_state(arrays, meta["supervised"])
        self.embedding.load_state(arrays, meta["embedding"])
        self.stackers = {key: LogisticModel.from_arrays(arrays, f"stack/{key}") for key in meta["stack"]}
        facets = meta.get("neighbours")
        self.neighbours = LabelledVectors.from_arrays(arrays, "neighbours", facets) if facets else None


# ---- scores ---------------------------------------------------------------------------------------


def _fit_predict(inputs: np.ndarray, truth: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    return fit_logistic(inputs[train], truth[train], STACK_C, balanced=STACK_BALANCED).predict(inputs[test])


def uninformative_gaps(scores: np.ndarray) -> np.ndarray | None:
    """Out-of-fold supervised scores with the gaps filled: a fold whose training reviews hold too few
    positives of a label leaves its passages unscored (NaN). Those get the column's mean, which tells the
    stacker nothing, so it leans on the rules and embedding scores there. None when nothing was scored."""
    known = ~np.isnan(scores)
    if not known.any():
        return None
    return np.where(known, scores, scores[known].mean())


def rule_scores(features: PassageFeatures, facet: str, labels: Sequence[str]) -> np.ndarray:
    """(passages, labels) scores the rules taggers and detectors gave (0 where they saw nothing)."""
    out = np.zeros((len(features), len(labels)))
    for row, scores in enumerate(features.rules.scores):
        for j, label in enumerate(labels):
            out[row, j] = scores.get((facet, label), 0.0)
    return out


def rule_threshold(facet: str) -> float:
    return RULE_THRESHOLDS.get(facet, detectors.THRESHOLD)


def stack_inputs(
    rule: np.ndarray, embedded: np.ndarray | None, learned: np.ndarray, voted: np.ndarray | None
) -> np.ndarray:
    """The stacker's input per passage: the rules score, and the log-odds of the learned scores and of the
    neighbours' vote."""
    columns = [rule, logit(learned)]
    if embedded is not None:
        columns.insert(1, logit(embedded))
    if voted is not None:
        columns.append(logit(np.clip(voted, *VOTE_RANGE)))
    return np.column_stack(columns)


def rescale(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Map [0, threshold] to [0, 0.5] and [threshold, 1] to [0.5, 1], so 0.5 decides for every label."""
    threshold = float(np.clip(threshold, 1e-3, 1 - 1e-3))
    below = scores * DECISION / threshold
    above = DECISION + (scores - threshold) * (1 - DECISION) / (1 - threshold)
    return np.where(scores < threshold, below, above)
