"""The web app's pages: each renders from library calls; app.py only routes between them.

`page(name)` gives the st.Page of a page by its URL path, so any page can link to another with query
parameters; `navigation_pages()` is the list app.py hands to st.navigation.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PageSpec:
    name: str  # the URL path, e.g. "search"
    title: str
    icon: str
    module: str  # a module in this package with a `render()` function


PAGES = (
    PageSpec("overview", "Overview", ":material/dashboard:", "overview"),
    PageSpec("search", "Search", ":material/search:", "search"),
    PageSpec("themes", "Themes", ":material/category:", "themes"),
    PageSpec("missed", "Missed opportunities", ":material/report:", "missed"),
    PageSpec("topics", "Topics", ":material/bubble_chart:", "topics"),
    PageSpec("reader", "Review reader", ":material/menu_book:", "reader"),
    PageSpec("annotate", "Annotate", ":material/rule:", "annotate"),
    PageSpec("basket", "Basket and export", ":material/shopping_basket:", "basket"),
    PageSpec("ingest", "Ingest", ":material/upload_file:", "ingest"),
)
DEFAULT_PAGE = "overview"
_BY_NAME = {spec.name: spec for spec in PAGES}


def page(name: str, default: str = DEFAULT_PAGE) -> Any:
    """The st.Page for a page name (its URL path). Pages are known by URL path, so a fresh st.Page made
    here links to the one st.navigation registered."""
    import streamlit as st

    spec = _BY_NAME[name]
    module = importlib.import_module(f"{__name__}.{spec.module}")
    return st.Page(module.render, title=spec.title, icon=spec.icon, url_path=spec.name, default=name == default)


def navigation_pages(default: str = DEFAULT_PAGE) -> list[Any]:
    """Every page in menu order; `default` is the one shown at the app's root URL."""
    return [page(spec.name, default) for spec in PAGES]
