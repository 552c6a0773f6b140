"""App benchmark: the Overview's first-page time on the sample database, and the Search page's response time
(and the Overview's) with about 50,000 passages.

    python benchmarks/bench_app.py [--samples URL] [--passages 50000] [--no-browser] [--keep DIR]

The sample database is the corpus_samples/ reviews ingested, tagged by the default taggers and embedded
(or --samples: a database already holding them). The large one is made from it through the store: each
sample review saved again and again as a new review (another subject name and year, a word dropped from
some passages), its passages' embeddings copied under their new text hashes and their tags copied to the
copies. Times are taken two ways: an AppTest run of the page (the server's work) and, unless --no-browser,
headless Chromium on a real `streamlit run` from navigation until the page shows real numbers or results.
Prints figures; never fails on a time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import insert, select, text  # noqa: E402

from vkpp_learning import records  # noqa: E402
from vkpp_learning.db import Database, models, open_database  # noqa: E402
from vkpp_learning.db.store import IngestedReview, save_review, text_hash  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
CHROMIUM_ARGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUERIES = (
    "missed opportunity MARAC referral",
    "DASH risk assessment graded standard",
    '"mental capacity" police',
    "professional curiosity coercive control",
    "information sharing between agencies",
    "no referral was made to children's social care",
    "licence breach recall probation",
    "self-neglect hoarding capacity assessment",
    "voice of the child not heard",
    "stalking reported to police",
)
FILTERED = {"type": ["DHR", "SAR"], "theme": "risk_assessment", "from": "2015"}
NAMES = ("Alex", "Bea", "Cara", "Dev", "Ella", "Finn", "Gwen", "Hari", "Iris", "Jon", "Kit", "Lena", "Mo", "Nia")
AREAS = ("Northshire", "Southvale", "Eastbury", "Westmarsh", "Highmoor", "Lowfield", "Riverside", "Kingsport")


# --- the sample database --------------------------------------------------------------------------


def build_samples(folder: Path) -> str:
    """The sample reviews ingested, tagged by every default tagger, and embedded."""
    from pipelines.embed import embed
    from pipelines.ingest import ingest
    from tests.test_analytics import tag_repository

    url = f"sqlite:///{folder / 'samples.sqlite'}"
    started = time.perf_counter()
    summary = ingest(sorted(str(p) for p in (ROOT / "corpus_samples").glob("*.pdf")), url)
    db = open_database(url)
    tag_repository(db)
    db.dispose()
    embedded = embed(url)
    print(
        f"sample database: {summary.reviews} reviews, {summary.passages} passages, "
        f"{embedded.embedded} embedded; built in {time.perf_counter() - started:.0f} s"
    )
    return url


# --- the 50k database, through the store ----------------------------------------------------------


@dataclass
class SampleReview:
    review: models.Review
    pages: list[models.Page]
    passages: list[models.Passage]


def sample_reviews(db: Database) -> list[SampleReview]:
    with db.session() as session:
        reviews = session.scalars(select(models.Review).order_by(models.Review.id)).all()
        return [SampleReview(r, list(r.pages), list(r.passages)) for r in reviews]


def perturbed(text: str, subject: str, name: str, rng: random.Random) -> str:
    """The passage with the subject renamed and, for one passage in three, one word dropped."""
    if subject and subject != "unknown":
        text = text.replace(subject, name)
    words = text.split(" ")
    if len(words) > 8 and rng.random() < 0.33:
        del words[rng.randrange(1, len(words) - 1)]
    return " ".join(words)


def synthetic_review(sample: SampleReview, copy: int, rng: random.Random) -> tuple[IngestedReview, list[int]]:
    """A new review made from a sample one, and the sample passage id behind each of its passages."""
    review = sample.review
    name = f"{rng.choice(NAMES)} {copy}"
    texts = [perturbed(p.text, review.subject, name, rng) for p in sample.passages]
    passages, offset = [], 0
    for p, passage_text in zip(sample.passages, texts, strict=True):
        passages.append(
            records.Passage(
                ordinal=p.ordinal,
                text=passage_text,
                kind=p.kind,
                section=p.section,
                section_kind=p.section_kind,
                paragraph=p.paragraph,
                page_start=p.page_start,
                page_end=p.page_end,
                char_start=offset,
                char_end=offset + len(passage_text),
                part=p.part,
            )
        )
        offset += len(passage_text) + 1
    full_text = "\n".join(texts)
    sha = hashlib.sha256(f"{review.sha256}:{copy}".encode()).hexdigest()
    pages = [records.PageText(number=pg.number, width=595, height=842, status=pg.status) for pg in sample.pages]
    document = records.ExtractedDocument(path=f"synthetic/{sha[:12]}.pdf", sha256=sha, backend="synthetic", pages=pages)
    offsets = [(pg.number, 0, len(full_text)) for pg in sample.pages]
    metadata = records.ReviewMetadata(
        review_type=review.review_type,
        subtype=review.subtype,
        title=review.title.replace(review.subject, name) if review.subject != "unknown" else review.title,
        subject=name,
        year=rng.randint(2012, 2025),
        area=rng.choice(AREAS),
        commissioner=review.commissioner,
        executive_summary=review.executive_summary,
        page_count=review.page_count,
    )
    item = IngestedReview(
        source_path=document.path,
        sha256=sha,
        file_size=len(full_text),
        document=document,
        segmentation=records.Segmentation(full_text, passages, offsets),
        metadata=metadata,
        pipeline_version="bench_app synthetic",
    )
    return item, [p.id for p in sample.passages]


def build_large(samples_url: str, folder: Path, passages: int, seed: int = 7) -> str:
    """A database of about `passages` passages, made from the samples through the store."""
    rng = random.Random(seed)
    url = f"sqlite:///{folder / 'large.sqlite'}"
    copy_sqlite(samples_url, folder / "large.sqlite")  # the samples themselves, their tag runs and embeddings
    source, large = open_database(samples_url), open_database(url)
    samples = sample_reviews(source)
    per_round = sum(len(s.passages) for s in samples)
    started, copy, stored = time.perf_counter(), 0, per_round
    vectors, tags = embeddings_by_passage(source), tags_by_passage(source)
    while stored < passages:
        copy += 1
        for sample in samples:
            item, origins = synthetic_review(sample, copy, rng)
            review_id = save_review(large, item)
            copy_extras(large, review_id, origins, item, vectors, tags)
            stored += len(origins)
    source.dispose()
    large.dispose()
    print(
        f"large database: {stored:,} passages ({copy} copies of {len(samples)} reviews) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return url


def copy_sqlite(source_url: str, target: Path) -> None:
    with sqlite3.connect(source_url.removeprefix("sqlite:///")) as source, sqlite3.connect(target) as copy:
        source.backup(copy)


def embeddings_by_passage(db: Database) -> dict[int, tuple[str, int, bytes]]:
    """Each sample passage's embedding: (model, dim, vector)."""
    with db.session() as session:
        rows = session.execute(
            text(
                "SELECT p.id, e.model, e.dim, e.vector FROM passages AS p "
                "JOIN embeddings AS e ON e.text_hash = p.text_hash"
            )
        ).all()
    return {int(pid): (model, int(dim), bytes(vector)) for pid, model, dim, vector in rows}


