"""Keeping the keyword index in step with the passages.

SQLite: FTS5 triggers (migration 0002) do it in the writing transaction. PostgreSQL: `index_review` writes
the BM25 postings of a review's passages in the transaction that saved them (store.save_review calls it);
deletes cascade. `index_status` and `rebuild` check and repair the index if passages were written another way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from vkpp_learning.search.tokenize import tokenize_many

BATCH = 2_000
MAX_TERM_CHARS = 200  # longer "words" are cut (queries are cut the same way) to fit a btree key


@dataclass(frozen=True)
class IndexStatus:
    """How many passages there are and how many the keyword index holds; in step when equal."""

    passages: int
    indexed: int

    @property
    def in_step(self) -> bool:
        return self.passages == self.indexed


def connection_of(session_or_connection: Any) -> Connection:
    if isinstance(session_or_connection, Connection):
        return session_or_connection
    return session_or_connection.connection()


def index_review(session_or_connection: Any, review_id: int) -> int:
    """Index one review's passages (PostgreSQL; SQLite's triggers already did). Returns how many were indexed."""
    connection = connection_of(session_or_connection)
    if connection.dialect.name != "postgresql":
        return 0
    rows = connection.execute(
        text("SELECT id, text FROM passages WHERE review_id = :review ORDER BY id"), {"review": review_id}
    )
    return write_postings(connection, rows)


def index_missing(session_or_connection: Any) -> int:
    """Index every passage the PostgreSQL index lacks (after a migration or a bulk load)."""
    connection = connection_of(session_or_connection)
    if connection.dialect.name != "postgresql":
        return 0
    rows = connection.execute(
        text(
            "SELECT id, text FROM passages WHERE NOT EXISTS "
            "(SELECT 1 FROM search_doclen AS d WHERE d.passage_id = passages.id) ORDER BY id"
        )
    )
    return write_postings(connection, rows)


def rebuild(session_or_connection: Any) -> int:
    """Rebuild the keyword index from the passages, in the caller's transaction; returns the passages indexed."""
    connection = connection_of(session_or_connection)
    if connection.dialect.name == "postgresql":
        connection.execute(text("DELETE FROM search_postings"))
        connection.execute(text("DELETE FROM search_doclen"))
        return index_missing(connection)
    connection.execute(text("INSERT INTO passages_fts(passages_fts) VALUES ('rebuild')"))
    return int(connection.execute(text("SELECT count(*) FROM passages")).scalar_one())


def index_status(session_or_connection: Any) -> IndexStatus:
    connection = connection_of(session_or_connection)
    passages = int(connection.execute(text("SELECT count(*) FROM passages")).scalar_one())
    if connection.dialect.name == "postgresql":
        indexed = int(connection.execute(text("SELECT count(*) FROM search_doclen")).scalar_one())
    else:
        indexed = int(connection.execute(text("SELECT count(*) FROM passages_fts_docsize")).scalar_one())
    return IndexStatus(passages, indexed)


def postings(terms: Sequence[str]) -> dict[str, list[int]]:
    """Each distinct term of one passage with its token positions."""
    found: dict[str, list[int]] = defaultdict(list)
    for position, term in enumerate(terms):
        found[term[:MAX_TERM_CHARS]].append(position)
    return found


def write_postings(connection: Connection, rows: Iterable[Any]) -> int:
    """Tokenize passages (id, text) and COPY their postings and lengths in, batch by batch."""
    written = 0
    for batch in _batches(rows, BATCH):
        ids = [row[0] for row in batch]
        tokenized = tokenize_many([row[1] for row in batch])
        _copy(connection, "search_doclen (passage_id, length)", zip(ids, map(len, tokenized), strict=True))
        _copy(connection, "search_postings (term, passage_id, tf, positions)", _posting_rows(ids, tokenized))
        written += len(batch)
    return written


def _posting_rows(ids: list[int], tokenized: list[list[str]]) -> Iterator[tuple[str, int, int, list[int]]]:
    for passage_id, terms in zip(ids, tokenized, strict=True):
        for term, positions in postings(terms).items():
            yield term, passage_id, len(positions), positions


def _copy(connection: Connection, target: str, rows: Iterable[tuple[Any, ...]]) -> None:
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def is_search_index_table(name: str | None) -> bool:
    """Tables made by the search migration (FTS5 and its shadow tables, postings...), which have no model."""
    return bool(name) and str(name).startswith(("passages_fts", "search_"))


def include_in_model_comparison(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Alembic `include_name` hook: compare everything but the search index tables with models.py."""
    return not (type_ == "table" and is_search_index_table(name))
