"""The ingest queue on SQLite and PostgreSQL: enqueueing, claims, leases, retries and failures, and real
`vkpp worker` processes, one killed with SIGKILL in the middle of a document and another finishing the queue."""

from __future__ import annotations

import os
import queue as lines_queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from pipelines import queue
from pipelines.ingest import FileError, Job, file_sha256, ingest, read_review
from tests.conftest import CORPUS
from vkpp_learning.cli import main
from vkpp_learning.db import Database, models, open_database

SAMPLES = ("cspr_child_t_2022.pdf", "dhr_louise_2023.pdf", "mappa_offender_x_2020.pdf")
ROOT = Path(__file__).resolve().parent.parent
# The `vkpp` entry point in a fresh interpreter (`-m vkpp_learning.cli` would miss the commands other modules add).
VKPP = (sys.executable, "-c", "from vkpp_learning.cli import main; main()")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A 'shared folder' holding copies of three sample reviews."""
    folder = tmp_path / "shared"
    folder.mkdir()
    for name in SAMPLES:
        shutil.copy(CORPUS / name, folder / name)
    return folder


def rows(db: Database) -> dict[str, models.QueuedDocument]:
    with db.session() as session:
        return {Path(r.source_path).name: r for r in session.scalars(select(models.QueuedDocument))}


def stored(db: Database) -> dict[str, int]:
    """Stored reviews by file name, with their passage counts."""
    with db.session() as session:
        statement = (
            select(models.Review.filename, func.count(models.Passage.id))
            .join(models.Passage, isouter=True)
            .group_by(models.Review.id, models.Review.filename)
        )
        return {name: n for name, n in session.execute(statement)}


def review_count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(models.Review)) or 0


def read(claim: queue.Claim) -> object:
    return read_review(claim.job(), "extract.pdfium.v1", "off")


# --- enqueueing --------------------------------------------------------------------------------------


def test_enqueue_stores_absolute_paths_and_hashes_once_per_content(db: Database, shared: Path) -> None:
    (shared / "copy_of_louise.pdf").write_bytes((shared / "dhr_louise_2023.pdf").read_bytes())
    first = queue.enqueue(db, [shared])
    assert (first.queued, first.already_queued, first.already_stored) == (3, 0, 0)
    again = queue.enqueue(db, [shared])
    assert (again.queued, again.already_queued) == (0, 3)
    queued = rows(db)
    assert set(queued) <= {*SAMPLES, "copy_of_louise.pdf"} and len(queued) == 3
    for row in queued.values():
        assert Path(row.source_path).is_absolute()
        assert row.sha256 == file_sha256(Path(row.source_path))
        assert (row.status, row.attempts, row.file_size) == ("queued", 0, Path(row.source_path).stat().st_size)


def test_enqueue_skips_stored_reviews_unless_forced(db: Database, db_url: str, shared: Path) -> None:
    ingest([str(shared / SAMPLES[0])], db_url)
    summary = queue.enqueue(db, [shared])
    assert (summary.queued, summary.already_stored) == (2, 1)
    forced = queue.enqueue(db, [shared / SAMPLES[0]], force=True)
    assert forced.queued == 1 and rows(db)[SAMPLES[0]].force


def test_enqueue_refuses_unreadable_files_with_a_recorded_error(
    db: Database, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VKPP_MAX_FILE_MB", "0")
    summary = queue.enqueue(db, [shared / SAMPLES[0]])
    assert summary.queued == 0 and [e.code for e in summary.errors] == ["too_large"]
    assert not rows(db)
    with db.session() as session:
        assert session.scalars(select(models.IngestError.code)).all() == ["too_large"]


def test_enqueue_keeps_the_manifest_row_for_the_worker(db: Database, shared: Path) -> None:
    manifest = {SAMPLES[1]: {"file": SAMPLES[1], "area": "Eastmoor", "year": "2023"}}
    queue.enqueue(db, [shared], manifest=manifest)
    claim = next(c for c in iter(lambda: queue.claim(db, "w", 300, 3), None) if c.filename == SAMPLES[1])
    assert claim.manifest_row == manifest[SAMPLES[1]]
    assert queue.finish_stored(db, claim, read(claim)) == "stored"  # type: ignore[arg-type]
    with db.session() as session:
        assert session.scalar(select(models.Review.area).where(models.Review.filename == SAMPLES[1])) == "Eastmoor"


# --- claims, leases, retries -------------------------------------------------------------------------


def test_claims_never_hand_the_same_document_to_two_workers(db: Database, shared: Path, tmp_path: Path) -> None:
    for n in range(12):  # 15 rows: the samples plus 12 copies made unique by a trailing PDF comment
        (shared / f"copy{n}.pdf").write_bytes((shared / SAMPLES[0]).read_bytes() + f"\n%copy {n}\n".encode())
    queue.enqueue(db, [shared])
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all(worker: str) -> None:
        while (claim := queue.claim(db, worker, 300, 3)) is not None:
            with lock:
                claimed.append(claim.id)

    threads = [threading.Thread(target=claim_all, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 15 and len(set(claimed)) == 15
    assert {row.status for row in rows(db).values()} == {"claimed"}


def test_a_claim_older_than_the_lease_is_taken_over_and_the_first_worker_writes_nothing(
    db: Database, shared: Path
) -> None:
    queue.enqueue(db, [shared / SAMPLES[0]])
    first = queue.claim(db, "host-a:1", 300, 3)
    assert first is not None and first.attempts == 1
    assert queue.claim(db, "host-b:2", 300, 3) is None  # the claim is live
    time.sleep(0.05)
    second = queue.claim(db, "host-b:2", 0.01, 3)  # seen with a shorter lease, it ran out
    assert second is not None and (second.id, second.attempts) == (first.id, 2)
    assert not queue.renew(db, first)
    assert queue.finish_stored(db, first, read(first)) == "lost"  # type: ignore[arg-type]
    assert review_count(db) == 0
    assert queue.finish_stored(db, second, read(second)) == "stored"  # type: ignore[arg-type]
    assert stored(db) == {SAMPLES[0]: stored(db)[SAMPLES[0]]} and review_count(db) == 1
    assert rows(db)[SAMPLES[0]].status == "done"


def test_a_document_whose_workers_keep_dying_fails_after_max_attempts(db: Database, shared: Path) -> None:
    queue.enqueue(db, [shared / SAMPLES[0]])
    for attempt in (1, 2):
        claim = queue.claim(db, f"doomed:{attempt}", 0.01, 2)
        assert claim is not None and claim.attempts == attempt
        time.sleep(0.05)
    assert queue.claim(db, "next:3", 0.01, 2) is None
    row = rows(db)[SAMPLES[0]]
    assert row.status == "failed" and "stopped before finishing it, 2 times" in (row.error or "")
    with db.session() as session:
        assert session.scalars(select(models.IngestError.code)).all() == ["crashed"]


def test_internal_errors_are_retried_and_bad_documents_fail_at_once(db: Database, shared: Path) -> None:
    queue.enqueue(db, [shared / SAMPLES[0], shared / SAMPLES[1]])
    first = queue.claim(db, "w", 300, 2)
    assert first is not None
    glitch = FileError(first.source_path, "internal", "RuntimeError: out of file handles", first.sha256)
    assert queue.finish_failed(db, first, glitch, 2) == "retry"
    assert rows(db)[first.filename].status == "queued"
    second = queue.claim(db, "w", 300, 2)
    assert second is not None and second.id == first.id and second.attempts == 2
    assert queue.finish_failed(db, second, glitch, 2) == "failed"
    other = queue.claim(db, "w", 300, 2)
    assert other is not None
    broken = FileError(other.source_path, "corrupt", "the PDF is damaged", other.sha256)
    assert queue.finish_failed(db, other, broken, 2) == "failed"
    assert {r.status for r in rows(db).values()} == {"failed"}
    assert queue.retry_failed(db) == 2
    assert {(r.status, r.attempts) for r in rows(db).values()} == {("queued", 0)}


def test_a_document_stored_meanwhile_is_marked_done_not_stored_twice(db: Database, db_url: str, shared: Path) -> None:
    queue.enqueue(db, [shared / SAMPLES[0]])
    claim = queue.claim(db, "w", 300, 3)
    assert claim is not None
    item = read(claim)
    ingest([str(shared / SAMPLES[0])], db_url)  # an analyst's `vkpp ingest` got there first
    assert queue.finish_stored(db, claim, item) == "already_stored"  # type: ignore[arg-type]
    assert review_count(db) == 1 and rows(db)[SAMPLES[0]].status == "done"


def test_forced_documents_replace_the_stored_review(db: Database, db_url: str, shared: Path) -> None:
    ingest([str(shared / SAMPLES[0])], db_url)
    with db.session() as session:
        first_stored = session.scalar(select(models.Review.ingested_at))
    queue.enqueue(db, [shared / SAMPLES[0]], force=True)
    claim = queue.claim(db, "w", 300, 3)
    assert claim is not None and claim.force
    assert queue.finish_stored(db, claim, read(claim)) == "stored"  # type: ignore[arg-type]
    with db.session() as session:
        assert session.scalar(select(models.Review.ingested_at)) > first_stored  # a new row, not the old one
    assert review_count(db) == 1


# --- real worker processes ---------------------------------------------------------------------------


class WorkerProcess:
    """`vkpp worker` as a real subprocess, its progress lines (stderr) readable as they come."""

    def __init__(self, db_url: str, *args: str, **env: str) -> None:
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "VKPP_OCR": "off", **env}
        command = [*VKPP, "worker", "--db", db_url, "--poll", "0.2", *args]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: lines_queue.Queue[str] = lines_queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except lines_queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"the worker never printed {text!r}; it printed: {self.seen}")

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        stdout, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, stdout


def test_a_worker_killed_mid_document_leaves_nothing_and_another_finishes_the_queue(
    db: Database, db_url: str, shared: Path
) -> None:
    queue.enqueue(db, [shared])
    doomed = WorkerProcess(db_url, VKPP_TEST_PAUSE_AFTER_EXTRACT="60", VKPP_LEASE_SECONDS="3")
    line = doomed.wait_for("pausing")
    victim = line.split("read ", 1)[1].split(";", 1)[0]
    os.kill(doomed.process.pid, signal.SIGKILL)  # mid-document: read, not yet stored
    doomed.process.wait(timeout=30)
    assert review_count(db) == 0
    row = rows(db)[victim]
    assert (row.status, row.attempts) == ("claimed", 1)
    assert (row.claimed_by or "").endswith(f":{doomed.process.pid}")

    rescuer = WorkerProcess(db_url, VKPP_LEASE_SECONDS="3")
    code, output = rescuer.finish()
    assert code == 0, rescuer.seen
    assert "stored 3 review(s)" in output and "stopped: empty" in output
    final = rows(db)
    assert {name: (r.status, r.attempts) for name, r in final.items()} == {
        name: ("done", 2 if name == victim else 1) for name in SAMPLES
    }
    assert stored(db) == {name: passages_in(shared / name) for name in SAMPLES}  # each exactly once, each whole


def passages_in(path: Path) -> int:
    """How many passages the ingest pipeline reads from a file, for comparison with what was stored."""
    item = read_review(Job(str(path), file_sha256(path), path.stat().st_size), "extract.pdfium.v1", "off")
    assert not isinstance(item, FileError), item
    return len(item.segmentation.passages)


def test_sigterm_lets_the_current_document_finish(db: Database, db_url: str, shared: Path) -> None:
    queue.enqueue(db, [shared])
    worker = WorkerProcess(db_url, VKPP_TEST_PAUSE_AFTER_EXTRACT="2")
    line = worker.wait_for("pausing")
    current = line.split("read ", 1)[1].split(";", 1)[0]
    worker.process.send_signal(signal.SIGTERM)
    code, output = worker.finish()
    assert code == 0 and "stopped: signal" in output
    assert list(stored(db)) == [current]
    assert sorted(r.status for r in rows(db).values()) == ["done", "queued", "queued"]


def test_a_live_worker_renews_its_claim_so_a_slow_document_is_not_taken_over(
    db: Database, db_url: str, shared: Path
) -> None:
    queue.enqueue(db, [shared / SAMPLES[0]])
    worker = WorkerProcess(db_url, "--once", VKPP_TEST_PAUSE_AFTER_EXTRACT="4", VKPP_LEASE_SECONDS="1.5")
    worker.wait_for("pausing")
    time.sleep(2.5)  # longer than the lease: only the heartbeat keeps the claim
    assert queue.claim(db, "impatient:1", 1.5, 3) is None
    code, _ = worker.finish()
    assert code == 0
    assert (rows(db)[SAMPLES[0]].status, rows(db)[SAMPLES[0]].attempts) == ("done", 1)


def test_a_file_changed_after_queueing_is_refused(db: Database, db_url: str, shared: Path) -> None:
    queue.enqueue(db, [shared / SAMPLES[0]])
    with (shared / SAMPLES[0]).open("ab") as handle:
        handle.write(b"\n%edited\n")
    code, _ = WorkerProcess(db_url).finish()
    assert code == 1
    row = rows(db)[SAMPLES[0]]
    assert row.status == "failed" and "changed after it was queued" in (row.error or "")
    assert review_count(db) == 0


def test_queue_command_queues_and_reports_status(db_url: str, shared: Path) -> None:
    runner = CliRunner()
    queued = runner.invoke(main, ["queue", str(shared), "--db", db_url])
    assert queued.exit_code == 0 and "Queued 3 file(s)" in queued.output
    status = runner.invoke(main, ["queue", "--status", "--db", db_url])
    assert status.exit_code == 0 and "0/3 finished" in status.output and "3 waiting" in status.output
    assert runner.invoke(main, ["queue", "--db", db_url]).exit_code == 2


def test_workers_in_parallel_store_every_document_once(db: Database, db_url: str, shared: Path) -> None:
    for n in range(3):
        (shared / f"copy{n}.pdf").write_bytes((shared / SAMPLES[n]).read_bytes() + f"\n%copy {n}\n".encode())
    queue.enqueue(db, [shared])
    workers = [WorkerProcess(db_url) for _ in range(2)]
    results = [worker.finish() for worker in workers]
    assert [code for code, _ in results] == [0, 0]
    assert sum(int(out.split("stored ", 1)[1].split(" ", 1)[0]) for _, out in results) == 6
    assert {(r.status, r.attempts) for r in rows(db).values()} == {("done", 1)}
    with db.session() as session:
        hashes = session.scalars(select(models.Review.sha256)).all()
    assert len(hashes) == len(set(hashes)) == 6
