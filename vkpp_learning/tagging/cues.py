"""The language of judgement in reviews: missed-opportunity cues, good practice, hindsight caveats.

These are ways of writing, not themes, so they live here rather than in the taxonomy. Patterns are
written in a small notation compiled to spaCy Matcher patterns over NORM (lower-cased lemmas):
words separated by spaces; "a|b" is either word; "VERB", "NOUN", "ADV", ... a part of speech, and
"NOUN|PROPN" either part of speech;
"PRACTICE" a practice verb; "_" any word; a suffix "?" makes a step optional and "{0,4}" repeats it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vkpp_learning.tagging import nlp

if TYPE_CHECKING:
    from spacy.matcher import Matcher
    from spacy.tokens import Doc, Span


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Verbs for what an agency does or should do; "did not ask", "was not referred", "never checked".
PRACTICE_VERBS = words(
    "recognise recognize identify ask refer share record complete check consider explore follow escalate assess "
    "reassess see speak visit progress action act make pass inform notify invite pursue investigate arrest "
    "challenge review offer request submit seek triage reallocate convene hold undertake flag link update contact "
    "apply use take give grade discuss question trigger chase monitor allocate report raise enforce obtain "
    "interview charge examine document consult involve protect safeguard note read search respond query establish "
    "screen seize capture photograph implement recall verify provide arrange plan notice probe confirm alert "
    "signpost liaise convey forward enquire gather invoke test mention reach sample create open log ring send put "
    "bring join treat alter change visit tell"
)

POS_WORDS = {"VERB", "NOUN", "ADJ", "ADV", "DET", "PRON", "PROPN", "AUX", "ADP", "NUM", "PART"}

# (name, weight, pattern). Weights combine as 1 - product(1 - weight) over the cues in a passage.
MISSED_OPPORTUNITY_CUES: tuple[tuple[str, float, str], ...] = (
    ("explicit", 0.95, "miss|missed DET? ADJ{0,2} opportunity|chance"),
    ("explicit", 0.95, "opportunity|chance be|have{1,2} miss|missed|lose|waste"),
    ("explicit", 0.95, "opportunity|chance to _{1,10} be|have{1,2} miss|missed|lose"),
    ("explicit", 0.9, "lose|waste DET? ADJ? opportunity|chance"),
    ("explicit", 0.9, "not|never take|seize|use DET? opportunity|chance"),
    ("should_have", 0.8, "should|ought to? have be? ADV? VERB"),
    ("should_have", 0.75, "would have expect|want|anticipate"),
    ("failed_to", 0.75, "fail|failure|failing to ADV? VERB"),
    ("did_not", 0.75, "do not|never ADV? PRACTICE"),
    ("was_not", 0.75, "be not|never ADV? PRACTICE"),
    ("was_not", 0.7, "be not|never ADV? be? ADV? PRACTICE"),
    ("none_made", 0.75, "no NONVERB{0,5} be|have PRACTICE"),
    ("none_made", 0.75, "no NONVERB{0,5} be|have be PRACTICE"),
    ("nobody", 0.7, "nobody|noone ADV? PRACTICE"),
    ("nobody", 0.7, "no one ADV? PRACTICE"),
    ("nor", 0.7, "nor do|be|have PRON|NOUN|PROPN PRACTICE"),
    ("never", 0.6, "never ADV? PRACTICE"),
    ("no_record", 0.7, "there be no record|note|documentation that|of"),
    ("no_record", 0.7, "no record|note|documentation of|that"),
    ("without", 0.6, "without ADV? PRACTICE"),
    ("without", 0.6, "without DET? ADJ? referral|assessment|check|enquiry|question|consideration|discussion|plan"),
    ("too_low", 0.65, "underestimate|undergrade|downgrade|minimise"),
    ("could_have", 0.6, "could|might have be? ADV? PRACTICE"),
    ("would_have", 0.35, "would|might ADV{0,2} have be? ADV? VERB"),
    ("no_agent", 0.7, "no|neither NOUN ADV? PRACTICE"),
    ("no_agent", 0.7, "nothing be|have ADV? PRACTICE"),
    ("no_agent", 0.65, "no NONVERB{0,4} PRACTICE"),
    ("no_agent", 0.65, "NOUN|PROPN not PRACTICE"),
    ("made_none", 0.7, "make|take|give|record|offer|hold no"),
    ("did_not_know", 0.55, "do not know|learn|see"),
    ("too_little", 0.6, "too low|late|slow|slowly|narrow|narrowly|thin|little|long"),
    ("misread", 0.65, "misread|misjudge|misunderstand|overlook|ignore|disregard|dismiss"),
    ("fell_short", 0.7, "fall short"),
    ("lack_of", 0.5, "lack|absence of ADJ? curiosity|oversight|supervision|challenge|action|plan|assessment|referral"),
    ("lack_of", 0.5, "lack|absence of ADJ? communication|recording|consideration|coordination|follow|enquiry"),
)

# Good practice: blocks missed-opportunity cues in the same clause ("officers correctly rang back").
GOOD_PRACTICE_CUES: tuple[str, ...] = (
    "correctly",
    "appropriately",
    "rightly",
    "promptly",
    "properly",
    "good practice",
    "VERB well",
    "be make well",
    "thorough|thoroughly|diligent|diligently|commendable|exemplary|swiftly",
    "in line with",
    "as require",
    "high standard",
    "be right to",
    "good example",
    "real urgency",
)

# Hindsight caveats and denials: block missed-opportunity cues in the same clause.
HINDSIGHT_CUES: tuple[str, ...] = (
    "hindsight",
    "no suggestion|evidence|indication that",
    "can|could not be say|know|predict|foresee|certain",
    "not possible to say|know|determine|conclude",
    "would|could not have prevent|change|alter|save|predict|foresee|make",
    "could not have be predict|foresee|know|anticipate|expect",
    "could not reasonably",
    "not reasonably have",
    "do not suggest|say|consider|conclude|find that",
    "review|panel|author|reviewer do not suggest|say|criticise|find",
    "would be wrong|unfair|unreasonable to",
    "no way of know",
    "unlikely to have",
    "no|not DET? miss|missed opportunity|opportunities",
    "there be no opportunity",
)

# Evaluative words: a sentence with one of these, a good-practice cue or a missed-opportunity cue judges
# the practice of the agencies it names.
JUDGEMENT_WORDS = frozenset(
    words(
        "good poor effective ineffective adequate inadequate appropriate inappropriate robust weak consistent "
        "inconsistent timely untimely prompt delay delayed excellent exemplary commendable careful thoughtful "
        "limited insufficient sufficient unclear better worse failing strength weakness compassionate sensitive "
        "persistent urgency quickly well should must failure fail reassurance assumption assume rely candid "
        "missed miss lack absence unaware gap flaw flawed poorly wrong mistaken"
    )
)

CLAUSE_BREAKS = frozenset(
    {";", ":", "but", "however", "although", "though", "whereas", "yet", "while", "nonetheless", "nevertheless"}
)


def compile_pattern(notation: str) -> list[dict[str, Any]]:
    """'should|ought to? have be? ADV? VERB' -> a spaCy Matcher pattern over NORM and POS."""
    pattern = []
    for step in notation.split():
        match = re.fullmatch(r"(.+?)(\?|\{\d*,\d*\})?", step)
        assert match is not None
        word, op = match.group(1), match.group(2)
        spec = _step(word)
        if op:
            spec["OP"] = op
        pattern.append(spec)
    return pattern


def required_words(notation: str) -> list[str]:
    """The words of the first step every match must contain ('should|ought to? have ...' -> should, ought)."""
    for step in notation.split():
        match = re.fullmatch(r"(.+?)(\?|\{\d*,\d*\})?", step)
        assert match is not None
        word, op = match.group(1), match.group(2)
        if op and (op == "?" or op.startswith("{0") or op.startswith("{,")):
            continue
        if is_pos(word) or word in ("_", "NONVERB"):
            continue
        return list(PRACTICE_VERBS) if word == "PRACTICE" else word.split("|")
    raise ValueError(f"cue pattern {notation!r} needs at least one required word")


def split_first_step(notation: str) -> list[str]:
    """'miss|missed DET? opportunity' -> ['miss DET? opportunity', 'missed DET? opportunity']: the same matches.

    The Matcher tries every pattern's first step at every token. A single word or part of speech is compared
    in its compiled code; a choice of several is a set test called from Python for each token, which made
    cue matching cost about a fifth of tagging a passage without its embedding. A first step with an
    operator ('ADV?') is left as it is."""
    first, _, rest = notation.partition(" ")
    if "|" not in first or first.endswith("?") or first.endswith("}"):
        return [notation]
    return [f"{option} {rest}".strip() for option in first.split("|")]


def is_pos(word: str) -> bool:
    """Whether a step names parts of speech ("NOUN", "NOUN|PROPN") rather than words."""
    return all(option in POS_WORDS for option in word.split("|"))


def _step(word: str) -> dict[str, Any]:
    if word == "_":
        return {}
    if word == "PRACTICE":
        return {"NORM": {"IN": list(PRACTICE_VERBS)}, "POS": {"IN": ["VERB", "ADJ"]}}
    if word == "NONVERB":
        return {"POS": {"NOT_IN": ["VERB", "AUX", "PUNCT", "CCONJ", "SCONJ"]}}
    options = word.split("|")
    if is_pos(word):
        return {"POS": word} if len(options) == 1 else {"POS": {"IN": options}}
    return {"NORM": options[0]} if len(options) == 1 else {"NORM": {"IN": options}}


@dataclass(frozen=True)
class Cue:
    kind: str  # "explicit", "should_have", ... ; "good_practice"; "hindsight"
    weight: float
    start: int
    end: int


class CueFinder:
    """Finds the judgement cues in a parsed passage; built once per process."""

    def __init__(self) -> None:
        from spacy.matcher import Matcher

        vocab = nlp.load_nlp().vocab
        self.matcher: Matcher = Matcher(vocab)
        self._cues: dict[int, tuple[str, float]] = {}
        self.anchors: set[str] = set()
        for i, (kind, weight, notation) in enumerate(MISSED_OPPORTUNITY_CUES):
            self._add(f"mo:{i}", kind, weight, [notation])
        self._add("good_practice", "good_practice", 0.0, GOOD_PRACTICE_CUES)
        self._add("hindsight", "hindsight", 0.0, HINDSIGHT_CUES)

    def _add(self, key: str, kind: str, weight: float, notations: Sequence[str]) -> None:
        self.matcher.add(key, [compile_pattern(n) for notation in notations for n in split_first_step(notation)])
        self._cues[nlp.load_nlp().vocab.strings[key]] = (kind, weight)
        for notation in notations:
            self.anchors.update(required_words(notation))

    def find(self, doc: Doc) -> list[Cue]:
        """Cues within each sentence; only sentences holding a word some cue requires are matched
        (the Matcher's cost is per token, and half the sentences of a review hold none)."""
        cues = []
        for sentence in doc.sents:
            if not any(t.norm_ in self.anchors for t in sentence):
                continue
            for match_id, start, end in self.matcher(sentence):
                cues.append(Cue(*self._cues[match_id], sentence.start + start, sentence.start + end))
        return sorted(set(cues), key=lambda c: (c.start, -c.end, -c.weight, c.kind))


_FINDER: CueFinder | None = None
_FINDER_LOCK = threading.Lock()


def cue_finder() -> CueFinder:
    global _FINDER
    with _FINDER_LOCK:
        if _FINDER is None:
            _FINDER = CueFinder()
        return _FINDER


def clause_id(doc: Doc, index: int) -> tuple[int, int]:
    """(sentence start, clause number within the sentence) of a token; clauses split at ';', 'but', ..."""
    sentence = doc[index].sent
    clause = sum(1 for t in doc[sentence.start : index] if t.norm_ in CLAUSE_BREAKS)
    return sentence.start, clause


@dataclass(frozen=True)
class MissedOpportunityCue:
    kind: str
    weight: float
    sentence: Span


def missed_opportunity_cues(doc: Doc, cues: Sequence[Cue]) -> list[MissedOpportunityCue]:
    """The missed-opportunity cues not cancelled by good practice or hindsight in the same clause."""
    blocked = {clause_id(doc, c.start) for c in cues if c.kind in ("good_practice", "hindsight")}
    kept = []
    for cue in cues:
        if cue.weight > 0 and clause_id(doc, cue.start) not in blocked:
            kept.append(MissedOpportunityCue(cue.kind, cue.weight, doc[cue.start].sent))
    return kept


def judged_sentences(doc: Doc, cues: Sequence[Cue]) -> set[int]:
    """Start indices of the sentences that pass judgement on practice."""
    starts = {doc[c.start].sent.start for c in cues}
    for sentence in doc.sents:
        if any(t.norm_ in JUDGEMENT_WORDS for t in sentence):
            starts.add(sentence.start)
    return starts
