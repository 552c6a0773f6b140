"""Annotate page: confirm, reject or add tags on passages, from a queue of the least certain tags first or
on one passage (?passage=ID). Every decision is a new row with who and when; nothing is overwritten."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from vkpp_learning import analytics
from vkpp_learning.app_pages import common
from vkpp_learning.records import FACETS
from vkpp_learning.ui_safety import escape_markdown

QUEUE_SIZE = 50
BINARY = ("missed_opportunity", "police_relevant")
DECISION_WORDS = {"confirm": "confirmed", "reject": "rejected", "add": "added"}


@common.guarded
def render() -> None:
    st.title("Annotate")
    common.show_flash()
    if common.repository_is_empty():
        st.info(common.EMPTY_REPOSITORY)
        return
    if not common.may("annotate"):
        st.info(
            f"You are working as a {common.current_user().role.label}: viewers can read tags and their evidence "
            "but only analysts and admins confirm, reject or add them."
        )
    facet = st.selectbox("Facet", list(FACETS), key="annotate_facet", format_func=lambda f: common.FACET_TITLES[f])
    facet = facet or FACETS[0]
    passage_id = chosen_passage(facet)
    if passage_id is None:
        return
    with common.db().session() as session:
        rows = analytics.passages_by_id(session, [passage_id])
    if rows.empty:
        st.warning(f"Passage {passage_id} is not in the repository: its review may have been deleted or re-ingested.")
        return
    row = rows.iloc[0].to_dict()
    passage(row)
    tags_of(row, facet)
    if common.may("annotate"):
        add_tag(row, facet)
    history(passage_id)


def chosen_passage(facet: str) -> int | None:
    """The passage from the URL, or the current one of the queue for this facet."""
    linked = common.url_int("passage")
    if linked is not None:
        st.caption("The passage you followed. Clear the link to work through the queue.")
        st.button("Work through the queue instead", on_click=st.query_params.clear)
        return linked
    with common.db().session() as session:
        from vkpp_learning.annotations import annotation_queue

        queue = annotation_queue(session, facet, QUEUE_SIZE)
    if not queue:
        st.info("No passage has a machine tag in this facet, so there is nothing to review.")
        return None
    key = f"queue_position_{facet}"
    position = min(int(st.session_state.get(key, 0)), len(queue) - 1)
    item = queue[position]
    state = "not yet reviewed in this facet" if not item.annotated else "reviewed before"
    st.caption(
        f"Queue: {position + 1} of {len(queue)}, least certain first. This passage's nearest tag is "
        f"{common.name_of(facet)(item.label)} at {item.score:.2f} (threshold {item.threshold:.2f}); {state}."
    )
    with st.container(horizontal=True):
        st.button("Previous", key="queue_previous", disabled=position == 0, on_click=step, args=(key, position - 1))
        st.button(
            "Next", key="queue_next", disabled=position + 1 >= len(queue), on_click=step, args=(key, position + 1)
        )
    return item.passage_id


def step(key: str, position: int) -> None:
    st.session_state[key] = max(0, position)


def passage(row: dict[str, Any]) -> None:
    with st.container(border=True):
        st.markdown(f"**{escape_markdown(row['citation'])}**")
        if row.get("section"):
            st.caption(escape_markdown(str(row["section"])))
        common.show_text(str(row["text"]))
        common.link_to_review(int(row["review_id"]), int(row["passage_id"]))


def tags_of(row: dict[str, Any], facet: str) -> None:
    """The passage's effective tags in this facet, each with its source and evidence, and the decisions."""
    from vkpp_learning.annotations import effective_tags

    with common.db().session() as session:
        tags = effective_tags(session, [int(row["passage_id"])])[int(row["passage_id"])]
    shown = [tag for tag in tags if tag.facet == facet]
    st.subheader(f"{common.FACET_TITLES[facet]} tags")
    if not shown:
        st.caption("No tag in this facet. An absent tag is not evidence of absence: add one if it applies.")
    name = common.name_of(facet)
    for tag in shown:
        with st.container(border=True):
            score = f" · score {tag.score:.2f}" if tag.score is not None else ""
            st.markdown(f"**{escape_markdown(name(tag.label))}** · {escape_markdown(tag.source)}{score}")
            if tag.evidence:
                st.caption("Evidence: " + escape_markdown(tag.evidence))
            if common.may("annotate"):
                decide_buttons(int(row["passage_id"]), facet, tag.label)


def decide_buttons(passage_id: int, facet: str, label: str) -> None:
    from vkpp_learning.annotations import annotate

    user = common.current_user()
    with st.container(horizontal=True):
        for decision, icon in (("confirm", ":material/check:"), ("reject", ":material/close:")):
            st.button(
                decision.capitalize(),
                key=f"{decision}_{passage_id}_{facet}_{label}",
                icon=icon,
                on_click=common.act,
                args=(annotate, user, passage_id, facet, label, decision),
                kwargs={"done": f"{DECISION_WORDS[decision].capitalize()}: {common.name_of(facet)(label)}"},
            )


def add_tag(row: dict[str, Any], facet: str) -> None:
    from vkpp_learning.annotations import annotate

    labels = ["true"] if facet in BINARY else list(common.names(facet))
    if not labels:
        return
    with st.form(f"add_{facet}", clear_on_submit=True, border=True):
        st.markdown("**Add a tag**")
        label = st.selectbox("Label", labels, format_func=common.name_of(facet), key=f"add_label_{facet}")
        note = st.text_input("Why (optional)", key=f"add_note_{facet}", placeholder="the words that show it")
        if st.form_submit_button("Add tag", icon=":material/add:"):
            user, passage_id = common.current_user(), int(row["passage_id"])
            done = f"Added: {common.name_of(facet)(label)}"
            ok, _ = common.attempt(annotate, user, passage_id, facet, label, "add", note, done=done)
            if ok:
                st.rerun()  # show the new tag above
            common.show_flash()


def history(passage_id: int) -> None:
    from vkpp_learning.annotations import decisions

    with common.db().session() as session:
        made = decisions(session, passage_id)
    if not made:
        return
    with st.expander(f"Decisions on this passage ({len(made)})"):
        frame = pd.DataFrame(
            {
                "when": [d.created_at for d in made],
                "who": [d.user_name for d in made],
                "facet": [d.facet for d in made],
                "label": [common.name_of(d.facet)(d.label) for d in made],
                "decision": [d.decision for d in made],
                "note": [d.note for d in made],
            }
        )
        st.dataframe(frame, hide_index=True)
