"""The initial schema: reviews, pages, passages, ingest errors, and the tables later features fill
(tag runs, tags, annotations, embeddings, evidence baskets, the ingest queue).

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written by hand to stay portable across SQLite and PostgreSQL; a test checks it matches models.py.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_reviews()
    create_pages()
    create_passages()
    create_ingest_errors()
    create_tagging()
    create_embeddings()
    create_baskets()
    create_ingest_queue()


def downgrade() -> None:
    for table in (
        "ingest_queue",
        "basket_items",
        "baskets",
        "embeddings",
        "annotations",
        "tags",
        "tag_runs",
        "ingest_errors",
        "passages",
        "pages",
        "reviews",
    ):
        op.drop_table(table)


def create_reviews() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("review_type", sa.String(16), nullable=False),
        sa.Column("subtype", sa.String(16), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("month", sa.String(16), nullable=True),
        sa.Column("area", sa.Text(), nullable=False),
        sa.Column("commissioner", sa.Text(), nullable=False),
        sa.Column("executive_summary", sa.Boolean(), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("metadata_sources", sa.JSON(), nullable=False),
        sa.Column("unknown_reasons", sa.JSON(), nullable=False),
        sa.Column("full_text", sa.Text(), nullable=False),
        sa.Column("extraction_backend", sa.String(64), nullable=False),
        sa.Column("pipeline_version", sa.String(64), nullable=False),
        sa.Column("ingested_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("status IN ('ok', 'needs_ocr', 'ocr')", name=op.f("ck_reviews_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("sha256", name=op.f("uq_reviews_sha256")),
    )
    op.create_index(op.f("ix_reviews_review_type"), "reviews", ["review_type"])
    op.create_index(op.f("ix_reviews_year"), "reviews", ["year"])


def create_pages() -> None:
    op.create_table(
        "pages",
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("columns", sa.Integer(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_id"], ["reviews.id"], name=op.f("fk_pages_review_id_reviews"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("review_id", "number", name=op.f("pk_pages")),
    )


def create_passages() -> None:
    op.create_table(
        "passages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("section", sa.Text(), nullable=False),
        sa.Column("section_kind", sa.String(32), nullable=False),
        sa.Column("paragraph", sa.String(64), nullable=True),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("page_start", sa.Integer(), nullable=False),
        sa.Column("page_end", sa.Integer(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_id"], ["reviews.id"], name=op.f("fk_passages_review_id_reviews"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passages")),
        sa.UniqueConstraint("review_id", "ordinal", name=op.f("uq_passages_review_id_ordinal")),
    )
    op.create_index(op.f("ix_passages_review_id"), "passages", ["review_id"])
    op.create_index(op.f("ix_passages_section_kind"), "passages", ["section_kind"])
    op.create_index(op.f("ix_passages_text_hash"), "passages", ["text_hash"])


def create_ingest_errors() -> None:
    op.create_table(
        "ingest_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_errors")),
    )
    op.create_index(op.f("ix_ingest_errors_filename"), "ingest_errors", ["filename"])


def create_tagging() -> None:
    op.create_table(
        "tag_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("taxonomy_version", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag_runs")),
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("passage_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("facet", sa.String(32), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["passage_id"], ["passages.id"], name=op.f("fk_tags_passage_id_passages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["tag_runs.id"], name=op.f("fk_tags_run_id_tag_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")),
    )
    op.create_index(op.f("ix_tags_passage_id"), "tags", ["passage_id"])
    op.create_index(op.f("ix_tags_run_id"), "tags", ["run_id"])
    op.create_index(op.f("ix_tags_facet_label"), "tags", ["facet", "label"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("passage_id", sa.Integer(), nullable=False),
        sa.Column("facet", sa.String(32), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("decision IN ('confirm', 'reject', 'add')", name=op.f("ck_annotations_decision")),
        sa.ForeignKeyConstraint(
            ["passage_id"], ["passages.id"], name=op.f("fk_annotations_passage_id_passages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    op.create_index(op.f("ix_annotations_passage_id"), "annotations", ["passage_id"])


def create_embeddings() -> None:
    op.create_table(
        "embeddings",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model", "text_hash", name=op.f("pk_embeddings")),
    )


def create_baskets() -> None:
    op.create_table(
        "baskets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("queries", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_baskets")),
        sa.UniqueConstraint("name", name=op.f("uq_baskets_name")),
    )
    op.create_table(
        "basket_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("basket_id", sa.Integer(), nullable=False),
        sa.Column("passage_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("added_at", TIMESTAMP, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["basket_id"], ["baskets.id"], name=op.f("fk_basket_items_basket_id_baskets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["passage_id"], ["passages.id"], name=op.f("fk_basket_items_passage_id_passages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_basket_items")),
        sa.UniqueConstraint("basket_id", "passage_id", name=op.f("uq_basket_items_basket_id_passage_id")),
    )
    op.create_index(op.f("ix_basket_items_basket_id"), "basket_items", ["basket_id"])
    op.create_index(op.f("ix_basket_items_passage_id"), "basket_items", ["passage_id"])


def create_ingest_queue() -> None:
    op.create_table(
        "ingest_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("status IN ('queued', 'claimed', 'done', 'failed')", name=op.f("ck_ingest_queue_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_queue")),
    )
    op.create_index(op.f("ix_ingest_queue_status"), "ingest_queue", ["status"])
