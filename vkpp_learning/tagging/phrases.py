"""The taxonomy's phrases compiled into spaCy PhraseMatchers, and the mentions they find in a passage.

One matcher works over NORM (the lower-cased lemma; see nlp.py), one over LOWER (exact wording, for
names the lemmatizer reads differently in title case). Built once per taxonomy version.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vkpp_learning.tagging import nlp
from vkpp_learning.taxonomy import Taxonomy, Theme

if TYPE_CHECKING:
    from spacy.tokens import Doc


@dataclass(frozen=True)
class Mention:
    """One phrase of one theme found in a passage."""

    facet: str
    theme: str
    start: int  # token index
    end: int
    weak: bool
    text: str
    norm: str


class PhraseIndex:
    """The taxonomy's phrases compiled into PhraseMatchers, built once per taxonomy version."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        from spacy.matcher import PhraseMatcher

        vocab = nlp.load_nlp().vocab
        self.taxonomy = taxonomy
        self.by_norm = PhraseMatcher(vocab, attr="NORM")
        self.by_lower = PhraseMatcher(vocab, attr="LOWER")
        self._keys: dict[int, tuple[str, str, bool]] = {}
        for theme in taxonomy.themes:
            self._add(theme, theme.phrases, weak=False)
            self._add(theme, theme.weak_phrases, weak=True)

    def _add(self, theme: Theme, phrases: Sequence[str], *, weak: bool) -> None:
        if not phrases:
            return
        key = f"{theme.facet}/{theme.id}/{'weak' if weak else 'strong'}"
        self._keys[nlp.load_nlp().vocab.strings.add(key)] = (theme.facet, theme.id, weak)
        variants = list(dict.fromkeys(v for p in phrases for v in phrase_variants(p)))
        docs = nlp.lemma_docs(variants)
        by_lemma = [d for d in docs if matches_by_lemma(d)]
        if by_lemma:
            self.by_norm.add(key, by_lemma)
        exact = [d for d in docs if not any(nlp.is_acronym(t.text) for t in d)]
        if exact:
            self.by_lower.add(key, exact)

    def mentions(self, doc: Doc) -> list[Mention]:
        """Every phrase match, once per (theme, span), strong before weak when both match the same words."""
        found: dict[tuple[str, str, int, int], Mention] = {}
        for match_id, start, end in [*self.by_norm(doc), *self.by_lower(doc)]:
            facet, theme, weak = self._keys[match_id]
            span = doc[start:end]
            mention = Mention(facet, theme, start, end, weak, span.text, " ".join(t.norm_ for t in span))
            key = (facet, theme, start, end)
            if key not in found or (found[key].weak and not weak):
                found[key] = mention
        return sorted(_outermost(list(found.values())), key=lambda m: (m.start, -m.end))


def matches_by_lemma(phrase: Doc) -> bool:
    """Whether a phrase also matches other forms of its words. A single word written in an inflected
    form matches only as written: out of context its lemma can be another word ("controlling" ->
    "control", "sectioned" -> "section", "trafficked" -> "traffic"). Write the base form ("stalk")
    to match every form; multi-word phrases always match by lemma."""
    return len(phrase) != 1 or phrase[0].norm_ in (phrase[0].text, phrase[0].text.lower())


def phrase_variants(phrase: str) -> list[str]:
    """The phrase as written, and with hyphens read as spaces ("self-neglect", "self neglect")."""
    variants = [phrase]
    if "-" in phrase:
        variants.append(phrase.replace("-", " "))
    return variants


_INDEXES: dict[str, PhraseIndex] = {}
_INDEX_LOCK = threading.Lock()


def phrase_index(taxonomy: Taxonomy) -> PhraseIndex:
    with _INDEX_LOCK:
        if taxonomy.version not in _INDEXES:
            _INDEXES[taxonomy.version] = PhraseIndex(taxonomy)
        return _INDEXES[taxonomy.version]


def _outermost(mentions: list[Mention]) -> list[Mention]:
    """Drop a mention inside a longer one of the same theme ("control" inside "coercive control"), and a
    weak mention inside a longer phrase of another theme of its facet ("capacity" in "executive capacity")."""
    return [
        m
        for m in mentions
        if not any(_covers(o, m) and o.facet == m.facet and (o.theme == m.theme or m.weak) for o in mentions)
    ]


def _covers(outer: Mention, inner: Mention) -> bool:
    longer = (outer.end - outer.start) > (inner.end - inner.start)
    return outer is not inner and longer and outer.start <= inner.start and inner.end <= outer.end
