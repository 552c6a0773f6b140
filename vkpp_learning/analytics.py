"""The figures behind the app's charts: reviews by type and year, theme prevalence and trends, missed
opportunities by agency, co-occurrence and theme detail, each counted from the effective tags in a few
SQL GROUP BY queries. `figure_filters` turns any figure back into the search Filters of its passages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pandas as pd
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from vkpp_learning.citations import citation, locator, pages, review_citation
from vkpp_learning.records import FACETS
from vkpp_learning.search.filters import Filters, filter_condition, review_condition

THEME_FACET = "practice"
AGENCY_FACET = "agency"
MISSED_FACET = "missed_opportunity"
RECOMMENDATION_FACET = "recommendation_to"
RECOMMENDATIONS_SECTION = "recommendations"
TRUE = "true"
MEASURES = ("reviews", "passages")
ALL_TYPES = "All types"
UNKNOWN_YEAR = "unknown"
# The Filters field that selects each tag facet, so a figure over any facet can link to its passages.
FACET_FILTER = {"practice": "themes", "vulnerability": "vulnerabilities", "agency": "agencies"}
# Headings carry a theme's words but say nothing about practice; they are never "strongest passages".
NOT_EVIDENCE_KINDS = ("heading",)
CITED_REVIEW_FIELDS = (
    "review_type",
    "subtype",
    "title",
    "subject",
    "year",
    "area",
    "commissioner",
    "executive_summary",
)
PASSAGE_COLUMNS = (
    "passage_id",
    "review_id",
    "ordinal",
    "kind",
    "section",
    "section_kind",
    "paragraph",
    "page_start",
    "page_end",
    "text",
    "review_type",
    "subtype",
    "title",
    "subject",
    "year",
    "area",
    "commissioner",
    "executive_summary",
)


# --- the effective tags, as SQL -------------------------------------------------------------------


def facet_literals(facets: Iterable[str]) -> str:
    """Facets as quoted SQL literals; only the fixed facet names can get here, never user text."""
    chosen = list(facets)
    unknown = [facet for facet in chosen if facet not in FACETS]
    if unknown or not chosen:
        raise ValueError(f"unknown facet(s) {unknown or chosen}; facets are {', '.join(FACETS)}")
    return ", ".join(f"'{facet}'" for facet in chosen)


def effective_tags_sql(facets: Iterable[str]) -> str:
    """SELECT passage_id, facet, label, score of every effective tag in `facets`: the current tag runs'
    tags unless an analyst's latest decision rejected them, plus tags an analyst's latest decision added
    or confirmed (score 1.0 when no tagger proposed them). The same rule as search filters use.

    A label two current runs both gave appears once per run, so figures count DISTINCT passages or reviews
    (grouping here would cost more than the counts themselves on a large repository)."""
    wanted = facet_literals(facets)
    machine = (
        "SELECT t.passage_id, t.facet, t.label, t.score FROM tags AS t JOIN tag_runs AS tr ON tr.id = t.run_id "
        f"WHERE tr.is_current = true AND t.facet IN ({wanted})"
    )
    latest = (
        "SELECT a.passage_id, a.facet, a.label, a.decision FROM annotations AS a WHERE a.id IN "
        f"(SELECT max(b.id) FROM annotations AS b WHERE b.facet IN ({wanted}) "
        "GROUP BY b.passage_id, b.facet, b.label)"
    )
    kept = (
        f"SELECT m.passage_id, m.facet, m.label, m.score FROM ({machine}) AS m LEFT JOIN ({latest}) AS d "
        "ON d.passage_id = m.passage_id AND d.facet = m.facet AND d.label = m.label "
        "WHERE d.decision IS NULL OR d.decision <> 'reject'"
    )
    added = (
        f"SELECT d.passage_id, d.facet, d.label, 1.0 AS score FROM ({latest}) AS d "
        "WHERE d.decision IN ('add', 'confirm') AND NOT EXISTS (SELECT 1 FROM tags AS t "
        "JOIN tag_runs AS tr ON tr.id = t.run_id WHERE tr.is_current = true AND t.passage_id = d.passage_id "
        "AND t.facet = d.facet AND t.label = d.label)"
    )
    return f"{kept} UNION ALL {added}"


def with_effective(facets: Iterable[str]) -> str:
    """A WITH clause naming the effective tags of `facets` as `eff`."""
    return f"WITH eff AS ({effective_tags_sql(facets)}) "


def run(
    session: Session, sql: str, params: Mapping[str, Any] | None = None, columns: Sequence[str] = ()
) -> pd.DataFrame:
    rows = session.execute(text(sql), dict(params or {})).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=list(columns) or None)


def scoped(filters: Filters | None) -> tuple[str, dict[str, Any]]:
    """The review-level part of `filters` (type, years) as SQL over `r`, for scoping a figure."""
    condition = review_condition(filters or Filters())
    return condition.sql, condition.params


# --- the repository at a glance -------------------------------------------------------------------


def reviews_by_type_and_year(session: Session) -> pd.DataFrame:
    """Reviews counted by publication year (rows, 'unknown' last) and review type (columns)."""
    frame = run(
        session,
        "SELECT r.review_type, r.year, count(*) FROM reviews AS r GROUP BY r.review_type, r.year",
        columns=("review_type", "year", "reviews"),
    )
    if frame.empty:
        return pd.DataFrame()
    frame["year"] = frame["year"].map(year_label)
    table = frame.pivot_table(index="year", columns="review_type", values="reviews", aggfunc="sum", fill_value=0)
    order = sorted(table.index, key=lambda year: (year == UNKNOWN_YEAR, year))
    return table.loc[order].rename_axis(index="year", columns="review type")


def year_label(year: Any) -> str:
    return UNKNOWN_YEAR if year is None or pd.isna(year) else str(int(year))


def type_totals(session: Session, filters: Filters | None = None) -> pd.DataFrame:
    """Reviews and passages per review type (the denominators of every share)."""
    where, params = scoped(filters)
    frame = run(
        session,
        "SELECT r.review_type, count(DISTINCT r.id), count(p.id) FROM reviews AS r "
        f"LEFT JOIN passages AS p ON p.review_id = r.id WHERE {where} GROUP BY r.review_type",
        params,
        ("review_type", "reviews", "passages"),
    )
    return frame.sort_values("review_type").reset_index(drop=True)


def totals(session: Session) -> dict[str, int]:
    """Reviews, pages, passages, failed files, current tag runs and tagged passages: the Overview's headline."""
    from vkpp_learning.db.store import repository_totals

    return {**repository_totals(session), **tagged_totals(session)}


