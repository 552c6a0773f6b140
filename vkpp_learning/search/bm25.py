"""Keyword ranking on SQLite: FTS5's own postings, read through an fts5vocab table, scored with numpy by
FTS5's bm25() formula (k1=1.2, b=0.75, the same IDF and lengths), so results match `ORDER BY bm25()`.

Why not bm25() itself: it looks up every matching row's length in a B-tree, about 1.3 microseconds a row,
so a common word at a million passages cost over a second. Reading a word's postings in one aggregate and
scoring them as arrays costs about a quarter of that, and filters, exclusions and tiers become masks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import text

from vkpp_learning.search import catalog
from vkpp_learning.search.filters import Filters
from vkpp_learning.search.query import Clause, Query, fts5_any, fts5_strict, fts5_string
from vkpp_learning.search.tokenize import tokenize_many

K1 = 1.2
B = 0.75
MIN_IDF = 1e-6  # FTS5 floors a word found in over half the passages at this
VOCABULARY = "temp.passages_fts_instances"
# A query's strict matches (every group) are scored by FTS5's bm25() when there are at most this many:
# cheaper there than reading whole postings when the words are common but rarely together.
FTS5_CAP = 20_000
COUNT_SQL = "SELECT count(*) FROM passages_fts WHERE passages_fts MATCH :match"
_CACHE: dict[str, Lengths] = {}
_LOCK = threading.Lock()


@dataclass
class Lengths:
    """Each passage's length in tokens (index = passage id), as FTS5 counts it, and the corpus totals."""

    generation: int
    tokens: np.ndarray
    rows: int
    average: float


@dataclass
class Postings:
    """Where one clause (a word, or a phrase's words in a row) occurs: passage ids and counts."""

    ids: np.ndarray
    counts: np.ndarray


@dataclass
class Matches:
    """Every passage meeting at least one group, its BM25 score and whether it meets every group."""

    ids: np.ndarray
    scores: np.ndarray
    strict: np.ndarray


def lengths(session: Any) -> Lengths:
    """Passage lengths from FTS5's docsize table, cached until passages change."""
    key = repr(session.get_bind().url)
    current = catalog.generations(session)[catalog.PASSAGES]
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is None or cached.generation != current:
            cached = _CACHE[key] = load_lengths(session, current)
        return cached


def load_lengths(session: Any, current: int) -> Lengths:
    sql = "SELECT group_concat(id), group_concat(length(sz)), group_concat(hex(sz), '') FROM passages_fts_docsize"
    ids_text, sizes_text, hex_text = session.execute(text(sql)).one()
    ids, sizes = catalog.parse_ids(ids_text), catalog.parse_ids(sizes_text)
    values = decode_varints(bytes.fromhex(hex_text or ""), sizes)
    tokens = np.zeros(int(ids.max(initial=0)) + 1, dtype=np.float64)
    tokens[ids] = values
    rows = len(ids)
    return Lengths(current, tokens, rows, float(values.sum()) / max(rows, 1))


def decode_varints(data: bytes, sizes: np.ndarray) -> np.ndarray:
    """The first varint of each record (SQLite's big-endian base-128): a one-column table's token count."""
    raw = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    values = np.zeros(len(sizes), dtype=np.int64)
    more = np.ones(len(sizes), dtype=bool)
    for step in range(int(sizes.max(initial=0))):
        live = more & (step < sizes)
        byte = raw[starts[live] + step]
        values[live] = (values[live] << 7) | (byte & 0x7F)
        more[live] = byte >= 0x80
    return values


def ensure_vocabulary(session: Any) -> None:
    """The fts5vocab 'instance' view of the index (one row per word occurrence), per connection, in temp."""
    session.execute(
        text(f"CREATE VIRTUAL TABLE IF NOT EXISTS {VOCABULARY} USING fts5vocab(main, passages_fts, instance)")
    )


def word_postings(session: Any, term: str) -> np.ndarray:
    """The passage id of every occurrence of one indexed term (a passage repeats once per occurrence)."""
    sql = f"SELECT group_concat(doc) FROM {VOCABULARY} WHERE term = :term"
    return catalog.parse_ids(session.execute(text(sql), {"term": term}).scalar_one())


def fts5_ids(session: Any, match: str) -> np.ndarray:
    """Every passage matching an FTS5 expression, unranked."""
    sql = "SELECT group_concat(rowid) FROM passages_fts WHERE passages_fts MATCH :match"
    return catalog.parse_ids(session.execute(text(sql), {"match": match}).scalar_one())


def clause_postings(session: Any, terms: list[str], stats: Lengths) -> Postings:
    """Passages holding the term, or the phrase's terms in a row, with how many times."""
    if not terms:  # only characters FTS5 does not index: matches nothing, as in FTS5
        return Postings(np.zeros(0, np.int64), np.zeros(0, np.int64))
    if len(terms) > 1:
        return phrase_postings(session, terms, stats)
    ids, counts = np.unique(word_postings(session, terms[0]), return_counts=True)
    return Postings(ids, counts)


