"""Property tests for the text cleaning every backend shares."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vkpp_learning.extract.clean import collapse_spaces, join_lines, normalise, vocabulary

words = st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True)
lines = st.lists(st.lists(words, min_size=1, max_size=8).map(" ".join), min_size=1, max_size=6)


@given(st.text())
def test_normalise_is_idempotent_and_drops_controls(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once
    assert not any(ord(c) < 32 and c != "\n" for c in once)


@given(lines)
def test_joining_unhyphenated_lines_keeps_every_word_in_order(parts: list[str]) -> None:
    assert join_lines(parts).split() == " ".join(parts).split()


@given(words, words)
def test_a_known_word_broken_at_a_line_end_is_mended(left: str, right: str) -> None:
    word = (left + right.lower()).lower()
    joined = join_lines([f"the {left}-", f"{right.lower()} was"], {word})
    assert joined.split()[1].lower() == word


def test_compounds_keep_their_hyphen() -> None:
    assert join_lines(["a multi-", "agency meeting"], {"multi-agency"}) == "a multi-agency meeting"
    assert join_lines(["her self-", "neglect"]) == "her self-neglect"
    assert join_lines(["the safe-", "guarding lead"], {"safeguarding"}) == "the safeguarding lead"
    assert join_lines(["informa-", "tion was shared"]) == "information was shared"


def test_ligatures_and_odd_spaces() -> None:
    assert normalise("ﬁrst of\u00a0the ﬂat\u2009room") == "first of the flat room"
    assert normalise("line\ufffe") == "line-"
    assert collapse_spaces("  a \n\t b  ") == "a b"
    assert "multi-agency" in vocabulary(["The multi-agency panel"])
