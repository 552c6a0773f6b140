"""Passage-level detectors: missed opportunities, the agencies a passage judges, police relevance, and
the agencies a recommendation is addressed to. Each is a tagger in the registry with its own name.

They read a passage once (spaCy doc, taxonomy phrase mentions, judgement cues; see reading.py) and
decide from where agencies are named and how the sentence around them judges practice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vkpp_learning import registry
from vkpp_learning.records import TagInput, TagResult
from vkpp_learning.tagging import cues as judgement
from vkpp_learning.tagging.base import BINARY_LABEL
from vkpp_learning.tagging.cues import words
from vkpp_learning.tagging.phrases import Mention
from vkpp_learning.tagging.reading import Reading, read
from vkpp_learning.tagging.rules import AGENCY_FACET, clip_sentence
from vkpp_learning.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span

MISSED_OPPORTUNITY = "detector.missed_opportunity.rules.v1"
AGENCIES = "detector.agencies.rules.v1"
POLICE_RELEVANT = "detector.police_relevant.rules.v1"
RECOMMENDATION_TO = "detector.recommendation_to.rules.v1"

THRESHOLD = 0.5
# Missed opportunities are the review's judgements in its analysis, findings and chronology: recommendations
# say what should happen next; introduction, method, family views and background are not the review judging.
NO_MISSED_OPPORTUNITY_SECTIONS = (
    "recommendations",
    "front_matter",
    "introduction",
    "methodology",
    "family",
    "background",
    "appendix",
)
PROCESS_SECTIONS = ("front_matter", "introduction", "methodology", "family")
RECOMMENDATION_SECTIONS = ("recommendations",)
JUDGING_SECTIONS = ("analysis", "findings")
# Words that mark a sentence as about the review's own process ("IMRs were requested from Eastmoor Police").
PROCESS_WORDS = frozenset(
    words(
        "imr panel chair author chronology review reviewer terms reference methodology representative "
        "commission commissioned contributor"
    )
)
# An agency named straight after these is on the receiving end ("asked the police", "referred to the GP").
OBJECT_MARKERS = frozenset({"to", "for", "from", "with", "at", "into"})
MODALS = frozenset({"should", "must", "shall", "will", "need", "ought"})
ACTING_MARKERS = frozenset({"from", "by", "ask", "require", "request", "write", "that", "all", "each", "every"})
ACTING_REACH = 5  # tokens before an agency's name in which a marker says it is asked to act
RECOMMENDATION_PREFIX = re.compile(r"^\s*(recommendation\s*\d+[a-z]?|\d+(\.\d+)*)\s*[:.\-–)]?\s*", re.IGNORECASE)


# ---- agencies named in a passage -------------------------------------------------------------------


def agency_mentions(reading: Reading, taxonomy: Taxonomy, review_type: str) -> list[Mention]:
    """Agency names in the passage, one agency per span: longest name first, ties settled by review type."""
    candidates = [m for m in reading.mentions if m.facet == AGENCY_FACET and not m.weak]
    by_span: dict[tuple[int, int], list[Mention]] = {}
    for mention in candidates:
        by_span.setdefault((mention.start, mention.end), []).append(mention)
    chosen = [_choose_reading(options, taxonomy, review_type) for options in by_span.values()]
    kept: list[Mention] = []
    taken: set[int] = set()
    for mention in sorted(chosen, key=lambda m: (m.start - m.end, m.start)):
        if not taken.intersection(range(mention.start, mention.end)):
            kept.append(mention)
            taken.update(range(mention.start, mention.end))
    return sorted(kept, key=lambda m: m.start)


def _choose_reading(options: list[Mention], taxonomy: Taxonomy, review_type: str) -> Mention:
    if len(options) == 1:
        return options[0]
    order = {theme.id: i for i, theme in enumerate(taxonomy.facet(AGENCY_FACET))}
    fitting = [m for m in options if review_type in taxonomy.theme(m.theme, AGENCY_FACET).review_types]
    return min(fitting or options, key=lambda m: order[m.theme])


def is_receiving(doc: Doc, mention: Mention) -> bool:
    """True when the agency is named as the object of someone else's action ("asked the police")."""
    i = mention.start - 1
    while i >= 0 and i >= mention.start - 3 and doc[i].pos_ in ("DET", "PROPN", "PART", "ADJ"):
        i -= 1
    if i < 0 or doc[i].sent.start != doc[mention.start].sent.start:
        return False
    return doc[i].pos_ == "VERB" or doc[i].norm_ in OBJECT_MARKERS


