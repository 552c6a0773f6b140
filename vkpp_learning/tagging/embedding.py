"""Embedding tagger: how close a passage is (all-MiniLM-L6-v2) to each theme's definition, examples and
phrases, turned into a probability per theme by a small model and threshold fitted on labelled passages.

The evidence of each tag is the theme's example sentence nearest to the passage.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vkpp_learning import registry
from vkpp_learning.records import TagInput, TagResult
from vkpp_learning.tagging.base import PassageLabels
from vkpp_learning.tagging.calibrate import (
    INNER_FOLDS,
    MIN_POSITIVES,
    Decided,
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
from vkpp_learning.taxonomy import Taxonomy, load_taxonomy

NAME = "tagger.embedding.v1"
THEME_FACETS = ("practice", "vulnerability")
SIMILARITIES = ("definition", "example_max", "example_mean", "phrase_max", "phrase_top3", "relative")
# Before any labelled passage is seen: a theme is tagged when an example or phrase is this close.
UNCALIBRATED_THRESHOLD = 0.6
CALIBRATION_C = 1.0
ENCODER_MEMO = 50_000

Encoder = Callable[[Sequence[str]], np.ndarray]


# ---- passage vectors ------------------------------------------------------------------------------


class MemoEncoder:
    """Embeddings computed once per text and vectors' model key (runtime and precision) in this process (the
    pipeline uses the database cache instead)."""

    def __init__(self, size: int = ENCODER_MEMO) -> None:
        self.size = size
        self._memo: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        from vkpp_learning.embeddings import DIM, cache_key, encode

        model = cache_key()
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if (model, t) not in self._memo))
        if missing:
            vectors = encode(missing)
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    self._memo[(model, text)] = vector
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        with self._lock:
            return np.vstack([self._memo[(model, t)] for t in texts])


_DEFAULT_ENCODER = MemoEncoder()


def default_encoder() -> MemoEncoder:
    return _DEFAULT_ENCODER


# ---- themes as vectors ----------------------------------------------------------------------------


@dataclass
class ThemeVectors:
    """One facet's themes embedded: definitions, example sentences and phrases."""

    facet: str
    ids: list[str]
    definitions: np.ndarray  # (themes, dim)
    examples: list[np.ndarray]  # per theme (examples, dim)
    example_texts: list[list[str]]
    phrases: list[np.ndarray]  # per theme (phrases, dim)

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        """(passages, themes, len(SIMILARITIES)) cosine similarities of passages to each theme."""
        out = np.zeros((len(vectors), len(self.ids), len(SIMILARITIES)), dtype=np.float32)
        out[:, :, 0] = vectors @ self.definitions.T
        for t, (examples, phrases) in enumerate(zip(self.examples, self.phrases, strict=True)):
            to_examples = vectors @ examples.T
            to_phrases = vectors @ phrases.T
            out[:, t, 1] = to_examples.max(axis=1)
            out[:, t, 2] = to_examples.mean(axis=1)
            out[:, t, 3] = to_phrases.max(axis=1)
            out[:, t, 4] = np.sort(to_phrases, axis=1)[:, -3:].mean(axis=1)
        # How much closer the passage is to this theme than to the facet's themes on average.
        out[:, :, 5] = out[:, :, 1] - out[:, :, 1].mean(axis=1, keepdims=True)
        return out

    def nearest_example(self, vector: np.ndarray, theme: int) -> tuple[str, float]:
        similarity = self.examples[theme] @ vector
        best = int(np.argmax(similarity))
        return self.example_texts[theme][best], float(similarity[best])


_THEME_VECTORS: dict[tuple[str, str], ThemeVectors] = {}
_THEME_LOCK = threading.Lock()


def theme_vectors(taxonomy: Taxonomy, facet: str) -> ThemeVectors:
    """The facet's themes embedded, once per taxonomy version, vectors' model key and process."""
    from vkpp_learning.embeddings import cache_key

    key = (taxonomy.version, facet, cache_key())
    with _THEME_LOCK:
        if key not in _THEME_VECTORS:
            _THEME_VECTORS[key] = _embed_themes(taxonomy, facet)
        return _THEME_VECTORS[key]


