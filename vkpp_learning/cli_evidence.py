"""The `vkpp basket`, `vkpp export` and `vkpp annotate` commands: collect cited excerpts, export them as a
briefing pack, and record analysts' decisions on tags. Registered on the `vkpp` group in cli.py."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import click

from vkpp_learning.cli import db_option, main, user_errors
from vkpp_learning.roles import User

SUFFIX_FORMATS = {".docx": "docx", ".xlsx": "xlsx", ".csv": "csv", ".md": "md", ".markdown": "md"}
PREVIEW_CHARS = 220


def user_option(command: Any) -> Any:
    return click.option(
        "--user",
        "user_name",
        metavar="NAME",
        help="Who is acting, as recorded with the change. With VKPP_ROLES set, NAME is looked up there for the "
        "role; otherwise this is single-user local mode (default name: VKPP_USER or the OS user).",
    )(command)


def acting_user(name: str | None) -> User:
    """The user a command acts as: from VKPP_ROLES when roles are configured and a name is given, else local."""
    from vkpp_learning import settings
    from vkpp_learning.roles import local_user, resolve_user

    if name and settings.get("VKPP_ROLES").strip():
        return resolve_user(name)
    return local_user(name)


def open_db(db_url: str) -> Any:
    from vkpp_learning.db import open_database

    return open_database(db_url)


@main.group()
def basket() -> None:
    """Evidence baskets: named collections of cited passages with a note on each, kept in the database."""


@basket.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the basket is for; printed under the title of its exports.")
@db_option
@user_option
@user_errors
def basket_create(name: str, description: str, db_url: str, user_name: str | None) -> None:
    """Create an empty basket called NAME."""
    from vkpp_learning.baskets import create_basket

    with open_db(db_url).writing() as session:
        created = create_basket(session, acting_user(user_name), name, description)
        click.echo(f"Created basket {created.name!r}.")


@basket.command("add")
@click.argument("name")
@click.argument("passage_ids", metavar="PASSAGE_ID...", nargs=-1, required=True, type=int)
@click.option("--note", default="", help="The analyst's note on the excerpt(s), printed with them in exports.")
@click.option("--query", "query_text", metavar="TEXT", help="The search that found the passages, for the basket's log.")
@db_option
@user_option
@user_errors
def basket_add(
    name: str, passage_ids: tuple[int, ...], note: str, query_text: str | None, db_url: str, user_name: str | None
) -> None:
    """Add passages (ids as shown by `vkpp search`) to the basket NAME. Adding one again keeps it once."""
    from vkpp_learning.baskets import add_to_basket

    user = acting_user(user_name)
    query = {"query": query_text} if query_text else None
    with open_db(db_url).writing() as session:
        added = [pid for pid in passage_ids if add_to_basket(session, user, name, pid, note=note, query=query)]
    already = len(passage_ids) - len(added)
    click.echo(f"Added {len(added)} passage(s) to {name!r}" + (f"; {already} already there." if already else "."))


@basket.command("remove")
@click.argument("name")
@click.argument("passage_id", type=int)
@db_option
@user_option
@user_errors
def basket_remove(name: str, passage_id: int, db_url: str, user_name: str | None) -> None:
    """Take the passage PASSAGE_ID out of the basket NAME."""
    from vkpp_learning.baskets import remove_from_basket

    with open_db(db_url).writing() as session:
        removed = remove_from_basket(session, acting_user(user_name), name, passage_id)
    click.echo(f"Removed passage {passage_id} from {name!r}." if removed else f"Passage {passage_id} was not in it.")


@basket.command("note")
@click.argument("name")
@click.argument("passage_id", type=int)
@click.argument("note")
@db_option
@user_option
@user_errors
def basket_note(name: str, passage_id: int, note: str, db_url: str, user_name: str | None) -> None:
    """Replace the note on one excerpt of the basket NAME ("" clears it)."""
    from vkpp_learning.baskets import set_note

    with open_db(db_url).writing() as session:
        set_note(session, acting_user(user_name), name, passage_id, note)
    click.echo(f"Note saved on passage {passage_id} in {name!r}.")


@basket.command("delete")
@click.argument("name")
@db_option
@user_option
@user_errors
def basket_delete(name: str, db_url: str, user_name: str | None) -> None:
    """Delete the basket NAME (its passages stay in the repository)."""
    from vkpp_learning.baskets import delete_basket

    with open_db(db_url).writing() as session:
        delete_basket(session, acting_user(user_name), name)
    click.echo(f"Deleted basket {name!r}.")


@basket.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@user_errors
def basket_list(db_url: str, as_json: bool) -> None:
    """List the baskets with how many excerpts each holds."""
    from vkpp_learning.baskets import list_baskets

    with open_db(db_url).session() as session:
        baskets = list_baskets(session)
    if as_json:
        click.echo(json.dumps([summary_dict(b) for b in baskets], ensure_ascii=False))
        return
    if not baskets:
        click.echo("No baskets yet: `vkpp basket create NAME` makes one.")
    for b in baskets:
        described = f" - {b.description}" if b.description else ""
        click.echo(f"{b.name}: {b.excerpts} excerpt(s), by {b.created_by}{described}")


def summary_dict(summary: Any) -> dict[str, Any]:
    values = dict(vars(summary))
    values["created_at"] = summary.created_at.isoformat(timespec="seconds") if summary.created_at else None
    return values


@basket.command("show")
@click.argument("name")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object: the basket's searches and excerpts.")
@user_errors
def basket_show(name: str, db_url: str, as_json: bool) -> None:
    """Show the excerpts of the basket NAME with their citations, themes and notes."""
    from vkpp_learning.baskets import basket_excerpts, basket_queries

    with open_db(db_url).session() as session:
        excerpts = basket_excerpts(session, name)
        searches = basket_queries(session, name)
    if as_json:
        payload = {"name": name, "searches": searches, "excerpts": [e.to_dict() for e in excerpts]}
        click.echo(json.dumps(payload, ensure_ascii=False, default=str))
        return
    click.echo(f"{name}: {len(excerpts)} excerpt(s)")
    for e in excerpts:
        click.echo(excerpt_text(e))


def excerpt_text(e: Any) -> str:
    lines = [f"\n[{e.passage_id}] {e.citation}"]
    if e.themes:
        lines.append(f"  themes: {', '.join(e.themes)}")
    lines.append(textwrap.indent(textwrap.fill(textwrap.shorten(e.text, PREVIEW_CHARS), 96), "  "))
    if e.note:
        lines.append(f"  note: {e.note}")
    return "\n".join(lines)


def export_format(out: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    if out.suffix.lower() in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[out.suffix.lower()]
    raise click.BadParameter(
        f"say --format docx, xlsx, csv or md (cannot tell from {out.name!r})", param_hint="--format"
    )


@main.command("export")
@click.option("--basket", "basket_name", required=True, metavar="NAME", help="The basket to export.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("docx", "xlsx", "csv", "md")),
    help="docx: a briefing pack; xlsx: a workbook with a Method sheet; csv; md (Markdown). Default: from --out.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The file to write.")
@db_option
@user_errors
def export_command(basket_name: str, fmt: str | None, out: Path, db_url: str) -> None:
    """Export a basket with full citations, the searches that found its excerpts and a method note."""
    from vkpp_learning.export import export_basket

    fmt = export_format(out, fmt)
    with open_db(db_url).session() as session:
        written = export_basket(session, basket_name, fmt, out)
    click.echo(f"Wrote {out} ({fmt}, {written:,} bytes).")


@main.command()
@click.argument("passage_id", type=int)
@click.option("--facet", required=True, help="practice, vulnerability, agency, missed_opportunity, police_relevant...")
@click.option("--label", required=True, help='A theme id of the facet\'s taxonomy, or "true" for yes/no facets.')
@click.option(
    "--decision",
    required=True,
    type=click.Choice(("confirm", "reject", "add")),
    help="confirm or reject a tag the taggers gave, or add one they missed.",
)
@click.option("--note", default="", help="Why: kept with the decision.")
@db_option
@user_option
@user_errors
def annotate(
    passage_id: int, facet: str, label: str, decision: str, note: str, db_url: str, user_name: str | None
) -> None:
    """Confirm, reject or add a tag on a passage. Decisions are kept, never overwritten: the latest one on a
    tag wins, and re-tagging does not undo it."""
    from vkpp_learning.annotations import annotate as record
    from vkpp_learning.annotations import effective_tags

    user = acting_user(user_name)
    with open_db(db_url).writing() as session:
        record(session, user, passage_id, facet, label, decision, note)
        tags = effective_tags(session, [passage_id])[passage_id]
    click.echo(f"Recorded: {user.name} {decision}s {facet}={label} on passage {passage_id}.")
    shown = [f"{t.label} ({t.source})" for t in tags if t.facet == facet]
    click.echo(f"{facet} tags now: {', '.join(shown) or 'none'}")
