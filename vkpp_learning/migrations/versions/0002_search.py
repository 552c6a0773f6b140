"""Search indexes: on SQLite an FTS5 table over passages kept in step by triggers; on PostgreSQL our own
BM25 inverted index (postings, document lengths, totals); on both a generation counter for vector caches.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FTS5_TOKENIZE = "porter unicode61 remove_diacritics 2"
BUMP = "UPDATE search_generation SET value = value + 1 WHERE id = 1"

SQLITE_UP = (
    f"""CREATE VIRTUAL TABLE passages_fts USING fts5(
        text, content='passages', content_rowid='id', tokenize='{FTS5_TOKENIZE}')""",
    """CREATE TRIGGER passages_fts_insert AFTER INSERT ON passages BEGIN
        INSERT INTO passages_fts(rowid, text) VALUES (new.id, new.text);
        UPDATE search_generation SET value = value + 1 WHERE id = 1;
    END""",
    """CREATE TRIGGER passages_fts_delete AFTER DELETE ON passages BEGIN
        INSERT INTO passages_fts(passages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        UPDATE search_generation SET value = value + 1 WHERE id = 1;
    END""",
    """CREATE TRIGGER passages_fts_update AFTER UPDATE ON passages BEGIN
        INSERT INTO passages_fts(passages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO passages_fts(rowid, text) VALUES (new.id, new.text);
        UPDATE search_generation SET value = value + 1 WHERE id = 1;
    END""",
    f"CREATE TRIGGER embeddings_generation_insert AFTER INSERT ON embeddings BEGIN {BUMP}; END",
    f"CREATE TRIGGER embeddings_generation_delete AFTER DELETE ON embeddings BEGIN {BUMP}; END",
    "INSERT INTO passages_fts(passages_fts) VALUES ('rebuild')",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS embeddings_generation_delete",
    "DROP TRIGGER IF EXISTS embeddings_generation_insert",
    "DROP TRIGGER IF EXISTS passages_fts_update",
    "DROP TRIGGER IF EXISTS passages_fts_delete",
    "DROP TRIGGER IF EXISTS passages_fts_insert",
    "DROP TABLE IF EXISTS passages_fts",
)

# Totals for BM25 (passages, tokens) follow search_doclen through statement-level triggers.
POSTGRES_UP = (
    """CREATE FUNCTION search_stats_add() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        UPDATE search_stats SET passages = passages + (SELECT count(*) FROM changed),
            tokens = tokens + (SELECT coalesce(sum(length), 0) FROM changed) WHERE id = 1;
        RETURN NULL; END $$""",
    """CREATE FUNCTION search_stats_remove() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        UPDATE search_stats SET passages = passages - (SELECT count(*) FROM changed),
            tokens = tokens - (SELECT coalesce(sum(length), 0) FROM changed) WHERE id = 1;
        RETURN NULL; END $$""",
    f"""CREATE FUNCTION search_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        {BUMP}; RETURN NULL; END $$""",
    """CREATE TRIGGER search_doclen_added AFTER INSERT ON search_doclen
        REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION search_stats_add()""",
    """CREATE TRIGGER search_doclen_removed AFTER DELETE ON search_doclen
        REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION search_stats_remove()""",
    """CREATE TRIGGER passages_generation AFTER INSERT OR UPDATE OR DELETE ON passages
        FOR EACH STATEMENT EXECUTE FUNCTION search_generation_bump()""",
    """CREATE TRIGGER embeddings_generation AFTER INSERT OR UPDATE OR DELETE ON embeddings
        FOR EACH STATEMENT EXECUTE FUNCTION search_generation_bump()""",
)
POSTGRES_DOWN = (
    "DROP TRIGGER IF EXISTS embeddings_generation ON embeddings",
    "DROP TRIGGER IF EXISTS passages_generation ON passages",
    "DROP TABLE IF EXISTS search_postings",
    "DROP TABLE IF EXISTS search_doclen",
    "DROP TABLE IF EXISTS search_stats",
    "DROP FUNCTION IF EXISTS search_generation_bump()",
    "DROP FUNCTION IF EXISTS search_stats_remove()",
    "DROP FUNCTION IF EXISTS search_stats_add()",
)


def upgrade() -> None:
    create_generation()
    if op.get_bind().dialect.name == "postgresql":
        create_postgres_index()
    else:
        for statement in SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    statements = POSTGRES_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN
    for statement in statements:
        op.execute(statement)
    op.drop_table("search_generation")


def create_generation() -> None:
    """One row counting changes to passages and embeddings, so in-memory vector caches know when to reload."""
    table = op.create_table(
        "search_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_generation")),
    )
    op.bulk_insert(table, [{"id": 1, "value": 0}])


def create_postgres_index() -> None:
    op.create_table(
        "search_postings",
        sa.Column("term", sa.Text(), nullable=False),
        sa.Column("passage_id", sa.Integer(), nullable=False),
        sa.Column("tf", sa.Integer(), nullable=False),
        sa.Column("positions", sa.ARRAY(sa.Integer()), nullable=False),
        sa.ForeignKeyConstraint(
            ["passage_id"], ["passages.id"], name=op.f("fk_search_postings_passage_id_passages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("term", "passage_id", name=op.f("pk_search_postings")),
    )
    op.create_index(op.f("ix_search_postings_passage_id"), "search_postings", ["passage_id"])
    op.create_table(
        "search_doclen",
        sa.Column("passage_id", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["passage_id"], ["passages.id"], name=op.f("fk_search_doclen_passage_id_passages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("passage_id", name=op.f("pk_search_doclen")),
    )
    stats = op.create_table(
        "search_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("passages", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_stats")),
    )
    op.bulk_insert(stats, [{"id": 1, "passages": 0, "tokens": 0}])
    for statement in POSTGRES_UP:
        op.execute(statement)
    # Passages stored before this migration are indexed now, in the migration's transaction.
    from vkpp_learning.search.index import index_missing

    index_missing(op.get_bind())
