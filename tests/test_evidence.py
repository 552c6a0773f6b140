"""Roles, citations, evidence baskets and analysts' annotations on the real sample reviews, tagged by the
real taggers, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import CORPUS, sqlite_url
from vkpp_learning import annotations, baskets
from vkpp_learning.citations import abbreviate_commissioner, citation
from vkpp_learning.cli import main
from vkpp_learning.db import Database, models, open_database
from vkpp_learning.db.store import delete_review
from vkpp_learning.errors import ConfigurationError, PermissionDenied, VkppError
from vkpp_learning.roles import Role, User, can, local_user, parse_roles, require, resolve_user

LOUISE = "dhr_louise_2023.pdf"  # the review the fixtures tag with the real taggers
OFFENDER_X = "mappa_offender_x_2020.pdf"
ALICE = User("alice@force.example", Role.ANALYST, "login")
BOB = User("bob@force.example", Role.ANALYST, "login")
VERA = User("vera@force.example", Role.VIEWER, "login")
ADMIN = User("ada@force.example", Role.ADMIN, "login")


# --- fixtures: the sample database, copied, with Louise's review tagged by the real taggers -----------


def copy_sqlite(source_url: str, target: Path) -> str:
    """A consistent copy of a SQLite database (the backup API includes what is still in the WAL)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source_url.removeprefix("sqlite:///")) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return sqlite_url(target)


def review_id(session: Session, filename: str) -> int:
    return session.scalar(select(models.Review.id).where(models.Review.filename == filename))


def tag_review(db: Database, filename: str) -> None:
    """Tag one review's passages with every default tagger; one current tag run per tagger, as stored runs."""
    from vkpp_learning.records import TagInput
    from vkpp_learning.tagging.base import create_tagger, run_info
    from vkpp_learning.tagging.detectors import DEFAULT_TAGGERS

    with db.writing() as session:
        rows = session.execute(
            select(models.Passage, models.Review.review_type)
            .join(models.Review)
            .where(models.Review.filename == filename)
            .order_by(models.Passage.ordinal)
        ).all()
        items = [TagInput(p.text, review_type, p.section_kind, p.kind) for p, review_type in rows]
        for name in DEFAULT_TAGGERS:
            tagger = create_tagger(name)
            run = store_run(session, run_info(tagger))
            for (passage, _type), results in zip(rows, tagger.tag(items), strict=True):
                session.add_all(
                    models.Tag(
                        passage_id=passage.id,
                        run_id=run.id,
                        facet=r.facet,
                        label=r.label,
                        score=r.score,
                        evidence=r.evidence,
                    )
                    for r in results
                )


def store_run(session: Session, info: object) -> models.TagRun:
    run = models.TagRun(
        method=info.method,  # type: ignore[attr-defined]
        taxonomy_version=info.taxonomy_version,  # type: ignore[attr-defined]
        model_version=info.model_version,  # type: ignore[attr-defined]
        params=info.params,  # type: ignore[attr-defined]
        thresholds=info.thresholds,  # type: ignore[attr-defined]
        is_current=True,
    )
    session.add(run)
    session.flush()
    return run


