"""Rules tagger: the taxonomy's phrases matched over lemmas, with negation and hypothetical handling.

Every facet's phrases are matched (phrases.py); this tagger publishes practice themes and
vulnerabilities, and the detectors (detectors.py) use the agency mentions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from vkpp_learning import registry
from vkpp_learning.records import TagInput, TagResult
from vkpp_learning.tagging.phrases import Mention
from vkpp_learning.tagging.reading import read
from vkpp_learning.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span

NAME = "tagger.rules.v1"
THEME_FACETS = ("practice", "vulnerability")
AGENCY_FACET = "agency"
# Facets that describe the case: "there was no evidence of alcohol misuse" rules the label out. Practice
# themes are not negated: "no risk assessment was completed" is still about risk assessment.
CASE_FACETS = ("vulnerability",)

STRONG_WEIGHT = 0.6
WEAK_WEIGHT = 0.25
HYPOTHETICAL_FACTOR = 0.5
THRESHOLD = 0.4  # one phrase (0.6), or two weak hints (0.44), tag a theme
EVIDENCE_CHARS = 300

# Negation: a negator rules out a mention only when nothing but these stands between them
# ("no history of domestic abuse", "did not drink alcohol", "no agency holds any record of ..."),
# so "officers did not recognise the stalking" still finds stalking.
NEGATORS = {"no", "not", "n't", "never", "without", "nor", "neither", "none", "deny", "rule"}
NEGATION_FILLERS = {
    "any",
    "evidence",
    "indication",
    "sign",
    "history",
    "record",
    "suggestion",
    "concern",
    "known",
    "previous",
    "reported",
    "recorded",
    "further",
    "other",
    "reason",
    "suspicion",
    "mention",
    "issue",
    "agency",
    "apparent",
    "current",
    "obvious",
    "of",
    "that",
    "to",
    "out",
    "have",
    "be",
    "do",
    "hold",
    "drink",
    "use",
    "take",
    "misuse",
    "suffer",
    "experience",
    "show",
    "display",
    "present",
    "involve",
    "exist",
    "appear",
    "seem",
    "think",
    "suggest",
    "there",
    "a",
    "an",
    "the",
    "his",
    "her",
    "their",
    "he",
    "she",
    "they",
    "significant",
    "direct",
}
NEGATION_REACH = 8
DENIERS = {"no", "not", "nothing", "never", "without"}
# Not "record": "no record that she was asked about domestic abuse" does not deny the abuse.
DENIAL_WORDS = {"evidence", "suggestion", "suggest", "indication", "indicate", "sign", "reason"}
# "Alcohol was not a factor": the mention, then be + not + one of these.
AFTER_NEGATION = {
    "factor",
    "present",
    "known",
    "issue",
    "concern",
    "suspect",
    "relevant",
    "involve",
    "apparent",
    "evident",
    "feature",
    "raise",
    "disclose",
    "believe",
    "consider",
    "thought",
}
HYPOTHETICAL_CUES = {"if", "unless", "whether", "hypothetically"}
CLAUSE_BREAKS = {";", ":", "but", "however", "although", "though", "whereas", "yet", "while", "because"}
# Terms of reference and review-process passages name themes without discussing them.
TERMS_OF_REFERENCE_CUES = (
    "term of reference",
    "line of enquiry",
    "question for the review",
    "the review will consider",
    "the review examine",
    "the panel ask",
    "scope of the review",
    "the panel agree its",
)
PROCESS_SECTIONS = ("front_matter", "introduction", "methodology")
# Sections in which a facet is not tagged: practice is judged in analysis, findings, chronology and
# recommendations, never in the review's own introduction, method or factual background.
SILENT_SECTIONS = {
    "practice": ("front_matter", "introduction", "methodology", "background", "appendix"),
    "vulnerability": ("front_matter", "methodology", "appendix"),
}
# The names of review types and of agencies are not evidence of a theme: "a Domestic Homicide Review",
# "the Domestic Abuse Service", "the drug and alcohol service" say nothing about the case or the practice.
REVIEW_NAMES = re.compile(
    r"domestic homicide review|domestic abuse related death review|safeguarding adults? review|adult practice review"
    r"|child safeguarding practice review|child practice review|serious case review",
    re.IGNORECASE,
)


# ---- context of a mention -------------------------------------------------------------------------


def is_negated(doc: Doc, mention: Mention) -> bool:
    """True when the passage rules the mention out: 'no history of X', 'did not drink', 'X was not a factor'."""
    return _negated_before(doc, mention) or _negated_after(doc, mention)


def _negated_before(doc: Doc, mention: Mention) -> bool:
    clause = doc[_clause_start(doc, mention.start) : mention.start]
    if _denied(clause):
        return True
    for i in range(mention.start - 1, max(clause.start, mention.start - NEGATION_REACH) - 1, -1):
        token = doc[i]
        if token.norm_ in NEGATORS:
            return True
        if token.is_punct or token.norm_ not in NEGATION_FILLERS:
            return False
    return False


def _denied(clause: Span) -> bool:
    """'no evidence that ...', 'nothing to suggest ...': a denial covers the rest of its clause."""
    norms = [t.norm_ for t in clause]
    return any(norm in DENIERS and any(n in DENIAL_WORDS for n in norms[i + 1 : i + 4]) for i, norm in enumerate(norms))


def _clause_start(doc: Doc, index: int) -> int:
    start = doc[index].sent.start
    for i in range(index - 1, start - 1, -1):
        if doc[i].norm_ in CLAUSE_BREAKS:
            return i + 1
    return start


def _negated_after(doc: Doc, mention: Mention) -> bool:
    sentence_end = doc[mention.end - 1].sent.end
    window = [t.norm_ for t in doc[mention.end : min(sentence_end, mention.end + 6)]]
    if len(window) < 3 or window[0] != "be" or window[1] not in ("not", "never", "n't"):
        return False
    return any(word in AFTER_NEGATION for word in window[2:])


def is_hypothetical(doc: Doc, mention: Mention) -> bool:
    """True when the mention sits in a conditional clause: 'if there had been any concern about X'."""
    sentence = doc[mention.start].sent
    for i in range(mention.start - 1, sentence.start - 1, -1):
        norm = doc[i].norm_
        if norm in HYPOTHETICAL_CUES:
            return True
        if norm in CLAUSE_BREAKS:
            return False
    return False


def theme_mentions(doc: Doc, mentions: Sequence[Mention], text: str) -> list[Mention]:
    """Practice and vulnerability mentions, less those inside a review's name; inside an agency's name
    ("the drug and alcohol service") a mention only counts as a weak phrase."""
    reviews = []
    for match in REVIEW_NAMES.finditer(text):  # `text` is doc.text, which spaCy rebuilds on every access
        span = doc.char_span(match.start(), match.end(), alignment_mode="expand")
        if span is not None:
            reviews.append((span.start, span.end))
    agencies = [(m.start, m.end) for m in mentions if m.facet == AGENCY_FACET and not m.weak]
    kept = []
    for mention in mentions:
        if mention.facet not in THEME_FACETS or _inside(mention, reviews):
            continue
        kept.append(replace(mention, weak=True) if _inside(mention, agencies) else mention)
    return kept


def _inside(mention: Mention, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start <= mention.start and mention.end <= end for start, end in spans)


def is_terms_of_reference(doc: Doc) -> bool:
    text = " ".join(t.norm_ for t in doc)
    return any(cue in text for cue in TERMS_OF_REFERENCE_CUES)


def sentence_evidence(doc: Doc, mentions: Sequence[Mention], limit: int = EVIDENCE_CHARS) -> str:
    """'"<phrase>", "<phrase>": <the sentence of the first>' clipped to about `limit` characters."""
    phrases = ", ".join(f'"{p}"' for p in dict.fromkeys(m.text for m in mentions))
    return f"{phrases}: {clip_sentence(doc[mentions[0].start].sent, limit)}"


def clip_sentence(sentence: Span, limit: int = EVIDENCE_CHARS) -> str:
    text = " ".join(sentence.text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


# ---- the tagger ------------------------------------------------------------------------------------


def mention_weight(doc: Doc, mention: Mention) -> float:
    """How much one mention counts towards its theme, after negation and hypothetical handling."""
    weight = WEAK_WEIGHT if mention.weak else STRONG_WEIGHT
    if mention.facet in CASE_FACETS:
        if is_negated(doc, mention):
            return 0.0
        if is_hypothetical(doc, mention):
            weight *= HYPOTHETICAL_FACTOR
    return weight


def theme_scores(doc: Doc, mentions: Sequence[Mention]) -> dict[tuple[str, str], tuple[float, list[Mention]]]:
    """(facet, theme) -> (score, the mentions that count): 1 - product of (1 - weight) over distinct phrases."""
    best: dict[tuple[str, str], dict[str, tuple[float, Mention]]] = {}
    for mention in mentions:
        weight = mention_weight(doc, mention)
        if weight <= 0:
            continue
        phrases = best.setdefault((mention.facet, mention.theme), {})
        if weight > phrases.get(mention.norm, (0.0, mention))[0]:
            phrases[mention.norm] = (weight, mention)
    scores = {}
    for key, phrases in best.items():
        remaining = 1.0
        for weight, _ in phrases.values():
            remaining *= 1.0 - weight
        counted = sorted(phrases.values(), key=lambda wm: (-wm[0], wm[1].start))
        scores[key] = (round(1.0 - remaining, 4), [m for _, m in counted])
    return scores


@registry.register("tagger", NAME, alias="rules")
class RulesTagger:
    """Practice themes and vulnerabilities from the taxonomy's phrases."""

    name = NAME

    def __init__(
        self,
        taxonomy: Taxonomy | None = None,
        threshold: float = THRESHOLD,
        imply_parents: bool = False,
        silent_sections: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.taxonomy = taxonomy or load_taxonomy()
        self.imply_parents = imply_parents
        self.silent_sections = SILENT_SECTIONS if silent_sections is None else silent_sections
        self.taxonomy_version = self.taxonomy.version
        self.threshold = threshold
        self.params = {
            "strong_weight": STRONG_WEIGHT,
            "weak_weight": WEAK_WEIGHT,
            "hypothetical_factor": HYPOTHETICAL_FACTOR,
        }
        self.thresholds = {"all": threshold}

    def tag(self, items: Sequence[TagInput]) -> list[list[TagResult]]:
        readings = read([item.text for item in items], self.taxonomy)
        return [self._tag_one(item, r.doc, r.mentions) for item, r in zip(items, readings, strict=True)]

    def _tag_one(self, item: TagInput, doc: Doc, all_mentions: Sequence[Mention]) -> list[TagResult]:
        if item.section_kind in PROCESS_SECTIONS and is_terms_of_reference(doc):
            return []
        silent = [facet for facet, sections in self.silent_sections.items() if item.section_kind in sections]
        mentions = theme_mentions(doc, [m for m in all_mentions if m.facet not in silent], item.text)
        results: dict[tuple[str, str], TagResult] = {}
        for (facet, theme_id), (score, counted) in theme_scores(doc, mentions).items():
            if score >= self.threshold:
                results[(facet, theme_id)] = TagResult(
                    facet, theme_id, score, self.name, sentence_evidence(doc, counted)
                )
        if self.imply_parents:
            self._add_parents(results)
        return sorted(results.values(), key=lambda r: (r.facet, -r.score, r.label))

    def _add_parents(self, results: dict[tuple[str, str], TagResult]) -> None:
        # Optional: a sub-theme implies its parent (coercive control is domestic abuse). Off by default,
        # because analysts label the specific theme without its parent.
        for (facet, theme_id), result in list(results.items()):
            for parent in self.taxonomy.ancestors(self.taxonomy.theme(theme_id, facet)):
                existing = results.get((facet, parent.id))
                if existing is None or existing.score < result.score:
                    evidence = f"as {theme_id}: {result.evidence}"
                    results[(facet, parent.id)] = TagResult(facet, parent.id, result.score, self.name, evidence)
