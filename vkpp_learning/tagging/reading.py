"""One reading of a passage shared by every rule-based tagger: the spaCy doc, the taxonomy phrases
found in it, and its judgement cues, cached so that several taggers on one passage parse it once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vkpp_learning.tagging import cues, nlp
from vkpp_learning.tagging.phrases import Mention, phrase_index

if TYPE_CHECKING:
    from spacy.tokens import Doc

    from vkpp_learning.taxonomy import Taxonomy

READING_CACHE_SIZE = 4096


@dataclass
class Reading:
    """What the taggers need to know about one passage."""

    doc: Doc
    mentions: list[Mention]
    cues: list[cues.Cue]


_READINGS: OrderedDict[tuple[str, str], Reading] = OrderedDict()
_LOCK = threading.Lock()


def read(texts: Sequence[str], taxonomy: Taxonomy) -> list[Reading]:
    """Parse and read passages, reusing recent readings of the same text under the same taxonomy."""
    keys = [(taxonomy.version, text) for text in texts]
    with _LOCK:
        found = {k: _READINGS[k] for k in keys if k in _READINGS}
    missing = list(dict.fromkeys(k for k in keys if k not in found))
    if missing:
        index, finder = phrase_index(taxonomy), cues.cue_finder()
        for key, doc in zip(missing, nlp.parse([text for _, text in missing]), strict=True):
            found[key] = Reading(doc, index.mentions(doc), finder.find(doc))
        with _LOCK:
            _remember({k: found[k] for k in missing})
    return [found[k] for k in keys]


def forget() -> None:
    """Empty the reading and doc caches, as in a new process (for benchmarks of a cold start)."""
    with _LOCK:
        _READINGS.clear()
    nlp.forget()


def _remember(readings: dict[tuple[str, str], Reading]) -> None:
    for key, reading in readings.items():
        _READINGS[key] = reading
        _READINGS.move_to_end(key)
    while len(_READINGS) > READING_CACHE_SIZE:
        _READINGS.popitem(last=False)