@pytest.fixture(scope="session")
def tagged_master(sample_db: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample database with Louise's review tagged, built once per session (shared by test_export)."""
    path = tmp_path_factory.getbasetemp() / "evidence" / "tagged.sqlite"
    if not path.exists():
        building = copy_sqlite(sample_db, path.with_name("building.sqlite"))
        db = open_database(building)
        tag_review(db, LOUISE)
        db.dispose()
        copy_sqlite(building, path)
    return sqlite_url(path)


@pytest.fixture
def repo(tagged_master: str, tmp_path: Path) -> Iterator[Database]:
    """A private copy of the tagged sample database for one test."""
    db = open_database(copy_sqlite(tagged_master, tmp_path / "repo.sqlite"))
    yield db
    db.dispose()


def copy_tags(source_url: str, target: Database, filename: str) -> None:
    """The tag runs and tags of one review, copied by passage ordinal into another database."""
    source = open_database(source_url)
    with source.session() as read:
        runs = read.scalars(select(models.TagRun)).all()
        tags = read.execute(
            select(models.Tag, models.Passage.ordinal)
            .join(models.Passage)
            .join(models.Review)
            .where(models.Review.filename == filename)
        ).all()
    source.dispose()
    with target.writing() as session:
        ordinals = dict(
            session.execute(
                select(models.Passage.ordinal, models.Passage.id).where(
                    models.Passage.review_id == review_id(session, filename)
                )
            ).all()
        )
        new_runs = {run.id: store_run(session, run) for run in runs}
        session.add_all(
            models.Tag(
                passage_id=ordinals[ordinal],
                run_id=new_runs[tag.run_id].id,
                facet=tag.facet,
                label=tag.label,
                score=tag.score,
                evidence=tag.evidence,
            )
            for tag, ordinal in tags
        )


@pytest.fixture
def backend_repo(db_url: str, tagged_master: str) -> Iterator[Database]:
    """Two real reviews ingested into an empty SQLite or PostgreSQL database, Louise's with real tags."""
    from pipelines.ingest import ingest

    summary = ingest([str(CORPUS / LOUISE), str(CORPUS / OFFENDER_X)], db_url)
    assert summary.reviews == 2 and not summary.errors
    db = open_database(db_url)
    copy_tags(tagged_master, db, LOUISE)
    yield db
    db.dispose()


def find_passage(
    session: Session, filename: str, *, paragraph: str | None = None, kind: str = "paragraph", multi_page: bool = False
) -> models.Passage:
    """The first passage of a review that matches: by printed paragraph number, kind, or spanning pages."""
    statement = select(models.Passage).where(
        models.Passage.review_id == review_id(session, filename), models.Passage.kind == kind
    )
    if paragraph is not None:
        statement = statement.where(models.Passage.paragraph == paragraph)
    if multi_page:
        statement = statement.where(models.Passage.page_end > models.Passage.page_start)
    passage = session.scalars(statement.order_by(models.Passage.ordinal)).first()
    assert passage is not None, f"no such passage in {filename}"
    return passage


def tagged_passage(session: Session, facet: str = "practice") -> tuple[int, str]:
    """A passage of Louise's review with a current machine tag in `facet`, and that tag's label."""
    row = session.execute(
        select(models.Tag.passage_id, models.Tag.label)
        .join(models.TagRun)
        .where(models.TagRun.is_current.is_(True), models.Tag.facet == facet)
        .order_by(models.Tag.passage_id, models.Tag.label)
    ).first()
    assert row is not None, "the fixture's tag run made no tags"
    return row.passage_id, row.label


# --- roles ------------------------------------------------------------------------------------------


def test_roles_are_ordered_and_actions_follow_them() -> None:
    assert Role.VIEWER < Role.ANALYST < Role.ADMIN
    assert [a for a in ("read", "export", "annotate", "basket", "ingest", "taxonomy", "delete") if can(VERA, a)] == [
        "read",
        "export",
    ]
    assert not can(ALICE, "taxonomy") and not can(ALICE, "delete") and can(ALICE, "ingest")
    assert all(can(ADMIN, a) for a in ("annotate", "basket", "taxonomy", "delete"))
    with pytest.raises(PermissionDenied, match="viewer and cannot confirm, reject or add tags"):
        require(VERA, "annotate")
    with pytest.raises(PermissionDenied, match="only admins can"):
        require(ALICE, "delete")
    with pytest.raises(ValueError, match="unknown action"):
        can(ADMIN, "launch")


def test_login_users_get_their_role_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKPP_ROLES", " Alice@Force.example = analyst, ada@force.example=ADMIN ,")
    assert resolve_user("alice@force.example") == User("alice@force.example", Role.ANALYST, "login")
    assert resolve_user("ada@force.example").role is Role.ADMIN
    stranger = resolve_user("someone@else.example")
    assert (stranger.role, stranger.mode) == (Role.VIEWER, "login")


def test_without_login_vkpp_runs_in_single_user_local_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKPP_USER", "Analyst One")
    user = resolve_user(None)
    assert (user.name, user.role, user.mode, user.local) == ("Analyst One", Role.ADMIN, "local", True)
    monkeypatch.setenv("VKPP_USER", "")
    assert resolve_user("  ").name  # the OS account's name, never empty
    assert local_user("bob").name == "bob"


def test_bad_role_settings_are_configuration_errors() -> None:
    assert parse_roles("") == {}
    with pytest.raises(ConfigurationError, match="unknown role 'superuser'"):
        parse_roles("a@b.example=superuser")
    with pytest.raises(ConfigurationError, match="is not 'email=role'"):
        parse_roles("a@b.example")


# --- citations --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "where", "expected"),
    [
        (LOUISE, {"paragraph": "7.11"}, 'DHR "Louise", Eastmoor CSP, 2023, p. 7, para 7.11'),
        (LOUISE, {"kind": "table_row"}, 'DHR "Louise", Eastmoor CSP, 2023, p. 4, chronology row'),
        ("cpr_child_e_2020.pdf", {"multi_page": True}, 'CPR "Child E", Bro Morlais RSCB, 2020, pp. 4-5, para 6.1.3'),
        ("dhr_gemma_2024.pdf", {"paragraph": "Para 1"}, 'DARDR "Gemma", Stourfield CSP, 2024, p. 3, para 1'),
        ("scr_baby_m_2016.pdf", {"paragraph": "Para 1"}, 'SCR "Baby M", Harwick LSCB, 2016, p. 3, para 1'),
        ("mappa_mr_k_2022.pdf", {"paragraph": "1.1"}, 'MAPPA SCR "Mr K", Riverdale MAPPA SMB, 2022, p. 3, para 1.1'),
        (
            "dhr_sophie_exec_2022.pdf",
            {"paragraph": "1.1"},
            'DHR "Sophie", executive summary, Ashcombe CSP, 2022, p. 3, para 1.1',
        ),
        ("apr_adult_h_2019.pdf", {}, 'APR "Adult H", Dyffryn RSAB, 2019, p. 1'),  # unnumbered
    ],
)
def test_citations_of_sample_passages(sample_db: str, filename: str, where: dict, expected: str) -> None:
    db = open_database(sample_db)
    with db.session() as session:
        passage = find_passage(session, filename, **where)
        assert citation(passage.review, passage) == expected
    db.dispose()


