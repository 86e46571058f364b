"""HTML parsing with selectolax (lexbor backend).

The walk is iterative (an explicit stack) so hostile, deeply nested markup cannot
exhaust Python's recursion limit. Page chrome (navigation, banners, scripts) is left
out, and the main content (``<main>``/``<article>``) is preferred when the page marks it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

from selectolax.lexbor import LexborHTMLParser, LexborNode

from shared.errors import CorruptContentError
from shared.parsing.builder import DocumentBuilder, collapse_whitespace, markdown_table

# Never content: code, styling, embedded media and page chrome.
_DROP = frozenset(
    {
        "script", "style", "noscript", "template", "nav", "aside", "svg", "iframe",
        "head", "title", "meta", "link", "button", "select", "option", "datalist",
        "canvas", "object", "embed", "audio", "video", "picture", "map", "math",
        "dialog", "input", "textarea",
    }
)  # fmt: skip
# Site banners and footers; inside <article>/<main> they hold the article's own title
# or byline, so they are dropped only at page level.
_CHROME = frozenset({"header", "footer"})
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LISTS = frozenset({"ul", "ol", "menu"})
# Elements that start a new line of text (a block boundary) in rendered HTML.
_BLOCKS = frozenset(
    {
        "address", "article", "blockquote", "body", "caption", "center", "dd", "details",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "form", "hgroup", "hr",
        "li", "main", "p", "section", "summary", "table", "tbody", "td", "tfoot", "th",
        "thead", "tr", "ul", "ol", "menu", "pre", "header", "footer", "h1", "h2", "h3",
        "h4", "h5", "h6", "legend", "search",
    }
)  # fmt: skip
_MAX_LIST_DEPTH = 8
_MAX_COLSPAN = 50
_SPACE = re.compile(r"[ \t\n\r\f\u00a0]+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def redecode(data: bytes, text: str, encoding: str | None) -> str:
    """Honour a ``<meta charset>`` when the bytes were not UTF-8/16/32.

    Detection falls back to Windows-1252 for non-UTF-8 bytes; an HTML page that
    declares its charset (Shift_JIS, KOI8-R, ...) should be decoded with it instead.

    Args:
        data: The raw bytes.
        text: The text as decoded by detection.
        encoding: The codec detection used.

    Returns:
        The best decoding of the page.
    """
    if encoding not in ("cp1252", "latin-1"):
        return text
    match = _META_CHARSET.search(data[:8192])
    if not match:
        return text
    try:
        codec = codecs.lookup(match.group(1).decode("ascii"))
    except (LookupError, UnicodeDecodeError):
        return text
    return data.decode(codec.name, errors="replace")


def parse_html(text: str, builder: DocumentBuilder) -> str | None:
    """Extract headings, paragraphs, lists, tables and code from an HTML page.

    Args:
        text: The decoded HTML.
        builder: Receives the blocks.

    Returns:
        The page title (``<title>``, else the first ``<h1>``), if any.

    Raises:
        CorruptContentError: If the parser rejects the markup outright.
    """
    try:
        tree = LexborHTMLParser(text)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CorruptContentError(
            "HTML could not be parsed; check that the file is a complete web page",
            code="corrupt_html",
        ) from exc
    # The document's <title> lives in <head>; an <svg><title> in the body is a tooltip.
    title_node = tree.css_first("head > title") or tree.css_first("title")
    title = collapse_whitespace(title_node.text()) if title_node is not None else ""
    body = tree.body or tree.root
    if body is None:
        return title or None
    _Walker(builder).walk(_content_root(body))
    if not title:
        h1 = body.css_first("h1")
        title = collapse_whitespace(_inline_text(h1)) if h1 is not None else ""
    return title or None


def _content_root(body: LexborNode) -> LexborNode:
    # <main> (or a single <article>) holds the content on well-marked pages; a listing
    # page with many articles reads best from the body.
    candidate = body.css_first("main")
    if candidate is None:
        articles = body.css("article")
        candidate = articles[0] if len(articles) == 1 else None
    if candidate is None:
        return body
    # Some pages mark a tiny <main> (a hero banner); then the body is the better bet.
    if len(_inline_text(candidate)) < 0.2 * len(_inline_text(body)):
        return body
    return candidate


class _Walker:
    """Turn a DOM subtree into builder blocks, in document order."""

    def __init__(self, builder: DocumentBuilder) -> None:
        self._builder = builder
        self._inline: list[str] = []

    def walk(self, root: LexborNode) -> None:
        """Add the blocks of ``root``'s subtree to the builder, in document order."""
        root_text = len(_inline_text(root))
        # (node, exiting, inside an article/main)
        stack: list[tuple[LexborNode, bool, bool]] = [
            (root, False, root.tag in ("main", "article"))
        ]
        while stack:
            node, exiting, in_content = stack.pop()
            if exiting:
                self._flush()
                continue
            if node.is_text_node:
                self._inline.append(_SPACE.sub(" ", node.text(deep=False)))
                continue
            if not node.is_element_node:
                continue  # comments, doctype
            tag = node.tag or ""
            if _skipped(node, tag, in_content, root_text) or self._emit_leaf(node, tag):
                continue
            if tag in _BLOCKS:
                self._flush()
                stack.append((node, True, in_content))
            inner = in_content or tag in ("main", "article")
            children = list(node.iter(include_text=True))
            stack.extend((child, False, inner) for child in reversed(children))
        self._flush()

    def _emit_leaf(self, node: LexborNode, tag: str) -> bool:
        """Add ``node`` as one block if it is read whole; True if it was."""
        if tag == "br":
            self._inline.append("\n")
        elif tag in _HEADINGS:
            self._flush()
            self._builder.add("heading", _inline_text(node), level=_HEADINGS[tag])
        elif tag in _LISTS:
            self._flush()
            self._builder.add("list", "\n".join(_list_lines(node, 0)))
        elif tag == "pre":
            self._flush()
            code = node.text(deep=True).strip("\n")
            if code.strip():
                self._builder.add("code", f"```\n{code.rstrip()}\n```")
        elif tag == "table":
            rows = _table_rows(node)
            if max((len(row) for row in rows), default=0) <= 1:
                # A one-column table is layout, not data: read its cells as content.
                return False
            self._flush()
            self._builder.add("table", markdown_table(rows))
        else:
            return False
        return True

    def _flush(self) -> None:
        if not self._inline:
            return
        lines = (" ".join(line.split()) for line in "".join(self._inline).split("\n"))
        self._inline.clear()
        self._builder.add("paragraph", "\n".join(line for line in lines if line))


