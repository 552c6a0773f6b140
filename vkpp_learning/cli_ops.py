"""The `vkpp queue`, `vkpp worker`, `vkpp backup` and `vkpp restore` commands: distributed ingestion over a
shared database, and portable backups. Registered on the `vkpp` group in cli.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from vkpp_learning import settings
from vkpp_learning.cli import BACKENDS, check_manifest, db_option, main, user_errors


def say(message: str) -> None:
    click.echo(message, err=True)


@main.command("queue")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@db_option
@click.option("--status", "show_status", is_flag=True, help="Show the queue's progress instead of adding files.")
@click.option("--retry-failed", is_flag=True, help="Queue every failed document again, with fresh attempts.")
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=check_manifest,
    metavar="CSV",
    help="CSV of analyst-supplied metadata by file name, stored with each queued file for the workers.",
)
@click.option("--force", is_flag=True, help="Queue files already stored too; workers re-read them and replace them.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@user_errors
def queue_command(
    paths: tuple[Path, ...],
    db_url: str,
    show_status: bool,
    retry_failed: bool,
    manifest: dict[str, dict[str, str]] | None,
    force: bool,
    as_json: bool,
) -> None:
    """Queue review PDFs for `vkpp worker` processes, or show the queue's progress (--status).

    Each file is queued by its absolute path and the SHA-256 of its bytes: workers on other machines
    must see the same shared folder at the same path, and a file that changed after it was queued is
    refused rather than read as a different document. Files already stored or already queued are
    left alone.
    """
    from pipelines import queue
    from vkpp_learning.db import open_database

    if not (paths or show_status or retry_failed):
        raise click.UsageError("name files or folders to queue, or use --status or --retry-failed")
    db = open_database(db_url)
    try:
        if retry_failed:
            say(f"Queued {queue.retry_failed(db)} failed document(s) again.")
        if paths:
            summary = queue.enqueue(db, [str(p) for p in paths], manifest, force, report=say)
            click.echo(json.dumps(summary.to_json()) if as_json and not show_status else enqueue_line(summary))
        if show_status:
            lease = float(settings.get("VKPP_LEASE_SECONDS"))
            with db.session() as session:
                status = queue.queue_status(session, lease)
            click.echo(json.dumps(status.to_json(), indent=2) if as_json else "\n".join(status_lines(status)))
    finally:
        db.dispose()


def enqueue_line(summary: Any) -> str:
    return (
        f"Queued {summary.queued} file(s); {summary.requeued} queued again; {summary.already_queued} already "
        f"queued; {summary.already_stored} already stored; {len(summary.errors)} refused."
    )


def status_lines(status: Any) -> list[str]:
    counts = status.counts
    done = counts["done"] + counts["failed"]
    lines = [
        f"{done}/{status.total} finished: {counts['done']} done, {counts['failed']} failed, "
        f"{counts['claimed']} being read, {counts['queued']} waiting."
    ]
    rate = status.documents_per_second()
    if rate:
        lines.append(f"Rate: {rate:.2f} documents/s ({rate * 60:.0f} a minute).")
    if status.stale:
        lines.append(f"{status.stale} claim(s) are older than the lease: their worker stopped; another will take them.")
    lines += [f"  {worker} is reading {name} (since {at:%H:%M:%S})" for worker, name, at in status.claims if at]
    if status.failures:
        lines.append("Failed (run `vkpp queue --retry-failed` to try them again):")
        lines += [f"  {Path(path).name}: {error}" for path, error in status.failures]
    return lines


@main.command()
@db_option
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=lambda: settings.get("VKPP_BACKEND"),
    show_default="the VKPP_BACKEND setting, pdfium",
    help="PDF text extraction backend.",
)
@click.option("--once", is_flag=True, help="Read at most one document, then exit.")
@click.option(
    "--idle-exit",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Exit after this many seconds with nothing to claim. Without it the worker exits when every queued "
    "document is finished, waiting meanwhile for documents other workers hold (taking them over if those die).",
)
@click.option("--forever", is_flag=True, help="Never exit for an empty queue: poll for new documents.")
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    metavar="SECONDS",
    help="How often an idle worker looks for documents (default: the VKPP_WORKER_POLL_SECONDS setting).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout when the worker stops.")
@user_errors
def worker(
    db_url: str, backend: str, once: bool, idle_exit: float | None, forever: bool, poll: float | None, as_json: bool
) -> None:
    """Ingest documents from the queue (`vkpp queue PATH...`) until it is finished.

    Start any number of workers, on any machines that reach the same PostgreSQL database and see the
    shared folder at the same path: each claims one document at a time with SELECT ... FOR UPDATE
    SKIP LOCKED, and stores the review and marks it done in one transaction. SIGTERM or Ctrl-C
    finishes the current document, then exits. On SQLite the queue serves workers on one machine.
    """
    from pipelines.worker import WorkerOptions, run_worker

    options = WorkerOptions.from_settings(
        backend=backend, once=once, idle_exit=idle_exit, forever=forever, poll_seconds=poll
    )
    summary = run_worker(db_url, options, report=say, handle_signals=True)
    if as_json:
        click.echo(json.dumps(summary.to_json()))
    else:
        click.echo(
            f"{summary.worker}: stored {summary.stored} review(s) ({summary.pages} pages, {summary.passages} "
            f"passages), {summary.already_stored} already stored, {summary.failed} failed, {summary.retried} to "
            f"retry, in {summary.seconds:.1f} s; stopped: {summary.stopped}."
        )
    sys.exit(1 if summary.failed and not (summary.stored or summary.already_stored) else 0)


@main.command("backup")
@db_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="FILE",
    help="File to write, e.g. vkpp-2026-11-23.jsonl.gz.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
@user_errors
def backup_command(db_url: str, out: Path, as_json: bool) -> None:
    """Back up the whole repository to one portable file (gzip JSON Lines).

    Reviews, pages, passages, tags, annotations, baskets, embeddings, topic runs and every other table,
    from one consistent snapshot, so it can run while others work. The file restores into SQLite or
    PostgreSQL, whichever it came from. The keyword search index is rebuilt on restore, not stored.
    """
    from vkpp_learning.backup import backup

    summary = backup(db_url, out)
    click.echo(json.dumps(summary.to_json()) if as_json else backup_line("Backed up", summary))


@main.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@click.option("--force", is_flag=True, help="Delete everything in the database first (in the same transaction).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
@user_errors
def restore_command(file: Path, db_url: str, force: bool, as_json: bool) -> None:
    """Restore a backup made by `vkpp backup` into an empty database, in one transaction.

    A database that holds data is refused unless --force. Ids are kept, so citations and basket
    items still point at the same passages; the schema is then upgraded to this version's.
    """
    from vkpp_learning.backup import restore

    summary = restore(db_url, file, force=force)
    click.echo(json.dumps(summary.to_json()) if as_json else backup_line("Restored", summary))


def backup_line(verb: str, summary: Any) -> str:
    tables = ", ".join(f"{name} {n}" for name, n in summary.counts.items() if n)
    return (
        f"{verb} {summary.rows} rows ({tables}) at schema revision {summary.revision}: "
        f"{summary.path} in {summary.seconds:.1f} s."
    )
