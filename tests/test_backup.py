"""Backups on real databases: a repository with something in every table, backed up from SQLite and restored
into PostgreSQL (and back), compared row for row; refusal of a non-empty target, --force, cut files, old schemas."""

from __future__ import annotations

import gzip
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from pipelines.ingest import ingest
from pipelines.queue import enqueue
from tests.conftest import BAD_FILES, CORPUS, sqlite_url
from vkpp_learning import annotations, baskets
from vkpp_learning.backup import BackupError, backup, backup_tables, read_header, restore
from vkpp_learning.cli import main
from vkpp_learning.db import models, open_database
from vkpp_learning.db.engine import current_revision, head_revision, make_engine, migrate
from vkpp_learning.roles import Role, User
from vkpp_learning.search import search
from vkpp_learning.search.index import index_status

ALICE = User("alice@force.example", Role.ANALYST, "login")
SAMPLES = ("dhr_louise_2023.pdf", "sar_margaret_2023.pdf", "mappa_owen_2024.pdf")
# Every table the repository had when this test was written; each must hold rows in the filled database.
FILLED_TABLES = {
    "reviews",
    "pages",
    "passages",
    "ingest_errors",
    "tag_runs",
    "tags",
    "tag_run_untagged",
    "annotations",
    "embeddings",
    "baskets",
    "basket_items",
    "ingest_queue",
    "topic_runs",
    "topics",
    "topic_assignments",
    "topic_breakdowns",
}


