"""The `vkpp` command line: ingest review PDFs, list reviews, dump passages, show settings, start the app."""

from __future__ import annotations

import csv
import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import click

from vkpp_learning import __version__, settings
from vkpp_learning.errors import VkppError

# The backends shipped today; `ingest` checks the name against the registry as well.
BACKENDS = ("pdfium", "pdfplumber")
DUMP_FORMATS = ("jsonl", "csv")
STATUS_LABELS = {"ok": "ok", "needs_ocr": "needs OCR", "ocr": "OCR", "error": "error"}


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Report errors a user can act on as one line (exit 1), never a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return command(*args, **kwargs)
        except VkppError as exc:
            raise click.ClickException(exc.message) from None
        except SQLAlchemyError as exc:
            raise click.ClickException(f"database error: {getattr(exc, 'orig', None) or exc}") from None

    return run


def db_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        "db_url",
        metavar="URL",
        default=lambda: settings.get("VKPP_DATABASE_URL"),
        show_default="the VKPP_DATABASE_URL setting",
        help="Database to use: sqlite:///path/file.sqlite or postgresql+psycopg://user@host/db. "
        "The schema is created or upgraded automatically.",
    )(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vkpp")
def main() -> None:
    """vkpp-learning: turn a folder of statutory review PDFs (CSPR, SAR, DHR, MAPPA SCR) into a
    searchable, tagged repository of passages, each with its citation.

    Settings come from environment variables; `vkpp settings` lists them with their values.
    """
    # Models ship inside installed packages; nothing is ever fetched from a hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def check_manifest(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Any:
    """Load the manifest now so a bad one is a usage error (exit 2) before any file is read."""
    if value is None:
        return None
    from vkpp_learning.metadata import load_manifest

    try:
        return load_manifest(value)
    except VkppError as exc:
        raise click.BadParameter(exc.message) from None


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@db_option
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=lambda: settings.get("VKPP_BACKEND"),
    show_default="the VKPP_BACKEND setting, pdfium",
    help="PDF text extraction backend: pdfium is fast; pdfplumber is slower and sometimes better on tables.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=lambda: settings.get_int("VKPP_WORKERS"),
    show_default="the VKPP_WORKERS setting, 1",
    help="Number of processes reading PDFs in parallel. Writes to the database stay in this process.",
)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=check_manifest,
    metavar="CSV",
    help="CSV of analyst-supplied metadata (review type, year, area, ...) by file name; "
    "its values take precedence over what is read from the documents.",
)
@click.option("--force", is_flag=True, help="Re-read files already stored (same SHA-256) and replace their reviews.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON summary object on stdout (reviews, skipped, pages, passages, seconds, errors) "
    "and no progress bar.",
)
@click.pass_context
@user_errors
def ingest(
    ctx: click.Context,
    paths: tuple[Path, ...],
    db_url: str,
    backend: str,
    workers: int,
    manifest: dict[str, dict[str, str]] | None,
    force: bool,
    as_json: bool,
) -> None:
    """Ingest review PDFs: files, or folders searched for *.pdf.

    Each file is keyed by the SHA-256 of its bytes: an unchanged file is skipped. A file that cannot
    be read (encrypted, corrupt, empty, not a PDF, scanned with no OCR...) gets a specific error,
    recorded in the database and printed, and the batch goes on.

    Exit status: 0 when every file was ingested or skipped, 3 when some failed, 1 when all failed,
    2 on a usage error.
    """
    from tqdm import tqdm

    from pipelines.ingest import ingest as run_ingest

    def report(message: str) -> None:
        tqdm.write(message, file=sys.stderr)

    try:
        summary = run_ingest(
            [str(p) for p in paths], db_url, backend, workers, manifest, force, progress=not as_json, report=report
        )
    except KeyboardInterrupt:
        click.echo("Interrupted: the reviews saved so far are kept; run the same command to carry on.", err=True)
        ctx.exit(130)
    click.echo(json.dumps(summary.to_json()) if as_json else summary_line(summary))
    ctx.exit(summary.exit_code)


def summary_line(summary: Any) -> str:
    parts = [
        f"Ingested {summary.reviews} review{'s' * (summary.reviews != 1)} "
        f"({summary.pages} pages, {summary.passages} passages)",
        f"skipped {summary.skipped} unchanged",
        f"{len(summary.errors)} failed",
        f"{summary.seconds:.1f} s",
    ]
    return "; ".join(parts) + "."


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of reviews with every field.")
@user_errors
def reviews(db_url: str, as_json: bool) -> None:
    """List the reviews, one line each, with their metadata and status.

    Status is ok, needs OCR (some pages had no text layer and were not read), OCR (some pages were
    read by OCR) or error (the file's latest ingest failed: the reason is shown).
    """
    from vkpp_learning.db import open_database
    from vkpp_learning.db.store import list_reviews

    db = open_database(db_url)
    with db.session() as session:
        listings = list_reviews(session)
    db.dispose()
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in listings], indent=2, ensure_ascii=False))
    elif not listings:
        click.echo("No reviews yet: add some with `vkpp ingest PATH`.")
    else:
        click.echo("\n".join(review_lines(listings)))


def review_lines(listings: Iterable[Any]) -> list[str]:
    template = "{:<9}  {:<6}  {:>4}  {:>5}  {:>8}  {:<32}  {}"
    lines = [template.format("STATUS", "TYPE", "YEAR", "PAGES", "PASSAGES", "FILE", "TITLE OR ERROR")]
    for row in listings:
        detail = f"{row.error} [{row.error_code}]" if row.status == "error" else row.title
        kind = "-" if row.status == "error" else row.review_type
        year = "-" if row.year is None else row.year
        numbers = ("-", "-") if row.status == "error" else (row.page_count, row.passages)
        lines.append(
            template.format(STATUS_LABELS.get(row.status, row.status), kind, year, *numbers, row.filename, detail)
        )
    return lines


@main.command()
@db_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(DUMP_FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON object a line (tags as a list); csv: one row a passage (tags as facet:label; ...).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    default="-",
    show_default="standard output",
    help="File to write to.",
)
@user_errors
def dump(db_url: str, output_format: str, output: str) -> None:
    """Export every passage with its citation and tags, as JSON lines or CSV.

    This is the analysts' data export for R, Python or Excel.
    Columns: review id, file name, SHA-256, review type, title, year, area, passage id, ordinal,
    kind, page start and end, paragraph number, section, section kind, text, tags.
    """
    from vkpp_learning.db import open_database
    from vkpp_learning.db.store import iter_dump_rows

    db = open_database(db_url)
    try:
        with db.session() as session, output_stream(output) as stream:
            write_dump(iter_dump_rows(session), output_format, stream)
    except BrokenPipeError:
        # The reader stopped early (`vkpp dump | head`): not an error. Silence the final flush too.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    finally:
        db.dispose()


@contextmanager
def output_stream(output: str) -> Iterator[TextIO]:
    """Standard output for "-", else the file (UTF-8; newline="" so csv writes its own line ends)."""
    if output == "-":
        yield sys.stdout
        return
    with open(output, "w", encoding="utf-8", newline="") as stream:
        yield stream


def write_dump(rows: Iterable[dict[str, Any]], output_format: str, stream: TextIO) -> int:
    """Write dump rows as JSON lines or CSV; returns how many were written."""
    from vkpp_learning.db.store import DUMP_COLUMNS

    writer = csv.DictWriter(stream, fieldnames=DUMP_COLUMNS) if output_format == "csv" else None
    if writer:
        writer.writeheader()
    written = 0
    for row in rows:
        if writer:
            writer.writerow({**row, "tags": "; ".join(f"{t['facet']}:{t['label']}" for t in row["tags"])})
        else:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        written += 1
    return written


@main.command("settings")
@click.option("--json", "as_json", is_flag=True, help="Print the settings and their values as one JSON object.")
@click.option(
    "--markdown", is_flag=True, help="Print the settings documentation: `vkpp settings --markdown > docs/settings.md`."
)
def show_settings(as_json: bool, markdown: bool) -> None:
    """Show every setting with its current value and meaning."""
    if markdown:
        click.echo(settings_document(), nl=False)
    elif as_json:
        click.echo(json.dumps(settings.as_dict(), indent=2))
    else:
        for setting in settings.SETTINGS:
            value = settings.get(setting.name)
            origin = "set" if setting.name in os.environ else "default"
            click.echo(f"{setting.name}={value}  ({origin})\n    {setting.help}")


def settings_document() -> str:
    """docs/settings.md, generated from the declared settings (a test checks the file is up to date)."""
    intro = (
        "# Settings\n\n"
        "Generated by `vkpp settings --markdown > docs/settings.md`; do not edit by hand.\n"
        "Each setting is an environment variable; `vkpp settings` shows the values in force.\n\n"
    )
    return intro + settings.markdown_table()


@main.command()
@db_option
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="Port to serve on.")
@click.option(
    "--address",
    default="localhost",
    show_default=True,
    help="Address to serve on. The default serves this machine only; 0.0.0.0 serves the network.",
)
@click.option("--headless", is_flag=True, help="Do not open a browser window (for servers and CI).")
@user_errors
def app(db_url: str, port: int, address: str, headless: bool) -> None:
    """Start the web app (Streamlit) on the repository database."""
    from vkpp_learning.db import open_database

    db = open_database(db_url)  # creates or upgrades the schema now, so the app never has to
    db.dispose()
    env = {**os.environ, "VKPP_DATABASE_URL": absolute_sqlite_url(db.url)}
    command = [sys.executable, "-m", "streamlit", "run", str(settings.project_root() / "app.py")]
    command += ["--server.port", str(port), "--server.address", address]
    command += ["--server.headless", "true" if headless else "false", "--browser.gatherUsageStats", "false"]
    # Streamlit would otherwise watch the whole checkout (.venv included) for changes: slow, and pointless
    # for users who are not editing the app.
    command += ["--server.fileWatcherType", "none"]
    command += ["--client.toolbarMode", "minimal"]  # no "Deploy" button: this app is not for Streamlit Cloud
    if address not in ("0.0.0.0", "::"):
        # Naming the address also stops Streamlit looking up this machine's external IP on the internet.
        command += ["--browser.serverAddress", address]
    with subprocess.Popen(command, env=env) as server:
        # Stopping `vkpp app` stops the server too, rather than leaving it running on its own.
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        try:
            sys.exit(server.wait())
        except KeyboardInterrupt:  # Ctrl-C reaches Streamlit too, which stops on its own
            sys.exit(server.wait())


def absolute_sqlite_url(url: str) -> str:
    """A relative SQLite path made absolute, so the app finds the same file whatever its folder."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return url
    return parsed.set(database=str(Path(parsed.database).expanduser().resolve())).render_as_string(hide_password=False)


# The search, embed and index commands live in their own module, which registers them on `main`.
# So do the basket, export and annotate commands (cli_evidence.py), and the queue, worker, backup and
# restore commands (cli_ops.py).
# The topic commands (fit, show, runs, assign) register themselves the same way, from cli_topics.py.
# The tag and evaluate commands, from cli_tagging.py.
from vkpp_learning import (  # noqa: E402, F401
    cli_evidence,
    cli_ops,
    cli_search,
    cli_tagging,
    cli_topics,
)

if __name__ == "__main__":
    main()
