"""The storage layer on real databases (a SQLite file and, when reachable, PostgreSQL): migrations,
one-transaction saves, cascading deletes, ingest errors, listing and the passage dump."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from vkpp_learning import records
from vkpp_learning.db import models, open_database
from vkpp_learning.db.engine import Database, current_revision, head_revision, make_engine, migrate
from vkpp_learning.db.store import (
    IngestedReview,
    delete_review,
    find_review,
    iter_dump_rows,
    list_reviews,
    record_ingest_error,
    repository_totals,
    review_counts,
    save_review,
    stored_hashes,
)

SCHEMA_TABLES = {
    "reviews",
    "pages",
    "passages",
    "ingest_errors",
    "tag_runs",
    "tags",
    "tag_run_untagged",
    "annotations",
    "embeddings",
    "baskets",
    "basket_items",
    "ingest_queue",
}


def sha_of(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def make_review(
    label: str = "louise",
    *,
    paragraphs: tuple[str, ...] = ("Officers attended.", "No referral was made to MARAC."),
    page_statuses: tuple[records.PageStatus, ...] = ("ok", "ok"),
    year: int | None = 2022,
    review_type: str = "DHR",
) -> IngestedReview:
    """A processed review built from the real record types, as the pipeline would hand it to storage."""
    texts = [f"2.{i} {body}" for i, body in enumerate(paragraphs, start=1)]
    full_text = "\n\n".join(texts)
    passages, start = [], 0
    for ordinal, passage_text in enumerate(texts):
        passages.append(
            records.Passage(
                ordinal=ordinal,
                text=passage_text,
                kind="paragraph",
                section="2. Analysis",
                section_kind="analysis",
                paragraph=f"2.{ordinal + 1}",
                page_start=1,
                page_end=1,
                char_start=start,
                char_end=start + len(passage_text),
            )
        )
        start += len(passage_text) + 2
    pages = [
        records.PageText(number=n, width=595, height=842, blocks=[records.TextBlock("x")], status=status)
        for n, status in enumerate(page_statuses, start=1)
    ]
    document = records.ExtractedDocument(f"/reviews/{label}.pdf", sha_of(label), "extract.pdfium.v1", pages)
    offsets = [(1, 0, len(full_text))] + [(n, len(full_text), len(full_text)) for n in range(2, len(pages) + 1)]
    metadata = records.ReviewMetadata(
        review_type=review_type,
        title=f"Domestic Homicide Review: {label}",
        subject=label.title(),
        year=year,
        area="Westshire",
        page_count=len(pages),
        sources={"review_type": "title_page"},
        unknown_reasons={} if year else {"year": "no date on the title page"},
    )
    segmentation = records.Segmentation(full_text, passages, offsets)
    return IngestedReview(f"/reviews/{label}.pdf", sha_of(label), 2048, document, segmentation, metadata, "test")


@pytest.fixture
def db(db_url: str) -> Database:
    database = open_database(db_url)
    yield database
    database.dispose()


def count_rows(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_migrations_upgrade_downgrade_and_upgrade_again(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    migrate(db_url, "head")
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= SCHEMA_TABLES
    migrate(db_url, "base", downgrade=True)
    assert current_revision(engine) is None
    assert not SCHEMA_TABLES & set(inspect(engine).get_table_names())
    migrate(db_url, "head")
    assert set(inspect(engine).get_table_names()) >= SCHEMA_TABLES
    engine.dispose()


def test_migrations_create_exactly_the_models(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from vkpp_learning.search.index import include_in_model_comparison

    with db.engine.connect() as connection:
        opts = {"compare_type": True, "include_name": include_in_model_comparison}
        context = MigrationContext.configure(connection, opts=opts)
        assert compare_metadata(context, models.Base.metadata) == []


def test_sqlite_file_is_created_with_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "vkpp.sqlite"
    database = open_database(f"sqlite:///{path}")
    with database.engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 30_000
    database.dispose()
    assert path.exists()


def test_a_saved_review_reads_back_with_pages_and_passages(db: Database) -> None:
    item = make_review(page_statuses=("ok", "ocr"))
    review_id = save_review(db, item)
    with db.session() as session:
        review = find_review(session, item.sha256)
        assert review is not None and review.id == review_id
        assert (review.review_type, review.year, review.status) == ("DHR", 2022, "ocr")
        assert review.metadata_sources == {"review_type": "title_page"}
        assert review.full_text == item.segmentation.full_text
        assert [(p.number, p.status) for p in review.pages] == [(1, "ok"), (2, "ocr")]
        stored = review.passages
        assert [p.text for p in stored] == [p.text for p in item.segmentation.passages]
        assert stored[1].text_hash == hashlib.sha256(stored[1].text.encode()).hexdigest()
        assert all(review.full_text[p.char_start : p.char_end] == p.text for p in stored)


def test_a_failed_save_leaves_no_rows(db: Database) -> None:
    item = make_review()
    item.segmentation.passages[1].section = None  # type: ignore[assignment]  # violates passages.section NOT NULL
    with pytest.raises(IntegrityError):
        save_review(db, item)
    assert [count_rows(db, m) for m in (models.Review, models.Page, models.Passage)] == [0, 0, 0]


def test_a_failed_replacement_keeps_the_stored_review(db: Database) -> None:
    save_review(db, make_review())
    broken = make_review(paragraphs=("A new first paragraph.", "A second one."))
    broken.segmentation.passages[0].section = None  # type: ignore[assignment]
    with pytest.raises(IntegrityError):
        save_review(db, broken, replace=True)
    with db.session() as session:
        review = find_review(session, broken.sha256)
        assert review is not None
        assert [p.text for p in review.passages] == ["2.1 Officers attended.", "2.2 No referral was made to MARAC."]


def test_saving_the_same_file_twice_is_refused_and_replace_swaps_it(db: Database) -> None:
    save_review(db, make_review())
    with pytest.raises(IntegrityError):
        save_review(db, make_review())
    save_review(db, make_review(paragraphs=("Only one paragraph now.",)), replace=True)
    assert count_rows(db, models.Review) == 1
    assert count_rows(db, models.Passage) == 1


def add_tag_annotation_and_basket(db: Database, passage_id: int) -> None:
    with db.writing() as session:
        run = models.TagRun(method="tagger.rules.v1", taxonomy_version="1", params={}, thresholds={}, is_current=True)
        basket = models.Basket(name="Stalking briefing", created_by="analyst")
        session.add_all([run, basket])
        session.flush()
        session.add_all(
            [
                models.Tag(passage_id=passage_id, run_id=run.id, facet="practice", label="risk_assessment", score=0.9),
                models.Annotation(
                    passage_id=passage_id, facet="practice", label="risk_assessment", decision="confirm", user_name="a"
                ),
                models.BasketItem(basket_id=basket.id, passage_id=passage_id, added_by="analyst"),
            ]
        )


def test_deleting_a_review_cascades_to_everything_on_its_passages(db: Database) -> None:
    item = make_review()
    save_review(db, item)
    with db.session() as session:
        passage_id = find_review(session, item.sha256).passages[0].id  # type: ignore[union-attr]
    add_tag_annotation_and_basket(db, passage_id)
    assert delete_review(db, item.sha256) is True
    for model in (models.Review, models.Page, models.Passage, models.Tag, models.Annotation, models.BasketItem):
        assert count_rows(db, model) == 0, model.__tablename__
    assert count_rows(db, models.TagRun) == 1 and count_rows(db, models.Basket) == 1
    assert delete_review(db, item.sha256) is False


def test_ingest_errors_are_listed_latest_per_file_and_cleared_by_a_good_ingest(db: Database) -> None:
    record_ingest_error(db, source_path="/reviews/louise.pdf", code="truncated", message="the PDF is truncated")
    record_ingest_error(db, source_path="/reviews/louise.pdf", code="corrupt", message="the PDF is damaged")
    record_ingest_error(db, source_path="/reviews/other.pdf", code="empty_file", message="the file is empty")
    with db.session() as session:
        errors = [(row.filename, row.status, row.error_code) for row in list_reviews(session)]
    assert errors == [("louise.pdf", "error", "corrupt"), ("other.pdf", "error", "empty_file")]
    save_review(db, make_review("louise"))
    with db.session() as session:
        listing = [(row.filename, row.status, row.passages) for row in list_reviews(session)]
        assert repository_totals(session) == {"reviews": 1, "pages": 2, "passages": 2, "failed_files": 1}
    assert listing == [("louise.pdf", "ok", 2), ("other.pdf", "error", 0)]


def test_review_status_follows_its_pages(db: Database) -> None:
    save_review(db, make_review("partly_scanned", page_statuses=("ok", "needs_ocr")))
    with db.session() as session:
        (row,) = list_reviews(session)
    assert row.status == "needs_ocr"


def test_dump_has_citations_and_only_the_current_runs_tags(db: Database) -> None:
    item = make_review()
    save_review(db, item)
    with db.session() as session:
        first, second = (p.id for p in find_review(session, item.sha256).passages)  # type: ignore[union-attr]
    add_tag_annotation_and_basket(db, first)
    with db.writing() as session:
        old = models.TagRun(method="tagger.rules.v0", taxonomy_version="0", params={}, thresholds={})
        session.add(old)
        session.flush()
        session.add(models.Tag(passage_id=second, run_id=old.id, facet="practice", label="stale", score=1.0))
    with db.session() as session:
        rows = list(iter_dump_rows(session, batch_size=1))
    assert [(r["paragraph"], r["page_start"], r["review_type"], r["year"]) for r in rows] == [
        ("2.1", 1, "DHR", 2022),
        ("2.2", 1, "DHR", 2022),
    ]
    assert rows[0]["tags"] == [{"facet": "practice", "label": "risk_assessment", "score": 0.9}]
    assert rows[1]["tags"] == []
    assert rows[0]["sha256"] == item.sha256 and rows[0]["filename"] == "louise.pdf"


def test_review_counts_by_type_and_year(db: Database) -> None:
    save_review(db, make_review("a", year=2021))
    save_review(db, make_review("b", year=2021))
    save_review(db, make_review("c", year=None, review_type="SAR"))
    with db.session() as session:
        assert review_counts(session) == [("DHR", 2021, 2), ("SAR", None, 1)]
        assert stored_hashes(session) == {sha_of("a"), sha_of("b"), sha_of("c")}


def test_nul_characters_are_stored_without_breaking_offsets(db: Database) -> None:
    item = make_review(paragraphs=("Text with a \x00 NUL from a bad PDF.",))
    save_review(db, item)
    with db.session() as session:
        (passage,) = find_review(session, item.sha256).passages  # type: ignore[union-attr]
        assert passage.text == "2.1 Text with a \ufffd NUL from a bad PDF."
        assert passage.char_end - passage.char_start == len(passage.text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paragraphs=st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=6), label=st.uuids())
def test_passage_text_round_trips_exactly(db: Database, paragraphs: list[str], label: object) -> None:
    item = make_review(str(label), paragraphs=tuple(paragraphs))
    save_review(db, item, replace=True)  # hypothesis may draw the same label again
    with db.session() as session:
        stored = [p.text for p in find_review(session, item.sha256).passages]  # type: ignore[union-attr]
        full_text = session.scalar(select(models.Review.full_text).where(models.Review.sha256 == item.sha256))
    expected = [p.text.replace("\x00", "\ufffd") for p in item.segmentation.passages]
    assert stored == expected
    assert full_text == item.segmentation.full_text.replace("\x00", "\ufffd")


def test_writing_takes_the_sqlite_write_lock_at_begin(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'locks.sqlite'}")
    with database.writing() as session:
        # Inside BEGIN IMMEDIATE this connection already holds the RESERVED lock: a second writer must wait.
        assert session.execute(text("SELECT 1")).scalar() == 1
        other = make_engine(database.url)
        with other.connect() as connection:
            connection.exec_driver_sql("PRAGMA busy_timeout=50")
            with pytest.raises(Exception, match="locked"):
                connection.exec_driver_sql("BEGIN IMMEDIATE")
        other.dispose()
    database.dispose()
