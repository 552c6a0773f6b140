"""The `vkpp` command line and the app's Overview page, on real PDFs and real SQLite files."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from tests.conftest import BAD_FILES, CORPUS, ROOT, sample_pdfs, sqlite_url
from vkpp_learning import settings
from vkpp_learning.cli import main, settings_document
from vkpp_learning.db.store import DUMP_COLUMNS

SUMMARY_KEYS = ["reviews", "skipped", "pages", "passages", "seconds", "errors"]
# The deliberately bad sample files and the error each must get (image_only with OCR switched off).
BAD_FILE_CODES = {
    "empty.pdf": ("empty_file",),
    "not_a_pdf.pdf": ("not_pdf",),
    "truncated.pdf": ("truncated", "corrupt"),  # corpus_samples/bad/README.md allows either
    "encrypted.pdf": ("encrypted",),
    "image_only.pdf": ("needs_ocr",),
}
PARTLY_SCANNED = CORPUS / "dhr_gemma_2024.pdf"  # one page of it is an image with no text layer
VKPP = str(Path(sys.executable).with_name("vkpp"))


def vkpp(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def ingest_json(db: str, *paths: Path | str, extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> dict:
    result = vkpp("ingest", "--json", "--db", db, *extra, *map(str, paths), env=env)
    summary = json.loads(result.stdout)
    summary["exit_code"] = result.exit_code
    return summary


@pytest.fixture
def db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "vkpp.sqlite")


@pytest.fixture
def empty_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad" / "empty.pdf"
    path.parent.mkdir()
    path.write_bytes(b"")
    return path


def test_every_command_and_option_has_real_help() -> None:
    for name, command in main.commands.items():
        assert command.help and len(command.help) > 30, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and len(param.help) > 15, f"vkpp {name} {param.opts[0]}"
        assert vkpp(name, "--help").exit_code == 0


def test_installed_script_prints_help() -> None:
    result = subprocess.run([VKPP, "--help"], capture_output=True, text=True, check=True)
    assert all(command in result.stdout for command in ("ingest", "dump", "reviews", "settings", "app"))


def test_settings_doc_is_up_to_date() -> None:
    assert (ROOT / "docs" / "settings.md").read_text() == settings_document()


def test_settings_command_shows_every_setting_and_its_value() -> None:
    shown = json.loads(vkpp("settings", "--json", env={"VKPP_WORKERS": "3"}).stdout)
    assert list(shown) == [s.name for s in settings.SETTINGS]
    assert shown["VKPP_WORKERS"] == "3"
    listing = vkpp("settings").stdout
    assert all(s.name in listing and s.help in listing for s in settings.SETTINGS)


def test_ingest_prints_the_summary_skips_unchanged_files_and_redoes_them_with_force(
    db_url: str, make_review_pdf: Callable[..., Path]
) -> None:
    db = db_url  # a SQLite file, then a PostgreSQL schema
    pdf = make_review_pdf(paragraphs=4)
    first = ingest_json(db, pdf)
    assert list(first)[:-1] == SUMMARY_KEYS
    assert (first["reviews"], first["skipped"], first["pages"], first["errors"], first["exit_code"]) == (1, 0, 2, [], 0)
    assert first["passages"] >= 4
    again = ingest_json(db, pdf)
    assert (again["reviews"], again["skipped"], again["exit_code"]) == (0, 1, 0)
    forced = ingest_json(db, pdf, extra=("--force",))
    assert (forced["reviews"], forced["skipped"], forced["passages"]) == (1, 0, first["passages"])
    listed = json.loads(vkpp("reviews", "--json", "--db", db).stdout)
    assert [(r["filename"], r["status"], r["passages"]) for r in listed] == [(pdf.name, "ok", first["passages"])]


def test_exit_codes_all_ingested_some_failed_all_failed(
    db: str, make_review_pdf: Callable[..., Path], empty_file: Path
) -> None:
    good = make_review_pdf()
    assert ingest_json(db, good)["exit_code"] == 0
    some = ingest_json(db, good, empty_file)
    assert (some["exit_code"], some["skipped"]) == (3, 1)
    assert some["errors"] == [{"file": str(empty_file.resolve()), "error": some["errors"][0]["error"]}]
    assert some["errors"][0]["error"].startswith("empty_file: ")
    assert ingest_json(db, empty_file)["exit_code"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ("ingest", "does/not/exist.pdf"),
        ("ingest",),
        ("ingest", "--backend", "acrobat", "."),
        ("ingest", "--workers", "0", "."),
        ("dump", "--format", "xlsx"),
        ("app", "--port", "0"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], db: str) -> None:
    result = vkpp(*args, "--db", db)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr


def test_a_manifest_without_a_file_column_is_a_usage_error(db: str, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("name,year\nx.pdf,2020\n")
    result = vkpp("ingest", "--db", db, "--manifest", str(manifest), str(tmp_path))
    assert result.exit_code == 2
    assert "'file' column" in result.stderr


def test_a_manifest_row_sets_the_metadata(db: str, make_review_pdf: Callable[..., Path], tmp_path: Path) -> None:
    pdf = make_review_pdf("report.pdf")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,review_type,year,area\nreport.pdf,SAR,2019,Northshire\n")
    assert ingest_json(db, pdf, extra=("--manifest", str(manifest)))["exit_code"] == 0
    (review,) = json.loads(vkpp("reviews", "--json", "--db", db).stdout)
    assert (review["review_type"], review["year"], review["area"]) == ("SAR", 2019, "Northshire")


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    result = vkpp("reviews", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot open the database") and "Traceback" not in result.stderr


def test_folders_are_searched_recursively_and_named_files_are_tried_whatever_their_suffix(
    db: str, make_review_pdf: Callable[..., Path], tmp_path: Path
) -> None:
    nested = tmp_path / "reviews" / "2022"
    nested.mkdir(parents=True)
    make_review_pdf("upper.PDF").rename(nested / "UPPER.PDF")
    (nested / "notes.txt").write_text("not a review")
    text_file = tmp_path / "notes.docx"
    text_file.write_text("a word document, really")
    summary = ingest_json(db, tmp_path / "reviews", text_file)
    assert summary["reviews"] == 1
    assert [e["error"].split(":")[0] for e in summary["errors"]] == ["not_pdf"]


def test_two_workers_store_the_same_passages_as_one(
    tmp_path: Path, make_review_pdf: Callable[..., Path], empty_file: Path
) -> None:
    pdfs = [make_review_pdf(f"dhr_{name}_2022.pdf", topic=name.title()) for name in ("anna", "beth", "cara")]
    dumps = []
    for workers in ("1", "2"):
        db = sqlite_url(tmp_path / f"workers_{workers}.sqlite")
        summary = ingest_json(db, *pdfs, empty_file, extra=("--workers", workers))
        assert (summary["reviews"], len(summary["errors"]), summary["exit_code"]) == (3, 1, 3)
        rows = [json.loads(line) for line in vkpp("dump", "--db", db).stdout.splitlines()]
        dumps.append(sorted((r["filename"], r["ordinal"], r["text"]) for r in rows))
    assert dumps[0] == dumps[1] and len(dumps[0]) >= 12


def test_dump_writes_the_same_passages_as_jsonl_and_csv(
    db: str, make_review_pdf: Callable[..., Path], tmp_path: Path
) -> None:
    ingest_json(db, make_review_pdf())
    rows = [json.loads(line) for line in vkpp("dump", "--db", db).stdout.splitlines()]
    assert rows and list(rows[0]) == list(DUMP_COLUMNS)
    out = tmp_path / "passages.csv"
    assert vkpp("dump", "--db", db, "--format", "csv", "--output", str(out)).exit_code == 0
    with out.open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [r["text"] for r in table] == [r["text"] for r in rows]
    assert [int(r["page_start"]) for r in table] == [r["page_start"] for r in rows]
    assert any("MARAC" in r["text"] and r["paragraph"] for r in rows)
    assert {r["review_type"] for r in rows} == {"DHR"}


def test_reviews_lists_each_review_and_each_failed_file(
    db: str, make_review_pdf: Callable[..., Path], empty_file: Path
) -> None:
    assert "No reviews yet" in vkpp("reviews", "--db", db).stdout
    ingest_json(db, make_review_pdf(), empty_file)
    lines = vkpp("reviews", "--db", db).stdout.splitlines()
    assert lines[0].split()[:2] == ["STATUS", "TYPE"]
    assert lines[1].startswith("ok") and "dhr_anna_2022.pdf" in lines[1]
    assert lines[2].startswith("error") and "empty.pdf" in lines[2] and "[empty_file]" in lines[2]


def test_a_file_over_the_size_limit_is_refused_without_reading_it(
    db: str, make_review_pdf: Callable[..., Path]
) -> None:
    summary = ingest_json(db, make_review_pdf(), env={"VKPP_MAX_FILE_MB": "0"})
    assert summary["exit_code"] == 1
    (error,) = summary["errors"]
    assert error["error"].startswith("too_large: ") and "VKPP_MAX_FILE_MB" in error["error"]
    (listed,) = json.loads(vkpp("reviews", "--json", "--db", db).stdout)
    assert (listed["error_code"], listed["sha256"]) == ("too_large", None)


def test_a_users_bad_file_never_shows_a_traceback(db: str, empty_file: Path) -> None:
    result = subprocess.run([VKPP, "ingest", "--db", db, str(empty_file)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "empty.pdf" in result.stderr and "empty_file" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("name", sorted(BAD_FILE_CODES))
def test_each_bad_sample_file_gets_its_specific_error(name: str, db: str) -> None:
    path = BAD_FILES / name
    if not path.exists():
        pytest.skip(f"corpus_samples/bad/{name} is not built yet")
    summary = ingest_json(db, path, env={"VKPP_OCR": "off"})
    assert summary["exit_code"] == 1
    (error,) = summary["errors"]
    code, message = error["error"].split(": ", 1)
    assert code in BAD_FILE_CODES[name] and len(message) > 15
    (listed,) = json.loads(vkpp("reviews", "--json", "--db", db).stdout)
    assert (listed["status"], listed["error_code"], listed["error"]) == ("error", code, message)


@pytest.mark.skipif(
    not shutil.which(settings.get("VKPP_TESSERACT")), reason="Tesseract (tesseract-ocr) is not installed"
)
def test_a_scanned_review_is_read_by_ocr_when_tesseract_is_installed(db: str) -> None:
    path = BAD_FILES / "image_only.pdf"
    if not path.exists():
        pytest.skip("corpus_samples/bad/image_only.pdf is not built yet")
    summary = ingest_json(db, path, env={"VKPP_OCR": "auto"})
    assert (summary["reviews"], summary["errors"], summary["pages"]) == (1, [], 2)
    (listed,) = json.loads(vkpp("reviews", "--json", "--db", db).stdout)
    assert listed["status"] == "ocr" and listed["passages"] > 0


def test_a_partly_scanned_review_without_ocr_is_stored_as_needing_ocr_with_a_warning(db: str) -> None:
    if not PARTLY_SCANNED.exists():
        pytest.skip(f"{PARTLY_SCANNED.name} is not built yet")
    result = vkpp("ingest", "--db", db, str(PARTLY_SCANNED), env={"VKPP_OCR": "off"})
    assert result.exit_code == 0
    assert "warning: dhr_gemma_2024.pdf: page 8 has no text layer" in result.stderr and "OCR" in result.stderr
    (listed,) = json.loads(vkpp("reviews", "--json", "--db", db).stdout)
    assert listed["status"] == "needs_ocr"
    assert "needs OCR" in vkpp("reviews", "--db", db).stdout


def test_the_bad_samples_fail_but_the_batch_goes_on(db: str, make_review_pdf: Callable[..., Path]) -> None:
    if not BAD_FILES.is_dir():
        pytest.skip("corpus_samples/bad/ is not built yet")
    summary = ingest_json(db, make_review_pdf(), BAD_FILES, env={"VKPP_OCR": "off"})
    assert (summary["reviews"], summary["exit_code"]) == (1, 3)
    assert len(summary["errors"]) == len(list(BAD_FILES.glob("*.pdf")))


def test_every_sample_review_is_listed_with_its_type_and_passages(sample_db: str) -> None:
    listed = json.loads(vkpp("reviews", "--json", "--db", sample_db).stdout)
    assert sorted(r["filename"] for r in listed) == [p.name for p in sample_pdfs()]
    for review in listed:
        assert review["status"] in ("ok", "ocr") and review["passages"] > 0, review["filename"]
        assert review["review_type"] in ("CSPR", "SAR", "DHR", "MAPPA"), review["filename"]
    dumped = vkpp("dump", "--db", sample_db, "--format", "csv").stdout
    passages = list(csv.DictReader(io.StringIO(dumped)))
    assert len(passages) == sum(r["passages"] for r in listed)


def run_overview(db_url: str) -> object:
    from streamlit.testing.v1 import AppTest

    os.environ["VKPP_DATABASE_URL"] = db_url
    try:
        return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    finally:
        del os.environ["VKPP_DATABASE_URL"]


def test_overview_page_says_how_to_fill_an_empty_repository(db: str) -> None:
    page = run_overview(db)
    assert not page.exception
    assert "vkpp ingest" in page.info[0].value


def test_overview_page_counts_reviews(db: str, make_review_pdf: Callable[..., Path], empty_file: Path) -> None:
    ingest_json(db, make_review_pdf("a.pdf"), make_review_pdf("b.pdf", topic="Beth"), empty_file)
    page = run_overview(db)
    assert not page.exception
    assert {m.label: m.value for m in page.metric}["Reviews"] == "2"
    assert {m.label: m.value for m in page.metric}["Files that failed"] == "1"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_vkpp_app_serves_the_app_on_localhost(db: str) -> None:
    import time
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        [VKPP, "app", "--headless", "--port", str(port), "--db", db],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as response:
                    assert response.read() == b"ok"
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("vkpp app did not answer on its health endpoint within 60 s")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert Path(db.removeprefix("sqlite:///")).exists()  # `vkpp app` created the database before starting


def test_the_cli_and_the_first_page_do_not_import_heavy_libraries() -> None:
    probe = (
        "import sys, vkpp_learning.cli, vkpp_learning.app_pages.overview; "
        "print(sorted({'torch', 'bertopic', 'umap', 'sentence_transformers'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
