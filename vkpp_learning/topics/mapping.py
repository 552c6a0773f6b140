"""The geometry around a topic fit, in plain numpy: review centering, centroids, the nearest taxonomy theme,
the outlier-reduction threshold, representative passages and readable labels.

Nothing here imports BERTopic, so every rule can be tested (and read) on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# A review with fewer passages than this in the corpus is centered on the corpus mean instead of its own:
# the mean of two or three passages is mostly those passages, and centering would erase them.
MIN_REVIEW_PASSAGES = 5


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Unit-length rows (cosine similarity becomes a dot product); all-zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def review_means(embeddings: np.ndarray, review_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """The mean embedding of each review's passages, for reviews with at least MIN_REVIEW_PASSAGES of them."""
    ids = np.asarray(review_ids)
    means: dict[int, np.ndarray] = {}
    for review_id in np.unique(ids):
        members = ids == review_id
        if members.sum() >= MIN_REVIEW_PASSAGES:
            means[int(review_id)] = embeddings[members].mean(axis=0)
    return means


def center_by_review(
    embeddings: np.ndarray,
    review_ids: Sequence[int],
    strength: float,
    corpus_mean: np.ndarray,
    means: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """Subtract `strength` times each passage's review mean (the corpus mean for short reviews), then renormalise.

    Passages of one review share names, places and the case's story, so raw embeddings cluster by review.
    Taking the review's own mean out leaves what a passage says beyond its case, which is what recurs
    across reviews. strength 0 leaves the embeddings as they are.
    """
    if strength == 0:
        return normalize_rows(embeddings)
    means = review_means(embeddings, review_ids) if means is None else means
    offsets = np.vstack([means.get(int(r), corpus_mean) for r in review_ids]) if len(review_ids) else embeddings
    return normalize_rows(embeddings - strength * offsets)


def member_means(vectors: np.ndarray, labels: Sequence[Any]) -> dict[Any, np.ndarray]:
    """The mean vector of each label's members (not normalised); labels are ints (topics) or strings."""
    labels_array = np.asarray(labels)
    return {label.item(): vectors[labels_array == label].mean(axis=0) for label in np.unique(labels_array)}


def centroids(vectors: np.ndarray, labels: Sequence[int]) -> dict[int, np.ndarray]:
    """The unit-length mean vector of each label's members."""
    return {label: normalize_rows(mean) for label, mean in member_means(vectors, labels).items()}


def theme_space(vectors: np.ndarray, corpus_mean: np.ndarray) -> np.ndarray:
    """Where topics meet themes: the corpus's mean direction taken out, then unit length.

    Every passage of every review shares a "safeguarding review" direction; with it left in, any topic
    is 0.5 or more similar to any theme and the similarities barely separate. Without it, a topic made
    of review-process passages scores near what random sets of passages score (docs/topics.md).
    """
    return normalize_rows(np.asarray(vectors, dtype=np.float32) - corpus_mean)


def centroid_matrix(vectors: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Centroids stacked in label order (-1 first when present): the layout of BERTopic's topic_embeddings_."""
    by_label = centroids(vectors, labels)
    return np.vstack([by_label[label] for label in sorted(by_label)])


@dataclass(frozen=True)
class ThemeMatch:
    """A taxonomy theme near a topic, with the cosine similarity of the two."""

    theme_id: str
    facet: str
    similarity: float

    def to_json(self) -> dict[str, object]:
        return {"id": self.theme_id, "facet": self.facet, "similarity": round(self.similarity, 4)}


def nearest_themes(
    topic_vector: np.ndarray, theme_matrix: np.ndarray, theme_keys: Sequence[tuple[str, str]], k: int = 3
) -> list[ThemeMatch]:
    """The `k` themes most similar to a topic, best first; `theme_keys` are (facet, id) per matrix row."""
    if len(theme_keys) == 0:
        return []
    similarities = theme_matrix @ normalize_rows(topic_vector)
    order = np.argsort(-similarities, kind="stable")[:k]
    return [ThemeMatch(theme_keys[i][1], theme_keys[i][0], float(similarities[i])) for i in order]


def outlier_threshold(best_similarities: np.ndarray, total: int, target_share: float) -> float | None:
    """The least similarity an outlier needs to join its nearest topic so that at most `target_share` of
    `total` passages stay outliers; the most similar outliers move first. None when nothing needs to move.
    """
    keep = int(np.floor(target_share * total))
    move = len(best_similarities) - keep
    if move <= 0:
        return None
    ranked = np.sort(np.asarray(best_similarities, dtype=np.float64))[::-1]
    return float(ranked[move - 1])


def representatives(
    member_ids: Sequence[int], vectors: np.ndarray, centroid: np.ndarray, groups: Sequence[int], k: int = 5
) -> list[int]:
    """Up to `k` members nearest the centroid, taking one per group (review) before a second from any,
    so the passages shown for a topic show it recurring across reviews when it does."""
    similarities = vectors @ centroid
    order = np.argsort(-similarities, kind="stable")
    chosen: list[int] = []
    seen: set[int] = set()
    for index in order:
        if groups[index] not in seen:
            chosen.append(int(index))
            seen.add(groups[index])
    chosen += [int(index) for index in order if int(index) not in chosen]
    return [member_ids[i] for i in chosen[:k]]


def readable_label(keywords: Sequence[str], terms: int = 3) -> str:
    """A short label from the top keywords, best first: a word already inside a chosen phrase adds nothing
    and is skipped; a phrase that contains a chosen word takes that word's place ("risk" -> "risk assessment")."""
    chosen: list[str] = []
    for keyword in keywords:
        words = set(keyword.split())
        if any(words <= set(c.split()) for c in chosen):
            continue
        widened = [i for i, c in enumerate(chosen) if set(c.split()) < words]
        if widened:
            chosen[widened[0]] = keyword
            chosen = [c for i, c in enumerate(chosen) if i not in widened[1:]]
        elif len(chosen) < terms:
            chosen.append(keyword)
    label = ", ".join(chosen)
    return label[:1].upper() + label[1:] if label else "(no keywords)"