def tags_by_passage(db: Database) -> dict[int, list[tuple[int, str, str, float, str]]]:
    with db.session() as session:
        rows = session.execute(
            select(
                models.Tag.passage_id,
                models.Tag.run_id,
                models.Tag.facet,
                models.Tag.label,
                models.Tag.score,
                models.Tag.evidence,
            )
        ).all()
    found: dict[int, list[tuple[int, str, str, float, str]]] = {}
    for pid, *rest in rows:
        found.setdefault(int(pid), []).append(tuple(rest))  # type: ignore[arg-type]
    return found


def copy_extras(
    db: Database,
    review_id: int,
    origins: list[int],
    item: IngestedReview,
    vectors: dict[int, tuple[str, int, bytes]],
    tags: dict[int, list[tuple[int, str, str, float, str]]],
) -> None:
    """The copied passages get their originals' embeddings (under the new text hashes) and tags."""
    with db.writing() as session:
        ids = session.scalars(
            select(models.Passage.id).where(models.Passage.review_id == review_id).order_by(models.Passage.ordinal)
        ).all()
        embedding_rows, tag_rows = {}, []
        for new_id, origin, passage in zip(ids, origins, item.segmentation.passages, strict=True):
            if origin in vectors:
                model, dim, vector = vectors[origin]
                embedding_rows[(model, text_hash(passage.text))] = {
                    "model": model,
                    "text_hash": text_hash(passage.text),
                    "dim": dim,
                    "vector": vector,
                }
            tag_rows += [
                {
                    "passage_id": new_id,
                    "run_id": run,
                    "facet": facet,
                    "label": label,
                    "score": score,
                    "evidence": evidence,
                }
                for run, facet, label, score, evidence in tags.get(origin, [])
            ]
        known = {
            tuple(row)
            for row in session.execute(
                select(models.Embedding.model, models.Embedding.text_hash).where(
                    models.Embedding.text_hash.in_([key[1] for key in embedding_rows])
                )
            )
        }
        fresh = [row for key, row in embedding_rows.items() if key not in known]
        if fresh:
            session.execute(insert(models.Embedding), fresh)
        if tag_rows:
            session.execute(insert(models.Tag), tag_rows)


# --- timing pages ---------------------------------------------------------------------------------


def page_script(name: str) -> None:
    import streamlit as st

    from vkpp_learning.app_pages import navigation_pages
    from vkpp_learning.app_pages.common import start

    start()
    st.navigation(navigation_pages(default=name)).run()


