"""BERTopic for review passages: fit on cached embeddings (seeded, optionally guided by taxonomy phrases),
reduce outliers to a stated share, save as safetensors, load offline, and assign new passages.

BERTopic, UMAP, HDBSCAN and scikit-learn are imported inside the functions that use them, never at import.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vkpp_learning.errors import MissingDependency, VkppError
from vkpp_learning.topics import mapping

METHOD = "topics.bertopic.v1"
# Below MIN_PASSAGES there is nothing to model; below FULL_MIN_PASSAGES UMAP's neighbourhood graph and
# HDBSCAN's density estimate are too thin to trust, so a small configuration (PCA + k-means) runs instead.
MIN_PASSAGES = 10
FULL_MIN_PASSAGES = 100
MAX_SMALL_TOPICS = 8
# Up to this many passages UMAP's neighbour graph is computed exactly (time grows with the square).
EXACT_NEIGHBOURS_MAX = 60_000
# Letters only (no years, paragraph numbers or money), two or more of them.
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]+\b"
VECTORIZER_OPTIONS: dict[str, Any] = {"stop_words": "english", "ngram_range": (1, 2), "token_pattern": TOKEN_PATTERN}
CENTERING_FILE = "review_centering.safetensors"
LIBRARIES = ("bertopic", "umap-learn", "hdbscan", "scikit-learn", "numpy", "sentence-transformers", "torch")


@dataclass(frozen=True)
class TopicParams:
    """Everything that shapes a fit; stored with the run so it can be repeated."""

    min_topic_size: int = 10
    seed: int = 42
    guided: bool = False
    outlier_target: float = 0.10  # share of passages that may stay outliers after reduction
    emergent_threshold: float = 0.30  # below this similarity to every theme a topic is emergent (docs/topics.md)
    centering: float = 1.0  # how much of each review's mean embedding is taken out before clustering
    facets: tuple[str, ...] = ("practice", "vulnerability")
    n_neighbors: int = 15
    n_components: int = 5
    top_n_words: int = 10
    min_reviews_per_word: int = 3  # a keyword must occur in this many reviews: case names never label a topic
    representatives: int = 5

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "facets": list(self.facets)}


@dataclass
class Corpus:
    """The passages a fit sees, in a fixed order, with their raw (unit) embeddings."""

    passage_ids: list[int]
    texts: list[str]
    review_ids: list[int]
    review_types: list[str]
    years: list[int | None]
    embeddings: np.ndarray

    def __len__(self) -> int:
        return len(self.passage_ids)


@dataclass
class FitResult:
    """A fitted BERTopic model and what the pipeline stores from it."""

    model: Any
    topics: list[int]  # final topic per passage, after outlier reduction
    initial_topics: list[int]  # per passage, as clustered
    space: np.ndarray  # the (review-centered, unit) vectors that were clustered
    corpus_mean: np.ndarray
    configuration: str  # "full" or "small"
    notes: list[str] = field(default_factory=list)

    @property
    def outlier_share_before(self) -> float:
        return _share(self.initial_topics, -1)

    @property
    def outlier_share_after(self) -> float:
        return _share(self.topics, -1)

    def keywords(self) -> dict[int, list[tuple[str, float]]]:
        """c-TF-IDF keywords of every topic (after the representation was updated), best first."""
        return {
            int(topic): [(word, float(score)) for word, score in words if word]
            for topic, words in self.model.get_topics().items()
        }


def _share(topics: Sequence[int], topic: int) -> float:
    return sum(1 for t in topics if t == topic) / len(topics) if topics else 0.0


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def require_bertopic() -> None:
    try:
        import bertopic  # noqa: F401
        import hdbscan  # noqa: F401
        import umap  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(f"topic modelling needs bertopic, umap-learn and hdbscan: {exc}") from None


def check_corpus_size(count: int, described: str) -> None:
    """Refuse a corpus too small to model, saying what is needed."""
    if count < MIN_PASSAGES:
        raise VkppError(
            f"topic modelling needs at least {MIN_PASSAGES} passages; {described} has {count}. "
            "Ingest more reviews or widen the filter (--review-type, --section).",
            code="too_few_passages",
        )


def fit(corpus: Corpus, params: TopicParams, seed_topics: list[list[str]] | None = None) -> FitResult:
    """Fit BERTopic on the corpus's cached embeddings; fall back to the small configuration when needed."""
    require_bertopic()
    check_corpus_size(len(corpus), "the selection")
    corpus_mean = corpus.embeddings.mean(axis=0)
    space = mapping.center_by_review(corpus.embeddings, corpus.review_ids, params.centering, corpus_mean)
    notes: list[str] = []
    configuration = "full" if len(corpus) >= FULL_MIN_PASSAGES else "small"
    if configuration == "small":
        notes.append(
            f"{len(corpus)} passages is fewer than the {FULL_MIN_PASSAGES} UMAP and HDBSCAN need; "
            "used the small configuration (PCA and k-means, no outliers)"
        )
    vocabulary = shared_vocabulary(corpus, params.min_reviews_per_word)
    with _quiet_bertopic():
        model, topics = _fit_once(corpus, space, params, configuration, seed_topics, vocabulary)
        if configuration == "full" and len(set(topics) - {-1}) < 2:
            notes.append("HDBSCAN found fewer than 2 topics; refitted with the small configuration (PCA and k-means)")
            configuration = "small"
            model, topics = _fit_once(corpus, space, params, configuration, seed_topics, vocabulary)
        initial = list(topics)
        topics = reduce_outliers(model, corpus, space, topics, params, vocabulary, notes)
    return FitResult(model, topics, initial, space, corpus_mean, configuration, notes)


