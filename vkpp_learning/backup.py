"""Portable backups: every table of the repository as gzip JSON Lines, restored into an empty SQLite or
PostgreSQL database (either way round) in one transaction, with primary keys kept.

Tables are discovered from the live database (so tables other features add are included), in foreign-key
order; the keyword search index is derived data, left out and rebuilt after a restore.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import JSON, Boolean, Connection, DateTime, Engine, LargeBinary, MetaData, Table, func, select, text
from sqlalchemy.exc import OperationalError

from vkpp_learning import __version__
from vkpp_learning.db.engine import current_revision, database_url, make_engine, migrate, safe_url
from vkpp_learning.db.models import Base
from vkpp_learning.errors import ConfigurationError, VkppError
from vkpp_learning.search.index import is_search_index_table, rebuild

FORMAT = "vkpp-backup"
FORMAT_VERSION = 1
NOT_BACKED_UP = frozenset({"alembic_version"})  # plus the search index tables: rebuilt from the passages
BATCH = 1_000


@dataclass
class BackupSummary:
    """What a backup or a restore moved: rows per table, the schema revision, and how long it took."""

    path: str
    revision: str | None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "seconds": round(self.seconds, 2), "rows": self.rows}


class BackupError(VkppError):
    code = "backup"


# Which tables, in which order, with which column kinds


def is_backed_up(name: str) -> bool:
    """Every table but Alembic's and the search index's (tables with a model are always kept)."""
    if name in NOT_BACKED_UP:
        return False
    return name in Base.metadata.tables or not is_search_index_table(name)


def backup_tables(connection: Connection) -> list[Table]:
    """The tables to back up, parents before children; the models' definitions where they exist (their types
    are portable), the database's own for tables only a migration made."""
    reflected = MetaData()
    reflected.reflect(bind=connection, only=lambda name, _meta: is_backed_up(name))
    return [model_or_reflected(table) for table in reflected.sorted_tables]


def model_or_reflected(table: Table) -> Table:
    """The model's table when it has the same columns as the database's (so at the same schema revision)."""
    model = Base.metadata.tables.get(table.name)
    return model if model is not None and set(model.columns.keys()) == set(table.columns.keys()) else table


def column_kind(column: Any) -> str:
    """How a column's values travel in JSON: datetime as ISO 8601 UTC, binary as base64, the rest as they are."""
    kind = column.type
    if isinstance(kind, DateTime):
        return "datetime"
    if isinstance(kind, LargeBinary):
        return "binary"
    if isinstance(kind, Boolean):
        return "boolean"
    return "json" if isinstance(kind, JSON) else "value"