def test_unnumbered_passage_over_a_page_break_has_pages_but_no_paragraph(sample_db: str) -> None:
    db = open_database(sample_db)
    with db.session() as session:
        passage = session.scalars(
            select(models.Passage).where(
                models.Passage.review_id == review_id(session, LOUISE),
                models.Passage.paragraph.is_(None),
                models.Passage.kind == "paragraph",
                models.Passage.page_end > models.Passage.page_start,
            )
        ).first()
        assert passage is not None
        assert citation(passage.review, passage) == 'DHR "Louise", Eastmoor CSP, 2023, pp. 7-8'
    db.dispose()


def test_unknown_fields_are_left_out_not_printed() -> None:
    review = models.Review(
        review_type="unknown",
        subtype=None,
        title="unknown",
        subject="unknown",
        year=None,
        area="Westvale",
        commissioner="unknown",
        executive_summary=False,
    )
    passage = models.Passage(kind="paragraph", section_kind="analysis", paragraph=None, page_start=12, page_end=12)
    assert citation(review, passage) == "Westvale, p. 12"
    review.title, review.area = "Review of practice: Ms P", "unknown"
    assert citation(review, passage) == '"Review of practice: Ms P", p. 12'


def test_commissioner_abbreviations() -> None:
    assert abbreviate_commissioner("Eastmoor Community Safety Partnership") == "Eastmoor CSP"
    assert abbreviate_commissioner("Northbridge Safeguarding Children Partnership") == "Northbridge SCP"
    assert abbreviate_commissioner("Kingsmere Safeguarding Adults Board") == "Kingsmere SAB"
    assert abbreviate_commissioner("Tees Local Safeguarding Children Partnership") == "Tees LSCP"
    assert abbreviate_commissioner("Bro Morlais Regional Safeguarding Children Board") == "Bro Morlais RSCB"
    assert abbreviate_commissioner("Home Office") == "Home Office"


# --- baskets ----------------------------------------------------------------------------------------


