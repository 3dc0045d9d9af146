"""The answer of a turn: Markdown rendered as Content lines, streamed a frame at a time.

`MarkdownView` is one widget showing some Markdown (see `glmchat.ui.markdown_render`).
`AnswerView` holds one for a finished answer; while an answer streams it holds
the settled *chunks* (blocks that can no longer change, each rendered once)
and a *tail* view that is re-parsed on every flush. Only the tail is re-parsed,
and the tail is cut into a new chunk once it grows past `FREEZE_CHARS`, so the
cost of a flush stays bounded however long the answer gets.
"""

from __future__ import annotations

from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from glmchat.sanitize import safe_link
from glmchat.ui.lines_visual import LineCache, LinesVisual
from glmchat.ui.markdown_render import Block, Code, RenderOptions, layout_blocks, parse_blocks

FREEZE_CHARS = 800
"""A streaming tail longer than this is split: its settled blocks move to a chunk.

The tail is re-parsed and re-drawn on every flush, so it is kept short."""

CHUNK_CHARS = 8_000
"""Settled blocks join the previous chunk until it holds this much, so a long
answer is a few dozen widgets, not hundreds."""


def split_at_line(text: str, line: int) -> tuple[str, str]:
    """Split text before line number `line` (0-based, lines end with "\\n" only).

    str.splitlines would also split on U+2028 and friends, which Markdown does
    not treat as line ends; the parser's line numbers count "\\n" only.
    """
    index = 0
    for _ in range(line):
        found = text.find("\n", index)
        if found == -1:
            return text, ""
        index = found + 1
    return text[:index], text[index:]


def _walk(blocks: list[Block]):
    """Every block, nested ones (in lists and quotes) included."""
    from glmchat.ui.markdown_render import ListBlock, Quote

    for block in blocks:
        yield block
        if isinstance(block, ListBlock):
            for item in block.items:
                yield from _walk(item)
        elif isinstance(block, Quote):
            yield from _walk(block.children)