def tagged_totals(session: Session) -> dict[str, int]:
    """How many passages carry any effective tag, and how many tag runs are current (0: nothing tagged yet)."""
    runs = session.execute(text("SELECT count(*) FROM tag_runs WHERE is_current = true")).scalar_one()
    tagged = session.execute(text(f"{with_effective(FACETS)}SELECT count(DISTINCT passage_id) FROM eff")).scalar_one()
    return {"current_runs": int(runs), "tagged_passages": int(tagged or 0)}


# --- theme prevalence -----------------------------------------------------------------------------


def theme_by_type_counts(session: Session, facet: str, filters: Filters | None = None) -> pd.DataFrame:
    """Per label and review type: how many reviews and passages carry it."""
    where, params = scoped(filters)
    return run(
        session,
        f"{with_effective([facet])}SELECT e.label, r.review_type, count(DISTINCT p.review_id), "
        "count(DISTINCT e.passage_id) FROM eff AS e JOIN passages AS p ON p.id = e.passage_id "
        f"JOIN reviews AS r ON r.id = p.review_id WHERE {where} GROUP BY e.label, r.review_type",
        params,
        ("label", "review_type", "reviews", "passages"),
    )


def theme_matrix(
    session: Session,
    facet: str = THEME_FACET,
    measure: str = "reviews",
    labels: Sequence[str] = (),
    filters: Filters | None = None,
) -> pd.DataFrame:
    """Long table of label x review type (plus ALL_TYPES): `count` of reviews or passages carrying the label,
    `total` of that type, and `share` = count / total. `labels` (e.g. every taxonomy theme) get zero rows
    when nothing carries them, so an absent theme shows as absent rather than missing."""
    check_measure(measure)
    counts = theme_by_type_counts(session, facet, filters)
    totals = type_totals(session, filters)
    if totals.empty:
        return pd.DataFrame(columns=["label", "review_type", "count", "total", "share"])
    all_types = all_types_counts(session, facet, filters)
    counts = pd.concat([counts, all_types], ignore_index=True) if not all_types.empty else counts
    totals = pd.concat(
        [totals, pd.DataFrame([{"review_type": ALL_TYPES, **totals[list(MEASURES)].sum().to_dict()}])],
        ignore_index=True,
    )
    every_label = list(dict.fromkeys([*labels, *counts["label"].tolist()]))
    grid = pd.MultiIndex.from_product([every_label, totals["review_type"]], names=["label", "review_type"])
    counted = counts.set_index(["label", "review_type"])[measure].reindex(grid, fill_value=0)
    frame = counted.rename("count").reset_index()
    frame["total"] = frame["review_type"].map(totals.set_index("review_type")[measure]).astype(int)
    frame["count"] = frame["count"].astype(int)
    frame["share"] = (frame["count"] / frame["total"].where(frame["total"] > 0)).fillna(0.0)
    return frame


