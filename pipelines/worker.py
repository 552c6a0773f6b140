"""`vkpp worker`: claim queued documents one at a time, read each with the same per-file function as
`vkpp ingest`, and store it; any number of workers on any number of machines can share one database.

SIGTERM (or Ctrl-C) lets the current document finish, then the worker exits. A worker killed outright
leaves its document claimed; once the lease runs out another worker claims it again.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import queue
from pipelines.ingest import FileError, file_sha256, read_review, resolve_backend
from vkpp_learning import settings
from vkpp_learning.db import Database, open_database
from vkpp_learning.db.store import IngestedReview

Reporter = Callable[[str], None]
# Read only here, for tests: seconds to wait after a document is read and before it is stored, so a
# test can kill the worker mid-document deterministically.
PAUSE_HOOK = "VKPP_TEST_PAUSE_AFTER_EXTRACT"


@dataclass
class WorkerSummary:
    """What one worker did before it stopped, and why it stopped."""

    worker: str
    stored: int = 0
    already_stored: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0
    pages: int = 0
    passages: int = 0
    seconds: float = 0.0
    stopped: str = ""

    @property
    def documents(self) -> int:
        return self.stored + self.already_stored + self.failed + self.retried + self.lost

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "seconds": round(self.seconds, 2)}


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs: its PDF backend, lease, attempts, polling, and when it stops."""

    backend: str = "pdfium"
    lease_seconds: float = 300.0
    max_attempts: int = 3
    poll_seconds: float = 2.0
    once: bool = False  # at most one document, then stop
    idle_exit: float | None = None  # stop after this long with nothing to claim, even if others still hold claims
    forever: bool = False  # never stop for an empty queue

    @classmethod
    def from_settings(cls, **overrides: Any) -> WorkerOptions:
        values: dict[str, Any] = {
            "backend": settings.get("VKPP_BACKEND"),
            "lease_seconds": float(settings.get("VKPP_LEASE_SECONDS")),
            "max_attempts": settings.get_int("VKPP_MAX_ATTEMPTS"),
            "poll_seconds": float(settings.get("VKPP_WORKER_POLL_SECONDS")),
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)


def worker_name() -> str:
    """host:pid, recorded on each claim so `vkpp queue --status` shows who is reading what."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """One worker process's loop over the queue."""

    def __init__(self, db: Database, options: WorkerOptions, report: Reporter | None = None) -> None:
        self.db = db
        self.options = options
        self.backend = resolve_backend(options.backend)
        self.ocr = settings.get("VKPP_OCR")
        self.say = report or (lambda _message: None)
        self.summary = WorkerSummary(worker_name())
        self.stopping = threading.Event()

    def stop(self, *_signal: Any) -> None:
        """Finish the current document, then stop (the SIGTERM handler)."""
        if not self.stopping.is_set():
            self.say(f"{self.summary.worker}: stopping after the current document")
        self.stopping.set()

    def run(self) -> WorkerSummary:
        started = time.perf_counter()
        idle_since = time.monotonic()
        while not self.stopping.is_set():
            claim = queue.claim(self.db, self.summary.worker, self.options.lease_seconds, self.options.max_attempts)
            if claim is not None:
                self.process(claim)
                idle_since = time.monotonic()
                if self.options.once:
                    self.summary.stopped = "once"
                    break
                continue
            reason = self.idle_reason(time.monotonic() - idle_since)
            if reason:
                self.summary.stopped = reason
                break
            self.stopping.wait(self.options.poll_seconds)
        self.summary.stopped = self.summary.stopped or "signal"
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def idle_reason(self, idle: float) -> str:
        """Why an idle worker should stop now, or "" to keep polling."""
        if self.options.once:
            return "once"
        if self.options.idle_exit is not None and idle >= self.options.idle_exit:
            return "idle"
        if self.options.forever:
            return ""
        with self.db.session() as session:
            unfinished = queue.queue_status(session, self.options.lease_seconds, failures=0).unfinished
        # Documents still claimed by others are waited for: if their worker died, this one takes them over.
        return "" if unfinished else "empty"

    def process(self, claim: queue.Claim) -> None:
        self.say(f"{self.summary.worker}: reading {claim.filename} (attempt {claim.attempts})")
        started = time.perf_counter()
        with self.heartbeat(claim):
            outcome = self.read(claim)
            pause = float(os.environ.get(PAUSE_HOOK) or 0)
            if pause:
                self.say(f"{self.summary.worker}: read {claim.filename}; pausing {pause:g} s before storing")
                time.sleep(pause)
            result = self.finish(claim, outcome)
        self.tally(result, outcome)
        self.say(f"{self.summary.worker}: {result} {claim.filename} in {time.perf_counter() - started:.1f} s")

    def read(self, claim: queue.Claim) -> IngestedReview | FileError:
        """Check the file is the one queued (same SHA-256), then extract, segment and read its metadata."""
        path = Path(claim.source_path)
        if not path.is_file():
            message = f"no file at {path} on this machine: every worker must see the shared folder at the same path"
            return FileError(claim.source_path, "not_found", message, claim.sha256)
        sha = file_sha256(path)
        if sha != claim.sha256:
            message = f"the file changed after it was queued (SHA-256 {sha[:12]}..., queued as {claim.sha256[:12]}...)"
            return FileError(claim.source_path, "changed", message + "; queue it again", claim.sha256)
        return read_review(claim.job(), self.backend, self.ocr)

    def finish(self, claim: queue.Claim, outcome: IngestedReview | FileError) -> str:
        if isinstance(outcome, FileError):
            return queue.finish_failed(self.db, claim, outcome, self.options.max_attempts)
        return queue.finish_stored(self.db, claim, outcome)

    def tally(self, result: str, outcome: IngestedReview | FileError) -> None:
        field = {"stored": "stored", "already_stored": "already_stored", "failed": "failed", "retry": "retried"}
        name = field.get(result, "lost")
        setattr(self.summary, name, getattr(self.summary, name) + 1)
        if result == "stored" and isinstance(outcome, IngestedReview):
            self.summary.pages += outcome.document.page_count
            self.summary.passages += len(outcome.segmentation.passages)

    @contextmanager
    def heartbeat(self, claim: queue.Claim) -> Iterator[None]:
        """Renew the claim every third of the lease while the document is read, so a slow file is not taken over."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.options.lease_seconds / 3):
                try:
                    queue.renew(self.db, claim)
                except Exception as exc:  # a lost connection: the lease may run out; finishing will tell
                    self.say(f"{self.summary.worker}: could not renew the claim on {claim.filename}: {exc}")

        thread = threading.Thread(target=beat, name="vkpp-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def run_worker(
    db_url: str | None = None,
    options: WorkerOptions | None = None,
    *,
    report: Reporter | None = None,
    handle_signals: bool = False,
) -> WorkerSummary:
    """Run one worker on the database at `db_url` until its stopping rule says so."""
    db = open_database(db_url)
    worker = Worker(db, options or WorkerOptions.from_settings(), report)
    if handle_signals:
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
    try:
        return worker.run()
    finally:
        db.dispose()
