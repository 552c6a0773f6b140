"""Supervised tagger: one logistic regression per label of every facet, trained on labelled passages
(the gold samples and analysts' decisions) over features that transfer between reviews: the passage
embedding, its similarity to each theme, what the rules found, and the section and review type.

A label is learned only when it has enough positive passages; the others are left to the rules and
the embedding tagger (the ensemble falls back to them). Models are plain arrays (see calibrate.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vkpp_learning import registry
from vkpp_learning.records import FACETS, REVIEW_TYPES, SECTION_KINDS, TagInput, TagResult
from vkpp_learning.tagging.base import PassageLabels
from vkpp_learning.tagging.calibrate import (
    BINARY_FACETS,
    INNER_FOLDS,
    LABELS_FROM,
    MIN_POSITIVES,
    Decided,
    LabelMatrix,
    LogisticModel,
    calibration_mask,
    calibration_rows,
    choose_threshold,
    contiguous_groups,
    facet_labels,
    fingerprint,
    fit_logistic,
    group_folds,
    label_matrix,
    out_of_fold,
    training_groups,
)
from vkpp_learning.tagging.embedding import THEME_FACETS, EmbeddingTagger, Encoder, default_encoder, theme_vectors
from vkpp_learning.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from vkpp_learning.tagging.reading import Reading

NAME = "tagger.supervised.v1"
MODEL_C = 0.01  # strong regularisation: ~700 features, a few hundred passages per fold
RULE_FLOOR = 0.01  # rules and detectors report every score above this as a feature
# Facets whose models also read the review's mean passage embedding. Vulnerabilities are characteristics of
# the case, and the case is the review; which agencies a passage judges often depends on who did what pages
# earlier. Measured (docs/tagging.md): mean average precision of a logistic model on the embedding rose from
# 0.52 to 0.61 on vulnerabilities and from 0.56 to 0.58 on agencies, and fell slightly on practice themes.
REVIEW_CONTEXT_FACETS = ("vulnerability", "agency")
PASSAGE_KINDS = ("table_row",)


# ---- features -------------------------------------------------------------------------------------


@dataclass
class RuleReading:
    """What the rules taggers and detectors say about a batch of passages, as scores by (facet, label),
    with their evidence, and the judgement cues found in each passage."""

    scores: list[dict[tuple[str, str], float]]
    evidence: list[dict[tuple[str, str], str]]
    cue_kinds: list[dict[str, float]]
    agency_named: list[dict[str, float]]


def read_rules(items: Sequence[TagInput], taxonomy: Taxonomy) -> RuleReading:
    """Run every rules tagger and detector with a low threshold, so weak signals become features."""
    from vkpp_learning.tagging.detectors import DEFAULT_TAGGERS, agency_mentions, is_receiving
    from vkpp_learning.tagging.reading import read
    from vkpp_learning.tagging.rules import clip_sentence

    scores: list[dict[tuple[str, str], float]] = [{} for _ in items]
    evidence: list[dict[tuple[str, str], str]] = [{} for _ in items]
    for name in DEFAULT_TAGGERS:
        tagger = registry.create("tagger", name, taxonomy=taxonomy, threshold=RULE_FLOOR)
        for row, results in enumerate(tagger.tag(items)):
            for result in results:
                key = (result.facet, result.label)
                if result.score > scores[row].get(key, 0.0):
                    scores[row][key] = result.score
                    evidence[row][key] = result.evidence
    cue_kinds: list[dict[str, float]] = []
    agency_named: list[dict[str, float]] = []
    for row, (item, reading) in enumerate(zip(items, read([item.text for item in items], taxonomy), strict=True)):
        cue_kinds.append(judgement_kinds(reading))
        named: dict[str, float] = {}
        for mention in agency_mentions(reading, taxonomy, item.review_type):
            role = "receiving" if is_receiving(reading.doc, mention) else "acting"
            named[f"{role}/{mention.theme}"] = 1.0
            # An agency the detectors did not judge still has the sentence that names it as evidence.
            said = f'"{mention.text}": {clip_sentence(reading.doc[mention.start].sent)}'
            for facet in ("agency", "recommendation_to"):
                evidence[row].setdefault((facet, mention.theme), said)
        agency_named.append(named)
    return RuleReading(scores, evidence, cue_kinds, agency_named)


def judgement_kinds(reading: Reading) -> dict[str, float]:
    """The strongest weight of each kind of missed-opportunity cue kept in the passage, and 1.0 for good
    practice and hindsight cues when present."""
    from vkpp_learning.tagging import cues as judgement

    kinds: dict[str, float] = {}
    for kept in judgement.missed_opportunity_cues(reading.doc, reading.cues):
        kinds[kept.kind] = max(kinds.get(kept.kind, 0.0), kept.weight)
    for cue in reading.cues:
        if cue.kind in ("good_practice", "hindsight"):
            kinds[cue.kind] = 1.0
    return kinds


def cue_kind_names() -> list[str]:
    from vkpp_learning.tagging.cues import MISSED_OPPORTUNITY_CUES

    return [*dict.fromkeys(kind for kind, _, _ in MISSED_OPPORTUNITY_CUES), "good_practice", "hindsight"]


def rule_feature_names(taxonomy: Taxonomy) -> list[str]:
    names = [f"rules/{facet}/{label}" for facet in FACETS for label in facet_labels(taxonomy, facet)]
    names += [f"cue/{kind}" for kind in cue_kind_names()]
    names += [f"named/{role}/{agency}" for role in ("acting", "receiving") for agency in taxonomy.ids("agency")]
    return names


def context_feature_names() -> list[str]:
    return [f"section/{s}" for s in SECTION_KINDS] + [f"review/{r}" for r in REVIEW_TYPES] + ["kind/table_row"]


def rule_features(reading: RuleReading, taxonomy: Taxonomy) -> np.ndarray:
    names = rule_feature_names(taxonomy)
    index = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(reading.scores), len(names)), dtype=np.float32)
    for row in range(len(reading.scores)):
        for (facet, label), score in reading.scores[row].items():
            column = index.get(f"rules/{facet}/{label}")
            if column is not None:
                out[row, column] = score
        for kind, weight in reading.cue_kinds[row].items():
            if f"cue/{kind}" in index:
                out[row, index[f"cue/{kind}"]] = weight
        for key, value in reading.agency_named[row].items():
            if f"named/{key}" in index:
                out[row, index[f"named/{key}"]] = value
    return out


def context_features(items: Sequence[TagInput]) -> np.ndarray:
    index = {name: i for i, name in enumerate(context_feature_names())}
    out = np.zeros((len(items), len(index)), dtype=np.float32)
    for row, item in enumerate(items):
        for name in (f"section/{item.section_kind}", f"review/{item.review_type}", f"kind/{item.kind}"):
            if name in index:
                out[row, index[name]] = 1.0
    return out


@dataclass
class PassageFeatures:
    """Everything the learned taggers know about a batch of passages."""

    vectors: np.ndarray  # (passages, dim) embeddings
    similarities: dict[str, np.ndarray]  # facet -> (passages, themes, similarities)
    rules: RuleReading
    matrix: np.ndarray  # the supervised models' input: embedding, similarities, rules, context
    review: np.ndarray  # (passages, dim) the mean embedding of each passage's review

    def __len__(self) -> int:
        return len(self.vectors)

    def subset(self, rows: np.ndarray) -> PassageFeatures:
        return PassageFeatures(
            self.vectors[rows],
            {facet: sims[rows] for facet, sims in self.similarities.items()},
            RuleReading(*([getattr(self.rules, f)[int(r)] for r in rows] for f in RuleReading.__dataclass_fields__)),
            self.matrix[rows],
            self.review[rows],
        )

    def matrix_for(self, facet: str) -> np.ndarray:
        """The input of a facet's models: the review's mean embedding is added for REVIEW_CONTEXT_FACETS."""
        return np.hstack([self.matrix, self.review]) if facet in REVIEW_CONTEXT_FACETS else self.matrix


def review_means(reviews: Sequence[Any], vectors: np.ndarray) -> np.ndarray:
    """Each passage's review context: the mean embedding of the passages given with it from the same review
    (`reviews`, one key per row of `vectors`); a passage of no known review ("") is its own context. Give
    whole reviews: fitting and evaluation do, and the tag pipeline gives every stored passage of a batch's
    reviews (pipelines.tag.tag_batch)."""
    from vkpp_learning.topics.mapping import member_means

    out = np.array(vectors, dtype=np.float32, copy=True)
    keys = np.asarray(reviews)
    for review, mean in member_means(vectors, reviews).items():
        if review != "":
            out[keys == review] = mean
    return out


def passage_features(
    items: Sequence[TagInput],
    taxonomy: Taxonomy,
    vectors: np.ndarray,
    embedding: EmbeddingTagger,
    review_vectors: np.ndarray | None = None,
) -> PassageFeatures:
    similarities = embedding.similarities(vectors)
    reading = read_rules(items, taxonomy)
    blocks = [vectors, *(s.reshape(len(items), -1) for s in similarities.values())]
    blocks += [rule_features(reading, taxonomy), context_features(items)]
    if review_vectors is None:
        review_vectors = review_means([item.review for item in items], vectors)
    review = np.asarray(review_vectors, np.float32)
    return PassageFeatures(vectors, similarities, reading, np.hstack(blocks).astype(np.float32), review)


# ---- the tagger -----------------------------------------------------------------------------------


@registry.register("tagger", NAME, alias="supervised")
class SupervisedTagger:
    """Every facet learned from labelled passages: logistic regressions for the labels with enough positives."""

    name = NAME

    def __init__(
        self,
        taxonomy: Taxonomy | None = None,
        facets: Sequence[str] = FACETS,
        encoder: Encoder | None = None,
        c: float = MODEL_C,
        min_positives: int = MIN_POSITIVES,
    ) -> None:
        self.taxonomy = taxonomy or load_taxonomy()
        self.taxonomy_version = self.taxonomy.version
        self.facets = tuple(facets)
        self.encoder: Encoder = encoder or default_encoder()
        self.embedding = EmbeddingTagger(self.taxonomy, THEME_FACETS, self.encoder)
        self.c = c
        self.min_positives = min_positives
        self.models: dict[str, FacetModel] = {}
        self.thresholds: dict[str, float] = {}
        self.params: dict[str, Any] = {
            "c": c,
            "min_positives": min_positives,
            "review_context": list(REVIEW_CONTEXT_FACETS),
        }
        self.model_version: str | None = None  # set by fit: a hash of the training data

    def features(
        self, items: Sequence[TagInput], vectors: np.ndarray | None = None, review_vectors: np.ndarray | None = None
    ) -> PassageFeatures:
        """The batch's features; `review_vectors` (each passage's review mean embedding) default to the means
        over the passages given (review_means)."""
        vectors = self.encoder([item.text for item in items]) if vectors is None else vectors
        return passage_features(items, self.taxonomy, vectors, self.embedding, review_vectors)

    def labels(self, facet: str) -> list[str]:
        return facet_labels(self.taxonomy, facet)

    def facet_scores(self, features: PassageFeatures, facet: str) -> np.ndarray:
        """(passages, labels) probabilities; NaN for the labels not learned."""
        labels = self.labels(facet)
        scores = np.full((len(features), len(labels)), np.nan)
        learned = self.models.get(facet)
        if learned is not None:
            predicted = learned.model.predict(features.matrix_for(facet))
            for column, label in enumerate(learned.labels):
                if label in labels:
                    scores[:, labels.index(label)] = predicted[:, column]
        return scores

    def tag(self, items: Sequence[TagInput]) -> list[list[TagResult]]:
        return self.tag_features(items, self.features(items))

    def tag_vectors(
        self, items: Sequence[TagInput], vectors: np.ndarray, review_vectors: np.ndarray | None = None
    ) -> list[list[TagResult]]:
        return self.tag_features(items, self.features(items, vectors, review_vectors))

    def tag_features(self, items: Sequence[TagInput], features: PassageFeatures) -> list[list[TagResult]]:
        results: list[list[TagResult]] = [[] for _ in items]
        for facet in self.facets:
            scores = self.facet_scores(features, facet)
            for j, label in enumerate(self.labels(facet)):
                threshold = self.thresholds.get(f"{facet}/{label}")
                if threshold is None:
                    continue
                for i in np.flatnonzero(scores[:, j] >= threshold):
                    evidence = tag_evidence(features, items[int(i)], int(i), facet, label, self.taxonomy)
                    results[i].append(TagResult(facet, label, round(float(scores[i, j]), 4), self.name, evidence))
        return results

    def fit(
        self,
        items: Sequence[TagInput],
        labels: Sequence[PassageLabels],
        groups: Sequence[object] | None = None,
        decided: Decided | None = None,
        calibration: Sequence[bool] | None = None,
    ) -> None:
        groups = training_groups(items, groups)
        calibrate = calibration_mask(len(items), calibration)
        self.fit_features(self.features(items), labels, groups, decided, calibrate)
        self.model_version = fingerprint(
            self.name, items, labels, groups, decided, self.taxonomy_version, self.params, calibrate
        )

    def fit_features(
        self,
        features: PassageFeatures,
        labels: Sequence[PassageLabels],
        groups: Sequence[object] | None = None,
        decided: Decided | None = None,
        calibration: Sequence[bool] | None = None,
        *,
        thresholds: bool = True,
    ) -> None:
        """Fit every label with enough positives; thresholds from out-of-fold scores grouped by review, on
        the `calibration` passages (calibrate.calibration_rows; skipped with thresholds=False, when only the
        scores are wanted)."""
        calibrate = calibration_mask(len(features), calibration)
        folds = group_folds(groups if groups is not None else contiguous_groups(len(features)), INNER_FOLDS)
        self.models, self.thresholds = {}, {}
        for facet in self.facets:
            matrix = label_matrix(labels, facet, self.labels(facet), decided)
            learned = [j for j in range(len(matrix.labels)) if matrix.positives()[j] >= self.min_positives]
            if not learned:
                continue
            inputs = features.matrix_for(facet)
            if thresholds:
                oof = self._out_of_fold(inputs, matrix, learned, folds)
                for column, j in enumerate(learned):
                    rows = matrix.known[:, j]
                    truth = matrix.truth[rows, j]
                    chosen = calibration_rows(calibrate[rows], truth)
                    threshold = choose_threshold(oof[rows, column][chosen], truth[chosen])
                    self.thresholds[f"{facet}/{matrix.labels[j]}"] = threshold
            model = self._fit(inputs, matrix, learned, np.arange(len(features)))
            self.models[facet] = FacetModel([matrix.labels[j] for j in learned], model)

    def _out_of_fold(
        self, inputs: np.ndarray, matrix: LabelMatrix, learned: list[int], folds: list[np.ndarray]
    ) -> np.ndarray:
        def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
            return self._fit(inputs, matrix, learned, train).predict(inputs[test])

        return out_of_fold(fit_predict, len(inputs), folds)

    def _fit(self, inputs: np.ndarray, matrix: LabelMatrix, learned: list[int], rows: np.ndarray) -> LogisticModel:
        """One facet's model on `rows` of its inputs (PassageFeatures.matrix_for)."""
        columns = np.array(learned, dtype=int)
        return fit_logistic(
            inputs[rows], matrix.truth[np.ix_(rows, columns)], self.c, matrix.known[np.ix_(rows, columns)]
        )

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        for facet, learned in self.models.items():
            arrays.update(learned.model.to_arrays(f"supervised/{facet}"))
        labels = {facet: learned.labels for facet, learned in self.models.items()}
        return arrays, {"labels": labels, "thresholds": self.thresholds}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.models = {
            facet: FacetModel(list(labels), LogisticModel.from_arrays(arrays, f"supervised/{facet}"))
            for facet, labels in meta["labels"].items()
        }
        self.thresholds = {k: float(v) for k, v in meta["thresholds"].items()}


