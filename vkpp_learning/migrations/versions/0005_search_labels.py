"""Two more search generation counters, so per-process filter masks know when to reload: row 2 moves with
machine tags, tag runs and review metadata, row 3 with analysts' annotations (row 1 already follows
passages and embeddings).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TAGS, ANNOTATIONS = 2, 3
# (table, events, counter). Review inserts and deletes are left out: a review's passages move counter 1,
# and leaving them out keeps every transaction that locks two counters locking row 1 first (no deadlock).
WATCHED = (
    ("tags", ("INSERT", "UPDATE", "DELETE"), TAGS),
    ("tag_runs", ("INSERT", "UPDATE", "DELETE"), TAGS),
    ("reviews", ("UPDATE",), TAGS),
    ("annotations", ("INSERT", "UPDATE", "DELETE"), ANNOTATIONS),
)


def bump(counter: int) -> str:
    return f"UPDATE search_generation SET value = value + 1 WHERE id = {counter}"


def upgrade() -> None:
    op.execute(f"INSERT INTO search_generation (id, value) VALUES ({TAGS}, 0), ({ANNOTATIONS}, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """CREATE FUNCTION search_generation_bump_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
            UPDATE search_generation SET value = value + 1 WHERE id = TG_ARGV[0]::integer; RETURN NULL; END $$"""
        )
    for table, events, counter in WATCHED:
        for event in events:
            op.execute(trigger_sql(table, event, counter))


def trigger_sql(table: str, event: str, counter: int) -> str:
    name = f"{table}_search_{event.lower()}"
    if op.get_bind().dialect.name == "postgresql":
        return (
            f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION search_generation_bump_row({counter})"
        )
    return f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {bump(counter)}; END"


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, events, _counter in WATCHED:
        for event in events:
            name = f"{table}_search_{event.lower()}"
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}" if postgres else f"DROP TRIGGER IF EXISTS {name}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS search_generation_bump_row()")
    op.execute(f"DELETE FROM search_generation WHERE id IN ({TAGS}, {ANNOTATIONS})")
