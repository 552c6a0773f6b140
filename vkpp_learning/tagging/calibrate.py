"""What the learned taggers share: folds grouped by document, per-label logistic models kept as plain
arrays (saved as safetensors, never pickled), and thresholds chosen on out-of-fold scores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vkpp_learning.records import TagInput
from vkpp_learning.tagging.base import BINARY_LABEL, Decided, PassageLabels

if TYPE_CHECKING:
    from vkpp_learning.taxonomy import Taxonomy

MIN_POSITIVES = 8  # a label is learned only with at least this many positive passages
INNER_FOLDS = 5
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.025), 3)
# With few positives the best threshold on out-of-fold scores is noisy: it is pulled towards the
# default by this many pseudo-passages' worth of weight.
THRESHOLD_PRIOR = 20.0
THRESHOLD_RANGE = (0.1, 0.9)
# A label's threshold is chosen on real reviews' passages only when they hold at least this many positives.
MIN_CALIBRATION_POSITIVES = 5


# ---- folds ----------------------------------------------------------------------------------------


def contiguous_groups(count: int, folds: int = INNER_FOLDS) -> list[int]:
    """Group ids for passages given in document order when their documents are not known: contiguous
    blocks, so a review rarely falls in two blocks."""
    blocks = max(1, min(folds, count))
    return [min(i * blocks // max(count, 1), blocks - 1) for i in range(count)]


def training_groups(items: Sequence[TagInput], groups: Sequence[object] | None = None) -> list[object]:
    """The groups cross-validation holds out together: those given, else the passages' reviews when every
    passage names one, else contiguous blocks."""
    if groups is not None:
        return list(groups)
    if items and all(item.review for item in items):
        return [item.review for item in items]
    return list(contiguous_groups(len(items)))


def calibration_mask(count: int, calibration: Sequence[bool] | None) -> np.ndarray:
    """Which of `count` training passages thresholds may be chosen on (`calibration`; default: all).

    Passages written only to be labelled are denser in every label than real reviews, so a threshold chosen
    on them over-tags real ones: they train the models but do not set the thresholds (see calibration_rows)."""
    if calibration is None:
        return np.ones(count, dtype=bool)
    mask = np.asarray(calibration, dtype=bool)
    if mask.shape != (count,):
        raise ValueError(f"calibration marks {mask.size} passages, but {count} were given to fit")
    return mask


def calibration_rows(calibrate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The rows a label's threshold is chosen on: the calibration passages when they hold at least
    MIN_CALIBRATION_POSITIVES of its positives, else every row (a threshold from two positives is noise)."""
    if calibrate.all() or int(truth[calibrate].sum()) < MIN_CALIBRATION_POSITIVES:
        return np.ones(len(truth), dtype=bool)
    return calibrate


def group_folds(groups: Sequence[object], folds: int = INNER_FOLDS) -> list[np.ndarray]:
    """Test indices of each fold; every passage of a group (a review) falls in the same fold. Passages of a
    single review are split in contiguous blocks instead (there is nothing else to hold out)."""
    if len(set(groups)) < 2:
        groups = contiguous_groups(len(groups), folds)
    order = list(dict.fromkeys(groups))
    count = max(1, min(folds, len(order)))
    fold_of = {group: i % count for i, group in enumerate(order)}
    assigned = np.array([fold_of[g] for g in groups], dtype=int)
    return [np.flatnonzero(assigned == fold) for fold in range(count) if np.any(assigned == fold)]


def out_of_fold(
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], count: int, folds: Sequence[np.ndarray]
) -> np.ndarray:
    """Scores for every passage from a model fitted without its fold: fit_predict(train, test) -> (test, L)."""
    scores: np.ndarray | None = None
    everything = np.arange(count)
    for test in folds:
        train = np.setdiff1d(everything, test)
        predicted = fit_predict(train, test)
        if scores is None:
            scores = np.zeros((count, predicted.shape[1]), dtype=np.float64)
        scores[test] = predicted
    return scores if scores is not None else np.zeros((count, 0))


# ---- thresholds -----------------------------------------------------------------------------------