def phrase_postings(session: Any, terms: list[str], stats: Lengths) -> Postings:
    """A phrase's passages from FTS5 (which matches phrases through its position lists), and its counts
    recovered from bm25() of the phrase alone: reading every occurrence of each of its words instead would
    cost far more when one of them is as common as the "s" of a possessive.
    """
    match = fts5_string(Clause(tuple(terms)))
    ids, scores = fts5_scored(session, match)
    per_idf = scores / idf(stats.rows, len(ids))
    norm = K1 * (1 - B + B * stats.tokens[ids] / stats.average)
    counts = np.rint(per_idf * norm / (K1 + 1 - per_idf)).astype(np.int64)
    return Postings(ids, np.maximum(counts, 1))


def idf(rows: int, found: int) -> float:
    return max(float(np.log((rows - found + 0.5) / (found + 0.5))), MIN_IDF)


def matches(session: Any, query: Query, filters: Filters) -> Matches:
    """Every passage meeting a group of the query and no excluded clause, allowed by the filters, scored."""
    ensure_vocabulary(session)
    stats = lengths(session)
    size = len(stats.tokens)
    terms = tokenize_many([clause.text for clause in query.clauses])
    scores, groups_met = np.zeros(size), np.zeros(size, dtype=np.int32)
    index = 0
    for group in query.groups:
        in_group = np.zeros(size, dtype=bool)
        for _clause in group.clauses:
            found = clause_postings(session, terms[index], stats)
            scores[found.ids] += weight(stats, found)
            in_group[found.ids] = True
            index += 1
        groups_met += in_group
    ids = np.flatnonzero((groups_met > 0) & ~excluded(session, query, size))
    ids = ids[allowed_of(ids, catalog.allowed(session, filters))]
    return Matches(ids, scores[ids], groups_met[ids] == len(query.groups))


def allowed_of(ids: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Which of `ids` a filter mask allows (all of them when nothing is filtered)."""
    if allowed is None:
        return np.ones(len(ids), dtype=bool)
    keep = ids < len(allowed)
    keep[keep] = allowed[ids[keep]]
    return keep


def weight(stats: Lengths, found: Postings) -> np.ndarray:
    """One clause's BM25 weight in each passage holding it."""
    norm = K1 * (1 - B + B * stats.tokens[found.ids] / stats.average)
    return idf(stats.rows, len(found.ids)) * found.counts * (K1 + 1) / (found.counts + norm)


def excluded(session: Any, query: Query, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    if query.excluded:
        ids = fts5_ids(session, " OR ".join(fts5_string(clause) for clause in query.excluded))
        mask[ids[ids < size]] = True
    return mask


def ranked(found: Matches, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The best `count` matches (ids, scores): passages meeting every group first, each tier by score, then id."""
    strict = best(found.ids[found.strict], found.scores[found.strict], count)
    if len(strict[0]) >= count:
        return strict
    loose = best(found.ids[~found.strict], found.scores[~found.strict], count - len(strict[0]))
    return np.concatenate([strict[0], loose[0]]), np.concatenate([strict[1], loose[1]])


def best(ids: np.ndarray, scores: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The `count` highest scores, best first, ties by lower id; only those at or above the cut are sorted."""
    if count <= 0:
        return ids[:0], scores[:0]
    if len(ids) > count:
        cut = np.partition(scores, len(scores) - count)[len(scores) - count]
        keep = scores >= cut
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:count]
    return ids[order], scores[order]


def search(session: Any, query: Query, filters: Filters, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The best `count` passages for the query (ids, scores), strict matches first, as FTS5 would rank them."""
    strict = fts5_strict(query)
    total = int(session.execute(text(COUNT_SQL), {"match": strict}).scalar_one())
    if total <= FTS5_CAP and (total >= count or len(query.groups) == 1):
        ids, scores = fts5_scored(session, strict)
        keep = allowed_of(ids, catalog.allowed(session, filters))
        ids, scores = ids[keep], scores[keep]
        if len(ids) >= count or len(query.groups) == 1:
            return best(ids, scores, count)
    return ranked(matches(session, query, filters), count)


def fts5_scored(session: Any, match: str) -> tuple[np.ndarray, np.ndarray]:
    """Every passage matching an FTS5 expression with its bm25() score (negated: higher is better)."""
    # bm25() cannot run inside an aggregate; LIMIT -1 keeps SQLite from flattening the subquery into one.
    sql = (
        "SELECT group_concat(id), group_concat(score) FROM (SELECT rowid AS id, -bm25(passages_fts) AS score "
        "FROM passages_fts WHERE passages_fts MATCH :m LIMIT -1)"
    )
    ids_text, scores_text = session.execute(text(sql), {"m": match}).one()
    scores = np.fromstring(scores_text, dtype=np.float64, sep=",") if scores_text else np.zeros(0)
    return catalog.parse_ids(ids_text), scores


def matching_ids(session: Any, query: Query, filters: Filters) -> np.ndarray:
    """Every passage meeting at least one group and no excluded clause, after filters (unranked)."""
    ids = fts5_ids(session, fts5_any(query))
    return ids[allowed_of(ids, catalog.allowed(session, filters))]
