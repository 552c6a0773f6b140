"""Tagging speed of the full ensemble (rules, detectors, embeddings, supervised, stacking) from a cold start.

Run: python benchmarks/bench_tagging_full.py [--passages 2000] [--gold corpus_samples/gold] [--batch 256]
            [--runs torch:float32,torch:bfloat16,openvino:bfloat16,openvino:bfloat16:overlap] [--repeat 1]
            [--model-threads N] [--passages-from distinct|copies]
The ensemble is fitted on the gold first (not timed). The passages tagged are --passages different labelled
passages (the gold's, then the written training reviews', as they are: `distinct`, the default since session 6),
or the gold paragraphs repeated, each copy with a numbered ending (`copies`, the figures of sessions 1 to 5, about
4% more tokens to embed and a new word in every passage). No cache can answer for any of them: every embedding is
computed and every passage parsed. Passages are tagged in batches as `vkpp tag` does, once per run: an embedding
runtime and precision (VKPP_EMBEDDING_RUNTIME, VKPP_EMBEDDING_PRECISION), and with `overlap` the next
batch embedded on a second thread while this one is tagged; caches are emptied before each. --repeat
times the runs again in turn, so that each is compared with its neighbours under the same load. The
themes' own vectors are computed before the clock starts (once per process in `vkpp tag`). Prints
wall-clock and CPU figures and the machine's load, never fails.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from vkpp_learning import embeddings, settings
from vkpp_learning.evaluate import WRITTEN_LABELS, load_gold
from vkpp_learning.records import TagInput
from vkpp_learning.tagging import reading
from vkpp_learning.tagging.base import create_tagger
from vkpp_learning.tagging.embedding import theme_vectors

ROOT = settings.project_root()


def copies(gold: Path, count: int) -> list[TagInput]:
    """The gold paragraphs repeated to `count`, each copy with a distinct ending ("... (17)"): the same text twice
    would be answered from a cache. The endings add about 4% to the tokens embedded and a new word per passage
    to the parse; `distinct` has neither."""
    items = [p.tag_input() for p in load_gold(gold)]
    found = []
    for i in range(count):
        item = items[i % len(items)]
        found.append(TagInput(f"{item.text} ({i})", item.review_type, item.section_kind, item.kind))
    return found


def distinct(gold: Path, count: int) -> list[TagInput]:
    """`count` different passages as they are: the gold's, then the written training reviews' (5,256 in all, of
    the same length: 59 words on average), with their review types and sections; copies beyond those."""
    passages = list(load_gold(gold)) + list(load_gold(WRITTEN_LABELS))
    items = list({p.text: p.tag_input() for p in passages}.values())
    return items[:count] if count <= len(items) else items + copies(gold, count - len(items))


PASSAGES = {"distinct": distinct, "copies": copies}  # --passages-from, here and in bench_tagging


def fitted_ensemble(gold: Path):  # type: ignore[no-untyped-def]
    passages = load_gold(gold)
    tagger = create_tagger("ensemble")
    labels = [{facet: sorted(values) for facet, values in p.labels.items()} for p in passages]
    tagger.fit([p.tag_input() for p in passages], labels, [p.doc_id for p in passages])  # type: ignore[attr-defined]
    return tagger


def line(label: str, count: int, seconds: float, cpu: float | None = None) -> str:
    per_cpu = f"  {count / cpu:8.1f}/CPU-s" if cpu else ""
    return f"{label:<50} {count:>6} passages  {seconds:7.2f} s  {count / seconds:8.1f} passages/s{per_cpu}"


def load() -> str:
    return f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores"


def warm_theme_vectors(tagger) -> None:  # type: ignore[no-untyped-def]
    for facet in tagger.taxonomy.facets:
        if tagger.taxonomy.facet(facet):
            theme_vectors(tagger.taxonomy, facet)


def timed_run(tagger, items: list[TagInput], batch: int, run: str, threads: int | None) -> None:  # type: ignore[no-untyped-def]
    """Embed and tag every passage from cold caches, as `run` (runtime:precision[:overlap]) says."""
    runner, precision, *rest = run.split(":")
    os.environ["VKPP_EMBEDDING_RUNTIME"], os.environ["VKPP_EMBEDDING_PRECISION"] = runner, precision
    embeddings.use_threads(threads)
    embeddings.encode(["load the model before the clock starts"])
    reading.forget()
    chunks = [items[start : start + batch] for start in range(0, len(items), batch)]
    print(f"-- {run} ({embeddings.MODEL_NAME}), model threads {threads or 'all'}; {load()}")
    started, started_cpu = time.perf_counter(), time.process_time()
    if rest == ["overlap"]:
        tags = overlapped(tagger, chunks)
    else:
        tags, encode_seconds, encode_cpu = one_after_the_other(tagger, chunks)
        print(line(f"embeddings only ({embeddings.MODEL})", len(items), encode_seconds, encode_cpu))
        rest_seconds, rest_cpu = time.perf_counter() - started - encode_seconds, time.process_time() - started_cpu
        print(line("rules, supervised, stacking (without embeddings)", len(items), rest_seconds, rest_cpu - encode_cpu))
    total, total_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    print(line("full ensemble including embeddings", len(items), total, total_cpu))
    print(f"{tags} tags, {tags / len(items):.1f} per passage; {load()}")


def one_after_the_other(tagger, chunks: list[list[TagInput]]) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    tags, encode_seconds, encode_cpu = 0, 0.0, 0.0
    for chunk in chunks:
        before, before_cpu = time.perf_counter(), time.process_time()
        vectors = embeddings.encode([item.text for item in chunk])  # cold: nothing cached
        encode_seconds += time.perf_counter() - before
        encode_cpu += time.process_time() - before_cpu
        tags += sum(len(found) for found in tagger.tag_vectors(chunk, np.asarray(vectors)))
    return tags, encode_seconds, encode_cpu


def overlapped(tagger, chunks: list[list[TagInput]]) -> int:  # type: ignore[no-untyped-def]
    """The next batch embedded on a second thread while this one is tagged, as `vkpp tag` does
    (embeddings.encode_ahead)."""
    tags = 0
    for chunk, vectors in embeddings.encode_ahead(chunks, lambda chunk: [item.text for item in chunk]):
        matrix = np.vstack([vectors[embeddings.text_hash(item.text)] for item in chunk])
        tags += sum(len(found) for found in tagger.tag_vectors(chunk, matrix))
    return tags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--gold", type=Path, default=ROOT / "corpus_samples" / "gold")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--runs",
        default="torch:bfloat16,openvino:bfloat16",
        help="runtime:precision[:overlap] of each run, separated by commas",
    )
    parser.add_argument(
        "--passages-from",
        choices=sorted(PASSAGES),
        default="distinct",
        help="distinct labelled passages (gold, then the written reviews), or the gold repeated with numbered endings",
    )
    parser.add_argument("--repeat", type=int, default=1, help="time the runs this many times, in turn")
    parser.add_argument("--model-threads", type=int, default=None, help="threads of the embedding model")
    args = parser.parse_args()

    started = time.perf_counter()
    tagger = fitted_ensemble(args.gold)
    warm_theme_vectors(tagger)
    print(f"{'fit on the gold, theme vectors (not in the figures)':<50} {time.perf_counter() - started:24.2f} s")
    items = PASSAGES[args.passages_from](args.gold, args.passages)
    words = sum(len(i.text.split()) for i in items) / len(items)
    print(f"{len(items)} passages, {words:.0f} words on average, batches of {args.batch}")
    print(f"this CPU: VKPP_EMBEDDING_PRECISION=auto means {embeddings.resolve_precision('auto', embeddings.runtime())}")
    for _ in range(args.repeat):
        for run in args.runs.split(","):
            timed_run(tagger, items, args.batch, run.strip(), args.model_threads)


if __name__ == "__main__":
    main()
