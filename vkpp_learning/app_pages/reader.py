"""Review reader page: one review's metadata, its passages in reading order with page and paragraph numbers
and their tags inline, and its recommendations. ?review=ID&passage=ID opens a review at a passage."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from vkpp_learning import analytics
from vkpp_learning.app_pages import common
from vkpp_learning.ui_safety import escape_markdown

PAGE_SIZE = 40
METADATA_LABELS = {
    "review_type": "Review type",
    "subtype": "Published as",
    "subject": "Subject",
    "area": "Area",
    "commissioner": "Commissioned by",
    "year": "Year",
    "month": "Month",
    "page_count": "Pages",
    "passages": "Passages",
    "status": "Text layer",
    "filename": "File",
}


@common.guarded
def render() -> None:
    st.title("Review reader")
    common.show_flash()
    reviews = common.figure("review_list")
    if reviews.empty:
        st.info(common.EMPTY_REPOSITORY)
        return
    common.basket_chooser()
    review_id, passage_id = chosen_review(reviews)
    if review_id is None:
        return
    summary = common.figure("review_summary", review_id)
    if summary is None:
        st.warning(
            f"Review {review_id} is not in the repository: it may have been deleted or re-ingested. "
            "Choose another review above."
        )
        return
    metadata(summary)
    passages_tab, recommendations_tab = st.tabs(["Passages", "Recommendations"])
    with passages_tab:
        reading(review_id, passage_id)
    with recommendations_tab:
        recommendations(review_id)
    if common.may("delete"):
        deletion(summary)


def chosen_review(reviews: pd.DataFrame) -> tuple[int | None, int | None]:
    """The review (and passage) named in the URL, or the one picked; the URL follows the picker."""
    ids = [int(value) for value in reviews["review_id"]]
    wanted, passage_id = common.url_int("review"), common.url_int("passage")
    if wanted is not None and wanted not in ids:
        st.warning(
            f"Review {wanted} is not in the repository: it may have been deleted or re-ingested. "
            "Choose another review below."
        )
        wanted = None
    common.seed_from_url("reader", {"review": lambda _values: wanted if wanted is not None else ids[0]})
    citations = dict(zip(ids, reviews["citation"], strict=True))
    titles = dict(zip(ids, reviews["title"], strict=True))
    review_id = st.selectbox(
        "Review", ids, key="review", format_func=lambda rid: f"{citations[rid]}: {titles[rid]}", index=None
    )
    if review_id is None:
        st.info("Choose a review.")
        return None, None
    if review_id != common.url_int("review"):
        passage_id = None
    params: dict[str, str | list[str]] = {"review": str(review_id)}
    if passage_id is not None:
        params["passage"] = str(passage_id)
    common.sync_url("reader", params, ("review", "passage"))
    return int(review_id), passage_id


def metadata(summary: dict[str, Any]) -> None:
    st.subheader(escape_markdown(summary["title"]))
    st.markdown(f"**Cite as:** {escape_markdown(summary['citation'])}")
    values = {label: summary.get(name) for name, label in METADATA_LABELS.items()}
    shown = {label: str(value) for label, value in values.items() if value not in (None, "", "unknown")}
    with st.expander("About this review"):
        st.table(pd.DataFrame({"": list(shown), "value": list(shown.values())}).set_index(""))
        if summary.get("executive_summary"):
            st.caption("This is an executive summary; the overview report may hold more detail.")
        for warning in summary.get("warnings") or []:
            st.caption(f":material/warning: {escape_markdown(str(warning))}")
        reasons = summary.get("unknown_reasons") or {}
        for name, reason in reasons.items():
            st.caption(f"{escape_markdown(str(name))} unknown: {escape_markdown(str(reason))}")
        sources = summary.get("metadata_sources") or {}
        if sources:
            read_from = ", ".join(f"{field} from {source}" for field, source in sources.items())
            st.caption("Metadata read: " + escape_markdown(read_from))


def reading(review_id: int, passage_id: int | None) -> None:
    """The review's passages, a page of them at a time, starting at the linked passage when there is one."""
    total = int(common.figure("review_summary", review_id)["passages"])
    if not total:
        st.info("No passage was read from this review (it may be scanned with no text layer).")
        return
    start = start_of_page(review_id, passage_id)
    sections = common.figure("review_sections", review_id)
    jump_to_section(sections, review_id)
    start = int(st.session_state.get(f"reader_start_{review_id}", start))
    page = common.figure("review_passages", review_id, limit=PAGE_SIZE, offset=start)
    st.caption(f"Passages {start + 1}-{start + len(page.rows)} of {total}")
    for row in page.rows.to_dict("records"):
        show_in_order(row, highlighted=row["passage_id"] == passage_id)
    paging(review_id, start, total)


