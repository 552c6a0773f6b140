"""Search page: hybrid, keyword or semantic search with filters and facet counts, highlighted and cited
results, "more like this", and "add to basket". With filters but no words it lists the passages the filters
select, which is where every number on the other pages leads."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from vkpp_learning import analytics
from vkpp_learning.app_pages import common
from vkpp_learning.records import REVIEW_TYPES, SECTION_KINDS
from vkpp_learning.search.filters import Filters

PAGE_SIZE = 10
MODES = ("hybrid", "keyword", "semantic")
MODE_HELP = (
    "Hybrid combines keyword (BM25) and meaning (embeddings) rankings; keyword finds the words you type "
    '(use "quotes" for phrases, -word to exclude); semantic finds passages close in meaning.'
)
EXAMPLES = (
    "missed opportunity stalking",
    '"Mental Capacity Act" police',
    "MARAC referral not made",
    "professional curiosity coercive control",
)
URL_KEYS = ("q", "mode", "type", "theme", "vuln", "agency", "section", "from", "to", "missed", "police")
FACET_FILTERS = {"review_type": "type", "theme": "theme", "agency": "agency"}


@common.guarded
def render() -> None:
    st.title("Search")
    common.show_flash()
    if common.repository_is_empty():
        st.info(common.EMPTY_REPOSITORY)
        return
    common.basket_chooser()
    options = filter_options()
    common.seed_from_url("search", url_converters(options))
    query, mode, filters = search_form(options)
    common.sync_url("search", params_of(query, mode, filters), URL_KEYS)
    like = liked(query, mode, filters)
    if like is not None:
        similar(like, (query, mode, filters))
    elif query.strip():
        keyword_or_hybrid(query, mode, filters)
    elif not filters.empty:
        browse(filters, mode)
    else:
        st.info("Type what you are looking for, or choose filters to list the passages they select.")
        st.caption("For example: " + " · ".join(f"`{example}`" for example in EXAMPLES))


def liked(query: str, mode: str, filters: Filters) -> int | None:
    """The passage "More like this" was pressed on, while the search it was pressed in stays the same."""
    like = st.session_state.get("like")
    if like and like[1] == (query, mode, filters):
        return int(like[0])
    st.session_state.pop("like", None)
    return None


# --- the form -------------------------------------------------------------------------------------


def filter_options() -> dict[str, list[str]]:
    """The values each filter offers: the taxonomy's themes, and review types and years stored."""
    present = list(common.figure("type_totals")["review_type"])
    return {
        "type": list(dict.fromkeys([*REVIEW_TYPES, *present])),
        "theme": list(common.names("practice")),
        "vuln": list(common.names("vulnerability")),
        "agency": list(common.names("agency")),
        "section": list(SECTION_KINDS),
    }


def url_converters(options: Mapping[str, list[str]]) -> dict[str, Any]:
    """How each URL parameter sets its widget; values the widget does not offer are dropped."""

    def within(name: str) -> Any:
        return lambda values: [value for value in dict.fromkeys(values) if value in options[name]]

    def last(values: list[str]) -> str | None:
        return values[-1] if values else None

    return {
        "q": lambda values: last(values) or "",
        "mode": lambda values: last(values) if last(values) in MODES else MODES[0],
        "type": within("type"),
        "theme": within("theme"),
        "vuln": within("vuln"),
        "agency": within("agency"),
        "section": lambda values: last(values) if last(values) in options["section"] else None,
        "from": lambda values: analytics.as_year(last(values)),
        "to": lambda values: analytics.as_year(last(values)),
        "missed": lambda values: analytics.is_true(last(values)),
        "police": lambda values: analytics.is_true(last(values)),
    }


