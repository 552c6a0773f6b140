"""The search facade: one call for a page of cited, highlighted results in keyword, semantic or hybrid mode,
plus "more like this" and facet counts. The CLI and the app call only these."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text

from vkpp_learning.errors import VkppError
from vkpp_learning.search import bm25, catalog, keyword, semantic
from vkpp_learning.search.facets import FACET_LABELS, count_facets, effective_labels
from vkpp_learning.search.filters import MISSED_FACET, THEME_FACET, Filters
from vkpp_learning.search.highlight import highlight, query_stems
from vkpp_learning.search.hybrid import fuse, section_prior
from vkpp_learning.search.keyword import Hit
from vkpp_learning.search.query import Clause, Group, Query, parse

MODES = ("hybrid", "keyword", "semantic")
HYBRID_DEPTH = 100  # each ranking contributes at least this many candidates to the fusion
FACET_DEPTH = 1_000  # semantic facets count the nearest this many (meaning has no "does not match")
MAX_LIMIT = 1_000


@dataclass
class SearchResult:
    """One passage found, with everything needed to cite it."""

    passage_id: int
    review_id: int
    review_title: str
    review_type: str
    year: int | None
    page_start: int
    page_end: int
    paragraph: str | None
    section: str
    score: float
    text: str
    highlighted: str
    themes: list[str] = field(default_factory=list)
    missed_opportunity: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchPage:
    """A page of results and what produced it; `notes` tell the user about anything that limited the search."""

    query: str
    mode: str
    filters: Filters
    limit: int
    offset: int
    results: list[SearchResult]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "results": [result.to_dict() for result in self.results]}


@contextmanager
def reading(source: Any) -> Iterator[Any]:
    """A session from a Database, or the given Session as is."""
    if hasattr(source, "sessions"):
        with source.session() as session:
            yield session
    else:
        yield source


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise VkppError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}", code="bad_mode")


def search(
    source: Any,
    query: str,
    filters: Filters | None = None,
    mode: str = "hybrid",
    limit: int = 10,
    offset: int = 0,
) -> SearchPage:
    """Search passages: `source` is a Database or a Session; results come best first, from `offset`."""
    check_mode(mode)
    filters = filters or Filters()
    limit, offset = max(0, min(limit, MAX_LIMIT)), max(0, offset)
    page = SearchPage(query, mode, filters, limit, offset, [])
    parsed = parse(query)
    with reading(source) as session:
        hits = ranked(session, parsed, query, filters, mode, offset + limit, page.notes)[offset:]
        page.results = results(session, hits, query_stems(parsed.words))
    return page


def ranked(
    session: Any, parsed: Query, query: str, filters: Filters, mode: str, depth: int, notes: list[str]
) -> list[Hit]:
    """The best `depth` hits in the given mode, best first."""
    if mode == "keyword":
        return keyword.keyword_search(session, parsed, filters, depth)
    if mode == "semantic":
        return semantic_hits(session, parsed, query, filters, depth, notes)
    try:  # the semantic half runs on its own thread while the keyword query runs here
        meaning = start_semantic(session, parsed, query, filters, max(depth, HYBRID_DEPTH), notes)
    except semantic.EmbeddingsMissing as exc:
        notes.append(f"keyword results only: {exc.message}")
        meaning = None
    lexical = keyword.keyword_search(session, parsed, filters, max(depth, HYBRID_DEPTH))
    if meaning is None:
        return lexical[:depth]
    return fuse([lexical, meaning()], prior=section_prior(catalog.catalog(session).section_of_passage))[:depth]


def semantic_hits(session: Any, parsed: Query, query: str, filters: Filters, depth: int, notes: list[str]) -> list[Hit]:
    """Semantic hits for the query's positive text; passages holding an excluded word or phrase are left out."""
    return start_semantic(session, parsed, query, filters, depth, notes)()


def start_semantic(
    session: Any, parsed: Query, query: str, filters: Filters, depth: int, notes: list[str]
) -> Callable[[], list[Hit]]:
    """Start `semantic_hits` on the worker thread; call the result to wait for the hits."""
    index = semantic.vector_index(session)
    if index.missing and len(index.ids):
        notes.append(f"{index.missing} passages have no embedding yet and cannot be found by meaning: run `vkpp embed`")
    wanted = semantic_text(parsed, query)
    if not parsed.excluded:
        return semantic.start_search(session, wanted, filters, depth).result
    banned = set(keyword.matching_ids(session, Query(tuple(_groups(parsed.excluded))), Filters()))
    pending = semantic.start_search(session, wanted, filters, depth + len(banned))
    return lambda: [hit for hit in pending.result() if hit.passage_id not in banned][:depth]