def is_table_row(item: TagInput) -> bool:
    return item.kind == "table_row"


# ---- recommendations -------------------------------------------------------------------------------


def recommendation_addressees(
    reading: Reading, agencies: list[Mention], fallback: str, item: TagInput
) -> dict[str, Mention | None]:
    """Agency id -> the mention naming it as the one to act (None for the fallback 'partnership' reading)."""
    if item.section_kind not in RECOMMENDATION_SECTIONS:
        return {}
    doc = reading.doc
    for sentence in doc.sents:
        modal = _first_modal(sentence)
        if modal is None:
            continue
        subject_start = sentence.start + _prefix_tokens(sentence)
        found = _subject_agencies(agencies, subject_start, modal)
        if not found and _has_noun(doc[subject_start:modal]):
            found = {fallback: None}
        if set(found) == {fallback}:
            found.update(_named_to_act(doc, agencies, modal, fallback))
        if found:
            return found
    return _heading_agencies(reading, agencies)


def _first_modal(sentence: Span) -> int | None:
    for token in sentence:
        if token.norm_ in MODALS:
            return token.i
        if token.norm_ == "be" and token.i + 1 < sentence.end and sentence.doc[token.i + 1].norm_ in ("ask", "invite"):
            return token.i
    return None


def _prefix_tokens(sentence: Span) -> int:
    """How many tokens 'Recommendation 4:' or '4.2' takes at the start of a sentence."""
    match = RECOMMENDATION_PREFIX.match(sentence.text)
    if not match or not match.group(0).strip():
        return 0
    end_char = sentence.start_char + match.end()
    return sum(1 for t in sentence if t.idx < end_char)


def _subject_agencies(agencies: list[Mention], start: int, end: int) -> dict[str, Mention | None]:
    return {m.theme: m for m in agencies if start <= m.start < end}


def _has_noun(span: Span) -> bool:
    return any(t.pos_ in ("NOUN", "PROPN") for t in span)


def _named_to_act(doc: Doc, agencies: list[Mention], modal: int, fallback: str) -> dict[str, Mention | None]:
    """Agencies a partnership recommendation names as the ones to act ('seek assurance from the police that')."""
    named: dict[str, Mention | None] = {}
    for mention in agencies:
        if mention.start <= modal or mention.theme == fallback:
            continue
        before = {t.norm_ for t in doc[max(modal, mention.start - ACTING_REACH) : mention.start]}
        after = {t.norm_ for t in doc[mention.end : mention.end + 3]}
        if before & ACTING_MARKERS or after & MODALS:
            named[mention.theme] = mention
    return named


def _heading_agencies(reading: Reading, agencies: list[Mention]) -> dict[str, Mention | None]:
    """'Recommendation 4: Police. Review ...': the agency named before the first colon or full stop."""
    text = reading.doc.text
    match = RECOMMENDATION_PREFIX.match(text)
    if not match or not match.group(0).strip():
        return {}
    head_end = min((i for i in (text.find(":", match.end()), text.find(".", match.end())) if i > 0), default=-1)
    if head_end < 0:
        return {}
    return {m.theme: m for m in agencies if reading.doc[m.start].idx < head_end}


# ---- the detectors ---------------------------------------------------------------------------------


