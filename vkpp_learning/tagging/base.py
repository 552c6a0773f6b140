"""The tagger protocol every tagging stage follows, a do-nothing tagger, and combining taggers.

A tagger has a versioned `name` (its registry name, stored as each tag's `method`), the
`taxonomy_version` it tags with, and `tag(items) -> one list of TagResult per item`. A tagger that
learns from labelled passages also has `fit(items, labels, groups, decided, calibration)`: the review each
passage belongs to (cross-validation holds a review out whole), which labels an analyst decided on a
passage (None: all of them), and which passages thresholds may be chosen on (None: all; passages written
only to be labelled are not). Evaluation fits it on training folds only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from vkpp_learning import registry
from vkpp_learning.records import TagInput, TagResult

# Labels of one passage by facet, as in TagResult: {"practice": ["risk_assessment"], "missed_opportunity": ["true"]}.
PassageLabels = Mapping[str, Sequence[str]]
BINARY_LABEL = "true"
# Per passage, facet -> the labels whose truth is known; None for a passage whose every label is known.
Decided = Sequence[Mapping[str, Collection[str]] | None]


@runtime_checkable
class Tagger(Protocol):
    name: str
    taxonomy_version: str

    def tag(self, items: Sequence[TagInput]) -> list[list[TagResult]]: ...


@runtime_checkable
class FittableTagger(Tagger, Protocol):
    def fit(
        self,
        items: Sequence[TagInput],
        labels: Sequence[PassageLabels],
        groups: Sequence[object] | None = None,
        decided: Decided | None = None,
        calibration: Sequence[bool] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class RunInfo:
    """How a set of tags was made, as the storage layer records it for every tagging run."""

    method: str
    taxonomy_version: str
    model_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)


def run_info(tagger: Tagger) -> RunInfo:
    return RunInfo(
        method=tagger.name,
        taxonomy_version=tagger.taxonomy_version,
        model_version=getattr(tagger, "model_version", None),
        params=dict(getattr(tagger, "params", {}) or {}),
        thresholds=dict(getattr(tagger, "thresholds", {}) or {}),
    )


@registry.register("tagger", "tagger.null.v1", alias="none")
class NullTagger:
    """Tags nothing, so a pipeline can skip the tagging stage and still run."""

    name = "tagger.null.v1"
    taxonomy_version = ""

    def __init__(self, **_options: Any) -> None:
        pass  # accepts the options other taggers take, so any tagger list can include it

    def tag(self, items: Sequence[TagInput]) -> list[list[TagResult]]:
        return [[] for _ in items]


class CombinedTagger:
    """Several taggers run in turn; each passage gets all their tags, each tag keeping its own method."""

    def __init__(self, taggers: Sequence[Tagger]) -> None:
        if not taggers:
            raise ValueError("CombinedTagger needs at least one tagger")
        self.taggers = list(taggers)
        self.name = "+".join(t.name for t in self.taggers)
        self.taxonomy_version = next((t.taxonomy_version for t in self.taggers if t.taxonomy_version), "")

    def tag(self, items: Sequence[TagInput]) -> list[list[TagResult]]:
        combined: list[list[TagResult]] = [[] for _ in items]
        for tagger in self.taggers:
            for results, more in zip(combined, tagger.tag(items), strict=True):
                results.extend(more)
        return combined

    def fit(
        self,
        items: Sequence[TagInput],
        labels: Sequence[PassageLabels],
        groups: Sequence[object] | None = None,
        decided: Decided | None = None,
        calibration: Sequence[bool] | None = None,
    ) -> None:
        for tagger in self.taggers:
            if isinstance(tagger, FittableTagger):
                tagger.fit(items, labels, groups, decided, calibration)


def create_tagger(names: str | Sequence[str], **kwargs: Any) -> Tagger:
    """One tagger from its registry name or alias, or several combined ("rules", "missed_opportunity", ...)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    taggers = [registry.create("tagger", name, **kwargs) for name in names]
    return taggers[0] if len(taggers) == 1 else CombinedTagger(taggers)


def by_facet(results: Sequence[TagResult], threshold: float = 0.0) -> dict[str, set[str]]:
    """The labels asserted for one passage, by facet (binary facets hold {"true"} when true). Taggers
    emit only what passes their own thresholds; `threshold` can raise the bar further."""
    labels: dict[str, set[str]] = {}
    for result in results:
        if result.score >= threshold:
            labels.setdefault(result.facet, set()).add(result.label)
    return labels