def all_types_counts(session: Session, facet: str, filters: Filters | None) -> pd.DataFrame:
    """Per label over every review type at once (reviews counted once however many passages)."""
    where, params = scoped(filters)
    frame = run(
        session,
        f"{with_effective([facet])}SELECT e.label, count(DISTINCT p.review_id), count(DISTINCT e.passage_id) "
        "FROM eff AS e JOIN passages AS p ON p.id = e.passage_id JOIN reviews AS r ON r.id = p.review_id "
        f"WHERE {where} GROUP BY e.label",
        params,
        ("label", "reviews", "passages"),
    )
    frame.insert(1, "review_type", ALL_TYPES)
    return frame


def check_measure(measure: str) -> None:
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}")


def theme_trends(
    session: Session,
    labels: Sequence[str],
    facet: str = THEME_FACET,
    measure: str = "reviews",
    filters: Filters | None = None,
) -> pd.DataFrame:
    """Per publication year and label: `count` of reviews (or passages) published that year carrying it,
    the year's `total`, and `share`. Reviews of unknown year are left out (they have no place on a time axis)."""
    check_measure(measure)
    if not labels:
        return pd.DataFrame(columns=["year", "label", "count", "total", "share"])
    where, params = scoped(filters)
    counted = "count(DISTINCT p.review_id)" if measure == "reviews" else "count(DISTINCT e.passage_id)"
    statement = text(
        f"{with_effective([facet])}SELECT r.year, e.label, {counted} FROM eff AS e "
        "JOIN passages AS p ON p.id = e.passage_id JOIN reviews AS r ON r.id = p.review_id "
        f"WHERE r.year IS NOT NULL AND e.label IN :labels AND {where} GROUP BY r.year, e.label"
    ).bindparams(bindparam("labels", expanding=True))
    rows = session.execute(statement, {**params, "labels": list(labels)}).all()
    counts = pd.DataFrame([tuple(row) for row in rows], columns=["year", "label", "count"])
    totals = year_totals(session, measure, filters)
    if totals.empty:
        return pd.DataFrame(columns=["year", "label", "count", "total", "share"])
    grid = pd.MultiIndex.from_product([totals.index, list(labels)], names=["year", "label"])
    frame = counts.set_index(["year", "label"])["count"].reindex(grid, fill_value=0).reset_index()
    frame["total"] = frame["year"].map(totals).astype(int)
    frame["count"] = frame["count"].astype(int)
    frame["share"] = (frame["count"] / frame["total"].where(frame["total"] > 0)).fillna(0.0)
    frame["year"] = frame["year"].astype(int)
    return frame


def year_totals(session: Session, measure: str, filters: Filters | None = None) -> pd.Series:
    where, params = scoped(filters)
    counted = "count(DISTINCT r.id)" if measure == "reviews" else "count(p.id)"
    frame = run(
        session,
        f"SELECT r.year, {counted} FROM reviews AS r LEFT JOIN passages AS p ON p.review_id = r.id "
        f"WHERE r.year IS NOT NULL AND {where} GROUP BY r.year ORDER BY r.year",
        params,
        ("year", "total"),
    )
    return frame.set_index("year")["total"]


def top_labels(matrix: pd.DataFrame, count: int = 5) -> list[str]:
    """The labels most often present across all types in a `theme_matrix`, most first."""
    overall = matrix[matrix["review_type"] == ALL_TYPES].sort_values(["count", "label"], ascending=[False, True])
    return overall[overall["count"] > 0]["label"].head(count).tolist()


# --- missed opportunities -------------------------------------------------------------------------


def missed_opportunity_counts(session: Session, filters: Filters | None = None) -> pd.DataFrame:
    """Missed-opportunity passages by agency judged, practice theme and review type: `passages` and
    `reviews`. A passage counts once in each (agency, theme) pair it carries; passages with no agency or
    no theme are not in this table (see `missed_opportunity_totals`)."""
    filters = missed(filters)
    condition = filter_condition(filters)
    return run(
        session,
        f"{with_effective([MISSED_FACET, AGENCY_FACET, THEME_FACET])}"
        "SELECT a.label, t.label, r.review_type, count(DISTINCT p.id), count(DISTINCT p.review_id) "
        f"FROM eff AS m JOIN eff AS a ON a.passage_id = m.passage_id AND a.facet = '{AGENCY_FACET}' "
        f"JOIN eff AS t ON t.passage_id = m.passage_id AND t.facet = '{THEME_FACET}' "
        "JOIN passages AS p ON p.id = m.passage_id JOIN reviews AS r ON r.id = p.review_id "
        f"WHERE m.facet = '{MISSED_FACET}' AND m.label = '{TRUE}' AND {condition.sql} "
        "GROUP BY a.label, t.label, r.review_type",
        condition.params,
        ("agency", "theme", "review_type", "passages", "reviews"),
    )


