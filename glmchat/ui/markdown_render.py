"""Markdown to Textual ``Content`` lines, for answers that must stay cheap on screen.

Textual's ``Markdown`` widget mounts one widget per block (more for lists and
tables), and a frame costs time in proportion to every widget mounted
(textual-notes §1.4). A chat log holds many answers, so glmchat renders each
answer into plain ``Content`` lines instead: one widget per answer (or per
chunk of a long streaming answer), styled with theme variables so it follows
the theme, with highlighted code and clickable links.

The work is split in two so that a resize does not re-parse:

- `parse_blocks` turns source text into a list of top-level `Block` objects
  (inline text already converted to ``Content``; code already highlighted).
- `Block.lines(width)` lays a block out for a width; each block caches its
  last layout.

Nothing here touches a widget or the app; the renderer is pure and testable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable, Sequence

from textual.content import Content, Span
from textual.style import Style

from glmchat.sanitize import safe_link

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.tree import SyntaxTreeNode

# Styles are strings with theme variables: they are resolved when the widget
# renders, so a theme change restyles without re-parsing.
STYLE_EM = "italic"
STYLE_STRONG = "bold"
STYLE_STRIKE = "strike"
STYLE_LINK = "underline $text-accent"
STYLE_LINK_BLOCKED = "$text-muted strike"
STYLE_CODE_INLINE_DARK = "$text-warning on $warning 10%"
STYLE_CODE_INLINE_LIGHT = "$text-error on $error 5%"
STYLE_CODE_BLOCK = "on $background-darken-1"
STYLE_CODE_BLOCK_LIGHT = "on $background-darken-1"
STYLE_QUOTE_BAR = "$text-primary 50%"
STYLE_QUOTE_TEXT = "italic"
STYLE_BULLET = "$text-secondary"
STYLE_RULE = "$secondary"
STYLE_TABLE_BORDER = "$text-muted"
STYLE_TABLE_HEADER = "bold"
STYLE_HTML = "$text-muted"
HEADING_STYLES = {
    1: "bold underline $markdown-h1-color",
    2: "bold $markdown-h2-color",
    3: "bold $markdown-h3-color",
    4: "$markdown-h4-color $markdown-h4-text-style",
    5: "$markdown-h5-color $markdown-h5-text-style",
    6: "$markdown-h6-color $markdown-h6-text-style",
}
BULLETS = ("•", "◦", "▪", "‣")

LIVE_HIGHLIGHT_LIMIT = 6_000
"""While streaming, code longer than this (characters) is shown plain; it is
highlighted once it is complete, so a huge fence does not cost O(fence) per frame."""

CODE_PAD = 1
"""Spaces left and right of code inside its background."""


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Lazy import: markdown-it is only needed once there is an answer to show.
    from markdown_it import MarkdownIt

    # GitHub-flavoured tables and strikethrough; bare URLs are linked by
    # `_link_bare_urls` (the linkify plugin costs 25 ms to load on the first answer).
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


_BARE_URL = re.compile(r"\b(?:https?://|mailto:)[^\s<>()\[\]{}\"'`]+[^\s<>()\[\]{}\"'`.,;:!?]")


# -- blocks ------------------------------------------------------------------------------


@dataclass(eq=False)
class Block:
    """A top-level block, laid out on demand for a width."""

    start_line: int = 0
    """First source line of the block (relative to the parsed text)."""
    _cache: tuple[int, list[Content]] | None = field(default=None, repr=False)

    def lines(self, width: int) -> list[Content]:
        """The block's lines for a width (cached for the last width asked)."""
        width = max(width, 4)
        cache = self._cache
        if cache is not None and cache[0] == width:
            return cache[1]
        lines = self.layout(width)
        self._cache = (width, lines)
        return lines

    def layout(self, width: int) -> list[Content]:
        raise NotImplementedError

    @property
    def tight(self) -> bool:
        """Whether no blank line follows this block inside a tight list item."""
        return False


@dataclass(eq=False)
class Paragraph(Block):
    content: Content = field(default_factory=Content)

    def layout(self, width: int) -> list[Content]:
        return _wrap(self.content, width)


@dataclass(eq=False)
class Heading(Block):
    level: int = 1
    content: Content = field(default_factory=Content)

    def layout(self, width: int) -> list[Content]:
        # Every level starts at the left edge, like the text under it (an H1 is told
        # apart by its style, not by being centred).
        style = HEADING_STYLES.get(self.level, "bold")
        return _wrap(self.content.stylize_before(style), width)


@dataclass(eq=False)
class Rule(Block):
    def layout(self, width: int) -> list[Content]:
        return [Content.styled("─" * width, STYLE_RULE)]


