"""Alembic environment: runs migrations on the connection vkpp passes in, or on an engine from the URL."""

from __future__ import annotations

from alembic import context

from vkpp_learning.db.engine import database_url, make_engine
from vkpp_learning.db.models import Base

config = context.config


def run_on(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    # Run from the alembic command line: `alembic -c vkpp_learning/migrations/alembic.ini ...`
    engine = make_engine(database_url(config.get_main_option("sqlalchemy.url") or None), foreign_keys=False)
    with engine.connect() as connection:
        run_on(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("vkpp migrations run online only: open the database with `vkpp` or open_database()")
run_online()
