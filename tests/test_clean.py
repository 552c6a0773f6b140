"""Property tests for the text cleaning every backend shares."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from vkpp_learning.extract.clean import (
    _HYPHEN_END,
    _TRANSLATE,
    _hyphen_end,
    collapse_spaces,
    join_lines,
    normalise,
    vocabulary,
)

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


# The fast forms below must give exactly what the plain regular expressions they replace give.


@given(st.text(alphabet=st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u3000ab.")))
def test_collapse_spaces_is_the_whitespace_regex(text: str) -> None:
    assert collapse_spaces(text) == re.sub(r"\s+", " ", text).strip()


odd = st.text(alphabet=st.characters() | st.sampled_from("\t\r\n\x02\x85\u00ad\ufb01\ufffe\ue000\u0301e"))


@given(odd)
def test_normalise_drops_controls_and_private_use_like_the_regex(text: str) -> None:
    # The table's replacements (None marks a control character the table drops), then the regex it replaced.
    replacements = {k: v for k, v in _TRANSLATE.items() if v is not None}
    dropped = re.sub(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ue000-\uf8ff]", "", text.translate(replacements))
    expected = dropped if dropped.isascii() else unicodedata.normalize("NFC", dropped)
    assert normalise(text) == expected


@given(st.text(alphabet=st.sampled_from("aZq- .\n")).filter(lambda t: not t.endswith("\n")))
def test_hyphen_end_is_the_regex_search(text: str) -> None:
    fast, slow = _hyphen_end(text), _HYPHEN_END.search(text)
    assert (fast and (fast.span(), fast.group(1))) == (slow and (slow.span(), slow.group(1)))


@given(st.lists(st.text(alphabet=st.sampled_from("aB-' \u212a\u0130é"))))
def test_vocabulary_is_each_texts_words_lower_cased(texts: list[str]) -> None:
    words = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
    assert vocabulary(texts) == {w.lower() for t in texts for w in words.findall(t)}
