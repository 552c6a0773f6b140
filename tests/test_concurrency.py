"""Concurrency on SQLite (WAL) and PostgreSQL: analysts annotating the same passage at once keep every
decision; readers keep reading, never blocked and never seeing half a review, while another process ingests."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pipelines.ingest import ingest
from tests.conftest import CORPUS, sample_pdfs
from vkpp_learning import annotations
from vkpp_learning.db import Database, models, open_database
from vkpp_learning.roles import Role, User

ALICE = User("alice@force.example", Role.ANALYST, "login")
BOB = User("bob@force.example", Role.ANALYST, "login")
VKPP = (sys.executable, "-c", "from vkpp_learning.cli import main; main()")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    ingest([str(CORPUS / "dhr_louise_2023.pdf")], db_url)
    database = open_database(db_url)
    yield database
    database.dispose()


def first_passage(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.min(models.Passage.id))) or 0)


def test_two_analysts_annotating_the_same_passage_at_once_keep_every_decision(db: Database) -> None:
    passage = first_passage(db)
    rounds = 15
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def analyst(user: User, decision: str) -> None:
        try:
            start.wait()
            for n in range(rounds):
                with db.writing() as session:  # each decision its own transaction, as the app makes them
                    annotations.annotate(session, user, passage, "practice", "risk", decision, note=f"{n}")
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise be lost
            failures.append(exc)

    threads = [
        threading.Thread(target=analyst, args=(ALICE, "confirm")),
        threading.Thread(target=analyst, args=(BOB, "reject")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    with db.session() as session:
        kept = annotations.decisions(session, passage)
        tags = annotations.effective_tags(session, [passage])[passage]
    by_user = {user: [d.note for d in kept if d.user_name == user] for user in (ALICE.name, BOB.name)}
    assert by_user == {ALICE.name: [str(n) for n in range(rounds)], BOB.name: [str(n) for n in range(rounds)]}
    # The latest decision (the highest id) is the one in force, whoever made it.
    latest = max(kept, key=lambda d: d.id)
    has_risk = any(t.facet == "practice" and t.label == "risk" for t in tags)
    assert has_risk == (latest.decision == "confirm")


def test_a_review_being_written_is_invisible_and_does_not_block_readers(db: Database, db_url: str) -> None:
    from pipelines.ingest import Job, file_sha256, read_review
    from vkpp_learning.db.store import add_review

    path = CORPUS / "sar_margaret_2023.pdf"
    item = read_review(Job(str(path), file_sha256(path), path.stat().st_size), "extract.pdfium.v1", "off")
    written, release = threading.Event(), threading.Event()

    def writer() -> None:
        with db.writing() as session:
            add_review(session, item)  # type: ignore[arg-type]
            session.flush()
            written.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    assert written.wait(30)
    started = time.perf_counter()
    with db.session() as session:
        reviews = session.scalar(select(func.count()).select_from(models.Review))
        passages = session.scalar(select(func.count()).select_from(models.Passage))
    assert time.perf_counter() - started < 2  # read at once, not after the writer
    assert reviews == 1 and passages == count_passages(db, "dhr_louise_2023.pdf")
    release.set()
    thread.join()
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(models.Review)) == 2


def count_passages(db: Database, filename: str) -> int:
    with db.session() as session:
        statement = select(func.count()).select_from(models.Passage).join(models.Review)
        return int(session.scalar(statement.where(models.Review.filename == filename)) or 0)


def snapshot(session: object) -> dict[str, int]:
    """Passages per stored review, read in one transaction."""
    statement = (
        select(models.Review.filename, func.count(models.Passage.id))
        .join(models.Passage, isouter=True)
        .group_by(models.Review.id, models.Review.filename)
    )
    return dict(session.execute(statement).all())  # type: ignore[attr-defined]


def test_readers_keep_reading_whole_reviews_while_another_process_ingests(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    pdfs = [str(p) for p in sample_pdfs() if p.name != "dhr_louise_2023.pdf"][:6]
    command = [*VKPP, "ingest", *pdfs, "--db", db_url, "--json"]
    ingesting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[dict[str, int]] = []
    slowest = 0.0
    while ingesting.poll() is None:
        started = time.perf_counter()
        with db.session() as session:
            seen.append(snapshot(session))
        slowest = max(slowest, time.perf_counter() - started)
        time.sleep(0.02)
    assert ingesting.returncode == 0, ingesting.stderr.read() if ingesting.stderr else ""
    with db.session() as session:
        final = snapshot(session)
    assert len(final) == 7
    # Reviews only ever appear, and each appears whole: the passages it has at the end.
    sizes = [len(s) for s in seen]
    assert sizes == sorted(sizes) and len(set(sizes)) >= 2  # reads went on while reviews were being added
    assert all(counts == {name: final[name] for name in counts} for counts in seen)
    assert len(seen) > 10 and slowest < 5