class MarkdownView(Widget):
    """Markdown shown as one widget: parsed once, laid out per width."""

    DEFAULT_CSS = """
    MarkdownView {
        height: auto;
        width: 1fr;
    }
    MarkdownView.-chunk {
        margin-bottom: 1;
    }
    """

    def __init__(
        self,
        source: str = "",
        *,
        blocks: list[Block] | None = None,
        live: bool = False,
        defer_highlight: bool = False,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Create a view.

        Args:
            source: Markdown text, already made inert for the terminal.
            blocks: Blocks already parsed from `source` (saves parsing it again).
            live: The text is still streaming (very long code is not highlighted yet).
            defer_highlight: Show code plain in the first frame and highlight it
                right after (loading pygments costs more than the rest of a frame).
        """
        super().__init__(id=id, classes=classes)
        self._source = source
        self._blocks = blocks
        self._live = live
        self._defer_highlight = defer_highlight
        self._light: bool | None = None
        self._lines_cache: tuple[int, list[Content]] | None = None
        self._strips = LineCache()
        # Hover-highlighting links re-styles every line on every repaint; clicks work without it.
        self.auto_links = False

    @property
    def source(self) -> str:
        return self._source

    def _options(self) -> RenderOptions:
        light = False
        ansi = False
        if self.is_attached:
            theme = self.app.current_theme
            light = not theme.dark
            ansi = bool(getattr(self.app, "native_ansi_color", False))
        return RenderOptions(light=light, live=self._live, ansi=ansi)

    def blocks(self) -> list[Block]:
        """The parsed blocks (parsing on first use and after a light/dark switch)."""
        options = self._options()
        if self._blocks is None or self._light != options.light:
            if self._defer_highlight:
                self._defer_highlight = False
                options.highlight = False
            self._blocks = parse_blocks(self._source, options) if self._source else []
            self._light = options.light
            self._lines_cache = None
            if not options.highlight and any(isinstance(b, Code) and not b.highlighted for b in _walk(self._blocks)):
                self.call_after_refresh(self._highlight_now)
        return self._blocks

    def _highlight_now(self) -> None:
        # Same text, same lines: a repaint, not a layout.
        self._blocks = parse_blocks(self._source, self._options())
        self._lines_cache = None
        self.refresh()

    def set_source(self, source: str, blocks: list[Block] | None = None, *, live: bool | None = None) -> None:
        """Show new text (blocks may be passed when the caller has parsed it already)."""
        self._source = source
        self._blocks = blocks
        if blocks is not None:
            self._light = self._options().light
        if live is not None:
            self._live = live
        self._lines_cache = None
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[Content]:
        width = max(width, 4)
        blocks = self.blocks()
        cache = self._lines_cache
        if cache is not None and cache[0] == width:
            return cache[1]
        lines = layout_blocks(blocks, width)
        self._lines_cache = (width, lines)
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width)) if self._source else 0

    def render(self) -> LinesVisual:
        lines = self._lines(self.content_size.width or self.size.width) if self._source else []
        return LinesVisual(lines, self._strips, self.app.theme)

    def get_selection(self, selection):  # type: ignore[no-untyped-def]
        lines = self._lines(self.content_size.width or self.size.width) if self._source else []
        return selection.extract("\n".join(line.plain for line in lines)), "\n"

    def notify_style_update(self) -> None:
        # A switch between light and dark themes changes code and inline-code colours.
        if self._light is not None and self.is_attached and self._light != (not self.app.current_theme.dark):
            self._blocks = None
            self.refresh(layout=True)
        super().notify_style_update()

    def action_link(self, href: str) -> None:
        """Open a link the model wrote, if it is a web or mail link."""
        if safe_link(href):
            self.app.open_url(href)
        else:
            self.notify(f"Not opening {href[:80]!r}: only http(s) and mailto links open.", severity="warning", markup=False)


class AnswerView(Vertical):
    """The answer of one turn; `append` while streaming, `finish` at the end."""

    DEFAULT_CSS = """
    AnswerView {
        height: auto;
        width: 1fr;
        layout: stream;
    }
    """

    def __init__(
        self,
        source: str = "",
        *,
        live: bool = False,
        defer_highlight: bool = False,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Create an answer view.

        Args:
            source: The (inert) answer text, for a finished turn.
            live: The answer is about to stream in through `append`.
            defer_highlight: Highlight code right after the first frame (see MarkdownView).
        """
        super().__init__(id=id, classes=classes)
        self._live = live
        self._settled: list[str] = []
        """Sources of the chunks that can no longer change."""
        self._chunks: list[MarkdownView] = []
        self._tail_source = "" if live else source
        self._tail = MarkdownView(self._tail_source, live=live, defer_highlight=defer_highlight and not live)

    def compose(self):
        yield self._tail

    @property
    def source(self) -> str:
        """The whole answer shown (inert text)."""
        return "".join(self._settled) + self._tail_source

    @property
    def chunk_count(self) -> int:
        """How many settled chunks the streaming answer has been cut into."""
        return len(self._settled)

    def append(self, text: str) -> None:
        """Add streamed text and re-render the tail (call at most once per frame)."""
        if not text:
            return
        source = self._tail_source + text
        options = self._tail._options()
        options.live = True
        blocks = parse_blocks(source, options)
        if len(source) > FREEZE_CHARS and len(blocks) >= 2:
            # Every block but the last is complete: the next text can only change the last one.
            settled, source = split_at_line(source, blocks[-1].start_line)
            if settled:
                self._settle(settled, blocks[:-1])
                blocks = blocks[-1:]
                blocks[0].start_line = 0
        self._tail_source = source
        self._tail.set_source(source, blocks, live=True)

    def _settle(self, source: str, blocks: list[Block]) -> None:
        # Code left plain while it streamed is highlighted now, by parsing it once more.
        if not all(not isinstance(b, Code) or b.highlighted for b in blocks):
            options = self._tail._options()
            blocks = parse_blocks(source, options)
        previous = self._chunks[-1] if self._chunks else None
        if previous is not None and len(previous.source) + len(source) <= CHUNK_CHARS:
            # Join the previous chunk: its blocks keep their layout, so this costs O(lines).
            self._settled[-1] += source
            previous.set_source(previous.source + source, previous.blocks() + blocks)
            return
        self._settled.append(source)
        chunk = MarkdownView(source, blocks=blocks, classes="-chunk")
        self._chunks.append(chunk)
        self.mount(chunk, before=self._tail)

    def finish(self) -> None:
        """The stream ended: render the tail once more with everything highlighted."""
        self._live = False
        self._tail.set_source(self._tail_source, None, live=False)

    def replace(self, source: str) -> None:
        """Show a whole new answer (e.g. after regenerating from a stored turn)."""
        for chunk in list(self.query(MarkdownView)):
            if chunk is not self._tail:
                chunk.remove()
        self._settled.clear()
        self._chunks.clear()
        self._tail_source = source
        self._tail.set_source(source, None, live=False)
