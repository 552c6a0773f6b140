"""Extraction fidelity: how close clean extracted text is to golden text, character by character."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vkpp_learning.extract.clean import collapse_spaces
from vkpp_learning.records import ExtractedDocument


@dataclass
class Fidelity:
    similarity: float  # 0..1, length-weighted over pages
    per_page: list[float]

    @property
    def worst_page(self) -> int:
        return min(range(len(self.per_page)), key=self.per_page.__getitem__) + 1 if self.per_page else 0


def load_golden(path: str | Path) -> list[str]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [p["text"] for p in sorted(data["pages"], key=lambda p: p["page"])]


def similarity(a: str, b: str) -> float:
    """Normalised Levenshtein similarity of two texts with whitespace collapsed."""
    from rapidfuzz.distance import Levenshtein

    return float(Levenshtein.normalized_similarity(collapse_spaces(a), collapse_spaces(b)))


def fidelity(doc: ExtractedDocument, golden_pages: list[str]) -> Fidelity:
    """Compare page by page; a missing or extra page counts as entirely wrong."""
    n = max(len(golden_pages), doc.page_count)
    got = [p.text for p in doc.pages] + [""] * (n - doc.page_count)
    want = golden_pages + [""] * (n - len(golden_pages))
    scores = [similarity(g, w) if (g or w) else 1.0 for g, w in zip(got, want, strict=True)]
    weights = [max(len(w), len(g), 1) for g, w in zip(got, want, strict=True)]
    total = sum(s * w for s, w in zip(scores, weights, strict=True)) / sum(weights)
    return Fidelity(total, scores)
