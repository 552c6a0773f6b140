"""Hybrid ranking: reciprocal rank fusion (k=60) of the keyword and semantic rankings, with a section prior:
passages about the review itself (introduction, terms of reference, methodology, appendices) count half."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from vkpp_learning.search.keyword import Hit

RRF_K = 60
# Section kinds that describe the review rather than practice. Their passages list the topics a review
# was asked about, so they match many queries in words and in meaning while rarely holding the learning
# (the labelling guide gives them no practice theme); a prior weight keeps them below the analysis.
REVIEW_PROCESS_SECTIONS = ("introduction", "methodology", "appendix")
REVIEW_PROCESS_WEIGHT = 0.5
SECTION_PRIOR: Mapping[str, float] = {kind: REVIEW_PROCESS_WEIGHT for kind in REVIEW_PROCESS_SECTIONS}


def fuse(rankings: Sequence[Sequence[Hit]], k: int = RRF_K, prior: Callable[[int], float] | None = None) -> list[Hit]:
    """One ranking from several: each passage scores the sum of 1 / (k + rank) over the lists it is in
    (rank from 1), times `prior(passage_id)` when given; ties go to the passage ranked higher in the earlier
    list, then the lower id."""
    scores: dict[int, float] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for list_number, ranking in enumerate(rankings):
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.passage_id] = scores.get(hit.passage_id, 0.0) + 1.0 / (k + rank)
            first_seen.setdefault(hit.passage_id, (list_number, rank))
    if prior is not None:
        scores = {pid: score * prior(pid) for pid, score in scores.items()}
    order = sorted(scores, key=lambda pid: (-scores[pid], first_seen[pid], pid))
    return [Hit(pid, scores[pid]) for pid in order]


def section_prior(sections: Callable[[int], str | None]) -> Callable[[int], float]:
    """The prior weight of a passage from its section kind (`sections` looks it up by passage id)."""
    return lambda passage_id: SECTION_PRIOR.get(sections(passage_id) or "", 1.0)