def _fit_once(
    corpus: Corpus,
    space: np.ndarray,
    params: TopicParams,
    configuration: str,
    seed_topics: list[list[str]] | None,
    vocabulary: list[str],
) -> tuple[Any, list[int]]:
    from bertopic import BERTopic

    corpus_mean = corpus.embeddings.mean(axis=0)
    model = BERTopic(
        embedding_model=seed_embedder(seed_topics, params.centering, corpus_mean) if seed_topics else None,
        umap_model=reducer(len(corpus), params, configuration),
        hdbscan_model=clusterer(len(corpus), params, configuration),
        vectorizer_model=vectorizer(vocabulary),
        ctfidf_model=ctfidf(),
        seed_topic_list=seed_topics or None,
        top_n_words=params.top_n_words,
        min_topic_size=params.min_topic_size,
        calculate_probabilities=False,
        # "english" would make BERTopic strip every character but [A-Za-z0-9 ] before c-TF-IDF, turning
        # "self-neglect" into "selfneglect"; our token pattern already keeps only words. We pass embeddings,
        # so the language never selects a model.
        language="multilingual",
        verbose=False,
    )
    # BERTopic nudges the embeddings it is given in place when guided; keep `space` as it was.
    topics, _ = model.fit_transform(corpus.texts, embeddings=space.copy())
    return model, [int(t) for t in topics]


def reducer(count: int, params: TopicParams, configuration: str) -> Any:
    """UMAP seeded for reproducibility on an exact neighbour graph, or PCA for small corpora."""
    if configuration == "small":
        from sklearn.decomposition import PCA

        return PCA(n_components=min(params.n_components, count - 1), svd_solver="full")
    return ExactNeighbourUMAP(
        n_neighbors=min(params.n_neighbors, count - 1),
        n_components=params.n_components,
        min_dist=0.0,
        metric="cosine",
        random_state=params.seed,
        low_memory=True,
    )


class ExactNeighbourUMAP:
    """UMAP given its k-nearest-neighbour graph, computed exactly by chunked matrix products.

    UMAP's own search (pynndescent) compiles a large set of numba functions in every new process and,
    once seeded, runs on one thread: on 20k passages that was most of a fit's time. A matrix product
    uses every core through BLAS, is deterministic, and gives the exact neighbours; up to
    EXACT_NEIGHBOURS_MAX passages it is also fast. BERTopic calls fit_transform.
    """

    def __init__(self, **umap_params: Any) -> None:
        self.umap_params = umap_params
        self.model: Any = None

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return dict(self.umap_params)

    def fit_transform(self, vectors: np.ndarray, y: Any = None) -> np.ndarray:
        from umap import UMAP

        precomputed = None
        if len(vectors) <= EXACT_NEIGHBOURS_MAX:
            precomputed = exact_neighbours(np.asarray(vectors, dtype=np.float32), self.umap_params["n_neighbors"])
        self.model = UMAP(precomputed_knn=precomputed or (None, None, None), **self.umap_params)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)  # no search index
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)  # seeded: one thread
            return self.model.fit_transform(vectors, y=y)

    def fit(self, vectors: np.ndarray, y: Any = None) -> ExactNeighbourUMAP:
        self.fit_transform(vectors, y=y)
        return self

    @property
    def embedding_(self) -> np.ndarray:
        return self.model.embedding_