@dataclass(eq=False)
class Code(Block):
    code: Content = field(default_factory=Content)
    language: str = ""
    light: bool = False
    highlighted: bool = True
    """False when highlighting was skipped while streaming (it is done once the code is complete)."""

    def layout(self, width: int) -> list[Content]:
        style = STYLE_CODE_BLOCK_LIGHT if self.light else STYLE_CODE_BLOCK
        inner = max(width - 2 * CODE_PAD, 2)
        out: list[Content] = []
        pad = Content(" " * CODE_PAD)
        blank = Content.styled(" " * width, style)
        out.append(blank)
        for line in self.code.split("\n", allow_blank=True):
            line = line.expand_tabs(4)
            # Code keeps its line structure: long lines fold at the edge rather than wrap at spaces.
            pieces = line.fold(inner) if line.cell_length > inner else [line]
            for piece in pieces:
                row = pad + piece + pad
                row = row.extend_right(max(width - row.cell_length, 0))
                out.append(row.stylize_before(style))
        out.append(blank)
        return out


@dataclass(eq=False)
class Html(Block):
    text: str = ""

    def layout(self, width: int) -> list[Content]:
        return _wrap(Content.styled(self.text.rstrip("\n"), STYLE_HTML), width)


@dataclass(eq=False)
class ListBlock(Block):
    ordered: bool = False
    start: int = 1
    items: list[list[Block]] = field(default_factory=list)
    depth: int = 0
    is_tight: bool = True

    def layout(self, width: int) -> list[Content]:
        if self.ordered:
            last = self.start + max(len(self.items) - 1, 0)
            marker_width = len(f"{last}.") + 1
            markers = [f"{n}.".rjust(marker_width - 1) + " " for n in range(self.start, last + 1)]
        else:
            bullet = BULLETS[self.depth % len(BULLETS)]
            marker_width = 2
            markers = [f"{bullet} "] * len(self.items)
        inner = max(width - marker_width, 2)
        indent = Content(" " * marker_width)
        out: list[Content] = []
        for index, (marker, blocks) in enumerate(zip(markers, self.items)):
            body = _stack(blocks, inner, tight=self.is_tight) or [Content()]
            out.append(Content.styled(marker, STYLE_BULLET) + body[0])
            out.extend(indent + line for line in body[1:])
            if not self.is_tight and index < len(self.items) - 1:
                out.append(Content())
        return out


@dataclass(eq=False)
class Quote(Block):
    children: list[Block] = field(default_factory=list)

    def layout(self, width: int) -> list[Content]:
        bar = Content.styled("▌ ", STYLE_QUOTE_BAR)
        body = _stack(self.children, max(width - 2, 2)) or [Content()]
        return [bar + line.stylize_before(STYLE_QUOTE_TEXT) for line in body]


@dataclass(eq=False)
class Table(Block):
    header: list[Content] = field(default_factory=list)
    rows: list[list[Content]] = field(default_factory=list)
    aligns: list[str] = field(default_factory=list)

    def layout(self, width: int) -> list[Content]:
        columns = max([len(self.header), *(len(row) for row in self.rows)] or [0])
        if columns == 0:
            return []
        grid = [self.header + [Content()] * (columns - len(self.header))]
        grid += [row + [Content()] * (columns - len(row)) for row in self.rows]
        natural = [max(max(grid[r][c].cell_length for r in range(len(grid))), 1) for c in range(columns)]
        # Borders: "│ a │ b │" takes 3 cells per column plus 1.
        available = max(width - (3 * columns + 1), columns)
        widths = _fit_columns(natural, available)
        border = STYLE_TABLE_BORDER
        out: list[Content] = []

        def rule(left: str, mid: str, right: str) -> Content:
            return Content.styled(left + mid.join("─" * (w + 2) for w in widths) + right, border)

        out.append(rule("┌", "┬", "┐"))
        for r, row in enumerate(grid):
            cells = []
            for c, cell in enumerate(row):
                if r == 0:
                    cell = cell.stylize_before(STYLE_TABLE_HEADER)
                cells.append(_wrap(cell, widths[c]) or [Content()])
            height = max(len(cell) for cell in cells)
            for y in range(height):
                line = Content.styled("│", border)
                for c, cell in enumerate(cells):
                    text = cell[y] if y < len(cell) else Content()
                    align = self.aligns[c] if c < len(self.aligns) else ""
                    if align == "right":
                        text = text.right(widths[c])
                    elif align == "center":
                        text = text.center(widths[c])
                    else:
                        text = text.extend_right(widths[c] - text.cell_length)
                    line = line + " " + text + " " + Content.styled("│", border)
                out.append(line)
            if r == 0:
                out.append(rule("├", "┼", "┤"))
        out.append(rule("└", "┴", "┘"))
        return out


