"""The figures behind the app's charts, on the sample reviews tagged by the real taggers: each number is
checked against the passages it links to, and analysts' decisions move the figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.conftest import sqlite_url
from tests.test_evidence import copy_sqlite, store_run
from vkpp_learning import analytics
from vkpp_learning.annotations import annotate
from vkpp_learning.db import Database, models, open_database
from vkpp_learning.roles import Role, User
from vkpp_learning.search.filters import Filters

ANALYST = User("ann@force.example", Role.ANALYST, "login")


# --- fixtures: every sample review tagged by every default tagger (shared with test_app and test_browser) ---


def tag_repository(db: Database) -> None:
    """Tag every stored passage with each default tagger, one current tag run per tagger."""
    from vkpp_learning.records import TagInput
    from vkpp_learning.tagging.base import create_tagger, run_info
    from vkpp_learning.tagging.detectors import DEFAULT_TAGGERS

    with db.writing() as session:
        rows = session.execute(
            select(models.Passage, models.Review.review_type).join(models.Review).order_by(models.Passage.id)
        ).all()
        items = [TagInput(p.text, review_type, p.section_kind, p.kind) for p, review_type in rows]
        for name in DEFAULT_TAGGERS:
            tagger = create_tagger(name)
            run = store_run(session, run_info(tagger))
            session.add_all(
                models.Tag(
                    passage_id=p.id, run_id=run.id, facet=r.facet, label=r.label, score=r.score, evidence=r.evidence
                )
                for (p, _type), results in zip(rows, tagger.tag(items), strict=True)
                for r in results
            )


@pytest.fixture(scope="session")
def tagged_samples(sample_db: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample database with every review tagged, built once per session; tests read it or copy it."""
    path = tmp_path_factory.getbasetemp() / "app" / "tagged_samples.sqlite"
    if not path.exists():
        building = copy_sqlite(sample_db, path.with_name("building.sqlite"))
        db = open_database(building)
        tag_repository(db)
        db.dispose()
        copy_sqlite(building, path)
    return sqlite_url(path)


@pytest.fixture(scope="module")
def samples(tagged_samples: str) -> Iterator[Database]:
    db = open_database(tagged_samples)
    yield db
    db.dispose()


@pytest.fixture
def private(tagged_samples: str, tmp_path: Path) -> Iterator[Database]:
    """A copy of the tagged samples for a test that writes."""
    db = open_database(copy_sqlite(tagged_samples, tmp_path / "private.sqlite"))
    yield db
    db.dispose()


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Database]:
    db = open_database(sqlite_url(tmp_path / "empty.sqlite"))
    yield db
    db.dispose()


def reviews_behind(db: Database, filters: Filters) -> tuple[int, int]:
    """(passages, distinct reviews) that `filters` select: what a figure's link opens."""
    with db.session() as session:
        page = analytics.passages_behind(session, filters, limit=100_000)
    return page.total, page.rows["review_id"].nunique() if page.total else 0


# --- the repository at a glance -------------------------------------------------------------------


def test_reviews_by_type_and_year_count_every_review(samples: Database) -> None:
    with samples.session() as session:
        table = analytics.reviews_by_type_and_year(session)
        stored = session.scalar(select(func.count()).select_from(models.Review))
        dhr_2023 = session.scalar(
            select(func.count()).where(models.Review.review_type == "DHR", models.Review.year == 2023)
        )
    assert int(table.to_numpy().sum()) == stored == 13
    assert set(table.columns) == {"CSPR", "DHR", "MAPPA", "SAR"}
    assert table.at["2023", "DHR"] == dhr_2023 == 1
    assert list(table.index) == sorted(table.index)


def test_totals_count_tagged_passages_and_current_runs(samples: Database) -> None:
    with samples.session() as session:
        totals = analytics.totals(session)
        tagged = session.scalar(select(func.count(func.distinct(models.Tag.passage_id))))
    assert totals["reviews"] == 13 and totals["passages"] > 900
    assert totals["tagged_passages"] == tagged > 0
    assert totals["current_runs"] == 5


# --- theme prevalence: every number opens onto its passages ---------------------------------------


