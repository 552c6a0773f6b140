"""The faster paths of tagging: bfloat16 embeddings and the OpenVINO runtime (own cache keys, same SHA-256
check, near-identical vectors) and the spaCy pipeline's remembered token attributes (the same words as the
separate components)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cached_in_two_precisions
from vkpp_learning import embeddings
from vkpp_learning.embedding_runtime import openvino_installed
from vkpp_learning.errors import MissingDependency

TEXTS = [
    "Officers should have completed a DASH risk assessment after the third call.",
    "The GP did not ask about the bruising, and no referral to MARAC was made.",
    "Children's social care closed the case without speaking to the children.",
]
GOLD = Path(__file__).parent.parent / "corpus_samples" / "gold"
# The bound of int8 vectors, (mean, lowest) cosine to torch float32's: on the gold passages 0.9974 on average and
# 0.9938 at worst (November 2026); float32 and bfloat16 stay above (0.9999, 0.999).
INT8_COSINE = (0.995, 0.985)
needs_openvino = pytest.mark.skipif(not openvino_installed(), reason="OpenVINO is not installed")


@pytest.fixture(autouse=True)
def torch_unless_told(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test here starts from torch, whatever the environment says; a test sets another runtime itself."""
    monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", "torch")
    yield


@cache
def gold_texts() -> tuple[str, ...]:
    from vkpp_learning.evaluate import load_gold

    return tuple(p.text for p in load_gold(GOLD))


@cache
def torch_float32_vectors() -> np.ndarray:
    """The reference: torch's float32 vectors of every gold passage (computed once per test session)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VKPP_EMBEDDING_RUNTIME", "torch")
        patch.setenv("VKPP_EMBEDDING_PRECISION", "float32")
        return embeddings.encode(gold_texts())


def test_each_precision_has_its_own_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "float32")
    assert embeddings.precision() == "float32"
    assert embeddings.MODEL_NAME == embeddings.MODEL == "all-MiniLM-L6-v2"  # caches made before stay valid
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "bfloat16")
    assert embeddings.MODEL_NAME == "all-MiniLM-L6-v2+bfloat16"
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "auto")
    assert embeddings.precision() == embeddings.auto_precision(embeddings.cpu_flags(), embeddings.runtime())
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "int8")
    with pytest.raises(ValueError, match="VKPP_EMBEDDING_PRECISION"):
        embeddings.precision()


def test_each_runtime_has_its_own_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {}
    for runner in ("torch", "openvino"):
        for chosen in ("float32", "bfloat16"):
            monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", runner)
            monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", chosen)
            keys[runner, chosen] = embeddings.MODEL_NAME
    assert keys == {
        ("torch", "float32"): "all-MiniLM-L6-v2",
        ("torch", "bfloat16"): "all-MiniLM-L6-v2+bfloat16",
        ("openvino", "float32"): "all-MiniLM-L6-v2+openvino",
        ("openvino", "bfloat16"): "all-MiniLM-L6-v2+bfloat16+openvino",
    }
    monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", "onnx")
    with pytest.raises(ValueError, match="VKPP_EMBEDDING_RUNTIME"):
        embeddings.runtime()


def test_bfloat16_vectors_are_close_to_float32_but_not_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "float32")
    exact = embeddings.encode(TEXTS)
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "bfloat16")
    fast = embeddings.encode(TEXTS)
    assert fast.dtype == np.float32 and fast.shape == (len(TEXTS), embeddings.DIM)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    cosines = (exact * fast).sum(axis=1)
    assert cosines.min() > 0.999
    assert not np.array_equal(exact, fast)  # why the two are cached under different keys
    # Search queries go through load_model directly: they get the same bfloat16 vectors as passages.
    query = embeddings.load_model().encode(TEXTS[:1], normalize_embeddings=True, convert_to_numpy=True)
    assert float(query[0] @ fast[0]) > 0.99999


def test_cached_vectors_of_one_precision_never_answer_for_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors, stored = cached_in_two_precisions(tmp_path, monkeypatch, TEXTS[:2], ("float32", "bfloat16"))
    hashes = sorted(embeddings.text_hash(t) for t in TEXTS[:2])
    assert stored == [("all-MiniLM-L6-v2", h) for h in hashes] + [("all-MiniLM-L6-v2+bfloat16", h) for h in hashes]
    assert not np.array_equal(vectors["float32"], vectors["bfloat16"])


@pytest.mark.parametrize("runner", ["torch", "openvino"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_weights_are_checked_whatever_the_precision_and_runtime(
    precision: str, runner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not the published weights")
    monkeypatch.setenv("VKPP_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", precision)
    monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", runner)
    with pytest.raises(MissingDependency, match="SHA-256"):
        embeddings.load_model()


@needs_openvino
def test_openvino_vectors_agree_with_torch_float32_on_the_gold_passages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The acceptance bound of a runtime: per passage cosine to torch's float32 vectors, mean >= 0.9999 and
    min >= 0.999 (int8's own bound where auto means int8: test_embedding_int8), on every gold passage, in the
    precision this CPU runs by default."""
    exact = torch_float32_vectors()
    monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", "openvino")
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "auto")
    fast = embeddings.encode(gold_texts())
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    cosines = (exact * fast).sum(axis=1)
    mean, lowest = INT8_COSINE if embeddings.precision() == "int8" else (0.9999, 0.999)
    assert cosines.mean() >= mean and cosines.min() >= lowest, (cosines.mean(), cosines.min())
    # Search queries go through load_model directly, one text at a time: the same vectors as in a batch.
    query = embeddings.load_model().encode([gold_texts()[5]], normalize_embeddings=True, convert_to_numpy=True)
    assert float(query[0] @ fast[5]) > 0.99999
    assert sys.modules.get("openvino_telemetry") is None  # imported without its usage reports