def missed(filters: Filters | None) -> Filters:
    return replace(filters or Filters(), missed_only=True)


def missed_opportunity_pivot(counts: pd.DataFrame, index: str = "agency", columns: str = "theme") -> pd.DataFrame:
    """Passages of a `missed_opportunity_counts` table summed into `index` x `columns` (review types merged)."""
    if counts.empty:
        return pd.DataFrame()
    table = counts.pivot_table(index=index, columns=columns, values="passages", aggfunc="sum", fill_value=0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False).index]
    return table[table.sum(axis=0).sort_values(ascending=False).index]


def top_missed_themes(counts: pd.DataFrame, per_agency: int = 3) -> pd.DataFrame:
    """For each agency, its `per_agency` most frequent missed-opportunity themes (review types merged)."""
    if counts.empty:
        return pd.DataFrame(columns=["agency", "theme", "passages", "reviews"])
    merged = counts.groupby(["agency", "theme"], as_index=False)[["passages", "reviews"]].sum()
    merged = merged.sort_values(["agency", "passages", "theme"], ascending=[True, False, True])
    top = merged.groupby("agency", as_index=False).head(per_agency)
    order = merged.groupby("agency")["passages"].sum().sort_values(ascending=False).index
    return top.set_index("agency").loc[order].reset_index()


def missed_opportunity_passages(session: Session, filters: Filters | None = None, limit: int = 500) -> pd.DataFrame:
    """Missed-opportunity passages matching `filters`, newest review first, each with its agencies and themes."""
    page = passages_behind(session, missed(filters), limit=limit)
    return page.rows


# --- the passages behind a figure -----------------------------------------------------------------


@dataclass
class PassagePage:
    """A page of the passages that match some filters, with how many match in all."""

    total: int
    rows: pd.DataFrame
    filters: Filters = field(default_factory=Filters)


def figure_filters(
    review_type: str | None = None,
    year: int | str | None = None,
    label: str | None = None,
    facet: str = THEME_FACET,
    agency: str | None = None,
    missed_only: bool = False,
    section: str | None = None,
    base: Filters | None = None,
) -> Filters:
    """The search Filters whose passages are the ones a figure counted: a cell of the theme matrix, a point
    on a trend, a missed-opportunity count. `base` carries filters the figure was already scoped by."""
    filters = base or Filters()
    changes: dict[str, Any] = {}
    if review_type and review_type != ALL_TYPES:
        changes["review_types"] = (review_type,)
    if year is not None and str(year) != UNKNOWN_YEAR:
        changes["year_from"] = changes["year_to"] = int(year)
    if label:
        if facet not in FACET_FILTER:
            raise ValueError(f"figures over the {facet!r} facet cannot be filtered by label")
        field_name = FACET_FILTER[facet]
        changes[field_name] = tuple(dict.fromkeys([*getattr(filters, field_name), label]))
    if agency:
        changes["agencies"] = tuple(dict.fromkeys([*filters.agencies, agency]))
    if missed_only:
        changes["missed_only"] = True
    if section:
        changes["section"] = section
    return replace(filters, **changes)


def passages_behind(
    session: Session,
    filters: Filters,
    limit: int = 50,
    offset: int = 0,
    order: str = "review",
) -> PassagePage:
    """The passages `filters` select, with citation fields and their themes and agencies: what a figure counted.
    `order` is "review" (newest review first, then reading order) or "score" (the filtered themes' strongest
    effective tag first; analysts' confirmations count as 1.0)."""
    condition = filter_condition(filters)
    base = f"FROM passages AS p JOIN reviews AS r ON r.id = p.review_id WHERE {condition.sql}"
    total = int(session.execute(text(f"SELECT count(*) {base}"), condition.params).scalar_one())
    prefix, ordering, order_params = passage_order(filters, order)
    sql = f"{prefix}SELECT {passage_select()} {base} ORDER BY {ordering} LIMIT :limit OFFSET :offset"
    params = {**condition.params, **order_params, "limit": max(0, limit), "offset": max(0, offset)}
    return PassagePage(total, with_labels(session, run(session, sql, params, PASSAGE_COLUMNS)), filters)


