"""What every page shares: the database, the signed-in user, cached figures, taxonomy names, links
between pages with their filters in the URL, and passages shown safely as text with their citations."""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from vkpp_learning import analytics, settings
from vkpp_learning.app_pages import page
from vkpp_learning.db import Database, open_database
from vkpp_learning.errors import ConfigurationError, VkppError
from vkpp_learning.roles import Role, User, can, resolve_user
from vkpp_learning.search.filters import Filters
from vkpp_learning.ui_safety import escape_markdown, preview, safe_highlight

CACHE_TTL_SECONDS = 60
LOCAL_MODE_NOTE = "Single-user local mode: no login configured"
EMPTY_REPOSITORY = (
    "The repository is empty. Add review PDFs on the **Ingest** page or with `vkpp ingest PATH` "
    "(for the samples: `vkpp ingest corpus_samples/`), then reload this page."
)
NO_TAGS = (
    "No passage is tagged yet, so there are no theme figures. Tag the repository with the taggers "
    "(see the README), then reload this page."
)
FACET_TITLES = {
    "practice": "Practice theme",
    "vulnerability": "Vulnerability",
    "agency": "Agency",
    "missed_opportunity": "Missed opportunity",
    "police_relevant": "Police relevant",
    "recommendation_to": "Recommendation to",
}
log = logging.getLogger(__name__)


# --- the database ---------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def open_db(url: str) -> Database:
    """One Database (engine and connection pool) per URL for the whole server process.

    A database whose schema is already stamped opens without loading Alembic (`vkpp app` brings it to the
    head before starting the server), so the first page shows sooner; `check_schema` confirms the revision
    once the page is drawn. An unstamped (new) database is created and migrated here."""
    db = open_database(url, upgrade=False)
    if schema_revision(db) is not None:
        return db
    db.dispose()
    return open_database(url)


def schema_revision(db: Database) -> str | None:
    """The Alembic revision stamped in the database, read with plain SQL; None for a new database."""
    try:
        with db.engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


@st.cache_resource(show_spinner=False)
def _schema_check(url: str) -> dict[str, bool]:
    """Bring the schema to the head once per server process; {"changed": True} when that changed it."""
    from vkpp_learning.db.engine import migrate

    db = open_db(url)
    before = schema_revision(db)
    migrate(url)
    return {"changed": schema_revision(db) != before}


def check_schema() -> None:
    """After a page is drawn: upgrade a database stamped with an older schema, and draw the page again
    (once: the flag is taken when acted on)."""
    if _schema_check(database_url()).pop("changed", False):
        figures_changed()
        st.rerun()


def database_url() -> str:
    return settings.get("VKPP_DATABASE_URL")


