"""Ingest page: upload review PDFs (and optionally a manifest CSV), run the ingest pipeline with a progress
bar, and see what happened to each file; files that failed before are listed with their reasons."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from vkpp_learning.app_pages import common
from vkpp_learning.ui_safety import escape_markdown

MANIFEST_HELP = (
    "Optional CSV with one row per file (column `filename`, plus any of review_type, title, subject, year, area, "
    "commissioner): its values override what is read from the documents."
)


@dataclass
class FileOutcome:
    """What ingesting one uploaded file did."""

    file: str
    result: str  # "added", "already stored", "failed"
    detail: str = ""
    passages: int = 0


@common.guarded
def render() -> None:
    st.title("Ingest reviews")
    if not common.may("ingest"):
        st.info(
            f"You are working as a {common.current_user().role.label}: only analysts and admins can add reviews. "
            "The list below shows what failed to ingest before."
        )
        failures()
        return
    st.caption(
        "Reviews are keyed by the SHA-256 of their bytes: a file already stored is skipped. Each file is read "
        "(text, layout, OCR when available), split into passages and stored with its metadata."
    )
    pdfs = st.file_uploader("Review PDFs", type=["pdf"], accept_multiple_files=True, key="pdfs")
    manifest = st.file_uploader("Manifest (CSV)", type=["csv"], key="manifest", help=MANIFEST_HELP)
    if st.button("Ingest", type="primary", disabled=not pdfs, icon=":material/upload:"):
        st.session_state["ingest_outcomes"] = run_ingest(pdfs or [], manifest)
        common.figures_changed()
    if st.session_state.get("ingest_outcomes"):
        show_outcomes(st.session_state["ingest_outcomes"])
    failures()


def safe_name(name: str) -> str:
    """An uploaded file's name fit for the temp folder: its last part, odd characters replaced."""
    base = Path(name.replace("\\", "/")).name
    cleaned = re.sub(r"[^\w.\- ]+", "_", base).strip(" .") or "upload"
    return cleaned[:200]


def run_ingest(uploads: list[Any], manifest: Any) -> list[FileOutcome]:
    """Save the uploads to a temp folder and ingest them one by one, moving the progress bar per file."""
    from pipelines.ingest import ingest
    from vkpp_learning.roles import require

    require(common.current_user(), "ingest")
    outcomes: list[FileOutcome] = []
    bar = st.progress(0.0, text="Starting…")
    with tempfile.TemporaryDirectory(prefix="vkpp_upload_") as folder:
        rows = manifest_rows(Path(folder), manifest)
        for number, upload in enumerate(uploads, start=1):
            path = Path(folder) / safe_name(upload.name)
            path.write_bytes(upload.getvalue())
            bar.progress((number - 1) / len(uploads), text=f"Reading {path.name} ({number} of {len(uploads)})")
            summary = ingest([str(path)], common.database_url(), manifest=rows)
            outcomes.append(outcome(path.name, summary))
    bar.progress(1.0, text=f"Done: {len(uploads)} files")
    return outcomes


def manifest_rows(folder: Path, manifest: Any) -> dict[str, dict[str, str]] | None:
    if manifest is None:
        return None
    from pipelines.ingest import read_manifest

    path = folder / "manifest.csv"
    path.write_bytes(manifest.getvalue())
    return read_manifest(path)


def outcome(name: str, summary: Any) -> FileOutcome:
    if summary.errors:
        error = summary.errors[0]
        return FileOutcome(name, "failed", f"{error.message} [{error.code}]")
    if summary.skipped:
        return FileOutcome(name, "already stored", "the same file (by content) is already in the repository")
    detail = "; ".join(summary.warnings)
    return FileOutcome(name, "added", detail, summary.passages)


def show_outcomes(outcomes: list[FileOutcome]) -> None:
    added = sum(1 for o in outcomes if o.result == "added")
    failed = sum(1 for o in outcomes if o.result == "failed")
    message = f"{added} added, {len(outcomes) - added - failed} already stored, {failed} failed."
    (st.warning if failed else st.success)(message)
    st.dataframe(pd.DataFrame([vars(o) for o in outcomes]), hide_index=True)
    if added:
        st.caption(
            "New reviews are searchable by keyword now. Tag them (and embed them for search by meaning) with "
            "the taggers and `vkpp embed` so they count in the theme figures."
        )


def failures() -> None:
    """Files whose latest ingest failed, with the reason."""
    from vkpp_learning.db.store import list_reviews

    with common.db().session() as session:
        failed = [row for row in list_reviews(session) if row.status == "error"]
    if not failed:
        return
    with st.expander(f"Files that failed to ingest ({len(failed)})"):
        for row in failed:
            st.markdown(f"**{escape_markdown(row.filename)}**: {escape_markdown(row.error or '')} `{row.error_code}`")