def _embed_themes(taxonomy: Taxonomy, facet: str) -> ThemeVectors:
    from vkpp_learning.embeddings import encode

    themes = taxonomy.facet(facet)
    examples = [list(t.examples) or [t.definition] for t in themes]
    phrases = [list(t.phrases) or [t.name] for t in themes]
    texts = [t.definition for t in themes] + [e for ex in examples for e in ex] + [p for ph in phrases for p in ph]
    vectors = encode(texts)
    definitions, rest = vectors[: len(themes)], vectors[len(themes) :]
    example_vectors, rest = _split(rest, [len(e) for e in examples])
    phrase_vectors, _ = _split(rest, [len(p) for p in phrases])
    return ThemeVectors(facet, [t.id for t in themes], definitions, example_vectors, examples, phrase_vectors)


def _split(vectors: np.ndarray, sizes: list[int]) -> tuple[list[np.ndarray], np.ndarray]:
    parts, start = [], 0
    for size in sizes:
        parts.append(vectors[start : start + size])
        start += size
    return parts, vectors[start:]


# ---- the tagger -----------------------------------------------------------------------------------


@dataclass
class FacetScores:
    """Probabilities of one facet's labels for a batch of passages, and the similarities behind them."""

    facet: str
    labels: list[str]
    scores: np.ndarray  # (passages, labels)
    similarities: np.ndarray  # (passages, labels, len(SIMILARITIES))