def test_basket_add_note_remove_and_survive_a_restart(backend_repo: Database) -> None:
    query = {"query": "stalking", "mode": "hybrid", "filters": {"type": ["DHR"], "year_from": 2021}}
    with backend_repo.writing() as session:
        first = find_passage(session, LOUISE, paragraph="7.12").id
        second = find_passage(session, OFFENDER_X, paragraph="1.1.1").id
        baskets.create_basket(session, ALICE, "  Stalking   in DHRs ", "for the March briefing")
        assert baskets.add_to_basket(
            session, ALICE, "Stalking in DHRs", first, note="stalking not recognised", query=query
        )
        assert baskets.add_to_basket(session, ALICE, "Stalking in DHRs", second)
        assert not baskets.add_to_basket(session, BOB, "Stalking in DHRs", first, query=dict(reversed(query.items())))
    url = backend_repo.url
    backend_repo.dispose()  # a restart: nothing is kept in memory
    reopened = open_database(url)
    with reopened.session() as session:
        [summary] = baskets.list_baskets(session)
        assert (summary.name, summary.excerpts, summary.searches, summary.created_by) == (
            "Stalking in DHRs",
            2,
            1,
            ALICE.name,
        )
        assert baskets.basket_queries(session, "Stalking in DHRs") == [query]
        excerpts = baskets.basket_excerpts(session, "Stalking in DHRs")
    assert [e.passage_id for e in excerpts] == [first, second]
    assert excerpts[0].citation == 'DHR "Louise", Eastmoor CSP, 2023, p. 7, para 7.12'
    assert excerpts[0].note == "stalking not recognised" and excerpts[0].added_by == ALICE.name
    assert excerpts[0].themes, "Louise's para 7.12 is tagged by the rules tagger"
    assert excerpts[1].themes == [] and excerpts[1].review_type == "MAPPA"
    with reopened.writing() as session:
        baskets.set_note(session, BOB, "Stalking in DHRs", second, "MAPPA level not reviewed")
        assert baskets.remove_from_basket(session, BOB, "Stalking in DHRs", first)
        assert not baskets.remove_from_basket(session, BOB, "Stalking in DHRs", first)
    with reopened.session() as session:
        [left] = baskets.basket_excerpts(session, "Stalking in DHRs")
    assert (left.passage_id, left.note) == (second, "MAPPA level not reviewed")
    reopened.dispose()


def test_basket_names_rename_and_delete(repo: Database) -> None:
    with repo.writing() as session:
        baskets.create_basket(session, ALICE, "Risk")
        with pytest.raises(VkppError, match="already a basket called 'Risk'"):
            baskets.create_basket(session, BOB, "Risk")
        with pytest.raises(VkppError, match="needs a name"):
            baskets.create_basket(session, BOB, "   ")
        baskets.create_basket(session, BOB, "Curiosity")
        baskets.rename_basket(session, ALICE, "Risk", "Risk assessment")
        with pytest.raises(VkppError, match="already a basket"):
            baskets.rename_basket(session, ALICE, "Risk assessment", "Curiosity")
        with pytest.raises(PermissionDenied, match="only admins"):
            baskets.delete_basket(session, ALICE, "Curiosity")  # Bob's basket
        baskets.delete_basket(session, ALICE, "Risk assessment")  # her own
        baskets.delete_basket(session, ADMIN, "Curiosity")
    with repo.session() as session:
        assert baskets.list_baskets(session) == []
        with pytest.raises(VkppError, match="no basket called 'Risk'; there are no baskets yet"):
            baskets.basket_excerpts(session, "Risk")


def test_unknown_basket_and_passage_are_clear_errors(repo: Database) -> None:
    with repo.writing() as session:
        baskets.create_basket(session, ALICE, "Briefing")
        with pytest.raises(VkppError, match="no basket called 'Other'; baskets: Briefing") as error:
            baskets.add_to_basket(session, ALICE, "Other", 1)
        assert error.value.code == "unknown_basket"
        with pytest.raises(VkppError, match="passage 999999 is not in the repository") as error:
            baskets.add_to_basket(session, ALICE, "Briefing", 999_999)
        assert error.value.code == "unknown_passage"


