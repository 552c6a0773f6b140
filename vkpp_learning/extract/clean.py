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
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ue000-\uf8ff]")
_SPACES = re.compile(r"\s+")
# A word broken at a line end: letters, a hyphen, the end of the line.
_HYPHEN_END = re.compile(r"([A-Za-z]{1,})-$")
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
    text = _CONTROL.sub("", text.translate(_TRANSLATE))
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def collapse_spaces(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def vocabulary(texts: Iterable[str]) -> set[str]:
    """Lower-cased words (including hyphenated compounds) seen in a document, to decide line-end hyphens."""
    vocab: set[str] = set()
    for text in texts:
        vocab.update(w.lower() for w in _WORD.findall(text))
    return vocab


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
        match = _HYPHEN_END.search(out)
        if match and line[0].islower():
            out = out[:-1] + ("-" if _keeps_hyphen(match.group(1), line, vocab) else "") + line
        elif out.endswith("-") and not out.endswith(" -") and line[0].isupper() and match:
            out = out + line  # "anti-" + "Social": a compound with a capital keeps its hyphen
        else:
            out = out + " " + line
    return out


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
