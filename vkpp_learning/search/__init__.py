"""Search over passages: keyword (BM25), semantic (embeddings) and hybrid, with filters, facets and highlights.

Importing this package is light (the store imports its index module); the facade loads on first use.
"""

from __future__ import annotations

from typing import Any

_FACADE = ("search", "more_like_this", "facets", "prepare", "SearchPage", "SearchResult", "MODES")
__all__ = [*_FACADE, "Filters"]


def __getattr__(name: str) -> Any:
    if name in _FACADE:
        from vkpp_learning.search import facade

        return getattr(facade, name)
    if name == "Filters":
        from vkpp_learning.search.filters import Filters

        return Filters
    raise AttributeError(name)
