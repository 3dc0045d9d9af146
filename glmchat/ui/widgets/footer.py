"""The footer: Textual's key footer, with keys that do not fit left out whole.

Textual's footer lays its keys out in a row and clips the row at the screen's
edge, so a narrow terminal shows half a key ("^r Ret"). This one hides every
key that would be cut (the command palette key on the right always stays: every
action is one Ctrl+P away). Hiding is a `visibility` change, which keeps the
layout as it is: no second layout pass.
"""

from __future__ import annotations

from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class FittingFooter(Footer):
    """A `Footer` that shows only the keys it can show whole."""

    DEFAULT_CSS = """
    FittingFooter {
        overflow-x: hidden;
    }
    """

    def on_resize(self) -> None:
        self.fit_keys()

    async def recompose(self) -> None:
        await super().recompose()
        # The new keys are laid out on the next refresh: measure them then.
        self.call_after_refresh(self.fit_keys)

    def fit_keys(self) -> None:
        """Hide the keys that would reach past the right edge (or under the palette key).

        Widths are measured from what each key draws, not read from the screen: a
        hidden widget has no place on screen to read, and it must come back when
        there is room again.
        """
        if not self.is_attached:
            return
        keys = list(self.query(FooterKey))
        limit = self.content_region.right
        for key in keys:
            if key.has_class("-command-palette") and key.region.width:
                limit = min(limit, key.region.x)
        x = self.content_region.x
        for key in keys:
            if key.has_class("-command-palette"):
                continue
            margin = key.styles.margin
            x += margin.left
            width = key.get_content_width(self.size, self.app.size)
            fits = x + width <= limit
            x += width + margin.right
            visibility = "visible" if fits else "hidden"
            if key.styles.visibility != visibility:
                key.styles.visibility = visibility

    def hidden_keys(self) -> list[str]:
        """Descriptions of the keys left out for lack of room (for tests)."""
        return [key.description for key in self.query(FooterKey) if key.styles.visibility == "hidden"]
