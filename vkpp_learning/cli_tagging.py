"""The `vkpp tag` and `vkpp evaluate` commands: tag the repository's passages, and measure the taggers
on gold labels with held-out (document-level cross-validated) figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from vkpp_learning.cli import db_option, main, user_errors

METHOD_HELP = (
    "Tagger: ensemble (default: rules + embedding + supervised, stacked), supervised, embedding, rules (the "
    "keyword baseline: the rules tagger and its detectors), or registry names separated by commas."
)
MULTI_LABEL_KEYS = ("practice", "vulnerabilities", "agencies")
BINARY_KEYS = ("missed_opportunity", "police_relevant")


@main.command("tag")
@db_option
@click.option("--method", default="ensemble", show_default=True, help=METHOD_HELP)
@click.option(
    "--retrain", is_flag=True, help="Fit the learned taggers again on the gold samples and analysts' decisions."
)
@click.option("--force", is_flag=True, help="Tag every passage again, in a new run (the old run stays queryable).")
@click.option(
    "--gold",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    show_default="corpus_samples/gold and corpus_samples/training",
    help="Labelled JSONL (file or folder; repeatable) the learned taggers train on, with analysts' decisions.",
)
@click.option(
    "--runs", "show_runs", is_flag=True, help="List the tag runs (id, method, versions, current, tags) and stop."
)
@click.option("--remove-run", type=int, metavar="ID", help="Delete one tag run and its tags, and stop.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and no progress bar.")
@user_errors
def tag_command(
    db_url: str,
    method: str,
    retrain: bool,
    force: bool,
    gold: tuple[Path, ...],
    show_runs: bool,
    remove_run: int | None,
    as_json: bool,
) -> None:
    """Tag every passage not yet tagged by the method's current run, with a progress bar.

    Each tagger records a run (method, taxonomy and model versions, parameters, thresholds); a new
    taxonomy, a new model or --force starts a new run, and the previous run's tags stay queryable until
    removed with --remove-run. Analysts' confirmations, rejections and additions are never changed.
    """
    from pipelines import tag as job

    if show_runs:
        runs = job.list_runs(db_url)
        click.echo(json.dumps(runs, indent=2) if as_json else "\n".join(run_lines(runs)))
        return
    if remove_run is not None:
        removed = job.remove_run(db_url, remove_run)
        click.echo(
            json.dumps(removed)
            if as_json
            else f"Removed run {removed['id']} ({removed['method']}, {removed['tags']} tags)."
        )
        return
    report = None if as_json else (lambda message: click.echo(message, err=True))
    summary = job.tag(
        db_url,
        method,
        force=force,
        retrain=retrain,
        gold=gold or job.DEFAULT_LABELS,
        progress=not as_json,
        report=report,
    )
    click.echo(json.dumps(summary.to_json()) if as_json else tag_summary_line(summary))


def run_lines(runs: list[dict[str, Any]]) -> list[str]:
    if not runs:
        return ["No tag runs yet: run `vkpp tag`."]
    template = "{:>4}  {:<7}  {:<38}  {:<24}  {:>7}  {:>8}  {}"
    lines = [template.format("ID", "CURRENT", "METHOD", "MODEL", "TAGS", "PASSAGES", "TAXONOMY")]
    for run in runs:
        current = "yes" if run["is_current"] else ("-" if run["complete"] else "partial")
        model = run["model_version"] or "-"
        read = run["passages_read"]
        lines.append(
            template.format(run["id"], current, run["method"], model, run["tags"], read, run["taxonomy_version"])
        )
    return lines


def tag_summary_line(summary: Any) -> str:
    parts = [
        f"run {r.run_id} {r.method}{' (new)' if r.new_run else ''}: {r.passages} passages, {r.tags} tags"
        for r in summary.runs
    ]
    return "Tagged: " + "; ".join(parts) + f"; {summary.seconds:.1f} s."


@main.command("evaluate")
@click.option(
    "--gold",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Gold JSONL file, or a folder of them, in the corpus_samples/gold format.",
)
@click.option("--method", default="ensemble", show_default=True, help=METHOD_HELP)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Cross-validation folds by document: learned taggers are fitted on the other folds' documents only.",
)
@click.option(
    "--train",
    "training",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    show_default="corpus_samples/gold and corpus_samples/training",
    help="Labelled passages (gold JSONL file or folder; repeatable) added to every fold's training, minus any "
    "passage of a review being evaluated. Defaults to what `vkpp tag` trains on.",
)
@click.option("--no-train", is_flag=True, help="Train on the other folds of --gold only.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: per facet micro/macro F1 and per label P/R/F1."
)
@user_errors
def evaluate_command(
    gold: Path, method: str, folds: int, training: tuple[Path, ...], no_train: bool, as_json: bool
) -> None:
    """Measure a tagger against gold labels: precision, recall and F1 per label, micro and macro.

    Passages go through exactly the taggers `vkpp tag` uses, with their review type and section. A tagger
    that learns is fitted, in each fold, on the other documents of --gold plus the labelled passages `vkpp tag`
    trains on (never a passage of a review being evaluated), so every figure is held out by document.
    """
    from pipelines.tag import evaluation_names
    from vkpp_learning.evaluate import BUNDLED_LABELS, evaluate_passages, load_gold, training_passages

    passages = load_gold(gold)
    extra = training_passages(() if no_train else (training or BUNDLED_LABELS), passages)
    report = evaluate_passages(passages, extra, evaluation_names(method), folds=folds)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    trained = f"{len(extra)} labelled passages from {len({p.doc_id for p in extra})} other reviews"
    click.echo(f"Held out by document; each fold also trained on {trained}.")
    click.echo("\n".join(report_lines(report)))


@main.command("agreement")
@click.argument("reference", type=click.Path(exists=True, path_type=Path))
@click.argument("other", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, in the shape of `vkpp evaluate --json`.")
@user_errors
def agreement_command(reference: Path, other: Path, as_json: bool) -> None:
    """How far two labellings of the same passages agree: OTHER scored against REFERENCE (gold JSONL files or
    folders), per label and facet, as `vkpp evaluate` scores a tagger. Use it for two analysts, or for the
    gold and a blind re-annotation: it tells how high a tagger's F1 can sensibly be expected to go.
    """
    from vkpp_learning.evaluate import agreement

    report = agreement(reference, other)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['passages']} passages; {other} scored against {reference}.")
    click.echo("\n".join(report_lines(report)))


def report_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for key in MULTI_LABEL_KEYS:
        facet = report[key]
        lines.append(f"{key}: micro-F1 {facet['micro_f1']:.3f}  macro-F1 {facet['macro_f1']:.3f}")
        lines.append(f"  {'label':<28} {'P':>6} {'R':>6} {'F1':>6} {'support':>8}")
        for label, s in facet["per_label"].items():
            lines.append(f"  {label:<28} {s['precision']:>6.3f} {s['recall']:>6.3f} {s['f1']:>6.3f} {s['support']:>8}")
    for key in BINARY_KEYS:
        s = report[key]
        lines.append(f"{key}: P {s['precision']:.3f}  R {s['recall']:.3f}  F1 {s['f1']:.3f}  support {s['support']}")
    return lines


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
