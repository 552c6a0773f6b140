"""The nearest-neighbour vote the ensemble stacks, on real gold passages and the real embedding model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import CORPUS
from vkpp_learning import embeddings
from vkpp_learning.evaluate import load_gold
from vkpp_learning.tagging.calibrate import label_matrix
from vkpp_learning.tagging.neighbours import LabelledVectors
from vkpp_learning.taxonomy import load_taxonomy

FACET = "vulnerability"


@pytest.fixture(scope="module")
def labelled() -> tuple[LabelledVectors, list[str]]:
    passages = load_gold(CORPUS / "gold" / "dhr_louise_2023.jsonl") + load_gold(
        CORPUS / "gold" / "sar_margaret_2023.jsonl"
    )
    names = load_taxonomy().ids(FACET)
    labels = [{facet: sorted(found) for facet, found in p.labels.items()} for p in passages]
    matrix = label_matrix(labels, FACET, names, None)
    vectors = embeddings.encode([p.text for p in passages])
    return LabelledVectors(vectors, {FACET: matrix.truth}, {FACET: matrix.known}), names


def test_a_labelled_passage_is_its_own_nearest_neighbour_and_carries_its_labels(
    labelled: tuple[LabelledVectors, list[str]],
) -> None:
    found, _ = labelled
    votes = found.votes(found.vectors, FACET)
    assert votes.shape == found.truth[FACET].shape
    assert ((votes >= 0) & (votes <= 1)).all()
    assert ((votes > 0.5) == found.truth[FACET]).mean() > 0.97


def test_the_vote_of_unseen_passages_follows_their_neighbours(labelled: tuple[LabelledVectors, list[str]]) -> None:
    found, names = labelled
    half = np.arange(len(found.vectors)) % 2 == 0
    train, test = found.subset(np.flatnonzero(half)), found.subset(np.flatnonzero(~half))
    votes = train.votes(test.vectors, FACET)
    older = names.index("older_adult_abuse")  # Margaret's review; Louise's is a domestic homicide
    carries = test.truth[FACET][:, older]
    assert carries.any() and (~carries).any()
    assert votes[carries, older].mean() > votes[~carries, older].mean() + 0.2


def test_only_neighbours_that_know_a_label_vote_on_it(labelled: tuple[LabelledVectors, list[str]]) -> None:
    found, names = labelled
    column = names.index("domestic_abuse")
    nobody_knows = LabelledVectors(
        found.vectors, found.truth, {FACET: np.zeros_like(found.known[FACET])}
    )  # every label unknown: no vote, the base rate, 0 as nothing is known
    assert (nobody_knows.votes(found.vectors[:3], FACET) == 0).all()

    query = found.vectors[:1]
    nearest = int(np.argmax(found.vectors @ query[0]))
    flipped = found.truth[FACET].copy()
    flipped[nearest, column] = ~flipped[nearest, column]
    known = found.known[FACET].copy()
    known[nearest, column] = False  # an analyst's passage: nobody decided domestic_abuse on it
    vote = LabelledVectors(found.vectors, found.truth, {FACET: known}).votes(query, FACET)[0, column]
    vote_flipped = LabelledVectors(found.vectors, {FACET: flipped}, {FACET: known}).votes(query, FACET)[0, column]
    assert vote == vote_flipped  # what an unknown label says does not count
    said = found.votes(query, FACET)[0, column]
    said_flipped = LabelledVectors(found.vectors, {FACET: flipped}, found.known).votes(query, FACET)[0, column]
    assert abs(said - said_flipped) > 0.5  # a known label of the nearest passage counts most


def test_saved_arrays_give_the_same_votes(labelled: tuple[LabelledVectors, list[str]]) -> None:
    found, _ = labelled
    again = LabelledVectors.from_arrays(found.to_arrays("neighbours"), "neighbours", [FACET])
    assert np.array_equal(again.votes(found.vectors[:10], FACET), found.votes(found.vectors[:10], FACET))
