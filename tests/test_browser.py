"""End to end in a real browser: `streamlit run app.py` on a free local port against a copy of the tagged sample
database, driven by Playwright in Debian's headless Chromium. It searches, adds a result to a basket, exports
the basket as DOCX and reads the downloaded file, and saves a screenshot of every page in test-artifacts/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.test_analytics import tagged_samples  # noqa: F401  (a session fixture)
from tests.test_evidence import copy_sqlite
from vkpp_learning.app_pages import PAGES
from vkpp_learning.baskets import basket_excerpts
from vkpp_learning.db import open_database

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
BASKET = "Browser briefing"
START_TIMEOUT_S = 60
WAIT_MS = 90_000


def needs_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (scripts/test.sh installs it as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install -e '.[dev]')")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def streamlit_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.serverAddress",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]


def wait_until_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer on {base} within {START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def served(tagged_samples: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:  # noqa: F811
    """(base URL, database URL) of the app served from a copy of the tagged samples."""
    needs_browser()
    url = copy_sqlite(tagged_samples, tmp_path_factory.mktemp("browser") / "app.sqlite")
    port = free_port()
    env = {**os.environ, "VKPP_DATABASE_URL": url, "VKPP_USER": "browser", "HF_HUB_OFFLINE": "1"}
    log = (tmp_path_factory.getbasetemp() / "streamlit.log").open("wb")
    server = subprocess.Popen(streamlit_command(port), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, server)
        yield base, url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser_page(served: tuple[str, str]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        yield page
        context.close()
        browser.close()


def settle(page: Any) -> None:
    """Wait until the app has finished running: no status widget, spinner or skeleton for two seconds."""
    quiet, deadline = 0, time.monotonic() + WAIT_MS / 1000
    busy = "[data-testid='stStatusWidget'], [data-testid='stSpinner'], [data-testid='stSkeleton']"
    while quiet < 8 and time.monotonic() < deadline:
        quiet = 0 if page.query_selector(busy) else quiet + 1
        page.wait_for_timeout(250)


def visit(page: Any, base: str, path: str, heading: str) -> None:
    page.goto(f"{base}/{path}")
    page.get_by_role("heading", name=heading).first.wait_for()
    settle(page)


def shoot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_search_add_to_basket_export_docx_and_every_page(browser_page: Any, served: tuple[str, str]) -> None:
    import docx

    page, (base, db_url) = browser_page, served
    visit(page, base, "", "Review repository")
    page.get_by_text("Passages with a tag").wait_for()
    assert page.get_by_text("Single-user local mode: no login configured").is_visible()
    shoot(page, "overview")

    # search, make a basket from the sidebar, and add the first result to it
    visit(page, base, "search?q=MARAC%20referral&mode=keyword", "Search")
    page.get_by_role("button", name="More like this").first.wait_for()
    assert page.locator("mark").count() >= 3  # highlighted words
    shoot(page, "search")
    page.get_by_role("button", name="New basket").click()
    name = page.get_by_label("Name")
    name.fill(BASKET)
    name.press("Enter")
    settle(page)
    page.get_by_role("button", name="Create basket").click()
    page.get_by_text(f"Basket '{BASKET}' created").first.wait_for()
    settle(page)
    page.get_by_role("button", name="Add to basket").first.click()
    page.get_by_text(f"Added to '{BASKET}'").first.wait_for()
    settle(page)

    for spec in PAGES:
        if spec.name in ("overview", "search", "basket"):
            continue
        visit(page, base, spec.name, heading_of(spec.name))
        shoot(page, spec.name)

    # the basket page, and its DOCX export
    visit(page, base, "basket", "Evidence baskets")
    page.get_by_text("Excerpts (1)").wait_for()
    shoot(page, "basket")
    with page.expect_download() as download:
        page.get_by_role("button", name="Briefing pack (DOCX)").click()
    saved = ARTIFACTS / "briefing.docx"
    download.value.save_as(saved)

    db = open_database(db_url)
    with db.session() as session:
        [excerpt] = basket_excerpts(session, BASKET)
    db.dispose()
    document = docx.Document(str(saved))
    body = "\n".join(paragraph.text for paragraph in document.paragraphs)
    assert BASKET in body
    assert excerpt.citation in body
    assert " ".join(excerpt.text.split())[:80] in " ".join(body.split())
    assert '"MARAC referral" (keyword)' in body  # the search that found it, from the basket's log
    assert any(shape.width for shape in document.inline_shapes)  # the theme chart
    assert len(list(ARTIFACTS.glob("*.png"))) == len(PAGES)


def heading_of(name: str) -> str:
    return {
        "themes": "Themes",
        "missed": "Missed opportunities",
        "topics": "Topics",
        "reader": "Review reader",
        "annotate": "Annotate",
        "ingest": "Ingest reviews",
    }[name]
