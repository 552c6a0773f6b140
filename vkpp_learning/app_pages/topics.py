"""Topics page: the latest topic run's topics with keywords and sizes, the taxonomy theme each maps to or the
emergent flag, topics by review type and over time, and each topic's representative passages."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from vkpp_learning import analytics
from vkpp_learning.app_pages import common
from vkpp_learning.ui_safety import escape_markdown

VIEWS = "vkpp_learning.topics.views"
NO_RUN = (
    "No topic run yet. Topics are found by fitting a topic model (BERTopic) over the passages' embeddings: "
    "run `vkpp embed`, then `vkpp topics fit`, and reload this page."
)
KEYWORDS_SHOWN = 8
PASSAGES_SHOWN = 5


@common.guarded
def render() -> None:
    st.title("Topics")
    common.show_flash()
    if common.repository_is_empty():
        st.info(common.EMPTY_REPOSITORY)
        return
    run = common.figure("latest_run", module=VIEWS)
    if run is None:
        st.info(NO_RUN)
        return
    describe_run(run)
    topics = common.figure("topics_of_run", run.id, module=VIEWS)
    if not topics:
        st.info("The latest topic run found no topics (too few passages?). Fit again with more reviews.")
        return
    common.basket_chooser()
    chosen = topic_table(topics)
    breakdowns(run.id)
    if chosen is not None:
        representative(chosen)


def describe_run(run: Any) -> None:
    st.caption(
        escape_markdown(
            f"Run {run.id} · {run.method} ({run.configuration}) · {run.passages:,} passages · "
            f"{run.topic_count} topics, {run.emergent_count} emergent · outliers {run.outlier_share_after:.0%} "
            f"(before reduction {run.outlier_share_before:.0%}) · {run.created_at}"
        )
    )
    for note in run.notes:
        st.caption(":material/info: " + escape_markdown(str(note)))


def topic_table(topics: list[Any]) -> Any | None:
    """The topics, one row each; selecting a row shows its representative passages."""
    table = pd.DataFrame(
        {
            "topic": [topic.number for topic in topics],
            "label": [topic.label for topic in topics],
            "keywords": [", ".join(map(str, topic.keywords[:KEYWORDS_SHOWN])) for topic in topics],
            "passages": [topic.size for topic in topics],
            "theme": [mapped_theme(topic) for topic in topics],
        }
    )
    st.subheader("Topics")
    st.caption(
        "Emergent topics are near no taxonomy theme: candidates for new learning. Topic -1 holds the passages "
        "in no topic. Select a row to read its most representative passages."
    )
    event = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row", key="topics")
    rows = list(getattr(getattr(event, "selection", None), "rows", None) or [])
    return topics[int(rows[0])] if rows else None


def mapped_theme(topic: Any) -> str:
    if topic.is_outliers:
        return ""
    if topic.emergent or not topic.theme_id:
        return "emergent: no close theme"
    similarity = f" ({topic.theme_similarity:.2f})" if topic.theme_similarity is not None else ""
    return f"{common.name_of(topic.theme_facet or 'practice')(topic.theme_id)}{similarity}"


def breakdowns(run_id: int) -> None:
    by_type, by_year = st.columns(2)
    with by_type:
        st.subheader("By review type")
        shares_table(common.figure("topics_by_review_type", run_id, module=VIEWS), "review type")
    with by_year:
        st.subheader("Over time")
        shares_table(common.figure("topics_over_years", run_id, module=VIEWS), "year")


def shares_table(shares: list[Any], dimension: str) -> None:
    shares = [share for share in shares if share.number != -1]
    if not shares:
        st.caption(f"No breakdown by {dimension} was stored for this run.")
        return
    frame = pd.DataFrame(
        {
            "topic": [f"{s.number}: {s.label}" for s in shares],
            "value": [s.value for s in shares],
            "share": [s.share for s in shares],
        }
    )
    table = frame.pivot_table(index="topic", columns="value", values="share", fill_value=0.0, sort=False)
    config = {
        str(column): st.column_config.ProgressColumn(str(column), format="percent", min_value=0.0, max_value=1.0)
        for column in table.columns
    }
    st.dataframe(table, column_config=config)
    st.caption(f"Share of the passages of each {dimension} that fall in the topic.")


def representative(topic: Any) -> None:
    st.subheader(f"Topic {topic.number}: {escape_markdown(topic.label)}")
    shown = common.figure("representative_passages", topic.id, module=VIEWS)[:PASSAGES_SHOWN]
    if not shown:
        st.caption("None of this topic's passages is in the repository any more.")
        return
    with common.db().session() as session:
        rows = analytics.passages_by_id(session, [passage.passage_id for passage in shown])
    st.caption(f"{topic.size} passages in this topic; its most representative, one review at a time:")
    found_by = {"query": f"topic {topic.number}: {topic.label}"}
    common.show_passages(rows.to_dict("records"), "topic", actions=lambda r, k: common.basket_button(r, k, found_by))
