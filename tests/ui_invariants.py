"""The invariant every finished turn must meet on screen (used by the layout and chat tests).

After a turn ends in any way, its answer as drawn equals a fresh render of the
stored text, every part of it has its current height, and while the log
follows the bottom the answer's last line and the turn's status line are on
screen.
"""

from __future__ import annotations

from typing import Any

from glmchat.sanitize import inert
from glmchat.session import Turn
from glmchat.ui.markdown_render import layout_blocks, parse_blocks
from glmchat.ui.widgets.answer import MarkdownView
from tests.ui_support import screen_text


def drawn_answer_lines(view: Any) -> list[str]:
    """The answer's lines in screen order: each settled chunk, its one-line margin, then the tail."""
    lines: list[str] = []
    parts = [child for child in view.answer.children if isinstance(child, MarkdownView)]
    for part in parts:
        width = part.content_size.width
        rendered = [line.plain.rstrip() for line in part._lines(width)] if part.source else []
        assert part.size.height == len(rendered), (
            f"a part of the answer is {part.size.height} lines high but has {len(rendered)} lines"
        )
        lines.extend(rendered)
        if part.has_class("-chunk"):
            lines.append("")
    return lines


def fresh_answer_lines(turn: Turn, width: int) -> list[str]:
    return [line.plain.rstrip() for line in layout_blocks(parse_blocks(inert(turn.content)), width)]


async def assert_answer_settled(pilot: Any, turn: Turn) -> None:
    """Fail unless the turn's answer is drawn whole, at its current height, its end in view."""
    await pilot.pause()
    app = pilot.app
    log = app.chat.log_view
    view = log.view_for(turn.id)
    assert view is not None, "the finished turn is mounted"
    assert not view.live
    tail = view.answer.children[-1]
    drawn = drawn_answer_lines(view)
    assert drawn == fresh_answer_lines(turn, tail.content_size.width), "the answer as drawn differs from a fresh render"
    answer, status = view.answer, view.status
    assert answer.size.height == len(drawn), "the answer's height is out of date"
    assert status.region.y == answer.region.bottom, "the status line sits right below the whole answer"
    assert log.scroll_y == log.max_scroll_y, "the log follows the bottom"
    text = screen_text(app)
    last = next((line.strip() for line in reversed(drawn) if line.strip()), None)
    if last is not None:
        assert last in text, f"the answer's last line {last!r} is not on screen"
    assert status.region.bottom <= log.region.bottom, "the turn's status line is on screen"
