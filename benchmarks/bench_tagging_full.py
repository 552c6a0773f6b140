"""Tagging speed of the full ensemble (rules, detectors, embeddings, supervised, stacking) from a cold start.

Run: python benchmarks/bench_tagging_full.py [--passages 2000] [--gold corpus_samples/gold] [--batch 256]
The ensemble is fitted on the gold first (not timed). The gold paragraphs are then repeated to about
--passages, each copy with a distinct ending so no cache can answer for it: every embedding is computed
and every passage parsed. Passages are tagged in batches as `vkpp tag` does. Prints, never fails.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vkpp_learning import embeddings, settings
from vkpp_learning.evaluate import load_gold
from vkpp_learning.records import TagInput
from vkpp_learning.tagging import nlp, reading
from vkpp_learning.tagging.base import create_tagger

ROOT = settings.project_root()


def copies(gold: Path, count: int) -> list[TagInput]:
    items = [p.tag_input() for p in load_gold(gold)]
    found = []
    for i in range(count):
        item = items[i % len(items)]
        # A distinct ending per copy: the same text twice would be answered from a cache.
        found.append(TagInput(f"{item.text} ({i})", item.review_type, item.section_kind, item.kind))
    return found


def fitted_ensemble(gold: Path):  # type: ignore[no-untyped-def]
    passages = load_gold(gold)
    tagger = create_tagger("ensemble")
    labels = [{facet: sorted(values) for facet, values in p.labels.items()} for p in passages]
    tagger.fit([p.tag_input() for p in passages], labels, [p.doc_id for p in passages])  # type: ignore[attr-defined]
    return tagger


def line(label: str, count: int, seconds: float) -> str:
    return f"{label:<44} {count:>6} passages  {seconds:7.2f} s  {count / seconds:8.1f} passages/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--gold", type=Path, default=ROOT / "corpus_samples" / "gold")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    started = time.perf_counter()
    tagger = fitted_ensemble(args.gold)
    print(f"{'fit on the gold (not in the figure below)':<44} {time.perf_counter() - started:24.2f} s")
    items = copies(args.gold, args.passages)
    words = sum(len(i.text.split()) for i in items) / len(items)
    print(f"{len(items)} passages, {words:.0f} words on average, batches of {args.batch}")

    nlp._cache.clear()
    reading._READINGS.clear()
    encode_seconds = 0.0
    tags = 0
    started = time.perf_counter()
    for start in range(0, len(items), args.batch):
        batch = items[start : start + args.batch]
        before = time.perf_counter()
        vectors = embeddings.encode([item.text for item in batch])  # cold: nothing cached
        encode_seconds += time.perf_counter() - before
        tags += sum(len(found) for found in tagger.tag_vectors(batch, np.asarray(vectors)))
    total = time.perf_counter() - started
    print(line("embeddings only (all-MiniLM-L6-v2)", len(items), encode_seconds))
    print(line("rules, supervised, stacking (without embeddings)", len(items), total - encode_seconds))
    print(line("full ensemble including embeddings", len(items), total))
    print(f"{tags} tags, {tags / len(items):.1f} per passage")


if __name__ == "__main__":
    main()