@needs_openvino
def test_openvino_float32_is_torch_float32_to_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    exact = torch_float32_vectors()[::8]
    monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", "openvino")
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "float32")
    cosines = (exact * embeddings.encode(gold_texts()[::8])).sum(axis=1)
    assert cosines.min() > 0.99999


@needs_openvino
def test_cached_vectors_of_one_runtime_never_answer_for_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import select

    from vkpp_learning.db.engine import open_database
    from vkpp_learning.db.models import Embedding

    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "bfloat16")
    db = open_database(f"sqlite:///{tmp_path / 'cache.sqlite'}")
    try:
        for runner in ("torch", "openvino"):
            monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", runner)
            with db.writing() as session:
                embeddings.cached_encode(session, TEXTS[:1])
        with db.session() as session:
            stored = sorted(session.execute(select(Embedding.model)).scalars())
    finally:
        db.dispose()
    assert stored == ["all-MiniLM-L6-v2+bfloat16", "all-MiniLM-L6-v2+bfloat16+openvino"]


def test_without_openvino_auto_means_torch_and_openvino_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an installation without OpenVINO imports
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "float32")
    monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", "auto")
    assert embeddings.runtime() == "torch"
    assert embeddings.MODEL_NAME == "all-MiniLM-L6-v2"
    cosines = (embeddings.encode(gold_texts()[:4]) * torch_float32_vectors()[:4]).sum(axis=1)
    assert cosines.min() > 0.99999  # torch's own vectors (batched with other texts here, so not to the bit)
    monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", "openvino")
    embeddings._load_model.cache_clear()  # an OpenVINO model loaded by an earlier test would answer
    with pytest.raises(MissingDependency, match=r"one of the project.s dependencies: pip install -e \."):
        embeddings.load_model()


def test_remembered_token_attributes_match_the_separate_components() -> None:
    """The pipeline's one token-attributes component against the model's own attribute ruler and lemmatizer
    (with the same NORM rule), on the gold passages: every token's POS, MORPH, LEMMA and NORM."""
    import spacy

    from vkpp_learning.evaluate import load_gold
    from vkpp_learning.tagging import nlp

    texts = [p.text for p in load_gold(Path(__file__).parent.parent / "corpus_samples" / "gold")][::3]
    texts += ["DASH, A&E, PC and I: the Police's MARAC referral wasn't made.", "", "self-neglect; 12.5 -- (ii)"]
    full = nlp.load_model(spacy)  # tagger, attribute ruler, lemmatizer: the stock components
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W108: the stock lemmatizer meeting a token without POS
        expected = [[(t.pos_, str(t.morph), t.lemma_, nlp.token_norm(t)) for t in d] for d in full.pipe(texts)]
        got = [[(t.pos_, str(t.morph), t.lemma_, t.norm_) for t in d] for d in nlp.load_nlp().pipe(texts)]
    assert got == expected


def blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_encoding_ahead_gives_the_caller_the_cores_and_gives_them_back() -> None:
    import threading

    embeddings.encode(["the model and its libraries loaded, as before `vkpp tag` tags"])
    interval, threads = sys.getswitchinterval(), blas_threads()
    shared = (pytest.approx(embeddings.SHARED_SWITCH_INTERVAL), {1})
    seen = []
    for batch, vectors in embeddings.encode_ahead([TEXTS[:2], TEXTS[2:]], lambda batch: batch):
        seen.append((sys.getswitchinterval(), blas_threads()))
        expected = embeddings.encode(batch)
        assert np.allclose(np.vstack([vectors[embeddings.text_hash(t)] for t in batch]), expected, atol=1e-6)
    assert seen == [shared, shared]
    assert (sys.getswitchinterval(), blas_threads()) == (interval, threads)

    # Two callers at once, one on another thread (the app's): the switch interval stays until the last one
    # leaves; BLAS's threads are the main thread's to limit and give back.
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with embeddings.sharing_cores():
            entered.set()
            leave.wait(30)

    worker = threading.Thread(target=other)
    worker.start()
    assert entered.wait(30)
    assert (sys.getswitchinterval(), blas_threads()) == (shared[0], threads)
    with embeddings.sharing_cores():
        assert (sys.getswitchinterval(), blas_threads()) == shared
    assert (sys.getswitchinterval(), blas_threads()) == (shared[0], threads)  # the other caller is still inside
    leave.set()
    worker.join(30)
    assert (sys.getswitchinterval(), blas_threads()) == (interval, threads)