@dataclass
class FacetModel:
    """The learned labels of one facet and their shared model (one column per label)."""

    labels: list[str]
    model: LogisticModel


# ---- evidence -------------------------------------------------------------------------------------


def tag_evidence(
    features: PassageFeatures, item: TagInput, row: int, facet: str, label: str, taxonomy: Taxonomy
) -> str:
    """What an analyst checks a learned tag against: the rules' evidence when they saw the label; for a
    theme, else the nearest example of it; for a yes/no facet, the sentence that carries it."""
    found = features.rules.evidence[row].get((facet, label))
    if found:
        return found
    if facet in BINARY_FACETS:
        return key_sentence(item, taxonomy)
    source = LABELS_FROM.get(facet, facet)
    ids = taxonomy.ids(source)
    if label not in ids:
        return key_sentence(item, taxonomy)
    text, similarity = theme_vectors(taxonomy, source).nearest_example(features.vectors[row], ids.index(label))
    return f'nearest example ({similarity:.2f}): "{text}"'


def key_sentence(item: TagInput, taxonomy: Taxonomy) -> str:
    """The passage's sentence with the most judgement in it (a missed-opportunity or other cue), else its
    longest sentence."""
    from vkpp_learning.tagging.reading import read
    from vkpp_learning.tagging.rules import clip_sentence

    reading = read([item.text], taxonomy)[0]
    sentences = list(reading.doc.sents)
    if not sentences:
        return item.text[:300]
    weight = {s.start: 0.0 for s in sentences}
    for cue in reading.cues:
        start = reading.doc[cue.start].sent.start
        weight[start] = weight.get(start, 0.0) + (cue.weight if cue.kind not in ("good_practice", "hindsight") else 0.1)
    best = max(sentences, key=lambda s: (weight.get(s.start, 0.0), len(s.text)))
    return clip_sentence(best)
