"""The labelled passages nearest a passage, and how they were labelled: a vote the ensemble stacks.

A logistic model over the embedding draws one boundary per label across the whole space; review prose
also has local regularities (the way chronology entries, panel findings or recommendations about one
theme are written) that a nearest-neighbour vote follows better. Each label's score is the similarity-
weighted share of the K nearest labelled passages that carry it, counting only those of the K whose truth
for that label is known (an analyst's passage knows only the labels an analyst decided).

Measured before adoption (a prototype, 5 folds by review on the sample gold, trained on the other folds
and corpus_samples/training; mean average precision per facet): logistic regression on the embedding
alone 0.521 practice / 0.492 vulnerabilities / 0.543 agencies, the vote alone 0.453 / 0.461 / 0.542,
the two ranks averaged 0.542 / 0.536 / 0.589. The ensemble's own figures are in docs/tagging.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K = 20  # neighbours that vote
TAU = 0.05  # softmax temperature over cosine similarity: the nearest count most, not alone
PARAMS = {"k": K, "tau": TAU}


@dataclass
class LabelledVectors:
    """Unit vectors of labelled passages with, per facet, their (passages, labels) truth and known masks."""

    vectors: np.ndarray
    truth: dict[str, np.ndarray]
    known: dict[str, np.ndarray]

    def subset(self, rows: np.ndarray) -> LabelledVectors:
        return LabelledVectors(
            self.vectors[rows],
            {f: t[rows] for f, t in self.truth.items()},
            {f: k[rows] for f, k in self.known.items()},
        )

    def votes(self, vectors: np.ndarray, facet: str) -> np.ndarray:
        """(passages, labels) vote of each passage's K nearest labelled passages, in [0, 1]. A label no
        neighbour knows gets the label's base rate among all labelled passages."""
        truth, known = self.truth[facet].astype(np.float32), self.known[facet].astype(np.float32)
        if not len(vectors) or not len(self.vectors):
            return np.zeros((len(vectors), truth.shape[1]), dtype=np.float32)
        similarity = np.asarray(vectors, dtype=np.float32) @ self.vectors.T
        k = min(K, similarity.shape[1])
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        closeness = np.take_along_axis(similarity, nearest, axis=1)
        weights = np.exp((closeness - closeness.max(axis=1, keepdims=True)) / TAU)
        weight_known = np.einsum("nk,nkl->nl", weights, known[nearest])
        weight_true = np.einsum("nk,nkl->nl", weights, truth[nearest] * known[nearest])
        base_rate = (truth * known).sum(axis=0) / np.maximum(known.sum(axis=0), 1.0)
        return np.where(weight_known > 0, weight_true / np.maximum(weight_known, 1e-12), base_rate).astype(np.float32)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        arrays = {f"{prefix}/vectors": np.ascontiguousarray(self.vectors, dtype=np.float32)}
        for facet in self.truth:
            arrays[f"{prefix}/{facet}/truth"] = self.truth[facet].astype(np.uint8)
            arrays[f"{prefix}/{facet}/known"] = self.known[facet].astype(np.uint8)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str, facets: list[str]) -> LabelledVectors:
        return cls(
            arrays[f"{prefix}/vectors"],
            {f: arrays[f"{prefix}/{f}/truth"].astype(bool) for f in facets},
            {f: arrays[f"{prefix}/{f}/known"].astype(bool) for f in facets},
        )
