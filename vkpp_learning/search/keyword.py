"""Keyword search ranked by BM25 (k1=1.2, b=0.75): on SQLite FTS5's formula over its postings in numpy
(bm25.py), filtered by catalog masks; on PostgreSQL the same formula in one SQL statement over our own
postings, with the filters joined into it.

Passages meeting every group of the query rank first; passages meeting only some follow, so a few typed
words never return nothing just because one of them does not occur.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import text

from vkpp_learning.search import bm25
from vkpp_learning.search.bm25 import K1, B
from vkpp_learning.search.filters import Filters, filter_condition
from vkpp_learning.search.query import Query, postgres_query


@dataclass(frozen=True)
class Hit:
    passage_id: int
    score: float


def keyword_search(session: Any, query: Query, filters: Filters, limit: int, offset: int = 0) -> list[Hit]:
    """The passages matching `query`, best first, from `offset`; empty for an empty query."""
    if query.empty or limit <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _run(session, postgres_statement(query, filters, limit, offset))
    return _sqlite_search(session, query, filters, limit, offset)


def _sqlite_search(session: Any, query: Query, filters: Filters, limit: int, offset: int) -> list[Hit]:
    """Strict matches first, then relaxed ones; each tier ranked by BM25 (bm25.py) and paged together."""
    ids, scores = bm25.search(session, query, filters, offset + limit)
    return [Hit(int(i), float(s)) for i, s in zip(ids[offset:], scores[offset:], strict=True)]


def _run(session: Any, statement: tuple[str, dict[str, Any]]) -> list[Hit]:
    sql, params = statement
    return [Hit(int(row[0]), float(row[1])) for row in session.execute(text(sql), params)]


def sqlite_statement(match: str, filters: Filters, limit: int, offset: int) -> tuple[str, dict[str, Any]]:
    """FTS5 candidates for a MATCH string, filtered, ranked by bm25() (negated so higher is better).

    The search itself scores in numpy (bm25.py); this statement is the reference it is tested against.
    """
    condition = filter_condition(filters)
    sql = (
        "SELECT f.rowid, -bm25(passages_fts) AS score FROM passages_fts AS f "
        "JOIN passages AS p ON p.id = f.rowid JOIN reviews AS r ON r.id = p.review_id "
        f"WHERE passages_fts MATCH :match AND {condition.sql} "
        "ORDER BY bm25(passages_fts), f.rowid LIMIT :limit OFFSET :offset"
    )
    return sql, {**condition.params, "match": match, "limit": limit, "offset": offset}


def postgres_statement(query: Query, filters: Filters, limit: int, offset: int) -> tuple[str, dict[str, Any]]:
    """BM25 over the postings of the query's clauses, with FTS5's IDF, document lengths and average length.

    Document frequency is counted over the whole index (as FTS5 does), filters then restrict the candidates.
    """
    rendered = postgres_query(query)
    condition = filter_condition(filters)
    sql = (
        f"WITH {rendered.ctes}, "
        "weighted AS (SELECT clause, passage_id, tf, count(*) OVER (PARTITION BY clause) AS df FROM hits), "
        "stats AS (SELECT passages AS n, tokens::float8 / greatest(passages, 1) AS avgdl FROM search_stats) "
        f"SELECT w.passage_id, sum({bm25_sql('w.tf', 'w.df', 'd.length')}) AS score, "
        f"CASE WHEN {rendered.strict} THEN 0 ELSE 1 END AS tier "
        "FROM weighted AS w CROSS JOIN stats AS s JOIN search_doclen AS d ON d.passage_id = w.passage_id "
        "JOIN passages AS p ON p.id = w.passage_id JOIN reviews AS r ON r.id = p.review_id "
        f"WHERE {condition.sql} AND NOT EXISTS (SELECT 1 FROM excluded AS x WHERE x.passage_id = w.passage_id) "
        "GROUP BY w.passage_id ORDER BY tier, score DESC, w.passage_id LIMIT :limit OFFSET :offset"
    )
    return sql, {**rendered.params, **condition.params, "limit": limit, "offset": offset}


def bm25_sql(tf: str, df: str, length: str) -> str:
    """One clause's BM25 weight in one passage: FTS5's formula, IDF floored at 1e-6 as FTS5 does."""
    idf = f"greatest(ln((s.n - {df} + 0.5) / ({df} + 0.5)), 1e-6)"
    return f"{idf} * {tf} * {K1 + 1} / ({tf} + {K1} * ({1 - B} + {B} * {length} / s.avgdl))"


def matching_ids(session: Any, query: Query, filters: Filters) -> list[int]:
    """Every passage that matches the query at all (any group), after filters: for counts and facets."""
    return matching_array(session, query, filters).tolist()


def matching_array(session: Any, query: Query, filters: Filters) -> np.ndarray:
    """`matching_ids` as an array (a million ids stay out of Python lists)."""
    if query.empty:
        return np.zeros(0, dtype=np.int64)
    if session.get_bind().dialect.name == "postgresql":
        sql, params = postgres_statement(query, filters, limit=10_000_000, offset=0)
        return np.asarray([hit.passage_id for hit in _run(session, (sql, params))], dtype=np.int64)
    return bm25.matching_ids(session, query, filters)