def passages_by_id(session: Session, passage_ids: Sequence[int]) -> pd.DataFrame:
    """The given passages with citation fields, labels and citation, in the order given (missing ones left out)."""
    ids = [int(passage_id) for passage_id in passage_ids]
    if not ids:
        return with_labels(session, pd.DataFrame(columns=list(PASSAGE_COLUMNS)))
    statement = text(
        f"SELECT {passage_select()} FROM passages AS p JOIN reviews AS r ON r.id = p.review_id WHERE p.id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    rows = session.execute(statement, {"ids": ids}).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=list(PASSAGE_COLUMNS))
    order = {passage_id: position for position, passage_id in enumerate(ids)}
    frame = frame.sort_values("passage_id", key=lambda column: column.map(order)).reset_index(drop=True)
    return with_labels(session, frame)


def passage_select() -> str:
    return (
        "p.id, p.review_id, p.ordinal, p.kind, p.section, p.section_kind, p.paragraph, p.page_start, p.page_end, "
        "p.text, r.review_type, r.subtype, r.title, r.subject, r.year, r.area, r.commissioner, r.executive_summary"
    )


def passage_order(filters: Filters, order: str) -> tuple[str, str, dict[str, Any]]:
    """(WITH prefix, ORDER BY, parameters) for `passages_behind`: by review (newest first, then reading
    order), or by the score of the filtered themes' effective tags."""
    if order != "score" or not filters.themes:
        return "", "coalesce(r.year, 0) DESC, r.id, p.ordinal", {}
    params = {f"o_label{index}": label for index, label in enumerate(filters.themes)}
    placeholders = ", ".join(f":{name}" for name in params)
    strongest = (
        "(SELECT max(e.score) FROM eff AS e WHERE e.passage_id = p.id "
        f"AND e.facet = '{THEME_FACET}' AND e.label IN ({placeholders}))"
    )
    return with_effective([THEME_FACET]), f"coalesce({strongest}, 0) DESC, p.id", params


def with_labels(session: Session, rows: pd.DataFrame) -> pd.DataFrame:
    """Add `themes`, `vulnerabilities`, `agencies` and `missed_opportunity` columns from the effective tags."""
    rows = rows.copy()
    ids = [int(value) for value in rows["passage_id"]] if not rows.empty else []
    labels = labels_by_passage(session, ids)
    for column, facet in (("themes", THEME_FACET), ("vulnerabilities", "vulnerability"), ("agencies", AGENCY_FACET)):
        rows[column] = [labels.get((pid, facet), []) for pid in ids]
    rows["missed_opportunity"] = [TRUE in labels.get((pid, MISSED_FACET), []) for pid in ids]
    rows["recommendation_to"] = [labels.get((pid, RECOMMENDATION_FACET), []) for pid in ids]
    records = rows.to_dict("records")
    rows["citation"] = [cite(row) for row in records]
    rows["place"] = [place(row) for row in records]
    return rows


def cite(row: Mapping[str, Any]) -> str:
    """The full citation of a passage row (as `passages_behind` returns them)."""
    return citation(as_review(row), as_passage(row))


def place(row: Mapping[str, Any]) -> str:
    """Where a passage row is in its review: "p. 14, para 5.3", "pp. 3-4, chronology row"."""
    passage = as_passage(row)
    return ", ".join(part for part in (pages(passage), locator(passage)) if part)


def as_passage(row: Mapping[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(
        kind=known_or_none(row.get("kind")) or "paragraph",
        section_kind=known_or_none(row.get("section_kind")) or "other",
        paragraph=known_or_none(row.get("paragraph")),
        page_start=int(known_or_none(row.get("page_start")) or 0),
        page_end=int(known_or_none(row.get("page_end")) or 0),
    )


def known_or_none(value: Any) -> Any:
    """None for missing values, including pandas' NaN in a column of numbers."""
    if value is None:
        return None
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # lists and other values pandas cannot judge
        return value


def labels_by_passage(session: Session, passage_ids: Sequence[int]) -> dict[tuple[int, str], list[str]]:
    """{(passage id, facet): labels, strongest first} from the effective tags of every facet."""
    if not passage_ids:
        return {}
    statement = text(
        f"{with_effective(FACETS)}SELECT e.passage_id, e.facet, e.label FROM eff AS e "
        "WHERE e.passage_id IN :ids ORDER BY e.passage_id, e.facet, e.score DESC, e.label"
    ).bindparams(bindparam("ids", expanding=True))
    found: dict[tuple[int, str], list[str]] = {}
    for passage_id, facet, label in session.execute(statement, {"ids": list(passage_ids)}):
        labels = found.setdefault((int(passage_id), facet), [])
        if label not in labels:  # given by more than one current run
            labels.append(label)
    return found


# --- co-occurrence and theme detail ---------------------------------------------------------------


def cooccurrence(session: Session, facet: str = THEME_FACET, level: str = "passages") -> pd.DataFrame:
    """Square table: how many passages (or reviews) carry both the row's and the column's label.
    The diagonal is how many carry the label at all."""
    if level not in MEASURES:
        raise ValueError(f"level must be one of {', '.join(MEASURES)}, not {level!r}")
    unit = "e.passage_id" if level == "passages" else "p.review_id"
    rows = run(
        session,
        f"{with_effective([facet])}SELECT DISTINCT {unit}, e.label FROM eff AS e "
        "JOIN passages AS p ON p.id = e.passage_id",
        columns=("unit", "label"),
    )
    if rows.empty:
        return pd.DataFrame()
    # One row per passage (or review), one column per label: the pairs are a matrix product, which stays
    # fast where a self-join of the tags would not.
    carries = pd.crosstab(rows["unit"], rows["label"]).clip(upper=1)
    return (carries.T @ carries).rename_axis(index="label", columns="other")


def co_occurring(
    session: Session, label: str, facet: str = THEME_FACET, filters: Filters | None = None
) -> pd.DataFrame:
    """Labels that share passages with `label`: `passages` in common, `reviews` in common, and `share` =
    the part of `label`'s passages that also carry the other label. Most shared first."""
    where, params = scoped(filters)
    frame = run(
        session,
        f"{with_effective([facet])}SELECT b.label, count(DISTINCT a.passage_id), count(DISTINCT p.review_id) "
        "FROM eff AS a JOIN eff AS b ON b.passage_id = a.passage_id AND b.label <> a.label "
        "JOIN passages AS p ON p.id = a.passage_id JOIN reviews AS r ON r.id = p.review_id "
        f"WHERE a.label = :label AND {where} GROUP BY b.label",
        {**params, "label": label},
        ("label", "passages", "reviews"),
    )
    own = passages_with(session, label, facet, filters)
    frame["share"] = frame["passages"] / own if own else 0.0
    return frame.sort_values(["passages", "label"], ascending=[False, True]).reset_index(drop=True)


def passages_with(session: Session, label: str, facet: str = THEME_FACET, filters: Filters | None = None) -> int:
    where, params = scoped(filters)
    return int(
        session.execute(
            text(
                f"{with_effective([facet])}SELECT count(DISTINCT e.passage_id) FROM eff AS e "
                "JOIN passages AS p ON p.id = e.passage_id JOIN reviews AS r ON r.id = p.review_id "
                f"WHERE e.label = :label AND {where}"
            ),
            {**params, "label": label},
        ).scalar_one()
    )


@dataclass
class ThemeDetail:
    """Everything the Themes page shows about one theme."""

    label: str
    facet: str
    passages: int
    reviews: int
    by_type: pd.DataFrame  # review_type, count, total, share (share of reviews of that type)
    by_year: pd.DataFrame  # year, count, total, share
    co_occurring: pd.DataFrame  # label, passages, reviews, share
    strongest: PassagePage  # by tag score
    missed_opportunities: PassagePage
    recommendations: PassagePage
    filters: Filters = field(default_factory=Filters)

    @property
    def empty(self) -> bool:
        return self.passages == 0


def theme_detail(
    session: Session, label: str, facet: str = THEME_FACET, filters: Filters | None = None, limit: int = 10
) -> ThemeDetail:
    """One theme: its prevalence by review type and year, the themes it occurs with, its strongest passages,
    the missed opportunities and the recommendations that carry it."""
    matrix = theme_matrix(session, facet, "reviews", [label], filters)
    by_type = matrix[matrix["label"] == label].drop(columns="label").reset_index(drop=True)
    overall = by_type[by_type["review_type"] == ALL_TYPES]
    behind = figure_filters(label=label, facet=facet, base=filters)
    evidence = replace(behind, section=None)
    return ThemeDetail(
        label=label,
        facet=facet,
        passages=passages_with(session, label, facet, filters),
        reviews=int(overall["count"].iloc[0]) if not overall.empty else 0,
        by_type=by_type[by_type["review_type"] != ALL_TYPES].reset_index(drop=True),
        by_year=theme_trends(session, [label], facet, "reviews", filters).drop(columns="label"),
        co_occurring=co_occurring(session, label, facet, filters),
        strongest=strongest_passages(session, evidence, limit),
        missed_opportunities=passages_behind(session, replace(evidence, missed_only=True), limit),
        recommendations=passages_behind(session, replace(evidence, section=RECOMMENDATIONS_SECTION), limit),
        filters=behind,
    )


def strongest_passages(session: Session, filters: Filters, limit: int = 10) -> PassagePage:
    """The passages `filters` select with the highest theme scores, headings left out."""
    page = passages_behind(session, filters, limit=limit * 2 + 5, order="score")
    rows = page.rows[~page.rows["kind"].isin(NOT_EVIDENCE_KINDS)].head(limit).reset_index(drop=True)
    return PassagePage(page.total, rows, filters)


# --- one review, as the reader shows it -----------------------------------------------------------


def review_passages(session: Session, review_id: int, limit: int = 200, offset: int = 0) -> PassagePage:
    """One review's passages in reading order, with their effective labels."""
    sql = (
        f"SELECT {passage_select()} FROM passages AS p JOIN reviews AS r ON r.id = p.review_id "
        "WHERE p.review_id = :review ORDER BY p.ordinal LIMIT :limit OFFSET :offset"
    )
    rows = run(session, sql, {"review": review_id, "limit": limit, "offset": offset}, PASSAGE_COLUMNS)
    total = session.execute(text("SELECT count(*) FROM passages WHERE review_id = :r"), {"r": review_id}).scalar_one()
    return PassagePage(int(total), with_labels(session, rows))


REVIEW_FIELDS = (
    "id",
    "sha256",
    "filename",
    "review_type",
    "subtype",
    "title",
    "subject",
    "year",
    "month",
    "area",
    "commissioner",
    "executive_summary",
    "page_count",
    "status",
    "warnings",
    "metadata_sources",
    "unknown_reasons",
    "extraction_backend",
    "pipeline_version",
    "ingested_at",
)


def review_list(session: Session) -> pd.DataFrame:
    """Every review for a picker: id, type, year, title, subject, area, and its citation, newest first."""
    frame = run(
        session,
        "SELECT id, review_type, subtype, year, title, subject, area, commissioner, executive_summary FROM reviews "
        "ORDER BY coalesce(year, 0) DESC, review_type, title",
        columns=(
            "review_id",
            *REVIEW_FIELDS[3:5],
            "year",
            "title",
            "subject",
            "area",
            "commissioner",
            "executive_summary",
        ),
    )
    frame["citation"] = [review_citation(as_review(row)) for row in frame.to_dict("records")]
    return frame


def review_summary(session: Session, review_id: int) -> dict[str, Any] | None:
    """One review's metadata (not its text) with its citation, or None when it is not in the repository."""
    from vkpp_learning.db import models

    review = session.get(models.Review, review_id)
    if review is None:
        return None
    values = {name: getattr(review, name) for name in REVIEW_FIELDS}
    values["citation"] = review_citation(review)
    values["passages"] = int(
        session.execute(text("SELECT count(*) FROM passages WHERE review_id = :r"), {"r": review_id}).scalar_one()
    )
    return values


def as_review(row: Mapping[str, Any]) -> SimpleNamespace:
    fields = {name: known_or_none(row.get(name)) for name in CITED_REVIEW_FIELDS}
    fields["year"] = int(fields["year"]) if fields["year"] is not None else None
    fields["executive_summary"] = bool(fields["executive_summary"])
    return SimpleNamespace(**fields)


def passage_position(session: Session, passage_id: int) -> tuple[int, int] | None:
    """(review id, 0-based position in reading order) of a passage; None when it is not in the repository."""
    row = session.execute(
        text(
            "SELECT p.review_id, (SELECT count(*) FROM passages AS q WHERE q.review_id = p.review_id "
            "AND q.ordinal < p.ordinal) FROM passages AS p WHERE p.id = :id"
        ),
        {"id": passage_id},
    ).first()
    return (int(row[0]), int(row[1])) if row else None


def passage_position_of_ordinal(session: Session, review_id: int, ordinal: int) -> int:
    """The 0-based reading-order position of the passage with this ordinal in a review."""
    return int(
        session.execute(
            text("SELECT count(*) FROM passages WHERE review_id = :review AND ordinal < :ordinal"),
            {"review": review_id, "ordinal": ordinal},
        ).scalar_one()
    )


def review_recommendations(session: Session, review_id: int, limit: int = 200) -> PassagePage:
    """A review's recommendations: the passages of its recommendations section, headings left out."""
    sql = (
        f"SELECT {passage_select()} FROM passages AS p JOIN reviews AS r ON r.id = p.review_id "
        "WHERE p.review_id = :review AND p.section_kind = :section AND p.kind <> 'heading' "
        "ORDER BY p.ordinal LIMIT :limit"
    )
    params = {"review": review_id, "section": RECOMMENDATIONS_SECTION, "limit": limit}
    rows = run(session, sql, params, PASSAGE_COLUMNS)
    return PassagePage(len(rows), with_labels(session, rows), Filters(section=RECOMMENDATIONS_SECTION))


def review_sections(session: Session, review_id: int) -> pd.DataFrame:
    """The review's sections in order: section heading, kind, first passage position, passages."""
    return run(
        session,
        "SELECT p.section, p.section_kind, min(p.ordinal) AS first, count(*) FROM passages AS p "
        "WHERE p.review_id = :review GROUP BY p.section, p.section_kind ORDER BY first",
        {"review": review_id},
        ("section", "section_kind", "first_ordinal", "passages"),
    )


# --- links: filters to and from URL query parameters ----------------------------------------------

LINK_DISPLAY = r"#(.*)$"
PARAM_LISTS = {"type": "review_types", "theme": "themes", "vuln": "vulnerabilities", "agency": "agencies"}


def filters_to_params(filters: Filters, query: str = "", mode: str | None = None) -> dict[str, str | list[str]]:
    """URL query parameters that reproduce a search: `q`, `mode`, repeated `type`/`theme`/`vuln`/`agency`,
    `section`, `from`, `to`, `missed`, `police`. Empty values are left out."""
    params: dict[str, str | list[str]] = {}
    if query.strip():
        params["q"] = query.strip()
    if mode:
        params["mode"] = mode
    for name, attribute in PARAM_LISTS.items():
        values = list(getattr(filters, attribute))
        if values:
            params[name] = values[0] if len(values) == 1 else values
    if filters.section:
        params["section"] = filters.section
    if filters.year_from is not None:
        params["from"] = str(filters.year_from)
    if filters.year_to is not None:
        params["to"] = str(filters.year_to)
    if filters.missed_only:
        params["missed"] = "true"
    if filters.police_only:
        params["police"] = "true"
    return params


def filters_as_log(filters: Filters) -> dict[str, Any]:
    """The filters that are set, by name, as a basket's search log records them."""
    values = {name: getattr(filters, name) for name in filters.__dataclass_fields__}
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items() if value}


def passages_link(filters: Filters, shown: str, page: str = "search") -> str:
    """A relative link to the app page listing the passages `filters` select, ending in `#shown`: tables
    display the part after '#' (LINK_DISPLAY) as the number, and a click opens the passages behind it."""
    query = urlencode(filters_to_params(filters), doseq=True)
    return f"{page}?{query}#{shown}" if query else f"{page}#{shown}"


def filters_of_link(link: str) -> Filters:
    """The Filters in a `passages_link` (for checking that a number opens onto its own passages)."""
    query = urlsplit(link).query
    return filters_from_params(parse_qs(query, keep_blank_values=False))


def filters_from_params(params: Mapping[str, str | Sequence[str]]) -> Filters:
    """The Filters in URL query parameters (the inverse of `filters_to_params`); bad years are ignored."""

    def many(name: str) -> tuple[str, ...]:
        value = params.get(name, ())
        values = [value] if isinstance(value, str) else list(value)
        return tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))

    def one(name: str) -> str | None:
        found = many(name)
        return found[-1] if found else None

    return Filters(
        review_types=many("type"),
        themes=many("theme"),
        vulnerabilities=many("vuln"),
        agencies=many("agency"),
        section=one("section"),
        year_from=as_year(one("from")),
        year_to=as_year(one("to")),
        missed_only=is_true(one("missed")),
        police_only=is_true(one("police")),
    )


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def as_year(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        year = int(value)
    except ValueError:
        return None
    return year if 1900 <= year <= 2200 else None


def describe_filters(filters: Filters, names: Mapping[str, str] | None = None) -> str:
    """The filters in words, e.g. "DHR; theme: Risk assessment; 2021-2023; missed opportunities only"."""
    names = names or {}

    def named(values: Iterable[str]) -> str:
        return ", ".join(names.get(value, value) for value in values)

    parts = []
    if filters.review_types:
        parts.append(", ".join(filters.review_types))
    for label, values in (("theme", filters.themes), ("vulnerability", filters.vulnerabilities)):
        if values:
            parts.append(f"{label}: {named(values)}")
    if filters.agencies:
        parts.append(f"agency: {named(filters.agencies)}")
    if filters.year_from is not None or filters.year_to is not None:
        parts.append(year_range(filters.year_from, filters.year_to))
    if filters.section:
        parts.append(f"section: {filters.section}")
    if filters.missed_only:
        parts.append("missed opportunities only")
    if filters.police_only:
        parts.append("police-relevant only")
    return "; ".join(parts) or "no filters"


def year_range(start: int | None, end: int | None) -> str:
    if start is not None and start == end:
        return str(start)
    if start is not None and end is not None:
        return f"{start}-{end}"
    return f"from {start}" if start is not None else f"to {end}"
