"""The reasoning pane: a one-line title that folds and unfolds the model's reasoning.

One widget, no children: the title and (when open) the text are rendered as a
single ``Content``. Folded, nothing but the title is laid out, however long the
reasoning. Live, only the last few wrapped lines of a bounded tail are laid
out, so a frame costs the same at token 10 and at token 40,000. Unfolded, the
lines on screen are the only ones rendered; a reasoning too long to lay out at
once is given a page at a time (the turn view pages it, see `PageBar`).
"""

from __future__ import annotations

import re
from typing import Callable, ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.visual import RenderOptions
from textual.widget import Widget

from glmchat.ui.lines_visual import LineCache, LinesVisual, line_key

TAIL_CHARS = 4_000
"""How much of the live reasoning is kept for the live view (enough for LIVE_LINES of any width)."""

LIVE_LINES = 8
"""Lines of reasoning shown while it streams (the newest ones)."""


def format_seconds(seconds: float | None) -> str:
    """ "3.1 s" under a minute, "2 min 5 s" above."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s"


def live_tail(text: str, width: int) -> str:
    """Enough of the end of `text` to fill LIVE_LINES wrapped lines of `width` (wrapping all of it costs O(text))."""
    budget = (LIVE_LINES + 1) * max(width, 1)
    tail = text[-budget:]
    if len(tail) < len(text):
        # Start at a line break when there is one, so the first shown line is not cut mid-word.
        cut = tail.find("\n")
        if 0 <= cut < len(tail) - 1:
            tail = tail[cut + 1 :]
    return tail


def match_offset(text: str, match: str, context: str = "") -> int | None:
    """Where `match` occurs in `text` (ignoring case): inside `context` when that is found, else first.

    Args:
        text: the text searched.
        match: the matched word.
        context: a passage around the wanted occurrence (a search snippet), to tell
            it from earlier ones.
    """
    if not match:
        return None
    word = re.compile(re.escape(match), re.IGNORECASE)
    if context:
        at = text.find(context)
        if at >= 0:
            found = word.search(text, at, at + len(context))
            if found is not None:
                return found.start()
    found = word.search(text)
    return found.start() if found is not None else None


def wrapped_line_of(text: str, offset: int, width: int) -> int:
    """The line (from 0) on which the character at `offset` lands when `text` is wrapped to `width`.

    The text is wrapped up to the end of the word holding `offset`: greedy
    wrapping decides each line by the words on it and before it, so the
    lines up to that word are the same as in the whole text.
    """
    end = offset
    while end < len(text) and not text[end].isspace():
        end += 1
    return max(len(Content(text[:end].rstrip("\n")).wrap(width)) - 1, 0)


class ReasoningPane(Widget, can_focus=True):
    """Collapsible reasoning of one turn.

    | Key(s) | Description |
    | :- | :- |
    | enter, space | Fold or unfold the reasoning. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,space", "toggle", "Fold/unfold", tooltip="Fold or unfold this turn's reasoning.", show=False),
    ]

    DEFAULT_CSS = """
    ReasoningPane {
        height: auto;
        width: 1fr;
    }
    """

    expanded: reactive[bool] = reactive(False, layout=True, init=False)
    """Whether the reasoning text is shown."""

    class Toggled(Message):
        """Posted when the user folds or unfolds the pane."""

        def __init__(self, pane: ReasoningPane, expanded: bool) -> None:
            super().__init__()
            self.pane = pane
            self.expanded = expanded

        @property
        def control(self) -> ReasoningPane:
            return self.pane

    def __init__(
        self,
        text: str | Callable[[], str] = "",
        *,
        title: str = "Reasoning",
        expanded: bool = False,
        live: bool = False,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Create a pane.

        Args:
            text: The (inert) reasoning, or a callable giving it, called only when the
                full text is shown.
            title: Title shown after the fold marker.
            expanded: Start unfolded.
            live: Reasoning is streaming in: show the tail of `append`ed text.
        """
        super().__init__(id=id, classes=classes)
        self._text = text
        self._full: str | None = None
        self._title = title
        self._live = live
        self._tail = ""
        self._lines_cache: tuple[tuple[int, bool, bool], list[Content]] | None = None
        self._strips = LineCache()
        self.set_reactive(ReasoningPane.expanded, expanded)

    # -- content -------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return self._title

    @title.setter
    def title(self, title: str) -> None:
        if title != self._title:
            self._title = title
            self._lines_cache = None
            self.refresh()

    @property
    def live(self) -> bool:
        return self._live

    def append(self, text: str) -> None:
        """Add streamed (inert) reasoning; only a bounded tail is kept here."""
        if not text:
            return
        tail = self._tail + text
        if len(tail) > TAIL_CHARS * 2:
            tail = tail[-TAIL_CHARS:]
        self._tail = tail
        self._full = None
        if self.expanded:
            # Once the live view is full (title + LIVE_LINES), its height no longer
            # changes: a repaint will do, without a layout of the whole screen.
            cache = self._lines_cache
            full = cache is not None and len(cache[1]) >= LIVE_LINES + 1
            self._lines_cache = None
            self.refresh(layout=not full)

    def end_live(self, text: str | Callable[[], str] | None = None) -> None:
        """The stream ended: from now on the full text is shown when unfolded."""
        self._live = False
        self._tail = ""
        if text is not None:
            self._text = text
        self._full = None
        self._lines_cache = None
        self.refresh(layout=True)

    def set_text(self, text: str | Callable[[], str]) -> None:
        """Replace the full text source (e.g. after the turn was reloaded)."""
        self._text = text
        self._full = None
        self._lines_cache = None
        self.refresh(layout=True)

    def _full_text(self) -> str:
        if self._full is None:
            self._full = self._text() if callable(self._text) else self._text
        return self._full

    # -- rendering -----------------------------------------------------------------------

    def _title_line(self) -> Content:
        marker = "▼" if self.expanded else "▶"
        style = "$text-primary bold" if self.has_focus else "$text-muted"
        return Content.assemble((f"{marker} ", style), (self._title, style))

    def line_of_match(self, match: str, context: str = "") -> int | None:
        """The pane line (0 is the title) showing `match` when unfolded, or None if it is not in the text."""
        text = self._full_text()
        offset = match_offset(text, match, context)
        if offset is None:
            return None
        inner = max((self.content_size.width or self.size.width) - 2, 4)
        return 1 + wrapped_line_of(text.rstrip("\n"), offset, inner)

    def _lines(self, width: int) -> list[Content]:
        key = (width, self.expanded, self.has_focus)
        cache = self._lines_cache
        if cache is not None and cache[0] == key:
            return cache[1]
        lines = [self._title_line()]
        if self.expanded:
            inner = max(width - 2, 4)
            body_style = "$reasoning-foreground"
            text = live_tail(self._tail, inner) if self._live else self._full_text()
            if text:
                body = Content.styled(text.rstrip("\n"), body_style).wrap(inner)
                if self._live:
                    body = body[-LIVE_LINES:]
                lines.extend(Content("  ") + line for line in body)
        self._lines_cache = (key, lines)
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> LinesVisual:
        return LinesVisual(self._lines(self.content_size.width or self.size.width), self._strips, self.app.theme)

    def render_line(self, y: int) -> Strip:
        """One line, rendered only when it is on screen.

        Textual would render the whole visual (every line of an unfolded page of
        reasoning) to show the few that are visible; here a line is rendered when
        it is asked for, through the same per-line cache. While text is being
        selected, the whole visual is rendered the usual way, which draws the selection.
        """
        if self.text_selection is not None:
            return super().render_line(y)
        width = self.size.width
        lines = self._lines(self.content_size.width or width)
        style = self.visual_style
        if y >= len(lines):
            return Strip.blank(width, style.rich_style)
        cache = self._strips
        cache.check((width, style, self.app.theme))
        line = lines[y]
        key = line_key(line)
        strip = cache.get(key)
        if strip is None:
            rendered = line.render_strips(width, 1, style, RenderOptions(self._get_style, self.styles))
            strip = rendered[0] if rendered else Strip([])
            cache.put(key, strip)
        return strip

    def get_selection(self, selection):  # type: ignore[no-untyped-def]
        lines = self._lines(self.content_size.width or self.size.width)
        return selection.extract("\n".join(line.plain for line in lines)), "\n"

    def watch_expanded(self, expanded: bool) -> None:
        self._lines_cache = None

    def _on_focus(self) -> None:
        self._lines_cache = None
        self.refresh()

    def _on_blur(self) -> None:
        self._lines_cache = None
        self.refresh()

    # -- interaction ---------------------------------------------------------------------

    def action_toggle(self) -> None:
        """Fold or unfold."""
        self.expanded = not self.expanded
        self.post_message(self.Toggled(self, self.expanded))

    def on_click(self, event: Click) -> None:
        # A click on the title toggles; clicks inside the text are left for selecting it.
        if event.y == 0 or not self.expanded:
            event.stop()
            self.action_toggle()
