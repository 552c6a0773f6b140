"""Highlights: the passage (or a ~60-word snippet of a long one) HTML-escaped, with only the words that
match a query term, by FTS5 stem, wrapped in <mark>...</mark>. Nothing from the document makes markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from vkpp_learning.search.tokenize import WORD, stem

SNIPPET_WORDS = 60
LONG_PASSAGE_WORDS = 80
ELLIPSIS = "…"


def query_stems(words: Iterable[str]) -> frozenset[str]:
    return frozenset(filter(None, (stem(word) for word in words)))


def highlight(text: str, stems: frozenset[str]) -> str:
    """The escaped text, or its best snippet when long, with matching words marked."""
    spans = [(m.start(), m.end(), stem(m.group()) in stems) for m in WORD.finditer(text)]
    if len(spans) <= LONG_PASSAGE_WORDS:
        return _render(text, spans, 0, len(text))
    first = best_window(spans, SNIPPET_WORDS)
    last = first + SNIPPET_WORDS - 1
    start = 0 if first == 0 else spans[first][0]
    end = len(text) if last >= len(spans) - 1 else spans[last][1]
    snippet = _render(text, spans[first : last + 1], start, end)
    return (ELLIPSIS + " " if start else "") + snippet + (" " + ELLIPSIS if end < len(text) else "")


def best_window(spans: list[tuple[int, int, bool]], size: int) -> int:
    """Index of the first word of the `size`-word window with the most matches (earliest on a tie)."""
    marks = [int(matched) for _, _, matched in spans]
    count = best = sum(marks[:size])
    best_first = 0
    for first in range(1, len(marks) - size + 1):
        count += marks[first + size - 1] - marks[first - 1]
        if count > best:
            best, best_first = count, first
    return best_first


def _render(text: str, spans: list[tuple[int, int, bool]], start: int, end: int) -> str:
    parts, cursor = [], start
    for word_start, word_end, matched in spans:
        if not matched:
            continue
        parts.append(html.escape(text[cursor:word_start]))
        parts.append(f"<mark>{html.escape(text[word_start:word_end])}</mark>")
        cursor = word_end
    parts.append(html.escape(text[cursor:end]))
    return "".join(parts).strip()
