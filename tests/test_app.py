"""The Streamlit app through streamlit.testing's AppTest, on the tagged sample reviews and on an empty database:
every page renders, links carry their filters, baskets fill and empty through the UI, roles hide write controls
and the library refuses writes anyway, and text from a PDF is shown as text."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from sqlalchemy import func, select, text
from streamlit.testing.v1 import AppTest

from tests.conftest import CORPUS, ROOT, sqlite_url
from tests.test_analytics import tagged_samples  # noqa: F401  (a session fixture)
from tests.test_evidence import copy_sqlite
from vkpp_learning import analytics
from vkpp_learning.app_pages import PAGES
from vkpp_learning.baskets import add_to_basket, create_basket
from vkpp_learning.db import Database, models, open_database
from vkpp_learning.errors import PermissionDenied
from vkpp_learning.roles import Role, User
from vkpp_learning.ui_safety import escape_markdown, only_mark_tags, preview, safe_highlight

TIMEOUT = 120
HOSTILE = "<script>alert('pdf')</script> <img src=x onerror=alert(1)> [click](javascript:alert(2)) $x^2$ :red[boo]"


def page_script(name: str) -> None:
    """app.py with `name` as the page it opens on (AppTest can switch only between file-based pages)."""
    import streamlit as st

    from vkpp_learning.app_pages import navigation_pages
    from vkpp_learning.app_pages.common import start

    start()
    st.navigation(navigation_pages(default=name)).run()


@pytest.fixture
def open_page(monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """Run one page against a database; `params` are the URL's query parameters."""

    def run(url: str, name: str, params: dict[str, str | list[str]] | None = None, **settings: str) -> AppTest:
        monkeypatch.setenv("VKPP_DATABASE_URL", url)
        monkeypatch.setenv("VKPP_USER", "tester")
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        app = AppTest.from_function(page_script, args=(name,), default_timeout=TIMEOUT)
        for key, value in (params or {}).items():
            app.query_params[key] = value
        return app.run()

    return run


@pytest.fixture
def samples_url(tagged_samples: str) -> str:  # noqa: F811
    """The tagged sample reviews (read only)."""
    return tagged_samples


@pytest.fixture
def private(samples_url: str, tmp_path: Path) -> Iterator[str]:
    """A copy of the tagged samples for a test that writes through the app."""
    yield copy_sqlite(samples_url, tmp_path / "private.sqlite")


@pytest.fixture
def empty_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "empty.sqlite")