@pytest.mark.parametrize("measure", analytics.MEASURES)
def test_every_cell_of_the_theme_matrix_is_what_its_link_opens(samples: Database, measure: str) -> None:
    with samples.session() as session:
        matrix = analytics.theme_matrix(session, "practice", measure)
        totals = analytics.type_totals(session).set_index("review_type")
    assert not matrix.empty and (matrix["count"] > 0).any()
    for cell in matrix[matrix["count"] > 0].itertuples():
        link = analytics.passages_link(analytics.figure_filters(review_type=cell.review_type, label=cell.label), "n")
        passages, reviews = reviews_behind(samples, analytics.filters_of_link(link))
        assert cell.count == (reviews if measure == "reviews" else passages), cell
        if cell.review_type != analytics.ALL_TYPES:
            assert cell.total == totals.at[cell.review_type, measure]
        assert cell.share == pytest.approx(cell.count / cell.total)


def test_theme_matrix_lists_absent_themes_as_zero(samples: Database) -> None:
    with samples.session() as session:
        matrix = analytics.theme_matrix(session, "practice", "reviews", labels=("a_theme_nobody_tagged",))
    absent = matrix[matrix["label"] == "a_theme_nobody_tagged"]
    assert len(absent) == 5  # four review types and all types together
    assert (absent["count"] == 0).all() and (absent["share"] == 0).all()


def test_all_types_counts_each_review_once(samples: Database) -> None:
    with samples.session() as session:
        matrix = analytics.theme_matrix(session, "practice", "reviews")
    for label, rows in matrix.groupby("label"):
        overall = int(rows[rows["review_type"] == analytics.ALL_TYPES]["count"].iloc[0])
        assert overall == int(rows[rows["review_type"] != analytics.ALL_TYPES]["count"].sum()), label


def test_theme_trends_count_reviews_per_publication_year(samples: Database) -> None:
    with samples.session() as session:
        top = analytics.top_labels(analytics.theme_matrix(session, "practice", "passages"), 3)
        trends = analytics.theme_trends(session, top, "practice", "passages")
    assert set(trends["label"]) == set(top) and len(top) == 3
    for point in trends[trends["count"] > 0].itertuples():
        passages, _ = reviews_behind(samples, analytics.figure_filters(year=point.year, label=point.label))
        assert passages == point.count
    assert trends["share"].between(0, 1).all()


def test_an_analysts_reject_and_add_move_the_figures(private: Database) -> None:
    with private.session() as session:
        before = analytics.theme_matrix(session, "practice", "passages").set_index(["label", "review_type"])
        tagged = session.execute(
            select(models.Tag.passage_id, models.Review.review_type)
            .join(models.Passage, models.Passage.id == models.Tag.passage_id)
            .join(models.Review)
            .where(models.Tag.facet == "practice", models.Tag.label == "risk_assessment")
            .limit(1)
        ).one()
        untagged = session.scalar(
            select(models.Passage.id)
            .join(models.Review)
            .where(
                models.Review.review_type == "SAR",
                models.Passage.kind == "paragraph",
                ~models.Passage.id.in_(select(models.Tag.passage_id).where(models.Tag.label == "think_family")),
            )
            .limit(1)
        )
    with private.writing() as session:
        annotate(session, ANALYST, tagged.passage_id, "practice", "risk_assessment", "reject")
        annotate(session, ANALYST, untagged, "practice", "think_family", "add", note="whole family")
    with private.session() as session:
        after = analytics.theme_matrix(session, "practice", "passages").set_index(["label", "review_type"])
    key = ("risk_assessment", tagged.review_type)
    assert after.at[key, "count"] == before.at[key, "count"] - 1
    assert after.at[("think_family", "SAR"), "count"] == before.at[("think_family", "SAR"), "count"] + 1
    # and the links agree with the moved figures
    passages, _ = reviews_behind(private, analytics.figure_filters(review_type="SAR", label="think_family"))
    assert passages == after.at[("think_family", "SAR"), "count"]


