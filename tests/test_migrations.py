"""The Alembic history on SQLite and PostgreSQL: one linear chain, every step up and down from an empty
database, data kept across the queue migration, and several processes opening a new database at once."""

from __future__ import annotations

import itertools
import multiprocessing

import pytest
from sqlalchemy import inspect, text

from vkpp_learning.db import open_database
from vkpp_learning.db.engine import alembic_config, current_revision, head_revision, make_engine, migrate
from vkpp_learning.db.models import Base


def history() -> list[str]:
    """Revisions from the first to the head."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def test_the_history_is_one_linear_chain() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    assert len(scripts.get_heads()) == 1
    revisions = history()
    assert revisions[-1] == head_revision()
    for older, newer in itertools.pairwise(revisions):
        assert scripts.get_revision(newer).down_revision == older


def test_empty_to_head_to_base_to_head_step_by_step(db_url: str) -> None:
    revisions = history()
    seen: dict[str, set[str]] = {}
    assert revision(db_url) is None
    for step in revisions:
        migrate(db_url, step)
        assert revision(db_url) == step
        seen[step] = tables(db_url)
    assert set(Base.metadata.tables) <= seen[revisions[-1]]
    for below in reversed(revisions[:-1]):
        migrate(db_url, below, downgrade=True)
        assert revision(db_url) == below and tables(db_url) == seen[below]
    migrate(db_url, "base", downgrade=True)
    assert revision(db_url) is None and not tables(db_url)
    migrate(db_url, "head")
    assert revision(db_url) == head_revision() and tables(db_url) == seen[revisions[-1]]


def test_queue_rows_survive_the_queue_migration_both_ways(db_url: str) -> None:
    migrate(db_url, "0003")
    engine = make_engine(db_url)
    insert = (
        "INSERT INTO ingest_queue (source_path, sha256, status, attempts, created_at) "
        "VALUES (:path, :sha, 'queued', 0, CURRENT_TIMESTAMP)"
    )
    with engine.begin() as connection:
        for path, sha in (("/a.pdf", "aaa"), ("/a-again.pdf", "aaa"), ("/b.pdf", "bbb")):
            connection.execute(text(insert), {"path": path, "sha": sha})
    migrate(db_url, "0004")
    select_rows = "SELECT source_path, force, file_size FROM ingest_queue ORDER BY source_path"
    with engine.connect() as connection:
        # Duplicates of one content collapse to the newest row, so the unique index can be made.
        assert [tuple(r) for r in connection.execute(text(select_rows))] == [
            ("/a-again.pdf", False, None),
            ("/b.pdf", False, None),
        ]
    migrate(db_url, "0003", downgrade=True)
    with engine.connect() as connection:
        paths = connection.execute(text("SELECT source_path FROM ingest_queue ORDER BY source_path")).scalars().all()
    assert paths == ["/a-again.pdf", "/b.pdf"]
    engine.dispose()


def open_and_report(url: str) -> str | None:
    database = open_database(url)
    try:
        return current_revision(database.engine)
    finally:
        database.dispose()


@pytest.mark.parametrize("processes", [3])
def test_several_processes_opening_a_new_database_migrate_it_once(db_url: str, processes: int) -> None:
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        revisions = pool.map(open_and_report, [db_url] * processes)
    assert revisions == [head_revision()] * processes
    assert set(Base.metadata.tables) <= tables(db_url)
