"""Shared fixtures: real SQLite files, a real PostgreSQL server, real PDFs, and the sample corpus
ingested once per test session."""

from __future__ import annotations

import os
import secrets
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus_samples"
BAD_FILES = CORPUS / "bad"
# The local server: trust auth, database `test`. Each test session makes its own database on it.
POSTGRES_URL = os.environ.get("VKPP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def sample_pdfs() -> list[Path]:
    """The rendered sample reviews (corpus_samples/*.pdf; the deliberately bad files are in bad/)."""
    return sorted(CORPUS.glob("*.pdf"))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(autouse=True)
def restore_main_module() -> Iterator[None]:
    """Streamlit's AppTest replaces sys.modules["__main__"] with its generated page script and leaves it there;
    a later test that starts spawn worker processes (ingest --workers 2) would then make each child re-run
    that script. Put the real __main__ back after every test."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a SQLite file holding every sample review, ingested once for the whole session."""
    from pipelines.ingest import ingest

    pdfs = sample_pdfs()
    if not pdfs:
        pytest.skip("no sample reviews yet: corpus_samples/*.pdf are built by corpus_samples/build.py")
    url = sqlite_url(tmp_path_factory.mktemp("sample_db") / "samples.sqlite")
    summary = ingest([str(p) for p in pdfs], url)
    assert not summary.errors, f"sample reviews failed to ingest: {summary.errors}"
    assert summary.reviews == len(pdfs)
    yield url


def _postgres_admin() -> Any:
    import psycopg

    conninfo = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is not reachable at {POSTGRES_URL}: {str(exc).strip()}"
        if os.environ.get("CI"):  # CI's machine runs the server: there, a backend left untested is a failure
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server for this test session, dropped afterwards."""
    admin = _postgres_admin()
    name = f"vkpp_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for one test: a new SQLite file, or a new schema in the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "db" / "vkpp.sqlite")
        return
    import psycopg

    server_url = request.getfixturevalue("postgres_database")
    schema = f"t_{secrets.token_hex(4)}"
    conninfo = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    # search_path puts every table, and Alembic's version table, in the test's own schema.
    yield f"{server_url}?options=-csearch_path%3D{schema}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def make_review_pdf(tmp_path: Path) -> Callable[..., Path]:
    """Render a small but real review PDF (title page, numbered paragraphs) with reportlab."""

    def make(name: str = "dhr_anna_2022.pdf", *, paragraphs: int = 4, topic: str = "Anna") -> Path:
        from reportlab.lib.pagesizes import A4
        from reportlab.pdfgen import canvas

        path = tmp_path / name
        pdf = canvas.Canvas(str(path), pagesize=A4)
        write_title_page(pdf, topic)
        write_body(pdf, topic, paragraphs)
        pdf.save()
        return path

    return make


def write_title_page(pdf: Any, topic: str) -> None:
    pdf.setFont("Helvetica-Bold", 18)
    pdf.drawString(72, 750, f"Domestic Homicide Review into the death of {topic}")
    pdf.setFont("Helvetica", 12)
    pdf.drawString(72, 720, "Westshire Community Safety Partnership")
    pdf.drawString(72, 700, "Published March 2022")
    pdf.showPage()


def write_body(pdf: Any, topic: str, paragraphs: int) -> None:
    y = 770
    pdf.setFont("Helvetica-Bold", 14)
    pdf.drawString(72, y, "2. Analysis of agency involvement")
    pdf.setFont("Helvetica", 11)
    y -= 30
    for number in range(1, paragraphs + 1):
        text = (
            f"2.{number} Officers attended the home of {topic} on {number} March. A DASH risk assessment was "
            "graded standard and no referral was made to MARAC. This was a missed opportunity to share "
            "information with children's social care."
        )
        for line in textwrap.wrap(text, 88):
            pdf.drawString(72, y, line)
            y -= 15
        y -= 10
    pdf.showPage()


def cached_in_two_precisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, texts: list[str], precisions: tuple[str, str]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Embed `texts` through a new database's vector cache in each of two precisions, in turn; returns each
    precision's vectors and the stored (model, text hash) rows, and checks that the cache then answers for
    the second precision with exactly its own vectors."""
    import numpy as np
    from sqlalchemy import select

    from vkpp_learning import embeddings
    from vkpp_learning.db.engine import open_database
    from vkpp_learning.db.models import Embedding

    db = open_database(sqlite_url(tmp_path / "cache.sqlite"))
    try:
        vectors = {}
        for chosen in precisions:
            monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", chosen)
            with db.writing() as session:
                vectors[chosen] = embeddings.cached_encode(session, texts)
        with db.session() as session:
            stored = sorted(tuple(row) for row in session.execute(select(Embedding.model, Embedding.text_hash)))
            with db.writing() as again:
                assert np.array_equal(embeddings.cached_encode(again, texts), vectors[precisions[1]])
    finally:
        db.dispose()
    return vectors, stored