def test_a_label_two_current_runs_both_gave_counts_once(private: Database) -> None:
    with private.session() as session:
        before = analytics.theme_matrix(session, "practice", "passages")
        pairs = analytics.cooccurrence(session)
        first = session.scalar(select(models.Tag.passage_id).where(models.Tag.facet == "practice").limit(1))
    with private.writing() as session:
        run = models.TagRun(method="tagger.second.v1", taxonomy_version="1", params={}, thresholds={}, is_current=True)
        session.add(run)
        session.flush()
        copies = session.execute(select(models.Tag).where(models.Tag.facet == "practice")).scalars().all()
        session.add_all(
            models.Tag(passage_id=t.passage_id, run_id=run.id, facet=t.facet, label=t.label, score=t.score / 2)
            for t in copies
        )
    with private.session() as session:
        after = analytics.theme_matrix(session, "practice", "passages")
        labels = analytics.labels_by_passage(session, [first])[(first, "practice")]
        assert analytics.cooccurrence(session).equals(pairs)
    pd.testing.assert_frame_equal(before, after)
    assert len(labels) == len(set(labels)) > 0


# --- missed opportunities -------------------------------------------------------------------------


def test_missed_opportunity_counts_are_what_their_links_open(samples: Database) -> None:
    with samples.session() as session:
        counts = analytics.missed_opportunity_counts(session)
    assert not counts.empty and "police" in set(counts["agency"])
    merged = counts.groupby(["agency", "theme"], as_index=False)["passages"].sum()
    for row in merged.sort_values("passages", ascending=False).head(12).itertuples():
        filters = analytics.figure_filters(label=row.theme, agency=row.agency, missed_only=True)
        with samples.session() as session:
            page = analytics.passages_behind(session, filters, limit=1000)
        assert page.total == row.passages
        assert all(page.rows["missed_opportunity"])
        assert all(row.agency in agencies for agencies in page.rows["agencies"])


def test_missed_opportunities_filter_by_review_type_and_agency(samples: Database) -> None:
    with samples.session() as session:
        dhr = analytics.missed_opportunity_counts(session, Filters(review_types=("DHR",)))
        passages = analytics.missed_opportunity_passages(session, Filters(review_types=("DHR",), agencies=("police",)))
    assert set(dhr["review_type"]) == {"DHR"}
    assert len(passages) > 0 and set(passages["review_type"]) == {"DHR"}
    assert all("police" in agencies for agencies in passages["agencies"])
    assert all(passages["missed_opportunity"])


def test_top_missed_themes_keep_the_most_frequent_per_agency(samples: Database) -> None:
    with samples.session() as session:
        counts = analytics.missed_opportunity_counts(session)
    top = analytics.top_missed_themes(counts, per_agency=2)
    assert top.groupby("agency").size().max() <= 2
    police = top[top["agency"] == "police"]["passages"].tolist()
    assert police == sorted(police, reverse=True)
    best = counts[counts["agency"] == "police"].groupby("theme")["passages"].sum().max()
    assert police[0] == best
    pivot = analytics.missed_opportunity_pivot(counts)
    assert pivot.loc["police"].sum() == counts[counts["agency"] == "police"]["passages"].sum()


# --- co-occurrence and theme detail ---------------------------------------------------------------


def test_cooccurrence_is_symmetric_with_theme_totals_on_the_diagonal(samples: Database) -> None:
    with samples.session() as session:
        matrix = analytics.cooccurrence(session, "practice", "passages")
        with_risk = analytics.passages_with(session, "risk_assessment")
        shared = analytics.co_occurring(session, "risk_assessment").set_index("label")
    assert (matrix.to_numpy() == matrix.to_numpy().T).all()
    assert matrix.at["risk_assessment", "risk_assessment"] == with_risk
    for other, row in shared.iterrows():
        assert row["passages"] == matrix.at["risk_assessment", other]
        assert row["share"] == pytest.approx(row["passages"] / with_risk)
    assert "risk_assessment" not in shared.index