@registry.register("tagger", NAME, alias="embedding")
class EmbeddingTagger:
    """Practice themes and vulnerabilities by similarity to the taxonomy, calibrated per theme."""

    name = NAME

    def __init__(
        self, taxonomy: Taxonomy | None = None, facets: Sequence[str] = THEME_FACETS, encoder: Encoder | None = None
    ) -> None:
        self.taxonomy = taxonomy or load_taxonomy()
        self.taxonomy_version = self.taxonomy.version
        self.facets = tuple(facets)
        self.encoder: Encoder = encoder or default_encoder()
        self.models: dict[str, LogisticModel] = {}  # "facet/label" -> calibration model
        self.thresholds: dict[str, float] = {"uncalibrated": UNCALIBRATED_THRESHOLD}
        self.params: dict[str, Any] = {"similarities": list(SIMILARITIES), "c": CALIBRATION_C}
        self.model_version: str | None = None  # set by fit: a hash of the training data

    # -- scoring

    def similarities(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        return {facet: theme_vectors(self.taxonomy, facet).similarities(vectors) for facet in self.facets}

    def facet_scores(self, vectors: np.ndarray, similarities: dict[str, np.ndarray] | None = None) -> list[FacetScores]:
        similarities = self.similarities(vectors) if similarities is None else similarities
        found = []
        for facet, sims in similarities.items():
            labels = theme_vectors(self.taxonomy, facet).ids
            scores = np.zeros((len(sims), len(labels)))
            for j, label in enumerate(labels):
                model = self.models.get(f"{facet}/{label}")
                scores[:, j] = model.predict(sims[:, j, :])[:, 0] if model else sims[:, j, [1, 3]].max(axis=1)
            found.append(FacetScores(facet, labels, scores, sims))
        return found

    def learned(self, facet: str, label: str) -> bool:
        return f"{facet}/{label}" in self.models

    def threshold(self, facet: str, label: str) -> float:
        return self.thresholds.get(f"{facet}/{label}", UNCALIBRATED_THRESHOLD)

    def tag(self, items: Sequence[TagInput]) -> list[list[TagResult]]:
        return self.tag_vectors(items, self.encoder([item.text for item in items]))

    def tag_vectors(
        self, items: Sequence[TagInput], vectors: np.ndarray, review_vectors: np.ndarray | None = None
    ) -> list[list[TagResult]]:
        """Tags from vectors already computed; `review_vectors` (review context) are not read: the theme
        similarities are the passage's own."""
        results: list[list[TagResult]] = [[] for _ in items]
        for found in self.facet_scores(vectors):
            limits = np.array([self.threshold(found.facet, label) for label in found.labels])
            for i, j in zip(*np.nonzero(found.scores >= limits), strict=True):
                evidence = self.evidence(found.facet, j, vectors[i])
                score = round(float(found.scores[i, j]), 4)
                results[i].append(TagResult(found.facet, found.labels[j], score, self.name, evidence))
        return results

    def evidence(self, facet: str, theme: int, vector: np.ndarray) -> str:
        text, similarity = theme_vectors(self.taxonomy, facet).nearest_example(vector, theme)
        return f'nearest example ({similarity:.2f}): "{text}"'

    # -- fitting

    def fit(
        self,
        items: Sequence[TagInput],
        labels: Sequence[PassageLabels],
        groups: Sequence[object] | None = None,
        decided: Decided | None = None,
        calibration: Sequence[bool] | None = None,
    ) -> None:
        """Fit each theme's calibration and threshold (thresholds on out-of-fold scores by document)."""
        vectors = self.encoder([item.text for item in items])
        groups = training_groups(items, groups)
        calibrate = calibration_mask(len(items), calibration)
        self.fit_similarities(self.similarities(vectors), labels, groups, decided, calibrate)
        self.model_version = fingerprint(
            self.name, items, labels, groups, decided, self.taxonomy_version, self.params, calibrate
        )

    def fit_similarities(
        self,
        similarities: dict[str, np.ndarray],
        labels: Sequence[PassageLabels],
        groups: Sequence[object] | None = None,
        decided: Decided | None = None,
        calibration: Sequence[bool] | None = None,
        *,
        thresholds: bool = True,
    ) -> None:
        """Each theme's calibration model; its threshold (unless thresholds=False) from out-of-fold scores
        grouped by review, chosen on the `calibration` passages (calibrate.calibration_rows)."""
        count = len(labels)
        calibrate = calibration_mask(count, calibration)
        folds = group_folds(groups if groups is not None else contiguous_groups(count), INNER_FOLDS)
        self.models, self.thresholds = {}, {"uncalibrated": UNCALIBRATED_THRESHOLD}
        for facet, sims in similarities.items():
            matrix = label_matrix(labels, facet, facet_labels(self.taxonomy, facet), decided)
            for j, label in enumerate(matrix.labels):
                rows = np.flatnonzero(matrix.known[:, j])
                truth = matrix.truth[rows, j]
                if truth.sum() < MIN_POSITIVES:
                    continue
                features = sims[rows, j, :]
                key = f"{facet}/{label}"
                if thresholds:
                    chosen = calibration_rows(calibrate[rows], truth)
                    self.thresholds[key] = calibrated_threshold(features, truth, folds_within(folds, rows), chosen)
                self.models[key] = fit_logistic(features, truth, CALIBRATION_C)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        for key, model in self.models.items():
            arrays.update(model.to_arrays(f"embedding/{key}"))
        return arrays, {"labels": sorted(self.models), "thresholds": self.thresholds}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.models = {key: LogisticModel.from_arrays(arrays, f"embedding/{key}") for key in meta["labels"]}
        self.thresholds = {k: float(v) for k, v in meta["thresholds"].items()}


def calibrated_threshold(features: np.ndarray, truth: np.ndarray, folds: list[np.ndarray], chosen: np.ndarray) -> float:
    """The best-F1 threshold of out-of-fold calibrated scores, over the `chosen` rows (calibration_rows)."""

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        return fit_logistic(features[train], truth[train], CALIBRATION_C).predict(features[test])

    scores = out_of_fold(fit_predict, len(truth), folds)[:, 0]
    return choose_threshold(scores[chosen], truth[chosen])


def folds_within(folds: list[np.ndarray], rows: np.ndarray) -> list[np.ndarray]:
    """The folds restated as positions within `rows` (the passages whose labels are known)."""
    position = {int(r): i for i, r in enumerate(rows)}
    restated = [np.array([position[int(i)] for i in fold if int(i) in position], dtype=int) for fold in folds]
    return [fold for fold in restated if len(fold)]
