"""Fault-and-load benchmark for the shared deployment: the sample corpus replicated to 500 unique PDFs, ingested
through the queue by 4 `vkpp worker` processes into a fresh PostgreSQL database, while 3 workers are killed
with SIGKILL at random moments (each replaced at once) and keyword searches run in parallel.

    python benchmarks/bench_fault_load.py [--documents 500] [--workers 4] [--kills 3] [--lease 20] [--ocr off]

Then checks that every document was stored exactly once and whole (its pages and passages equal to what the
pipeline reads from the original), and prints throughput (documents/s, pages/s) and search latency p50 / p95
during the load. Needs the PostgreSQL server of the test setup (VKPP_BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/test), on which it makes and drops its own database. Figures only: a
benchmark never fails a build on a time; it exits 1 only when a document was lost or stored twice.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import func, select, text  # noqa: E402

from pipelines.ingest import FileError, Job, file_sha256, read_review  # noqa: E402
from vkpp_learning.db import Database, models, open_database  # noqa: E402

CORPUS = ROOT / "corpus_samples"
SERVER = os.environ.get("VKPP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
VKPP = (sys.executable, "-c", "from vkpp_learning.cli import main; main()")
TIME_LIMIT = 3600  # the whole run stops by itself after this many seconds


@dataclass
class Kill:
    at: float
    worker_pid: int
    held: str | None  # the file the killed worker had claimed, if any


@dataclass
class Load:
    """What happened during the run."""

    started: float = 0.0
    finished: float = 0.0
    search_seconds: list[float] = field(default_factory=list)
    search_errors: list[str] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)


# --- the corpus ----------------------------------------------------------------------------------------


def originals() -> list[Path]:
    return sorted(CORPUS.glob("*.pdf"))


def replicate(target: Path, documents: int) -> dict[str, str]:
    """`documents` copies of the sample PDFs, each made unique by a trailing PDF comment; {copy name: original}."""
    sources = originals()
    made: dict[str, str] = {}
    for n in range(documents):
        source = sources[n % len(sources)]
        name = f"copy{n:04d}_{source.name}"
        # A comment after %%EOF: readers ignore it, the bytes (so the SHA-256) differ.
        (target / name).write_bytes(source.read_bytes() + f"\n%vkpp-bench copy {n}\n".encode())
        made[name] = source.name
    return made


def reference(ocr: str) -> dict[str, tuple[int, int]]:
    """(pages, passages) the pipeline reads from each original, to check every stored copy is whole."""
    found: dict[str, tuple[int, int]] = {}
    for path in originals():
        item = read_review(Job(str(path), file_sha256(path), path.stat().st_size), "extract.pdfium.v1", ocr)
        if isinstance(item, FileError):
            raise SystemExit(f"the sample {path.name} does not read: {item.message}")
        found[path.name] = (item.document.page_count, len(item.segmentation.passages))
    return found


def queries() -> list[str]:
    with (CORPUS / "queries.jsonl").open(encoding="utf-8") as stream:
        return [json.loads(line)["query"] for line in stream if line.strip()]


# --- the database --------------------------------------------------------------------------------------


def create_database() -> tuple[str, str]:
    import psycopg

    name = f"vkpp_bench_{os.getpid()}"
    with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    base = SERVER.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def queue_counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        row = models.QueuedDocument
        return dict(session.execute(select(row.status, func.count()).group_by(row.status)).all())


def held_by(db: Database, worker: str) -> str | None:
    with db.session() as session:
        row = models.QueuedDocument
        statement = select(row.source_path).where(row.status == "claimed", row.claimed_by == worker)
        path = session.scalar(statement)
    return Path(path).name if path else None


# --- the load: workers, a killer, a searcher -----------------------------------------------------------


class Workers:
    """The worker processes, each replaced when it is killed."""

    def __init__(self, url: str, count: int, env: dict[str, str], logs: Path) -> None:
        self.url, self.env, self.logs = url, env, logs
        self.processes = [self.start() for _ in range(count)]
        self.retired: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{time.monotonic_ns()}.log").open("wb")
        command = [*VKPP, "worker", "--db", self.url, "--poll", "0.5", "--json"]
        return subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def kill_one(self, db: Database, host: str) -> Kill | None:
        """SIGKILL a random worker that is in the middle of a document, and start another; None if none is."""
        busy = [(p, held_by(db, f"{host}:{p.pid}")) for p in self.processes if p.poll() is None]
        busy = [(p, held) for p, held in busy if held]
        if not busy:
            return None
        victim, held = random.choice(busy)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.processes.remove(victim)
        self.retired.append(victim)
        self.processes.append(self.start())
        return Kill(time.perf_counter(), victim.pid, held)

    def stop_all(self) -> None:
        """Stop any worker still running (an interrupted benchmark leaves none behind)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def wait(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        return [p.returncode for p in self.processes]


def searcher(db: Database, load: Load, stop: threading.Event) -> None:
    """Keyword searches back to back (with a short think time), timed, until the ingestion ends."""
    texts = queries()
    while not stop.is_set():
        timed_search(db, random.choice(texts), load.search_seconds, load.search_errors)
        stop.wait(0.05)


def timed_search(db: Database, query: str, seconds: list[float], errors: list[str]) -> None:
    from vkpp_learning.search import search

    started = time.perf_counter()
    try:
        search(db, query, mode="keyword", limit=10)
        seconds.append(time.perf_counter() - started)
    except Exception as exc:  # reported in the figures: a search must not fail under load
        errors.append(f"{query!r}: {type(exc).__name__}: {exc}")


def idle_searches(db: Database, rounds: int = 3) -> list[float]:
    """Every benchmark query a few times on the finished database, with no ingestion running, for comparison."""
    seconds: list[float] = []
    for _ in range(rounds):
        for query in queries():
            timed_search(db, query, seconds, [])
    return seconds


def run_load(db: Database, url: str, args: argparse.Namespace, documents: int, logs: Path) -> Load:
    load = Load()
    env = {
        **os.environ,
        "VKPP_LEASE_SECONDS": str(args.lease),
        "VKPP_OCR": args.ocr,
        "VKPP_MAX_ATTEMPTS": "5",
    }
    # Kill when these fractions of the documents are finished: random, spread over the run.
    kill_points = sorted(random.uniform(0.1, 0.85) for _ in range(args.kills))
    stop = threading.Event()
    search_thread = threading.Thread(target=searcher, args=(db, load, stop), daemon=True)
    load.started = time.perf_counter()
    workers = Workers(url, args.workers, env, logs)
    search_thread.start()
    try:
        watch(db, workers, load, kill_points, documents)
        load.finished = time.perf_counter()
        stop.set()
        search_thread.join()
        print(f"  workers exited with {workers.wait(120)}", flush=True)
    finally:
        stop.set()
        workers.stop_all()
    return load


def watch(db: Database, workers: Workers, load: Load, kill_points: list[float], documents: int) -> None:
    """Poll the queue until every document is finished, killing a busy worker at each kill point."""
    import socket

    deadline = time.monotonic() + TIME_LIMIT
    while time.monotonic() < deadline:
        counts = queue_counts(db)
        finished = counts.get("done", 0) + counts.get("failed", 0)
        if kill_points and finished >= kill_points[0] * documents:
            kill = workers.kill_one(db, socket.gethostname())
            if kill:
                kill_points.pop(0)
                load.kills.append(kill)
                print(f"  killed worker {kill.worker_pid} at {finished}/{documents}, reading {kill.held}", flush=True)
        if finished >= documents:
            return
        time.sleep(0.25)


# --- the checks and the figures ------------------------------------------------------------------------


def check(db: Database, made: dict[str, str], hashes: set[str], expected: dict[str, tuple[int, int]]) -> list[str]:
    """Every document stored exactly once and whole; returns the problems found (none is the pass)."""
    problems = []
    with db.session() as session:
        reviews = session.execute(
            select(
                models.Review.filename, models.Review.sha256, models.Review.page_count, func.count(models.Passage.id)
            )
            .join(models.Passage, isouter=True)
            .group_by(models.Review.id)
        ).all()
        errors = session.scalars(select(models.IngestError.message)).all()
        counts = dict(
            session.execute(
                select(models.QueuedDocument.status, func.count()).group_by(models.QueuedDocument.status)
            ).all()
        )
        indexed = session.execute(text("SELECT count(*) FROM search_doclen")).scalar_one()
        passages = session.scalar(select(func.count()).select_from(models.Passage))
    stored = [row.sha256 for row in reviews]
    if len(stored) != len(set(stored)):
        problems.append(f"{len(stored) - len(set(stored))} documents stored twice")
    if set(stored) != hashes:
        problems.append(f"{len(hashes - set(stored))} documents missing, {len(set(stored) - hashes)} unexpected")
    for filename, _sha, pages, count in reviews:
        if (pages, count) != expected[made[filename]]:
            problems.append(f"{filename}: {pages} pages, {count} passages; expected {expected[made[filename]]}")
    if counts != {"done": len(made)}:
        problems.append(f"queue not all done: {counts}")
    if errors:
        problems.append(f"{len(errors)} ingest errors, e.g. {errors[0]}")
    if indexed != passages:
        problems.append(f"keyword index holds {indexed} of {passages} passages")
    return problems


def attempts(db: Database) -> dict[int, int]:
    with db.session() as session:
        row = models.QueuedDocument
        return dict(session.execute(select(row.attempts, func.count()).group_by(row.attempts)).all())


def attempts_by_file(db: Database) -> dict[str, int]:
    with db.session() as session:
        row = models.QueuedDocument
        return {Path(path).name: n for path, n in session.execute(select(row.source_path, row.attempts))}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report(db: Database, load: Load, documents: int, args: argparse.Namespace) -> None:
    seconds = load.finished - load.started
    with db.session() as session:
        pages = session.scalar(select(func.sum(models.Review.page_count))) or 0
        passages = session.scalar(select(func.count()).select_from(models.Passage)) or 0
    print(
        f"ingested {documents} documents ({pages} pages, {passages} passages) in {seconds:.1f} s "
        f"with {args.workers} workers, {len(load.kills)} killed (OCR {args.ocr})"
    )
    print(
        f"throughput: {documents / seconds:.2f} documents/s, {pages / seconds:.1f} pages/s, "
        f"{passages / seconds:.0f} passages/s"
    )
    tries = attempts_by_file(db)
    for kill in load.kills:
        # The claim was seen just before the kill; the worker may still have committed in between.
        outcome = "claimed again by another worker" if tries.get(kill.held or "", 1) > 1 else "stored before the kill"
        print(
            f"  SIGKILL worker {kill.worker_pid} at {kill.at - load.started:.1f} s, "
            f"mid-document: {kill.held} ({outcome})"
        )
    print(f"attempts per document: {dict(sorted(attempts(db).items()))}")
    print_latency("keyword search during the load", load.search_seconds)
    print_latency(f"keyword search afterwards, idle, {passages} passages", idle_searches(db))
    print(
        f"search errors during the load: {len(load.search_errors)}"
        + (f", e.g. {load.search_errors[0]}" if load.search_errors else "")
    )


def print_latency(label: str, seconds: list[float]) -> None:
    latencies = [s * 1000 for s in seconds]
    if latencies:
        print(
            f"{label}: {len(latencies)} searches, p50 {percentile(latencies, 0.5):.1f} ms, "
            f"p95 {percentile(latencies, 0.95):.1f} ms, max {max(latencies):.1f} ms, "
            f"mean {statistics.mean(latencies):.1f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--lease", type=float, default=20.0, help="VKPP_LEASE_SECONDS for the workers")
    parser.add_argument("--ocr", choices=("off", "auto"), default="off", help="VKPP_OCR for the workers")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database and the worker logs")
    args = parser.parse_args()
    random.seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix="vkpp-fault-load-"))
    name, url = create_database()
    db = open_database(url)
    try:
        print(f"reading the {len(originals())} originals for reference counts...", flush=True)
        expected = reference(args.ocr)
        (work / "shared").mkdir()
        (work / "logs").mkdir()
        made = replicate(work / "shared", args.documents)
        hashes = {file_sha256(work / "shared" / copy) for copy in made}
        queued = subprocess.run(
            [*VKPP, "queue", str(work / "shared"), "--db", url], capture_output=True, text=True, cwd=ROOT
        )
        print(f"{queued.stdout.strip()} ({len(made)} unique copies of {len(originals())} sample reviews)", flush=True)
        load = run_load(db, url, args, len(made), work / "logs")
        problems = check(db, made, hashes, expected)
        report(db, load, len(made), args)
        print("exactly once: " + ("yes, every document stored once and whole" if not problems else "NO"))
        for problem in problems[:20]:
            print(f"  {problem}")
        return 1 if problems else 0
    finally:
        db.dispose()
        if args.keep:
            print(f"kept: database {url}, files and worker logs in {work}")
        else:
            drop_database(name)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