def test_theme_detail_shows_the_strongest_passages_missed_opportunities_and_recommendations(samples: Database) -> None:
    with samples.session() as session:
        detail = analytics.theme_detail(session, "information_sharing", limit=5)
        scores = dict(
            session.execute(
                select(models.Tag.passage_id, func.max(models.Tag.score))
                .where(models.Tag.facet == "practice", models.Tag.label == "information_sharing")
                .group_by(models.Tag.passage_id)
            ).all()
        )
    assert detail.passages == len(scores) and detail.reviews > 0
    strongest = detail.strongest.rows
    assert 0 < len(strongest) <= 5 and "heading" not in set(strongest["kind"])
    ranked = [scores[pid] for pid in strongest["passage_id"]]
    assert ranked == sorted(ranked, reverse=True) and ranked[0] == max(scores.values())
    assert all("information_sharing" in themes for themes in strongest["themes"])
    assert all(detail.missed_opportunities.rows["missed_opportunity"])
    assert set(detail.recommendations.rows["section_kind"]) <= {"recommendations"}
    assert detail.missed_opportunities.total >= len(detail.missed_opportunities.rows)
    assert set(detail.by_type["review_type"]) == {"CSPR", "DHR", "MAPPA", "SAR"}
    assert detail.by_year["share"].between(0, 1).all()


def test_theme_detail_of_a_theme_nobody_tagged_is_empty(samples: Database) -> None:
    with samples.session() as session:
        detail = analytics.theme_detail(session, "no_such_theme")
    assert detail.empty and detail.strongest.rows.empty and detail.co_occurring.empty


# --- passages, citations and the reader -----------------------------------------------------------


def test_passages_behind_cite_and_label_every_passage(samples: Database) -> None:
    filters = analytics.figure_filters(review_type="DHR", label="risk_assessment")
    with samples.session() as session:
        first = analytics.passages_behind(session, filters, limit=5)
        second = analytics.passages_behind(session, filters, limit=5, offset=5)
    assert first.total == second.total > 5
    assert not set(first.rows["passage_id"]) & set(second.rows["passage_id"])
    assert set(first.rows["review_type"]) == {"DHR"}
    assert all("risk_assessment" in themes for themes in first.rows["themes"])
    for row in first.rows.itertuples():
        assert row.citation.startswith(("DHR", "DARDR")) and f"p. {row.page_start}" in row.citation
        assert "nan" not in row.citation and "unknown" not in row.citation


def test_passages_by_id_keep_the_order_given_and_skip_missing_ones(samples: Database) -> None:
    with samples.session() as session:
        ids = session.scalars(select(models.Passage.id).order_by(models.Passage.id.desc()).limit(3)).all()
        rows = analytics.passages_by_id(session, [ids[2], 10**9, ids[0], ids[1]])
    assert rows["passage_id"].tolist() == [ids[2], ids[0], ids[1]]


def test_the_reader_reads_a_review_in_order_and_finds_a_passage(samples: Database) -> None:
    with samples.session() as session:
        review = session.scalar(select(models.Review).where(models.Review.filename == "dhr_louise_2023.pdf"))
        page = analytics.review_passages(session, review.id, limit=30, offset=10)
        target = int(page.rows["passage_id"].iloc[4])
        position = analytics.passage_position(session, target)
        summary = analytics.review_summary(session, review.id)
        sections = analytics.review_sections(session, review.id)
        recommendations = analytics.review_recommendations(session, review.id)
        missing = analytics.review_summary(session, 10**9)
    assert page.total == summary["passages"] and len(page.rows) == 30
    assert page.rows["ordinal"].is_monotonic_increasing
    assert position == (review.id, 14)
    assert summary["citation"] == 'DHR "Louise", Eastmoor CSP, 2023' and missing is None
    assert sections["passages"].sum() == summary["passages"]
    assert len(recommendations.rows) > 3 and set(recommendations.rows["section_kind"]) == {"recommendations"}
    assert any("police" in to for to in recommendations.rows["recommendation_to"])
    assert analytics.passage_position(session, 10**9) is None


def test_place_and_citation_leave_out_what_is_unknown() -> None:
    row = {
        "review_type": "SAR",
        "subtype": float("nan"),
        "title": "Safeguarding Adults Review: Margaret",
        "subject": "Margaret",
        "year": float("nan"),
        "area": "unknown",
        "commissioner": "Kingsmere Safeguarding Adults Board",
        "executive_summary": False,
        "kind": "paragraph",
        "section_kind": "analysis",
        "paragraph": float("nan"),
        "page_start": 7,
        "page_end": 8,
    }
    assert analytics.cite(row) == 'SAR "Margaret", Kingsmere SAB, pp. 7-8'
    assert analytics.place(row) == "pp. 7-8"
    assert analytics.place({**row, "paragraph": "5.3", "page_end": 7}) == "p. 7, para 5.3"
    assert analytics.place({**row, "kind": "table_row", "section_kind": "chronology"}) == "pp. 7-8, chronology row"