def search_form(options: Mapping[str, list[str]]) -> tuple[str, str, Filters]:
    words, how = st.columns([4, 2], vertical_alignment="bottom")
    query = words.text_input("Search passages", key="q", placeholder="e.g. missed opportunity stalking")
    mode = how.segmented_control("Mode", MODES, key="mode", help=MODE_HELP, required=True) or MODES[0]
    with st.expander("Filters", expanded=bool(st.session_state.get("type") or st.session_state.get("theme"))):
        first, second, third = st.columns(3)
        first.multiselect("Review type", options["type"], key="type")
        first.selectbox("Section", options["section"], key="section", format_func=section_name, index=None)
        second.multiselect("Practice theme", options["theme"], key="theme", format_func=common.name_of("practice"))
        second.multiselect("Vulnerability", options["vuln"], key="vuln", format_func=common.name_of("vulnerability"))
        third.multiselect("Agency", options["agency"], key="agency", format_func=common.name_of("agency"))
        years = third.columns(2)
        years[0].number_input("From year", min_value=1900, max_value=2200, step=1, value=None, key="from")
        years[1].number_input("To year", min_value=1900, max_value=2200, step=1, value=None, key="to")
        flags = st.columns(2)
        flags[0].checkbox("Missed opportunities only", key="missed")
        flags[1].checkbox("Police-relevant only", key="police")
    return query, mode, filters_of_state()


def section_name(kind: str) -> str:
    return kind.replace("_", " ")


def filters_of_state() -> Filters:
    state = st.session_state
    return Filters(
        review_types=tuple(state.get("type") or ()),
        themes=tuple(state.get("theme") or ()),
        vulnerabilities=tuple(state.get("vuln") or ()),
        agencies=tuple(state.get("agency") or ()),
        section=state.get("section") or None,
        year_from=int(state["from"]) if state.get("from") is not None else None,
        year_to=int(state["to"]) if state.get("to") is not None else None,
        missed_only=bool(state.get("missed")),
        police_only=bool(state.get("police")),
    )


def params_of(query: str, mode: str, filters: Filters) -> dict[str, str | list[str]]:
    return analytics.filters_to_params(filters, query, None if mode == MODES[0] else mode)


# --- paging ---------------------------------------------------------------------------------------


def page_offset(signature: Any) -> int:
    """The offset of the page of results shown; back to the first page whenever the search changes."""
    if st.session_state.get("search_signature") != signature:
        st.session_state["search_signature"] = signature
        st.session_state["search_offset"] = 0
    return int(st.session_state.get("search_offset", 0))


def pager(offset: int, shown: int, more: bool) -> None:
    if not (offset or more):
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button("Previous", key="previous", disabled=offset == 0, on_click=move, args=(-PAGE_SIZE,))
        st.caption(f"Results {offset + 1}-{offset + shown}")
        st.button("Next", key="next", disabled=not more, on_click=move, args=(PAGE_SIZE,))


def move(step: int) -> None:
    st.session_state["search_offset"] = max(0, int(st.session_state.get("search_offset", 0)) + step)


# --- results --------------------------------------------------------------------------------------


def keyword_or_hybrid(query: str, mode: str, filters: Filters) -> None:
    offset = page_offset((query, mode, filters))
    started = time.perf_counter()
    with st.spinner("Searching… (the first search by meaning loads the language model)"):
        found = searched("search", query, filters, mode=mode, limit=PAGE_SIZE + 1, offset=offset)
    seconds = time.perf_counter() - started
    for note in found.notes:
        st.caption(f":material/info: {note}")
    results, more = found.results[:PAGE_SIZE], len(found.results) > PAGE_SIZE
    main, side = st.columns([3, 1])
    with side:
        facet_counts(searched("facets", query, filters, mode=mode))
    with main:
        if not results:
            no_results(filters)
            return
        st.caption(f"{mode} search · {seconds * 1000:.0f} ms")
        rows = cited(results)
        found_by = common.query_log(query, mode, filters)
        common.show_passages(rows, "result", actions=result_actions(found_by, (query, mode, filters)))
        pager(offset, len(rows), more)


def searched(name: str, *args: Any, **kwargs: Any) -> Any:
    """A call to the search facade, cached a minute like the figures: pressing a button on a result (which
    runs the page again) does not search again."""
    return common.figure(name, *args, module="vkpp_learning.search.facade", **kwargs)


def cited(results: list[Any]) -> list[dict[str, Any]]:
    """Search results as passage rows with their full citations, labels and highlighted snippet."""
    with common.db().session() as session:
        rows = analytics.passages_by_id(session, [result.passage_id for result in results])
    by_id = {int(row["passage_id"]): row for row in rows.to_dict("records")}
    return [
        {**by_id[result.passage_id], "highlighted": result.highlighted, "score": result.score}
        for result in results
        if result.passage_id in by_id
    ]


