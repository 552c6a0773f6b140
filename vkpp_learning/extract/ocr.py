"""OCR for pages with no text layer, through the Tesseract command line (Debian `tesseract-ocr`)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from vkpp_learning import settings
from vkpp_learning.records import TextSegment

OCR_DPI = 300


def tesseract_path() -> str | None:
    """The Tesseract executable, or None when OCR is switched off or not installed."""
    if settings.get("VKPP_OCR").lower() == "off":
        return None
    return shutil.which(settings.get("VKPP_TESSERACT"))


def ocr_segments(image: Any, page_height_pt: float, exe: str) -> list[TextSegment]:
    """Run Tesseract on a rendered page and return its lines as text runs in PDF points."""
    scale = page_height_pt / image.height
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "page.png"
        image.convert("L").save(png)
        result = subprocess.run(
            [exe, str(png), "stdout", "--psm", "3", "-l", "eng", "tsv"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"tesseract failed: {result.stderr.strip()[:300]}")
    return _lines_from_tsv(result.stdout, scale)


def _lines_from_tsv(tsv: str, scale: float) -> list[TextSegment]:
    lines: dict[tuple[str, str, str, str], list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        if row.get("level") == "5" and (row.get("text") or "").strip() and float(row.get("conf") or -1) > 0:
            key = (row["page_num"], row["block_num"], row["par_num"], row["line_num"])
            lines.setdefault(key, []).append(row)
    segments = []
    for words in lines.values():
        x0 = min(int(w["left"]) for w in words)
        top = min(int(w["top"]) for w in words)
        x1 = max(int(w["left"]) + int(w["width"]) for w in words)
        bottom = max(int(w["top"]) + int(w["height"]) for w in words)
        text = " ".join(w["text"] for w in words)
        # OCR knows no font size; the x-height box is about 0.7 of the point size.
        size = round((bottom - top) * scale / 0.95, 1)
        segments.append(TextSegment(text, x0 * scale, top * scale, x1 * scale, bottom * scale, size, False))
    return segments
