"""Topic modelling: topic runs, their topics (keywords, label, nearest taxonomy theme, emergent flag),
passage assignments, and per review type and per year breakdowns.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_topic_runs()
    create_topics()
    create_topic_assignments()
    create_topic_breakdowns()


def downgrade() -> None:
    for table in ("topic_breakdowns", "topic_assignments", "topics", "topic_runs"):
        op.drop_table(table)


def create_topic_runs() -> None:
    op.create_table(
        "topic_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("embedding_model", sa.String(128), nullable=False),
        sa.Column("taxonomy_version", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("corpus_filter", sa.JSON(), nullable=False),
        sa.Column("library_versions", sa.JSON(), nullable=False),
        sa.Column("configuration", sa.String(16), nullable=False),
        sa.Column("passages", sa.Integer(), nullable=False),
        sa.Column("topic_count", sa.Integer(), nullable=False),
        sa.Column("outlier_share_before", sa.Float(), nullable=False),
        sa.Column("outlier_share_after", sa.Float(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("model_path", sa.Text(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topic_runs")),
    )


def create_topics() -> None:
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("keyword_scores", sa.JSON(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("theme_id", sa.String(64), nullable=True),
        sa.Column("theme_facet", sa.String(32), nullable=True),
        sa.Column("theme_similarity", sa.Float(), nullable=True),
        sa.Column("theme_matches", sa.JSON(), nullable=False),
        sa.Column("emergent", sa.Boolean(), nullable=False),
        sa.Column("representative_passage_ids", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["topic_runs.id"], name=op.f("fk_topics_run_id_topic_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("run_id", "number", name=op.f("uq_topics_run_id_number")),
    )
    op.create_index(op.f("ix_topics_run_id"), "topics", ["run_id"])


def create_topic_assignments() -> None:
    op.create_table(
        "topic_assignments",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("passage_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["topic_runs.id"], name=op.f("fk_topic_assignments_run_id_topic_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["passage_id"],
            ["passages.id"],
            name=op.f("fk_topic_assignments_passage_id_passages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"], ["topics.id"], name=op.f("fk_topic_assignments_topic_id_topics"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "passage_id", name=op.f("pk_topic_assignments")),
    )
    op.create_index(op.f("ix_topic_assignments_passage_id"), "topic_assignments", ["passage_id"])
    op.create_index(op.f("ix_topic_assignments_topic_id"), "topic_assignments", ["topic_id"])


def create_topic_breakdowns() -> None:
    op.create_table(
        "topic_breakdowns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.String(16), nullable=False),
        sa.Column("value", sa.String(32), nullable=False),
        sa.Column("passages", sa.Integer(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["topic_id"], ["topics.id"], name=op.f("fk_topic_breakdowns_topic_id_topics"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topic_breakdowns")),
        sa.UniqueConstraint(
            "topic_id", "dimension", "value", name=op.f("uq_topic_breakdowns_topic_id_dimension_value")
        ),
    )
    op.create_index(op.f("ix_topic_breakdowns_topic_id"), "topic_breakdowns", ["topic_id"])
