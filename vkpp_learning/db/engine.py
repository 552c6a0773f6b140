"""Open the repository database from its URL and bring its schema to the Alembic head.

SQLite (the default) runs in WAL mode with foreign keys on; PostgreSQL goes through psycopg 3.
A user never runs a migration by hand: `open_database` upgrades on open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vkpp_learning import settings
from vkpp_learning.errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant works: it only has to be the same for every process that migrates this database.
POSTGRES_MIGRATION_LOCK = 7_203_114


@dataclass
class Database:
    """An open repository database: its URL, engine and a session factory."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        """A session for reading; use `writing()` for changes."""
        return self.sessions()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back whole on any error.

        On SQLite the write lock is taken at the start (BEGIN IMMEDIATE), so a concurrent writer
        waits for the busy timeout instead of failing half-way.
        """
        bind = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        with Session(bind=bind, expire_on_commit=False) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def database_url(url: str | None = None) -> str:
    """The URL to use: the one given, else the VKPP_DATABASE_URL setting; bare postgresql:// means psycopg 3."""
    url = url or settings.get("VKPP_DATABASE_URL")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def make_engine(url: str, *, foreign_keys: bool = True) -> Engine:
    """An engine for `url`; for SQLite, creates the file's folder and sets WAL, foreign keys and busy timeout."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"{url!r} is not a database URL; use sqlite:///path/to/file.sqlite or postgresql+psycopg://user@host/db"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed)
    _configure_sqlite(engine, foreign_keys=foreign_keys)
    return engine


def _configure_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    # pysqlite's own transaction handling defers BEGIN and commits before DDL; we take it over
    # so a transaction covers everything in it (the recipe in SQLAlchemy's SQLite docs).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def open_database(url: str | None = None, *, upgrade: bool = True) -> Database:
    """Open the repository at `url` (default: the VKPP_DATABASE_URL setting), upgrading its schema to head."""
    url = database_url(url)
    try:
        if upgrade:
            migrate(url, "head")
        engine = make_engine(url)
    except OperationalError as exc:
        raise ConfigurationError(f"cannot open the database {safe_url(url)}: {exc.orig}") from None
    return Database(url=url, engine=engine, sessions=sessionmaker(bind=engine, expire_on_commit=False))


def migrate(url: str, revision: str = "head", *, downgrade: bool = False) -> None:
    """Upgrade (or downgrade) the schema at `url` to `revision`, in one transaction, under a lock."""
    from alembic import command

    url = database_url(url)
    # SQLite batch migrations rebuild tables; with foreign keys on, dropping the old table would
    # cascade-delete child rows, so migrations run with them off and check integrity afterwards.
    engine = make_engine(url, foreign_keys=False)
    try:
        if not downgrade and current_revision(engine) == head_revision():
            return
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection, connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})
            config = alembic_config(connection)
            (command.downgrade if downgrade else command.upgrade)(config, revision)
            if engine.dialect.name == "sqlite":
                _check_foreign_keys(connection)
    finally:
        engine.dispose()


def _check_foreign_keys(connection: Connection) -> None:
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise ConfigurationError(f"the schema migration left {len(problems)} broken references; nothing was changed")


def alembic_config(connection: Connection | None = None) -> Any:
    """The Alembic configuration for our migrations, optionally bound to an open connection."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database at `engine` is at; None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