def start_of_page(review_id: int, passage_id: int | None) -> int:
    """The first passage shown: a page that holds the linked passage, remembered while the review stays open."""
    key = f"reader_start_{review_id}"
    linked = f"reader_linked_{review_id}"
    if passage_id is not None and st.session_state.get(linked) != passage_id:
        with common.db().session() as session:
            position = analytics.passage_position(session, passage_id)
        st.session_state[linked] = passage_id
        if position is None or position[0] != review_id:
            st.warning("The linked passage is no longer in this review (it may have been re-ingested).")
        else:
            st.session_state[key] = (position[1] // PAGE_SIZE) * PAGE_SIZE
    return int(st.session_state.get(key, 0))


def jump_to_section(sections: pd.DataFrame, review_id: int) -> None:
    if len(sections) < 2:
        return
    labels = [f"{row.section} ({row.passages})" for row in sections.itertuples()]
    ordinals = [int(value) for value in sections["first_ordinal"]]
    choice = st.selectbox(
        "Jump to section", range(len(labels)), format_func=labels.__getitem__, index=None, key=f"jump_{review_id}"
    )
    if choice is not None and st.session_state.get(f"reader_section_{review_id}") != choice:
        st.session_state[f"reader_section_{review_id}"] = choice
        with common.db().session() as session:
            position = analytics.passage_position_of_ordinal(session, review_id, ordinals[choice])
        st.session_state[f"reader_start_{review_id}"] = position


def show_in_order(row: dict[str, Any], highlighted: bool) -> None:
    """One passage in the review's flow: its place (page, paragraph), text and tags."""
    with st.container(border=highlighted):
        if highlighted:
            st.caption(":material/arrow_right: The passage you followed")
        if row["kind"] == "heading":
            st.markdown(f"#### {escape_markdown(str(row['text']))}")
            return
        st.caption(escape_markdown(row["place"]))
        common.show_text(str(row["text"]))
        tags = common.tag_line(row)
        if tags:
            st.markdown(tags)
        if highlighted:
            with st.container(horizontal=True):
                common.basket_button(row, "reader", {"query": f"read in {row['citation']}"})
                if common.may("annotate"):
                    st.page_link(
                        common.page("annotate"),
                        label="Review its tags",
                        icon=":material/rule:",
                        query_params={"passage": str(row["passage_id"])},
                    )


def paging(review_id: int, start: int, total: int) -> None:
    key = f"reader_start_{review_id}"
    with st.container(horizontal=True):
        st.button(
            "Previous passages",
            key="reader_previous",
            disabled=start == 0,
            on_click=st.session_state.__setitem__,
            args=(key, max(0, start - PAGE_SIZE)),
        )
        st.button(
            "Next passages",
            key="reader_next",
            disabled=start + PAGE_SIZE >= total,
            on_click=st.session_state.__setitem__,
            args=(key, start + PAGE_SIZE),
        )


def recommendations(review_id: int) -> None:
    found = common.figure("review_recommendations", review_id)
    if found.rows.empty:
        st.info("No recommendations section was found in this review.")
        return
    st.caption(f"{found.total} passages in the recommendations section, with the agencies they are addressed to.")
    common.show_passages(found.rows.to_dict("records"), "recommendation")


def deletion(summary: dict[str, Any]) -> None:
    """Admins only: delete the review and everything that hangs off it (its passages leave every basket)."""
    from vkpp_learning.db.store import delete_review
    from vkpp_learning.roles import require

    with st.expander("Delete this review (admin)"):
        st.caption("Its passages, tags, annotations and basket entries go with it. Re-ingesting the file restores it.")
        sure = st.checkbox("Yes, delete this review", key="confirm_delete")
        if st.button("Delete review", type="primary", disabled=not sure, key="delete_review"):
            require(common.current_user(), "delete")
            delete_review(common.db(), summary["sha256"])
            common.figures_changed()
            common.notify(f"Deleted {summary['citation']}")
            st.rerun()
