"""A screen on which `layout: stream` containers re-measure every child whose size may have changed.

Textual's stream layout keeps the placements of its last arrangement and reuses
them, in order, for children that did not ask for a layout, up to the first one
that did. Which children asked is what `Screen._on_layout` records for each
ancestor of a widget that called `refresh(layout=True)`. In Textual 8.2 that
record tests the child against the *ancestors* seen so far instead of against
the ancestor's own set, so the chain breaks one level up: when an answer's
text view grows, its `AnswerView` is recorded under the `TurnView` only if no
other layout request named the `AnswerView` first. If the turn's status line
asked for a layout in the same frame, the `TurnView` reuses the answer's old
height and draws the status line over the rest of the answer; nothing redraws
it until a resize drops every cached placement. In a real terminal that
happens to about half of the long answers at a fast host's pace.

`ExactLayoutScreen` records the chain as intended: every ancestor up to the
first one with a fixed size learns which of its children changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.screen import Screen
from textual.widget import Widget

if TYPE_CHECKING:
    from textual import messages


class ExactLayoutScreen(Screen[Any]):
    """A `Screen` whose layout requests reach every auto-sized ancestor (see the module docstring)."""

    async def _on_layout(self, message: messages.Layout) -> None:
        message.stop()
        # The base handler must not run after this one (it would record the chain its way).
        message.prevent_default()
        changed = False
        child: Widget = message.widget
        pending = self._layout_widgets
        for ancestor in child.ancestors:
            if not isinstance(ancestor, Widget):
                break
            children = pending.setdefault(ancestor, set())
            if child not in children:
                children.add(child)
                changed = True
            if not ancestor.styles.auto_dimensions:
                break
            child = ancestor
        if changed and not self._layout_required:
            self._layout_required = True
            self.check_idle()
