"""The `vkpp topics` commands: fit a topic model on the stored passages, show a run's topics with their
taxonomy mapping and the emergent ones, list runs, and assign newly ingested passages. Registered in cli.py.

BERTopic, UMAP, HDBSCAN and torch are imported only when a command runs, inside the pipeline.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import click

from vkpp_learning.cli import db_option, main, user_errors
from vkpp_learning.records import REVIEW_SUBTYPES, REVIEW_TYPES, SECTION_KINDS

EXCERPT_CHARS = 220


@main.group()
def topics() -> None:
    """Topic models over the stored passages: what the reviews keep saying beyond the taxonomy.

    `fit` finds topics (reusing cached embeddings), maps each to its nearest taxonomy theme and flags
    the emergent ones; `show` prints a run; `assign` puts passages ingested since a fit into its topics.
    """


@topics.command("fit")
@db_option
@click.option(
    "--review-type",
    type=click.Choice(REVIEW_TYPES + tuple(REVIEW_SUBTYPES), case_sensitive=False),
    help="Only passages of this review type (or subtype: SCR, CPR, APR, DARDR).",
)
@click.option(
    "--section",
    type=click.Choice(SECTION_KINDS),
    help="Only passages of this section kind. Without it, every section but front matter, introduction, "
    "methodology and appendix.",
)
@click.option(
    "--min-topic-size",
    type=click.IntRange(min=2),
    default=10,
    show_default=True,
    help="Fewest passages a topic may have (HDBSCAN's min_cluster_size).",
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Random seed: the same seed gives the same topics."
)
@click.option(
    "--guided/--no-guided",
    default=False,
    show_default=True,
    help="Seed the topics with the taxonomy's theme phrases (docs/topics.md says how and why).",
)
@click.option(
    "--max-outliers",
    type=click.FloatRange(0, 1),
    default=0.10,
    show_default=True,
    help="Share of passages that may stay outside every topic; the rest join their nearest topic.",
)
@click.option(
    "--emergent-below",
    type=click.FloatRange(-1, 1),
    default=0.30,
    show_default=True,
    help="A topic whose similarity to every taxonomy theme is below this is flagged emergent.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
@user_errors
def fit(
    db_url: str,
    review_type: str | None,
    section: str | None,
    min_topic_size: int,
    seed: int,
    guided: bool,
    max_outliers: float,
    emergent_below: float,
    as_json: bool,
) -> None:
    """Fit a topic model on the stored passages and store it as a new run (the model is saved beside the
    database, in topic_models/run-ID/)."""
    from pipelines.topics import fit_topics
    from vkpp_learning.topics.model import TopicParams
    from vkpp_learning.topics.store import CorpusFilter

    params = TopicParams(
        min_topic_size=min_topic_size,
        seed=seed,
        guided=guided,
        outlier_target=max_outliers,
        emergent_threshold=emergent_below,
    )
    corpus_filter = CorpusFilter(review_type=review_type.upper() if review_type else None, section=section)
    report = None if as_json else (lambda message: click.echo(message, err=True))
    summary = fit_topics(db_url, corpus_filter, params, report=report)
    if as_json:
        click.echo(json.dumps(summary.to_json()))
        return
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"Topic run {summary.run_id}: {summary.topics} topics ({summary.emergent} emergent) from "
        f"{summary.passages} passages; outliers {summary.outlier_share_before:.1%} -> "
        f"{summary.outlier_share_after:.1%}; {summary.seconds:.1f} s. See them with `vkpp topics show`."
    )


@topics.command("show")
@db_option
@click.option("--run", "run_id", type=int, metavar="ID", help="The run to show (default: the latest).")
@click.option(
    "--passages",
    type=click.IntRange(0, 10),
    default=1,
    show_default=True,
    help="Representative passages to print under each topic.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run, its topics (with representative passages and citations), and the topics per "
    "review type and per year as one JSON object.",
)
@user_errors
def show(db_url: str, run_id: int | None, passages: int, as_json: bool) -> None:
    """Print a run's topics: emergent ones first, then each topic with its nearest taxonomy theme."""
    from vkpp_learning.db import open_database

    db = open_database(db_url)
    try:
        with db.session() as session:
            report = run_report(session, run_id, passages if not as_json else 5)
    finally:
        db.dispose()
    click.echo(json.dumps(report, indent=2, ensure_ascii=False) if as_json else "\n".join(text_report(report)))