def f1_at(scores: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    predicted = scores >= threshold
    tp = float(np.sum(predicted & truth))
    denominator = float(np.sum(predicted) + np.sum(truth))
    return 2 * tp / denominator if denominator else 0.0


def choose_threshold(scores: np.ndarray, truth: np.ndarray, default: float = 0.5) -> float:
    """The threshold with the best F1 on out-of-fold scores, smoothed over neighbouring thresholds and
    shrunk towards `default` when the label has few positives."""
    truth = truth.astype(bool)
    positives = int(truth.sum())
    if positives == 0:
        return default
    f1 = np.array([f1_at(scores, truth, t) for t in THRESHOLD_GRID])
    smoothed = np.convolve(np.pad(f1, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    best = float(THRESHOLD_GRID[int(np.argmax(smoothed))])
    shrunk = (positives * best + THRESHOLD_PRIOR * default) / (positives + THRESHOLD_PRIOR)
    return round(float(np.clip(shrunk, *THRESHOLD_RANGE)), 3)


# ---- logistic models as arrays --------------------------------------------------------------------


@dataclass
class LogisticModel:
    """Logistic regressions sharing one input (one column of `coef` per label): standardisation and
    weights as arrays that save and load safely."""

    mean: np.ndarray  # (features,)
    scale: np.ndarray  # (features,)
    coef: np.ndarray  # (features, labels)
    intercept: np.ndarray  # (labels,)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(passages, labels) probabilities."""
        z = ((features - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def column(self, j: int) -> LogisticModel:
        return LogisticModel(self.mean, self.scale, self.coef[:, j : j + 1], self.intercept[j : j + 1])

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        parts = {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept}
        return {f"{prefix}/{name}": np.ascontiguousarray(value, dtype=np.float32) for name, value in parts.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> LogisticModel:
        parts = [arrays[f"{prefix}/{name}"].astype(np.float64) for name in ("mean", "scale", "coef", "intercept")]
        return cls(*parts)


def fit_logistic(
    features: np.ndarray, truth: np.ndarray, c: float = 1.0, known: np.ndarray | None = None, balanced: bool = True
) -> LogisticModel:
    """Class-balanced, L2-regularised logistic regressions, one per column of `truth`, fitted together.

    The objective per label is sklearn's LogisticRegression(C=c, class_weight="balanced"): the weighted
    log loss of the passages whose label is `known` plus |w|^2 / 2c. One L-BFGS run fits every label,
    which is what makes document-level cross-validation of the ensemble affordable on two cores.
    """
    from scipy.optimize import minimize  # type: ignore[import-untyped]
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    truth = truth.reshape(len(truth), -1).astype(np.float64)
    known = np.ones_like(truth, dtype=bool) if known is None else known.reshape(truth.shape)
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale < 1e-6] = 1.0
    # The two matrix products of each step in float32, the loss and its sum in float64: fitting the ensemble on
    # the 5,256 labelled passages took 69 s instead of 146, and the fitted ensemble's decisions on them differed
    # in 8 of 310,104 (passage, label) pairs (scores by 8e-5 on average), L-BFGS's own tolerance.
    x = np.hstack([(features - mean) / scale, np.ones((len(features), 1))]).astype(np.float32)
    weights = balanced_weights(truth, known) if balanced else known.astype(np.float64)
    size = (x.shape[1], truth.shape[1])
    penalty = np.ones(size)
    penalty[-1] = 0.0  # the intercept is not penalised

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        return logistic_loss(flat.reshape(size), x, truth, weights, penalty, c)

    # One BLAS thread: these products are small, and several threads on a busy machine are many times slower.
    with threadpool_limits(1):
        result = minimize(loss, np.zeros(size).ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    w = result.x.reshape(size)
    return LogisticModel(mean, scale, w[:-1], w[-1])


def logistic_loss(
    w: np.ndarray, x: np.ndarray, truth: np.ndarray, weights: np.ndarray, penalty: np.ndarray, c: float
) -> tuple[float, np.ndarray]:
    """fit_logistic's objective and its gradient (flattened) at coefficients `w`, for float32 inputs `x`.

    A trial step of the line search far from the optimum can take x @ w beyond float32's range (3.4e38); that
    product is then made again in float64, so the step gets a large finite loss to back away from, not a NaN.
    """
    from scipy.special import expit  # type: ignore[import-untyped]

    with np.errstate(over="ignore", invalid="ignore"):
        z = (x @ w.astype(np.float32)).astype(np.float64)
    if not np.isfinite(z).all():
        z = x.astype(np.float64) @ w
    log_loss = np.logaddexp(0.0, z) - truth * z
    value = float(np.sum(weights * log_loss) + np.sum(penalty * w * w) / (2 * c))
    residual = (weights * (expit(z) - truth)).astype(np.float32)
    grad = (x.T @ residual).astype(np.float64) + penalty * w / c
    return value, grad.ravel()


def balanced_weights(truth: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per passage and label: n / (2 n_class) for known labels (sklearn's "balanced"), 0 for unknown."""
    count = known.sum(axis=0).astype(np.float64)
    positives = (truth * known).sum(axis=0)
    negatives = count - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        positive_weight = np.where(positives > 0, count / (2 * positives), 0.0)
        negative_weight = np.where(negatives > 0, count / (2 * negatives), 0.0)
    return np.where(truth > 0, positive_weight, negative_weight) * known


def logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, 1e-4, 1 - 1e-4)
    return np.log(clipped / (1 - clipped))


# ---- labels ---------------------------------------------------------------------------------------

BINARY_FACETS = ("missed_opportunity", "police_relevant")
LABELS_FROM = {"recommendation_to": "agency"}  # facets whose labels are another facet's theme ids


@dataclass
class LabelMatrix:
    """One facet's labels for a set of passages: which are true, and which are known. Gold passages know
    every label; an analyst's passage knows only the labels an analyst decided."""

    facet: str
    labels: list[str]
    truth: np.ndarray  # (passages, labels) bool
    known: np.ndarray  # (passages, labels) bool

    def positives(self) -> np.ndarray:
        return (self.truth & self.known).sum(axis=0)


def facet_labels(taxonomy: Taxonomy, facet: str) -> list[str]:
    """The labels a facet can take: "true" for yes/no facets, else the taxonomy's theme ids."""
    if facet in BINARY_FACETS:
        return [BINARY_LABEL]
    return taxonomy.ids(LABELS_FROM.get(facet, facet))


def label_matrix(
    labels: Sequence[PassageLabels], facet: str, names: Sequence[str], decided: Decided | None = None
) -> LabelMatrix:
    index = {name: i for i, name in enumerate(names)}
    truth = np.zeros((len(labels), len(names)), dtype=bool)
    known = np.zeros((len(labels), len(names)), dtype=bool)
    for row, passage in enumerate(labels):
        limits = decided[row] if decided is not None else None
        if limits is None:
            known[row] = facet in passage
        else:
            known[row] = [name in limits.get(facet, ()) for name in names]
        for label in passage.get(facet, ()):
            if label in index:
                truth[row, index[label]] = True
    return LabelMatrix(facet, list(names), truth, known)


# ---- versions and files ---------------------------------------------------------------------------

MODEL_FILE = "model.safetensors"
META_FILE = "model.json"


def fingerprint(
    method: str,
    items: Sequence[TagInput],
    labels: Sequence[PassageLabels],
    groups: Sequence[object],
    decided: Decided | None,
    taxonomy_version: str,
    params: dict[str, Any],
    calibrate: np.ndarray,
) -> str:
    """A model version: a hash of the method, its parameters, the taxonomy, the training passages and
    labels, and which of them thresholds were chosen on (`calibrate`, see calibration_mask); the same training
    data gives the same version, any new label a new one."""
    params = {**params, "calibrated_on": np.flatnonzero(calibrate).tolist()}
    digest = hashlib.sha256(json.dumps([method, taxonomy_version, params], sort_keys=True).encode())
    for row, (item, passage) in enumerate(zip(items, labels, strict=True)):
        known = decided[row] if decided is not None else None
        record = [
            [item.text, item.review_type, item.section_kind, item.kind, str(groups[row])],
            {facet: sorted(values) for facet, values in passage.items()},
            None if known is None else {facet: sorted(values) for facet, values in known.items()},
        ]
        digest.update(json.dumps(record, sort_keys=True).encode())
    return f"{method.split('.')[1]}-{digest.hexdigest()[:16]}"


def save_model(tagger: Any, directory: Path, training: dict[str, Any] | None = None) -> Path:
    """Write a fitted tagger's arrays (model.safetensors) and everything else (model.json) to `directory`."""
    from safetensors.numpy import save_file

    arrays, state = tagger.state()
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(directory / MODEL_FILE))
    document = {
        "method": tagger.name,
        "model_version": tagger.model_version,
        "taxonomy_version": tagger.taxonomy_version,
        "params": tagger.params,
        "thresholds": tagger.thresholds,
        "training": training or {},
        "state": state,
    }
    (directory / META_FILE).write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    return directory


def saved_model(directory: Path) -> dict[str, Any]:
    """model.json of a saved model."""
    return json.loads((directory / META_FILE).read_text(encoding="utf-8"))


def load_model(tagger: Any, directory: Path) -> Any:
    """Load a saved fit into `tagger` (made with the same parameters); ValueError when it was saved by
    another method, for another taxonomy, or with other parameters."""
    from safetensors.numpy import load_file

    document = saved_model(directory)
    for field in ("method", "taxonomy_version"):
        expected = tagger.name if field == "method" else tagger.taxonomy_version
        if document[field] != expected:
            raise ValueError(f"model {directory} was saved with {field} {document[field]}, not {expected}")
    if document["params"] != json.loads(json.dumps(tagger.params)):
        raise ValueError(f"model {directory} was saved with other parameters")
    tagger.load_state(load_file(str(directory / MODEL_FILE)), document["state"])
    tagger.thresholds = document["thresholds"]
    tagger.model_version = document["model_version"]
    return tagger
