"""Themes page: one theme's definition, its prevalence by review type and year, the themes it occurs with,
its strongest passages, and the missed opportunities and recommendations that carry it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from vkpp_learning import analytics
from vkpp_learning.app_pages import common
from vkpp_learning.ui_safety import escape_markdown

FACETS = {"practice": "Practice themes", "vulnerability": "Vulnerabilities"}
PASSAGES_SHOWN = 5


@common.guarded
def render() -> None:
    st.title("Themes")
    common.show_flash()
    if common.repository_is_empty():
        st.info(common.EMPTY_REPOSITORY)
        return
    common.basket_chooser()
    facet, label = choose_theme()
    if label is None:
        st.info("The taxonomy has no themes to show: check VKPP_TAXONOMY_DIR.")
        return
    describe(facet, label)
    detail = common.figure("theme_detail", label, facet=facet, limit=PASSAGES_SHOWN)
    if detail.empty:
        st.info(
            "No passage carries this theme yet (no tag, and no analyst has added it). "
            "An absent tag is not evidence that the reviews do not discuss it."
        )
        return
    headline(detail)
    prevalence(detail)
    occurs_with(detail)
    evidence(detail)


def choose_theme() -> tuple[str, str | None]:
    """The facet and theme, from the URL (?facet=...&theme=...) or the pickers; the URL follows the pickers."""
    common.seed_from_url(
        "themes",
        {
            "facet": lambda values: values[-1] if values and values[-1] in FACETS else "practice",
            "theme": lambda values: values[-1] if values else None,
        },
    )
    left, right = st.columns([2, 3])
    facet = left.segmented_control(
        "Kind", list(FACETS), format_func=lambda kind: FACETS[kind], key="facet", required=True
    )
    facet = facet or "practice"
    options = list(common.names(facet))
    if st.session_state.get("theme") not in options:
        st.session_state["theme"] = options[0] if options else None
    label = right.selectbox("Theme", options, key="theme", format_func=common.name_of(facet))
    common.sync_url("themes", {"facet": facet, "theme": label or ""}, ("facet", "theme"))
    return facet, label


def describe(facet: str, label: str) -> None:
    theme = next((t for t in common.taxonomy_themes(facet) if t["id"] == label), None)
    if theme is None:
        return
    st.markdown(escape_markdown(theme["definition"]))
    if theme["phrases"]:
        with st.expander("Typical phrases and examples"):
            st.markdown("**Phrases:** " + escape_markdown(", ".join(theme["phrases"])))
            for example in theme["examples"]:
                st.markdown("- " + escape_markdown(example))


def headline(detail: analytics.ThemeDetail) -> None:
    passages, reviews, missed, recommendations = st.columns(4)
    passages.metric("Passages", detail.passages)
    reviews.metric("Reviews", detail.reviews)
    missed.metric("Missed opportunities", detail.missed_opportunities.total)
    recommendations.metric("Recommendations", detail.recommendations.total)
    common.link_to_passages(detail.filters, f"All {detail.passages} passages with this theme")


def prevalence(detail: analytics.ThemeDetail) -> None:
    by_type, by_year = st.columns(2)
    with by_type:
        st.subheader("By review type")
        frame = detail.by_type.assign(percent=detail.by_type["share"] * 100)
        st.bar_chart(frame, x="review_type", y="percent", height=220, x_label="", y_label="% of reviews")
        links = pd.DataFrame(
            {
                "review type": detail.by_type["review_type"],
                "reviews": [
                    type_link(detail, row.review_type, row.count, row.total) for row in detail.by_type.itertuples()
                ],
            }
        )
        link_column(links, "reviews", "by_type_links")
    with by_year:
        st.subheader("By publication year")
        if detail.by_year.empty:
            st.caption("No review has a known publication year.")
            return
        frame = detail.by_year.assign(percent=detail.by_year["share"] * 100, year=detail.by_year["year"].astype(str))
        st.line_chart(frame, x="year", y="percent", height=220, y_label="% of reviews")
        links = pd.DataFrame(
            {
                "year": detail.by_year["year"].astype(str),
                "reviews": [year_link(detail, row.year, row.count, row.total) for row in detail.by_year.itertuples()],
            }
        )
        link_column(links, "reviews", "by_year_links")


def type_link(detail: analytics.ThemeDetail, review_type: str, count: int, total: int) -> str:
    filters = analytics.figure_filters(review_type=review_type, base=detail.filters)
    return analytics.passages_link(filters, f"{count} of {total}")


def year_link(detail: analytics.ThemeDetail, year: int, count: int, total: int) -> str:
    return analytics.passages_link(analytics.figure_filters(year=year, base=detail.filters), f"{count} of {total}")


def link_column(frame: pd.DataFrame, column: str, key: str) -> None:
    config = {column: st.column_config.LinkColumn(column, display_text=analytics.LINK_DISPLAY)}
    st.dataframe(frame, hide_index=True, column_config=config, key=key)


def occurs_with(detail: analytics.ThemeDetail) -> None:
    st.subheader("Occurs with")
    if detail.co_occurring.empty:
        st.caption("No other theme shares a passage with this one.")
        return
    name = common.name_of(detail.facet)
    shared = detail.co_occurring.head(10)

    def link(row: Any) -> str:
        filters = analytics.figure_filters(label=row.label, facet=detail.facet, base=detail.filters)
        return analytics.passages_link(filters, str(row.passages))

    frame = pd.DataFrame(
        {
            "theme": shared["label"].map(name),
            "passages in common": [link(row) for row in shared.itertuples()],
            "reviews in common": shared["reviews"],
            "share of this theme's passages": (shared["share"] * 100).round(0).astype(int).astype(str) + "%",
        }
    )
    link_column(frame, "passages in common", "co_links")


def evidence(detail: analytics.ThemeDetail) -> None:
    strongest, missed, recommended = st.tabs(["Strongest passages", "Missed opportunities", "Recommendations"])
    actions = passage_actions(detail)
    with strongest:
        st.caption("Passages where the theme's tag scores highest; a theme an analyst added counts as certain.")
        common.show_page_of_passages(detail.strongest, "strong", "passages", actions)
    with missed:
        common.show_page_of_passages(detail.missed_opportunities, "missed", "missed opportunities", actions)
    with recommended:
        common.show_page_of_passages(detail.recommendations, "recommend", "recommendations", actions)


def passage_actions(detail: analytics.ThemeDetail) -> common.Actions:
    found_by = common.query_log("", None, detail.filters)

    def actions(row: Any, key: str) -> None:
        common.basket_button(row, key, found_by)

    return actions