def test_a_deleted_reviews_passages_leave_the_basket_with_a_message(backend_repo: Database) -> None:
    with backend_repo.writing() as session:
        louise = [find_passage(session, LOUISE, paragraph=p).id for p in ("7.11", "7.12")]
        other = find_passage(session, OFFENDER_X, paragraph="1.1.1").id
        louise_sha = session.scalar(select(models.Review.sha256).where(models.Review.filename == LOUISE))
        baskets.create_basket(session, ALICE, "Mixed")
        for passage_id in [*louise, other]:
            baskets.add_to_basket(session, ALICE, "Mixed", passage_id, note=f"note {passage_id}")
    assert delete_review(backend_repo, louise_sha)
    with backend_repo.writing() as session:
        assert [e.passage_id for e in baskets.basket_excerpts(session, "Mixed")] == [other]
        assert baskets.list_baskets(session)[0].excerpts == 1
        with pytest.raises(VkppError, match=r"no longer in the repository .* has left the basket 'Mixed'"):
            baskets.set_note(session, ALICE, "Mixed", louise[0], "too late")
        assert not baskets.remove_from_basket(session, ALICE, "Mixed", louise[1])
        with pytest.raises(VkppError, match="review may have been deleted"):
            baskets.add_to_basket(session, ALICE, "Mixed", louise[0])


def test_viewers_cannot_change_baskets_or_annotate_in_the_library(repo: Database) -> None:
    with repo.writing() as session:
        passage_id, label = tagged_passage(session)
        baskets.create_basket(session, ALICE, "Alice's")
        for write in (
            lambda: baskets.create_basket(session, VERA, "Vera's"),
            lambda: baskets.add_to_basket(session, VERA, "Alice's", passage_id),
            lambda: baskets.set_note(session, VERA, "Alice's", passage_id, "x"),
            lambda: baskets.remove_from_basket(session, VERA, "Alice's", passage_id),
            lambda: baskets.rename_basket(session, VERA, "Alice's", "Mine"),
            lambda: baskets.delete_basket(session, VERA, "Alice's"),
            lambda: annotations.annotate(session, VERA, passage_id, "practice", label, "reject"),
        ):
            with pytest.raises(PermissionDenied):
                write()
    with repo.session() as session:
        assert session.scalar(select(func.count()).select_from(models.Annotation)) == 0
        assert session.scalar(select(func.count()).select_from(models.BasketItem)) == 0
        assert [b.name for b in baskets.list_baskets(session)] == ["Alice's"]


# --- annotations --------------------------------------------------------------------------------------


def test_two_analysts_decisions_are_both_kept_and_the_latest_wins(backend_repo: Database) -> None:
    with backend_repo.writing() as session:
        passage_id, label = tagged_passage(session)
        [machine] = [t for t in annotations.effective_tags(session, [passage_id])[passage_id] if t.label == label]
        assert machine.source.startswith("tagger.") and machine.score is not None and not machine.by_analyst
        annotations.annotate(session, ALICE, passage_id, "practice", label, "confirm", note="clear example")
    with backend_repo.writing() as session:
        annotations.annotate(session, BOB, passage_id, "practice", label, "reject", note="about housing, not police")
        added = next(t for t in ("diversity_inclusion", "capacity_resources") if t != label)
        annotations.annotate(session, BOB, passage_id, "practice", added, "add")
    with backend_repo.session() as session:
        history = annotations.decisions(session, passage_id)
        tags = annotations.effective_tags(session, [passage_id])[passage_id]
    assert [(d.user_name, d.label, d.decision) for d in history] == [
        (ALICE.name, label, "confirm"),
        (BOB.name, label, "reject"),
        (BOB.name, added, "add"),
    ]
    assert history[0].note == "clear example" and history[0].created_at is not None
    practice = {t.label: t for t in tags if t.facet == "practice"}
    assert label not in practice, "Bob's reject is the latest decision on that tag"
    assert practice[added].source == f"analyst:{BOB.name}" and practice[added].score is None
    with backend_repo.writing() as session:
        annotations.annotate(session, ALICE, passage_id, "practice", label, "confirm")
    with backend_repo.session() as session:
        [back] = [t for t in annotations.effective_tags(session, [passage_id])[passage_id] if t.label == label]
    assert back.source == f"analyst:{ALICE.name}" and back.score == machine.score and back.method == machine.method
    with backend_repo.session() as session:
        assert annotations.analyst_labels(session)[passage_id]["practice"] == {label: True, added: True}
        assert annotations.analyst_labels(session, ["agency"]) == {}