def result_actions(found_by: dict[str, Any], context: tuple[str, str, Filters]) -> common.Actions:
    """The buttons on a result: "More like this" (within the same search) and "Add to basket"."""

    def actions(row: Mapping[str, Any], key: str) -> None:
        st.button(
            "More like this",
            key=f"like_{key}",
            icon=":material/travel_explore:",
            on_click=st.session_state.__setitem__,
            args=("like", (int(row["passage_id"]), context)),
        )
        common.basket_button(row, key, found_by)

    return actions


def no_results(filters: Filters) -> None:
    if filters.empty:
        st.info("No passage matches these words. Try fewer or different words, or semantic mode.")
    else:
        st.info(
            "No passage matches these words with these filters ("
            + analytics.describe_filters(filters, common.all_names())
            + "). Try removing a filter."
        )


def facet_counts(counts: Mapping[str, Mapping[str, int]]) -> None:
    """How the best results split by review type, year, theme and agency; a click narrows the search."""
    st.markdown("**Narrow by**")
    if not any(counts.values()):
        st.caption("No results to count.")
        return
    names: dict[str, Callable[[str], str]] = {
        "review_type": str,
        "theme": common.name_of("practice"),
        "agency": common.name_of("agency"),
    }
    for facet, key in FACET_FILTERS.items():
        values = list((counts.get(facet) or {}).items())[:8]
        if not values:
            continue
        st.caption(facet.replace("_", " "))
        for value, count in values:
            st.button(
                f"{names[facet](value)} ({count})",
                key=f"facet_{facet}_{value}",
                type="tertiary",
                on_click=narrow,
                args=(key, value),
                disabled=value in (st.session_state.get(key) or []),
            )
    missed = (counts.get("missed_opportunity") or {}).get("true", 0)
    if missed:
        st.button(
            f"Missed opportunities ({missed})",
            key="facet_missed",
            type="tertiary",
            on_click=narrow,
            args=("missed", True),
        )


def narrow(key: str, value: Any) -> None:
    """Add a facet value to its filter (a callback: it runs before the widgets are drawn again)."""
    if key == "missed":
        st.session_state["missed"] = True
        return
    current = list(st.session_state.get(key) or [])
    if value not in current:
        st.session_state[key] = [*current, value]


def browse(filters: Filters, mode: str) -> None:
    """No words, only filters: every passage they select, newest review first."""
    offset = page_offset(("browse", filters))
    passages = common.figure("passages_behind", filters, limit=PAGE_SIZE, offset=offset)
    described = analytics.describe_filters(filters, common.all_names())
    if not passages.total:
        st.info(f"No passage matches these filters ({described}). Try removing a filter.")
        return
    st.markdown(f"**{passages.total:,} passages** match: {common.escape_markdown(described)}")
    found_by = common.query_log("", None, filters)
    rows = passages.rows.to_dict("records")
    common.show_passages(rows, "browse", actions=result_actions(found_by, ("", mode, filters)))
    pager(offset, len(passages.rows), offset + len(passages.rows) < passages.total)


def similar(passage_id: int, context: tuple[str, str, Filters]) -> None:
    """Passages nearest in meaning to one passage (the filters still apply)."""
    filters = context[2]
    with common.db().session() as session:
        source = analytics.passages_by_id(session, [passage_id])
    st.button("Back to the results", icon=":material/arrow_back:", on_click=st.session_state.pop, args=("like", None))
    if source.empty:
        st.info("That passage is no longer in the repository (its review may have been deleted).")
        return
    row = source.iloc[0]
    st.markdown(f"**Passages like** {common.escape_markdown(row['citation'])}")
    common.show_text(str(row["text"]), limit=400)
    offset = page_offset(("like", passage_id, filters))
    with st.spinner("Finding passages close in meaning…"):
        found = searched("more_like_this", passage_id, filters, limit=PAGE_SIZE + 1, offset=offset)
    results, more = found.results[:PAGE_SIZE], len(found.results) > PAGE_SIZE
    if not results:
        no_results(filters)
        return
    found_by = {"query": f"more like {row['citation']}", "mode": "semantic"}
    common.show_passages(cited(results), "like", actions=result_actions(found_by, context))
    pager(offset, len(results), more)