class _Detector:
    """Shared set-up: the taxonomy, its version, and reading passages."""

    name = ""

    def __init__(self, taxonomy: Taxonomy | None = None, threshold: float = THRESHOLD) -> None:
        self.taxonomy = taxonomy or load_taxonomy()
        self.taxonomy_version = self.taxonomy.version
        self.threshold = threshold
        self.thresholds = {"all": threshold}

    def tag(self, items: Sequence[TagInput]) -> list[list[TagResult]]:
        readings = read([item.text for item in items], self.taxonomy)
        return [self.detect(item, reading) for item, reading in zip(items, readings, strict=True)]

    def detect(self, item: TagInput, reading: Reading) -> list[TagResult]:
        raise NotImplementedError

    def result(self, facet: str, label: str, score: float, evidence: str) -> TagResult:
        return TagResult(facet, label, round(score, 4), self.name, evidence)


@registry.register("tagger", MISSED_OPPORTUNITY, alias="missed_opportunity")
class MissedOpportunityDetector(_Detector):
    """True when the passage says an agency should have acted differently and did not."""

    name = MISSED_OPPORTUNITY

    def detect(self, item: TagInput, reading: Reading) -> list[TagResult]:
        score, sentence = missed_opportunity(item, reading)
        if sentence is None or score < self.threshold:
            return []
        return [self.result("missed_opportunity", BINARY_LABEL, score, clip_sentence(sentence))]


def missed_opportunity(item: TagInput, reading: Reading) -> tuple[float, Span | None]:
    """(score, the sentence that carries the strongest cue); hindsight and good practice cancel a cue."""
    if item.section_kind in NO_MISSED_OPPORTUNITY_SECTIONS:
        return 0.0, None
    kept = judgement.missed_opportunity_cues(reading.doc, reading.cues)
    if not kept:
        return 0.0, None
    # One weight per (sentence, kind of cue): the strongest, whatever order the cues were found in (taking
    # the last one made the score depend on set order, so on PYTHONHASHSEED).
    weights: dict[tuple[int, str], float] = {}
    for cue in kept:
        key = (cue.sentence.start, cue.kind)
        weights[key] = max(weights.get(key, 0.0), cue.weight)
    remaining = 1.0
    for weight in weights.values():
        remaining *= 1.0 - weight
    strongest = max(kept, key=lambda c: (c.weight, -c.sentence.start))
    return 1.0 - remaining, strongest.sentence


@registry.register("tagger", AGENCIES, alias="agencies")
class AgencyJudgementDetector(_Detector):
    """The agencies whose practice the passage judges (for a recommendation: those it is addressed to)."""

    name = AGENCIES

    def __init__(self, taxonomy: Taxonomy | None = None, threshold: float = THRESHOLD, fallback: str = "other") -> None:
        super().__init__(taxonomy, threshold)
        self.fallback = fallback
        self.params = {"fallback": fallback}

    def detect(self, item: TagInput, reading: Reading) -> list[TagResult]:
        agencies = agency_mentions(reading, self.taxonomy, item.review_type)
        if item.section_kind in RECOMMENDATION_SECTIONS:
            judged = recommendation_addressees(reading, agencies, self.fallback, item)
            return [self._tag(reading, label, mention, 0.8) for label, mention in judged.items()]
        if item.section_kind in PROCESS_SECTIONS and not is_table_row(item):
            return []
        return [self._tag(reading, m.theme, m, score) for m, score in self._judged(item, reading, agencies)]

    def _judged(self, item: TagInput, reading: Reading, agencies: list[Mention]) -> list[tuple[Mention, float]]:
        doc = reading.doc
        judged_starts = judgement.judged_sentences(doc, reading.cues)
        if is_table_row(item):
            # A chronology row is a fact unless it passes judgement; it names the acting agency first
            # ("12/03/2021 Police Officers attend ...; no DASH was completed").
            return [(agencies[0], 0.7)] if agencies and judged_starts else []
        acting = [m for m in agencies if not is_receiving(doc, m)]
        judged = [(m, 0.75) for m in acting if doc[m.start].sent.start in judged_starts]
        if item.section_kind in JUDGING_SECTIONS or (not judged and judged_starts):
            # Analysis and findings judge the practice they describe, sentence by sentence or not.
            judged += [(m, 0.6) for m in acting]
        return _first_per_agency(judged)

    def _tag(self, reading: Reading, label: str, mention: Mention | None, score: float) -> TagResult:
        if mention is None:
            evidence = clip_sentence(next(iter(reading.doc.sents)))
        else:
            evidence = f'"{mention.text}": {clip_sentence(reading.doc[mention.start].sent)}'
        return self.result(AGENCY_FACET, label, score, evidence)