def _groups(clauses: Sequence[Clause]) -> Iterator[Group]:
    return (Group((clause,)) for clause in clauses)


def semantic_text(parsed: Query, query: str) -> str:
    """What to embed: the user's words as typed, or, when they exclude something, only the positive clauses."""
    if not parsed.excluded:
        return query.replace('"', " ").strip()
    return " ".join(clause.text for clause in parsed.clauses)


def results(session: Any, hits: Sequence[Hit], stems: frozenset[str]) -> list[SearchResult]:
    """Cited, highlighted results for the hits, in their order."""
    if not hits:
        return []
    ids = [hit.passage_id for hit in hits]
    statement = text(citation_sql()).bindparams(bindparam("ids", expanding=True))
    rows = {row.id: row for row in session.execute(statement, {"ids": ids})}
    themes = effective_labels(session, THEME_FACET, ids)
    missed = effective_labels(session, MISSED_FACET, ids)
    return [
        result(rows[hit.passage_id], hit.score, stems, themes.get(hit.passage_id, []), missed.get(hit.passage_id, []))
        for hit in hits
        if hit.passage_id in rows
    ]


def citation_sql() -> str:
    return (
        "SELECT p.id, p.review_id, r.title, r.review_type, r.year, p.page_start, p.page_end, p.paragraph, "
        "p.section, p.text FROM passages AS p JOIN reviews AS r ON r.id = p.review_id WHERE p.id IN :ids"
    )


def result(row: Any, score: float, stems: frozenset[str], themes: list[str], missed: list[str]) -> SearchResult:
    return SearchResult(
        passage_id=row.id,
        review_id=row.review_id,
        review_title=row.title,
        review_type=row.review_type,
        year=row.year,
        page_start=row.page_start,
        page_end=row.page_end,
        paragraph=row.paragraph,
        section=row.section,
        score=round(score, 6),
        text=row.text,
        highlighted=highlight(row.text, stems),
        themes=themes,
        missed_opportunity="true" in missed,
    )


def more_like_this(
    source: Any, passage_id: int, filters: Filters | None = None, limit: int = 10, offset: int = 0
) -> SearchPage:
    """Passages nearest in meaning to a stored passage (itself left out)."""
    filters = filters or Filters()
    page = SearchPage(f"like:{passage_id}", "semantic", filters, limit, offset, [])
    with reading(source) as session:
        hits = semantic.more_like_this(session, passage_id, filters, max(0, min(limit, MAX_LIMIT)), max(0, offset))
        page.results = results(session, hits, frozenset())
    return page


def facets(source: Any, query: str, filters: Filters | None = None, mode: str = "hybrid") -> dict[str, dict[str, int]]:
    """Facet counts over the passages the query finds: every keyword match (every passage meeting at least
    one of its words or phrases, after filters); in semantic mode the FACET_DEPTH nearest; hybrid, both."""
    check_mode(mode)
    filters = filters or Filters()
    parsed = parse(query)
    with reading(source) as session:
        found = [np.zeros(0, dtype=np.int64)]
        if mode != "semantic":
            found.append(keyword.matching_array(session, parsed, filters))
        if mode != "keyword":
            found.append(np.asarray([hit.passage_id for hit in semantic_facet_hits(session, parsed, query, filters)]))
        return count_facets(session, np.concatenate(found))


def semantic_facet_hits(session: Any, parsed: Query, query: str, filters: Filters) -> list[Hit]:
    try:
        return semantic_hits(session, parsed, query, filters, FACET_DEPTH, [])
    except semantic.EmbeddingsMissing:
        return []


def prepare(source: Any) -> None:
    """Load this process's search caches now (passage vectors, passage lengths, the filter catalog and its
    facet labels), so the first search after a start or a change does not pay for them; a server can call it
    in the background."""
    with reading(source) as session:
        found = catalog.catalog(session)
        for facet in FACET_LABELS:
            catalog.effective_masks(session, found, facet, None)
        if session.get_bind().dialect.name == "sqlite":
            bm25.lengths(session)
        semantic.vector_index(session)
