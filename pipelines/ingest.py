"""The ingest batch job: review PDFs in, reviews with their pages and passages in the database.

Files are keyed by the SHA-256 of their bytes, so an unchanged file is skipped. Reading (extract ->
segment -> metadata) runs in worker processes; each review is written by this process in its own
transaction. A file that cannot be read gets a specific error, recorded and reported, and the batch goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from vkpp_learning import __version__, registry, settings
from vkpp_learning.db import Database, open_database
from vkpp_learning.db.store import IngestedReview, record_ingest_error, save_review, stored_hashes
from vkpp_learning.errors import BadDocumentError, ConfigurationError, VkppError

PIPELINE_VERSION = f"ingest.v1 vkpp-learning {__version__}"

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class FileError:
    file: str
    code: str
    message: str
    sha256: str | None = None

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "error": f"{self.code}: {self.message}"}


@dataclass
class IngestSummary:
    """What a run did: counts, time, and every file that failed with its reason."""

    reviews: int = 0
    skipped: int = 0
    pages: int = 0
    passages: int = 0
    seconds: float = 0.0
    errors: list[FileError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "reviews": self.reviews,
            "skipped": self.skipped,
            "pages": self.pages,
            "passages": self.passages,
            "seconds": round(self.seconds, 2),
            "errors": [error.to_json() for error in self.errors],
        }

    @property
    def exit_code(self) -> int:
        """0 when every file was ingested or skipped, 3 when some failed, 1 when all failed."""
        if not self.errors:
            return 0
        return 3 if self.reviews + self.skipped else 1


@dataclass(frozen=True)
class Job:
    """One file to read: where it is, its hash and size, its manifest row, whether it replaces a stored review."""

    path: str
    sha256: str
    size: int
    manifest_row: dict[str, str] | None = None
    replace: bool = False

    @property
    def filename(self) -> str:
        return Path(self.path).name


Outcome = IngestedReview | FileError


def ingest(
    paths: Sequence[str | Path],
    db_url: str | None = None,
    backend: str = "pdfium",
    workers: int = 1,
    manifest: str | Path | dict[str, dict[str, str]] | None = None,
    force: bool = False,
    progress: bool = False,
    *,
    report: Reporter | None = None,
) -> IngestSummary:
    """Ingest the PDFs at `paths` (files or folders, searched recursively) into the database at `db_url`."""
    started = time.perf_counter()
    say = report or (lambda _message: None)
    backend = resolve_backend(backend)
    sources = find_sources(paths)
    if not sources:
        say(f"warning: no PDF files found in {', '.join(map(str, paths))}")
    rows = read_manifest(manifest)
    db = open_database(db_url)
    summary = IngestSummary()
    try:
        with progress_bar(len(sources), progress) as bar:
            jobs = plan(db, sources, rows, force, summary, say, bar.update)
            for outcome in run_jobs(jobs, backend, workers):
                store_outcome(db, outcome, jobs, summary, say)
                bar.update(1)
    finally:
        db.dispose()
    summary.seconds = time.perf_counter() - started
    return summary


def resolve_backend(name: str) -> str:
    try:
        return registry.resolve("extract", name)
    except KeyError as exc:
        raise ConfigurationError(f"unknown PDF backend: {exc.args[0]}") from None


def find_sources(paths: Iterable[str | Path]) -> list[Path]:
    """Every file to try: named files as given (whatever their suffix), and *.pdf under named folders."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.update(dict.fromkeys(pdfs_under(path)))
        elif path.exists():
            found[path] = None
        else:
            raise VkppError(f"{path}: no such file or folder", code="not_found")
    return list(found)


def pdfs_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())


def read_manifest(manifest: str | Path | dict[str, dict[str, str]] | None) -> dict[str, dict[str, str]]:
    """Manifest rows by file name, from a CSV path or rows already loaded."""
    if manifest is None or isinstance(manifest, dict):
        return manifest or {}
    from vkpp_learning.metadata import load_manifest

    return load_manifest(manifest)


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def plan(
    db: Database,
    sources: list[Path],
    manifest: dict[str, dict[str, str]],
    force: bool,
    summary: IngestSummary,
    say: Reporter,
    skip: Callable[[int], Any],
) -> dict[str, Job]:
    """Hash every file and decide what to read; unchanged files and same-content copies are skipped."""
    with db.session() as session:
        stored = stored_hashes(session)
    jobs: dict[str, Job] = {}
    for path in sources:
        job = make_job(path, manifest.get(path.name))
        if isinstance(job, FileError):
            fail(db, job, summary, say)
            skip(1)
        elif job.sha256 in jobs or (job.sha256 in stored and not force):
            if job.sha256 in jobs:
                say(f"note: {path.name} has the same content as {jobs[job.sha256].filename}; skipped")
            summary.skipped += 1
            skip(1)
        else:
            jobs[job.sha256] = dataclasses.replace(job, replace=job.sha256 in stored)
    return jobs


def make_job(path: Path, manifest_row: dict[str, str] | None) -> Job | FileError:
    source = str(path.resolve())
    try:
        size = path.stat().st_size
        # Checked before hashing so a huge file is refused without reading it all.
        limit_mb = settings.get_int("VKPP_MAX_FILE_MB")
        if size > limit_mb * 1024 * 1024:
            return FileError(source, "too_large", too_large_message(size, limit_mb))
        return Job(source, file_sha256(path), size, manifest_row)
    except OSError as exc:
        return FileError(source, "unreadable", f"the file cannot be read: {exc.strerror or exc}")


