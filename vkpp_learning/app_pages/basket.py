"""Evidence basket and export page: named collections of passages kept in the database, a note per excerpt,
and exports to DOCX (briefing pack), XLSX, CSV and Markdown through download buttons."""

from __future__ import annotations

import functools
import io
import re
from typing import Any

import pandas as pd
import streamlit as st

from vkpp_learning.app_pages import common
from vkpp_learning.ui_safety import escape_markdown

EXPORTS = (
    ("docx", "Briefing pack (DOCX)", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("xlsx", "Spreadsheet (XLSX)", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("csv", "CSV", "text/csv"),
    ("md", "Markdown", "text/markdown"),
)


@common.guarded
def render() -> None:
    st.title("Evidence baskets")
    common.show_flash()
    from vkpp_learning.baskets import list_baskets

    with common.db().session() as session:
        baskets = list_baskets(session)
    if common.may("basket"):
        create_form(bool(baskets))
    if not baskets:
        st.info(
            "There is no basket yet. "
            + (
                "Create one above, then add passages to it from Search, Themes or the reader."
                if common.may("basket")
                else "Analysts create baskets; you can export them once they exist."
            )
        )
        return
    name = choose(baskets)
    excerpts = load_excerpts(name)
    if excerpts is None:
        return
    export(name, bool(excerpts))
    show_excerpts(name, excerpts)
    if common.may("basket"):
        manage(name, next(b for b in baskets if b.name == name))


def create_form(some: bool) -> None:
    from vkpp_learning.baskets import create_basket

    with (
        st.expander("New basket", expanded=not some, icon=":material/add:"),
        st.form("create_basket_form", clear_on_submit=True, border=False),
    ):
        name = st.text_input("Name", placeholder="e.g. Stalking in DHRs since 2021")
        description = st.text_input("What it is for (optional)")
        if st.form_submit_button("Create basket"):
            ok, basket = common.attempt(create_basket, common.current_user(), name, description, done="Created")
            if ok:
                st.session_state["current_basket"] = st.session_state["basket_page_choice"] = basket.name
                st.rerun()
            common.show_flash()


def choose(baskets: list[Any]) -> str:
    names = [basket.name for basket in baskets]
    wanted = common.current_basket()
    if st.session_state.get("basket_page_choice") not in names:
        st.session_state["basket_page_choice"] = wanted if wanted in names else names[0]
    counts = {basket.name: basket.excerpts for basket in baskets}
    name = st.selectbox("Basket", names, key="basket_page_choice", format_func=lambda n: f"{n} ({counted(counts[n])})")
    st.session_state["current_basket"] = name
    chosen = next(basket for basket in baskets if basket.name == name)
    made = f"{chosen.created_at:%d %b %Y}" if chosen.created_at else ""
    st.caption(escape_markdown(f"{chosen.description} · created by {chosen.created_by} {made}".strip(" ·")))
    return name


def counted(excerpts: int) -> str:
    return f"{excerpts} excerpt" + ("" if excerpts == 1 else "s")


def load_excerpts(name: str) -> list[Any] | None:
    from vkpp_learning.baskets import basket_excerpts

    with common.db().session() as session:
        return basket_excerpts(session, name)


def export(name: str, has_excerpts: bool) -> None:
    """One download button per format; each file is made when its button is pressed."""
    st.subheader("Export")
    if not has_excerpts:
        st.caption("Add excerpts to the basket to export it.")
        return
    with st.container(horizontal=True):
        for fmt, label, mime in EXPORTS:
            st.download_button(
                label,
                data=functools.partial(exported, name, fmt),
                file_name=f"{file_stem(name)}.{fmt}",
                mime=mime,
                key=f"export_{fmt}",
                icon=":material/download:",
                on_click="ignore",
            )
    st.caption(
        "Every excerpt carries its full citation; the method note says how the themes were tagged and that an "
        "absent tag is not evidence of absence."
    )


def exported(name: str, fmt: str) -> bytes:
    from vkpp_learning.export import export_basket

    stream = io.BytesIO()
    with common.db().session() as session:
        export_basket(session, name, fmt, stream)
    return stream.getvalue()


def file_stem(name: str) -> str:
    return re.sub(r"[^\w-]+", "_", name).strip("_") or "basket"


def show_excerpts(name: str, excerpts: list[Any]) -> None:
    st.subheader(f"Excerpts ({len(excerpts)})")
    if not excerpts:
        st.caption("This basket is empty: add passages from Search, Themes, Missed opportunities or the reader.")
        return
    theme = common.name_of("practice")
    for excerpt in excerpts:
        with st.container(border=True):
            st.markdown(f"**{escape_markdown(excerpt.citation)}**")
            common.show_text(excerpt.text, limit=800)
            if excerpt.themes:
                st.markdown(" ".join(f":blue-badge[{escape_markdown(theme(t))}]" for t in excerpt.themes))
            if common.may("basket"):
                edit_excerpt(name, excerpt)
            elif excerpt.note:
                st.caption("Note: " + escape_markdown(excerpt.note))


def edit_excerpt(name: str, excerpt: Any) -> None:
    from vkpp_learning.baskets import remove_from_basket

    user, passage_id = common.current_user(), excerpt.passage_id
    st.text_area("Note", value=excerpt.note, key=f"note_{passage_id}", height=68)
    with st.container(horizontal=True):
        st.button("Save note", key=f"save_note_{passage_id}", on_click=save_note, args=(name, passage_id))
        st.button(
            "Remove",
            key=f"remove_{passage_id}",
            icon=":material/remove_shopping_cart:",
            on_click=common.act,
            args=(remove_from_basket, user, name, passage_id),
            kwargs={"done": "Removed from the basket"},
        )
        common.link_to_review(excerpt.review_id, passage_id)


def save_note(name: str, passage_id: int) -> None:
    """The note as typed when the button was pressed (a callback reads the widget's state then)."""
    from vkpp_learning.baskets import set_note

    note = str(st.session_state.get(f"note_{passage_id}") or "")
    common.act(set_note, common.current_user(), name, passage_id, note, done="Note saved")


def manage(name: str, basket: Any) -> None:
    from vkpp_learning.baskets import basket_queries, delete_basket, rename_basket

    with st.expander("Searches that found these excerpts"):
        with common.db().session() as session:
            queries = basket_queries(session, name)
        if queries:
            from vkpp_learning.export import describe_query

            st.dataframe(pd.DataFrame({"search": [describe_query(q) for q in queries]}), hide_index=True)
        else:
            st.caption("None recorded: the excerpts were added by hand.")
    with st.expander("Rename or delete this basket"):
        new_name = st.text_input("New name", value=name, key="rename_to")
        if st.button("Rename", key="rename", disabled=new_name.strip() == name):
            ok, renamed = common.attempt(rename_basket, common.current_user(), name, new_name, done="Renamed")
            if ok:
                st.session_state["current_basket"] = renamed.name
                st.session_state.pop("basket_page_choice", None)
                st.rerun()
        sure = st.checkbox("Yes, delete this basket (the passages stay in the repository)", key="confirm_basket_delete")
        if st.button("Delete basket", key="delete_basket", disabled=not sure, type="primary"):
            ok, _ = common.attempt(delete_basket, common.current_user(), name, done="Basket deleted")
            if ok:
                st.session_state.pop("current_basket", None)
                st.session_state.pop("basket_page_choice", None)
                st.rerun()
        common.show_flash()
