"""int8 embeddings (OpenVINO, quantised by nncf): unit vectors close to float32's under their own cache key,
refused with torch, and an int8 model that is kept on disk, read again on the next load and made again when
damaged."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import cached_in_two_precisions
from tests.test_embedding_speed_paths import INT8_COSINE, gold_texts, torch_float32_vectors
from vkpp_learning import embedding_runtime, embeddings
from vkpp_learning.embedding_runtime import openvino_installed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not openvino_installed(), reason="OpenVINO is not installed"),
]


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$XDG_CACHE_HOME of these tests, with the int8 model made once in it."""
    home = tmp_path_factory.mktemp("cache")
    embedding_runtime.int8_model(torch_float32_model(), embeddings.MODEL_SHA256, embeddings.BATCH_SIZE, root(home))
    return home


@pytest.fixture
def int8(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", "openvino")
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "int8")
    yield


def root(home: Path) -> Path:
    return home / "vkpp-learning"


def torch_float32_model() -> Any:
    return embeddings._load_model(embeddings.model_dir(), "float32", "torch")


def kept_dir(home: Path) -> Path:
    return embedding_runtime.int8_model_dir(embeddings.MODEL_SHA256, root(home))


def last_hidden_state(model: Any, texts: list[str]) -> np.ndarray:
    """What the OpenVINO `model` computes for `texts`, tokenized as the embedding model tokenizes them."""
    feeds = embedding_runtime.calibration_feeds(torch_float32_model(), texts, len(texts))
    request = embedding_runtime.import_openvino().Core().compile_model(model, "CPU").create_infer_request()
    return np.asarray(request.infer(feeds[0])[0])


def test_int8_vectors_are_unit_length_and_close_to_float32(int8: None) -> None:
    texts = gold_texts()
    exact = torch_float32_vectors()
    fast = embeddings.encode(texts)
    assert fast.dtype == np.float32 and fast.shape == (len(texts), embeddings.DIM)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    cosines = (exact * fast).sum(axis=1)
    assert cosines.mean() >= INT8_COSINE[0] and cosines.min() >= INT8_COSINE[1], (cosines.mean(), cosines.min())
    assert not np.allclose(exact, fast, atol=1e-3)  # int8 indeed: not float32 under another name
    # Search queries go through load_model directly: they get the same int8 vectors as passages.
    query = embeddings.load_model().encode(list(texts[:1]), normalize_embeddings=True, convert_to_numpy=True)
    assert float(query[0] @ fast[0]) > 0.99999


def test_int8_vectors_are_cached_under_their_own_key(
    int8: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = list(gold_texts()[:2])
    vectors, stored = cached_in_two_precisions(tmp_path, monkeypatch, texts, ("float32", "int8"))
    assert embeddings.MODEL_NAME == "all-MiniLM-L6-v2+int8+openvino"
    hashes = sorted(embeddings.text_hash(t) for t in texts)
    assert stored == [("all-MiniLM-L6-v2+int8+openvino", h) for h in hashes] + [
        ("all-MiniLM-L6-v2+openvino", h) for h in hashes
    ]
    assert not np.array_equal(vectors["float32"], vectors["int8"])


def test_int8_with_torch_is_refused_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKPP_EMBEDDING_RUNTIME", "torch")
    monkeypatch.setenv("VKPP_EMBEDDING_PRECISION", "int8")
    for attempt in (embeddings.precision, embeddings.load_model, lambda: embeddings.MODEL_NAME):
        with pytest.raises(ValueError, match="set VKPP_EMBEDDING_RUNTIME=openvino"):
            attempt()
    with pytest.raises(ValueError, match="runs only with OpenVINO"):
        embeddings._load_model(embeddings.model_dir(), "int8", "torch")


def test_the_int8_model_is_kept_and_read_again(cache_home: Path) -> None:
    directory = kept_dir(cache_home)
    assert sorted(p.name for p in directory.iterdir()) == ["model.bin", "model.xml", "sha256"]
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(directory.iterdir())]
    again = embedding_runtime.int8_model(
        torch_float32_model(), embeddings.MODEL_SHA256, embeddings.BATCH_SIZE, root(cache_home)
    )
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(directory.iterdir())] == before  # not remade
    assert not [p for p in root(cache_home).iterdir() if p.name.startswith(".")]  # no staging folder left
    assert [i.get_any_name() for i in again.inputs] == list(embedding_runtime.INPUT_NAMES)


def test_a_damaged_int8_model_is_made_again(cache_home: Path, tmp_path: Path) -> None:
    texts = list(gold_texts()[:4])
    original = embedding_runtime.read_kept(kept_dir(cache_home))
    shutil.copytree(root(cache_home), root(tmp_path))
    damaged = kept_dir(tmp_path)
    weights = bytearray((damaged / "model.bin").read_bytes())
    weights[len(weights) // 2 : len(weights) // 2 + 4096] = bytes(4096)  # readable, but wrong weights
    (damaged / "model.bin").write_bytes(bytes(weights))
    assert embedding_runtime.read_kept(damaged) is None

    made = embedding_runtime.int8_model(
        torch_float32_model(), embeddings.MODEL_SHA256, embeddings.BATCH_SIZE, root(tmp_path)
    )
    assert embedding_runtime.intact(damaged) and (damaged / "model.bin").read_bytes() != bytes(weights)
    assert np.allclose(last_hidden_state(made, texts), last_hidden_state(original, texts), atol=1e-4)
