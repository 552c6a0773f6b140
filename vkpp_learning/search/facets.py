"""Facet counts for the current query: how its matches split by review type, year, theme, agency and
missed opportunity, so the app can show its filters with numbers. Counted on the catalog's arrays."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text

from vkpp_learning.search import catalog
from vkpp_learning.search.filters import AGENCY_FACET, MISSED_FACET, THEME_FACET, passage_tags_sql

FACET_NAMES = ("review_type", "year", "theme", "agency", "missed_opportunity")
FACET_LABELS = (THEME_FACET, AGENCY_FACET, MISSED_FACET)  # tag facets counted label by label


def effective_labels(session: Any, facet: str, passage_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each passage's effective labels of one facet (current tag runs and analysts' decisions), best first."""
    labels: dict[int, list[str]] = {}
    if not passage_ids:
        return labels
    statement = text(passage_tags_sql("facet", "ids")).bindparams(bindparam("ids", expanding=True))
    for passage_id, label, _score in session.execute(statement, {"facet": facet, "ids": list(passage_ids)}):
        labels.setdefault(int(passage_id), []).append(label)
    return labels


def count_facets(session: Any, passage_ids: Sequence[int] | np.ndarray) -> dict[str, dict[str, int]]:
    """Counts of passages per value of each facet, over the given passages (catalog masks: no SQL per id)."""
    found = catalog.catalog(session)
    ids = np.unique(np.asarray(passage_ids, dtype=np.int64))
    ids = ids[ids < found.size]
    ids = ids[found.exists[ids]]
    chosen = found.by_id(ids)
    values, counts = np.unique(found.year_of[ids], return_counts=True)
    years = {"unknown" if v == catalog.NO_YEAR else str(v): int(n) for v, n in zip(values, counts, strict=True)}
    codes = found.type_of[ids]
    types = Counter({found.types[code]: int(n) for code, n in enumerate(np.bincount(codes[codes >= 0])) if n})
    missed = _label_counts(session, found, MISSED_FACET, chosen).get("true", 0)
    return {
        "review_type": dict(types.most_common()),
        "year": dict(sorted(years.items())),
        "theme": _label_counts(session, found, THEME_FACET, chosen),
        "agency": _label_counts(session, found, AGENCY_FACET, chosen),
        "missed_opportunity": {"true": missed, "false": len(ids) - missed},
    }


def _label_counts(session: Any, found: catalog.Catalog, facet: str, chosen: np.ndarray) -> dict[str, int]:
    masks = catalog.effective_masks(session, found, facet, None)
    counts = Counter({label: int(np.count_nonzero(mask & chosen)) for label, mask in masks.items()})
    return {label: count for label, count in counts.most_common() if count}
