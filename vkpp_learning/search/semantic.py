"""Semantic search: exact dot product of the query's unit vector with every stored passage vector.

The passage vectors are held in a per-process numpy matrix, reloaded when the database's search generation
(bumped by triggers on every change to passages or embeddings) moves. Filters are catalog masks over the rows.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text

from vkpp_learning.errors import VkppError
from vkpp_learning.search import catalog
from vkpp_learning.search.filters import Filters
from vkpp_learning.search.keyword import Hit

_CACHE: dict[str, VectorIndex] = {}
# From this many vectors on, candidates come from a 64-dimensional projection (a sixth of the memory
# traffic) and only the best RERANK are scored exactly; below it every vector is scored exactly.
APPROXIMATE_FROM = 300_000
REDUCED_DIMS = 64
RERANK = 2_000
QUERY_CACHE = 512
ALLOWED_CACHE = 16
GATHER_SHARE = 4  # filters allowing under a quarter of the rows score only those rows
_LOCK = threading.Lock()


class EmbeddingsMissing(VkppError):
    """Semantic search was asked for but no passage has an embedding yet."""

    code = "embeddings_missing"


@dataclass
class VectorIndex:
    """Every passage that has an embedding: ids (ascending) and their unit vectors."""

    generation: int
    ids: np.ndarray
    matrix: np.ndarray
    passages: int  # all passages, with or without an embedding
    projection: np.ndarray | None = None  # (dim, REDUCED_DIMS) for large indexes
    reduced: np.ndarray | None = None  # matrix @ projection
    allowed: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (catalog mask, its rows)

    @property
    def missing(self) -> int:
        return self.passages - len(self.ids)

    def row_of(self, passage_id: int) -> int | None:
        row = int(np.searchsorted(self.ids, passage_id))
        return row if row < len(self.ids) and self.ids[row] == passage_id else None


def model_name() -> str:
    from vkpp_learning.embeddings import MODEL_NAME

    return MODEL_NAME


def generation(session: Any) -> int:
    return int(session.execute(text("SELECT value FROM search_generation WHERE id = 1")).scalar_one())


def vector_index(session: Any) -> VectorIndex:
    """The cached vectors for this database, reloaded when its generation has moved."""
    key = f"{session.get_bind().url!r}|{model_name()}"
    current = generation(session)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is None or cached.generation != current:
            cached = _CACHE[key] = load_vectors(session, current)
        return cached


def load_vectors(session: Any, current: int) -> VectorIndex:
    """Read every passage vector in one pass (fast enough for a million rows)."""
    sql = (
        "SELECT p.id, e.vector FROM passages AS p "
        "JOIN embeddings AS e ON e.text_hash = p.text_hash AND e.model = :model ORDER BY p.id"
    )
    rows = session.execute(text(sql), {"model": model_name()}).all()
    passages = int(session.execute(text("SELECT count(*) FROM passages")).scalar_one())
    if not rows:
        return VectorIndex(current, np.zeros(0, dtype=np.int64), np.zeros((0, 0), np.float32), passages)
    ids, blobs = zip(*rows, strict=True)
    matrix = np.frombuffer(b"".join(bytes(blob) for blob in blobs), dtype="<f4").reshape(len(rows), -1)
    index = VectorIndex(
        current, np.asarray(ids, dtype=np.int64), np.ascontiguousarray(matrix, dtype=np.float32), passages
    )
    if len(index.ids) >= APPROXIMATE_FROM:
        index.projection, index.reduced = reduce(index.matrix)
    return index


def reduce(matrix: np.ndarray, dims: int = REDUCED_DIMS, sample: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """The top principal directions of the vectors (uncentred, so dot products are kept) and the projection."""
    rows = np.random.default_rng(0).choice(len(matrix), min(sample, len(matrix)), replace=False)
    moments = matrix[rows].T @ matrix[rows]
    _, vectors = np.linalg.eigh(moments)
    projection = np.ascontiguousarray(vectors[:, -dims:], dtype=np.float32)
    reduced = np.vstack([matrix[start : start + 100_000] @ projection for start in range(0, len(matrix), 100_000)])
    return projection, np.ascontiguousarray(reduced, dtype=np.float32)


def allowed_rows(session: Any, index: VectorIndex, filters: Filters) -> np.ndarray | None:
    """Row numbers (ascending) of the vectors the filters allow; None when nothing is filtered."""
    by_id = catalog.allowed(session, filters)
    if by_id is None:
        return None
    with _LOCK:  # the catalog hands out one mask per filter, so its rows are worked out once per index
        for mask, rows in index.allowed:
            if mask is by_id:
                return rows
        inside = index.ids < len(by_id)
        rows = np.flatnonzero(inside)[by_id[index.ids[inside]]]
        index.allowed = [(by_id, rows), *index.allowed[: ALLOWED_CACHE - 1]]
        return rows


# The worker ----------------------------------------------------------------------------------
# One worker thread encodes queries and scores them, with torch limited to one thread there only: on a
# busy two-core machine a second torch thread mostly waits (single-threaded encoding was 5 to 20 times
# faster), and the setting stays local to that thread, so batch embedding elsewhere keeps every core.
# Hybrid search starts the semantic half here and runs the keyword query meanwhile.

_WORKER: ThreadPoolExecutor | None = None
_VECTORS: OrderedDict[str, np.ndarray] = OrderedDict()
_VECTORS_LOCK = threading.Lock()


def _worker() -> ThreadPoolExecutor:
    global _WORKER
    with _VECTORS_LOCK:
        if _WORKER is None:
            _WORKER = ThreadPoolExecutor(1, "vkpp-semantic")
        return _WORKER


def _query_vector(query: str) -> np.ndarray:
    """The query's unit vector from the cache, or encoded now (on the worker thread only)."""
    with _VECTORS_LOCK:
        cached = _VECTORS.get(query)
    if cached is not None:
        return cached
    import torch

    from vkpp_learning.embeddings import load_model

    model = load_model()  # loading sets torch's thread count for the process: limit this thread after it
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    vector = model.encode([query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    vector = np.asarray(vector[0], dtype=np.float32)
    vector.setflags(write=False)
    with _VECTORS_LOCK:
        _VECTORS[query] = vector
        while len(_VECTORS) > QUERY_CACHE:
            _VECTORS.popitem(last=False)
    return vector


def encode_query(query: str) -> np.ndarray:
    """The query's unit vector, cached: a page, the next page and the facets embed the same text once."""
    return _worker().submit(_query_vector, query).result()


def clear_query_cache() -> None:
    with _VECTORS_LOCK:
        _VECTORS.clear()


def start_search(
    session: Any, query: str, filters: Filters, count: int, *, vector: np.ndarray | None = None
) -> Future[list[Hit]]:
    """Begin finding the `count` passages nearest in meaning to `query` (or `vector`) on the worker thread;
    the database work (vectors, filters) is done here, in the caller's session."""
    index = vector_index(session)
    if not len(index.ids):
        raise EmbeddingsMissing(
            f"semantic search needs passage embeddings and none of the {index.passages} passages has one yet: "
            "run `vkpp embed`"
        )
    if count <= 0 or (vector is None and not query.strip()):
        nothing: Future[list[Hit]] = Future()
        nothing.set_result([])
        return nothing
    rows = allowed_rows(session, index, filters)
    return _worker().submit(_nearest_to_query, index, query, vector, rows, count)


def _nearest_to_query(
    index: VectorIndex, query: str, vector: np.ndarray | None, rows: np.ndarray | None, count: int
) -> list[Hit]:
    return nearest(index, _query_vector(query) if vector is None else vector, rows, count)


def semantic_search(
    session: Any, query: str, filters: Filters, limit: int, offset: int = 0, *, vector: np.ndarray | None = None
) -> list[Hit]:
    """The passages nearest in meaning to `query` (or to `vector`), best first, after filters."""
    return start_search(session, query, filters, offset + limit, vector=vector).result()[offset:]


def nearest(index: VectorIndex, vector: np.ndarray, rows: np.ndarray | None, count: int) -> list[Hit]:
    """The `count` allowed rows (all when `rows` is None) nearest to `vector`, best first."""
    if index.reduced is not None and count <= RERANK // 2:
        return approximate_top(index, vector, rows, count)
    return top(index, scores_of(index.matrix, vector, rows), rows, count)


def scores_of(matrix: np.ndarray, vector: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """Scores of the allowed rows (all rows when None), in the order of `rows`."""
    if rows is None:
        return matrix @ vector
    if len(rows) * GATHER_SHARE < len(matrix):
        return matrix[rows] @ vector
    return (matrix @ vector)[rows]


def approximate_top(index: VectorIndex, vector: np.ndarray, rows: np.ndarray | None, count: int) -> list[Hit]:
    """Candidates by the projected vectors (filters applied first), then exact scores for the best RERANK."""
    assert index.reduced is not None and index.projection is not None
    rough = scores_of(index.reduced, vector @ index.projection, rows)
    candidates = best_positions(rough, RERANK)
    candidates = candidates if rows is None else rows[candidates]
    return top(index, index.matrix[candidates] @ vector, candidates, count)


def best_positions(scores: np.ndarray, count: int) -> np.ndarray:
    """Positions of the `count` best scores, unordered."""
    return np.argpartition(scores, -count)[-count:] if count < len(scores) else np.arange(len(scores))


def top(index: VectorIndex, scores: np.ndarray, rows: np.ndarray | None, count: int) -> list[Hit]:
    """The `count` best of the scored rows (`scores[i]` belongs to row `rows[i]`, or row i), best first, ties
    by passage id."""
    if count <= 0:
        return []
    chosen = best_positions(scores, count)
    ids = index.ids[chosen if rows is None else rows[chosen]]
    order = np.lexsort((ids, -scores[chosen]))[:count]
    return [Hit(int(ids[i]), float(scores[chosen[i]])) for i in order]


def passage_vector(session: Any, passage_id: int) -> np.ndarray:
    """The stored vector of a passage (computed from its text if it has none yet)."""
    index = vector_index(session)
    row = index.row_of(passage_id)
    if row is not None:
        return index.matrix[row]
    found = session.execute(text("SELECT text FROM passages WHERE id = :id"), {"id": passage_id}).scalar_one_or_none()
    if found is None:
        raise VkppError(f"there is no passage {passage_id}", code="not_found")
    return encode_query(found)


def more_like_this(session: Any, passage_id: int, filters: Filters, limit: int, offset: int = 0) -> list[Hit]:
    """The passages nearest in meaning to a stored passage, itself excluded."""
    vector = passage_vector(session, passage_id)
    hits = semantic_search(session, "", filters, offset + limit + 1, vector=vector)
    return [hit for hit in hits if hit.passage_id != passage_id][offset : offset + limit]
