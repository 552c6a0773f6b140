"""Builds corpus_samples/bad/: files that look like reviews but cannot be ingested as they are
(encrypted, truncated, empty, not a PDF, images with no text layer), from a short built-in review.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

from _render_common import Piece, ScanStyle, make_plan, scan_image

_LABELS = {
    "themes": [], "vulnerabilities": [], "missed_opportunity": False, "agencies": [], "police_relevant": False,
    "recommendation_to": [],
}  # fmt: skip
_PARAS = [
    "This review examines the contact that agencies in Westbrook had with Rosa and her former partner in the two "
    "years before her death in June 2022. It was commissioned by the Westbrook Community Safety Partnership.",
    "Rosa was 34 and the mother of two children. Her family described her as generous and private; they said that "
    "she rarely spoke about her relationship and that they now understand why.",
    "Police were called to the address four times. On each occasion the DASH risk assessment was graded as "
    "standard, although Rosa's answers on the last two occasions showed that the abuse was escalating.",
    "No referral was made to the MARAC and the health visitor was not told of the police attendances. This was a "
    "missed opportunity to share information and to consider the children's experience.",
    "The review found that officers did not have access to the earlier incident history when they attended, "
    "because the records were held on a system that response officers could not search.",
    "Recommendation 1: Westbrook Police should ensure that attending officers can see the full domestic abuse "
    "history of an address and of the people involved before they grade the risk.",
    "Recommendation 2: The partnership should seek assurance that health visitors are told of every police "
    "attendance at a domestic abuse incident in a household with a child under five.",
]
README = """# corpus_samples/bad: files vkpp must refuse, with a clear error

Built by `python corpus_samples/build.py` (from a short review written into `_render_bad.py`), so they
are reproducible. Each must give a `BadDocumentError` (vkpp_learning/errors.py) with the code below and
a message that says what to do; none may crash ingestion or stop the other files in a batch.

- `encrypted.pdf`: a real 3-page review PDF encrypted with a user password (`{password}`, RC4 128-bit).
  Code `encrypted`: "the PDF is password-protected; supply an unprotected copy".
- `truncated.pdf`: the same review unencrypted, cut to half its bytes (no cross-reference table, no
  `%%EOF`). Code `truncated` (or `corrupt` where the reader cannot tell): "the file is incomplete or
  damaged; download it again".
- `empty.pdf`: zero bytes. Code `empty_file`: "the file is empty".
- `not_a_pdf.pdf`: a plain UTF-8 text file with a .pdf name. Code `not_pdf`: "the file is not a PDF"
  (it starts with text, not `%PDF-`).
- `image_only.pdf`: a valid 2-page PDF whose pages are scanned images of review text, with no text
  layer at all. Code `needs_ocr` when OCR is off or missing ("the document has no text layer; enable
  OCR"); with OCR it is read, and its pages get status `ocr`. What a perfect OCR would give is in
  `image_only.golden.json`, in the golden text format of SOURCE_FORMAT.md.
"""
USER_PASSWORD = "vkpp-user"


def bad_source() -> dict[str, Any]:
    section_of = [(0, "Introduction", "introduction"), (2, "Analysis", "analysis"), (5, "Recommendations",
                  "recommendations")]  # fmt: skip
    sections = []
    for n, (start, heading, kind) in enumerate(section_of):
        stop = section_of[n + 1][0] if n + 1 < len(section_of) else len(_PARAS)
        sections.append({"heading": heading, "kind": kind,
                         "blocks": [{"para": p, "labels": _LABELS} for p in _PARAS[start:stop]]})  # fmt: skip
    return {
        "doc_id": "bad_rosa_2022", "review_type": "DHR", "subtype": None,
        "title": "Domestic Homicide Review into the death of Rosa", "subject": "Rosa", "area": "Westbrook",
        "commissioner": "Westbrook Community Safety Partnership", "month": "November", "year": 2022,
        "author": "Independent Chair and Author: J. Okafor", "executive_summary_only": True,
        "render": {"producer": "reportlab", "font": "serif", "columns": 1, "numbering": "decimal",
                   "header": "OFFICIAL", "footer_title": True, "scanned_blocks": []},
        "sections": sections,
    }  # fmt: skip


def _reportlab_pdf(**kw: Any) -> bytes:
    import _render_reportlab

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "review.pdf"
        _render_reportlab.render(make_plan(bad_source()), path, **kw)
        return path.read_bytes()


def encrypted_pdf() -> bytes:
    from reportlab.lib.pdfencrypt import StandardEncryption

    return _reportlab_pdf(encrypt=lambda: StandardEncryption(USER_PASSWORD, ownerPassword="vkpp-owner", strength=128))


def image_only_pdf() -> tuple[bytes, dict[str, Any]]:
    """Two scanned pages (title page, then the body) and their golden text."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

    plan = make_plan(bad_source())
    pages = [[Piece(b) for b in plan.title_lines], [Piece(b) for b in plan.body]]
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=1)
    canvas.setTitle("Scanned document")
    canvas.setProducer("Canon iR-ADV C5535 PDF")
    for number, pieces in enumerate(pages, start=1):
        running = number > 1
        style = ScanStyle(
            font="serif", header="OFFICIAL" if running else None, seed=number, rotation=0.5 - number / 3,
            footer=("", f"Page {number} of 2") if running else ("", ""),
        )  # fmt: skip
        canvas.drawImage(ImageReader(io.BytesIO(scan_image(pieces, style))), 0, 0, width=A4[0], height=A4[1])
        canvas.showPage()
    canvas.save()
    golden = {
        "doc_id": "image_only",
        "pages": [{"page": n, "text": "\n".join(p.text for p in pieces)} for n, pieces in enumerate(pages, 1)],
    }
    return out.getvalue(), golden


def build(bad_dir: Path) -> None:
    import json

    bad_dir.mkdir(parents=True, exist_ok=True)
    (bad_dir / "encrypted.pdf").write_bytes(encrypted_pdf())
    whole = _reportlab_pdf()
    (bad_dir / "truncated.pdf").write_bytes(whole[: len(whole) // 2])
    (bad_dir / "empty.pdf").write_bytes(b"")
    (bad_dir / "not_a_pdf.pdf").write_text(
        "Domestic Homicide Review into the death of Rosa\n\n" + "\n\n".join(_PARAS) + "\n", encoding="utf-8"
    )
    image_pdf, golden = image_only_pdf()
    (bad_dir / "image_only.pdf").write_bytes(image_pdf)
    (bad_dir / "image_only.golden.json").write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
    (bad_dir / "README.md").write_text(README.format(password=USER_PASSWORD), encoding="utf-8")
