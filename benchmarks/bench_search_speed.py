"""Search latency at scale: fills SQLite databases with 100k and 1M synthetic passages (perturbed sample
paragraphs, with perturbed embeddings and tags) and prints p50 / p95 per mode, with and without filters.

    python benchmarks/bench_search_speed.py                       # 100k and 1M in a temporary folder
    python benchmarks/bench_search_speed.py --sizes 100000 --keep /tmp/bench   # keep the databases

Latency is the whole facade call: parsing, the candidate query with filters, the query embedding (the real
model, its cache cleared before every search), fusion, and loading the ten cited, highlighted results. The
per-process caches (vectors, passage lengths, filter catalog) are loaded first, as a server does at start,
and that time is printed apart. The machine's load average is printed before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus_samples"
PASSAGES_PER_REVIEW = 500
TYPES = ("CSPR", "SAR", "DHR", "MAPPA")
NOISE = 0.02  # per-dimension noise on a sample vector: about 0.93 cosine to the original
FILTERED = {"type": ["DHR", "SAR"], "year_from": 2018, "year_to": 2023, "theme": ["risk_assessment"]}
CHUNK = 20_000


def gold_paragraphs() -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted((CORPUS / "gold").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def base_vectors(texts: list[str], cache_dir: Path) -> np.ndarray:
    """The real model's vectors of the sample paragraphs, cached on disk between runs."""
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    cached = cache_dir / f"bench_vectors_{key}.npy"
    if cached.exists():
        return np.load(cached)
    from vkpp_learning.embeddings import encode

    vectors = encode(texts)
    np.save(cached, vectors)
    return vectors


def perturb(text: str, vocabulary: list[str], rng: random.Random) -> str:
    """Drop about a tenth of the words and swap about one in twenty for a word from elsewhere in the corpus."""
    words = [w for w in text.split() if rng.random() > 0.1] or text.split()
    return " ".join(rng.choice(vocabulary) if rng.random() < 0.05 else w for w in words)


def review_rows(count: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    now = datetime.now(UTC).isoformat()
    for number in range(1, count + 1):
        review_type = TYPES[number % len(TYPES)]
        yield (
            number, hashlib.sha256(f"review {number}".encode()).hexdigest(), f"synthetic_{number}.pdf",
            f"/synthetic/{number}.pdf", 1000, review_type, f"Synthetic {review_type} review {number}", "subject",
            2014 + rng.randrange(12), "area", "commissioner", False, 40, "ok", "[]", "{}", "{}", "", "synthetic",
            "bench", now,
        )  # fmt: skip


REVIEW_SQL = (
    "INSERT INTO reviews (id, sha256, filename, source_path, file_size, review_type, title, subject, year, area, "
    "commissioner, executive_summary, page_count, status, warnings, metadata_sources, unknown_reasons, full_text, "
    "extraction_backend, pipeline_version, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "?, ?, ?)"
)
PASSAGE_SQL = (
    "INSERT INTO passages (id, review_id, ordinal, kind, section, section_kind, paragraph, part, page_start, "
    "page_end, char_start, char_end, text, text_hash) VALUES (?, ?, ?, 'paragraph', ?, ?, ?, 0, ?, ?, 0, ?, ?, ?)"
)
EMBEDDING_SQL = "INSERT OR IGNORE INTO embeddings (model, text_hash, dim, vector) VALUES (?, ?, ?, ?)"
TAG_SQL = "INSERT INTO tags (passage_id, run_id, facet, label, score, evidence) VALUES (?, 1, ?, ?, 0.9, '')"