def test_retagging_never_overwrites_decisions(repo: Database) -> None:
    with repo.writing() as session:
        passage_id, label = tagged_passage(session)
        annotations.annotate(session, ALICE, passage_id, "practice", label, "reject")
        old_runs = session.scalars(select(models.TagRun)).all()
        for run in old_runs:
            run.is_current = False
    tag_review(repo, LOUISE)  # a new current run that proposes the same tags again
    with repo.session() as session:
        assert session.scalar(select(func.count()).select_from(models.TagRun)) == 2 * len(old_runs)
        labels = [t.label for t in annotations.effective_tags(session, [passage_id])[passage_id]]
        assert label not in labels
        assert [d.decision for d in annotations.decisions(session, passage_id)] == ["reject"]


def test_concurrent_analysts_on_the_same_passage_lose_nothing(backend_repo: Database) -> None:
    with backend_repo.session() as session:
        passage_id, label = tagged_passage(session)
    rounds = 8

    def analyst(user: User) -> None:
        for number in range(rounds):
            with backend_repo.writing() as session:
                decision = "confirm" if number % 2 == 0 else "reject"
                annotations.annotate(session, user, passage_id, "practice", label, decision, note=str(number))

    threads = [threading.Thread(target=analyst, args=(user,)) for user in (ALICE, BOB)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with backend_repo.session() as session:
        history = annotations.decisions(session, passage_id)
        tags = annotations.effective_tags(session, [passage_id])[passage_id]
    assert sorted((d.user_name, d.note) for d in history) == sorted(
        (user.name, str(n)) for user in (ALICE, BOB) for n in range(rounds)
    )
    assert label not in [t.label for t in tags if t.facet == "practice"], "both analysts' last decision is a reject"


def test_annotation_checks_decision_facet_label_and_passage(repo: Database) -> None:
    with repo.writing() as session:
        passage_id, _label = tagged_passage(session)
        cases = [
            ((passage_id, "practice", "risk_assessment", "maybe"), "bad_decision"),
            ((passage_id, "colour", "red", "add"), "bad_facet"),
            ((passage_id, "practice", "not_a_theme", "add"), "bad_label"),
            ((passage_id, "missed_opportunity", "yes", "add"), "bad_label"),
            ((999_999, "practice", "risk_assessment", "add"), "unknown_passage"),
        ]
        for args, code in cases:
            with pytest.raises(VkppError) as error:
                annotations.annotate(session, ALICE, *args)
            assert error.value.code == code
        annotations.annotate(session, ALICE, passage_id, "recommendation_to", "police", "add")
        annotations.annotate(session, ALICE, passage_id, "missed_opportunity", "true", "add")
        tags = annotations.effective_tags(session, [passage_id, 999_999])
    assert tags[999_999] == []
    assert {("recommendation_to", "police"), ("missed_opportunity", "true")} <= {
        (t.facet, t.label) for t in tags[passage_id]
    }


def test_annotation_queue_puts_unannotated_uncertain_tags_first(backend_repo: Database) -> None:
    with backend_repo.session() as session:
        queue = annotations.annotation_queue(session, "practice", limit=500)
        scores = session.execute(
            select(models.Tag.passage_id, models.Tag.score, models.TagRun)
            .join(models.TagRun)
            .where(models.TagRun.is_current.is_(True), models.Tag.facet == "practice")
        ).all()
    # Distance is measured from the threshold the tag run recorded (calibrated), not a fixed 0.5.
    nearest: dict[int, float] = {}
    for passage, score, run in scores:
        distance = round(abs(score - annotations.run_threshold(run, "practice")), 6)
        nearest[passage] = min(nearest.get(passage, 1.0), distance)
    assert len(queue) == len(nearest) > 5
    assert {item.passage_id: item.distance for item in queue} == nearest
    assert [item.distance for item in queue] == sorted(item.distance for item in queue)
    assert queue[0].text and queue[0].citation.startswith('DHR "Louise", Eastmoor CSP, 2023, p. ')
    first = queue[0]
    with backend_repo.writing() as session:
        annotations.annotate(session, ALICE, first.passage_id, "practice", first.label, "confirm")
    with backend_repo.session() as session:
        after = annotations.annotation_queue(session, "practice", limit=500)
    assert after[-1].passage_id == first.passage_id and after[-1].annotated
    assert not any(item.annotated for item in after[:-1])
    with backend_repo.session() as session:
        assert len(annotations.annotation_queue(session, "practice", limit=3)) == 3


# --- the command line -----------------------------------------------------------------------------------


def vkpp(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_cli_basket_and_annotate(tagged_master: str, tmp_path: Path) -> None:
    db = copy_sqlite(tagged_master, tmp_path / "cli.sqlite")
    opened = open_database(db)
    with opened.session() as session:
        passage_id, label = tagged_passage(session)
        second = find_passage(session, LOUISE, kind="table_row").id
    opened.dispose()
    assert vkpp("basket", "create", "Stalking", "--db", db, "--user", "ann").exit_code == 0
    added = vkpp("basket", "add", "Stalking", str(passage_id), str(second), "--note", "key", "--db", db)
    assert added.exit_code == 0 and "Added 2 passage(s)" in added.stdout
    again = vkpp("basket", "add", "Stalking", str(second), "--db", db)
    assert "Added 0 passage(s) to 'Stalking'; 1 already there." in again.stdout
    listing = json.loads(vkpp("basket", "list", "--json", "--db", db).stdout)
    assert [(b["name"], b["excerpts"], b["created_by"]) for b in listing] == [("Stalking", 2, "ann")]
    shown = vkpp("basket", "show", "Stalking", "--db", db).stdout
    assert 'DHR "Louise", Eastmoor CSP, 2023, p. 4, chronology row' in shown and "note: key" in shown
    payload = json.loads(vkpp("basket", "show", "Stalking", "--json", "--db", db).stdout)
    assert [e["passage_id"] for e in payload["excerpts"]] == [passage_id, second]
    rejected = vkpp(
        "annotate",
        str(passage_id),
        "--facet",
        "practice",
        "--label",
        label,
        "--decision",
        "reject",
        "--user",
        "ann",
        "--db",
        db,
    )
    assert rejected.exit_code == 0 and f"ann rejects practice={label}" in rejected.stdout
    viewer = vkpp(
        "annotate",
        str(passage_id),
        "--facet",
        "practice",
        "--label",
        label,
        "--decision",
        "confirm",
        "--user",
        "vic@force.example",
        "--db",
        db,
        env={"VKPP_ROLES": "vic@force.example=viewer"},
    )
    assert viewer.exit_code == 1 and "is a viewer and cannot" in viewer.output
    missing = vkpp("basket", "show", "Nope", "--db", db)
    assert missing.exit_code == 1 and "no basket called 'Nope'" in missing.output
    opened = open_database(db)
    with opened.session() as session:
        assert [(d.user_name, d.decision) for d in annotations.decisions(session, passage_id)] == [("ann", "reject")]
    opened.dispose()


def test_basket_subcommands_have_real_help() -> None:
    import click

    group = main.commands["basket"]
    assert isinstance(group, click.Group) and set(group.commands) >= {"create", "add", "list", "show"}
    for name, command in group.commands.items():
        assert command.help and len(command.help) > 20, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and len(param.help) > 15, f"vkpp basket {name} {param.opts[0]}"
        assert vkpp("basket", name, "--help").exit_code == 0


def test_effective_tags_agree_with_the_search_filters(repo: Database) -> None:
    """Baskets and exports show the same effective tags that search filters and facets use."""
    from vkpp_learning.search.facets import effective_labels

    with repo.writing() as session:
        ids = session.scalars(
            select(models.Passage.id).where(models.Passage.review_id == review_id(session, LOUISE))
        ).all()
        tagged = annotations.effective_tags(session, ids)
        some = [pid for pid in ids if annotations.labels(tagged[pid], "practice")][:6]
        for number, passage_id in enumerate(some):
            label = next(t.label for t in tagged[passage_id] if t.facet == "practice") if number % 2 else "think_family"
            annotations.annotate(session, ALICE, passage_id, "practice", label, "reject" if number % 2 else "add")
    with repo.session() as session:
        ours = annotations.effective_tags(session, ids)
        theirs = effective_labels(session, "practice", ids)
    for passage_id in ids:
        assert sorted(annotations.labels(ours[passage_id], "practice")) == sorted(theirs.get(passage_id, []))
