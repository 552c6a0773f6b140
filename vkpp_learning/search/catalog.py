"""What every passage is, as numpy arrays indexed by passage id: its review's type and year, its section kind
and its effective tags. A search filter becomes a few array ANDs instead of an SQL query returning many ids.
Cached per process and database; rebuilt when the search generation counters (migrations 0002, 0005) move.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text

from vkpp_learning.search.filters import Filters

PASSAGES, TAGS, ANNOTATIONS = 1, 2, 3  # rows of search_generation
NO_YEAR = np.iinfo(np.int32).min
KEEP_DECISIONS = ("add", "confirm")
FILTER_CACHE = 64  # filter masks kept per catalog: a page, the next page and the facets share one
_CACHE: dict[str, Catalog] = {}
_LOCK = threading.RLock()


def generations(session: Any) -> dict[int, int]:
    rows = session.execute(text("SELECT id, value FROM search_generation"))
    return {int(row_id): int(value) for row_id, value in rows}


def id_list_sql(dialect: str, column: str) -> str:
    """An aggregate of `column` as one comma-separated string: one row back instead of one per id."""
    if dialect == "postgresql":
        return f"string_agg(({column})::text, ',')"
    return f"group_concat({column})"


def parse_ids(value: str | None) -> np.ndarray:
    return np.fromstring(value, dtype=np.int64, sep=",") if value else np.zeros(0, dtype=np.int64)


@dataclass
class Labels:
    """The effective masks of one tag facet's labels: machine tags of current runs, overruled by the latest
    analyst decision on each (passage, label)."""

    machine: dict[str, np.ndarray] = field(default_factory=dict)
    complete: bool = False  # every label of the facet is in `machine`
    annotations: int = -1  # the annotations generation `decisions` was read at
    decisions: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # label -> (ids, keep)
    effective: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Catalog:
    """Per-passage arrays (index = passage id) for one database at given generations."""

    passages: int  # generation of passages and embeddings
    tags: int  # generation of tags, tag runs and review metadata
    exists: np.ndarray
    review_of: np.ndarray
    type_of: np.ndarray  # index into `types`
    year_of: np.ndarray  # NO_YEAR when unknown
    section_of: np.ndarray  # index into `sections`
    types: list[str]
    sections: list[str]
    facets: dict[str, Labels] = field(default_factory=dict)
    filters: OrderedDict[tuple[Filters, int], np.ndarray | None] = field(default_factory=OrderedDict)

    @property
    def size(self) -> int:
        return len(self.exists)

    def section_of_passage(self, passage_id: int) -> str | None:
        code = int(self.section_of[passage_id]) if 0 <= passage_id < self.size else -1
        return self.sections[code] if code >= 0 else None

    def by_id(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask over passage ids with `ids` set."""
        mask = np.zeros(self.size, dtype=bool)
        mask[ids[ids < self.size]] = True
        return mask


def catalog(session: Any) -> Catalog:
    """The cached catalog for this database, rebuilt when passages, tags or review metadata changed."""
    key = repr(session.get_bind().url)
    current = generations(session)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is None or (cached.passages, cached.tags) != (current[PASSAGES], current[TAGS]):
            cached = _CACHE[key] = load_catalog(session, current)
        return cached


def load_catalog(session: Any, current: dict[int, int]) -> Catalog:
    dialect = session.get_bind().dialect.name
    ids_sql, reviews_sql = id_list_sql(dialect, "id"), id_list_sql(dialect, "review_id")
    row = session.execute(text(f"SELECT {ids_sql}, {reviews_sql}, max(id) FROM passages")).one()
    ids, review_ids = parse_ids(row[0]), parse_ids(row[1])
    size = int(row[2] or 0) + 1
    exists = np.zeros(size, dtype=bool)
    exists[ids] = True
    review_of = np.zeros(size, dtype=np.int64)
    review_of[ids] = review_ids
    types, type_of, year_of = review_arrays(session, review_of)
    sections, section_of = section_arrays(session, dialect, size)
    return Catalog(current[PASSAGES], current[TAGS], exists, review_of, type_of, year_of, section_of, types, sections)