def too_large_message(size: int, limit_mb: int) -> str:
    return (
        f"the file is {size / 2**20:.1f} MB, over the {limit_mb} MB limit; raise VKPP_MAX_FILE_MB to ingest it anyway"
    )


def run_jobs(jobs: dict[str, Job], backend: str, workers: int) -> Iterator[Outcome]:
    """Read every job, in this process when workers is 1, else in a pool of worker processes."""
    ocr = settings.get("VKPP_OCR")
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs.values():
            yield read_review(job, backend, ocr)
        return
    crashed: list[Job] = []
    # spawn, not fork: the parent holds database connections and a progress-bar thread.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(read_review, job, backend, ocr): job for job in jobs.values()}
        for future in as_completed(futures):
            outcome = future_outcome(future, futures[future])
            if outcome is None:
                crashed.append(futures[future])
            else:
                yield outcome
    yield from (read_in_own_process(job, backend, ocr) for job in crashed)


def future_outcome(future: Future[Outcome], job: Job) -> Outcome | None:
    """The worker's outcome; None when the pool broke (some worker died), so the job is retried alone."""
    try:
        return future.result()
    except BrokenProcessPool:
        return None
    except Exception as exc:  # e.g. a result that cannot be sent back to this process
        return FileError(job.path, "internal", f"{type(exc).__name__}: {exc}", job.sha256)


def read_in_own_process(job: Job, backend: str, ocr: str) -> Outcome:
    """Re-read a job whose pool broke, alone, so a file that kills its reader is named and the others pass."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(read_review, job, backend, ocr).result()
        except BrokenProcessPool:
            message = "the PDF reader crashed on this file (the worker process died); the file is likely corrupt"
            return FileError(job.path, "crashed", message, job.sha256)


def read_review(job: Job, backend: str, ocr: str) -> Outcome:
    """Extract, segment and read the metadata of one file. Top-level so worker processes can run it."""
    try:
        return _read_review(job, backend, ocr)
    except BadDocumentError as exc:
        return FileError(job.path, exc.code, exc.message, job.sha256)
    except Exception as exc:  # a bug or a library failure: reported per file, never a traceback
        return FileError(job.path, "internal", f"{type(exc).__name__}: {exc}", job.sha256)


def _read_review(job: Job, backend: str, ocr: str) -> IngestedReview:
    from vkpp_learning.extract import extract_pdf
    from vkpp_learning.metadata import read_metadata
    from vkpp_learning.segment import segment

    document = extract_pdf(job.path, backend, ocr=ocr)
    if document.pages and len(document.needs_ocr_pages) == document.page_count:
        raise BadDocumentError(
            "no page has a text layer and OCR is not available: install Tesseract (tesseract-ocr) or set VKPP_OCR=auto",
            code="needs_ocr",
        )
    return IngestedReview(
        source_path=job.path,
        sha256=job.sha256,
        file_size=job.size,
        document=document,
        segmentation=segment(document),
        metadata=read_metadata(document, job.filename, job.manifest_row),
        pipeline_version=PIPELINE_VERSION,
    )


def store_outcome(db: Database, outcome: Outcome, jobs: dict[str, Job], summary: IngestSummary, say: Reporter) -> None:
    if isinstance(outcome, FileError):
        fail(db, outcome, summary, say)
        return
    try:
        save_review(db, outcome, replace=jobs[outcome.sha256].replace)
    except SQLAlchemyError as exc:
        fail(db, FileError(outcome.source_path, "storage", storage_message(exc), outcome.sha256), summary, say)
        return
    count(outcome, summary, say)


def storage_message(exc: SQLAlchemyError) -> str:
    detail = getattr(exc, "orig", None) or exc
    return f"the review could not be saved, nothing of it was stored: {detail}"


def count(review: IngestedReview, summary: IngestSummary, say: Reporter) -> None:
    summary.reviews += 1
    summary.pages += review.document.page_count
    summary.passages += len(review.segmentation.passages)
    if review.status == "needs_ocr":
        numbers = review.document.needs_ocr_pages
        pages = f"pages {', '.join(map(str, numbers))} have" if len(numbers) > 1 else f"page {numbers[0]} has"
        warning = f"{review.filename}: {pages} no text layer and could not be read (OCR is off or not installed)"
        summary.warnings.append(warning)
        say(f"warning: {warning}")


def fail(db: Database, error: FileError, summary: IngestSummary, say: Reporter) -> None:
    """Record a file's error in the database (best effort: the database itself may be the problem) and report it."""
    summary.errors.append(error)
    say(f"error: {Path(error.file).name}: {error.message} [{error.code}]")
    try:
        record_ingest_error(db, source_path=error.file, code=error.code, message=error.message, sha256=error.sha256)
    except SQLAlchemyError as exc:
        say(f"error: could not record that error in the database: {getattr(exc, 'orig', exc)}")


class _NoBar:
    def update(self, _n: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass


def progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar on stderr (stdout stays clean for --json); shown only on a terminal."""
    if not enabled:
        return _NoBar()
    import sys

    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, disable=None, desc="ingest")
