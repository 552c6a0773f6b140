"""The pure parts of search, without a database: query parsing and rendering, filter SQL, highlights, fusion."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkpp_learning.search.filters import Filters, filter_condition
from vkpp_learning.search.highlight import highlight, query_stems
from vkpp_learning.search.hybrid import REVIEW_PROCESS_WEIGHT, fuse, section_prior
from vkpp_learning.search.keyword import Hit, postgres_statement, sqlite_statement
from vkpp_learning.search.query import (
    MAX_CLAUSES,
    Clause,
    fts5_any,
    fts5_relaxed,
    fts5_strict,
    parse,
    postgres_query,
)
from vkpp_learning.search.semantic import VectorIndex, approximate_top, reduce, top
from vkpp_learning.search.tokenize import stem, tokenize

HOSTILE = [
    "",
    "   ",
    '"',
    '""',
    '"unbalanced phrase',
    "OR",
    "NOT",
    "- -- ---",
    "AND OR NOT NEAR",
    "police) OR (MARAC",
    "NEAR(police MARAC, 2)",
    "col:police",
    "police*",
    "^police",
    "'; DROP TABLE passages; --",
    "1' OR '1'='1",
    "%_%",
    ":limit :offset",
    "\x00\x01",
    "police \u202e\ufeff",
    "a" * 10_000,
    " ".join(["risk"] * 5_000),
    '"' * 501,
]


def words_of(query_text: str) -> list[tuple[str, ...]]:
    return [clause.words for clause in parse(query_text).clauses]


def test_words_are_required_groups_and_stopwords_are_dropped() -> None:
    query = parse("missed opportunities around stalking in DHRs")
    assert words_of("missed opportunities around stalking in DHRs") == [
        ("missed",),
        ("opportunities",),
        ("stalking",),
        ("DHRs",),
    ]
    assert len(query.groups) == 4 and not query.excluded


def test_stopwords_stay_when_nothing_else_is_left_or_when_quoted() -> None:
    assert words_of("the of") == [("the",), ("of",)]
    assert words_of('"the" police') == [("the",), ("police",)]


def test_quoted_phrase_or_group_and_exclusions() -> None:
    query = parse('"child protection" OR MASH -police -"police officer" NOT custody')
    assert [[c.words for c in g.clauses] for g in query.groups] == [[("child", "protection"), ("MASH",)]]
    assert [c.words for c in query.excluded] == [("police",), ("police", "officer"), ("custody",)]


def test_punctuation_inside_a_word_makes_a_phrase_as_fts5_would() -> None:
    assert parse("child's").clauses == [Clause(("child", "s"), quoted=True)]
    assert words_of("s.47 co-operation") == [("s", "47"), ("co", "operation")]


def test_an_unbalanced_quote_closes_at_the_end() -> None:
    assert words_of('"missed opportunity') == [("missed", "opportunity")]


def test_fts5_strings_quote_every_term() -> None:
    query = parse('stalking "missed opportunity" OR marac -police')
    assert fts5_strict(query) == '("stalking" AND ("missed opportunity" OR "marac")) NOT ("police")'
    assert fts5_relaxed(query) == (
        '(("stalking" OR "missed opportunity" OR "marac") NOT ("stalking" AND ("missed opportunity" OR "marac"))) '
        'NOT ("police")'
    )
    assert fts5_any(query) == '(("stalking" OR "missed opportunity" OR "marac")) NOT ("police")'


def test_one_group_has_no_relaxed_tier() -> None:
    assert fts5_relaxed(parse("stalking")) is None


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_parses_into_quoted_terms_only(hostile: str) -> None:
    query = parse(hostile)
    assert len(query.clauses) <= MAX_CLAUSES
    if not query.empty:
        # Outside the double-quoted strings nothing remains but our own operators and parentheses.
        outside = re.sub(r'"(?:[^"]|"")*"', "", fts5_strict(query))
        assert re.fullmatch(r"[()\sANDORT]*", outside)


@given(st.text(max_size=300))
def test_any_text_parses_and_renders_without_error(value: str) -> None:
    query = parse(value)
    if not query.empty:
        assert fts5_strict(query).count('"') % 2 == 0
        rendered = postgres_query(query)
        # The SQL is our template alone: user words reach PostgreSQL only as bound parameters.
        assert re.fullmatch(r"[A-Za-z0-9_:.,()=+>* ]*", rendered.ctes)


def test_postgres_sql_binds_stemmed_terms_and_checks_phrases_by_position() -> None:
    rendered = postgres_query(parse('"missed opportunities" OR stalking -police'))
    assert rendered.params == {"c0_0": "miss", "c0_1": "opportun", "c1_0": "stalk", "x0_0": "polic"}
    assert "x.pos + 1 = ANY(c0p1.positions)" in rendered.ctes
    assert rendered.strict == "bool_or(clause IN (0, 1))"
    assert rendered.has_exclusions


def test_tokenizer_matches_fts5_porter() -> None:
    assert tokenize("Officers didn't refer the café's STALKING") == [
        "offic",
        "didn",
        "t",
        "refer",
        "the",
        "cafe",
        "s",
        "stalk",
    ]
    assert stem("stalked") == stem("stalking") == "stalk"


def test_filter_sql_binds_every_value() -> None:
    filters = Filters(
        review_types=("DHR", "x'); DROP TABLE reviews; --"),
        themes=("risk_assessment",),
        section="analysis",
        year_from=2020,
        year_to=2023,
        missed_only=True,
    )
    condition = filter_condition(filters)
    assert "DROP" not in condition.sql
    assert condition.params["f_type1"] == "x'); DROP TABLE reviews; --"
    assert condition.params["f_year_from"] == 2020 and condition.params["f_section"] == "analysis"
    assert sorted(v for k, v in condition.params.items() if k.endswith("_facet")) == [
        "missed_opportunity",
        "practice",
    ]


def test_filters_from_json_like_data() -> None:
    filters = Filters.from_dict({"type": "DHR", "theme": ["risk_assessment"], "year_from": 2021, "police_only": True})
    assert filters == Filters(review_types=("DHR",), themes=("risk_assessment",), year_from=2021, police_only=True)
    assert Filters.from_dict(None).empty and not filters.empty


def test_statements_put_filters_inside_the_ranking_query() -> None:
    filters = Filters(review_types=("DHR",))
    sqlite_sql, params = sqlite_statement('"stalking"', filters, 10, 0)
    assert sqlite_sql.index("r.review_type IN") < sqlite_sql.index("ORDER BY")
    assert params["match"] == '"stalking"'
    postgres_sql, params = postgres_statement(parse("stalking"), filters, 10, 20)
    assert postgres_sql.index("r.review_type IN") < postgres_sql.index("ORDER BY")
    assert params["offset"] == 20 and params["c0_0"] == "stalk"


def test_highlight_marks_matching_stems_and_escapes_everything_else() -> None:
    marked = highlight("Officers <b>stalked</b> & STALKING; no stalker", query_stems(["stalking"]))
    assert marked == ("Officers &lt;b&gt;<mark>stalked</mark>&lt;/b&gt; &amp; <mark>STALKING</mark>; no stalker")


def test_highlight_of_a_long_passage_is_a_snippet_around_the_matches() -> None:
    words = [f"word{i}" for i in range(200)]
    words[150] = "MARAC"
    marked = highlight(" ".join(words), query_stems(["marac"]))
    assert marked.startswith("… ") and marked.endswith(" …")
    assert "<mark>MARAC</mark>" in marked
    assert len(marked.split()) <= 64


def test_highlight_without_matches_escapes_the_start() -> None:
    assert highlight("a <i>b</i>", frozenset()) == "a &lt;i&gt;b&lt;/i&gt;"


def test_reciprocal_rank_fusion() -> None:
    keyword = [Hit(1, 9.0), Hit(2, 8.0), Hit(3, 7.0)]
    semantic = [Hit(3, 0.9), Hit(4, 0.8), Hit(1, 0.7)]
    fused = fuse([keyword, semantic])
    assert [hit.passage_id for hit in fused] == [1, 3, 2, 4]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)
    sections = {1: "introduction", 2: "analysis", 3: "recommendations", 4: "methodology"}
    weighted = fuse([keyword, semantic], prior=section_prior(sections.get))
    # The introduction found first by both falls below the recommendation found by both.
    assert [hit.passage_id for hit in weighted] == [3, 1, 2, 4]
    assert weighted[1].score == pytest.approx((1 / 61 + 1 / 63) * REVIEW_PROCESS_WEIGHT)


def unit_rows(count: int, dim: int = 384, seed: int = 1) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    # Clustered like real passages: a few shared directions plus noise.
    rows[:, :8] += 4 * np.random.default_rng(seed + 1).normal(size=(count, 8)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_projected_candidates_rescored_exactly_find_the_exact_top_ten() -> None:
    matrix = unit_rows(20_000)
    ids = np.arange(1, len(matrix) + 1, dtype=np.int64)
    index = VectorIndex(0, ids, matrix, len(ids))
    index.projection, index.reduced = reduce(matrix)
    found = 0
    for query in matrix[:20] + 0.05:
        query = query / np.linalg.norm(query)
        exact = {hit.passage_id for hit in top(index, matrix @ query, None, 10)}
        found += len(exact & {hit.passage_id for hit in approximate_top(index, query, None, 10)})
    assert found / 200 >= 0.9


def test_masked_rows_never_come_back_and_a_small_allowed_set_is_scored_exactly() -> None:
    matrix = unit_rows(5_000)
    ids = np.arange(1, len(matrix) + 1, dtype=np.int64)
    index = VectorIndex(0, ids, matrix, len(ids))
    index.projection, index.reduced = reduce(matrix)
    rows = np.flatnonzero(ids % 7 == 0)
    hits = approximate_top(index, matrix[0], rows, 50)
    assert len(hits) == 50 and all(hit.passage_id % 7 == 0 for hit in hits)
    assert [h.passage_id for h in hits] == [h.passage_id for h in top(index, matrix[rows] @ matrix[0], rows, 50)]
