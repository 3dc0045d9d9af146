"""Long texts shown a page at a time: where the pages are cut, and the bar that moves between them.

Laying text out costs time in proportion to its length, and a turn's reasoning,
answer or message can be megabytes long (a model that loops, a pasted log).
Such a text is shown one page at a time, with a `PageBar` under it: the page,
how much there is, and the ways to move (keys when the bar has focus, or a
click on the words). Only the page shown is ever laid out; the whole text stays
reachable page by page, and "copy all" takes it exactly as stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

SNAP = 0.25
"""A page ends at a paragraph or line break found within this share of a page after its nominal end."""

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)$", re.MULTILINE)


def needs_pages(text: str, size: int) -> bool:
    """Whether a text is long enough to be shown by pages of `size` characters (two pages' worth or more)."""
    return len(text) > 2 * size


@dataclass
class Pages:
    """A text cut into pages of about `size` characters, each cut found without reading the rest.

    Page k starts at the first paragraph break (else line break) at or after
    k × size, within a quarter page; so any page is found in O(size), the last
    one as fast as the first. With `markdown`, a page that starts inside a fenced
    code block gets the fence's opening line put back in front of it, so it is
    still shown as code (the fences before it are counted once and remembered).
    """

    text: str
    size: int
    markdown: bool = False
    _starts: dict[int, int] = field(default_factory=dict, repr=False)
    _fences: dict[int, _Fence | None] = field(default_factory=lambda: {0: None}, repr=False)
    """Offset -> the code fence open there (Markdown only)."""

    @property
    def count(self) -> int:
        """How many pages (at least one)."""
        n = max(1, -(-len(self.text) // self.size))
        # The last cut may have moved to the very end of the text: no empty page after it.
        return n - 1 if n > 1 and self._cut(n - 1) >= len(self.text) else n

    def start(self, index: int) -> int:
        """Offset of the first character of page `index`."""
        if index <= 0:
            return 0
        if index >= self.count:
            return len(self.text)
        return self._cut(index)

    def _cut(self, index: int) -> int:
        cached = self._starts.get(index)
        if cached is not None:
            return cached
        text = self.text
        nominal = index * self.size
        window = max(1, int(self.size * SNAP))
        limit = min(len(text), nominal + window)
        cut = text.find("\n\n", nominal, limit)
        if cut >= 0:
            cut += 2
        else:
            cut = text.find("\n", nominal, limit)
            cut = cut + 1 if cut >= 0 else nominal
        self._starts[index] = cut
        return cut

    def bounds(self, index: int) -> tuple[int, int]:
        """Start and end offsets of page `index` in the text."""
        return self.start(index), self.start(index + 1)

    def page(self, index: int) -> str:
        """The text of page `index` (for Markdown, with an open fence put back in front)."""
        start, end = self.bounds(index)
        body = self.text[start:end]
        if self.markdown:
            opener = self._fence_at(start)
            if opener is not None:
                return opener + "\n" + body
        return body

    def _fence_at(self, offset: int) -> str | None:
        """The opening line of the code fence open at `offset`, or None (outside any fence)."""
        if offset in self._fences:
            fence = self._fences[offset]
            return fence.line if fence is not None else None
        # Count from the nearest earlier offset already known: paging forward reads each part once.
        base = max(known for known in self._fences if known <= offset)
        fence = self._fences[base]
        for match in _FENCE.finditer(self.text, base, offset):
            marker, info = match.group(1), match.group(2)
            if fence is None:
                fence = _Fence(match.group(0).strip(), marker[0], len(marker))
            elif marker[0] == fence.char and len(marker) >= fence.length and not info.strip():
                fence = None
        self._fences[offset] = fence
        return fence.line if fence is not None else None


@dataclass(frozen=True)
class _Fence:
    """An open fenced code block: its opening line, and what closes it."""

    line: str
    char: str
    length: int


def _size(chars: int) -> str:
    """A length for people: "512 characters", "16 KB", "100 MB" (characters, counted like bytes)."""
    if chars < 1_000:
        return f"{chars:,} characters"
    if chars < 1_000_000:
        return f"{chars / 1_000:,.0f} KB"
    return f"{chars / 1_000_000:,.1f} MB".replace(".0 MB", " MB")


class PageBar(Widget, can_focus=True):
    """The line under a paged text: which page, how much text, and the ways to move.

    | Key(s) | Description |
    | :- | :- |
    | n, right | Next page. |
    | p, left | Previous page. |
    | home | First page. |
    | end | Last page. |
    | y | Copy all of the text. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n,right", "move(1)", "Next page", tooltip="Show the next page of this text."),
        Binding("p,left", "move(-1)", "Previous page", tooltip="Show the previous page of this text."),
        Binding("home", "first", "First page", tooltip="Show the first page of this text.", show=False),
        Binding("end", "last", "Last page", tooltip="Show the last page of this text.", show=False),
        Binding("y", "copy", "Copy all", tooltip="Copy all of this text, every page."),
    ]

    DEFAULT_CSS = """
    PageBar {
        height: auto;
        width: 1fr;
        padding: 0 2;
        color: $text-muted;
    }
    PageBar:focus {
        color: $text;
        background: $boost;
    }
    """

    page: reactive[int] = reactive(0)
    """The page shown (0-based)."""

    class Changed(Message):
        """The user moved to another page."""

        def __init__(self, bar: PageBar, page: int) -> None:
            super().__init__()
            self.bar = bar
            self.page = page

        @property
        def control(self) -> PageBar:
            return self.bar

    class CopyRequested(Message):
        """The user asked for the whole text on the clipboard."""

        def __init__(self, bar: PageBar) -> None:
            super().__init__()
            self.bar = bar

        @property
        def control(self) -> PageBar:
            return self.bar

    def __init__(self, pages: Pages, *, what: str, id: str | None = None, classes: str | None = None) -> None:
        """Create a bar.

        Args:
            pages: The pages of the text.
            what: What the text is, for people ("reasoning", "answer", "message").
        """
        super().__init__(id=id, classes=classes)
        self.pages = pages
        self.what = what

    def render(self) -> Content:
        pages = self.pages
        page, count = self.page, pages.count
        start, end = pages.bounds(page)
        total = len(pages.text)

        def action(label: str, name: str, enabled: bool = True) -> Content:
            if not enabled:
                return Content.styled(label, "$text-disabled")
            return Content.styled(label, "$text-accent underline").stylize(_click(name))

        return Content.assemble(
            action("◀ previous", "move(-1)", page > 0),
            " · ",
            (f"{self.what} page {page + 1:,} of {count:,} ({_size(end - start)} of {_size(total)})", ""),
            " · ",
            action("next ▶", "move(1)", page < count - 1),
            " · ",
            action("⇤ first", "first", page > 0),
            " · ",
            action("last ⇥", "last", page < count - 1),
            " · ",
            action("copy all", "copy"),
        )

    def show(self, page: int) -> None:
        """Move to a page (clamped) and tell the owner, if it changed."""
        page = max(0, min(page, self.pages.count - 1))
        if page != self.page:
            self.page = page
            self.post_message(self.Changed(self, page))

    def action_move(self, step: int) -> None:
        """Next (1) or previous (-1) page."""
        self.show(self.page + step)

    def action_first(self) -> None:
        self.show(0)

    def action_last(self) -> None:
        self.show(self.pages.count - 1)

    def action_copy(self) -> None:
        self.post_message(self.CopyRequested(self))


def _click(action: str):
    from textual.style import Style

    return Style.from_meta({"@click": action})
