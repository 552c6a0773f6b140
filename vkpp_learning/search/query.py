"""The keyword query language: user text -> a small tree of terms, quoted phrases, OR groups and exclusions,
rendered as a safe FTS5 MATCH string or as PostgreSQL SQL with bound parameters. Pure: no database here.

Every term reaches FTS5 double-quoted and PostgreSQL as a bound value, so no user text is ever syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vkpp_learning.search.tokenize import STOPWORDS, tokenize_many, words

MAX_QUERY_CHARS = 1_000
MAX_CLAUSES = 32
# A quoted run (the closing quote may be missing), an operator, or any other run of non-spaces.
_LEXEME = re.compile(r'(?P<minus>-?)"(?P<quoted>[^"]*)"?|(?P<word>[^\s"]+)')
OR_WORDS = ("OR", "|")
NOT_WORDS = ("NOT",)
AND_WORDS = ("AND", "&", "+")


@dataclass(frozen=True)
class Clause:
    """One term (one word) or one quoted phrase (several words in order)."""

    words: tuple[str, ...]
    quoted: bool = False

    @property
    def is_phrase(self) -> bool:
        return len(self.words) > 1

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class Group:
    """Clauses joined by OR: the group is met when any one of them is."""

    clauses: tuple[Clause, ...]


@dataclass(frozen=True)
class Query:
    """Groups the best passages meet all of (weaker ones meet some), and clauses no result may contain."""

    groups: tuple[Group, ...] = ()
    excluded: tuple[Clause, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.groups

    @property
    def clauses(self) -> list[Clause]:
        return [clause for group in self.groups for clause in group.clauses]

    @property
    def words(self) -> list[str]:
        """Every positive word, for highlighting."""
        return [word for clause in self.clauses for word in clause.words]


@dataclass
class _Parse:
    groups: list[list[Clause]] = field(default_factory=list)
    excluded: list[Clause] = field(default_factory=list)
    join_next: bool = False  # an OR was just read
    exclude_next: bool = False  # a NOT was just read


def parse(text: str) -> Query:
    """Parse user text: words, "quoted phrases", a OR b, -word or -"phrase" or NOT word to exclude.

    Never raises: unbalanced quotes close at the end, stray operators are ignored, punctuation inside a
    word splits it into a phrase (as FTS5 does), and unquoted stopwords are dropped unless nothing else is left.
    """
    state = _Parse()
    for match in _LEXEME.finditer(text[:MAX_QUERY_CHARS]):
        if match["word"] is not None:
            _read_word(state, match["word"])
        else:
            _add(state, _clause(match["quoted"], quoted=True), exclude=bool(match["minus"]))
    return _finish(state)


def _read_word(state: _Parse, word: str) -> None:
    if word in OR_WORDS:
        state.join_next = bool(state.groups)
    elif word in NOT_WORDS:
        state.exclude_next = True
    elif word not in AND_WORDS:
        exclude = word.startswith("-") and len(word) > 1
        _add(state, _clause(word[1:] if exclude else word, quoted=False), exclude=exclude)


def _clause(text: str, *, quoted: bool) -> Clause | None:
    found = words(text)
    return Clause(tuple(found), quoted=quoted or len(found) > 1) if found else None


def _add(state: _Parse, clause: Clause | None, *, exclude: bool) -> None:
    if clause is None:
        return
    if exclude or state.exclude_next:
        state.excluded.append(clause)
    elif state.join_next:
        state.groups[-1].append(clause)
    else:
        state.groups.append([clause])
    state.join_next = state.exclude_next = False


def _finish(state: _Parse) -> Query:
    groups = [tuple(dict.fromkeys(group)) for group in state.groups]
    kept = [group for group in groups if not _is_stopword_group(group)] or groups
    kept = _limit(kept)
    excluded = tuple(dict.fromkeys(state.excluded))[:MAX_CLAUSES]
    return Query(tuple(Group(group) for group in dict.fromkeys(kept)), excluded)


def _is_stopword_group(group: tuple[Clause, ...]) -> bool:
    return len(group) == 1 and not group[0].quoted and group[0].words[0].lower() in STOPWORDS


def _limit(groups: list[tuple[Clause, ...]]) -> list[tuple[Clause, ...]]:
    """At most MAX_CLAUSES clauses in all, so a pasted page cannot make an enormous query."""
    kept, room = [], MAX_CLAUSES
    for group in groups:
        if room <= 0:
            break
        kept.append(group[:room])
        room -= len(kept[-1])
    return kept


# FTS5 ----------------------------------------------------------------------------------------


def fts5_string(clause: Clause) -> str:
    """A clause as an FTS5 string: always double-quoted, embedded quotes doubled (sqlite-utils quote_fts)."""
    return '"' + clause.text.replace('"', '""') + '"'


def fts5_group(group: Group) -> str:
    strings = [fts5_string(clause) for clause in group.clauses]
    return strings[0] if len(strings) == 1 else "(" + " OR ".join(strings) + ")"


def fts5_strict(query: Query) -> str:
    """MATCH string for the passages that meet every group (and no excluded clause)."""
    return _fts5_excluding(" AND ".join(fts5_group(group) for group in query.groups), query)


def fts5_relaxed(query: Query) -> str | None:
    """MATCH string for the passages that meet some groups but not all; None when there is one group."""
    if len(query.groups) < 2:
        return None
    some = "(" + " OR ".join(fts5_string(clause) for clause in query.clauses) + ")"
    every = " AND ".join(fts5_group(group) for group in query.groups)
    return _fts5_excluding(f"{some} NOT ({every})", query)


def fts5_any(query: Query) -> str:
    """MATCH string for every passage that meets at least one group: the whole result set."""
    return _fts5_excluding("(" + " OR ".join(fts5_string(clause) for clause in query.clauses) + ")", query)


def _fts5_excluding(expression: str, query: Query) -> str:
    if not query.excluded:
        return expression
    return f"({expression}) NOT ({' OR '.join(fts5_string(clause) for clause in query.excluded)})"


# PostgreSQL ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresQuery:
    """The pieces of the BM25 statement for one query, with its bound parameters.

    `ctes` defines `hits(clause, passage_id, tf)` (one row per passage meeting each positive clause) and
    `excluded(passage_id)`; `strict` is a boolean SQL expression over the aggregated hits of one passage
    that is true when it meets every group.
    """

    ctes: str
    strict: str
    params: dict[str, str]
    has_exclusions: bool


def postgres_query(query: Query) -> PostgresQuery:
    """Render a non-empty query as SQL over `search_postings(term, passage_id, tf, positions)`."""
    clauses = query.clauses
    stems = tokenize_many([clause.text for clause in clauses + list(query.excluded)])
    params: dict[str, str] = {}
    selects = [
        f"SELECT {index} AS clause, passage_id, tf FROM ({clause_sql(f'c{index}', terms, params)}) AS c{index}"
        for index, terms in enumerate(stems[: len(clauses)])
    ]
    excluded = [
        f"SELECT passage_id FROM ({clause_sql(f'x{index}', terms, params)}) AS x{index}"
        for index, terms in enumerate(stems[len(clauses) :])
    ]
    excluded = excluded or ["SELECT NULL::integer AS passage_id WHERE false"]
    ctes = f"hits AS ({' UNION ALL '.join(selects)}), excluded AS ({' UNION '.join(excluded)})"
    return PostgresQuery(ctes, strict_sql(query), params, bool(query.excluded))


def clause_sql(name: str, terms: list[str], params: dict[str, str]) -> str:
    """Passages holding one term, or all a phrase's terms in a row, with how often (tf)."""
    for position, term in enumerate(terms):
        params[f"{name}_{position}"] = term
    if not terms:  # only characters FTS5 does not index: matches nothing, as in FTS5
        return "SELECT NULL::integer AS passage_id, 0 AS tf WHERE false"
    if len(terms) == 1:
        return f"SELECT passage_id, tf FROM search_postings WHERE term = :{name}_0"
    joins = " ".join(
        f"JOIN search_postings AS {name}p{i} ON {name}p{i}.passage_id = {name}p0.passage_id "
        f"AND {name}p{i}.term = :{name}_{i}"
        for i in range(1, len(terms))
    )
    follows = " AND ".join(f"x.pos + {i} = ANY({name}p{i}.positions)" for i in range(1, len(terms)))
    occurrences = f"(SELECT count(*) FROM unnest({name}p0.positions) AS x(pos) WHERE {follows})"
    inner = f"SELECT {name}p0.passage_id, {occurrences} AS tf FROM search_postings AS {name}p0 {joins} "
    inner += f"WHERE {name}p0.term = :{name}_0"
    return f"SELECT passage_id, tf FROM ({inner}) AS {name}i WHERE tf > 0"


def strict_sql(query: Query) -> str:
    """True for a passage (grouped hits) that meets every group; clause numbers are literals we made."""
    conditions, index = [], 0
    for group in query.groups:
        numbers = ", ".join(str(n) for n in range(index, index + len(group.clauses)))
        conditions.append(f"bool_or(clause IN ({numbers}))")
        index += len(group.clauses)
    return " AND ".join(conditions)
