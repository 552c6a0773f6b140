"""Embedding speed and fidelity of each runtime and precision, on real review passages.

Run: python benchmarks/bench_embeddings.py [--runs torch:bfloat16,openvino:bfloat16,openvino:float32,openvino:int8]
                                           [--repeat 2] [--threads N] [--limit N]
A run is runtime:precision, as VKPP_EMBEDDING_RUNTIME and VKPP_EMBEDDING_PRECISION take them; openvino:int8's
model is made (once, about 15 s; then read from the user's cache folder) before the clock starts.
Texts: the `text` of every passage in corpus_samples/gold and corpus_samples/training. The reference is
torch's float32 vectors (VKPP_EMBEDDING_RUNTIME=torch, VKPP_EMBEDDING_PRECISION=float32); each run then
embeds the same texts, the runs taking turns --repeat times so that neighbours share the machine's load,
and prints wall-clock and CPU figures (CPU-seconds of the whole process, every thread), the load average,
and the cosine of each vector to its reference (mean and lowest). Never fails on a time.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from vkpp_learning import embeddings, settings

ROOT = settings.project_root()


def passages(limit: int | None) -> list[str]:
    texts = []
    for folder in ("gold", "training"):
        for path in sorted((ROOT / "corpus_samples" / folder).glob("*.jsonl")):
            lines = path.read_text(encoding="utf-8").splitlines()
            texts += [json.loads(line)["text"] for line in lines if line.strip()]
    return texts[:limit]


def use(run: str, threads: int | None) -> None:
    """Load the model for `run` (runtime:precision) before the clock starts, with `threads` threads."""
    os.environ["VKPP_EMBEDDING_RUNTIME"], os.environ["VKPP_EMBEDDING_PRECISION"] = run.split(":")[:2]
    embeddings.use_threads(threads)
    embeddings.encode(["load the model before the clock starts"])


def timed(run: str, texts: list[str], threads: int | None) -> tuple[np.ndarray, str]:
    use(run, threads)
    load = os.getloadavg()[0]
    started, started_cpu = time.perf_counter(), time.process_time()
    vectors = embeddings.encode(texts)
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    figures = (
        f"{run:<22} {len(texts) / seconds:7.1f} passages/s  {1000 * cpu / len(texts):6.2f} ms CPU/passage  "
        f"{len(texts) / cpu:7.1f}/CPU-s  load {load:.1f}-{os.getloadavg()[0]:.1f}"
    )
    return vectors, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="torch:bfloat16,openvino:bfloat16,openvino:float32")
    parser.add_argument("--repeat", type=int, default=2, help="time the runs this many times, in turn")
    parser.add_argument("--threads", type=int, default=None, help="threads of the model (default: every core)")
    parser.add_argument("--limit", type=int, default=None, help="embed only the first N passages")
    args = parser.parse_args()

    texts = passages(args.limit)
    print(f"{len(texts)} passages; {os.cpu_count()} cores; model threads {args.threads or 'all'}")
    reference, figures = timed("torch:float32", texts, args.threads)
    print(f"{figures}  (the reference)")
    for _ in range(args.repeat):
        for run in args.runs.split(","):
            vectors, figures = timed(run.strip(), texts, args.threads)
            cosines = (vectors * reference).sum(axis=1)
            print(f"{figures}  cosine mean {cosines.mean():.6f} lowest {cosines.min():.6f}")


if __name__ == "__main__":
    main()