def run_report(session: Any, run_id: int | None, passages: int) -> dict[str, Any]:
    """Everything `show` prints, as plain data."""
    from vkpp_learning.errors import VkppError
    from vkpp_learning.topics import views

    run = views.get_run(session, run_id) if run_id else views.latest_run(session)
    if run is None:
        what = f"no topic run {run_id}" if run_id else "no topic run yet"
        raise VkppError(f"{what} in this database; fit one with `vkpp topics fit`", code="no_topic_run")
    topic_list = []
    for topic in views.topics_of_run(session, run.id):
        shown = views.representative_passages(session, topic.id)[:passages]
        topic_list.append({**topic.to_json(), "passages": [p.to_json() for p in shown]})
    return {
        "run": run.to_json(),
        "topics": topic_list,
        "emergent": [t["number"] for t in topic_list if t["emergent"]],
        "by_review_type": [s.to_json() for s in views.topics_by_review_type(session, run.id)],
        "over_years": [s.to_json() for s in views.topics_over_years(session, run.id)],
    }


def text_report(report: dict[str, Any]) -> list[str]:
    run = report["run"]
    lines = [click.style(f"Topic run {run['id']}", bold=True) + f" ({run['created_at']}): " + run_line(run), ""]
    emergent = [t for t in report["topics"] if t["emergent"]]
    threshold = run["params"]["emergent_threshold"]
    lines.append(click.style(f"Emergent topics: no taxonomy theme within {threshold:.2f}", bold=True))
    lines += [line for topic in emergent for line in topic_lines(topic)] or ["  none"]
    lines += ["", click.style("All topics and their nearest taxonomy theme", bold=True)]
    for topic in report["topics"]:
        lines += topic_lines(topic)
    return lines


def run_line(run: dict[str, Any]) -> str:
    scope = run["corpus_filter"]
    what = " ".join(filter(None, [scope.get("review_type"), scope.get("section")])) or "all"
    guided = "guided by the taxonomy" if run["params"]["guided"] else "unguided"
    return (
        f"{run['passages']} passages ({what}), {run['topic_count']} topics, {guided}, seed {run['params']['seed']}, "
        f"{run['configuration']} configuration; outliers {run['outlier_share_before']:.1%} -> "
        f"{run['outlier_share_after']:.1%}; taxonomy {run['taxonomy_version']}"
    )


def topic_lines(topic: dict[str, Any]) -> list[str]:
    if topic["number"] == -1:
        head = f"  {topic['label']}: {topic['size']} passages"
    else:
        mark = click.style(" EMERGENT", fg="yellow", bold=True) if topic["emergent"] else ""
        theme = f"{topic['theme_id']} ({topic['theme_facet']}) {topic['theme_similarity']:.2f}"
        head = f"  #{topic['number']:<3} {topic['label']}  [{topic['size']} passages]  nearest: {theme}{mark}"
    lines = [head]
    if topic["number"] != -1:
        lines.append("       keywords: " + ", ".join(topic["keywords"][:8]))
    for passage in topic["passages"]:
        excerpt = textwrap.shorten(passage["text"], EXCERPT_CHARS, placeholder=" ...")
        lines.append(f'       "{excerpt}" ({passage_citation(passage)})')
    return lines


def passage_citation(passage: dict[str, Any]) -> str:
    pages = f"p. {passage['page_start']}"
    if passage["page_end"] != passage["page_start"]:
        pages = f"pp. {passage['page_start']}-{passage['page_end']}"
    paragraph = passage["paragraph"] or ""
    if paragraph and not paragraph.lower().startswith("para"):  # some reviews print "Para 12" themselves
        paragraph = f"para {paragraph}"
    paragraph = f", {paragraph}" if paragraph else ""
    year = passage["year"] if passage["year"] is not None else "year unknown"
    return f"{passage['review_type']} {year}, {passage['review_title']}, {pages}{paragraph}"


@topics.command("runs")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
@user_errors
def runs(db_url: str, as_json: bool) -> None:
    """List the topic runs, newest first."""
    from vkpp_learning.db import open_database
    from vkpp_learning.topics import views

    db = open_database(db_url)
    try:
        with db.session() as session:
            found = views.list_runs(session)
    finally:
        db.dispose()
    if as_json:
        click.echo(json.dumps([run.to_json() for run in found], indent=2, ensure_ascii=False))
    elif not found:
        click.echo("No topic runs yet: fit one with `vkpp topics fit`.")
    else:
        click.echo("\n".join(f"{run.id:>4}  {run.created_at}  " + run_line(run.to_json()) for run in found))


@topics.command("assign")
@db_option
@click.option("--run", "run_id", type=int, metavar="ID", help="The run whose topics to use (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
@user_errors
def assign(db_url: str, run_id: int | None, as_json: bool) -> None:
    """Assign passages stored since a fit (matching its filter) to its topics, with the saved model loaded
    offline. Assignments are stored in the database."""
    from pipelines.topics import assign_new

    summary = assign_new(db_url, run_id)
    if as_json:
        click.echo(json.dumps(summary.to_json()))
    else:
        click.echo(
            f"Topic run {summary.run_id}: assigned {summary.assigned} new passages "
            f"({summary.outliers} to no topic); {summary.seconds:.1f} s."
        )
