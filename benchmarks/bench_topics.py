"""Topic modelling benchmark: time and peak memory of `fit_topics` on 5k and 20k passages with cached embeddings.

    python benchmarks/bench_topics.py [--sizes 5000 20000] [--work /tmp/vkpp_bench_topics] [--guided]
                                      [--embeddings perturb|encode]

The sample reviews are ingested once, then copied as new reviews with perturbed passages (a window of each
passage with words dropped and swapped, joined by a span of another passage) until each corpus holds the
wanted number of passages. Their embeddings are put in the cache before timing, because the fit is
measured with cached embeddings: with --embeddings encode (slow: the real model on every new text) or, by
default, perturb: the word-weighted mix of the two source passages' embeddings plus Gaussian noise scaled
so it lies as far from that mix as the real model's embedding of the new text does, measured on a sample
of new texts (printed). Each fit runs in its own process,
so its peak memory (ru_maxrss) is its own; the wall time includes importing BERTopic, UMAP and numba.
Figures only: a benchmark never fails a build on a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

CALIBRATION_TEXTS = 64


def perturb(text: str, other: str, rng: random.Random) -> tuple[str, float]:
    """A new passage from an old one: a window of 60-85 % of its words, about one in ten dropped and two
    neighbours swapped, joined by a span of another passage (30-50 % of the original's length), so that
    copies of a passage differ in meaning as well as in words. Returns the text and the original's share."""
    words = text.split()
    size = max(1, round(len(words) * rng.uniform(0.6, 0.85)))
    start = rng.randrange(len(words) - size + 1)
    kept = [w for w in words[start : start + size] if rng.random() > 0.1] or words[:size]
    if len(kept) > 3:
        i = rng.randrange(len(kept) - 1)
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    donor = other.split()
    span = min(len(donor), max(3, round(len(words) * rng.uniform(0.3, 0.5))))
    at = rng.randrange(len(donor) - span + 1)
    added = donor[at : at + span]
    joined = kept + added if rng.random() < 0.5 else added + kept
    return " ".join(joined), len(kept) / len(joined)


def build_base(work: Path) -> str:
    """The sample reviews ingested and embedded once, reused by later runs."""
    from pipelines.embed import embed
    from pipelines.ingest import ingest

    path = work / "base.sqlite"
    url = f"sqlite:///{path}"
    if not path.exists():
        pdfs = sorted(str(p) for p in (ROOT / "corpus_samples").glob("*.pdf"))
        ingest(pdfs, url)
    embed(url)
    return url


def copy_database(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def eligible_count(url: str) -> int:
    from vkpp_learning.db import open_database
    from vkpp_learning.topics.store import CorpusFilter, corpus_rows

    db = open_database(url)
    with db.session() as session:
        count = len(corpus_rows(session, CorpusFilter()))
    db.dispose()
    return count


def noise_scale(expected: np.ndarray, texts: list[str]) -> tuple[float, float]:
    """(sigma, mean cosine): Gaussian noise that puts a synthetic vector as far from the word-weighted mix of
    its two sources as the real model's embedding of the mixed text is, measured on these texts."""
    from vkpp_learning.embeddings import encode

    cosine = float(np.mean(np.sum(expected * encode(texts), axis=1)))
    return float(np.sqrt(max(1 / cosine**2 - 1, 1e-6) / expected.shape[1])), cosine


def grow(base_url: str, target: Path, size: int, mode: str, seed: int = 0) -> dict[str, Any]:
    """A copy of the base database grown to about `size` topic-eligible passages with perturbed copies
    (reused, with how it was built, when an earlier run made it)."""
    notes = target.with_suffix(".json")
    if target.exists() and notes.exists() and eligible_count(f"sqlite:///{target}") >= size:
        return {**json.loads(notes.read_text()), "reused": True}
    target.unlink(missing_ok=True)
    copy_database(Path(base_url.removeprefix("sqlite:///")), target)
    started = time.perf_counter()
    info = add_copies(f"sqlite:///{target}", size, mode, random.Random(seed))
    info["build_seconds"] = round(time.perf_counter() - started, 1)
    notes.write_text(json.dumps(info))
    return info


def add_copies(url: str, size: int, mode: str, rng: random.Random) -> dict[str, Any]:
    from sqlalchemy import insert, select

    from vkpp_learning.db import models, open_database
    from vkpp_learning.db.store import text_hash
    from vkpp_learning.embeddings import MODEL_NAME, cached_encode, from_bytes, to_bytes
    from vkpp_learning.topics.mapping import normalize_rows

    db = open_database(url)
    count, copy, sigma, cosine = eligible_count(url), 0, None, None
    with db.session() as session:
        reviews = list(session.scalars(select(models.Review)))
        donors = [p.text for p in session.scalars(select(models.Passage))]
        vectors = {
            h: from_bytes(v) for h, v in session.execute(select(models.Embedding.text_hash, models.Embedding.vector))
        }
    known = set(vectors)  # a new text may repeat one already cached: it keeps that embedding
    while count < size:
        copy += 1
        for review in reviews:
            if count >= size:
                break
            with db.writing() as session:
                passages = list(session.scalars(select(models.Passage).where(models.Passage.review_id == review.id)))
                new_id = add_review_copy(session, review, copy)
                rows, texts, mixes = [], [], []
                for p in passages:
                    other = rng.choice(donors)
                    text, weight = perturb(p.text, other, rng)
                    rows.append(passage_row(p, new_id, text, text_hash(text)))
                    texts.append(text)
                    mixes.append(weight * vectors[p.text_hash] + (1 - weight) * vectors[text_hash(other)])
                session.execute(insert(models.Passage), rows)
                if mode == "encode":
                    cached_encode(session, texts)
                    continue
                expected = normalize_rows(np.vstack(mixes))
                if sigma is None:
                    sigma, cosine = noise_scale(expected[:CALIBRATION_TEXTS], texts[:CALIBRATION_TEXTS])
                noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, sigma, expected.shape)
                fresh = {text_hash(t): v for t, v in zip(texts, normalize_rows(expected + noise), strict=True)}
                fresh = {h: v for h, v in fresh.items() if h not in known}
                known |= set(fresh)
                if fresh:
                    session.execute(
                        insert(models.Embedding),
                        [
                            {"model": MODEL_NAME, "text_hash": h, "dim": len(v), "vector": to_bytes(v)}
                            for h, v in fresh.items()
                        ],
                    )
            count += sum(1 for row in rows if is_eligible(row))
    db.dispose()
    return {"copies": copy, "noise_sigma": sigma, "calibration_cosine": cosine}


def is_eligible(row: dict[str, Any]) -> bool:
    """Whether a passage row is one the default fit selects (the same rules as CorpusFilter's defaults)."""
    from vkpp_learning.topics.store import CorpusFilter

    default = CorpusFilter()
    return (
        row["kind"] in default.kinds
        and row["section_kind"] not in default.excluded_sections
        and len(row["text"].split()) >= default.min_words
    )


def add_review_copy(session: Any, review: Any, copy: int) -> int:
    from vkpp_learning.db import models

    columns = {c.key: getattr(review, c.key) for c in models.Review.__table__.columns if c.key != "id"}
    columns["sha256"] = hashlib.sha256(f"{review.sha256}-{copy}".encode()).hexdigest()
    columns["filename"] = f"copy{copy}_{review.filename}"
    clone = models.Review(**columns)
    session.add(clone)
    session.flush()
    return clone.id


def passage_row(passage: Any, review_id: int, text: str, digest: str) -> dict[str, Any]:
    from vkpp_learning.db import models

    row = {c.key: getattr(passage, c.key) for c in models.Passage.__table__.columns if c.key != "id"}
    return {**row, "review_id": review_id, "text": text, "text_hash": digest, "char_end": row["char_start"] + len(text)}


def child(url: str, guided: bool) -> None:
    """Run one fit and print its figures as JSON (in a process of its own, for an honest peak memory).

    CPU seconds are printed beside wall seconds: on a machine shared with other jobs, wall time grows
    with their load and CPU time does not."""
    started = time.perf_counter()
    marks: list[float] = []
    from pipelines.topics import fit_topics
    from vkpp_learning.topics.model import TopicParams

    imported = time.perf_counter()
    summary = fit_topics(url, params=TopicParams(guided=guided), report=lambda _m: marks.append(time.perf_counter()))
    done = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    phases = {
        "import": imported - started,
        "read_cached_embeddings": marks[0] - imported,
        "fit_reduce_outliers": marks[1] - marks[0],
        "map_store_save": done - marks[1],
    }
    figures = {
        "wall_seconds": round(done - started, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_mb": round(usage.ru_maxrss / 1024),
        "phases": {name: round(value, 1) for name, value in phases.items()},
    }
    print(json.dumps({**figures, **summary.to_json()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/vkpp_bench_topics"))
    parser.add_argument("--embeddings", choices=("perturb", "encode"), default="perturb")
    parser.add_argument("--guided", action="store_true", help="Fit guided by the taxonomy's phrases.")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.guided)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    base = build_base(args.work)
    for size in args.sizes:
        target = args.work / f"bench-{size}-{args.embeddings}.sqlite"
        info = grow(base, target, size, args.embeddings)
        command = [sys.executable, __file__, "--child", f"sqlite:///{target}"] + (["--guided"] if args.guided else [])
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            print(f"size {size}: the fit failed\n{result.stderr[-2000:]}")
            continue
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(line(size, args, info, figures))


def line(size: int, args: argparse.Namespace, info: dict[str, Any], figures: dict[str, Any]) -> str:
    calibration = (
        f"; noise sigma {info['noise_sigma']:.4f} (real-model cosine {info['calibration_cosine']:.3f})"
        if info.get("noise_sigma")
        else ""
    )
    return (
        f"target {size:>6}: {figures['passages']} passages, {'guided' if args.guided else 'unguided'}, "
        f"embeddings {args.embeddings}{calibration}\n"
        f"  wall {figures['wall_seconds']} s from process start to stored run and saved model "
        f"(CPU {figures['cpu_seconds']} s), peak memory {figures['peak_mb']} MB\n"
        f"  phases (wall s): " + ", ".join(f"{k} {v}" for k, v in figures["phases"].items()) + "\n"
        f"  {figures['topics']} topics, {figures['emergent']} emergent, {figures['configuration']} configuration, "
        f"outliers {figures['outlier_share_before']:.1%} -> {figures['outlier_share_after']:.1%}"
    )


if __name__ == "__main__":
    main()
