"""Words and stems exactly as SQLite FTS5's porter tokenizer makes them, for the PostgreSQL BM25 index,
the query parser and the highlighter.

SQLite's own FTS5 (in Python's standard library) does the work, so both databases index the same terms.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from functools import lru_cache

FTS5_TOKENIZE = "porter unicode61 remove_diacritics 2"
# unicode61 splits on everything that is not a letter or a digit (underscore included).
WORD = re.compile(r"[^\W_]+")
_LOCAL = threading.local()

# Small words dropped from unquoted query terms: they match almost every passage and drown rarer words.
_STOPWORD_TEXT = """a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
nor not of off on once only or other our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves around
what's whats"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _vocabulary() -> sqlite3.Connection:
    """A per-thread in-memory FTS5 table whose `instance` vocabulary lists each token of each row in order."""
    connection = getattr(_LOCAL, "connection", None)
    if connection is None:
        connection = sqlite3.connect(":memory:")
        connection.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{FTS5_TOKENIZE}')")
        connection.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        _LOCAL.connection = connection
    return connection


def tokenize_many(texts: Sequence[str]) -> list[list[str]]:
    """The FTS5 terms (lower-cased, diacritics removed, porter-stemmed) of each text, in order."""
    connection = _vocabulary()
    terms: list[list[str]] = [[] for _ in texts]
    with connection:
        connection.executemany("INSERT INTO t(rowid, x) VALUES (?, ?)", enumerate(texts))
        for term, row in connection.execute("SELECT term, doc FROM v ORDER BY doc, offset"):
            terms[row].append(term)
        connection.execute("DELETE FROM t")
    return terms


def tokenize(text: str) -> list[str]:
    return tokenize_many([text])[0]


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """The FTS5 term of one word (a run of letters and digits); empty when it holds none."""
    terms = tokenize(word)
    return terms[0] if terms else ""


def words(text: str) -> list[str]:
    """The runs of letters and digits in `text`, as FTS5 splits it."""
    return WORD.findall(text)
