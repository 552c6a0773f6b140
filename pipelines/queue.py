"""The ingest queue shared by `vkpp worker` processes on one or many machines: enqueue files, claim one at a
time (SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's write lock), store the review and mark its row
done in ONE transaction, so a worker killed mid-document leaves nothing written and its claim to run out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipelines.ingest import FileError, Job, find_sources, make_job, read_manifest
from vkpp_learning.db import Database
from vkpp_learning.db.models import QueuedDocument, Review, utc_now
from vkpp_learning.db.store import IngestedReview, add_ingest_error, add_review, record_ingest_error

Reporter = Callable[[str], None]
# Errors another try could get past: a bug or a storage hiccup, a path this worker's machine cannot see,
# a worker that died. Everything else (a bad PDF, a changed file) fails the document at once.
RETRYABLE = frozenset({"internal", "storage", "not_found", "crashed"})
LOOKUP_CHUNK = 500  # sha256 values per IN (...) when enqueueing thousands of files


@dataclass(frozen=True)
class Claim:
    """A document this worker has claimed: what to read and how to recognise its row again."""

    id: int
    worker: str
    source_path: str
    sha256: str
    file_size: int
    manifest_row: dict[str, str] | None
    force: bool
    attempts: int

    @property
    def filename(self) -> str:
        return Path(self.source_path).name

    def job(self) -> Job:
        """The ingest job for the per-file reader `vkpp ingest` uses."""
        return Job(self.source_path, self.sha256, self.file_size, self.manifest_row, replace=self.force)


@dataclass
class EnqueueSummary:
    """What `vkpp queue PATH...` did with each file it found."""

    queued: int = 0
    requeued: int = 0
    already_queued: int = 0
    already_stored: int = 0
    errors: list[FileError] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "requeued": self.requeued,
            "already_queued": self.already_queued,
            "already_stored": self.already_stored,
            "errors": [error.to_json() for error in self.errors],
        }


@dataclass
class QueueStatus:
    """Progress of the queue: rows per status, live claims, failures, and the rate documents were finished at."""

    counts: dict[str, int]
    claims: list[tuple[str, str, datetime | None]]  # (worker, file name, claimed at)
    stale: int  # claims older than the lease: their worker has most likely died
    failures: list[tuple[str, str]]  # (source path, error)
    first_finished: datetime | None = None
    last_finished: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def unfinished(self) -> int:
        return self.counts.get("queued", 0) + self.counts.get("claimed", 0)

    def documents_per_second(self) -> float | None:
        done = self.counts.get("done", 0)
        if done < 2 or not self.first_finished or not self.last_finished:
            return None
        seconds = (self.last_finished - self.first_finished).total_seconds()
        return (done - 1) / seconds if seconds > 0 else None

    def to_json(self) -> dict[str, Any]:
        rate = self.documents_per_second()
        return {
            "counts": self.counts,
            "total": self.total,
            "claims": [{"worker": w, "file": f, "since": _iso(at)} for w, f, at in self.claims],
            "stale_claims": self.stale,
            "failed": [{"file": path, "error": error} for path, error in self.failures],
            "documents_per_second": None if rate is None else round(rate, 3),
        }


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


# Enqueueing


def enqueue(
    db: Database,
    paths: Sequence[str | Path],
    manifest: str | Path | dict[str, dict[str, str]] | None = None,
    force: bool = False,
    *,
    report: Reporter | None = None,
) -> EnqueueSummary:
    """Queue the PDFs at `paths` (files, or folders searched recursively) by absolute path and SHA-256.

    A file already stored is not queued (unless `force`, which re-reads it and replaces the review); a file
    already queued or being read is left as it is; a failed or finished row for the same content is queued again.
    """
    say = report or (lambda _message: None)
    rows = read_manifest(manifest)
    summary = EnqueueSummary()
    jobs: dict[str, Job] = {}
    for path in find_sources(paths):
        job = make_job(path, rows.get(path.name))
        if isinstance(job, FileError):
            refuse(db, job, summary, say)
        else:
            jobs.setdefault(job.sha256, job)
    with db.writing() as session:
        stored = stored_among(session, list(jobs))
        existing = queued_among(session, list(jobs))
        for sha, job in jobs.items():
            place(session, job, force, sha in stored, existing.get(sha), summary)
    return summary


def refuse(db: Database, error: FileError, summary: EnqueueSummary, say: Reporter) -> None:
    summary.errors.append(error)
    say(f"error: {Path(error.file).name}: {error.message} [{error.code}]")
    record_ingest_error(db, source_path=error.file, code=error.code, message=error.message, sha256=error.sha256)


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield values[start : start + LOOKUP_CHUNK]


def stored_among(session: Session, hashes: list[str]) -> set[str]:
    """Which of these SHA-256 values are stored reviews."""
    found: set[str] = set()
    for chunk in _chunks(hashes):
        found.update(session.scalars(select(Review.sha256).where(Review.sha256.in_(chunk))))
    return found


def queued_among(session: Session, hashes: list[str]) -> dict[str, QueuedDocument]:
    """The queue rows already there for these SHA-256 values."""
    found: dict[str, QueuedDocument] = {}
    for chunk in _chunks(hashes):
        for row in session.scalars(select(QueuedDocument).where(QueuedDocument.sha256.in_(chunk))):
            found[cast(str, row.sha256)] = row
    return found


def place(
    session: Session, job: Job, force: bool, stored: bool, row: QueuedDocument | None, summary: EnqueueSummary
) -> None:
    """Decide what one file becomes: a new row, a row queued again, or nothing to do."""
    if row is not None and row.status in ("queued", "claimed"):
        summary.already_queued += 1
    elif stored and not force:
        summary.already_stored += 1
    elif row is not None:
        requeue(row, job, force)
        summary.requeued += 1
    else:
        summary.queued += insert_row(session, job, force)


def requeue(row: QueuedDocument, job: Job, force: bool) -> None:
    row.status, row.attempts, row.error = "queued", 0, None
    row.claimed_by = row.claimed_at = row.finished_at = None
    row.source_path, row.file_size, row.manifest_row, row.force = job.path, job.size, job.manifest_row, force


def insert_row(session: Session, job: Job, force: bool) -> int:
    """Insert a queue row unless another `vkpp queue` got there first; returns 1 when inserted."""
    values = {
        "source_path": job.path,
        "sha256": job.sha256,
        "file_size": job.size,
        "manifest_row": job.manifest_row,
        "force": force,
        "status": "queued",
        "attempts": 0,
        "created_at": utc_now(),
    }
    statement = dialect_insert(session).values(values).on_conflict_do_nothing(index_elements=["sha256"])
    return len(session.execute(statement.returning(QueuedDocument.id)).all())


def dialect_insert(session: Session) -> Any:
    """INSERT with ON CONFLICT, which both backends speak through their own dialect's insert()."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(QueuedDocument)


