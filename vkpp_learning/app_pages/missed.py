"""Missed opportunities page: counts by agency and theme across review types, filterable, and the passages
themselves, each opening in its review."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from vkpp_learning import analytics
from vkpp_learning.app_pages import common
from vkpp_learning.records import REVIEW_TYPES
from vkpp_learning.search.filters import Filters
from vkpp_learning.ui_safety import preview

URL_KEYS = ("type", "agency", "theme", "from", "to")
PASSAGE_LIMIT = 500
SNIPPET_CHARS = 300


@common.guarded
def render() -> None:
    st.title("Missed opportunities")
    common.show_flash()
    if common.repository_is_empty():
        st.info(common.EMPTY_REPOSITORY)
        return
    st.caption(
        "Points where an agency had information or contact that should have led to a different action and did "
        "not, as the missed-opportunity detector and analysts found them; good practice and hindsight are not counted."
    )
    common.basket_chooser()
    filters = filter_form()
    counts = common.figure("missed_opportunity_counts", filters)
    passages = common.figure("missed_opportunity_passages", filters, limit=PASSAGE_LIMIT)
    if passages.empty:
        described = analytics.describe_filters(filters, common.all_names())
        st.info(f"No missed opportunity is tagged for these filters ({described}). Try removing a filter.")
        return
    by_agency_and_theme(counts, filters)
    passage_table(passages, filters)


def filter_form() -> Filters:
    options = {
        "type": list(dict.fromkeys([*REVIEW_TYPES, *common.figure("type_totals")["review_type"]])),
        "agency": list(common.names("agency")),
        "theme": list(common.names("practice")),
    }
    common.seed_from_url(
        "missed",
        {
            **{key: within(values) for key, values in options.items()},
            "from": lambda values: analytics.as_year(values[-1] if values else None),
            "to": lambda values: analytics.as_year(values[-1] if values else None),
        },
    )
    columns = st.columns([2, 2, 3, 1, 1])
    columns[0].multiselect("Review type", options["type"], key="type")
    columns[1].multiselect("Agency", options["agency"], key="agency", format_func=common.name_of("agency"))
    columns[2].multiselect("Practice theme", options["theme"], key="theme", format_func=common.name_of("practice"))
    columns[3].number_input("From year", min_value=1900, max_value=2200, step=1, value=None, key="from")
    columns[4].number_input("To year", min_value=1900, max_value=2200, step=1, value=None, key="to")
    state = st.session_state
    filters = Filters(
        review_types=tuple(state.get("type") or ()),
        agencies=tuple(state.get("agency") or ()),
        themes=tuple(state.get("theme") or ()),
        year_from=int(state["from"]) if state.get("from") is not None else None,
        year_to=int(state["to"]) if state.get("to") is not None else None,
    )
    common.sync_url("missed", analytics.filters_to_params(filters), URL_KEYS)
    return filters


def within(options: list[str]) -> Any:
    return lambda values: [value for value in dict.fromkeys(values) if value in options]


def by_agency_and_theme(counts: pd.DataFrame, filters: Filters) -> None:
    st.subheader("By agency and theme")
    if counts.empty:
        st.caption("None of these passages carries both an agency and a practice theme.")
        return
    agency, theme = common.name_of("agency"), common.name_of("practice")
    split = st.segmented_control(
        "Columns", ["theme", "review_type"], format_func=column_name, default="theme", key="split", required=True
    )
    split = split or "theme"
    table = analytics.missed_opportunity_pivot(counts, "agency", split)

    def link(agency_id: Any, column: Any, passages: Any) -> str:
        if split == "theme":
            cell = analytics.figure_filters(label=column, agency=agency_id, missed_only=True, base=filters)
        else:
            cell = analytics.figure_filters(review_type=column, agency=agency_id, missed_only=True, base=filters)
        return analytics.passages_link(cell, str(int(passages)))

    columns = {"rows": agency, "columns": theme if split == "theme" else str}
    common.linked_table(table, link, key=f"missed_{split}", first_column="agency", names=columns)
    st.caption(
        "Each number counts passages (a passage naming two agencies or themes counts in each) and opens them. "
        "Passages with no agency or theme tagged are in the list below but not in this table."
    )


def column_name(column: str) -> str:
    return {"theme": "by theme", "review_type": "by review type"}[column]


def passage_table(passages: pd.DataFrame, filters: Filters) -> None:
    st.subheader(f"The passages ({len(passages)})")
    if len(passages) >= PASSAGE_LIMIT:
        st.caption(f"The first {PASSAGE_LIMIT}; narrow the filters to see the rest.")
    agency, theme = common.name_of("agency"), common.name_of("practice")
    table = pd.DataFrame(
        {
            "citation": passages["citation"],
            "open": [reader_link(row) for row in passages.itertuples()],
            "agencies": passages["agencies"].map(lambda labels: ", ".join(map(agency, labels))),
            "themes": passages["themes"].map(lambda labels: ", ".join(map(theme, labels))),
            "passage": passages["text"].map(lambda text: preview(str(text), SNIPPET_CHARS)[0]),
        }
    )
    config = {
        "open": st.column_config.LinkColumn("open", display_text="open in review", width="small"),
        "passage": st.column_config.TextColumn("passage", width="large"),
    }
    event = st.dataframe(
        table,
        hide_index=True,
        column_config=config,
        on_select="rerun",
        selection_mode="single-row",
        key="missed_passages",
    )
    chosen = selected_row(event)
    if chosen is None:
        st.caption("Select a row to read the passage here.")
        return
    row = passages.iloc[chosen].to_dict()
    found_by = common.query_log("", None, analytics.figure_filters(missed_only=True, base=filters))
    common.show_passage(row, "chosen", actions=lambda r, key: common.basket_button(r, key, found_by))


def reader_link(row: Any) -> str:
    return f"reader?review={int(row.review_id)}&passage={int(row.passage_id)}"


def selected_row(event: Any) -> int | None:
    rows = list(getattr(getattr(event, "selection", None), "rows", None) or [])
    return int(rows[0]) if rows else None