def fill(url: str, size: int, gold: list[dict[str, Any]], vectors: np.ndarray, seed: int = 7) -> None:
    """Create the schema, then write `size` passages with embeddings and current tags through the driver."""
    from vkpp_learning.db import open_database

    open_database(url).dispose()
    rng, noise = random.Random(seed), np.random.default_rng(seed)
    vocabulary = [w for row in gold[:200] for w in row["text"].split()]
    import sqlite3

    connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    connection.executemany(REVIEW_SQL, review_rows(max(1, size // PASSAGES_PER_REVIEW), rng))
    connection.execute(
        "INSERT INTO tag_runs (id, method, taxonomy_version, params, thresholds, created_at, is_current) "
        "VALUES (1, 'bench.gold.v1', 'bench', '{}', '{}', ?, 1)",
        (datetime.now(UTC).isoformat(),),
    )
    for start in range(0, size, CHUNK):
        write_chunk(connection, range(start + 1, min(size, start + CHUNK) + 1), gold, vectors, vocabulary, rng, noise)
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.close()


def write_chunk(
    connection: Any,
    ids: range,
    gold: list[dict[str, Any]],
    vectors: np.ndarray,
    vocabulary: list[str],
    rng: Any,
    noise: Any,
) -> None:
    from vkpp_learning.embeddings import DIM, MODEL_NAME

    passages, embeddings, tags = [], [], []
    sources = [rng.randrange(len(gold)) for _ in ids]
    jitter = noise.normal(0.0, NOISE, size=(len(ids), vectors.shape[1])).astype(np.float32)
    for offset, (passage_id, source) in enumerate(zip(ids, sources, strict=True)):
        row = gold[source]
        text = perturb(row["text"], vocabulary, rng)
        digest = hashlib.sha256(text.encode()).hexdigest()
        review_id = (passage_id - 1) // PASSAGES_PER_REVIEW + 1
        passages.append((passage_id, review_id, passage_id, row.get("heading", ""), row["section"], row["para_id"],
                         row.get("page", 1), row.get("page", 1), len(text), text, digest))  # fmt: skip
        vector = vectors[source] + jitter[offset]
        embeddings.append((MODEL_NAME, digest, DIM, (vector / np.linalg.norm(vector)).astype("<f4").tobytes()))
        tags += [(passage_id, "practice", theme) for theme in row["themes"]]
        tags += [(passage_id, "missed_opportunity", "true")] if row["missed_opportunity"] else []
    connection.executemany(PASSAGE_SQL, passages)
    connection.executemany(EMBEDDING_SQL, embeddings)
    connection.executemany(TAG_SQL, tags)


def measure(url: str, queries: Sequence[str], repeat: int) -> dict[tuple[str, bool], list[float]]:
    """Milliseconds per search, by (mode, filtered)."""
    from vkpp_learning.db import open_database
    from vkpp_learning.search import facade
    from vkpp_learning.search.filters import Filters
    from vkpp_learning.search.semantic import clear_query_cache

    db = open_database(url)
    warm_up(db, facade, Filters.from_dict(FILTERED))
    timings: dict[tuple[str, bool], list[float]] = {}
    for mode in ("keyword", "semantic", "hybrid"):
        for filtered in (False, True):
            filters = Filters.from_dict(FILTERED) if filtered else Filters()
            samples = timings.setdefault((mode, filtered), [])
            for query in list(queries) * repeat:
                clear_query_cache()  # every search pays for embedding its query
                started = time.perf_counter()
                facade.search(db, query, filters, mode, limit=10)
                samples.append((time.perf_counter() - started) * 1000)
    db.dispose()
    return timings


def warm_up(db: Any, facade: Any, filters: Any) -> None:
    """Load the per-process caches as a server would at start (timed apart), then the filter's tag masks."""
    started = time.perf_counter()
    facade.prepare(db)
    print(f"  caches (vectors, lengths, catalog) loaded in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    facade.search(db, "warm up the model", filters, "hybrid", limit=1)
    print(f"  model and the filter's first tag masks ready in {time.perf_counter() - started:.1f} s", flush=True)


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(share * 100) - 1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="folder to keep (and reuse) the databases in")
    parser.add_argument("--repeat", type=int, default=2, help="times each query is run per mode")
    args = parser.parse_args(argv)
    gold = gold_paragraphs()
    queries = [json.loads(line)["query"] for line in (CORPUS / "queries.jsonl").read_text().splitlines()]
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        vectors = base_vectors([row["text"] for row in gold], folder)
        for size in args.sizes:
            report_size(folder, size, gold, vectors, queries, args.repeat)


def report_size(
    folder: Path, size: int, gold: list[dict[str, Any]], vectors: np.ndarray, queries: list[str], repeat: int
) -> None:
    path = folder / f"bench_{size}.sqlite"
    url = f"sqlite:///{path}"
    if not path.exists():
        started = time.perf_counter()
        fill(url, size, gold, vectors)
        print(
            f"  filled {size} passages in {time.perf_counter() - started:.0f} s ({path.stat().st_size >> 20} MB)",
            flush=True,
        )
    print(f"  load average before: {load_average()}", flush=True)
    timings = measure(url, queries, repeat)
    print(f"  load average after: {load_average()}")
    print(f"{'passages':>9} {'mode':<9} {'filters':<8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for (mode, filtered), values in timings.items():
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        row = f"{size:>9} {mode:<9} {'yes' if filtered else 'no':<8} {p50:>8.1f} {p95:>8.1f} {max(values):>8.1f}"
        print(row, flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"


if __name__ == "__main__":
    sys.exit(main())