def encode(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite keeps UTC without the offset
        return moment.astimezone(UTC).isoformat()
    if kind == "binary":
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def decode(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "binary":
        return base64.b64decode(value)
    return bool(value) if kind == "boolean" else value


def primary_key_order(table: Table) -> list[Any]:
    return list(table.primary_key.columns) or list(table.columns)


# Backup


def backup(db_url: str | None, out: str | Path) -> BackupSummary:
    """Write every table of the database at `db_url` to `out` (gzip JSON Lines), from one consistent snapshot.

    The file is written beside `out` and renamed into place when complete, so a failed backup never
    leaves a partial file under the name asked for.
    """
    started = time.perf_counter()
    url = database_url(db_url)
    engine = open_engine(url)
    target = Path(out)
    partial = target.with_name(target.name + ".partial")
    try:
        with snapshot(engine) as connection:
            summary = BackupSummary(str(target), current_revision_of(connection))
            tables = backup_tables(connection)
            summary.counts = {table.name: count_rows(connection, table) for table in tables}
            with gzip.open(partial, "wt", encoding="utf-8") as stream:
                write_line(stream, header(connection, summary))
                for table in tables:
                    write_table(stream, connection, table, summary.counts[table.name])
                write_line(stream, {"end": True, "rows": summary.rows})
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
        engine.dispose()
    summary.seconds = time.perf_counter() - started
    return summary


def open_engine(url: str) -> Engine:
    engine = make_engine(url)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        engine.dispose()
        raise ConfigurationError(f"cannot open the database {safe_url(url)}: {exc.orig}") from None
    return engine


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read transaction that sees one state of the database: REPEATABLE READ on PostgreSQL; on SQLite, WAL
    gives a read transaction a snapshot from its first read."""
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**options) as connection, connection.begin() as transaction:
        yield connection
        transaction.rollback()  # read only: nothing to keep


def current_revision_of(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def count_rows(connection: Connection, table: Table) -> int:
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def header(connection: Connection, summary: BackupSummary) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "schema_revision": summary.revision,
        "source_dialect": connection.dialect.name,
        "vkpp_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": summary.counts,
    }


def write_line(stream: IO[str], value: Any) -> None:
    stream.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")


def write_table(stream: IO[str], connection: Connection, table: Table, rows: int) -> None:
    """A section: one line naming the table, its columns and their kinds, then one JSON array per row."""
    columns = list(table.columns)
    kinds = [column_kind(column) for column in columns]
    write_line(stream, {"table": table.name, "columns": [c.name for c in columns], "kinds": kinds, "rows": rows})
    statement = select(*columns).order_by(*primary_key_order(table)).execution_options(yield_per=BATCH)
    for row in connection.execute(statement):
        write_line(stream, [encode(value, kind) for value, kind in zip(row, kinds, strict=True)])


# Restore


def read_header(path: str | Path) -> dict[str, Any]:
    """The backup's header line, checked to be a vkpp backup of a format this version reads."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            first = json.loads(stream.readline() or "null")
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackupError(f"{path} is not a vkpp backup (gzip JSON Lines): {exc}") from None
    if not isinstance(first, dict) or first.get("format") != FORMAT:
        raise BackupError(f"{path} is not a vkpp backup: its first line is not a {FORMAT} header")
    if first.get("version") != FORMAT_VERSION:
        raise BackupError(f"{path} is backup format {first.get('version')}; this vkpp reads format {FORMAT_VERSION}")
    return first


def restore(db_url: str | None, path: str | Path, *, force: bool = False) -> BackupSummary:
    """Restore the backup at `path` into the database at `db_url`, in one transaction.

    The database must hold no data (a new database is created at the backup's schema revision), unless
    `force`, which deletes everything in it first, in the same transaction. After the restore the
    schema is upgraded to this version's head and the keyword index rebuilt.
    """
    started = time.perf_counter()
    url = database_url(db_url)
    meta = read_header(path)
    revision = check_known_revision(meta.get("schema_revision"))
    engine = open_engine(url)
    try:
        prepare_schema(engine, url, revision, force)
        summary = BackupSummary(str(path), revision)
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection, connection.begin():
            tables = {table.name: table for table in backup_tables(connection)}
            if force:
                wipe(connection, list(tables.values()))
            summary.counts = load(connection, tables, path, meta)
            after_load(connection, [tables[name] for name in summary.counts])
        migrate(url, "head")
    finally:
        engine.dispose()
    summary.seconds = time.perf_counter() - started
    return summary


def check_known_revision(revision: str | None) -> str:
    """The backup's schema revision, if this version's migrations know it."""
    from alembic.script import ScriptDirectory

    from vkpp_learning.db.engine import alembic_config

    if revision is None:
        raise BackupError("the backup has no schema revision: it was made from an empty database")
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except Exception:
        raise BackupError(
            f"the backup is at schema revision {revision}, which this version of vkpp does not know: "
            "restore it with the version that made it, or a newer one"
        ) from None
    return revision


def prepare_schema(engine: Engine, url: str, revision: str, force: bool) -> None:
    """Bring the target to the backup's schema revision; refuse a database that holds data unless forced."""
    holding = tables_with_rows(engine)
    if holding and not force:
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(holding.items()))
        raise BackupError(
            f"the database {safe_url(url)} is not empty: {listed}. Restore into an empty database, "
            "or use --force to delete everything in it first"
        )
    current = current_revision(engine)
    if current == revision:
        return
    if holding:
        raise BackupError(
            f"the backup is at schema revision {revision} and the database at {current}: "
            "restore it into an empty database (it is brought to the backup's revision, then upgraded)"
        )
    if current is not None and is_ancestor(revision, current):
        migrate(url, revision, downgrade=True)
    else:
        migrate(url, revision)


def is_ancestor(older: str, newer: str) -> bool:
    """Whether revision `older` comes before `newer` in our migration history."""
    from alembic.script import ScriptDirectory

    from vkpp_learning.db.engine import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    return any(script.revision == older for script in scripts.iterate_revisions(newer, "base")) and older != newer


def tables_with_rows(engine: Engine) -> dict[str, int]:
    """The backed-up tables that hold rows in the database (none, for an empty or a new database)."""
    with engine.connect() as connection:
        counts = {table.name: count_rows(connection, table) for table in backup_tables(connection)}
    return {name: n for name, n in counts.items() if n}


def wipe(connection: Connection, tables: list[Table]) -> None:
    for table in reversed(tables):  # children first
        connection.execute(table.delete())


def load(connection: Connection, tables: dict[str, Table], path: str | Path, meta: dict[str, Any]) -> dict[str, int]:
    """Insert every section of the backup; raises (and so rolls back) on anything missing or out of place."""
    counts: dict[str, int] = {}
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        lines = (json.loads(line) for line in stream)
        next(lines)  # the header, read already
        for section, rows in sections(lines):
            table = target_table(tables, section)
            counts[table.name] = insert_rows(connection, table, section, rows)
            if counts[table.name] != section["rows"]:
                raise BackupError(f"the backup's {table.name} section is cut short: the file is incomplete")
    if counts != meta.get("tables"):
        raise BackupError("the backup is incomplete: its sections do not match the counts in its header")
    return counts


def sections(lines: Iterator[Any]) -> Iterator[tuple[dict[str, Any], Iterator[list[Any]]]]:
    """(section header, its rows) in file order, until the end marker; an error if the file stops before it."""
    for line in lines:
        if isinstance(line, dict) and line.get("end"):
            return
        if not isinstance(line, dict) or "table" not in line:
            raise BackupError("the backup is damaged: a table's rows do not follow its section header")
        yield line, section_rows(lines, line["rows"])
    raise BackupError("the backup is incomplete: it ends before its end marker (was the copy cut short?)")


def section_rows(lines: Iterator[Any], count: int) -> Iterator[list[Any]]:
    for _ in range(count):
        row = next(lines, None)
        if not isinstance(row, list):
            raise BackupError("the backup is incomplete or damaged inside a table's rows")
        yield row


def target_table(tables: dict[str, Table], section: dict[str, Any]) -> Table:
    table = tables.get(section["table"])
    if table is None:
        raise BackupError(f"the backup has a table {section['table']!r} that this database's schema lacks")
    missing = set(section["columns"]) - set(table.columns.keys())
    if missing:
        raise BackupError(f"the backup's {table.name} has columns this database lacks: {', '.join(sorted(missing))}")
    return table


def insert_rows(connection: Connection, table: Table, section: dict[str, Any], rows: Iterable[list[Any]]) -> int:
    names, kinds = section["columns"], section["kinds"]
    written, batch = 0, []
    for row in rows:
        batch.append({name: decode(value, kind) for name, value, kind in zip(names, row, kinds, strict=True)})
        if len(batch) == BATCH:
            written += flush(connection, table, batch)
    return written + flush(connection, table, batch)


def flush(connection: Connection, table: Table, batch: list[dict[str, Any]]) -> int:
    if batch:
        connection.execute(table.insert(), batch)
    count = len(batch)
    batch.clear()
    return count


def after_load(connection: Connection, tables: list[Table]) -> None:
    """Move PostgreSQL's id sequences past the restored ids, rebuild the keyword index, check references."""
    if connection.dialect.name == "postgresql":
        for table in tables:
            reset_sequence(connection, table)
    rebuild(connection)
    if connection.dialect.name == "sqlite":
        problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise BackupError(f"the restored rows break {len(problems)} references; nothing was restored")


def reset_sequence(connection: Connection, table: Table) -> None:
    """setval on the sequence behind a single integer primary key, so new rows get ids after the restored ones."""
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or keys[0].type.python_type is not int:
        return
    column = keys[0].name
    connection.execute(
        text(
            f'SELECT setval(pg_get_serial_sequence(:table, :column), coalesce(max("{column}"), 0) + 1, false) '
            f'FROM "{table.name}"'
        ),
        {"table": f'"{table.name}"', "column": column},
    )
