"""The passages each tag run read and gave no tag, so that carrying a run on reads only passages it has not
read (a passage with tags is known to be read by its tags).

Nothing is backfilled: a run made before this revision reads its passages without tags once more, on its next
`vkpp tag`, and records them then.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "tag_run_untagged"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("passage_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["tag_runs.id"], name=op.f(f"fk_{TABLE}_run_id_tag_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["passage_id"], ["passages.id"], name=op.f(f"fk_{TABLE}_passage_id_passages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "passage_id", name=op.f(f"pk_{TABLE}")),
    )
    op.create_index(op.f(f"ix_{TABLE}_passage_id"), TABLE, ["passage_id"])


def downgrade() -> None:
    op.drop_index(op.f(f"ix_{TABLE}_passage_id"), table_name=TABLE)
    op.drop_table(TABLE)