def retry_failed(db: Database) -> int:
    """Queue every failed document again with a fresh count of attempts; returns how many."""
    with db.writing() as session:
        statement = (
            update(QueuedDocument)
            .where(QueuedDocument.status == "failed")
            .values(status="queued", attempts=0, error=None, claimed_by=None, claimed_at=None, finished_at=None)
        )
        return cast(CursorResult[Any], session.execute(statement)).rowcount


# Claiming


def database_now(session: Session) -> datetime:
    """The time to stamp claims with: the PostgreSQL server's clock, shared by every machine; else this one's."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(datetime, session.scalar(select(func.now())))
    return utc_now()


def claimable_statement(cutoff: datetime) -> Any:
    """The oldest queued row, or one whose claim ran out; rows other workers are claiming right now are skipped."""
    row = QueuedDocument
    ready = or_(row.status == "queued", and_(row.status == "claimed", row.claimed_at < cutoff))
    return select(row).where(ready).order_by(row.id).limit(1).with_for_update(skip_locked=True)


def exhausted_statement(cutoff: datetime, max_attempts: int) -> Any:
    """Claims that ran out on their last allowed attempt: their workers died on them every time."""
    row = QueuedDocument
    expired = and_(row.status == "claimed", row.claimed_at < cutoff, row.attempts >= max_attempts)
    return select(row).where(expired).with_for_update(skip_locked=True)


def claim(db: Database, worker: str, lease_seconds: float, max_attempts: int) -> Claim | None:
    """Claim the next document in one short transaction; None when nothing is ready to be claimed."""
    with db.writing() as session:
        now = database_now(session)
        cutoff = now - timedelta(seconds=lease_seconds)
        for row in session.scalars(exhausted_statement(cutoff, max_attempts)):
            message = f"the worker reading this file stopped before finishing it, {row.attempts} times"
            close(session, row, "failed", message, now)
            add_ingest_error(session, source_path=row.source_path, code="crashed", message=message, sha256=row.sha256)
        row = session.scalars(claimable_statement(cutoff)).first()
        if row is None:
            return None
        row.status, row.claimed_by, row.claimed_at, row.attempts = "claimed", worker, now, row.attempts + 1
        return as_claim(row, worker)


def as_claim(row: QueuedDocument, worker: str) -> Claim:
    return Claim(
        id=row.id,
        worker=worker,
        source_path=row.source_path,
        sha256=cast(str, row.sha256),
        file_size=row.file_size or 0,
        manifest_row=row.manifest_row,
        force=row.force,
        attempts=row.attempts,
    )


def close(session: Session, row: QueuedDocument, status: str, error: str | None, now: datetime) -> None:
    row.status, row.error, row.finished_at = status, error, now


def renew(db: Database, claim: Claim) -> bool:
    """Push this worker's claim forward (the lease runs from now); False when the claim is no longer ours."""
    with db.writing() as session:
        statement = update(QueuedDocument).where(*own_row(claim)).values(claimed_at=database_now(session))
        return cast(CursorResult[Any], session.execute(statement)).rowcount == 1


