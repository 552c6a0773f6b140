"""Tagging speed: passages per second of the rules tagger and detectors on the gold paragraphs.

Run: python benchmarks/bench_tagging.py [--passages 2000] [--gold corpus_samples/gold] [--passages-from distinct]
The passages are those of bench_tagging_full: --passages different labelled passages as they are (the gold's, then
the written training reviews'; `distinct`, the default since session 7), or the gold paragraphs repeated, each copy
with a numbered ending so that no cache can answer for it (`copies`, the figures of sessions 1 to 6). Every figure
is from a cold start of the caches. Prints, never fails.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench_tagging_full import PASSAGES  # the script's folder is on the path

from vkpp_learning import settings
from vkpp_learning.tagging import nlp, reading
from vkpp_learning.tagging.base import create_tagger
from vkpp_learning.tagging.detectors import DEFAULT_TAGGERS

ROOT = settings.project_root()
GOLD_CANDIDATES = (ROOT / "corpus_samples" / "gold", ROOT / "tests" / "data" / "gold_small.jsonl")


def clear_caches() -> None:
    reading.forget()


def timed(label: str, run, count: int) -> None:  # type: ignore[no-untyped-def]
    """Wall-clock rate, and the rate per CPU-second of this process (steadier on a shared machine)."""
    clear_caches()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<40} {count:>6} passages {wall:7.2f} s wall {count / wall:7.1f}/s   {count / cpu:7.1f}/CPU-s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--gold", type=Path, default=next((p for p in GOLD_CANDIDATES if p.exists()), None))
    parser.add_argument("--passages-from", choices=sorted(PASSAGES), default="distinct")
    args = parser.parse_args()
    items = PASSAGES[args.passages_from](args.gold, args.passages)
    words = sum(len(i.text.split()) for i in items) / len(items)
    print(f"gold: {args.gold} ; {len(items)} passages, {words:.0f} words on average")

    start = time.perf_counter()
    tagger = create_tagger(DEFAULT_TAGGERS)
    tagger.tag(items[:1])  # loads spaCy and builds the phrase and cue matchers
    print(f"{'start-up (model, matchers)':<40} {time.perf_counter() - start:21.2f} s")
    print(f"machine load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")

    texts = [i.text for i in items]
    timed("spaCy pipeline only (nlp.parse)", lambda: nlp.parse(texts), len(items))
    timed("rules tagger (tagger.rules.v1)", lambda: create_tagger("rules").tag(items), len(items))
    timed(f"all {len(DEFAULT_TAGGERS)} rule taggers and detectors", lambda: tagger.tag(items), len(items))


if __name__ == "__main__":
    main()
