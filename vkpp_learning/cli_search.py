"""The `vkpp search`, `vkpp embed` and `vkpp index` commands: find cited passages, compute the embeddings
semantic search needs, and check or rebuild the keyword index. Registered on the `vkpp` group in cli.py."""

from __future__ import annotations

import html
import json
import re
import sys
from typing import Any

import click

from vkpp_learning.cli import db_option, main, user_errors
from vkpp_learning.search.filters import Filters

MARK = re.compile(r"<mark>(.*?)</mark>", re.S)


@main.command()
@click.argument("query", required=False, default="")
@db_option
@click.option(
    "--mode",
    type=click.Choice(("hybrid", "keyword", "semantic")),
    default="hybrid",
    show_default=True,
    help="keyword: BM25 over the words; semantic: nearest in meaning (needs `vkpp embed`); hybrid: both, fused.",
)
@click.option(
    "--type", "review_types", multiple=True, metavar="T", help="Review type (CSPR, SAR, DHR, MAPPA); repeatable."
)
@click.option("--theme", "themes", multiple=True, metavar="ID", help="Practice theme id from the taxonomy; repeatable.")
@click.option("--vulnerability", "vulnerabilities", multiple=True, metavar="ID", help="Vulnerability id; repeatable.")
@click.option("--agency", "agencies", multiple=True, metavar="ID", help="Agency id (police, probation...); repeatable.")
@click.option("--section", metavar="S", help="Section kind: analysis, findings, recommendations, chronology...")
@click.option("--year-from", type=int, metavar="Y", help="Reviews published in or after this year.")
@click.option("--year-to", type=int, metavar="Y", help="Reviews published in or before this year.")
@click.option("--missed-only", is_flag=True, help="Only passages tagged as a missed opportunity.")
@click.option("--police-only", is_flag=True, help="Only passages tagged as relevant to the police.")
@click.option(
    "--like",
    "like",
    type=int,
    metavar="PASSAGE_ID",
    help="More like this: passages nearest in meaning to one passage (QUERY is ignored).",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="Results per page.")
@click.option(
    "--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Results to skip (for the next page)."
)
@click.option(
    "--facets",
    "show_facets",
    is_flag=True,
    help="Also print counts by review type, year, theme, agency and missed opportunity.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON list of results (with --facets: an object with results and facets).",
)
@user_errors
def search(
    query: str,
    db_url: str,
    like: int | None,
    show_facets: bool,
    as_json: bool,
    mode: str,
    limit: int,
    offset: int,
    **filter_options: Any,
) -> None:
    """Search the passages. Words are matched by stem ("stalking" finds "stalked"); "quoted phrases" match
    in order; a OR b matches either; a leading minus (-police or -"police officer") excludes.

    Passages with all the words rank first, then those with some, each by BM25; hybrid mode fuses that
    with the meaning of the query. Each result carries its citation: review, type, year, page, paragraph.
    """
    from vkpp_learning.db import open_database
    from vkpp_learning.search import facade

    if not query.strip() and like is None:
        raise click.UsageError("give a QUERY to search for (or --like PASSAGE_ID)")
    filters = Filters(**filter_options)
    db = open_database(db_url)
    try:
        if like is not None:
            page = facade.more_like_this(db, like, filters, limit, offset)
        else:
            page = facade.search(db, query, filters, mode, limit, offset)
        counts = facade.facets(db, query, filters, mode) if show_facets and like is None else None
    finally:
        db.dispose()
    for note in page.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(json_output(page, counts) if as_json else text_output(page, counts))


def json_output(page: Any, counts: dict[str, Any] | None) -> str:
    rows = [result.to_dict() for result in page.results]
    return json.dumps(rows if counts is None else {"results": rows, "facets": counts}, indent=2, ensure_ascii=False)


def text_output(page: Any, counts: dict[str, Any] | None) -> str:
    if not page.results:
        return "No passages found."
    lines = []
    for number, result in enumerate(page.results, start=page.offset + 1):
        lines.append(click.style(f"{number}. {citation(result)}", bold=True) + f"  [{result.score:g}]")
        lines.append("   " + terminal_text(result.highlighted))
        tags = ", ".join(result.themes) + ("; missed opportunity" if result.missed_opportunity else "")
        lines.append(f"   passage {result.passage_id}" + (f" | {tags.strip('; ')}" if tags else ""))
    if counts:
        lines.append("")
        lines += [
            f"{name}: " + ", ".join(f"{key} {value}" for key, value in values.items())
            for name, values in counts.items()
        ]
    return "\n".join(lines)


def citation(result: Any) -> str:
    """'DHR 2023, Domestic Homicide Review into the death of Louise, p. 12, para 5.3 (5. Analysis)'."""
    pages = (
        f"p. {result.page_start}"
        if result.page_start == result.page_end
        else f"pp. {result.page_start}-{result.page_end}"
    )
    paragraph = f", para {result.paragraph}" if result.paragraph else ""
    year = result.year if result.year is not None else "year unknown"
    return f"{result.review_type} {year}, {result.review_title}, {pages}{paragraph} ({result.section})"


def terminal_text(highlighted: str) -> str:
    """The highlight for a terminal: marks in bold yellow (when the terminal shows colour), entities decoded."""
    styled = MARK.sub(lambda m: click.style(html.unescape(m.group(1)), fg="yellow", bold=True), highlighted)
    return html.unescape(re.sub(r"<(?!/?mark)", "<", styled))


@main.command()
@db_option
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    default=256,
    show_default=True,
    help="Passages per batch and transaction.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON summary object (embedded, already, seconds) and no progress bar.",
)
@user_errors
def embed(db_url: str, batch_size: int, as_json: bool) -> None:
    """Compute the embeddings semantic search needs, for every passage that has none yet.

    Embeddings are cached by model and text hash: re-running costs nothing, and an interrupted run
    keeps every batch it finished.
    """
    from pipelines.embed import embed as run_embed

    summary = run_embed(db_url, batch_size, progress=not as_json)
    if as_json:
        click.echo(json.dumps(summary.to_json()))
    else:
        click.echo(
            f"Embedded {summary.embedded} passage texts ({summary.already} already had one); {summary.seconds:.1f} s."
        )


@main.command("index")
@db_option
@click.option("--rebuild", is_flag=True, help="Rebuild the keyword index from the passages (one transaction).")
@user_errors
def index_command(db_url: str, rebuild: bool) -> None:
    """Check that the keyword index holds every passage (exit 1 when it does not), or rebuild it."""
    from vkpp_learning.db import open_database
    from vkpp_learning.search.index import index_status
    from vkpp_learning.search.index import rebuild as rebuild_index

    db = open_database(db_url)
    try:
        if rebuild:
            with db.writing() as session:
                count = rebuild_index(session)
            click.echo(f"Rebuilt the keyword index: {count} passages.")
        with db.session() as session:
            status = index_status(session)
    finally:
        db.dispose()
    click.echo(
        f"{status.indexed} of {status.passages} passages indexed"
        + ("" if status.in_step else ": run `vkpp index --rebuild`")
    )
    sys.exit(0 if status.in_step else 1)
