"""A Visual made of lines already laid out for a width, rendered with a per-line strip cache.

Textual renders a widget's whole content again whenever the widget refreshes.
For the streaming tail of an answer, or the live reasoning, most lines are the
same as one frame earlier; `LineCache` keeps the strip of each line (by its
text and styles) so a frame only renders the lines that changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Hashable

from textual.content import Content
from textual.visual import Visual

if TYPE_CHECKING:
    from textual.css.styles import RulesMap
    from textual.strip import Strip
    from textual.style import Style
    from textual.visual import RenderOptions

MAX_CACHED_LINES = 2_000


class LineCache:
    """Strips of rendered lines, valid for one width and one base style."""

    def __init__(self) -> None:
        self._key: Hashable = None
        self._strips: dict[Hashable, Strip] = {}

    def check(self, key: Hashable) -> None:
        """Forget everything when the width, the style or the theme changed."""
        if key != self._key:
            self._key = key
            self._strips.clear()

    def get(self, line_key: Hashable) -> Strip | None:
        return self._strips.get(line_key)

    def put(self, line_key: Hashable, strip: Strip) -> None:
        if len(self._strips) >= MAX_CACHED_LINES:
            self._strips.clear()
        self._strips[line_key] = strip


def line_key(line: Content) -> Hashable:
    """Identity of a line for the cache: Content compares by text only, so the spans are added."""
    return (line.plain, tuple(line.spans))


class LinesVisual(Visual):
    """Lines that each fit the width they were laid out for."""

    def __init__(self, lines: list[Content], cache: LineCache, theme: str) -> None:
        self.lines = lines
        self.cache = cache
        self.theme = theme

    def render_strips(self, width: int, height: int | None, style: Style, options: RenderOptions) -> list[Strip]:
        lines = self.lines if height is None else self.lines[:height]
        if options.selection is not None or options.post_style is not None:
            # Selecting text: render the plain way, so the selection is drawn right.
            return Content("\n").join(lines).render_strips(width, height, style, options)
        cache = self.cache
        cache.check((width, style, self.theme))
        out: list[Strip] = []
        for line in lines:
            key = line_key(line)
            strip = cache.get(key)
            if strip is None:
                rendered = line.render_strips(width, 1, style, options)
                if not rendered:
                    from textual.strip import Strip

                    rendered = [Strip([])]
                strip = rendered[0]
                cache.put(key, strip)
            out.append(strip)
        return out

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        return max((line.cell_length for line in self.lines), default=0)

    def get_height(self, rules: RulesMap, width: int) -> int:
        return len(self.lines)