def _skipped(node: LexborNode, tag: str, in_content: bool, root_text: int) -> bool:
    """Whether ``node`` is not content: scripts and styles, page chrome, small forms."""
    if tag in _DROP or (tag in _CHROME and not in_content):
        return True
    # Forms are search boxes and sign-ups, except on pages that wrap all their content
    # in one (ASP.NET WebForms), which must be kept.
    return tag == "form" and len(_inline_text(node)) < 0.5 * root_text


def _descendants(node: LexborNode, stop: frozenset[str]) -> Iterator[LexborNode]:
    """Yield the outermost descendants whose tag is in ``stop`` (not their insides)."""
    stack = list(reversed(list(node.iter())))
    while stack:
        child = stack.pop()
        tag = child.tag or ""
        if tag in stop:
            yield child
        elif tag not in _DROP:
            stack.extend(reversed(list(child.iter())))


def _inline_text(node: LexborNode, skip: frozenset[str] = frozenset()) -> str:
    """Return a node's text on one line, with spaces at block boundaries."""
    parts: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.is_text_node:
            parts.append(current.text(deep=False))
            continue
        if not current.is_element_node:
            continue
        tag = current.tag or ""
        if current is not node and (tag in _DROP or tag in skip):
            continue
        if tag in _BLOCKS or tag == "br":
            # Adjacent blocks ("<td>a</td><td>b</td>") must not glue their words.
            parts.append(" ")
        stack.extend(reversed(list(current.iter(include_text=True))))
    return " ".join("".join(parts).split())


def _list_lines(node: LexborNode, depth: int) -> list[str]:
    """Render a list as ``- item`` / ``1. item`` lines, nested lists indented."""
    lines: list[str] = []
    ordered = node.tag == "ol"
    number = _int_attr(node, "start", 1)
    indent = "  " * depth
    for item in _descendants(node, frozenset({"li", "ul", "ol", "menu"})):
        if item.tag != "li":
            # A list directly inside a list (invalid but common): nest it.
            lines.extend(_list_lines(item, min(depth + 1, _MAX_LIST_DEPTH)))
            continue
        nested = list(_descendants(item, _LISTS)) if depth < _MAX_LIST_DEPTH else []
        text = _inline_text(item, skip=_LISTS if nested else frozenset())
        marker = f"{number}." if ordered else "-"
        number += 1
        if text:
            lines.append(f"{indent}{marker} {text}")
        for sub in nested:
            lines.extend(_list_lines(sub, depth + 1))
    return lines


def _table_rows(table: LexborNode) -> list[list[str]]:
    """Return the table's cell texts row by row (nested tables flattened into cells)."""
    rows: list[list[str]] = []
    for row in _descendants(table, frozenset({"tr", "table"})):
        if row.tag != "tr":
            continue  # a table directly nested outside any row: ignore its structure
        cells: list[str] = []
        for cell in _descendants(row, frozenset({"td", "th"})):
            cells.append(_inline_text(cell))
            # Repeat nothing for merged cells, but keep columns aligned.
            cells.extend([""] * (min(_int_attr(cell, "colspan", 1), _MAX_COLSPAN) - 1))
        if cells:
            rows.append(cells)
    return rows


def _int_attr(node: LexborNode, name: str, default: int) -> int:
    value = node.attributes.get(name)
    try:
        return max(int(str(value).strip()), 1) if value is not None else default
    except ValueError:
        return default
