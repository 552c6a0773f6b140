"""The ingest queue for distributed workers: one row per file content (unique sha256), with the file's
size, its manifest row, whether it replaces a stored review, and when it was finished.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (no batch rebuild): every new column is nullable or has a default.
    op.add_column("ingest_queue", sa.Column("file_size", sa.Integer(), nullable=True))
    op.add_column("ingest_queue", sa.Column("manifest_row", sa.JSON(), nullable=True))
    op.add_column("ingest_queue", sa.Column("force", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("ingest_queue", sa.Column("finished_at", TIMESTAMP, nullable=True))
    remove_duplicate_rows()
    op.create_index(op.f("ix_ingest_queue_sha256"), "ingest_queue", ["sha256"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_ingest_queue_sha256"), table_name="ingest_queue")
    with op.batch_alter_table("ingest_queue") as batch:
        for column in ("finished_at", "force", "manifest_row", "file_size"):
            batch.drop_column(column)


def remove_duplicate_rows() -> None:
    """Nothing filled the queue before this revision, but keep the newest row per sha256 if something did."""
    op.execute(
        "DELETE FROM ingest_queue WHERE sha256 IS NOT NULL AND id NOT IN "
        "(SELECT max(id) FROM ingest_queue WHERE sha256 IS NOT NULL GROUP BY sha256)"
    )