def exact_neighbours(vectors: np.ndarray, k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine distances) of each row's k nearest rows, itself first, nearest first."""
    unit = mapping.normalize_rows(vectors)
    indices = np.empty((len(unit), k), dtype=np.int64)
    distances = np.empty((len(unit), k), dtype=np.float32)
    for start in range(0, len(unit), chunk):
        similarities = unit[start : start + chunk] @ unit.T
        rows = np.arange(len(similarities))
        similarities[rows, rows + start] = np.inf  # each row is its own nearest neighbour, whatever rounding says
        nearest = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(similarities, nearest, axis=1), axis=1, kind="stable")
        nearest = np.take_along_axis(nearest, order, axis=1)
        indices[start : start + chunk] = nearest
        found = np.take_along_axis(similarities, nearest, axis=1)
        distances[start : start + chunk] = np.clip(1 - np.minimum(found, 1.0), 0, 2)
    return indices, distances


def clusterer(count: int, params: TopicParams, configuration: str) -> Any:
    """HDBSCAN (deterministic for a given input), or seeded k-means with a handful of topics for small corpora."""
    if configuration == "small":
        from sklearn.cluster import KMeans

        topics = max(2, min(MAX_SMALL_TOPICS, count // max(params.min_topic_size, 5)))
        return KMeans(n_clusters=topics, random_state=params.seed, n_init=10)
    from hdbscan import HDBSCAN

    return HDBSCAN(
        min_cluster_size=min(params.min_topic_size, count),
        metric="euclidean",
        cluster_selection_method="eom",
        prediction_data=False,
    )


def vectorizer(vocabulary: list[str]) -> Any:
    """Words and two-word phrases for c-TF-IDF, limited to `vocabulary` (see shared_vocabulary)."""
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(vocabulary=vocabulary or None, **VECTORIZER_OPTIONS)


def shared_vocabulary(corpus: Corpus, min_reviews: int) -> list[str]:
    """Terms that occur in at least `min_reviews` distinct reviews (fewer when the corpus has few reviews).

    A word found in only one or two reviews is the victim's pseudonym, a street or a force's name: it
    would label a topic by a case rather than by what the reviews say.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    counts = CountVectorizer(binary=True, **VECTORIZER_OPTIONS).fit(corpus.texts)
    present = counts.transform(corpus.texts)
    reviews, rows = np.unique(np.asarray(corpus.review_ids), return_inverse=True)
    membership = sparse.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(len(reviews), len(rows)))
    reviews_per_term = np.asarray(((membership @ present) > 0).sum(axis=0)).ravel()
    needed = min(min_reviews, max(1, len(reviews) - 1))
    terms = counts.get_feature_names_out()
    return sorted(str(term) for term in terms[reviews_per_term >= needed])


def ctfidf() -> Any:
    from bertopic.vectorizers import ClassTfidfTransformer

    return ClassTfidfTransformer(reduce_frequent_words=True)


def seed_embedder(seed_topics: list[list[str]], centering: float, corpus_mean: np.ndarray) -> Any:
    """The embedder BERTopic uses for the seed phrase lists: the same model, shifted like the passages
    (minus the corpus mean) so seeds and passages are compared in one space."""
    from bertopic.backend import BaseEmbedder

    from vkpp_learning.embeddings import encode

    class SeedEmbedder(BaseEmbedder):  # type: ignore[misc]
        def embed(self, documents: list[str], verbose: bool = False) -> np.ndarray:
            return mapping.normalize_rows(encode(documents) - centering * corpus_mean)

    return SeedEmbedder()


def reduce_outliers(
    model: Any,
    corpus: Corpus,
    space: np.ndarray,
    topics: list[int],
    params: TopicParams,
    vocabulary: list[str],
    notes: list[str],
) -> list[int]:
    """Move the outliers most similar to a topic into it until at most `outlier_target` remain, then
    recompute the keywords (c-TF-IDF) on the new assignment and the topic vectors as their centroids."""
    outliers = [i for i, t in enumerate(topics) if t == -1]
    if outliers and len(set(topics)) > 1:
        topic_vectors = mapping.centroid_matrix(space, topics)[1:]  # row 0 is the outliers' centroid
        best = (space[outliers] @ topic_vectors.T).max(axis=1)
        threshold = mapping.outlier_threshold(best, len(topics), params.outlier_target)
        if threshold is not None:
            model.topic_embeddings_ = mapping.centroid_matrix(space, topics)
            topics = [
                int(t)
                for t in model.reduce_outliers(
                    corpus.texts, topics, strategy="embeddings", embeddings=space, threshold=threshold
                )
            ]
            notes.append(f"outliers reduced by embedding similarity (threshold {threshold:.3f})")
            model.update_topics(
                corpus.texts,
                topics=topics,
                top_n_words=params.top_n_words,
                vectorizer_model=vectorizer(vocabulary),
                ctfidf_model=ctfidf(),
            )
    model.topic_embeddings_ = mapping.centroid_matrix(space, topics)
    return topics


def per_class_keywords(
    model: Any, texts: list[str], classes: list[str], words: int = 5
) -> dict[tuple[int, str], list[str]]:
    """Keywords of each topic within each class (review type), by BERTopic's topics_per_class."""
    with _quiet_bertopic():
        frame = model.topics_per_class(texts, classes=classes)
    return {(int(r.Topic), str(r.Class)): _words(r.Words, words) for r in frame.itertuples()}


def per_year_keywords(
    model: Any, texts: list[str], years: list[int], topics: list[int], words: int = 5
) -> dict[tuple[int, str], list[str]]:
    """Keywords of each topic in each publication year, by BERTopic's topics_over_time (one bin per year)."""
    if not texts:
        return {}
    with _quiet_bertopic():
        frame = model.topics_over_time(texts, years, topics=topics)
    return {(int(r.Topic), str(r.Timestamp)): _words(r.Words, words) for r in frame.itertuples()}


def _words(joined: str, limit: int) -> list[str]:
    return [w.strip() for w in str(joined).split(",") if w.strip()][:limit]


def save(result: FitResult, directory: Path) -> None:
    """Save the model as safetensors (no pickle), pointing at the local embedding model, with the corpus
    mean used for review centering beside it."""
    from safetensors.numpy import save_file

    from vkpp_learning.embeddings import model_dir

    directory.mkdir(parents=True, exist_ok=True)
    with _quiet_bertopic():
        result.model.save(
            str(directory), serialization="safetensors", save_ctfidf=True, save_embedding_model=str(model_dir())
        )
    save_file({"corpus_mean": result.corpus_mean.astype(np.float32)}, str(directory / CENTERING_FILE))


@dataclass
class SavedModel:
    """A topic model loaded from disk with what assigning new passages needs."""

    model: Any
    corpus_mean: np.ndarray


def load(directory: Path) -> SavedModel:
    """Load a saved topic model offline: the embedding model is our local copy, never a hub download."""
    import os

    from safetensors.numpy import load_file

    from vkpp_learning.embeddings import load_model

    if not (directory / "topic_embeddings.safetensors").is_file():
        raise VkppError(f"no saved topic model in {directory}; fit again with `vkpp topics fit`", code="no_model")
    require_bertopic()
    os.environ["HF_HUB_OFFLINE"] = "1"
    from bertopic import BERTopic

    with _quiet_bertopic():
        model = BERTopic.load(str(directory), embedding_model=load_model())
    return SavedModel(model, load_file(str(directory / CENTERING_FILE))["corpus_mean"])


def assign(saved: SavedModel, texts: list[str], space: np.ndarray) -> tuple[list[int], list[float]]:
    """The topic of each new passage (nearest topic vector; -1 when the outliers' centroid is nearer) and
    its similarity to that topic."""
    if not texts:
        return [], []
    with _quiet_bertopic():
        topics, _ = saved.model.transform(texts, embeddings=space)
    vectors = np.asarray(saved.model.topic_embeddings_)
    offset = saved.model._outliers  # row 0 holds the outliers' centroid when there are outliers
    scores = [float(space[i] @ vectors[int(t) + offset]) for i, t in enumerate(topics)]
    return [int(t) for t in topics], scores


@contextmanager
def _quiet_bertopic() -> Iterator[None]:
    """BERTopic logs warnings meant for notebook users (custom topics, missing backends) and resets its
    logger's level whenever a model is built, so a filter (not a level) keeps the CLI's output clean."""
    logger = logging.getLogger("BERTopic")
    logger.addFilter(_errors_only)
    try:
        yield
    finally:
        logger.removeFilter(_errors_only)


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR
