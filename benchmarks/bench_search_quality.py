"""Search quality on the sample corpus: nDCG@10 and recall@20 per mode (keyword, semantic, hybrid) for the
judged queries in corpus_samples/queries.jsonl.

    python benchmarks/bench_search_quality.py                 # ingests and embeds the samples into a temp file
    python benchmarks/bench_search_quality.py --db URL        # a database already holding them (embedded)

Results (our passages) are mapped to gold paragraph ids (corpus_samples/gold/<doc>.jsonl) by the review's
file stem and the highest word overlap; a paragraph split into several passages counts once, at its best rank.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus_samples"
MODES = ("keyword", "semantic", "hybrid")
MIN_OVERLAP = 0.5  # share of a passage's words found in the gold paragraph for it to count as that paragraph
WORDS = re.compile(r"[a-z0-9]+")


def load_queries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_gold() -> dict[str, list[tuple[str, set[str]]]]:
    """Gold paragraphs by document: (gold id, set of words)."""
    gold: dict[str, list[tuple[str, set[str]]]] = {}
    for path in sorted((CORPUS / "gold").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            gold.setdefault(row["doc_id"], []).append((f"{row['doc_id']}#{row['para_id']}", _words(row["text"])))
    return gold


def _words(value: str) -> set[str]:
    return set(WORDS.findall(value.lower()))


def passage_to_gold(session: Any, gold: dict[str, list[tuple[str, set[str]]]]) -> dict[int, str]:
    """Each stored passage's gold paragraph: same review (file stem), highest share of its words."""
    mapping: dict[int, str] = {}
    rows = session.execute(
        text("SELECT p.id, r.filename, p.text FROM passages AS p JOIN reviews AS r ON r.id = p.review_id")
    )
    for passage_id, filename, passage_text in rows:
        words = _words(passage_text)
        candidates = gold.get(Path(filename).stem, [])
        if not words or not candidates:
            continue
        gold_id, overlap = max(((gid, len(words & gw) / len(words)) for gid, gw in candidates), key=lambda x: x[1])
        if overlap >= MIN_OVERLAP:
            mapping[passage_id] = gold_id
    return mapping


def ranked_gold_ids(passage_ids: Sequence[int], mapping: dict[int, str]) -> list[str]:
    seen: dict[str, None] = {}
    for passage_id in passage_ids:
        gold_id = mapping.get(passage_id)
        if gold_id:
            seen.setdefault(gold_id)
    return list(seen)


def ndcg(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (grade 2 or 1)."""
    dcg = sum(relevant.get(gid, 0) / math.log2(rank + 2) for rank, gid in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked: Sequence[str], relevant: dict[str, int], k: int = 20) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def evaluate(
    db: Any, queries: list[dict[str, Any]], modes: Sequence[str], depth: int = 60
) -> dict[str, dict[str, float]]:
    """Mean nDCG@10 and recall@20 per mode (and per query, under 'queries')."""
    from vkpp_learning.search import facade
    from vkpp_learning.search.filters import Filters

    with db.session() as session:
        mapping = passage_to_gold(session, load_gold())
    scores: dict[str, dict[str, Any]] = {}
    for mode in modes:
        per_query = []
        for item in queries:
            page = facade.search(db, item["query"], Filters.from_dict(item.get("filters")), mode, limit=depth)
            ranked = ranked_gold_ids([r.passage_id for r in page.results], mapping)
            per_query.append((ndcg(ranked, item["relevant"]), recall(ranked, item["relevant"])))
        scores[mode] = {
            "ndcg@10": sum(n for n, _ in per_query) / len(per_query),
            "recall@20": sum(r for _, r in per_query) / len(per_query),
            "queries": per_query,
        }
    return scores


def paired_comparison(scores: dict[str, dict[str, Any]], mode: str, baseline: str, draws: int = 10_000) -> str:
    """Per-query nDCG@10 differences of `mode` over `baseline`: wins, losses, mean and a bootstrap 95% interval
    (queries resampled with replacement, fixed seed), so a difference can be read against its noise."""
    import random

    pairs = zip(scores[mode]["queries"], scores[baseline]["queries"], strict=True)
    differences = [ours[0] - theirs[0] for ours, theirs in pairs]
    rng = random.Random(0)
    means = sorted(sum(rng.choices(differences, k=len(differences))) / len(differences) for _ in range(draws))
    low, high = means[int(0.025 * draws)], means[int(0.975 * draws)]
    wins, losses = sum(d > 0 for d in differences), sum(d < 0 for d in differences)
    mean = sum(differences) / len(differences)
    return (
        f"{mode} - {baseline} nDCG@10: {mean:+.3f} (95% bootstrap interval {low:+.3f} to {high:+.3f}); "
        f"better on {wins}, worse on {losses} of {len(differences)} queries"
    )


def build_sample_db(folder: Path) -> str:
    """Ingest corpus_samples/*.pdf and embed them into a new SQLite file; returns its URL."""
    from pipelines.embed import embed
    from pipelines.ingest import ingest

    url = f"sqlite:///{folder / 'samples.sqlite'}"
    summary = ingest(sorted(str(p) for p in CORPUS.glob("*.pdf")), url)
    if summary.errors:
        raise SystemExit(f"the samples did not all ingest: {summary.errors}")
    embed(url)
    return url


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL holding the ingested and embedded samples")
    parser.add_argument("--queries", type=Path, default=CORPUS / "queries.jsonl")
    parser.add_argument("--per-query", action="store_true", help="also print each query's nDCG@10 per mode")
    args = parser.parse_args(argv)
    from vkpp_learning.db import open_database

    with tempfile.TemporaryDirectory() as folder:
        db = open_database(args.db or build_sample_db(Path(folder)))
        queries = load_queries(args.queries)
        scores = evaluate(db, queries, MODES)
        db.dispose()
    print(f"{len(queries)} queries from {args.queries.name}")
    print(f"{'mode':<10} {'nDCG@10':>8} {'recall@20':>10}")
    for mode in MODES:
        print(f"{mode:<10} {scores[mode]['ndcg@10']:>8.3f} {scores[mode]['recall@20']:>10.3f}")
    print(paired_comparison(scores, "hybrid", "keyword"))
    if args.per_query:
        for number, item in enumerate(queries):
            cells = " ".join(f"{scores[mode]['queries'][number][0]:.2f}" for mode in MODES)
            print(f"  {cells}  {item['query']}")


if __name__ == "__main__":
    sys.exit(main())
