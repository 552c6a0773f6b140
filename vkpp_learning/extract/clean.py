"""Text cleaning shared by every PDF backend: ligatures, odd whitespace and hyphenated line breaks."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Characters PDFs use that readers, search and taggers should see as plain text.
_TRANSLATE = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
        "\u00a0": " ",
        "\u2002": " ",
        "\u2003": " ",
        "\u2009": " ",
        "\u200a": " ",
        "\u202f": " ",
        "\u3000": " ",
        "\t": " ",
        "\u00ad": "",  # soft hyphen: only a hint where a word may break
        "\u200b": "",
        "\u200c": "",
        "\u200d": "",
        "\ufeff": "",
        "\ufffe": "-",  # pdfium's mark for a hyphen at a line break
        "\x02": "-",  # pdfium reports a hyphen it generated at a line break as \x02
        "\u2010": "-",
        "\u2011": "-",
        "\u2212": "-",
    }
)
# Control characters (all but the line feed) are dropped by the same table, in the same pass.
_TRANSLATE.update({c: None for c in [*range(0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0)] if c not in _TRANSLATE})
_PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")
# A word broken at a line end: letters, a hyphen, the end of the line.
_HYPHEN_END = re.compile(r"([A-Za-z]{1,})-$")
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_LOWER_TO_ASCII = "\u0130\u212a"  # the only non-ASCII characters whose lower case holds [A-Za-z'-]: İ, K (Kelvin)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
# Prefixes that usually keep their hyphen when the compound breaks at a line end ("self-neglect").
_KEEP_HYPHEN_PREFIXES = frozenset(
    {
        "self",
        "non",
        "well",
        "ill",
        "multi",
        "cross",
        "semi",
        "anti",
        "half",
        "step",
        "child",
        "long",
        "high",
        "low",
        "part",
        "full",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
    }
)


def normalise(text: str) -> str:
    """Unicode-normalise a run of PDF text: ligatures expanded, odd spaces made plain, controls dropped."""
    text = text.translate(_TRANSLATE)
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", _PRIVATE_USE.sub("", text))


def collapse_spaces(text: str) -> str:
    # str.split() splits on exactly the characters regex \s matches, and in C without a pattern.
    return " ".join(text.split())


def vocabulary(texts: Iterable[str]) -> set[str]:
    """Lower-cased words (including hyphenated compounds) seen in a document, to decide line-end hyphens."""
    # Words never span a line break, so the texts are searched as one, lower-cased first: that gives the
    # same words unless the text holds one of the two characters whose lower case is an ASCII letter.
    text = "\n".join(texts)
    if any(c in text for c in _LOWER_TO_ASCII):
        return {w.lower() for w in _WORD.findall(text)}
    return set(_WORD.findall(text.lower()))


def join_lines(lines: list[str], vocab: set[str] | frozenset[str] = frozenset()) -> str:
    """Join the lines of one block into one line, mending words hyphenated at a line break.

    A break "safe-" + "guarding" becomes "safeguarding" when that word is known (or nothing says
    otherwise); "multi-" + "agency" keeps its hyphen when "multi-agency" is known or the first part is a
    prefix that usually keeps it.
    """
    out = ""
    for raw in lines:
        line = collapse_spaces(raw)
        if not line:
            continue
        if not out:
            out = line
            continue
        match = _hyphen_end(out)
        if match and line[0].islower():
            out = out[:-1] + ("-" if _keeps_hyphen(match.group(1), line, vocab) else "") + line
        elif out.endswith("-") and not out.endswith(" -") and line[0].isupper() and match:
            out = out + line  # "anti-" + "Social": a compound with a capital keeps its hyphen
        else:
            out = out + " " + line
    return out


def _hyphen_end(text: str) -> re.Match[str] | None:
    """`_HYPHEN_END.search(text)` for text not ending in a line break, reading only the end of the text
    (the regex search tries every letter of a long block)."""
    if not text.endswith("-"):
        return None
    start = len(text) - 1
    while start and text[start - 1] in _ASCII_LETTERS:
        start -= 1
    return _HYPHEN_END.match(text, start)


def _keeps_hyphen(left: str, right_line: str, vocab: set[str] | frozenset[str]) -> bool:
    right = _WORD.match(right_line)
    right_word = right.group(0) if right else right_line.split(" ", 1)[0]
    joined = (left + right_word).lower()
    hyphenated = f"{left}-{right_word}".lower()
    if hyphenated in vocab and joined not in vocab:
        return True
    if joined in vocab:
        return False
    # Hyphenation leaves at least two letters on the line, so "e-" + "mailed" was written with its hyphen.
    return len(left) == 1 or left.lower() in _KEEP_HYPHEN_PREFIXES
