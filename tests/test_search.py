"""Search on the ingested sample reviews: syntax, hostile input, filters, pagination, highlights, facets,
semantic and hybrid modes with the real model, more like this, and the `vkpp search` command."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tests.test_search_query import HOSTILE
from vkpp_learning.cli import main as cli
from vkpp_learning.db import Database, open_database
from vkpp_learning.search import bm25, facade
from vkpp_learning.search.filters import Filters
from vkpp_learning.search.keyword import sqlite_statement
from vkpp_learning.search.query import Query, fts5_relaxed, fts5_strict, parse
from vkpp_learning.search.semantic import EmbeddingsMissing
from vkpp_learning.search.tokenize import tokenize

RESULT_KEYS = {
    "passage_id",
    "review_id",
    "review_title",
    "review_type",
    "year",
    "page_start",
    "page_end",
    "paragraph",
    "section",
    "score",
    "text",
    "highlighted",
    "themes",
    "missed_opportunity",
}


@pytest.fixture(scope="module")
def samples(sample_db: str) -> Iterator[Database]:
    db = open_database(sample_db)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def embedded_db(sample_db: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A copy of the sample database with every passage embedded by `vkpp embed` (the real model)."""
    target = tmp_path_factory.mktemp("embedded") / "embedded.sqlite"
    source = sqlite3.connect(sample_db.removeprefix("sqlite:///"))
    with sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    url = f"sqlite:///{target}"
    result = CliRunner().invoke(cli, ["embed", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["embedded"] > 500
    return url


@pytest.fixture(scope="module")
def embedded(embedded_db: str) -> Iterator[Database]:
    db = open_database(embedded_db)
    yield db
    db.dispose()


def keyword(db: Database, query: str, filters: Filters | None = None, limit: int = 20, offset: int = 0) -> list:
    return facade.search(db, query, filters, "keyword", limit, offset).results


def stems(value: str) -> set[str]:
    return set(tokenize(value))


def test_words_match_by_stem(samples: Database) -> None:
    results = keyword(samples, "stalked")
    assert results
    assert all("stalk" in stems(r.text) for r in results)
    assert any(re.search(r"\bstalking\b", r.text, re.I) for r in results)


def test_passages_with_every_word_rank_before_those_with_some(samples: Database) -> None:
    results = keyword(samples, "tracking device car", limit=50)
    has_all = [{"track", "devic", "car"} <= stems(r.text) for r in results]
    assert has_all[0] and not has_all[-1]
    assert has_all == sorted(has_all, reverse=True)


def test_quoted_phrase_matches_the_words_in_order(samples: Database) -> None:
    results = keyword(samples, '"disclosure desk"')
    assert results
    assert all(re.search(r"disclosure\s+desk", r.text, re.I) for r in results)


def test_or_matches_either_word(samples: Database) -> None:
    results = keyword(samples, "hoarding OR squalor", limit=50)
    texts = [r.text.lower() for r in results]
    assert any("hoard" in t for t in texts) and any("squalor" in t for t in texts)
    assert all("hoard" in t or "squalor" in t for t in texts)


def test_a_leading_minus_excludes(samples: Database) -> None:
    with_police = keyword(samples, "MARAC", limit=200)
    without = keyword(samples, "MARAC -police", limit=200)
    assert without and len(without) < len(with_police)
    assert all("polic" not in stems(r.text) for r in without)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_input_never_raises(samples: Database, hostile: str) -> None:
    page = facade.search(samples, hostile, mode="keyword", limit=5)
    assert isinstance(page.results, list)
    assert facade.facets(samples, hostile, mode="keyword")["missed_opportunity"]["true"] >= 0


def test_review_type_year_and_section_filters_apply_before_ranking(samples: Database) -> None:
    filters = Filters(review_types=("DHR",), year_from=2022, section="analysis")
    results = keyword(samples, "police", filters, limit=50)
    assert len(results) >= 10
    assert {r.review_type for r in results} == {"DHR"} and min(r.year for r in results) >= 2022
    unfiltered = keyword(samples, "police", limit=10)
    assert {r.review_type for r in unfiltered} != {"DHR"}  # so the filter was not applied to a truncated list


def test_pages_follow_on(samples: Database) -> None:
    whole = [r.passage_id for r in keyword(samples, "risk assessment", limit=30)]
    pages = [
        r.passage_id for offset in (0, 10, 20) for r in keyword(samples, "risk assessment", limit=10, offset=offset)
    ]
    assert len(whole) == 30 and pages == whole


def test_results_carry_citations_and_highlights(samples: Database) -> None:
    result = keyword(samples, "MARAC", limit=1)[0]
    assert result.review_title and result.review_type in {"CSPR", "SAR", "DHR", "MAPPA"}
    assert 1 <= result.page_start <= result.page_end
    assert re.search(r"<mark>MARAC</mark>", result.highlighted, re.I)
    assert re.sub(r"</?mark>", "", result.highlighted).count("<") == 0
    assert result.themes == [] and result.missed_opportunity is False  # the samples are not tagged here


def test_facets_count_the_current_query(samples: Database) -> None:
    counts = facade.facets(samples, "stalking", mode="keyword")
    total = len(keyword(samples, "stalking", limit=1000))
    assert sum(counts["review_type"].values()) == total == sum(counts["missed_opportunity"].values())
    assert "DHR" in counts["review_type"]
    narrowed = facade.facets(samples, "stalking", Filters(review_types=("DHR",)), mode="keyword")
    assert list(narrowed["review_type"]) == ["DHR"]


def test_an_unknown_mode_is_refused(samples: Database) -> None:
    from vkpp_learning.errors import VkppError

    with pytest.raises(VkppError, match="unknown search mode"):
        facade.search(samples, "police", mode="fuzzy")


def test_semantic_search_without_embeddings_says_to_run_vkpp_embed(samples: Database) -> None:
    with pytest.raises(EmbeddingsMissing, match="vkpp embed"):
        facade.search(samples, "police", mode="semantic")
    page = facade.search(samples, "police", mode="hybrid")
    assert page.results and "vkpp embed" in page.notes[0]


@pytest.mark.slow
def test_semantic_search_finds_meaning_without_the_words(embedded: Database) -> None:
    results = facade.search(embedded, "nobody talked to the little girl on her own", mode="semantic", limit=10).results
    assert any("Child T" in r.text or "child" in r.text.lower() for r in results[:5])


@pytest.mark.slow
def test_semantic_filters_are_applied_before_ranking(embedded: Database) -> None:
    results = facade.search(embedded, "stalking", Filters(review_types=("SAR",)), "semantic", limit=25).results
    assert len(results) == 25 and {r.review_type for r in results} == {"SAR"}


@pytest.mark.slow
def test_hybrid_fuses_both_rankings_and_honours_exclusions(embedded: Database) -> None:
    hybrid = facade.search(embedded, "stalking -police", mode="hybrid", limit=30).results
    assert hybrid and all("polic" not in stems(r.text) for r in hybrid)
    keyword_ids = {r.passage_id for r in facade.search(embedded, "stalking -police", mode="keyword", limit=30).results}
    assert {r.passage_id for r in hybrid} - keyword_ids  # meaning brought in passages the words did not


@pytest.mark.slow
def test_more_like_this_leaves_the_passage_out(embedded: Database) -> None:
    source = keyword(embedded, '"disclosure desk"', limit=1)[0]
    similar = facade.more_like_this(embedded, source.passage_id, limit=5).results
    assert len(similar) == 5 and source.passage_id not in {r.passage_id for r in similar}
    assert source.review_id in {r.review_id for r in similar}


@pytest.mark.slow
def test_search_command_prints_the_json_results(embedded_db: str) -> None:
    arguments = ["search", "MARAC referral not made", "--db", embedded_db, "--type", "DHR", "--limit", "3", "--json"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 3 and set(rows[0]) == RESULT_KEYS
    assert {row["review_type"] for row in rows} == {"DHR"}


def test_search_command_prints_cited_lines(sample_db: str) -> None:
    result = CliRunner().invoke(cli, ["search", '"disclosure desk"', "--db", sample_db, "--mode", "keyword"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^1\. DHR 2023, .*Louise.*, pp?\. \d+", result.output, re.M)


def test_index_command_reports_the_index_in_step(sample_db: str) -> None:
    result = CliRunner().invoke(cli, ["index", "--db", sample_db])
    assert result.exit_code == 0 and "passages indexed" in result.output


def test_the_sample_index_holds_every_passage(samples: Database) -> None:
    with samples.session() as session:
        passages = session.execute(text("SELECT count(*) FROM passages")).scalar_one()
        indexed = session.execute(text("SELECT count(*) FROM passages_fts_docsize")).scalar_one()
    assert passages == indexed > 800


# SQLite keyword ranking against FTS5's own bm25() ---------------------------------------------

REFERENCE_QUERIES = [
    "stalking",
    "police",
    "MARAC referral not made",
    "risk assessment -police",
    "hoarding OR squalor",
    '"child protection" conference',
    "victim's fear not taken seriously",
    "missed opportunity stalking",
]


def fts5_reference(session: Any, parsed: Query, count: int) -> list[tuple[int, float]]:
    """Strict then relaxed matches ranked by `ORDER BY bm25()`, the statement the search used to run."""
    sql, params = sqlite_statement(fts5_strict(parsed), Filters(), count, 0)
    rows = session.execute(text(sql), params).all()
    relaxed = fts5_relaxed(parsed)
    if relaxed and len(rows) < count:
        sql, params = sqlite_statement(relaxed, Filters(), count - len(rows), 0)
        rows += session.execute(text(sql), params).all()
    return [(int(row[0]), float(row[1])) for row in rows]


@pytest.mark.parametrize("query", REFERENCE_QUERIES)
def test_sqlite_keyword_ranking_is_fts5_bm25_on_both_paths(samples: Database, query: str) -> None:
    parsed = parse(query)
    with samples.session() as session:
        reference = fts5_reference(session, parsed, 40)
        postings = bm25.ranked(bm25.matches(session, parsed, Filters()), 40)  # numpy over the postings
        chosen = bm25.search(session, parsed, Filters(), 40)  # FTS5's bm25() when few strict matches suffice
    assert reference
    for ids, scores in (postings, chosen):
        assert ids.tolist() == [passage_id for passage_id, _ in reference]
        assert scores.tolist() == pytest.approx([score for _, score in reference], rel=1e-9)