@pytest.fixture
def new_database(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """Make empty databases of either kind: a SQLite file, or a new schema in the session's PostgreSQL database."""
    schemas: list[tuple[str, str]] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return sqlite_url(tmp_path / f"{secrets.token_hex(3)}.sqlite")
        import psycopg

        server = request.getfixturevalue("postgres_database")
        schema = f"b_{secrets.token_hex(4)}"
        with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
        schemas.append((server, schema))
        return f"{server}?options=-csearch_path%3D{schema}"

    yield make
    import psycopg

    for server, schema in schemas:
        with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def fill(url: str) -> None:
    """Real reviews and a failed file through the ingest pipeline, a queued file, and through the library or
    the models: a tag run with tags and a passage it read without one, annotations, a basket, an embedding, and a
    topic run with its topics."""
    summary = ingest([str(CORPUS / name) for name in SAMPLES] + [str(BAD_FILES / "empty.pdf")], url)
    assert summary.reviews == len(SAMPLES) and len(summary.errors) == 1
    db = open_database(url)
    try:
        enqueue(db, [str(CORPUS / "dhr_gemma_2024.pdf")])
        with db.writing() as session:
            passages = session.scalars(select(models.Passage).order_by(models.Passage.id).limit(6)).all()
            add_tags(session, passages)
            add_evidence(session, passages)
            add_topics(session, passages)
    finally:
        db.dispose()


def add_tags(session: Any, passages: list[models.Passage]) -> None:
    run = models.TagRun(
        method="tagger.rules.v1", taxonomy_version="t1", params={"k": 1}, thresholds={"all": 0.5}, is_current=True
    )
    session.add(run)
    session.flush()
    for passage in passages[:-1]:
        session.add(models.Tag(passage_id=passage.id, run_id=run.id, facet="practice", label="risk", score=0.8125))
    session.add(models.UntaggedPassage(passage_id=passages[-1].id, run_id=run.id))


def add_evidence(session: Any, passages: list[models.Passage]) -> None:
    annotations.annotate(session, ALICE, passages[0].id, "practice", "risk", "confirm", note="clear — “quoted”")
    annotations.annotate(session, ALICE, passages[1].id, "practice", "risk", "reject")
    baskets.create_basket(session, ALICE, "Briefing: MARAC", "for the March briefing")
    baskets.add_to_basket(session, ALICE, "Briefing: MARAC", passages[2].id, "key", query={"q": "MARAC"})
    vector = np.arange(8, dtype="<f4") / 7
    session.add(models.Embedding(model="minilm", text_hash=passages[0].text_hash, dim=8, vector=vector.tobytes()))


def add_topics(session: Any, passages: list[models.Passage]) -> None:
    run = models.TopicRun(
        method="topics.bertopic.v1",
        embedding_model="minilm",
        taxonomy_version="t1",
        params={"min_topic_size": 5},
        corpus_filter={},
        library_versions={"bertopic": "0.17"},
        configuration="small",
        passages=len(passages),
        topic_count=1,
        outlier_share_before=0.25,
        outlier_share_after=0.0,
        notes=["small corpus"],
        model_path="topic_models/1",
        seconds=1.5,
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )
    session.add(run)
    session.flush()
    topic = models.Topic(
        run_id=run.id,
        number=0,
        label="marac referrals",
        keywords=["marac", "referral"],
        keyword_scores=[["marac", 0.5]],
        size=len(passages),
        theme_id="risk",
        theme_facet="practice",
        theme_similarity=0.61,
        theme_matches=[{"id": "risk", "similarity": 0.61}],
        emergent=False,
        representative_passage_ids=[passages[0].id],
    )
    session.add(topic)
    session.flush()
    for passage in passages:
        session.add(
            models.TopicAssignment(run_id=run.id, passage_id=passage.id, topic_id=topic.id, score=0.7, source="fit")
        )
    session.add(
        models.TopicBreakdown(
            topic_id=topic.id, dimension="review_type", value="DHR", passages=3, share=0.5, keywords=["marac"]
        )
    )


def normal(value: Any) -> Any:
    """Values as compared across backends: SQLite hands back UTC datetimes without their offset."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every backed-up table's rows, ordered by primary key, with values made comparable."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            tables = backup_tables(connection)
            return {
                table.name: [
                    tuple(normal(v) for v in row)
                    for row in connection.execute(select(table).order_by(*table.primary_key.columns))
                ]
                for table in tables
            }
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def filled_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = sqlite_url(tmp_path_factory.mktemp("backup") / "filled.sqlite")
    fill(url)
    return url


@pytest.mark.postgres
@pytest.mark.parametrize("route", ["sqlite->postgresql", "sqlite->postgresql->sqlite"])
def test_backup_round_trips_between_backends_row_for_row(
    route: str, filled_sqlite: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    source = filled_sqlite
    expected = table_rows(source)
    assert {name for name, rows in expected.items() if rows} >= FILLED_TABLES
    for step, kind in enumerate(route.split("->")[1:]):
        archive = tmp_path / f"step{step}.jsonl.gz"
        made = backup(source, archive)
        assert made.counts == {name: len(rows) for name, rows in expected.items()}
        target = new_database(kind)
        restored = restore(target, archive)
        assert restored.counts == made.counts
        assert table_rows(target) == expected
        source = target


@pytest.mark.postgres
def test_postgresql_backup_restores_into_sqlite(
    filled_sqlite: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    postgres = new_database("postgresql")
    restore(postgres, backup(filled_sqlite, tmp_path / "a.jsonl.gz").path)
    backup(postgres, tmp_path / "b.jsonl.gz")
    assert read_header(tmp_path / "b.jsonl.gz")["source_dialect"] == "postgresql"
    sqlite = new_database("sqlite")
    restore(sqlite, tmp_path / "b.jsonl.gz")
    assert table_rows(sqlite) == table_rows(postgres) == table_rows(filled_sqlite)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_restored_repository_searches_and_takes_new_rows(
    kind: str, filled_sqlite: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    target = new_database(kind)
    restore(target, backup(filled_sqlite, tmp_path / "a.jsonl.gz").path)
    db = open_database(target)
    try:
        with db.session() as session:
            assert index_status(session).in_step and index_status(session).passages > 0
            most = session.scalar(select(func.max(models.Annotation.id)))
            passage_id = session.scalar(select(func.min(models.Passage.id)))
        page = search(db, "MARAC", mode="keyword")
        assert page.results and "marac" in page.results[0].text.lower()
        # New rows take ids after the restored ones: PostgreSQL's sequences were moved on.
        with db.writing() as session:
            added = annotations.annotate(session, ALICE, passage_id, "practice", "risk", "reject")
        assert added.id > most
        with db.session() as session:
            assert len(annotations.decisions(session, passage_id)) == 2
    finally:
        db.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_restore_refuses_a_database_with_data_and_force_replaces_it(
    kind: str, filled_sqlite: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    target = new_database(kind)
    ingest([str(CORPUS / "cspr_child_t_2022.pdf")], target)
    archive = tmp_path / "a.jsonl.gz"
    runner = CliRunner()
    made = runner.invoke(main, ["backup", "--db", filled_sqlite, "--out", str(archive), "--json"])
    assert made.exit_code == 0, made.output
    refused = runner.invoke(main, ["restore", str(archive), "--db", target])
    assert refused.exit_code == 1
    assert "not empty" in refused.output and "--force" in refused.output
    assert stored_files(target) == ["cspr_child_t_2022.pdf"]
    forced = runner.invoke(main, ["restore", str(archive), "--db", target, "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.output)["counts"]["reviews"] == len(SAMPLES)
    assert table_rows(target) == table_rows(filled_sqlite)
    assert stored_files(target) == sorted(SAMPLES)


def stored_files(url: str) -> list[str]:
    db = open_database(url)
    with db.session() as session:
        names = sorted(session.scalars(select(models.Review.filename)))
    db.dispose()
    return names


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_cut_backup_restores_nothing(
    kind: str, filled_sqlite: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    archive = tmp_path / "a.jsonl.gz"
    backup(filled_sqlite, archive)
    with gzip.open(archive, "rt", encoding="utf-8") as stream:
        lines = stream.readlines()
    cut = tmp_path / "cut.jsonl.gz"
    with gzip.open(cut, "wt", encoding="utf-8") as stream:
        stream.writelines(lines[: len(lines) * 2 // 3])
    target = new_database(kind)
    with pytest.raises(BackupError, match="incomplete"):
        restore(target, cut)
    assert not any(table_rows(target).values())


def test_a_backup_from_an_older_schema_restores_and_is_upgraded(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    old = new_database("sqlite")
    migrate(old, "0003")
    engine = make_engine(old)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO ingest_queue (source_path, sha256, status, attempts, created_at) "
            "VALUES ('/shared/a.pdf', 'abc', 'queued', 0, '2026-01-01 00:00:00')"
        )
    engine.dispose()
    archive = tmp_path / "old.jsonl.gz"
    assert backup(old, archive).revision == "0003"
    target = new_database("sqlite")
    open_database(target).dispose()  # a new database at head: brought down to 0003, restored, upgraded
    restore(target, archive)
    engine = make_engine(target)
    assert current_revision(engine) == head_revision()
    engine.dispose()
    db = open_database(target)
    with db.session() as session:
        row = session.scalars(select(models.QueuedDocument)).one()
    db.dispose()
    assert (row.source_path, row.force, row.file_size) == ("/shared/a.pdf", False, None)


def test_a_file_that_is_not_a_backup_is_refused(tmp_path: Path, new_database: Callable[[str], str]) -> None:
    other = tmp_path / "passages.jsonl.gz"
    with gzip.open(other, "wt") as stream:
        stream.write(json.dumps({"review_id": 1}) + "\n")
    with pytest.raises(BackupError, match="not a vkpp backup"):
        restore(new_database("sqlite"), other)
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(BackupError, match="not a vkpp backup"):
        restore(new_database("sqlite"), tmp_path / "plain.txt")


def test_header_counts_every_table_and_leaves_out_the_search_index(filled_sqlite: str, tmp_path: Path) -> None:
    header = read_header(backup(filled_sqlite, tmp_path / "a.jsonl.gz").path)
    assert header["schema_revision"] == head_revision()
    assert set(header["tables"]) >= FILLED_TABLES
    assert not [name for name in header["tables"] if name.startswith(("search_", "passages_fts", "alembic"))]
    order = list(header["tables"])
    assert order.index("reviews") < order.index("passages") < order.index("tags") < order.index("topic_assignments")


def test_a_backup_from_a_newer_version_is_refused(
    filled_sqlite: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    archive = tmp_path / "a.jsonl.gz"
    backup(filled_sqlite, archive)
    with gzip.open(archive, "rt", encoding="utf-8") as stream:
        lines = stream.readlines()
    header = json.loads(lines[0])
    newer = tmp_path / "newer.jsonl.gz"
    with gzip.open(newer, "wt", encoding="utf-8") as stream:
        stream.writelines([json.dumps({**header, "schema_revision": "9999"}) + "\n", *lines[1:]])
    target = new_database("sqlite")
    with pytest.raises(BackupError, match="does not know"):
        restore(target, newer)