def db() -> Database:
    return open_db(database_url())


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _figure(url: str, module: str, name: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    with open_db(url).session() as session:
        return getattr(importlib.import_module(module), name)(session, *args, **dict(kwargs))


def figure(name: str, *args: Any, module: str = "vkpp_learning.analytics", **kwargs: Any) -> Any:
    """<module>.<name>(session, *args, **kwargs) (analytics by default), cached for a minute and cleared by
    any write made through the app."""
    return _figure(database_url(), module, name, args, tuple(sorted(kwargs.items())))


def figures_changed() -> None:
    """Call after a write: every cached figure is recomputed on its next use."""
    _figure.clear()


def write(action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a library write in one transaction (committed at the end, rolled back on error), then refresh
    figures. The library checks the user's role; a refusal is shown as a message, never a traceback."""
    with db().writing() as session:
        result = action(session, *args, **kwargs)
    figures_changed()
    return result


# --- errors ---------------------------------------------------------------------------------------


def guarded(render: Callable[[], None]) -> Callable[[], None]:
    """A page body that shows errors as messages: the user's own problem as a clear message, a database
    problem as what to check, anything else as a short error with the details in the server log."""

    @functools.wraps(render)
    def run() -> None:
        try:
            render()
            check_schema()
        except VkppError as exc:
            st.error(exc.message)
        except SQLAlchemyError as exc:
            log.exception("database error on a page")
            st.error(f"The database could not answer: {getattr(exc, 'orig', None) or exc}. Check VKPP_DATABASE_URL.")
        except Exception as exc:  # st.stop and st.rerun are BaseExceptions and pass through
            log.exception("unexpected error on a page")
            st.error(f"Something went wrong on this page ({type(exc).__name__}: {exc}). The details are in the log.")

    return run


# --- the user -------------------------------------------------------------------------------------


def login_configured() -> bool:
    """Whether Streamlit's OIDC login is set up (an [auth] section in the secrets)."""
    try:
        return bool(st.secrets.get("auth"))
    except (FileNotFoundError, KeyError, ValueError):
        return False
    except Exception:  # a malformed secrets file: run without login rather than not at all
        log.warning("could not read the secrets file; running without login", exc_info=True)
        return False


def signed_in_user() -> User:
    """The user: from the login when one is configured (asking to log in first), else the local user."""
    if not login_configured():
        return resolve_user(None)
    if not st.user.is_logged_in:
        st.title("vkpp-learning")
        st.info("Log in to use the review repository.")
        st.button("Log in", on_click=st.login, type="primary")
        st.stop()
    return resolve_user(str(st.user.get("email") or ""))


def start() -> User:
    """What every page run begins with: page settings, the user, and the sidebar saying who and in which mode."""
    st.set_page_config(page_title="vkpp-learning", page_icon=":material/library_books:", layout="wide")
    try:
        user = signed_in_user()
    except ConfigurationError as exc:  # e.g. a malformed VKPP_ROLES
        st.error(exc.message)
        st.stop()
    user = sidebar_user(user)
    st.session_state["user"] = user
    show_notices()  # from the last button press, or from before an st.rerun
    return user


def sidebar_user(user: User) -> User:
    """Show who is working and as what; in local mode the one user may work as a lesser role (to check
    what a viewer sees, say). Returns the user the pages act as."""
    with st.sidebar:
        if user.local:
            st.caption(LOCAL_MODE_NOTE)
            roles = [role for role in Role if role <= user.role][::-1]
            chosen = st.selectbox(
                "Work as", roles, format_func=lambda role: role.label, key="work_as", help=ROLE_HELP, width=160
            )
            user = User(user.name, chosen, user.mode)
        st.markdown(f"**{escape_markdown(user.name)}** · {user.role.label}")
        if not user.local:
            st.button("Log out", on_click=st.logout)
    return user


ROLE_HELP = "Viewers search, read and export; analysts also annotate, keep baskets and ingest; admins also delete."


def current_user() -> User:
    """The user this run acts as (set by `start`)."""
    user = st.session_state.get("user")
    return user if isinstance(user, User) else resolve_user(None)


def may(action: str) -> bool:
    return can(current_user(), action)


# --- names ----------------------------------------------------------------------------------------


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def taxonomy_themes(facet: str) -> list[dict[str, Any]]:
    """The taxonomy's themes of a facet as plain data (id, name, definition, phrases, examples, parent)."""
    from vkpp_learning.taxonomy import load_taxonomy

    try:
        taxonomy = load_taxonomy()
    except ConfigurationError:
        return []
    facet = "agency" if facet == "recommendation_to" else facet
    return [
        {
            "id": theme.id,
            "name": theme.name,
            "definition": theme.definition,
            "phrases": list(theme.phrases),
            "examples": list(theme.examples),
            "parent": theme.parent,
        }
        for theme in taxonomy.facet(facet)
    ]


def names(facet: str) -> dict[str, str]:
    """Theme names by id for a facet; ids stand for themselves when the taxonomy lacks them."""
    return {theme["id"]: theme["name"] for theme in taxonomy_themes(facet)}


def name_of(facet: str) -> Callable[[str], str]:
    known = names(facet)
    return lambda label: known.get(label, str(label).replace("_", " "))


def all_names() -> dict[str, str]:
    found: dict[str, str] = {}
    for facet in ("agency", "vulnerability", "practice"):
        found.update(names(facet))
    return found


# --- links between pages --------------------------------------------------------------------------


def link_to_passages(filters: Filters, label: str, query: str = "") -> None:
    """A link to the Search page showing exactly the passages `filters` select."""
    params = analytics.filters_to_params(filters, query)
    st.page_link(page("search"), label=label, icon=":material/arrow_forward:", query_params=params)


def link_to_review(review_id: int, passage_id: int | None = None, label: str = "Open in its review") -> None:
    params = {"review": str(int(review_id))}
    if passage_id is not None:
        params["passage"] = str(int(passage_id))
    st.page_link(page("reader"), label=label, icon=":material/menu_book:", query_params=params)


def url_values(name: str) -> list[str]:
    """Every value of a URL query parameter (repeated parameters give several)."""
    return [value for value in st.query_params.get_all(name) if value is not None]


def url_value(name: str) -> str | None:
    values = url_values(name)
    return values[-1] if values else None


def url_int(name: str) -> int | None:
    value = url_value(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def seed_from_url(page_name: str, keys: Mapping[str, Callable[[list[str]], Any]]) -> None:
    """Set widgets' state from the URL when the URL changed since this page last saw it (someone followed a
    link), so a link opens the page with its filters applied. `keys` maps each widget key (= parameter name)
    to a function from the parameter's values to the widget's value."""
    seen = f"_url_{page_name}"
    current = url_snapshot(keys)
    if st.session_state.get(seen) == current:
        return
    for key, convert in keys.items():
        st.session_state[key] = convert(url_values(key))
    st.session_state[seen] = current


def url_snapshot(keys: Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((key, tuple(url_values(key))) for key in keys)


def sync_url(page_name: str, params: Mapping[str, str | list[str]], keys: Iterable[str]) -> None:
    """Put a page's current filters in the URL (so it can be shared or bookmarked) without re-seeding."""
    keys = list(keys)
    for key in keys:
        value = params.get(key)
        if value in (None, "", []):
            if key in st.query_params:
                del st.query_params[key]
        elif url_values(key) != ([value] if isinstance(value, str) else list(value)):
            st.query_params[key] = value
    st.session_state[f"_url_{page_name}"] = url_snapshot(keys)


# --- showing passages -----------------------------------------------------------------------------


def show_text(text: str, limit: int = 1_500) -> None:
    """Document text as text: escaped, and a huge passage cut to a preview with the rest one click away."""
    shown, left_out = preview(text, limit)
    st.markdown(escape_markdown(shown))
    if left_out:
        with st.expander(f"Show all ({left_out:,} more characters)"):
            st.text(text)


def show_highlighted(highlighted: str) -> None:
    """A search snippet with its <mark> highlights, after checking those are its only tags."""
    st.markdown(safe_highlight(highlighted), unsafe_allow_html=True)


def tag_line(row: Mapping[str, Any]) -> str:
    """The passage's effective tags in words, as Markdown badges and short lists (names escaped)."""
    themes, vulnerabilities, agencies = name_of("practice"), name_of("vulnerability"), name_of("agency")
    badges = [":red-badge[missed opportunity]"] if row.get("missed_opportunity") else []
    badges += [f":blue-badge[{escape_markdown(themes(label))}]" for label in row.get("themes") or []]
    badges += [f":violet-badge[{escape_markdown(vulnerabilities(v))}]" for v in row.get("vulnerabilities") or []]
    lists = []
    if row.get("agencies"):
        lists.append("agencies: " + ", ".join(agencies(label) for label in row["agencies"]))
    if row.get("recommendation_to"):
        lists.append("recommendation to: " + ", ".join(agencies(label) for label in row["recommendation_to"]))
    words = escape_markdown(" · ".join(lists))
    return " ".join(badges) + (" · " if badges and words else "") + words


Actions = Callable[[Mapping[str, Any], str], None]


def show_passage(row: Mapping[str, Any], key: str, actions: Actions | None = None) -> None:
    """One passage as a card: its citation, its text (or highlighted snippet), its tags, and actions."""
    with st.container(border=True):
        st.markdown(f"**{escape_markdown(row.get('citation') or '')}**")
        if row.get("section"):
            st.caption(escape_markdown(str(row["section"])))
        if row.get("highlighted"):
            show_highlighted(str(row["highlighted"]))
        else:
            show_text(str(row.get("text") or ""))
        tags = tag_line(row)
        if tags:
            st.markdown(tags)
        with st.container(horizontal=True, vertical_alignment="center"):
            link_to_review(int(row["review_id"]), int(row["passage_id"]))
            if actions:
                actions(row, key)


def show_passages(rows: Iterable[Mapping[str, Any]], key: str, actions: Actions | None = None) -> None:
    for index, row in enumerate(rows):
        show_passage(row, f"{key}_{index}", actions)


def show_page_of_passages(passages: analytics.PassagePage, key: str, what: str, actions: Actions | None = None) -> None:
    """Passages a figure counted, with a link to all of them on the Search page when there are more."""
    if passages.rows.empty:
        st.caption(f"No {what}.")
        return
    show_passages(passages.rows.to_dict("records"), key, actions)
    if passages.total > len(passages.rows):
        link_to_passages(passages.filters, f"All {passages.total} {what}")


def repository_is_empty() -> bool:
    totals = figure("type_totals")
    return totals.empty


def linked_table(
    frame: pd.DataFrame,
    link: Callable[[Any, Any, Any], str],
    key: str,
    first_column: str | None = None,
    names: Mapping[str, Callable[[Any], str]] | None = None,
) -> None:
    """A table of numbers in which every number is a link to the passages behind it: `link(row, column,
    value)` gives the cell's `analytics.passages_link`. `names` turn row or column labels into words."""
    names = names or {}
    row_name, column_name = names.get("rows", str), names.get("columns", str)
    first = first_column or str(frame.index.name or "")
    cells = pd.DataFrame(
        {column_name(column): [link(row, column, frame.at[row, column]) for row in frame.index] for column in frame}
    )
    cells.insert(0, first, [row_name(row) for row in frame.index])
    config = {column: st.column_config.LinkColumn(column, display_text=analytics.LINK_DISPLAY) for column in cells}
    config[first] = st.column_config.TextColumn(first, pinned=True)
    st.dataframe(cells, hide_index=True, column_config=config, key=key)


# --- actions from buttons -------------------------------------------------------------------------


def attempt(action: Callable[..., Any], *args: Any, done: str = "", **kwargs: Any) -> tuple[bool, Any]:
    """Run a library write; (True, its result) and a toast saying `done`, or (False, None) with the library's
    refusal kept for `show_flash` (in a button's callback an error would otherwise end the run)."""
    try:
        result = write(action, *args, **kwargs)
    except VkppError as exc:
        st.session_state.setdefault("flash", []).append(exc.message)
        return False, None
    if done:
        notify(done)
    return True, result


def act(action: Callable[..., Any], *args: Any, done: str = "", **kwargs: Any) -> None:
    """`attempt` for a button's on_click."""
    attempt(action, *args, done=done, **kwargs)


def notify(message: str) -> None:
    """Say something was done, as a toast on this run or, after st.rerun, on the next."""
    st.session_state.setdefault("notices", []).append(message)


def show_notices() -> None:
    for message in st.session_state.pop("notices", []):
        st.toast(message, icon=":material/check:")


def show_flash() -> None:
    """Refusals kept by `attempt` from the last button press."""
    for message in st.session_state.pop("flash", []):
        st.error(message)


# --- the evidence basket in use -------------------------------------------------------------------


def basket_names() -> list[str]:
    from vkpp_learning.baskets import list_baskets

    with db().session() as session:
        return [basket.name for basket in list_baskets(session)]


def current_basket() -> str | None:
    return st.session_state.get("current_basket")


def basket_chooser() -> None:
    """In the sidebar: the basket that "Add to basket" puts passages in, and a way to start a new one."""
    if not may("basket"):
        return
    from vkpp_learning.baskets import create_basket

    with st.sidebar:
        existing = basket_names()
        chosen = current_basket()
        if chosen not in existing:
            chosen = existing[0] if existing else None
        st.session_state["current_basket"] = chosen
        if existing:
            st.session_state["basket_choice"] = chosen  # the widget follows the basket chosen on any page
            st.selectbox("Evidence basket", existing, key="basket_choice", on_change=_chose)
        with st.popover("New basket", icon=":material/add:"):
            name = st.text_input("Name", key="new_basket_name", placeholder="e.g. Stalking briefing")
            if st.button("Create basket", key="create_basket"):
                new_basket(create_basket, name)


def new_basket(create: Callable[..., Any], name: str) -> None:
    try:
        basket = write(create, current_user(), name)
    except VkppError as exc:
        st.error(exc.message)
        return
    st.session_state["current_basket"] = basket.name
    notify(f"Basket {basket.name!r} created")
    st.rerun()


def _chose() -> None:
    st.session_state["current_basket"] = st.session_state.get("basket_choice")


def query_log(query: str, mode: str | None, filters: Filters) -> dict[str, Any]:
    """How a passage was found, for the basket's log of searches."""
    logged: dict[str, Any] = {"query": query.strip()}
    if mode:
        logged["mode"] = mode
    filters_used = analytics.filters_as_log(filters)
    if filters_used:
        logged["filters"] = filters_used
    return logged


def basket_button(row: Mapping[str, Any], key: str, found_by: dict[str, Any] | None = None) -> None:
    """An "Add to basket" button for a passage card, when the user keeps baskets and one is chosen."""
    basket = current_basket()
    if not may("basket") or not basket:
        return
    from vkpp_learning.baskets import add_to_basket

    st.button(
        "Add to basket",
        key=f"add_{key}_{row['passage_id']}",
        icon=":material/add_shopping_cart:",
        help=f"Add to the basket {basket!r}",
        on_click=act,
        args=(add_to_basket, current_user(), basket, int(row["passage_id"])),
        kwargs={"query": found_by, "done": f"Added to {basket!r}"},
    )
