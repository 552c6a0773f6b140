"""Search filters and the SQL that applies them inside every candidate query, before ranking.

Pure functions: each returns an SQL condition over `p` (passages) and `r` (reviews) with bound parameters.
Tag filters use the effective tags: the current tag runs' tags, overruled by analysts' latest annotation
(an 'add' or 'confirm' counts, a 'reject' removes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Filter name -> tag facet (records.FACETS); binary facets carry the label "true".
THEME_FACET = "practice"
VULNERABILITY_FACET = "vulnerability"
AGENCY_FACET = "agency"
MISSED_FACET = "missed_opportunity"
POLICE_FACET = "police_relevant"
# The latest analyst decision on a tag wins; a machine tag with no decision stands.
LATEST_DECISION = (
    "(SELECT l.decision FROM annotations AS l WHERE l.passage_id = e.passage_id AND l.facet = e.facet "
    "AND l.label = e.label ORDER BY l.id DESC LIMIT 1)"
)
KEEP = f"(({LATEST_DECISION} IS NULL AND e.machine = 1) OR {LATEST_DECISION} IN ('add', 'confirm'))"


@dataclass(frozen=True)
class Filters:
    """What an analyst narrows a search to. Empty tuples and None mean no restriction."""

    review_types: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    vulnerabilities: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    section: str | None = None  # a section kind: "analysis", "recommendations", ...
    year_from: int | None = None
    year_to: int | None = None
    missed_only: bool = False
    police_only: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Filters:
        """Filters from JSON-like data: {"type": ["DHR"], "theme": [...], "year_from": 2021, ...}."""
        values = values or {}

        def many(*keys: str) -> tuple[str, ...]:
            found = next((values[key] for key in keys if key in values), ())
            return (found,) if isinstance(found, str) else tuple(found)

        return cls(
            review_types=many("review_types", "type", "types"),
            themes=many("themes", "theme"),
            vulnerabilities=many("vulnerabilities", "vulnerability"),
            agencies=many("agencies", "agency"),
            section=values.get("section"),
            year_from=values.get("year_from"),
            year_to=values.get("year_to"),
            missed_only=bool(values.get("missed_only", False)),
            police_only=bool(values.get("police_only", False)),
        )

    @property
    def tag_conditions(self) -> list[tuple[str, tuple[str, ...]]]:
        """(facet, labels) pairs a passage must carry one label of each."""
        pairs = [
            (THEME_FACET, self.themes),
            (VULNERABILITY_FACET, self.vulnerabilities),
            (AGENCY_FACET, self.agencies),
            (MISSED_FACET, ("true",) if self.missed_only else ()),
            (POLICE_FACET, ("true",) if self.police_only else ()),
        ]
        return [(facet, labels) for facet, labels in pairs if labels]

    @property
    def on_reviews(self) -> bool:
        return bool(self.review_types) or self.year_from is not None or self.year_to is not None

    @property
    def empty(self) -> bool:
        return not (self.on_reviews or self.section or self.tag_conditions)


@dataclass
class Condition:
    """An SQL condition with its bound parameters; parameter names are ours, values are user data."""

    sql: str = "1 = 1"
    params: dict[str, Any] = field(default_factory=dict)


def review_condition(filters: Filters) -> Condition:
    """Conditions on the review (`r`): type, year range."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if filters.review_types:
        parts.append(f"r.review_type IN ({_bind(params, 'f_type', filters.review_types)})")
    if filters.year_from is not None:
        parts.append("r.year >= :f_year_from")
        params["f_year_from"] = int(filters.year_from)
    if filters.year_to is not None:
        parts.append("r.year <= :f_year_to")
        params["f_year_to"] = int(filters.year_to)
    return Condition(" AND ".join(parts) or "1 = 1", params)


def passage_condition(filters: Filters) -> Condition:
    """Conditions on the passage (`p`): section kind, and its effective tags."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if filters.section:
        parts.append("p.section_kind = :f_section")
        params["f_section"] = filters.section
    for number, (facet, labels) in enumerate(filters.tag_conditions):
        parts.append(has_tag_sql(f"f_tag{number}", facet, labels, params))
    return Condition(" AND ".join(parts) or "1 = 1", params)


def filter_condition(filters: Filters) -> Condition:
    """Every filter, over `p` joined to `r`."""
    reviews, passages = review_condition(filters), passage_condition(filters)
    return Condition(f"({reviews.sql}) AND ({passages.sql})", {**reviews.params, **passages.params})


def has_tag_sql(name: str, facet: str, labels: tuple[str, ...], params: dict[str, Any]) -> str:
    """True when passage `p` effectively carries `facet` with one of `labels`."""
    params[f"{name}_facet"] = facet
    candidates = effective_tags_sql(f":{name}_facet", _bind(params, f"{name}_label", labels))
    # An uncorrelated IN: the database builds the tagged set once instead of once per candidate passage.
    return f"p.id IN ({candidates})"


def effective_tags_sql(facet: str, labels: str) -> str:
    """SELECT of `passage_id`s effectively tagged: machine tags of current runs that no analyst has decided on,
    and tags whose latest annotation on that passage, facet and label adds or confirms them."""
    machine = (
        "SELECT t.passage_id FROM tags AS t JOIN tag_runs AS tr ON tr.id = t.run_id "
        f"WHERE tr.is_current = true AND t.facet = {facet} AND t.label IN ({labels}) AND NOT EXISTS "
        "(SELECT 1 FROM annotations AS n WHERE n.passage_id = t.passage_id AND n.facet = t.facet "
        "AND n.label = t.label)"
    )
    decided = (
        "SELECT a.passage_id FROM annotations AS a "
        f"WHERE a.facet = {facet} AND a.label IN ({labels}) AND a.decision IN ('add', 'confirm') AND a.id = "
        "(SELECT max(l.id) FROM annotations AS l WHERE l.passage_id = a.passage_id AND l.facet = a.facet "
        "AND l.label = a.label)"
    )
    return f"{machine} UNION ALL {decided}"


def passage_tags_sql(facet_param: str, ids_param: str) -> str:
    """Effective (passage_id, label) pairs of one facet for a list of passages (for result cards)."""
    machine = (
        "SELECT t.passage_id, t.facet, t.label, 1 AS machine, t.score FROM tags AS t "
        "JOIN tag_runs AS tr ON tr.id = t.run_id "
        f"WHERE tr.is_current = true AND t.facet = :{facet_param} AND t.passage_id IN :{ids_param}"
    )
    annotated = (
        "SELECT a.passage_id, a.facet, a.label, 0 AS machine, 1.0 AS score FROM annotations AS a "
        f"WHERE a.facet = :{facet_param} AND a.passage_id IN :{ids_param}"
    )
    return (
        f"SELECT e.passage_id, e.label, max(e.score) AS score FROM ({machine} UNION ALL {annotated}) AS e "
        f"WHERE {KEEP} GROUP BY e.passage_id, e.label ORDER BY e.passage_id, score DESC"
    )


def _bind(params: dict[str, Any], name: str, values: tuple[Any, ...]) -> str:
    """Bind each value under its own name and return the placeholders, e.g. ':f_type0, :f_type1'."""
    placeholders = []
    for index, value in enumerate(values):
        params[f"{name}{index}"] = value
        placeholders.append(f":{name}{index}")
    return ", ".join(placeholders)