def _fit_columns(natural: list[int], available: int) -> list[int]:
    """Shrink the widest columns first until the table fits."""
    widths = list(natural)
    while sum(widths) > available:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= 3:
            break
        widths[widest] -= 1
    return widths


def _wrap(content: Content, width: int) -> list[Content]:
    if not content:
        return [Content()]
    return content.wrap(max(width, 1))


def _stack(blocks: Sequence[Block], width: int, *, tight: bool = False) -> list[Content]:
    """Blocks one under the other, a blank line between (none between paragraphs of a tight list)."""
    out: list[Content] = []
    for index, block in enumerate(blocks):
        if index and not (tight and isinstance(blocks[index - 1], Paragraph)):
            out.append(Content())
        out.extend(block.lines(width))
    return out


def layout_blocks(blocks: Iterable[Block], width: int) -> list[Content]:
    """Lay out top-level blocks for a width, a blank line between blocks."""
    out: list[Content] = []
    for index, block in enumerate(blocks):
        if index:
            out.append(Content())
        out.extend(block.lines(width))
    return out


# -- parsing -----------------------------------------------------------------------------


_WHITESPACE = re.compile(r"[ \t]+")


@dataclass
class RenderOptions:
    """What the parse needs to know about the screen."""

    light: bool = False
    """A light theme: inline code and highlighting use their light variants."""
    live: bool = False
    """The text is still streaming: skip highlighting very long code."""
    ansi: bool = False
    """The app uses the terminal's own ANSI colours."""
    highlight: bool = True
    """Highlight code at all (off for a first frame that must come fast; see MarkdownView)."""


def parse_blocks(source: str, options: RenderOptions | None = None) -> list[Block]:
    """Parse Markdown into top-level blocks.

    Args:
        source: Markdown text (already made inert for the terminal).
        options: Theme and streaming facts that change how code is highlighted.

    Returns:
        The top-level blocks, each knowing the source line it starts on.
    """
    from markdown_it.tree import SyntaxTreeNode

    options = options or RenderOptions()
    tokens = _parser().parse(source)
    root = SyntaxTreeNode(tokens)
    blocks: list[Block] = []
    for node in root.children:
        block = _block(node, options, depth=0)
        if block is not None:
            block.start_line = node.map[0] if node.map else 0
            blocks.append(block)
    return blocks


def _block(node: SyntaxTreeNode, options: RenderOptions, depth: int) -> Block | None:
    kind = node.type
    if kind == "paragraph":
        return Paragraph(content=_inline(node.children[0] if node.children else None, options))
    if kind == "heading":
        level = int(node.tag[1:]) if node.tag[1:].isdigit() else 1
        return Heading(level=level, content=_inline(node.children[0] if node.children else None, options))
    if kind == "hr":
        return Rule()
    if kind in ("fence", "code_block"):
        language = (node.info or "").strip().split(maxsplit=1)[0] if node.info else ""
        code = node.content.rstrip("\n")
        skipped = (options.live and len(code) > LIVE_HIGHLIGHT_LIMIT) or (not options.highlight and bool(language))
        return Code(
            code=_highlight(code, language, options), language=language, light=options.light, highlighted=not skipped
        )
    if kind in ("bullet_list", "ordered_list"):
        items: list[list[Block]] = []
        tight = True
        for item in node.children:
            children: list[Block] = []
            for child in item.children:
                if child.type == "paragraph" and child.hidden is False:
                    tight = False
                sub = _block(child, options, depth + 1 if child.type.endswith("_list") else depth)
                if sub is not None:
                    children.append(sub)
            items.append(children)
        start = 1
        if kind == "ordered_list":
            try:
                start = int(node.attrs.get("start", 1))
            except (TypeError, ValueError):
                start = 1
        block = ListBlock(ordered=kind == "ordered_list", start=start, items=items, depth=depth, is_tight=tight)
        if kind == "bullet_list":
            # Nested bullet lists pick the next bullet shape.
            _set_depth(block, depth)
        return block
    if kind == "blockquote":
        children = [b for b in (_block(child, options, depth) for child in node.children) if b is not None]
        return Quote(children=children)
    if kind == "table":
        return _table(node, options)
    if kind in ("html_block",):
        return Html(text=node.content)
    return None


def _set_depth(block: ListBlock, depth: int) -> None:
    block.depth = depth
    for item in block.items:
        for child in item:
            if isinstance(child, ListBlock):
                _set_depth(child, depth + 1)


