"""Showing document text safely in the app: text from a PDF is always text, never HTML, Markdown, LaTeX
or a Streamlit directive. The only markup we let through is the search library's <mark></mark>.
"""

from __future__ import annotations

import html
import re

MARK_TAG = re.compile(r"(</?mark>)")
# Characters Markdown, LaTeX ($) and Streamlit directives (:red[...], :emoji:) give meaning to. Every one is
# ASCII punctuation, which CommonMark lets a backslash turn back into itself.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:$=^])")
DEFAULT_PREVIEW_CHARS = 1_500


def escape_markdown(text: str) -> str:
    """`text` made inert for st.markdown: HTML escaped, every Markdown-significant character backslashed,
    line breaks kept as Markdown line breaks."""
    lines = (html.escape(MARKDOWN_SPECIAL.sub(r"\\\1", line), quote=True) for line in str(text).splitlines())
    return "  \n".join(lines)


def only_mark_tags(highlighted: str) -> bool:
    """True when the only tags in `highlighted` are balanced, unnested <mark> and </mark>."""
    depth = 0
    for part in MARK_TAG.split(highlighted):
        if part == "<mark>":
            depth += 1
        elif part == "</mark>":
            depth -= 1
        elif "<" in part or ">" in part:
            return False
        if depth not in (0, 1):
            return False
    return depth == 0


def safe_highlight(highlighted: str) -> str:
    """A search snippet (HTML-escaped text with <mark> tags) as Markdown safe for unsafe_allow_html=True.

    Each stretch of text between marks is unescaped, then escaped again for Markdown and HTML, so a snippet
    that arrives double-escaped or with stray tags still shows as plain text. When the marks are not the
    only tags, or are unbalanced, all markup is dropped and the whole snippet is shown as text.
    """
    if not only_mark_tags(highlighted):
        return escape_markdown(html.unescape(MARK_TAG.sub("", highlighted)))
    parts = []
    for part in MARK_TAG.split(highlighted):
        parts.append(part if part in ("<mark>", "</mark>") else escape_markdown(html.unescape(part)))
    return "".join(parts)


def preview(text: str, limit: int = DEFAULT_PREVIEW_CHARS) -> tuple[str, int]:
    """The first `limit` characters of a (possibly huge) passage, cut at a word, and how many were left out."""
    text = str(text)
    if len(text) <= limit:
        return text, 0
    cut = text.rfind(" ", 0, limit)
    cut = cut if cut > limit // 2 else limit
    return text[:cut].rstrip() + " …", len(text) - cut