def own_row(claim: Claim) -> tuple[Any, ...]:
    row = QueuedDocument
    return (row.id == claim.id, row.status == "claimed", row.claimed_by == claim.worker)


def lock_own_row(session: Session, claim: Claim) -> QueuedDocument | None:
    """The claimed row, locked for this transaction, if it is still this worker's claim."""
    return session.scalars(select(QueuedDocument).where(*own_row(claim)).with_for_update()).first()


# Finishing


def finish_stored(db: Database, claim: Claim, item: IngestedReview) -> str:
    """Store the review and mark the row done in ONE transaction.

    Returns "stored"; "already_stored" when the same content was stored meanwhile (by another worker or
    `vkpp ingest`): the reviews.sha256 unique constraint means a document can never be stored twice; or
    "lost" when the claim ran out and passed to another worker, in which case nothing is written.
    """
    try:
        with db.writing() as session:
            row = lock_own_row(session, claim)
            if row is None:
                return "lost"
            outcome = "stored"
            stored = session.scalar(select(Review.id).where(Review.sha256 == claim.sha256)) is not None
            if stored and not claim.force:
                outcome = "already_stored"
            else:
                add_review(session, item, replace=stored)
            close(session, row, "done", None, database_now(session))
            return outcome
    except IntegrityError:
        # Another transaction stored the same sha256 between our check and our insert: ours rolled back whole.
        return mark_done_already_stored(db, claim)


def mark_done_already_stored(db: Database, claim: Claim) -> str:
    with db.writing() as session:
        row = lock_own_row(session, claim)
        if row is None:
            return "lost"
        close(session, row, "done", None, database_now(session))
        return "already_stored"


def finish_failed(db: Database, claim: Claim, error: FileError, max_attempts: int) -> str:
    """Record a file that could not be read: "failed" for good (with an ingest error), or "retry" later."""
    with db.writing() as session:
        row = lock_own_row(session, claim)
        if row is None:
            return "lost"
        if error.code in RETRYABLE and claim.attempts < max_attempts:
            row.status, row.error = "queued", f"{error.code}: {error.message}"
            row.claimed_by = row.claimed_at = None
            return "retry"
        close(session, row, "failed", f"{error.code}: {error.message}", database_now(session))
        add_ingest_error(
            session, source_path=claim.source_path, code=error.code, message=error.message, sha256=claim.sha256
        )
        return "failed"


# Progress


def queue_status(session: Session, lease_seconds: float, failures: int = 20) -> QueueStatus:
    """Counts per status, the live claims, the latest failures, and when the first and last documents finished."""
    row = QueuedDocument
    counts = {status: 0 for status in ("queued", "claimed", "done", "failed")}
    counts.update({status: n for status, n in session.execute(select(row.status, func.count()).group_by(row.status))})
    cutoff = database_now(session) - timedelta(seconds=lease_seconds)
    claimed = session.execute(
        select(row.claimed_by, row.source_path, row.claimed_at).where(row.status == "claimed").order_by(row.claimed_at)
    ).all()
    failed = session.execute(
        select(row.source_path, row.error).where(row.status == "failed").order_by(row.id.desc()).limit(failures)
    ).all()
    first, last = session.execute(select(func.min(row.finished_at), func.max(row.finished_at))).one()
    return QueueStatus(
        counts=counts,
        claims=[(str(w), Path(p).name, at) for w, p, at in claimed],
        stale=sum(1 for _w, _p, at in claimed if at is not None and as_aware(at) < as_aware(cutoff)),
        failures=[(p, e or "") for p, e in failed],
        first_finished=first,
        last_finished=last,
    )


def as_aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC); compare them as UTC."""
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