def _table(node: SyntaxTreeNode, options: RenderOptions) -> Table:
    header: list[Content] = []
    rows: list[list[Content]] = []
    aligns: list[str] = []
    for section in node.children:
        for tr in section.children:
            cells: list[Content] = []
            for cell in tr.children:
                cells.append(_inline(cell.children[0] if cell.children else None, options))
                if section.type == "thead":
                    style = str(cell.attrs.get("style", ""))
                    aligns.append(style.removeprefix("text-align:") if style.startswith("text-align:") else "")
            if section.type == "thead":
                header = cells
            else:
                rows.append(cells)
    return Table(header=header, rows=rows, aligns=aligns)


def _inline(node: SyntaxTreeNode | None, options: RenderOptions) -> Content:
    """Convert an inline node (text, emphasis, code, links) to Content with styled spans."""
    if node is None:
        return Content()
    parts: list[str] = []
    spans: list[Span] = []
    position = 0
    in_link = False
    code_style = STYLE_CODE_INLINE_LIGHT if options.light else STYLE_CODE_INLINE_DARK

    def add(text: str) -> None:
        nonlocal position
        parts.append(text)
        position += len(text)

    def walk(children: Sequence[SyntaxTreeNode]) -> None:
        nonlocal in_link
        for child in children:
            kind = child.type
            if kind == "text":
                start = position
                add(child.content)
                if not in_link:
                    for match in _BARE_URL.finditer(child.content):
                        spans.append(Span(start + match.start(), start + match.end(), _link_style(match.group())))
            elif kind == "softbreak":
                add(" ")
            elif kind == "hardbreak":
                add("\n")
            elif kind == "code_inline":
                start = position
                add(child.content)
                spans.append(Span(start, position, code_style))
            elif kind in ("em", "strong", "s"):
                start = position
                walk(child.children)
                style = {"em": STYLE_EM, "strong": STYLE_STRONG, "s": STYLE_STRIKE}[kind]
                spans.append(Span(start, position, style))
            elif kind == "link":
                start = position
                in_link = True
                walk(child.children)
                in_link = False
                spans.append(Span(start, position, _link_style(str(child.attrs.get("href", "")))))
            elif kind == "image":
                start = position
                alt = "".join(grand.content for grand in child.children) or str(child.attrs.get("alt", ""))
                add(f"🖼 {alt}" if alt else "🖼")
                spans.append(Span(start, position, _link_style(str(child.attrs.get("src", "")))))
            elif kind == "html_inline":
                start = position
                add(child.content)
                spans.append(Span(start, position, STYLE_HTML))
            elif child.children:
                walk(child.children)
            elif child.content:
                add(child.content)

    walk(node.children)
    return Content("".join(parts), spans=spans)


def _link_style(href: str) -> Style | str:
    """A clickable style for safe links; unsafe schemes (file:, javascript:) are shown, never opened."""
    if not safe_link(href):
        return STYLE_LINK_BLOCKED
    # The action string is parsed by Textual with literal_eval: repr() quotes the URL safely.
    return Style(underline=True) + Style.from_meta({"@click": f"link({href!r})"})


@lru_cache(maxsize=1)
def _builtin_languages() -> frozenset[str]:
    """Every alias of pygments' built-in lexers.

    An alias pygments does not know makes it search installed plugins, which
    imports whatever packages registered one (IPython costs half a second); a
    streaming fence shows partial names like "pyt" on the way to "python".
    """
    from pygments.lexers._mapping import LEXERS

    return frozenset(alias.lower() for _module, _name, aliases, _files, _mimes in LEXERS.values() for alias in aliases)


def _highlight(code: str, language: str, options: RenderOptions) -> Content:
    if not language or not options.highlight or (options.live and len(code) > LIVE_HIGHLIGHT_LIMIT):
        return Content(code)
    if language.lower() not in _builtin_languages():
        return Content(code)
    # Lazy import: pygments is loaded with the first fenced code block.
    from textual.highlight import HighlightTheme, highlight

    theme: type[HighlightTheme] = HighlightTheme
    if options.ansi:
        from textual.highlight import ANSIDarkHighlightTheme, ANSILightHighlightTheme

        theme = ANSILightHighlightTheme if options.light else ANSIDarkHighlightTheme
    try:
        return highlight(code, language=language, theme=theme)
    except Exception:  # noqa: BLE001 - a lexer bug must never lose the answer
        return Content(code)


# -- helpers for actions -----------------------------------------------------------------


def code_blocks(source: str) -> list[str]:
    """The fenced code blocks of a Markdown text, in order, without their fences."""
    tokens = _parser().parse(source)
    return [token.content for token in tokens if token.type in ("fence", "code_block")]