# --- links ----------------------------------------------------------------------------------------

years = st.one_of(st.none(), st.integers(1990, 2030))
labels = st.lists(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12), max_size=3, unique=True)


@given(
    types=st.lists(st.sampled_from(["CSPR", "SAR", "DHR", "MAPPA"]), max_size=3, unique=True),
    themes=labels,
    agencies=labels,
    section=st.one_of(st.none(), st.sampled_from(["analysis", "recommendations"])),
    year_from=years,
    year_to=years,
    missed=st.booleans(),
    police=st.booleans(),
    query=st.text(max_size=30),
)
def test_filters_survive_a_round_trip_through_a_link(
    types: list[str],
    themes: list[str],
    agencies: list[str],
    section: str | None,
    year_from: int | None,
    year_to: int | None,
    missed: bool,
    police: bool,
    query: str,
) -> None:
    filters = Filters(
        review_types=tuple(types),
        themes=tuple(themes),
        agencies=tuple(agencies),
        section=section,
        year_from=year_from,
        year_to=year_to,
        missed_only=missed,
        police_only=police,
    )
    assert analytics.filters_from_params(analytics.filters_to_params(filters, query)) == filters
    assert analytics.filters_of_link(analytics.passages_link(filters, "12 of 40")) == filters


def test_links_show_their_number_after_the_hash() -> None:
    import re

    link = analytics.passages_link(analytics.figure_filters(review_type="DHR", label="risk_assessment"), "75% (3 of 4)")
    assert link == "search?type=DHR&theme=risk_assessment#75% (3 of 4)"
    assert re.search(analytics.LINK_DISPLAY, link).group(1) == "75% (3 of 4)"
    assert analytics.filters_from_params({"from": "twenty", "to": "99999", "missed": "true"}) == Filters(
        missed_only=True
    )


def test_figure_filters_keep_the_scope_they_are_given() -> None:
    base = Filters(review_types=("DHR",), year_from=2021)
    cell = analytics.figure_filters(label="risk_assessment", agency="police", missed_only=True, base=base)
    assert cell == Filters(
        review_types=("DHR",), themes=("risk_assessment",), agencies=("police",), year_from=2021, missed_only=True
    )
    assert analytics.figure_filters(review_type=analytics.ALL_TYPES, year="unknown") == Filters()
    assert analytics.figure_filters(label="self_neglect", facet="vulnerability").vulnerabilities == ("self_neglect",)
    with pytest.raises(ValueError):
        analytics.figure_filters(label="true", facet="missed_opportunity")


def test_describe_filters_in_words() -> None:
    filters = Filters(
        review_types=("DHR",), themes=("risk_assessment",), year_from=2021, year_to=2023, missed_only=True
    )
    words = analytics.describe_filters(filters, {"risk_assessment": "Risk assessment"})
    assert words == "DHR; theme: Risk assessment; 2021-2023; missed opportunities only"
    assert analytics.describe_filters(Filters()) == "no filters"


def test_facet_names_are_checked_before_they_reach_sql() -> None:
    with pytest.raises(ValueError):
        analytics.effective_tags_sql(["practice'; DROP TABLE tags; --"])
    assert "'practice', 'agency'" in analytics.effective_tags_sql(["practice", "agency"])


# --- an empty repository --------------------------------------------------------------------------


def test_an_empty_repository_gives_empty_figures_not_errors(empty: Database) -> None:
    with empty.session() as session:
        assert analytics.reviews_by_type_and_year(session).empty
        assert analytics.totals(session)["reviews"] == 0
        assert analytics.theme_matrix(session, "practice", "reviews", labels=("risk_assessment",)).empty
        assert analytics.theme_trends(session, ["risk_assessment"]).empty
        assert analytics.missed_opportunity_counts(session).empty
        assert analytics.top_missed_themes(analytics.missed_opportunity_counts(session)).empty
        assert analytics.cooccurrence(session).empty
        assert analytics.theme_detail(session, "risk_assessment").empty
        assert analytics.passages_behind(session, Filters()).total == 0
        assert isinstance(analytics.review_list(session), pd.DataFrame) and analytics.review_list(session).empty
