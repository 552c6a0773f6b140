"""The keyword index stays in step with the passages on SQLite and PostgreSQL (ingest, re-ingest, delete),
tag filters follow tag runs and analysts' decisions (also once their masks are cached), the masks agree with
the SQL filters, and both databases rank the samples the same."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import text

from pipelines.ingest import ingest
from tests.conftest import sample_pdfs
from vkpp_learning.db import Database, models, open_database
from vkpp_learning.db.store import delete_review
from vkpp_learning.search import catalog, facade
from vkpp_learning.search.filters import Filters, filter_condition
from vkpp_learning.search.index import index_status, rebuild


@pytest.fixture
def review(db_url: str, make_review_pdf: Callable[..., Path]) -> Iterator[tuple[Database, Path]]:
    pdf = make_review_pdf(paragraphs=4)
    summary = ingest([str(pdf)], db_url)
    assert summary.reviews == 1, summary.errors
    db = open_database(db_url)
    yield db, pdf
    db.dispose()


def keyword_ids(db: Database, query: str, filters: Filters | None = None) -> list[int]:
    return [r.passage_id for r in facade.search(db, query, filters, "keyword", limit=100).results]


def stats_row(db: Database) -> tuple[int, int] | None:
    if db.dialect != "postgresql":
        return None
    with db.session() as session:
        return tuple(session.execute(text("SELECT passages, tokens FROM search_stats")).one())


def test_ingest_indexes_every_passage_in_the_same_transaction(review: tuple[Database, Path]) -> None:
    db, _ = review
    with db.session() as session:
        status = index_status(session)
    assert status.in_step and status.passages >= 4
    assert len(keyword_ids(db, "MARAC")) == 4
    if db.dialect == "postgresql":
        passages, tokens = stats_row(db)
        assert passages == status.passages and tokens > 0


def test_reingest_replaces_the_index_entries(review: tuple[Database, Path]) -> None:
    db, pdf = review
    before = facade.search(db, "MARAC", mode="keyword").results
    stats = stats_row(db)
    summary = ingest([str(pdf)], db.url, force=True)
    assert summary.reviews == 1
    after = facade.search(db, "MARAC", mode="keyword").results
    assert len(after) == len(before) == 4  # the old review's entries went with it
    with db.session() as session:
        assert index_status(session).in_step
        if db.dialect == "sqlite":  # FTS5 compares its index with the passages table, and raises if they differ
            session.execute(text("INSERT INTO passages_fts(passages_fts, rank) VALUES ('integrity-check', 1)"))
    assert stats_row(db) == stats


def test_deleting_a_review_empties_its_index_entries(review: tuple[Database, Path]) -> None:
    db, _ = review
    with db.session() as session:
        sha256 = session.execute(text("SELECT sha256 FROM reviews")).scalar_one()
    assert delete_review(db, sha256)
    assert keyword_ids(db, "MARAC") == []
    with db.session() as session:
        assert index_status(session) == index_status(session).__class__(0, 0)
    if db.dialect == "postgresql":
        assert stats_row(db) == (0, 0)


def test_rebuild_restores_a_damaged_index(review: tuple[Database, Path]) -> None:
    db, _ = review
    with db.writing() as session:
        if db.dialect == "postgresql":
            session.execute(text("DELETE FROM search_doclen"))
            session.execute(text("DELETE FROM search_postings"))
        else:
            session.execute(text("INSERT INTO passages_fts(passages_fts) VALUES ('delete-all')"))
    with db.session() as session:
        assert not index_status(session).in_step
    assert keyword_ids(db, "MARAC") == []
    with db.writing() as session:
        rebuild(session)
    with db.session() as session:
        assert index_status(session).in_step
    assert len(keyword_ids(db, "MARAC")) == 4


def test_tag_filters_follow_current_runs_and_the_latest_decision(review: tuple[Database, Path]) -> None:
    db, _ = review
    first, second, third, fourth = keyword_ids(db, "MARAC")[:4]
    first, second, third, fourth = sorted((first, second, third, fourth))
    with db.writing() as session:
        old = models.TagRun(method="tagger.old.v0", taxonomy_version="0", params={}, thresholds={}, is_current=False)
        run = models.TagRun(method="tagger.rules.v1", taxonomy_version="1", params={}, thresholds={}, is_current=True)
        session.add_all([old, run])
        session.flush()
        session.add_all(
            [
                models.Tag(passage_id=first, run_id=run.id, facet="practice", label="risk_assessment", score=0.9),
                models.Tag(passage_id=second, run_id=run.id, facet="practice", label="risk_assessment", score=0.8),
                models.Tag(passage_id=fourth, run_id=old.id, facet="practice", label="risk_assessment", score=0.9),
                models.Tag(passage_id=first, run_id=run.id, facet="missed_opportunity", label="true", score=0.7),
                models.Annotation(
                    passage_id=second, facet="practice", label="risk_assessment", decision="reject", user_name="a"
                ),
                models.Annotation(
                    passage_id=third, facet="practice", label="risk_assessment", decision="reject", user_name="a"
                ),
                models.Annotation(
                    passage_id=third, facet="practice", label="risk_assessment", decision="add", user_name="b"
                ),
            ]
        )
    themed = keyword_ids(db, "MARAC", Filters(themes=("risk_assessment",)))
    assert sorted(themed) == [first, third]
    assert keyword_ids(db, "MARAC", Filters(missed_only=True)) == [first]
    assert keyword_ids(db, "MARAC", Filters(themes=("risk_assessment",), missed_only=True)) == [first]
    results = {r.passage_id: r for r in facade.search(db, "MARAC", mode="keyword").results}
    assert results[first].themes == ["risk_assessment"] and results[first].missed_opportunity
    assert results[second].themes == [] and results[fourth].themes == []
    facets = facade.facets(db, "MARAC", mode="keyword")
    assert facets["theme"] == {"risk_assessment": 2} and facets["missed_opportunity"] == {"true": 1, "false": 3}


def sql_filtered_ids(db: Database, filters: Filters) -> list[int]:
    """The reference: passages the SQL filters (filter_condition, also used by analytics) allow."""
    condition = filter_condition(filters)
    sql = f"SELECT p.id FROM passages AS p JOIN reviews AS r ON r.id = p.review_id WHERE {condition.sql} ORDER BY p.id"
    with db.session() as session:
        return [row[0] for row in session.execute(text(sql), condition.params)]


def mask_ids(db: Database, filters: Filters) -> list[int]:
    with db.session() as session:
        return np.flatnonzero(catalog.allowed(session, filters)).tolist()


def test_cached_filter_masks_follow_later_decisions_runs_and_review_metadata(review: tuple[Database, Path]) -> None:
    db, _ = review
    first, second, third = sorted(keyword_ids(db, "MARAC")[:3])
    themed = Filters(themes=("risk_assessment",))
    with db.writing() as session:
        run = models.TagRun(method="tagger.rules.v1", taxonomy_version="1", params={}, thresholds={}, is_current=True)
        session.add(run)
        session.flush()
        session.add(models.Tag(passage_id=first, run_id=run.id, facet="practice", label="risk_assessment", score=0.9))
    assert keyword_ids(db, "MARAC", themed) == [first]  # the mask is now cached in this process
    with db.writing() as session:
        session.add_all(
            [
                models.Annotation(passage_id=first, facet="practice", label="risk_assessment", decision="reject",
                                  user_name="a"),
                models.Annotation(passage_id=second, facet="practice", label="risk_assessment", decision="add",
                                  user_name="a"),
            ]
        )  # fmt: skip
    assert keyword_ids(db, "MARAC", themed) == [second]
    with db.writing() as session:
        session.execute(text("UPDATE tag_runs SET is_current = false"))
        newer = models.TagRun(method="tagger.rules.v2", taxonomy_version="1", params={}, thresholds={}, is_current=True)
        session.add(newer)
        session.flush()
        session.add(models.Tag(passage_id=third, run_id=newer.id, facet="practice", label="risk_assessment", score=0.8))
    assert sorted(keyword_ids(db, "MARAC", themed)) == [second, third]
    with db.writing() as session:
        session.execute(text("UPDATE reviews SET year = 1999"))
    assert keyword_ids(db, "MARAC", Filters(themes=("risk_assessment",), year_from=2000)) == []
    for filters in (themed, Filters(year_to=1999, section="analysis"), Filters(review_types=("DHR", "SAR"))):
        assert mask_ids(db, filters) == sql_filtered_ids(db, filters)


# Both databases -------------------------------------------------------------------------------

PARITY_QUERIES = [
    "stalking",
    "MARAC referral",
    "risk assessment -police",
    "hoarding OR squalor",
    "missed opportunity stalking",
    '"disclosure desk"',
    '"child protection" conference',
]


@pytest.fixture(scope="module")
def both_backends(sample_db: str, postgres_database: str) -> Iterator[tuple[Database, Database]]:
    """The samples in SQLite (the shared fixture) and in a schema of the session's PostgreSQL database."""
    schema = f"parity_{secrets.token_hex(3)}"
    conninfo = postgres_database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    postgres_url = f"{postgres_database}?options=-csearch_path%3D{schema}"
    summary = ingest([str(p) for p in sample_pdfs()], postgres_url)
    assert not summary.errors
    sqlite, postgres = open_database(sample_db), open_database(postgres_url)
    yield sqlite, postgres
    sqlite.dispose()
    postgres.dispose()


