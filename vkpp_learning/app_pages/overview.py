"""Overview page: what the repository holds by review type and year, practice themes by review type, their
trends over publication years, and the top missed-opportunity themes by agency; every number opens onto
the passages behind it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from vkpp_learning import analytics
from vkpp_learning.app_pages import common
from vkpp_learning.search.filters import Filters

THEME_FACET = "practice"
MEASURE_WORDS = {"reviews": "Share of reviews", "passages": "Share of passages"}
TREND_THEMES = 4
TOP_PER_AGENCY = 3


@common.guarded
def render() -> None:
    st.title("Review repository")
    totals = common.figure("totals")
    if not totals["reviews"]:
        st.info(common.EMPTY_REPOSITORY)
        return
    show_totals(totals)
    reviews_by_type_and_year()
    if not totals["tagged_passages"]:
        st.info(common.NO_TAGS)
        return
    st.caption(
        "Figures count the effective tags: the current taggers' tags with analysts' decisions applied. "
        "An absent tag is not evidence that a review does not discuss a theme."
    )
    matrix, measure = theme_heatmap()
    theme_trends(matrix, measure)
    missed_by_agency()


def show_totals(totals: dict[str, int]) -> None:
    reviews, passages, tagged, failed = st.columns(4)
    reviews.metric("Reviews", totals["reviews"], help=f"{totals['pages']} pages in all")
    passages.metric("Passages", f"{totals['passages']:,}")
    tagged.metric("Passages with a tag", f"{totals['tagged_passages']:,}", help="From the current tag runs")
    failed.metric("Files that failed", totals["failed_files"], help="The Ingest page and `vkpp reviews` show why")


# --- reviews by type and year ---------------------------------------------------------------------


def reviews_by_type_and_year() -> None:
    st.subheader("Reviews by type and year")
    table = common.figure("reviews_by_type_and_year")
    long = table.reset_index().melt(id_vars="year", var_name="review type", value_name="reviews")
    chart, numbers = st.columns([3, 2])
    with chart:
        st.bar_chart(long, x="year", y="reviews", color="review type", height=260)
    with numbers:
        st.caption("Each number opens the passages of those reviews.")
        common.linked_table(table, year_type_link, key="reviews_by_year", first_column="year")


def year_type_link(year: Any, review_type: Any, count: Any) -> str:
    filters = analytics.figure_filters(review_type=str(review_type), year=str(year))
    if str(year) == analytics.UNKNOWN_YEAR:
        filters = analytics.figure_filters(review_type=str(review_type))  # the link cannot say "no year"
    return analytics.passages_link(filters, str(int(count)))


# --- themes by review type ------------------------------------------------------------------------


def theme_heatmap() -> tuple[pd.DataFrame, str]:
    st.subheader("Practice themes by review type")
    measure = st.segmented_control(
        "Measure",
        list(MEASURE_WORDS),
        format_func=lambda m: MEASURE_WORDS[m],
        default="reviews",
        key="measure",
        required=True,
    )
    st.caption(
        "Share of reviews: of the reviews of each type, how many have at least one passage with the theme. "
        "Share of passages: of all their passages, how many carry it."
    )
    measure = measure or "reviews"
    labels = list(common.names(THEME_FACET))
    matrix = common.figure("theme_matrix", THEME_FACET, measure, tuple(labels))
    name = common.name_of(THEME_FACET)
    frame = matrix.assign(theme=matrix["label"].map(name), percent=(matrix["share"] * 100).round(0))
    chart = heatmap_chart(frame, measure)
    event = st.altair_chart(chart, on_select="rerun", key="heatmap", selection_mode="cell")
    selected_cell(event, matrix)
    shares = matrix.pivot_table(index="label", columns="review_type", values="share", sort=False)
    counts = matrix.pivot_table(index="label", columns="review_type", values="count", sort=False)
    totals = matrix.groupby("review_type")["total"].first()

    def link(label: Any, review_type: Any, share: Any) -> str:
        shown = f"{share:.0%} ({int(counts.at[label, review_type])} of {int(totals[review_type])})"
        return analytics.passages_link(analytics.figure_filters(review_type=review_type, label=label), shown)

    with st.expander("The numbers, each linked to its passages"):
        common.linked_table(shares, link, key="theme_table", first_column="theme", names={"rows": name})
    return matrix, measure


def heatmap_chart(frame: pd.DataFrame, measure: str) -> Any:
    import altair as alt

    cell = alt.selection_point(name="cell", fields=["label", "review_type"], on="click")
    base = alt.Chart(frame).encode(
        x=alt.X("review_type:N", title=None, sort=None, axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y("theme:N", title=None, sort=None, axis=alt.Axis(labelLimit=320)),
        tooltip=[
            alt.Tooltip("theme:N", title="theme"),
            alt.Tooltip("review_type:N", title="review type"),
            alt.Tooltip("count:Q", title=measure),
            alt.Tooltip("total:Q", title="of"),
            alt.Tooltip("share:Q", title="share", format=".0%"),
        ],
    )
    rects = base.mark_rect(stroke="white").encode(
        color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=alt.Legend(format=".0%")),
        opacity=alt.condition(cell, alt.value(1.0), alt.value(0.6)),
    )
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("share:Q", format=".0%"),
        color=alt.condition("datum.share > 0.6", alt.value("white"), alt.value("#1f2d3d")),
    )
    return (rects + text).add_params(cell).properties(height=alt.Step(24))


def selected_cell(event: Any, matrix: pd.DataFrame) -> None:
    """Under the heatmap: a link to the passages behind the cell the user clicked."""
    points = (getattr(event, "selection", None) or {}).get("cell") or []
    if not points:
        st.caption("Click a cell to open the passages behind it.")
        return
    point = points[0]
    label, review_type = point.get("label"), point.get("review_type")
    row = matrix[(matrix["label"] == label) & (matrix["review_type"] == review_type)]
    if row.empty:
        return
    name = common.name_of(THEME_FACET)(label)
    filters = analytics.figure_filters(review_type=review_type, label=label)
    common.link_to_passages(filters, f"Open the passages behind {name} in {review_type} ({int(row['count'].iloc[0])})")


# --- trends ---------------------------------------------------------------------------------------


def theme_trends(matrix: pd.DataFrame, measure: str) -> None:
    """The chosen themes' share of each year's reviews (or passages, as the heatmap is switched)."""
    st.subheader("Themes over publication years")
    name = common.name_of(THEME_FACET)
    options = list(dict.fromkeys(matrix["label"]))
    chosen = st.multiselect(
        "Themes", options, default=analytics.top_labels(matrix, TREND_THEMES), format_func=name, key="trend_themes"
    )
    if not chosen:
        st.caption("Choose one or more themes to see their trend.")
        return
    trends = common.figure("theme_trends", tuple(chosen), measure=measure)
    if trends.empty:
        st.info("No review has a known publication year, so there is no trend to show.")
        return
    frame = trends.assign(
        theme=trends["label"].map(name), percent=trends["share"] * 100, year=trends["year"].astype(str)
    )
    st.line_chart(frame, x="year", y="percent", color="theme", height=260, y_label=f"% of {measure}")
    st.caption(f"Share of the {measure} of each publication year that carry the theme; unknown years are left out.")
    shares = trends.pivot_table(index="year", columns="label", values="share", sort=False)
    counts = trends.pivot_table(index="year", columns="label", values="count", sort=False)
    year_totals = trends.groupby("year")["total"].first()

    def link(year: Any, label: Any, share: Any) -> str:
        shown = f"{share:.0%} ({int(counts.at[year, label])} of {int(year_totals[year])})"
        return analytics.passages_link(analytics.figure_filters(year=int(year), label=label), shown)

    with st.expander("The numbers, each linked to its passages"):
        common.linked_table(shares, link, key="trend_table", first_column="year", names={"columns": name})


# --- missed opportunities -------------------------------------------------------------------------


def missed_by_agency() -> None:
    st.subheader("Top missed-opportunity themes by agency")
    counts = common.figure("missed_opportunity_counts", Filters())
    top = analytics.top_missed_themes(counts, TOP_PER_AGENCY)
    if top.empty:
        st.info("No passage is tagged both as a missed opportunity and with an agency and a practice theme.")
        return
    agency, theme = common.name_of("agency"), common.name_of(THEME_FACET)
    table = pd.DataFrame(
        {
            "agency": top["agency"].map(agency),
            "theme": top["theme"].map(theme),
            "passages": [
                analytics.passages_link(missed_filters(row.agency, row.theme), str(row.passages))
                for row in top.itertuples()
            ],
            "reviews": top["reviews"],
        }
    )
    config = {"passages": st.column_config.LinkColumn("passages", display_text=analytics.LINK_DISPLAY)}
    st.dataframe(table, hide_index=True, column_config=config, key="missed_top")
    st.page_link(common.page("missed"), label="All missed opportunities", icon=":material/arrow_forward:")


def missed_filters(agency: str, theme: str) -> Filters:
    return analytics.figure_filters(label=theme, agency=agency, missed_only=True)