def apptest_seconds(url: str, name: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
    from streamlit.testing.v1 import AppTest

    os.environ["VKPP_DATABASE_URL"] = url
    app = AppTest.from_function(page_script, args=(name,), default_timeout=600)
    for key, value in (params or {}).items():
        app.query_params[key] = value
    started = time.perf_counter()
    app.run()
    seconds = time.perf_counter() - started
    if app.exception or app.error:
        raise RuntimeError(f"{name} failed: {[e.value for e in (*app.exception, *app.error)]}")
    return seconds, app


def clear_caches() -> None:
    """Forget cached figures and engines, as a freshly started server would have none."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def overview_apptest(url: str, label: str) -> None:
    clear_caches()
    cold, app = apptest_seconds(url, "overview")
    warm, _ = apptest_seconds(url, "overview")
    reviews = next(m.value for m in app.metric if m.label == "Reviews")
    print(f"{label:<44} AppTest run  cold {cold:6.2f} s   cached {warm:6.2f} s   ({reviews} reviews shown)")


def search_apptest(url: str, label: str, repeat: int) -> None:
    import streamlit as st

    _, app = apptest_seconds(url, "search", {"q": "warm up the model", "mode": "semantic"})  # loads the model once
    for mode, filters in (("keyword", False), ("hybrid", False), ("semantic", False), ("hybrid", True)):
        times = []
        for query in QUERIES * repeat:
            params = {"q": query, "mode": mode, **(FILTERED if filters else {})}
            st.cache_data.clear()  # every run searches: none is answered from the page's cache
            seconds, app = apptest_seconds(url, "search", params)
            times.append(seconds)
        shown = sum(1 for b in app.button if b.label == "More like this")
        what = f"{mode}{' + filters' if filters else ''}"
        print(
            f"{label + ' search ' + what:<44} AppTest run  p50 {percentile(times, 0.5):6.2f} s   "
            f"p95 {percentile(times, 0.95):6.2f} s   ({len(times)} runs, {shown} results on the last)"
        )


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# --- timing in a browser --------------------------------------------------------------------------


@contextmanager
def served(url: str) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.serverAddress", "127.0.0.1"]
    command += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    server = subprocess.Popen(
        command, env={**os.environ, "VKPP_DATABASE_URL": url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=15)


def browser_seconds(page: Any, address: str, ready: Callable[[Any], None]) -> float:
    started = time.perf_counter()
    page.goto(address)
    ready(page)
    return time.perf_counter() - started


def overview_ready(page: Any) -> None:
    page.get_by_test_id("stMetricValue").first.wait_for()


def results_ready(page: Any) -> None:
    page.get_by_role("button", name="More like this").first.wait_for()


def browser_timings(url: str, label: str, search: bool) -> None:
    from playwright.sync_api import sync_playwright

    with served(url) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(300_000)
        cold = browser_seconds(page, base, overview_ready)
        warm = [browser_seconds(page, base, overview_ready) for _ in range(3)]
        print(
            f"{'overview, ' + label.removeprefix('overview, '):<44} browser     cold {cold:6.2f} s   "
            f"again  {statistics.median(warm):6.2f} s   (navigation to the first number shown)"
        )
        if search:
            first = f"{base}/search?q={urllib.parse.quote(QUERIES[0])}&mode=semantic"
            model = browser_seconds(page, first, results_ready)
            print(f"{label + ' first search by meaning':<44} browser     {model:6.2f} s   (loads the model once)")
            for mode in ("keyword", "hybrid"):
                times = [
                    browser_seconds(page, f"{base}/search?q={urllib.parse.quote(q)}&mode={mode}", results_ready)
                    for q in QUERIES  # each once: a repeat would be answered from the page's cache
                ]
                print(
                    f"{label + ' search ' + mode:<44} browser     p50 {percentile(times, 0.5):6.2f} s   "
                    f"p95 {percentile(times, 0.95):6.2f} s   (navigation to the first result shown)"
                )
        browser.close()


# --- main -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", help="URL of a sample database already ingested, tagged and embedded")
    parser.add_argument("--passages", type=int, default=50_000, help="passages in the large database")
    parser.add_argument("--repeat", type=int, default=1, help="times each query is run through AppTest")
    parser.add_argument("--no-browser", action="store_true", help="AppTest timings only")
    parser.add_argument("--keep", type=Path, help="build the databases in this folder and keep them")
    args = parser.parse_args(argv)
    browser = not args.no_browser and CHROMIUM.exists()
    with tempfile.TemporaryDirectory(prefix="bench_app_") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        samples = args.samples or build_samples(folder)
        large = build_large(samples, folder, args.passages)
        print()
        overview_apptest(samples, "overview, sample database")
        if browser:
            browser_timings(samples, "overview, sample database", search=False)
        size = f"{args.passages // 1000}k passages"
        overview_apptest(large, f"overview, {size}")
        search_apptest(large, size, args.repeat)
        if browser:
            browser_timings(large, size, search=True)


if __name__ == "__main__":
    main()