def no_errors(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def texts(app: AppTest) -> str:
    """Everything the page says in markdown, captions, messages and titles."""
    elements = (*app.markdown, *app.caption, *app.info, *app.warning, *app.success, *app.title, *app.subheader)
    parts = [e.value for e in elements]
    return "\n".join(parts)


def labels(app: AppTest) -> list[str]:
    return [button.label for button in app.button]


def link_cells(app: AppTest, *columns: str) -> list[str]:
    """The links in the first table that has these columns (a link is "page?filters#number shown")."""
    frame = next(table.value for table in app.dataframe if set(columns) <= set(table.value.columns))
    return [value for column in frame.columns for value in frame[column] if isinstance(value, str) and "#" in value]


def database(url: str) -> Database:
    return open_database(url)


# --- every page -----------------------------------------------------------------------------------


def test_app_py_opens_on_the_overview_with_real_numbers(samples_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKPP_DATABASE_URL", samples_url)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    no_errors(app)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Reviews"] == "13" and int(metrics["Passages"].replace(",", "")) > 900
    assert int(metrics["Passages with a tag"].replace(",", "")) > 500
    assert "Single-user local mode: no login configured" in [c.value for c in app.sidebar.caption]


@pytest.mark.parametrize("name", [spec.name for spec in PAGES])
def test_every_page_renders_on_the_samples(samples_url: str, open_page: Callable[..., AppTest], name: str) -> None:
    app = open_page(samples_url, name)
    no_errors(app)
    assert app.title and app.title[0].value


@pytest.mark.parametrize("name", [spec.name for spec in PAGES])
def test_every_page_says_what_to_do_on_an_empty_database(
    empty_url: str, open_page: Callable[..., AppTest], name: str
) -> None:
    app = open_page(empty_url, name)
    no_errors(app)
    said = texts(app)
    if name == "basket":
        assert "There is no basket yet" in said
    elif name == "ingest":
        assert app.get("file_uploader")
    else:
        assert "The repository is empty" in said


def test_a_database_stamped_with_an_older_schema_is_upgraded_after_the_first_page(
    empty_url: str, open_page: Callable[..., AppTest]
) -> None:
    from vkpp_learning.db.engine import head_revision, migrate

    migrate(empty_url, "0001")
    app = open_page(empty_url, "topics")  # reads tables that only later revisions make
    no_errors(app)
    assert "The repository is empty" in texts(app)
    db = database(empty_url)
    with db.session() as session:
        assert session.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    db.dispose()


# --- overview: every number links to its passages -------------------------------------------------


def test_overview_numbers_link_to_exactly_their_passages(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    app = open_page(samples_url, "overview")
    no_errors(app)
    db = database(samples_url)
    checked = 0
    tables = {"reviews_by_year": ("year", "CSPR"), "theme_table": ("theme", "All types"), "missed_top": ("agency",)}
    for key, columns in tables.items():
        for link in link_cells(app, *columns)[:12]:
            shown = re.search(analytics.LINK_DISPLAY, link).group(1)
            filters = analytics.filters_of_link(link)
            with db.session() as session:
                page = analytics.passages_behind(session, filters, limit=10_000)
            number = int(re.search(r"\((\d+) of", shown).group(1)) if "of" in shown else int(shown)
            counted = page.rows["review_id"].nunique() if key != "missed_top" else page.total
            if key == "reviews_by_year":
                counted = page.rows["review_id"].nunique() if page.total else 0
            assert counted == number, (key, link)
            checked += 1
    db.dispose()
    assert checked >= 30


def test_overview_switches_between_shares_of_reviews_and_of_passages(
    samples_url: str,
    open_page: Callable[..., AppTest],
) -> None:
    app = open_page(samples_url, "overview")
    by_reviews = link_cells(app, "theme", "All types")
    app.get("button_group")[0].set_value("passages").run()
    no_errors(app)
    by_passages = link_cells(app, "theme", "All types")
    assert by_reviews != by_passages
    first = by_passages[0]
    number = int(re.search(r"\((\d+) of", first).group(1))
    db = database(samples_url)
    with db.session() as session:
        assert analytics.passages_behind(session, analytics.filters_of_link(first)).total == number
    db.dispose()


# --- search ---------------------------------------------------------------------------------------


def test_search_takes_its_words_and_filters_from_the_url(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    app = open_page(samples_url, "search", {"q": "MARAC referral", "type": "DHR", "mode": "keyword"})
    no_errors(app)
    assert app.text_input(key="q").value == "MARAC referral"
    assert app.multiselect(key="type").value == ["DHR"]
    citations = [m.value for m in app.main.markdown if m.value.startswith("**") and ", p\\. " in m.value]
    assert len(citations) == 10
    assert all(c.startswith(("**DHR", "**DARDR")) for c in citations)
    highlighted = [m for m in app.markdown if "<mark>" in m.value]
    assert highlighted and all(m.allow_html and only_mark_tags(m.value) for m in highlighted)
    assert any(label.startswith("DHR (") for label in labels(app))  # facet counts
    assert "Next" in labels(app)


def test_facets_narrow_the_search(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    app = open_page(samples_url, "search", {"q": "risk assessment", "mode": "keyword"})
    police = next(b for b in app.button if b.label.startswith("Police ("))
    police.click().run()
    no_errors(app)
    assert app.multiselect(key="agency").value == ["police"]
    assert app.query_params.get("agency") in ("police", ["police"])


def test_filters_alone_list_the_passages_they_select(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    params = {"type": "SAR", "theme": "information_sharing", "missed": "true"}
    app = open_page(samples_url, "search", params)
    no_errors(app)
    db = database(samples_url)
    with db.session() as session:
        total = analytics.passages_behind(session, analytics.filters_from_params(params)).total
    db.dispose()
    assert total > 0
    assert any(m.value.startswith(f"**{total:,} passages**") for m in app.markdown)


def test_a_search_with_no_results_says_so(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    app = open_page(samples_url, "search", {"q": "zebra xylophone", "mode": "keyword", "type": "MAPPA"})
    no_errors(app)
    assert "No passage matches these words with these filters (MAPPA)" in texts(app)


def test_more_like_this_without_embeddings_explains_itself(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    app = open_page(samples_url, "search", {"q": "DASH risk assessment", "mode": "keyword"})
    next(b for b in app.button if b.label == "More like this").click().run()
    refusals = [e.value for e in app.error]
    assert any("embedding" in message for message in refusals)
    assert "Back to the results" in labels(app)
    assert not app.exception


# --- baskets through the UI -----------------------------------------------------------------------


def test_basket_create_add_note_and_remove_through_the_ui(private: str, open_page: Callable[..., AppTest]) -> None:
    app = open_page(private, "search", {"q": "DASH risk assessment", "mode": "keyword"})
    app.text_input(key="new_basket_name").set_value("Strangulation briefing")
    app.button(key="create_basket").click().run()
    no_errors(app)
    adds = [b for b in app.button if b.label == "Add to basket"]
    assert len(adds) == 10
    adds[0].click().run()
    adds = [b for b in app.button if b.label == "Add to basket"]
    adds[1].click().run()
    no_errors(app)
    db = database(private)
    with db.session() as session:
        basket = session.scalar(select(models.Basket).where(models.Basket.name == "Strangulation briefing"))
        items = session.scalars(select(models.BasketItem).where(models.BasketItem.basket_id == basket.id)).all()
        assert len(items) == 2 and all(item.added_by == "tester" for item in items)
        assert '"query":"DASH risk assessment"' in basket.queries[0] and '"mode":"keyword"' in basket.queries[0]
    app = open_page(private, "basket")
    no_errors(app)
    assert app.selectbox(key="basket_page_choice").options == ["Strangulation briefing (2 excerpts)"]
    passage_id = items[0].passage_id
    app.text_area(key=f"note_{passage_id}").set_value("Risk graded too low after strangulation")
    app.button(key=f"save_note_{passage_id}").click().run()
    app.button(key=f"remove_{items[1].passage_id}").click().run()
    no_errors(app)
    with db.session() as session:
        kept = session.scalars(select(models.BasketItem)).all()
    db.dispose()
    assert [(item.passage_id, item.note) for item in kept] == [(passage_id, "Risk graded too low after strangulation")]
    assert "Excerpts (1)" in texts(app)


def test_baskets_survive_a_restart_and_export_from_the_page(private: str, open_page: Callable[..., AppTest]) -> None:
    import docx
    import openpyxl

    from vkpp_learning.app_pages import basket as basket_page

    db = database(private)
    with db.writing() as session:
        analyst = User("ann", Role.ANALYST, "login")
        create_basket(session, analyst, "Louise")
        ids = session.scalars(
            select(models.Passage.id)
            .join(models.Review)
            .where(models.Review.filename == "dhr_louise_2023.pdf", models.Passage.kind == "paragraph")
            .order_by(models.Passage.ordinal)
            .offset(20)
            .limit(2)
        ).all()
        for passage_id in ids:
            add_to_basket(session, analyst, "Louise", passage_id, note=f"note {passage_id}", query={"query": "x"})
        first = session.get(models.Passage, ids[0])
    db.dispose()
    app = open_page(private, "basket")  # a new session: what the page shows comes from the database
    no_errors(app)
    downloads = app.get("download_button")
    assert len(downloads) == 4
    document = docx.Document(io.BytesIO(basket_page.exported("Louise", "docx")))
    body = "\n".join(p.text for p in document.paragraphs)
    assert 'DHR "Louise", Eastmoor CSP, 2023' in body and f"note {ids[0]}" in body
    assert first.text[:60] in body
    sheet = openpyxl.load_workbook(io.BytesIO(basket_page.exported("Louise", "xlsx"))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 3 and "citation" in rows[0]
    assert any(first.text[:60] in str(cell) for cell in rows[1] + rows[2])


# --- roles ----------------------------------------------------------------------------------------


def test_a_viewer_sees_no_write_controls(private: str, open_page: Callable[..., AppTest]) -> None:
    db = database(private)
    with db.writing() as session:
        analyst = User("ann", Role.ANALYST, "login")
        create_basket(session, analyst, "Existing")
        add_to_basket(session, analyst, "Existing", session.scalar(select(models.Passage.id).limit(1)))
    app = open_page(private, "search", {"q": "MARAC", "mode": "keyword"})
    assert "Add to basket" in labels(app) and "Create basket" in labels(app)
    app.sidebar.selectbox(key="work_as").set_value(Role.VIEWER).run()
    no_errors(app)
    assert "More like this" in labels(app)
    assert not {"Add to basket", "Create basket"} & set(labels(app))
    for name in ("annotate", "ingest"):
        app = open_page(private, name)
        app.sidebar.selectbox(key="work_as").set_value(Role.VIEWER).run()
        no_errors(app)
        assert "only analysts and admins" in texts(app)
        assert not {"Confirm", "Reject", "Add tag", "Ingest"} & set(labels(app))
    app = open_page(private, "basket")
    assert {"Remove", "Save note", "Rename"} <= set(labels(app))
    app.sidebar.selectbox(key="work_as").set_value(Role.VIEWER).run()
    no_errors(app)
    assert len(app.get("download_button")) == 4  # viewers export
    assert not {"Remove", "Save note", "Rename", "Delete basket", "Create basket"} & set(labels(app))
    assert not app.text_area
    # and the library refuses a viewer's writes whatever the page shows
    viewer = User("vera", Role.VIEWER, "login")
    with db.writing() as session, pytest.raises(PermissionDenied):
        add_to_basket(session, viewer, "Existing", 1)
    with db.writing() as session, pytest.raises(PermissionDenied):
        create_basket(session, viewer, "Mine")
    db.dispose()


def test_with_a_login_roles_come_from_the_setting(private: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKPP_DATABASE_URL", private)
    monkeypatch.setenv("VKPP_ROLES", "ann@force.example=analyst, vera@force.example=viewer")

    def signed_in(email: str | None) -> AppTest:
        app = AppTest.from_function(page_script, args=("search",), default_timeout=TIMEOUT)
        app.secrets["auth"] = {"redirect_uri": "http://localhost/oauth2callback", "cookie_secret": "s" * 32}
        app.user = {"is_logged_in": True, "email": email} if email else {"is_logged_in": False}
        app.query_params["q"] = "MARAC"
        app.query_params["mode"] = "keyword"
        return app.run()

    analyst, viewer, stranger, nobody = (
        signed_in(email) for email in ("ann@force.example", "vera@force.example", "eve@elsewhere.example", None)
    )
    for app in (analyst, viewer, stranger):
        no_errors(app)
        assert not any("local mode" in c.value for c in app.sidebar.caption)
    assert "**ann@force\\.example** · analyst" in [m.value for m in analyst.sidebar.markdown]
    assert "Create basket" in labels(analyst) and "Create basket" not in labels(viewer)
    assert "**vera@force\\.example** · viewer" in [m.value for m in viewer.sidebar.markdown]
    assert "Add to basket" not in labels(viewer) and "Log out" in labels(viewer)
    assert "**eve@elsewhere\\.example** · viewer" in [m.value for m in stranger.sidebar.markdown]
    assert "Log in" in labels(nobody) and not nobody.text_input


# --- reader, annotate, themes, missed, ingest -----------------------------------------------------


def test_the_reader_opens_a_review_at_a_linked_passage(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    db = database(samples_url)
    with db.session() as session:
        review = session.scalar(select(models.Review).where(models.Review.filename == "dhr_louise_2023.pdf"))
        passage = session.scalar(
            select(models.Passage).where(models.Passage.review_id == review.id, models.Passage.ordinal == 60)
        )
    db.dispose()
    app = open_page(samples_url, "reader", {"review": str(review.id), "passage": str(passage.id)})
    no_errors(app)
    said = texts(app)
    assert "The passage you followed" in said
    assert escape_markdown(passage.text[:80]) in said
    assert "Cite as:** DHR &quot;Louise&quot;, Eastmoor CSP, 2023" in said
    assert any(tab.label == "Recommendations" for tab in app.tabs)
    assert "Recommendation" in "\n".join(m.value for m in app.tabs[1].markdown)


def test_a_deleted_review_or_passage_is_a_message_not_a_traceback(
    private: str, open_page: Callable[..., AppTest]
) -> None:
    db = database(private)
    with db.session() as session:
        review = session.scalar(select(models.Review).where(models.Review.filename == "sar_mr_d_2021.pdf"))
        passage_id = session.scalar(select(models.Passage.id).where(models.Passage.review_id == review.id).limit(1))
    from vkpp_learning.db.store import delete_review

    delete_review(db, review.sha256)
    db.dispose()
    app = open_page(private, "reader", {"review": str(review.id), "passage": str(passage_id)})
    no_errors(app)
    assert f"Review {review.id} is not in the repository" in texts(app)
    app = open_page(private, "annotate", {"passage": str(passage_id)})
    no_errors(app)
    assert f"Passage {passage_id} is not in the repository" in texts(app)


def test_annotate_confirm_reject_and_add_are_stored_with_who_and_when(
    private: str, open_page: Callable[..., AppTest]
) -> None:
    app = open_page(private, "annotate")
    no_errors(app)
    assert "Queue: 1 of" in texts(app)
    confirm = next(b for b in app.button if b.label == "Confirm")
    passage_id = int(confirm.key.split("_")[1])
    confirm.click().run()
    next(b for b in app.button if b.label == "Reject").click().run()
    form_select = next(s for s in app.selectbox if s.key == "add_label_practice")
    form_select.set_value("think_family")
    app.text_input(key="add_note_practice").set_value("the whole household")
    next(b for b in app.button if b.label == "Add tag").click().run()
    no_errors(app)
    db = database(private)
    with db.session() as session:
        made = session.scalars(select(models.Annotation).order_by(models.Annotation.id)).all()
    db.dispose()
    assert [a.decision for a in made] == ["confirm", "reject", "add"]
    assert all(a.user_name == "tester" and a.created_at is not None for a in made)
    assert made[0].passage_id == passage_id and made[2].label == "think_family"
    assert made[2].note == "the whole household"


def test_themes_page_shows_a_theme_from_the_url(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    app = open_page(samples_url, "themes", {"theme": "information_sharing"})
    no_errors(app)
    db = database(samples_url)
    with db.session() as session:
        detail = analytics.theme_detail(session, "information_sharing")
    db.dispose()
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Passages"] == str(detail.passages) and metrics["Reviews"] == str(detail.reviews)
    assert metrics["Missed opportunities"] == str(detail.missed_opportunities.total)
    assert app.selectbox(key="theme").value == "information_sharing"
    for link in link_cells(app, "passages in common"):
        assert "information_sharing" in analytics.filters_of_link(link).themes
    app = open_page(samples_url, "themes", {"facet": "vulnerability", "theme": "self_neglect"})
    no_errors(app)
    assert app.selectbox(key="theme").value == "self_neglect"


def test_missed_opportunities_filtered_from_the_url(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    app = open_page(samples_url, "missed", {"agency": "police", "type": ["DHR", "SAR"]})
    no_errors(app)
    table = app.dataframe(key="missed_passages").value
    assert len(table) > 0 and all("Police" in agencies for agencies in table["agencies"])
    assert all(citation.startswith(("DHR", "DARDR", "SAR", "APR")) for citation in table["citation"])
    assert all(parse_qs(link.split("?", 1)[1])["review"] for link in table["open"])
    for link in link_cells(app, "agency", "Information sharing"):
        filters = analytics.filters_of_link(link)
        assert filters.missed_only and filters.agencies[0] == "police" and filters.review_types == ("DHR", "SAR")


def test_ingest_uploads_reports_each_file_and_records_failures(
    empty_url: str, open_page: Callable[..., AppTest]
) -> None:
    app = open_page(empty_url, "ingest")
    good = CORPUS / "dhr_amira_2021.pdf"
    bad = next(
        path for path in sorted((CORPUS / "bad").glob("*.pdf")) if "encrypt" in path.name or "empty" in path.name
    )
    app.get("file_uploader")[0].set_value(
        [(good.name, good.read_bytes(), "application/pdf"), (bad.name, bad.read_bytes(), "application/pdf")]
    )
    app.run()
    next(b for b in app.button if b.label == "Ingest").click().run()
    no_errors(app)
    outcomes = app.dataframe[0].value
    assert outcomes["result"].tolist() == ["added", "failed"]
    assert outcomes["passages"].iloc[0] > 10 and outcomes["detail"].iloc[1]
    db = database(empty_url)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(models.Review)) == 1
    db.dispose()
    assert "1 added, 0 already stored, 1 failed." in [w.value for w in app.warning]


def test_topics_page_says_how_to_make_a_topic_run(samples_url: str, open_page: Callable[..., AppTest]) -> None:
    app = open_page(samples_url, "topics")
    no_errors(app)
    assert "No topic run yet" in texts(app) and "vkpp topics fit" in texts(app)


@pytest.mark.slow
def test_with_embeddings_topics_and_search_by_meaning(private: str, open_page: Callable[..., AppTest]) -> None:
    """The real model: a topic run on the Topics page, and hybrid search with "more like this"."""
    from pipelines.embed import embed
    from pipelines.topics import fit_topics
    from vkpp_learning.topics.model import TopicParams
    from vkpp_learning.topics.store import CorpusFilter

    embed(private)
    run_id = fit_topics(private, CorpusFilter(), TopicParams(min_topic_size=10, seed=7)).run_id
    app = open_page(private, "topics")
    no_errors(app)
    assert f"Run {run_id}" in texts(app)
    topics = app.dataframe(key="topics").value
    assert len(topics) > 2 and topics["passages"].sum() > 500
    assert any(theme == "emergent: no close theme" or "(" in theme for theme in topics["theme"])

    app = open_page(private, "search", {"q": "the police did not refer her to MARAC", "mode": "hybrid"})
    no_errors(app)
    assert not any("keyword results only" in c.value for c in app.caption)
    next(b for b in app.button if b.label == "More like this").click().run()
    no_errors(app)
    assert any(m.value.startswith("**Passages like**") for m in app.markdown)
    assert [b.label for b in app.button].count("More like this") == 10


# --- text from documents is text ------------------------------------------------------------------


def test_the_sanitiser_lets_only_mark_tags_through() -> None:
    snippet = f"the <mark>MARAC</mark> {html.escape(HOSTILE)}"
    safe = safe_highlight(snippet)
    assert safe.count("<mark>") == 1 and safe.count("</mark>") == 1
    assert "<script" not in safe and "<img" not in safe and "&lt;script&gt;" in safe
    assert "\\[click\\]\\(javascript" in safe and "\\$x^2\\$" not in safe and "\\$x\\^2\\$" in safe
    assert not only_mark_tags("<mark>a</mark><b>b</b>") and not only_mark_tags("<mark><mark>a</mark></mark>")
    assert not only_mark_tags("<mark>open") and only_mark_tags("a <mark>b</mark> c")
    # a snippet with any other tag loses all its markup and is shown as text
    raw = safe_highlight("<mark>x</mark><script>alert(1)</script>")
    assert "<" not in raw.replace("&lt;", "") and "<mark>" not in raw
    assert escape_markdown("a\nb") == "a  \nb"
    assert preview("word " * 1000, 100)[1] > 4000


def test_a_hostile_pdf_is_shown_as_text(
    empty_url: str, open_page: Callable[..., AppTest], make_review_pdf: Callable[..., Path]
) -> None:
    from pipelines.ingest import ingest

    pdf = make_review_pdf("dhr_hostile_2022.pdf", paragraphs=2, topic=HOSTILE)
    assert not ingest([str(pdf)], empty_url).errors
    pages = [
        open_page(empty_url, "search", {"q": "officers attended", "mode": "keyword"}),
        open_page(empty_url, "reader"),
    ]
    shown = 0
    for app in pages:
        no_errors(app)
        for element in app.markdown:
            if element.allow_html:
                assert only_mark_tags(element.value), element.value
            assert "<script" not in element.value and "<img" not in element.value
            shown += "&lt;script&gt;alert" in element.value
    assert shown >= 2


def test_a_huge_passage_is_cut_to_a_preview(private: str, open_page: Callable[..., AppTest]) -> None:
    db = database(private)
    with db.writing() as session:
        review = session.scalar(select(models.Review).where(models.Review.filename == "sar_margaret_2023.pdf"))
        passage_id = session.scalar(
            select(models.Passage.id).where(models.Passage.review_id == review.id, models.Passage.ordinal == 5)
        )
        session.execute(
            text("UPDATE passages SET text = :text WHERE id = :id"),
            {"text": "The records were incomplete. " * 20_000, "id": passage_id},
        )
    db.dispose()
    app = open_page(private, "reader", {"review": str(review.id), "passage": str(passage_id)})
    no_errors(app)
    assert any(expander.label.startswith("Show all (") for expander in app.expander)
    assert max(len(m.value) for m in app.markdown) < 5_000


def test_no_page_imports_torch_or_bertopic() -> None:
    """The first page never imports torch or BERTopic; heavy parts load on use."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from vkpp_learning.app_pages import navigation_pages\n"
        "import vkpp_learning.app_pages.common, vkpp_learning.analytics\n"
        "for name in ('overview','search','themes','missed','topics','reader','annotate','basket','ingest'):\n"
        "    __import__('vkpp_learning.app_pages.' + name)\n"
        "heavy = [m for m in ('torch', 'bertopic', 'umap', 'sentence_transformers', 'spacy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == ""
