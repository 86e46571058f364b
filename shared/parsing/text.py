"""Markdown and plain-text parsing.

Markdown is read line by line with the handful of block rules that matter for
retrieval (ATX/setext headings, fenced code, pipe tables, lists, paragraphs). A full
CommonMark parser would add a dependency for little gain: inline markup is kept as-is,
which embedding models and LLMs read well.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from shared.parsing.builder import DocumentBuilder
from shared.parsing.detect import MARKDOWN, PLAIN

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S")
_TABLE_RULE = re.compile(r"^ {0,3}\|?[ \t]*:?-{1,}:?[ \t]*(\|[ \t]*:?-{1,}:?[ \t]*)*\|?[ \t]*$")
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)


def parse_plain(text: str, builder: DocumentBuilder) -> None:
    """Split plain text into paragraph blocks on blank lines.

    Args:
        text: The decoded text.
        builder: Receives the blocks.
    """
    for paragraph in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        # Trailing spaces only: leading indentation can carry meaning (poems, code).
        builder.add("paragraph", "\n".join(line.rstrip() for line in paragraph.split("\n")))


def parse_markdown(text: str, builder: DocumentBuilder) -> str | None:
    """Split Markdown into heading, paragraph, list, table and code blocks.

    Args:
        text: The decoded Markdown.
        builder: Receives the blocks.

    Returns:
        The title: the front-matter ``title`` or else the first level-1 heading.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    title, i = _front_matter(lines)
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            builder.add("paragraph", "\n".join(line.rstrip() for line in paragraph))
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
            i += 1
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            heading = (atx.group(2) or "").strip()
            builder.add("heading", heading, level=len(atx.group(1)))
            if title is None and len(atx.group(1)) == 1 and heading:
                title = heading
            i += 1
            continue
        setext = _SETEXT.match(line)
        if setext and len(paragraph) == 1:
            # "Title\n=====" is a heading; a longer paragraph followed by "---" is a
            # paragraph and a rule (CommonMark would make it a heading, but prose
            # documents mostly mean the rule).
            level = 1 if setext.group(1)[0] == "=" else 2
            heading = paragraph.pop().strip()
            builder.add("heading", heading, level=level)
            if title is None and level == 1:
                title = heading
            i += 1
            continue
        block_end = _other_block(lines, i, builder, flush)
        if block_end is not None:
            i = block_end
            continue
        paragraph.append(line)
        i += 1
    flush()
    return title


def _other_block(
    lines: list[str], i: int, builder: DocumentBuilder, flush: Callable[[], None]
) -> int | None:
    """Add the code block, rule, table or list starting at line ``i``, if one does.

    Headings are the caller's: a line under a one-line paragraph may be a setext
    underline rather than a rule.

    Args:
        lines: The document's lines.
        i: The line to look at (not blank).
        builder: Receives the block.
        flush: Ends the paragraph in progress (called before a block is added).

    Returns:
        The index of the line after the block, or None if none starts at ``i``.
    """
    line = lines[i]
    fence = _FENCE.match(line)
    if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):
        flush()
        return _code_block(lines, i, fence.group(2), builder)
    if _THEMATIC.match(line):
        flush()
        return i + 1
    if "|" in line and i + 1 < len(lines) and _is_table_rule(lines[i + 1]):
        flush()
        return _table_block(lines, i, builder)
    if _LIST_ITEM.match(line):
        flush()
        return _list_block(lines, i, builder)
    return None


def parse_text(text: str, content_type: str, builder: DocumentBuilder) -> str | None:
    """Parse decoded text as Markdown or plain text.

    Args:
        text: The decoded text.
        content_type: ``text/markdown`` or ``text/plain``.
        builder: Receives the blocks.

    Returns:
        The document title, if the Markdown declares one.
    """
    if content_type == MARKDOWN:
        return parse_markdown(text, builder)
    assert content_type == PLAIN
    parse_plain(text, builder)
    return None


def _front_matter(lines: list[str]) -> tuple[str | None, int]:
    # YAML front matter ("---" ... "---" at the very top) is metadata, not content.
    if not lines or lines[0].strip() != "---":
        return None, 0
    for end in range(1, min(len(lines), 200)):
        if lines[end].strip() in ("---", "..."):
            match = _FRONT_TITLE.search("\n".join(lines[1:end]))
            title = match.group(1).strip("'\"") if match else None
            return title or None, end + 1
    return None, 0


def _code_block(lines: list[str], i: int, fence: str, builder: DocumentBuilder) -> int:
    # The block keeps its fences: they mark it as code for readers and preserve the
    # first line's indentation, which stripping would otherwise eat.
    body = [lines[i].strip()]
    j = i + 1
    while j < len(lines):
        stripped = lines[j].strip()
        body.append(lines[j].rstrip())
        j += 1
        if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
            break
    else:
        body.append(fence)  # unclosed fence runs to the end of the document
    if len(body) > 2 and any(line.strip() for line in body[1:-1]):
        builder.add("code", "\n".join(body))
    return j


def _is_table_rule(line: str) -> bool:
    return "-" in line and ("|" in line) and bool(_TABLE_RULE.match(line))


def _table_block(lines: list[str], i: int, builder: DocumentBuilder) -> int:
    rows = [lines[i].strip(), lines[i + 1].strip()]
    j = i + 2
    while j < len(lines) and lines[j].strip() and "|" in lines[j]:
        rows.append(lines[j].strip())
        j += 1
    builder.add("table", "\n".join(rows))
    return j


def _list_block(lines: list[str], i: int, builder: DocumentBuilder) -> int:
    # Items, their indented continuation lines and blank lines between items (a loose
    # list) stay one block; it ends at a blank line followed by a non-item, non-indented
    # line, or at a heading or fence.
    items: list[str] = []
    j = i
    while j < len(lines):
        line = lines[j]
        if not line.strip():
            nxt = lines[j + 1] if j + 1 < len(lines) else ""
            if _LIST_ITEM.match(nxt) or (nxt.startswith((" ", "\t")) and nxt.strip()):
                j += 1
                continue
            break
        if j > i and (_ATX.match(line) or _FENCE.match(line) or _THEMATIC.match(line)):
            break
        unindented = not _LIST_ITEM.match(line) and not line.startswith((" ", "\t"))
        if unindented and not lines[j - 1].strip():
            # Only a lazy continuation line directly under an item belongs to it.
            break
        items.append(line.rstrip())
        j += 1
    builder.add("list", tidy_list("\n".join(items)))
    return j


def tidy_list(text: str) -> str:
    """Drop blank lines inside a list while keeping item indentation.

    Args:
        text: List lines.

    Returns:
        The list text without blank lines.
    """
    return "\n".join(line for line in text.split("\n") if line.strip())