def _first_per_agency(judged: list[tuple[Mention, float]]) -> list[tuple[Mention, float]]:
    first: dict[str, tuple[Mention, float]] = {}
    for mention, score in judged:
        if mention.theme not in first or score > first[mention.theme][1]:
            first[mention.theme] = (mention, score)
    return list(first.values())


@registry.register("tagger", POLICE_RELEVANT, alias="police_relevant")
class PoliceRelevanceDetector(_Detector):
    """True when the passage says something about police practice, police information or police learning."""

    name = POLICE_RELEVANT

    def __init__(self, taxonomy: Taxonomy | None = None, threshold: float = THRESHOLD, agency: str = "police") -> None:
        super().__init__(taxonomy, threshold)
        self.agency = agency
        self.params = {"agency": agency}
        self._addressees = AgencyJudgementDetector(self.taxonomy, threshold)

    def detect(self, item: TagInput, reading: Reading) -> list[TagResult]:
        score, evidence = self._relevance(item, reading)
        return [self.result("police_relevant", BINARY_LABEL, score, evidence)] if score >= self.threshold else []

    def _relevance(self, item: TagInput, reading: Reading) -> tuple[float, str]:
        if item.section_kind in RECOMMENDATION_SECTIONS:
            addressed = [r for r in self._addressees.detect(item, reading) if r.label == self.agency]
            return (0.8, addressed[0].evidence) if addressed else (0.0, "")
        if item.section_kind in ("front_matter", "methodology"):
            return 0.0, ""
        named = [m for m in agency_mentions(reading, self.taxonomy, item.review_type) if m.theme == self.agency]
        hints = [m for m in reading.mentions if m.facet == AGENCY_FACET and m.weak and m.theme == self.agency]
        for mentions, score in ((named, 0.8), (hints, 0.6)):
            mentions = [m for m in mentions if not _about_review_process(reading.doc, m)]
            if mentions:
                return score, f'"{mentions[0].text}": {clip_sentence(reading.doc[mentions[0].start].sent)}'
        return 0.0, ""


def _about_review_process(doc: Doc, mention: Mention) -> bool:
    return any(t.norm_ in PROCESS_WORDS for t in doc[mention.start].sent)


@registry.register("tagger", RECOMMENDATION_TO, alias="recommendation_to")
class RecommendationAddresseeDetector(AgencyJudgementDetector):
    """For paragraphs in a recommendations section: the agencies the recommendation is addressed to."""

    name = RECOMMENDATION_TO

    def detect(self, item: TagInput, reading: Reading) -> list[TagResult]:
        if item.section_kind not in RECOMMENDATION_SECTIONS:
            return []
        agencies = agency_mentions(reading, self.taxonomy, item.review_type)
        addressed = recommendation_addressees(reading, agencies, self.fallback, item)
        return [
            TagResult("recommendation_to", r.label, r.score, self.name, r.evidence)
            for r in (self._tag(reading, label, mention, 0.8) for label, mention in addressed.items())
        ]


DEFAULT_TAGGERS = (
    "tagger.rules.v1",
    MISSED_OPPORTUNITY,
    AGENCIES,
    POLICE_RELEVANT,
    RECOMMENDATION_TO,
)