def ranked_citations(db: Database, query: str, filters: Filters | None = None) -> list[tuple[str, int, float]]:
    results = facade.search(db, query, filters, "keyword", limit=10).results
    with db.session() as session:
        ordinals = dict(session.execute(text("SELECT id, ordinal FROM passages")).all())
    return [(r.review_title, ordinals[r.passage_id], r.score) for r in results]


@pytest.mark.postgres
@pytest.mark.parametrize("query", PARITY_QUERIES)
def test_both_databases_rank_the_samples_alike(both_backends: tuple[Database, Database], query: str) -> None:
    sqlite, postgres = both_backends
    lite, post = ranked_citations(sqlite, query), ranked_citations(postgres, query)
    assert lite and len(lite) == len(post)
    assert [(title, ordinal) for title, ordinal, _ in lite[:5]] == [(title, ordinal) for title, ordinal, _ in post[:5]]
    if '"' not in query:  # terms score identically; phrases differ slightly in how FTS5 counts them
        assert [score for *_, score in lite] == pytest.approx([score for *_, score in post], rel=1e-4)


@pytest.mark.postgres
def test_both_databases_filter_alike(both_backends: tuple[Database, Database]) -> None:
    sqlite, postgres = both_backends
    filters = Filters(review_types=("DHR", "MAPPA"), year_from=2021, section="analysis")
    lite, post = ranked_citations(sqlite, "police", filters), ranked_citations(postgres, "police", filters)
    assert len(lite) == 10 and [row[:2] for row in lite] == [row[:2] for row in post]
    assert [row[2] for row in lite] == pytest.approx([row[2] for row in post], rel=1e-4)