def review_arrays(session: Any, review_of: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Review type (as a code) and year of each passage, through its review."""
    rows = session.execute(text("SELECT id, review_type, year FROM reviews")).all()
    top = max([int(r.id) for r in rows], default=0) + 1
    types = sorted({str(r.review_type) for r in rows})
    type_codes, years = np.full(top, -1, dtype=np.int16), np.full(top, NO_YEAR, dtype=np.int32)
    for review in rows:
        type_codes[review.id] = types.index(str(review.review_type))
        years[review.id] = NO_YEAR if review.year is None else int(review.year)
    safe = np.minimum(review_of, top - 1)
    return types, type_codes[safe], years[safe]


def section_arrays(session: Any, dialect: str, size: int) -> tuple[list[str], np.ndarray]:
    sql = f"SELECT section_kind, {id_list_sql(dialect, 'id')} FROM passages GROUP BY section_kind"
    groups = [(str(kind), parse_ids(ids)) for kind, ids in session.execute(text(sql))]
    section_of = np.full(size, -1, dtype=np.int16)
    for code, (_kind, ids) in enumerate(groups):
        section_of[ids] = code
    return [kind for kind, _ in groups], section_of


# Filters ---------------------------------------------------------------------------------------


def allowed(session: Any, filters: Filters) -> np.ndarray | None:
    """The passages the filters allow, as a boolean mask by passage id; None when nothing is filtered."""
    if filters.empty:
        return None
    found = catalog(session)
    annotations = generations(session)[ANNOTATIONS] if filters.tag_conditions else -1
    key = (filters, annotations)
    with _LOCK:
        if key not in found.filters:
            found.filters[key] = filter_mask(session, found, filters)
            while len(found.filters) > FILTER_CACHE:
                found.filters.popitem(last=False)
        return found.filters[key]


def filter_mask(session: Any, found: Catalog, filters: Filters) -> np.ndarray:
    mask = found.exists.copy()
    if filters.review_types:
        codes = [found.types.index(kind) for kind in filters.review_types if kind in found.types]
        mask &= np.isin(found.type_of, codes)
    if filters.year_from is not None:
        mask &= found.year_of >= int(filters.year_from)
    if filters.year_to is not None:
        mask &= (found.year_of <= int(filters.year_to)) & (found.year_of != NO_YEAR)
    if filters.section:
        code = found.sections.index(filters.section) if filters.section in found.sections else -2
        mask &= found.section_of == code
    for facet, labels in filters.tag_conditions:
        mask &= any_label(session, found, facet, labels)
    return mask


def any_label(session: Any, found: Catalog, facet: str, labels: Iterable[str]) -> np.ndarray:
    """Passages effectively tagged with at least one of `labels` in `facet`."""
    masks = effective_masks(session, found, facet, tuple(labels))
    result = np.zeros(found.size, dtype=bool)
    for mask in masks.values():
        result |= mask
    return result


# Tags ------------------------------------------------------------------------------------------


def effective_masks(session: Any, found: Catalog, facet: str, labels: tuple[str, ...] | None) -> dict[str, np.ndarray]:
    """Effective masks of the given labels of a facet (every label it has when `labels` is None)."""
    with _LOCK:
        state = found.facets.setdefault(facet, Labels())
        refresh_decisions(session, state, facet)
        if labels is None:
            load_machine_facet(session, found, state, facet)
            labels = tuple(sorted(set(state.machine) | set(state.decisions)))
        for label in labels:
            if label not in state.effective:
                state.effective[label] = effective_mask(session, found, state, facet, label)
        return {label: state.effective[label] for label in labels}


def effective_mask(session: Any, found: Catalog, state: Labels, facet: str, label: str) -> np.ndarray:
    if label not in state.machine:
        state.machine[label] = found.by_id(machine_ids(session, facet, (label,)).get(label, np.zeros(0, np.int64)))
    mask = state.machine[label].copy()
    ids, keep = state.decisions.get(label, (np.zeros(0, np.int64), np.zeros(0, bool)))
    inside = ids < found.size
    mask[ids[inside]] = keep[inside]
    return mask


def load_machine_facet(session: Any, found: Catalog, state: Labels, facet: str) -> None:
    if not state.complete:
        for label, ids in machine_ids(session, facet, None).items():
            state.machine[label] = found.by_id(ids)
        state.complete = True


def machine_ids(session: Any, facet: str, labels: tuple[str, ...] | None) -> dict[str, np.ndarray]:
    """Passage ids per label of the current tag runs' tags (one scan of the facet's tags)."""
    runs = [int(r[0]) for r in session.execute(text("SELECT id FROM tag_runs WHERE is_current = true"))]
    if not runs:
        return {}
    dialect = session.get_bind().dialect.name
    params: dict[str, Any] = {"facet": facet, **{f"run{i}": run for i, run in enumerate(runs)}}
    sql = (
        f"SELECT label, {id_list_sql(dialect, 'passage_id')} FROM tags WHERE facet = :facet "
        f"AND run_id IN ({', '.join(f':run{i}' for i in range(len(runs)))})"
    )
    if labels is not None:
        params.update({f"label{i}": label for i, label in enumerate(labels)})
        sql += f" AND label IN ({', '.join(f':label{i}' for i in range(len(labels)))})"
    return {str(label): parse_ids(ids) for label, ids in session.execute(text(sql + " GROUP BY label"), params)}


def refresh_decisions(session: Any, state: Labels, facet: str) -> None:
    """Re-read the latest analyst decision per (passage, label) of the facet when annotations changed."""
    current = generations(session)[ANNOTATIONS]
    if state.annotations == current:
        return
    sql = (
        "SELECT a.label, a.passage_id, a.decision FROM annotations AS a WHERE a.facet = :facet AND a.id = "
        "(SELECT max(l.id) FROM annotations AS l WHERE l.passage_id = a.passage_id AND l.facet = a.facet "
        "AND l.label = a.label)"
    )
    grouped: dict[str, list[tuple[int, bool]]] = {}
    for label, passage_id, decision in session.execute(text(sql), {"facet": facet}):
        grouped.setdefault(str(label), []).append((int(passage_id), decision in KEEP_DECISIONS))
    state.decisions = {
        label: (np.asarray([p for p, _ in rows], dtype=np.int64), np.asarray([k for _, k in rows], dtype=bool))
        for label, rows in grouped.items()
    }
    state.annotations, state.effective = current, {}
